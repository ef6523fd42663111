// What the page shows, shared by its modules.

export const state = {
  video: null,
  windowMs: 3600e3, // timeline width
  endMs: Date.now(),
  ranges: [],
  activity: [], // [start, end] minutes of the window with recorded inferences
  boxes: { at: null, shown: [] }, // what the overlay shows (see boxes.js)
  rangeKind: 'full', // 'full': exact ranges; 'day': days that hold media
  days: [], // starts (ms) of the days with media in the last 31 days
  spanStart: null,
  span: null,
  player: null,
  recording: false, // the selected video is being recorded (its last range grows)
  quality: '', // '' (as recorded) or a height the host transcodes to (player.js)
};
