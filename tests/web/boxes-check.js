// Plays a recording with inferences in openva's web UI (Debian's Chromium, playwright-core),
// pauses on several frames and prints, for each, the boxes the page drew over the picture
// beside where the moving marker really is in that picture (read from its pixels), as one JSON
// line; tests/tests/extensions.rs makes the assertions.
// Usage: node boxes-check.js BASE_URL VIDEO FROM_MS SCREENSHOT_DIR
'use strict';
const { exposeUi, launchChromium } = require('./ui-handles');

const [base, video, fromArg, shots] = process.argv.slice(2);

// The horizontal extent of marker 7 in the frame on screen: tests/servers/marker_camera.py
// draws it 80 px tall from y = 200 on a white picture, with a black border; row 206 crosses the
// border's top edge, dark from the marker's left to its right.
const markerSpan = () => {
  const v = document.getElementById('player');
  const c = document.createElement('canvas');
  c.width = v.videoWidth;
  c.height = v.videoHeight;
  const g = c.getContext('2d');
  g.drawImage(v, 0, 0);
  const row = g.getImageData(0, 206, v.videoWidth, 1).data;
  let first = -1, last = -1;
  for (let x = 0; x < v.videoWidth; x++) {
    const o = x * 4;
    if (row[o] + row[o + 1] + row[o + 2] < 3 * 100) {
      if (first < 0) first = x;
      last = x;
    }
  }
  return { width: v.videoWidth, height: v.videoHeight, first, last };
};

(async () => {
  const out = { consoleErrors: [], frames: [] };
  const browser = await launchChromium();
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    page.on('console', (m) => { if (m.type() === 'error') out.consoleErrors.push(m.text()); });
    page.on('pageerror', (e) => out.consoleErrors.push(String(e)));
    await page.goto(`${base}/`);
    await exposeUi(page);
    await page.click(`.video[data-name="${video}"]`);
    await page.waitForSelector('#ranges .range');
    // The timeline marks the minutes with inferences.
    await page.waitForSelector('#marks .mark', { timeout: 10000 }).catch(() => {});
    out.marks = await page.$$eval('#marks .mark', (els) => els.length);
    await page.evaluate((ms) => playFrom(ms), Number(fromArg));
    await page.waitForFunction(() => {
      const v = document.getElementById('player');
      return v.readyState >= 3 && v.currentTime > 0.2 && !v.paused;
    }, null, { timeout: 30000 });
    for (let i = 0; i < 6; i++) {
      await page.waitForTimeout(700);
      await page.evaluate(() => document.getElementById('player').pause());
      // The paused frame's boxes: drawn on 'pause' and 'seeked', and the rows may still be on
      // their way for the first minute.
      await page.waitForFunction(() => state.boxes.shown.length > 0, null, { timeout: 5000 }).catch(() => {});
      await page.waitForTimeout(200);
      const seen = await page.evaluate(() => {
        const v = document.getElementById('player');
        return { wall: state.player.wallAt(v.currentTime), at: state.boxes.at, shown: state.boxes.shown };
      });
      seen.marker = await page.evaluate(markerSpan);
      out.frames.push(seen);
      if (i === 2) await page.screenshot({ path: `${shots}/boxes.png` });
      await page.evaluate(() => document.getElementById('player').play());
    }
  } catch (e) {
    out.failure = String(e && e.stack ? e.stack : e);
  } finally {
    await browser.close();
  }
  console.log(JSON.stringify(out));
})();
