// Recorded inferences over the picture: the boxes an extension, the object tracker or the
// motion detector put on the frame on screen (as AVA's player widget drew them from the
// video's metadata track), labelled with the tag and track. Rows come from the host by time
// range (/api/videos/{name}/inferences), a minute at a time around the playhead.

import { $, api, iso } from './api.js';
import { state } from './state.js';

const CHUNK_MS = 60e3;
// A row stands for the frames after it until the next one, for at most this long: a tracker
// writes every frame, a detector alone a few times a second.
const HOLD_MS = 600;
// Rows of the last seconds are still being written: such chunks are asked for again.
const FRESH_MS = 5e3;
const REFETCH_MS = 2e3;

// chunk start (ms) → { rows: [[ms, inferences]], loaded: ms when fetched, loading }
let chunks = new Map();
let chunksOf = null;

async function fetchChunk(video, start) {
  const rows = [];
  let url = `/api/videos/${video}/inferences?startTime=${iso(start)}&endTime=${iso(start + CHUNK_MS)}`;
  while (url) {
    const page = await api(url);
    for (const r of page.value || []) rows.push([Date.parse(r.time), r.inferences]);
    url = page['@nextLink'] || null;
  }
  return rows;
}

function chunk(video, start) {
  let c = chunks.get(start);
  const stale = c && !c.loading && start + CHUNK_MS > Date.now() - FRESH_MS && Date.now() - c.loaded > REFETCH_MS;
  if (c && !stale) return c;
  if (!c) {
    c = { rows: [], loaded: 0, loading: false };
    chunks.set(start, c);
  }
  c.loading = true;
  fetchChunk(video, start)
    .then((rows) => {
      if (chunksOf !== video) return;
      c.rows = rows;
      c.loaded = Date.now();
    })
    .catch((e) => console.warn('inferences:', e.message))
    .finally(() => { c.loading = false; });
  return c;
}

// The row that stands for the frame at `wall`, if any.
function rowAt(wall) {
  if (chunksOf !== state.video) {
    chunks = new Map();
    chunksOf = state.video;
  }
  const start = Math.floor(wall / CHUNK_MS) * CHUNK_MS;
  const here = chunk(state.video, start);
  chunk(state.video, start + CHUNK_MS); // ahead of the playhead
  // The latest row at or before the frame. A row's time is when its frame arrived; the player's
  // clock (the playlist's dates) put the same frame 10–30 ms later in the tests: a frame gets its
  // own row or the one before. (Half a millisecond: 90 kHz ticks against milliseconds.)
  let best = null;
  for (const c of [here, chunks.get(start - CHUNK_MS)]) {
    for (const r of c ? c.rows : []) {
      if (r[0] <= wall + 0.5 && wall - r[0] <= HOLD_MS && (!best || r[0] > best[0])) best = r;
    }
  }
  return best;
}

// What a box of an inference is, if it has one: entity, motion and event boxes.
function boxOf(i) {
  const b = (i.entity && i.entity.box) || (i.motion && i.motion.box) || (i.event && i.event.box);
  if (!b || ![b.l, b.t, b.w, b.h].every(Number.isFinite)) return null;
  const tag = i.entity && i.entity.tag ? i.entity.tag.value : i.type;
  const track = i.sequenceId ? ` #${String(i.sequenceId).slice(0, 6)}` : '';
  return { l: b.l, t: b.t, w: b.w, h: b.h, label: `${tag || ''}${track}`, type: i.type };
}

// Draws the boxes for the frame at `wall` over the player (null: none). Also leaves what it
// drew in `state.boxes` ({l, t, w, h} as fractions of the frame, label, and the row's time).
export function drawBoxes(wall) {
  const v = $('player');
  const canvas = $('overlay');
  const w = v.clientWidth, h = v.clientHeight;
  const ratio = window.devicePixelRatio || 1;
  if (canvas.width !== Math.round(w * ratio) || canvas.height !== Math.round(h * ratio)) {
    canvas.width = Math.round(w * ratio);
    canvas.height = Math.round(h * ratio);
    canvas.style.width = `${w}px`;
    canvas.style.height = `${h}px`;
  }
  const g = canvas.getContext('2d');
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, w, h);
  state.boxes = { at: null, shown: [] };
  if (wall === null || !state.video || !v.videoWidth) return;
  const row = rowAt(wall);
  if (!row || !Array.isArray(row[1])) return;
  // Where the picture is in the element (letterboxed, aspect kept).
  const scale = Math.min(w / v.videoWidth, h / v.videoHeight);
  const pw = v.videoWidth * scale, ph = v.videoHeight * scale;
  const ox = (w - pw) / 2, oy = (h - ph) / 2;
  g.lineWidth = 2;
  g.font = '12px system-ui, sans-serif';
  const shown = row[1].map(boxOf).filter(Boolean);
  for (const b of shown) {
    const x = ox + b.l * pw, y = oy + b.t * ph;
    g.strokeStyle = b.type === 'motion' ? '#ffb000' : '#00e060';
    g.strokeRect(x, y, b.w * pw, b.h * ph);
    if (b.label) {
      const tw = g.measureText(b.label).width + 6;
      g.fillStyle = 'rgba(0, 0, 0, .6)';
      g.fillRect(x, Math.max(0, y - 16), tw, 16);
      g.fillStyle = '#fff';
      g.fillText(b.label, x + 3, Math.max(12, y - 4));
    }
  }
  state.boxes = { at: row[0], shown };
}

// Forgets what was fetched (another video, or its media changed).
export function resetBoxes() {
  chunks = new Map();
  chunksOf = null;
  drawBoxes(null);
}

// Minutes of the window [from, to) that hold recorded inferences, for the timeline: [[start, end]].
export async function activity(from, to) {
  if (!state.video) return [];
  const r = await api(`/api/videos/${state.video}/inferences/activity?startTime=${iso(from)}&endTime=${iso(to)}`);
  return (r.value || []).map((a) => [Date.parse(a.start), Date.parse(a.end)]);
}
