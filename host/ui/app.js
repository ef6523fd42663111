// openva's web UI: videos with a timeline of what was recorded, a player of the host's HLS
// (parsed here and fed to Media Source Extensions: fMP4 byte ranges, no third-party player),
// live view, export of a span as a pipeline job, and the pipelines and events.
'use strict';

const $ = (id) => document.getElementById(id);

// The API token, when the host is beyond loopback: asked for once (a password field, never
// shown), kept for the tab's session and sent only as a bearer header, never in a URL.
let token = sessionStorage.getItem('openva-token') || '';
const authHeaders = (h = {}) => (token ? { ...h, Authorization: `Bearer ${token}` } : h);
const authFetch = (url, opts = {}) => fetch(url, { ...opts, headers: authHeaders(opts.headers || {}) });

class Unauthorized extends Error {}

const api = async (path, opts = {}) => {
  const r = await authFetch(path, opts);
  if (r.status === 401) {
    $('token-form').hidden = false;
    throw new Unauthorized('this host needs its API token');
  }
  const text = await r.text();
  const body = text ? JSON.parse(text) : null;
  if (!r.ok) throw new Error((body && body.error && body.error.message) || `${r.status} ${path}`);
  return body;
};

// Where a browser cannot send a header (a download link, an image, a video's src), the URL
// carries the video's content token instead: short-lived, good for that video's media only
// (POST listContentToken). Kept per video and renewed when less than 10 minutes are left.
const contentTokens = new Map();
async function contentToken(video) {
  let t = contentTokens.get(video);
  if (!t || t.expires - Date.now() < 10 * 60e3) {
    const r = await api(`/api/videos/${encodeURIComponent(video)}/listContentToken`, { method: 'POST' });
    t = { token: r.token, expires: Date.parse(r.expirationDate) };
    contentTokens.set(video, t);
  }
  return t;
}
// `url` (of `video`'s media) with its content token, when the host needs a token.
async function mediaUrl(video, url) {
  if (!token) return url;
  const t = await contentToken(video);
  return `${url}${url.includes('?') ? '&' : '?'}token=${encodeURIComponent(t.token)}`;
}

$('token-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  token = $('token').value.trim();
  $('token').value = '';
  sessionStorage.setItem('openva-token', token);
  $('token-form').hidden = true;
  start();
});
const iso = (ms) => new Date(ms).toISOString();

