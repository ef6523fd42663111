// What the UI checks share: launching Chromium, and reaching the page's modules.
// The web UI is ES modules: nothing of it is a page global. The checks reach its state and
// player the way the page's own modules do, by importing them (a module is one instance per
// URL, so these are the page's), and name them on `window` for the evaluated snippets.
'use strict';
const { chromium } = require('playwright-core');

// Debian's Chromium, headless, as every check runs it: no sandbox (CI runs as root), no GPU,
// nothing fetched from the network, media allowed to autoplay.
function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required'],
  });
}

async function exposeUi(page) {
  await page.evaluate(async () => {
    const [s, p, t] = await Promise.all([import('/ui/state.js'), import('/ui/player.js'), import('/ui/timeline.js')]);
    Object.assign(window, { state: s.state, playFrom: p.playFrom, stopPlayer: p.stopPlayer, xOf: t.xOf });
  });
}

// The simulated camera's frame stamp from the picture on screen: 48 cells across the top 32
// rows, white = 1 (host/src/ingest/sim/painter.rs).
const readStamp = () => {
  const v = document.getElementById('player');
  const c = document.createElement('canvas');
  c.width = v.videoWidth;
  c.height = 32;
  const g = c.getContext('2d');
  g.drawImage(v, 0, 0, v.videoWidth, 32, 0, 0, v.videoWidth, 32);
  const cell = Math.floor(v.videoWidth / 48);
  const px = g.getImageData(0, 0, v.videoWidth, 32).data;
  let t = 0;
  for (let i = 0; i < 48; i++) {
    const x = i * cell + Math.floor(cell / 2);
    const o = (16 * v.videoWidth + x) * 4;
    t = t * 2 + (px[o] > 125 ? 1 : 0);
  }
  return t;
};

async function playing(page) {
  await page.waitForFunction(() => {
    const v = document.getElementById('player');
    return v.readyState >= 3 && v.currentTime > 0.2 && !v.paused;
  }, null, { timeout: 30000 });
  // The wall clock the page shows for the first frames played (the frame at the start of
  // playback: its wall time minus how far playback has moved since).
  const first = await page.evaluate(() => {
    const v = document.getElementById('player');
    // What the clock shows (the page's own mapping), moved back to where playback began.
    return state.player.wallAt(v.currentTime) - (v.currentTime - (state.player.seekTo || 0)) * 1000;
  });
  // Advancing: half a second of media played, however slowly a loaded machine decodes.
  const t0 = await page.evaluate(() => document.getElementById('player').currentTime);
  await page.waitForFunction((from) => document.getElementById('player').currentTime >= from + 0.5, t0, { timeout: 30000 });
  const t1 = await page.evaluate(() => document.getElementById('player').currentTime);
  return { readyState: await page.evaluate(() => document.getElementById('player').readyState), advanced: t1 - t0, startWall: first };
}

// The player's state, for the diagnosis of a failed check.
function playerState(page) {
  return page.evaluate(() => {
    const v = document.getElementById('player');
    const p = state.player;
    return { readyState: v.readyState, currentTime: v.currentTime, paused: v.paused, error: v.error && v.error.message,
      buffered: v.buffered.length ? [v.buffered.start(0), v.buffered.end(v.buffered.length - 1)] : [],
      url: p && p.url, media: p && p.media, next: p && p.next, live: p && p.live, appending: p && p.appending,
      refused: p && p.refused, latency: document.getElementById('latency').textContent };
  });
}

module.exports = { exposeUi, launchChromium, playerState, playing, readStamp };
