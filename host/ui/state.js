// What the page shows, shared by its modules.

export const state = {
  video: null,
  windowMs: 3600e3, // timeline width
  endMs: Date.now(),
  ranges: [],
  rangeKind: 'full', // 'full': exact ranges; 'day': days that hold media
  days: [], // starts (ms) of the days with media in the last 31 days
  spanStart: null,
  span: null,
  player: null,
  recording: false, // the selected video is being recorded (its last range grows)
};