const state = {
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

// ---- videos and timeline ----

async function loadVideos() {
  const list = (await api('/api/videos')).value || [];
  const el = $('video-list');
  el.innerHTML = '';
  for (const v of list) {
    const div = document.createElement('div');
    div.className = 'video' + (state.video === v.name ? ' selected' : '');
    div.dataset.name = v.name;
    const f = v.properties.flags || {};
    div.innerHTML = `<span class="name"></span>`;
    div.querySelector('.name').textContent = v.name;
    if (f.isInUse) div.insertAdjacentHTML('beforeend', '<span class="flag recording">recording</span>');
    if (state.video === v.name) state.recording = !!f.isInUse;
    if (f.hasData) div.insertAdjacentHTML('beforeend', '<span class="flag">has data</span>');
    div.insertAdjacentHTML('beforeend', `<span class="flag">${v.properties.type}</span>`);
    div.onclick = () => selectVideo(v);
    el.appendChild(div);
  }
}

async function selectVideo(v) {
  if (state.video !== v.name) {
    // Another video: what played and the span chosen belonged to the last one.
    stopPlayer();
    $('player').removeAttribute('src');
    $('player').load();
    $('wallclock').textContent = '—';
    $('latency').textContent = '';
    $('cursor').style.display = 'none';
    state.span = null;
    state.spanStart = null;
    $('export').disabled = true;
    $('span-label').textContent = 'Shift+click two points of the timeline to select a span.';
  }
  state.video = v.name;
  state.videoType = v.properties.type;
  // The codecs the host recorded, for a manifest that does not name them (ours always does).
  const info = v.properties.mediaInfo || {};
  state.videoCodecs = [info.codec, info.audio && info.audio.codec].filter(Boolean).join(',');
  $('video-title').textContent = v.name;
  document.querySelectorAll('.video').forEach((d) => d.classList.toggle('selected', d.dataset.name === v.name));
  state.recording = !!(v.properties.flags || {}).isInUse;
  $('live').disabled = !state.recording;
  state.days = [];
  state.ranges = [];
  drawDays();
  drawTimeline();
  if (v.properties.type === 'File') {
    stopPlayer();
    $('player').src = await mediaUrl(v.name, v.properties.contentUrls.downloadUrl);
    return;
  }
  await refreshTimeline(true);
}

const DAY = 24 * 3600e3;
// availableMedia at full precision covers at most 25 h (AVA's limit); wider windows show the
// days that hold media (precision=day, up to 31 days).
const FULL_MAX_MS = DAY;
const WINDOW_MAX_MS = 31 * DAY;
const media = (from, to, precision) =>
  api(`/api/videos/${state.video}/availableMedia?precision=${precision}&startTime=${iso(from)}&endTime=${iso(to)}`);
const dayStart = (d) => Date.parse(`${d}T00:00:00Z`);

async function refreshTimeline(fit) {
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
async function loadWindow() {
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
  if (state.asked !== asked) return; // the window moved meanwhile; a newer load draws
  state.ranges = ranges;
  state.rangeKind = kind;
  drawTimeline();
}

function showDay(d) {
  state.windowMs = DAY;
  state.endMs = d + DAY;
  loadWindow().catch((e) => console.warn(e.message));
}

function drawDays() {
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

function xOf(ms) {
  const start = state.endMs - state.windowMs;
  return ((ms - start) / state.windowMs) * 100;
}

function timeAt(event) {
  const box = $('timeline').getBoundingClientRect();
  const frac = (event.clientX - box.left) / box.width;
  return state.endMs - state.windowMs + frac * state.windowMs;
}

function drawTimeline() {
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

// ---- the player: HLS (CMAF) by Media Source Extensions ----

// A multivariant playlist's one variant: the media playlist's URL and the codecs its buffer
// needs (video, and audio when recorded). A media playlist given directly is its own variant.
async function variantOf(url) {
  const r = await authFetch(url);
  if (!r.ok) throw new Error(`${r.status} for ${url}`);
  const lines = (await r.text()).split('\n').map((l) => l.trim());
  const inf = lines.findIndex((l) => l.startsWith('#EXT-X-STREAM-INF:'));
  if (inf < 0) return { url, codecs: null };
  const codecs = /CODECS="([^"]+)"/.exec(lines[inf]);
  const uri = lines.slice(inf + 1).find((l) => l && !l.startsWith('#'));
  return { url: new URL(uri, new URL(url, location.href)).href, codecs: codecs ? codecs[1] : null };
}

function parsePlaylist(text, base) {
  const lines = text.split('\n').map((l) => l.trim());
  const segs = [];
  let map = null, date = null, dur = 0, range = null, seq = 0, disc = false, ended = false, canBlock = false;
  for (const l of lines) {
    if (l.startsWith('#EXT-X-MEDIA-SEQUENCE:')) seq = parseInt(l.slice(22), 10);
    else if (l.startsWith('#EXT-X-SERVER-CONTROL:')) canBlock = l.includes('CAN-BLOCK-RELOAD=YES');
    else if (l.startsWith('#EXT-X-MAP:')) {
      const uri = /URI="([^"]+)"/.exec(l)[1];
      const br = /BYTERANGE="(\d+)@(\d+)"/.exec(l);
      map = { url: new URL(uri, base).href, start: +br[2], len: +br[1] };
    } else if (l.startsWith('#EXT-X-PROGRAM-DATE-TIME:')) date = Date.parse(l.slice(25));
    else if (l.startsWith('#EXTINF:')) dur = parseFloat(l.slice(8));
    else if (l.startsWith('#EXT-X-BYTERANGE:')) {
      const [len, at] = l.slice(17).split('@');
      range = { len: +len, start: +at };
    } else if (l === '#EXT-X-DISCONTINUITY') disc = true;
    else if (l === '#EXT-X-ENDLIST') ended = true;
    else if (l && !l.startsWith('#')) {
      segs.push({ seq: seq++, url: new URL(l, base).href, map, date, dur, range, disc });
      disc = false;
    }
  }
  return { segs, ended, canBlock };
}

