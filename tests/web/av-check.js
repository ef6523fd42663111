// Plays recordings of real camera shapes in openva's web player, in Debian's Chromium
// (playwright-core), and prints what it saw as one JSON line; tests/tests/web_av.rs asserts.
// Usage: node av-check.js BASE_URL VIDEO=START_MS [VIDEO=START_MS …]
// For each video: the codecs the page opened its buffer with, whether the browser said it
// cannot play them, how far playback advanced, and how much audio Chromium decoded.
'use strict';
const { exposeUi, launchChromium } = require('./ui-handles');

const [base, ...videos] = process.argv.slice(2);

(async () => {
  const out = { consoleErrors: [], videos: {} };
  const browser = await launchChromium();
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on('console', (m) => { if (m.type() === 'error') out.consoleErrors.push(m.text()); });
    page.on('pageerror', (e) => out.consoleErrors.push(String(e)));
    await page.goto(base);
    await exposeUi(page);
    out.mse = await page.evaluate(() => ({
      aac: MediaSource.isTypeSupported('audio/mp4; codecs="mp4a.40.2"'),
      flac: MediaSource.isTypeSupported('audio/mp4; codecs="flac"'),
      hevc: MediaSource.isTypeSupported('video/mp4; codecs="hvc1.1.6.L93.B0"'),
    }));
    for (const arg of videos) {
      const [name, startMs] = arg.split('=');
      // Play from the start of the recording, as a click on the timeline does.
      await page.evaluate(([n, s]) => { stopPlayer(); state.video = n; playFrom(Number(s)); }, [name, startMs]);
      const seen = { name };
      try {
        await page.waitForFunction(() => {
          const v = document.getElementById('player');
          const refused = document.getElementById('latency').textContent.includes('cannot play');
          return refused || (state.player && state.player.sb && v.readyState >= 3 && v.currentTime > 0.2);
        }, null, { timeout: 30000 });
        seen.refused = await page.evaluate(() => document.getElementById('latency').textContent);
        if (!seen.refused.includes('cannot play')) {
          // Unmute (as a user would with the button) so Chromium decodes the audio for output.
          seen.muteShown = await page.evaluate(() => !document.getElementById('mute').hidden);
          await page.evaluate(() => {
            if (!document.getElementById('mute').hidden && document.getElementById('player').muted) document.getElementById('mute').click();
          });
          const t0 = await page.evaluate(() => document.getElementById('player').currentTime);
          await page.waitForFunction((from) => document.getElementById('player').currentTime >= from + 1.5, t0, { timeout: 30000 });
          seen.advanced = (await page.evaluate(() => document.getElementById('player').currentTime)) - t0;
          seen.audioBytes = await page.evaluate(() => document.getElementById('player').webkitAudioDecodedByteCount);
          seen.videoBytes = await page.evaluate(() => document.getElementById('player').webkitVideoDecodedByteCount);
          seen.muted = await page.evaluate(() => document.getElementById('player').muted);
          // What the player says of the stream: set when it plays the host's transcode.
          seen.note = await page.evaluate(() => document.getElementById('variant').textContent);
        }
      } catch (e) {
        seen.failure = String(e);
      }
      out.videos[name] = seen;
    }
  } catch (e) {
    out.failure = String(e && e.stack || e);
  } finally {
    await browser.close();
  }
  console.log(JSON.stringify(out));
})();
