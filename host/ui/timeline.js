// The timeline: what was recorded in the visible window (exact ranges up to a day wide, days
// with media beyond), the day bar, panning, zooming, thumbnails, and the span to export.

import { $, api, iso, mediaUrl } from './api.js';
import { playFrom, playLive } from './player.js';
import { activity } from './boxes.js';
import { state } from './state.js';

const DAY = 24 * 3600e3;
// availableMedia at full precision covers at most 25 h (AVA's limit); wider windows show the
// days that hold media (precision=day, up to 31 days).
const FULL_MAX_MS = DAY;
const WINDOW_MAX_MS = 31 * DAY;
const media = (from, to, precision) =>
  api(`/api/videos/${state.video}/availableMedia?precision=${precision}&startTime=${iso(from)}&endTime=${iso(to)}`);
const dayStart = (d) => Date.parse(`${d}T00:00:00Z`);

export async function refreshTimeline(fit) {
  if (!state.video || state.videoType === 'File') return;
  const now = Date.now();
  // The days with media in the last 31 days: the day bar, and where to look first.
  const days = (await media(now - WINDOW_MAX_MS, now, 'day')).timeRanges || [];
  state.days = [];
  for (const r of days) {
    for (let d = dayStart(r.start); d <= dayStart(r.end); d += DAY) state.days.push(d);
  }
  if (fit) {
    // The most recent day with media, fitted to what it holds.
    const end = state.days.length ? Math.min(now, state.days[state.days.length - 1] + DAY) : now;
    const ranges = ((await media(end - FULL_MAX_MS, end, 'full')).timeRanges || []).map((r) => [Date.parse(r.start), Date.parse(r.end)]);
    if (ranges.length) {
      const first = ranges[0][0], last = ranges[ranges.length - 1][1];
      state.windowMs = Math.max(60e3, Math.min(FULL_MAX_MS, (last - first) * 1.2));
      state.endMs = Math.min(last + state.windowMs * 0.05, end + state.windowMs * 0.05);
    } else {
      state.windowMs = FULL_MAX_MS;
      state.endMs = end;
    }
  }
  drawDays();
  await loadWindow();
}

// The ranges of the visible window: exact at full precision up to a day wide, whole days
// beyond that.
export async function loadWindow() {
  const start = state.endMs - state.windowMs;
  const asked = `${state.video} ${start} ${state.endMs}`;
  state.asked = asked;
  let ranges, kind;
  if (state.windowMs <= FULL_MAX_MS) {
    kind = 'full';
    ranges = ((await media(start, state.endMs, 'full')).timeRanges || []).map((r) => [Date.parse(r.start), Date.parse(r.end)]);
  } else {
    kind = 'day';
    ranges = ((await media(start, state.endMs, 'day')).timeRanges || []).map((r) => [dayStart(r.start), dayStart(r.end) + DAY]);
  }
  // Where recorded inferences are (minutes); a host without them answers nothing to draw.
  const marks = await activity(start, state.endMs).catch(() => []);
  if (state.asked !== asked) return; // the window moved meanwhile; a newer load draws
  state.ranges = ranges;
  state.rangeKind = kind;
  state.activity = marks;
  drawTimeline();
}

function showDay(d) {
  state.windowMs = DAY;
  state.endMs = d + DAY;
  loadWindow().catch((e) => console.warn(e.message));
}

export function drawDays() {
  const el = $('days');
  el.innerHTML = '';
  for (const d of state.days) {
    const b = document.createElement('button');
    b.className = 'day';
    b.dataset.day = iso(d).slice(0, 10);
    b.textContent = iso(d).slice(5, 10);
    b.title = `show ${iso(d).slice(0, 10)} (UTC)`;
    b.onclick = () => showDay(d);
    el.appendChild(b);
  }
}

export function xOf(ms) {
  const start = state.endMs - state.windowMs;
  return ((ms - start) / state.windowMs) * 100;
}

function timeAt(event) {
  const box = $('timeline').getBoundingClientRect();
  const frac = (event.clientX - box.left) / box.width;
  return state.endMs - state.windowMs + frac * state.windowMs;
}