// One byte range of a segment file. Not through the HTTP cache: a file being recorded changes
// its ETag with every fragment, and a cached part of it would make the browser send If-Range
// with the old one, which the host rightly answers with the whole file (200).
async function fetchRange(url, start, len) {
  const r = await authFetch(url, { cache: 'no-store', headers: { Range: `bytes=${start}-${start + len - 1}` } });
  if (r.status !== 206 && r.status !== 200) throw new Error(`${r.status} for ${url}`);
  const bytes = new Uint8Array(await r.arrayBuffer());
  // A 200 is the whole file (a server may ignore Range): cut the range out of it.
  return r.status === 200 ? bytes.subarray(start, start + len) : bytes;
}

function stopPlayer() {
  if (state.player) state.player.stopped = true;
  state.player = null;
  $('mute').hidden = true;
}

// Players start muted (browsers only autoplay muted media); a recording with audio can be
// unmuted here or in the player's own controls.
$('mute').addEventListener('click', () => {
  const v = $('player');
  v.muted = !v.muted;
  $('mute').textContent = v.muted ? 'Unmute' : 'Mute';
});

// Live view: how far behind the newest buffered media the playhead stays at its closest (just
// before the next fragment arrives). Fragments come whole, about a second each, the moment the
// host writes them (blocking playlist reloads), so the playhead trails the camera by about a
// fragment plus this margin.
const LIVE_MARGIN_S = 0.25;

class Player {
  constructor(manifestUrl, live, seekWall) {
    this.url = manifestUrl;
    this.live = live;
    this.seekWall = seekWall;
    this.next = 0; // next media sequence to append
    this.map = null;
    this.media = 0; // media time appended so far (sequence mode)
    this.timeline = []; // [mediaStart, wallStart, dur]
    this.stopped = false;
    this.lags = []; // live: [time, buffered end - playhead] samples of the last seconds
    this.skew = Infinity; // live: least (arrival - end of newest fragment), ms: host clock vs ours
    this.video = $('player');
    this.video.playbackRate = 1;
    this.ms = new MediaSource();
    this.video.src = URL.createObjectURL(this.ms);
    this.ms.addEventListener('sourceopen', () => this.run().catch((e) => console.warn('player:', e.message)), { once: true });
  }

  async run() {
    const variant = await variantOf(this.url);
    this.url = variant.url;
    // What the manifest names, else what the video resource says was recorded; never a guess.
    const codecs = variant.codecs || state.videoCodecs;
    const type = `video/mp4; codecs="${codecs}"`;
    if (!codecs || !MediaSource.isTypeSupported(type)) {
      // Kept on screen: the status tick below leaves a refused player's message alone.
      this.refused = codecs ? `this browser cannot play ${codecs}` : 'the host named no codec for this video';
      $('latency').textContent = this.refused;
      this.stopped = true;
      return;
    }
    // One buffer for the muxed fragments: video, and audio when the camera's is recorded.
    this.sb = this.ms.addSourceBuffer(type);
    this.sb.mode = 'sequence';
    this.hasAudio = codecs.split(',').length > 1;
    const mute = $('mute');
    mute.hidden = !this.hasAudio;
    mute.textContent = this.video.muted ? 'Unmute' : 'Mute';
    let started = false;
    let blockOn = null; // the media sequence number to wait for, when the host can block
    while (!this.stopped) {
      const url = blockOn === null ? this.url : `${this.url}${this.url.includes('?') ? '&' : '?'}_HLS_msn=${blockOn}`;
      const r = await authFetch(url);
      if (!r.ok) {
        // Not expected (the number asked for is always the next one); poll plainly a while.
        blockOn = null;
        await sleep(1000);
        continue;
      }
      const pl = parsePlaylist(await r.text(), new URL(this.url, location.href));
      const arrived = Date.now();
      for (const s of pl.segs) {
        if (this.stopped) return;
        if (s.seq < this.next) continue;
        // Keep at most ~30 s ahead of the playhead.
        while (!this.stopped && this.media - this.video.currentTime > 30) await sleep(500);
        if (!this.map || this.map.url !== s.map.url || this.map.start !== s.map.start) {
          this.appending = `map ${s.map.url} ${s.map.start}+${s.map.len}`;
          await this.append(await fetchRange(s.map.url, s.map.start, s.map.len));
          this.map = s.map;
        }
        this.appending = `${s.url} ${s.range.start}+${s.range.len}`;
        await this.append(await fetchRange(s.url, s.range.start, s.range.len));
        this.timeline.push([this.media, s.date, s.dur]);
        this.media += s.dur;
        this.next = s.seq + 1;
        if (!started && !this.live) {
          started = true;
          const first = this.timeline[0];
          // Start at the clicked wall time within the first segment(s) of the playlist.
          const at = this.seekWall ? Math.max(0, (this.seekWall - first[1]) / 1000) : 0;
          this.start(at);
        }
      }
      const last = pl.segs[pl.segs.length - 1];
      if (this.live && last) this.skew = Math.min(this.skew, arrived - (last.date + last.dur * 1000));
      if (!started && this.live && this.media > 0) {
        // Live: start just behind the newest media.
        started = true;
        this.start(Math.max(0, this.media - (this.timeline[this.timeline.length - 1][2] + LIVE_MARGIN_S)));
      }
      if (pl.ended && !this.live) {
        if (this.ms.readyState === 'open') this.ms.endOfStream();
        return;
      }
      if (pl.canBlock) {
        // Ask for the next segment: the host answers the moment it is written.
        blockOn = this.next;
      } else {
        blockOn = null;
        await sleep(1000);
      }
    }
  }

