// The player: the host's HLS (CMAF) parsed here and fed to Media Source Extensions (fMP4 byte
// ranges, no third-party player), for recorded ranges and live view; and the wall clock of the
// frame on screen.

import { $, authFetch, iso, sleep } from './api.js';
import { state } from './state.js';
import { xOf } from './timeline.js';
import { drawBoxes } from './boxes.js';

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

// A playlist URL asking the host for its H.264 transcode (`docs/decode.md`): at most `height`
// lines high, or the recording's size when null.
function withVariant(url, height) {
  const u = new URL(url, location.href);
  u.searchParams.set('codec', 'h264');
  if (height) u.searchParams.set('height', String(height));
  return u.href;
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
      // Without a byte range the map is a whole resource (a transcoded variant's).
      map = { url: new URL(uri, base).href, start: br ? +br[2] : 0, len: br ? +br[1] : null };
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

// One byte range of a segment file (or, with `len` null, a whole resource: a transcoded
// segment). Not through the HTTP cache: a file being recorded changes its ETag with every
// fragment, and a cached part of it would make the browser send If-Range with the old one,
// which the host rightly answers with the whole file (200). A host busy transcoding answers
// 503 with Retry-After: asked again after that, a few times.
async function fetchRange(url, start, len) {
  const headers = len === null ? {} : { Range: `bytes=${start}-${start + len - 1}` };
  let r;
  for (let attempt = 0; ; attempt++) {
    r = await authFetch(url, { cache: 'no-store', headers });
    if (r.status !== 503 || attempt >= 20) break;
    await sleep(1000 * Math.min(5, Math.max(1, +(r.headers.get('Retry-After') || 1))));
  }
  if (r.status !== 206 && r.status !== 200) throw new Error(`${r.status} for ${url}`);
  if (len === null) return new Uint8Array(await r.arrayBuffer());
  const bytes = new Uint8Array(await r.arrayBuffer());
  // A 200 is the whole file (a server may ignore Range): cut the range out of it.
  return r.status === 200 ? bytes.subarray(start, start + len) : bytes;
}

// The quality control: original, or the host's H.264 transcode at a height. A change restarts
// the player where it is (live stays live).
$('quality').addEventListener('change', () => {
  state.quality = $('quality').value;
  const p = state.player;
  if (!p) return;
  if (p.live) {
    playLive();
  } else {
    const w = p.wallAt($('player').currentTime);
    if (w !== null) playFrom(w);
  }
});

export function stopPlayer() {
  if (state.player) {
    state.player.stopped = true;
    state.player.unfollow();
  }
  state.player = null;
  drawBoxes(null);
  $('mute').hidden = true;
  $('variant').textContent = '';
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
    this.followFrames();
  }

  // Recorded boxes follow the frames presented (each frame's own media time); a paused or
  // seeked player shows those of the frame it stopped on.
  followFrames() {
    const v = this.video;
    const frame = (now, meta) => {
      if (this.stopped) return;
      drawBoxes(this.wallAt(meta.mediaTime));
      v.requestVideoFrameCallback(frame);
    };
    if ('requestVideoFrameCallback' in v) v.requestVideoFrameCallback(frame);
    const still = () => { if (!this.stopped) drawBoxes(this.wallAt(v.currentTime)); };
    for (const e of ['pause', 'seeked']) v.addEventListener(e, still);
    this.unfollow = () => { for (const e of ['pause', 'seeked']) v.removeEventListener(e, still); };
  }

  async run() {
    // A quality chosen below the original asks for the host's transcode at that height.
    const quality = state.quality ? +state.quality : null;
    let variant = await variantOf(quality ? withVariant(this.url, quality) : this.url);
    // What the manifest names, else what the video resource says was recorded; never a guess.
    let codecs = variant.codecs || state.videoCodecs;
    let type = `video/mp4; codecs="${codecs}"`;
    let note = quality ? `H.264 ${quality}p (transcoded)` : '';
    if (!quality && codecs && !MediaSource.isTypeSupported(type)) {
      // This browser cannot play what was recorded (H.265 without a hardware decoder): the
      // host transcodes it to H.264 at its own size.
      note = `H.264 (transcoded: this browser cannot play ${codecs.split(',')[0]})`;
      variant = await variantOf(withVariant(this.url, null));
      codecs = variant.codecs;
      type = `video/mp4; codecs="${codecs}"`;
    }
    this.url = variant.url;
    $('variant').textContent = note;
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
        const range = s.range || { start: 0, len: null };
        this.appending = `${s.url} ${range.start}+${range.len}`;
        await this.append(await fetchRange(s.url, range.start, range.len));
        this.timeline.push([this.media, s.date, s.dur]);
        this.media += s.dur;
        this.next = s.seq + 1;
        if (!started && !this.live) {
          const first = this.timeline[0];
          // Start at the clicked wall time within the first segment(s) of the playlist (a
          // camera with a long GOP puts it several segments in), once media reaches it: a seek
          // past what is buffered would be cut to the buffer's end.
          const at = this.seekWall ? Math.max(0, (this.seekWall - first[1]) / 1000) : 0;
          if (this.media > at + 0.1 || this.next >= pl.segs[pl.segs.length - 1].seq + 1) {
            started = true;
            this.start(at);
          }
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


export function playFrom(wallMs) {
  stopPlayer();
  const end = wallMs + 10 * 60e3;
  const url = `/api/videos/${state.video}/manifest.m3u8?startTime=${iso(wallMs)}&endTime=${iso(end)}`;
  state.player = new Player(url, false, wallMs);
  state.clicked = wallMs;
}

export function playLive() {
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
    // Browsers without per-frame callbacks get the boxes at this tick's pace.
    if (!('requestVideoFrameCallback' in HTMLVideoElement.prototype)) drawBoxes(w);
  }
  if (p.live) {
    p.steer(performance.now());
    const behind = w === null ? null : p.behindMs(w);
    $('latency').textContent = behind === null ? '' : `live, ${(behind / 1000).toFixed(1)} s behind`;
  } else {
    $('latency').textContent = '';
  }
}, 200);