export function drawTimeline() {
  const el = $('ranges');
  el.innerHTML = '';
  for (const [s, e] of state.ranges) {
    const left = Math.max(0, xOf(s)), right = Math.min(100, xOf(e));
    if (right <= 0 || left >= 100) continue;
    const d = document.createElement('div');
    d.className = state.rangeKind === 'day' ? 'range day' : 'range';
    d.style.left = `${left}%`;
    d.style.width = `${Math.max(0.2, right - left)}%`;
    d.title = `${iso(s)} – ${iso(e)}`;
    d.dataset.start = iso(s);
    d.dataset.end = iso(e);
    el.appendChild(d);
  }
  const marks = $('marks');
  marks.innerHTML = '';
  // Minutes are coarse: a mark is drawn where its minute overlaps what was recorded.
  const spans = [];
  for (const [s, e] of state.activity || []) {
    for (const [rs, re] of state.ranges) if (rs < e && s < re) spans.push([Math.max(s, rs), Math.min(e, re)]);
  }
  for (const [s, e] of spans) {
    const left = Math.max(0, xOf(s)), right = Math.min(100, xOf(e));
    if (right <= 0 || left >= 100) continue;
    const d = document.createElement('div');
    d.className = 'mark';
    d.style.left = `${left}%`;
    d.style.width = `${Math.max(0.2, right - left)}%`;
    d.title = `inferences ${iso(s)} – ${iso(e)}`;
    marks.appendChild(d);
  }
  const start = state.endMs - state.windowMs;
  // Hours within a day, dates and hours over a few days, dates beyond.
  const label = (ms) => {
    const t = new Date(ms).toISOString();
    if (state.windowMs <= DAY) return t.slice(11, 19);
    return state.windowMs <= 4 * DAY ? `${t.slice(5, 10)} ${t.slice(11, 16)}` : t.slice(5, 10);
  };
  $('axis').innerHTML = [0, 0.25, 0.5, 0.75, 1].map((f) => `<span>${label(start + f * state.windowMs)}</span>`).join('');
  const width = state.windowMs >= 2 * DAY ? `${Math.round(state.windowMs / DAY)} days`
    : state.windowMs >= 2 * 3600e3 ? `${Math.round(state.windowMs / 3600e3)} h` : `${Math.round(state.windowMs / 60e3)} min`;
  $('window-label').textContent = `${width} ending ${iso(state.endMs).slice(0, 19)}Z${state.rangeKind === 'day' ? ' (days with media)' : ''}`;
  const sel = $('selection');
  if (state.span) {
    sel.style.display = 'block';
    sel.style.left = `${xOf(state.span[0])}%`;
    sel.style.width = `${xOf(state.span[1]) - xOf(state.span[0])}%`;
  } else {
    sel.style.display = 'none';
  }
}

$('timeline').addEventListener('click', (ev) => {
  const t = timeAt(ev);
  if (ev.shiftKey) {
    if (state.spanStart === null) {
      state.spanStart = t;
      $('span-label').textContent = `from ${iso(t)} … shift+click the end`;
    } else {
      state.span = [Math.min(state.spanStart, t), Math.max(state.spanStart, t)];
      state.spanStart = null;
      $('span-label').textContent = `${iso(state.span[0])} – ${iso(state.span[1])}`;
      $('export').disabled = false;
      drawTimeline();
    }
    return;
  }
  if (state.rangeKind === 'day') {
    // Days are too coarse to play from: show the day clicked.
    showDay(Math.floor(t / DAY) * DAY);
    return;
  }
  playFrom(t);
});
// Drag to pan: move the window by the drag distance.
let drag = null;
$('timeline').addEventListener('mousedown', (ev) => { drag = { x: ev.clientX, end: state.endMs }; });
window.addEventListener('mouseup', () => {
  if (drag && drag.end !== state.endMs) loadWindow().catch((e) => console.warn(e.message));
  drag = null;
});
window.addEventListener('mousemove', (ev) => {
  if (!drag || Math.abs(ev.clientX - drag.x) < 5) return;
  const w = $('timeline').getBoundingClientRect().width;
  state.endMs = drag.end - ((ev.clientX - drag.x) / w) * state.windowMs;
  drawTimeline();
});
// Hovering the recorded ranges shows a thumbnail of the moment under the pointer (the keyframe
// at or before it, `images/at.jpg`), fetched once the pointer rests for a moment.
let thumbTimer = null;
$('timeline').addEventListener('mousemove', (ev) => {
  clearTimeout(thumbTimer);
  const t = timeAt(ev);
  const inside = state.rangeKind === 'full' && state.ranges.some(([s, e]) => s <= t && t < e);
  const img = $('thumb');
  if (!inside || drag) {
    img.hidden = true;
    return;
  }
  const box = $('timeline').getBoundingClientRect();
  thumbTimer = setTimeout(async () => {
    img.style.left = `${Math.min(box.width - 160, Math.max(0, ev.clientX - box.left - 80))}px`;
    img.src = await mediaUrl(state.video, `/api/videos/${state.video}/images/at.jpg?time=${iso(t)}&size=small`);
    img.dataset.time = iso(t);
    img.hidden = false;
  }, 150);
});
$('timeline').addEventListener('mouseleave', () => {
  clearTimeout(thumbTimer);
  $('thumb').hidden = true;
});

// Zoom around the window's centre.
const zoom = (factor) => {
  const centre = state.endMs - state.windowMs / 2;
  state.windowMs = Math.max(10e3, Math.min(WINDOW_MAX_MS, state.windowMs * factor));
  state.endMs = centre + state.windowMs / 2;
  drawTimeline();
  loadWindow().catch((e) => console.warn(e.message));
};
$('zoom-in').onclick = () => zoom(0.5);
$('zoom-out').onclick = () => zoom(2);
$('live').onclick = () => playLive();

// A recording video's last range grows between events without asking the host: drawn up to
// now (less the fragment being written), as long as it reached that far when last loaded.
setInterval(() => {
  if (!state.recording || state.rangeKind !== 'full' || !state.ranges.length) return;
  const last = state.ranges[state.ranges.length - 1];
  const edge = Date.now() - 1000;
  if (edge > last[1] && edge - last[1] < 30e3) {
    last[1] = edge;
    drawTimeline();
  }
}, 1000);