  start(at) {
    this.seekTo = at;
    this.video.currentTime = at;
    // play() may be cut short by the source change; try again once it can play.
    this.video.play().catch(() => {
      this.video.addEventListener('canplay', () => this.video.play().catch(() => {}), { once: true });
    });
  }

  // Live: keep the playhead a fragment and a margin behind the newest media. The gap to the
  // buffer's end is a sawtooth (a whole fragment arrives, then playback eats into it); its low
  // point over the last few seconds is steered to LIVE_MARGIN_S by playing slightly faster or
  // slower, and a playhead far behind (a stall, a hidden tab) jumps forward.
  steer(now) {
    const v = this.video;
    if (!v.buffered.length || v.paused) return;
    const lag = v.buffered.end(v.buffered.length - 1) - v.currentTime;
    this.lags.push([now, lag]);
    while (this.lags.length && this.lags[0][0] < now - 2500) this.lags.shift();
    const low = Math.min(...this.lags.map((l) => l[1]));
    if (lag > 4) {
      v.currentTime = v.buffered.end(v.buffered.length - 1) - 1 - LIVE_MARGIN_S;
      this.lags = [];
      v.playbackRate = 1;
    } else if (low > LIVE_MARGIN_S + 0.2) {
      v.playbackRate = 1.1;
    } else if (low < LIVE_MARGIN_S / 2) {
      v.playbackRate = 0.95;
    } else {
      v.playbackRate = 1;
    }
  }

  // Live: how far the frame on screen is behind the host's newest media, by the host's clock.
  behindMs(wall) {
    return Number.isFinite(this.skew) ? Date.now() - this.skew - wall : null;
  }

  append(bytes) {
    return new Promise((resolve, reject) => {
      this.sb.addEventListener('updateend', resolve, { once: true });
      this.sb.addEventListener('error', () => reject(new Error('append failed')), { once: true });
      this.sb.appendBuffer(bytes);
    });
  }

