// openva's web UI: videos with a timeline of what was recorded, a player of the host's HLS,
// live view, export of a span as a pipeline job, and the pipelines and events. This module
// holds the video list, the event stream and the page's start; the rest is in its siblings
// (ES modules, no build step): api, state, timeline, player, jobs, pipelines.

import { $, Unauthorized, api, authFetch, hasToken, mediaUrl, setToken, sleep } from './api.js';
import { refreshJobs } from './jobs.js';
import { loadPipelines } from './pipelines.js';
import { stopPlayer } from './player.js';
import { state } from './state.js';
import { drawDays, drawTimeline, refreshTimeline } from './timeline.js';

$('token-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  setToken($('token').value.trim());
  $('token').value = '';
  $('token-form').hidden = true;
  start();
});

// ---- videos ----

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
  if (!hasToken() && !$('token-form').hidden) return;
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
  if (health.tokenRequired && !hasToken()) {
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