  // The wall-clock time of the frame on screen.
  wallAt(t) {
    for (let i = this.timeline.length - 1; i >= 0; i--) {
      const [m, w] = this.timeline[i];
      if (t >= m - 1e-3) return w + (t - m) * 1000;
    }
    return null;
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function playFrom(wallMs) {
  stopPlayer();
  const end = wallMs + 10 * 60e3;
  const url = `/api/videos/${state.video}/manifest.m3u8?startTime=${iso(wallMs)}&endTime=${iso(end)}`;
  state.player = new Player(url, false, wallMs);
  state.clicked = wallMs;
}

function playLive() {
  stopPlayer();
  // A few seconds back, so the playlist starts at a keyframe; playback starts near its end.
  const from = Date.now() - 3e3;
  state.player = new Player(`/api/videos/${state.video}/manifest.m3u8?startTime=${iso(from)}`, true, null);
}

setInterval(() => {
  const p = state.player;
  if (!p || p.refused) return;
  const w = p.wallAt($('player').currentTime);
  if (w !== null) {
    $('wallclock').textContent = iso(w);
    $('wallclock').dataset.ms = String(Math.round(w));
    const c = $('cursor');
    c.style.display = 'block';
    c.style.left = `${xOf(w)}%`;
  }
  if (p.live) {
    p.steer(performance.now());
    const behind = w === null ? null : p.behindMs(w);
    $('latency').textContent = behind === null ? '' : `live, ${(behind / 1000).toFixed(1)} s behind`;
  } else {
    $('latency').textContent = '';
  }
}, 200);

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

// ---- export as a pipeline job ----

const EXPORT_TOPOLOGY = 'openva-ui-export';

async function ensureExportTopology() {
  const body = {
    kind: 'Batch',
    properties: {
      description: 'Created by the web UI: copies a span of a video into a file video',
      parameters: [{ name: 'source', type: 'String' }, { name: 'ranges', type: 'String' }, { name: 'output', type: 'String' }],
      sources: [{ '@type': '#Microsoft.VideoAnalyzer.VideoSource', name: 'videoSource', videoName: '${source}',
        timeSequences: { '@type': '#Microsoft.VideoAnalyzer.VideoSequenceAbsoluteTimeMarkers', ranges: '${ranges}' } }],
      sinks: [{ '@type': '#Microsoft.VideoAnalyzer.VideoSink', name: 'videoSink', videoName: '${output}',
        inputs: [{ nodeName: 'videoSource' }] }],
    },
  };
  await api(`/api/pipelineTopologies/${EXPORT_TOPOLOGY}`, { method: 'PUT', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
}

$('export').onclick = async () => {
  if (!state.span) return;
  try {
    await ensureExportTopology();
    const stamp = new Date().toISOString().replace(/[-:.TZ]/g, '').slice(0, 14);
    const job = `export-${stamp}`;
    const output = `${state.video}-${stamp}`.slice(0, 32).replace(/-+$/, '');
    const ranges = JSON.stringify([[iso(state.span[0]), iso(state.span[1])]]);
    await api(`/api/pipelineJobs/${job}`, {
      method: 'PUT', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ properties: { topologyName: EXPORT_TOPOLOGY, parameters: [
        { name: 'source', value: state.video }, { name: 'ranges', value: ranges }, { name: 'output', value: output }] } }),
    });
    refreshJobs();
  } catch (e) {
    alert(`export failed: ${e.message}`);
  }
};

// Progress has no event: while a job runs (and only then) its list is refreshed every 2 s.
let jobsTimer = null;

async function refreshJobs() {
  const jobs = (await api('/api/pipelineJobs')).value || [];
  if (!jobsTimer && jobs.some((j) => j.properties.state === 'Processing')) {
    jobsTimer = setTimeout(() => {
      jobsTimer = null;
      refreshJobs().catch((e) => console.warn(e.message));
    }, 2000);
  }
  // Built aside and swapped in whole: a refresh that overlaps another never mixes their lists.
  const ul = document.createElement('ul');
  for (const j of jobs) {
    const p = j.properties;
    const li = document.createElement('li');
    li.className = `job ${p.state}`;
    li.dataset.state = p.state;
    li.textContent = `${j.name}: ${p.state} ${p.progressPercent}% `;
    if (p.state === 'Completed') {
      const a = document.createElement('a');
      const name = p.outputVideoName;
      const plain = `/api/videos/${name}/content.mp4`;
      a.href = await mediaUrl(name, plain);
      // A link older than its token gets a fresh one when clicked.
      a.addEventListener('click', (ev) => {
        const t = contentTokens.get(name);
        if (!token || (t && t.expires - Date.now() > 60e3)) return;
        ev.preventDefault();
        mediaUrl(name, plain).then((u) => { a.href = u; a.click(); }).catch((e) => console.warn(e.message));
      });
      a.textContent = `${p.outputVideoName}.mp4`;
      a.className = 'download';
      li.appendChild(a);
    } else if (p.error) {
      li.append(` (${p.error.message})`);
    }
    ul.appendChild(li);
  }
  $('jobs').replaceChildren(...ul.children);
}

// ---- pipelines and events ----

async function loadPipelines() {
  const topos = (await api('/api/pipelineTopologies')).value || [];
  $('topologies').innerHTML = '';
  for (const t of topos) {
    const li = document.createElement('li');
    li.textContent = `${t.name} (${t.kind || 'Live'})`;
    $('topologies').appendChild(li);
  }
  const pipes = (await api('/api/livePipelines')).value || [];
  $('pipelines').innerHTML = '';
  for (const p of pipes) {
    const li = document.createElement('li');
    const active = p.properties.state === 'active';
    li.textContent = `${p.name} — ${p.properties.topologyName} — ${p.properties.state} `;
    const b = document.createElement('button');
    b.textContent = active ? 'Deactivate' : 'Activate';
    b.onclick = async () => {
      try {
        await api(`/api/livePipelines/${p.name}/${active ? 'deactivate' : 'activate'}`, { method: 'POST' });
      } catch (e) {
        alert(e.message);
      }
      loadPipelines();
    };
    li.appendChild(b);
    $('pipelines').appendChild(li);
  }
}

// The page refreshes on the host's events, never on a timer (a page left open for a month
// must not poll a 31-day window every few seconds): the video list and timeline when a
// recording starts, becomes available or stops, or a video changes or loses media; the jobs
// when a job's state changes; everything when the event stream (re)connects, since events may
// have been missed meanwhile. Bursts are merged.
const pending = new Set();
let refreshTimer = null;
function refreshSoon(...what) {
  what.forEach((w) => pending.add(w));
  if (refreshTimer) return;
  refreshTimer = setTimeout(() => {
    refreshTimer = null;
    const todo = new Set(pending);
    pending.clear();
    const quiet = (p) => p.catch((e) => console.warn(e.message));
    if (todo.has('videos')) quiet(loadVideos());
    if (todo.has('timeline')) quiet(refreshTimeline(false));
    if (todo.has('jobs')) quiet(refreshJobs());
    if (todo.has('pipelines') && !$('pipelines-page').hidden) quiet(loadPipelines());
  }, 300);
}

const RECORDING_EVENTS = ['RecordingStarted', 'RecordingAvailable', 'RecordingStopped', 'VideoUpdated'];

// The event stream, read with fetch rather than EventSource so the API token goes in a header
// (EventSource cannot send one). On a break it reconnects with Last-Event-ID, so the host
// replays what was missed while it still has it, and refreshes the page's lists besides.
async function watchEvents() {
  let lastId = null;
  let opened = false;
  for (;;) {
    try {
      const r = await authFetch('/api/events', { cache: 'no-store', headers: lastId ? { 'Last-Event-ID': lastId } : {} });
      if (r.ok) {
        // The first open follows the page's own loads; a reconnection may have missed events.
        if (opened) refreshSoon('videos', 'timeline', 'jobs', 'pipelines');
        opened = true;
        const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value.replace(/\r\n?/g, '\n');
          let end;
          while ((end = buf.indexOf('\n\n')) >= 0) {
            const block = buf.slice(0, end);
            buf = buf.slice(end + 2);
            const data = [];
            for (const line of block.split('\n')) {
              if (line.startsWith('id:')) lastId = line.slice(3).trim();
              else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
            }
            if (data.length) onEvent(JSON.parse(data.join('\n')));
          }
        }
      }
    } catch (e) {
      console.warn('events:', e.message);
    }
    await sleep(2000);
  }
}

function onEvent(e) {
  const subject = e.applicationProperties.subject || '';
  const kind = (e.applicationProperties.eventType || '').split('.').pop();
  if (subject.startsWith('/pipelineJobs/')) refreshSoon('jobs');
  else if (RECORDING_EVENTS.includes(kind) || subject === '/videos' || subject.startsWith('/videos/')) refreshSoon('videos', 'timeline');
  if (subject.startsWith('/livePipelines/') && kind.startsWith('Recording')) refreshSoon('pipelines');
  const li = document.createElement('li');
  li.textContent = `${e.applicationProperties.eventTime} ${kind} ${e.applicationProperties.subject}`;
  $('events').prepend(li);
  while ($('events').children.length > 200) $('events').lastChild.remove();
}

function route() {
  if (!token && !$('token-form').hidden) return;
  const pipelines = location.hash === '#pipelines';
  $('pipelines-page').hidden = !pipelines;
  $('videos-page').hidden = pipelines;
  if (pipelines) loadPipelines();
}
window.addEventListener('hashchange', route);

let started = false;
async function start() {
  // Ask for the token up front when the host needs one (no failed request first).
  const health = await (await fetch('/healthz')).json();
  if (health.tokenRequired && !token) {
    $('token-form').hidden = false;
    return;
  }
  try {
    await loadVideos();
  } catch (e) {
    if (e instanceof Unauthorized) return; // the token form is shown; it calls start again
    throw e;
  }
  if (started) return;
  started = true;
  route();
  watchEvents().catch((e) => console.warn(e.message));
  await refreshJobs();
}
start().catch((e) => console.warn(e.message));
