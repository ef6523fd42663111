// Plays an H.265 recording in Debian's Chromium, which has no HEVC in Media Source Extensions:
// the player must pick the host's H.264 transcode by itself, play it with the clock right, seek,
// and switch to a lower quality. Prints what it saw as one JSON line; tests/tests/variants.rs
// makes the assertions.
// With MP4_URL (a transcoded content.mp4, every fragment cached), a plain <video> also plays
// that file: its length known at once, time advancing, and a seek near its end landing there.
// Usage: node variant-check.js BASE_URL VIDEO CLICK_MS SEEK_MS SCREENSHOT_DIR [MP4_URL]
'use strict';
const { exposeUi, launchChromium, playerState, playing, readStamp } = require('./ui-handles');

const [base, video, clickArg, seekArg, shots, mp4Url] = process.argv.slice(2);

// The clock shown and the stamp in the picture, read at the same moment.
const shownNow = (page) => page.evaluate(`(() => { const readStamp = ${readStamp.toString()};
  const v = document.getElementById('player');
  return { wall: Number(document.getElementById('wallclock').dataset.ms), stamp: readStamp(),
           width: v.videoWidth, height: v.videoHeight }; })()`);

async function clickAt(page, ms) {
  const x = await page.evaluate((t) => xOf(t), ms);
  const box = await page.locator('#timeline').boundingBox();
  await page.mouse.click(box.x + (box.width * x) / 100, box.y + box.height / 2);
}

(async () => {
  const out = { consoleErrors: [], requests: [], mp4Replies: [] };
  const browser = await launchChromium();
  let page;
  try {
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on('console', (m) => { if (m.type() === 'error') out.consoleErrors.push(m.text()); });
    page.on('pageerror', (e) => out.consoleErrors.push(String(e)));
    page.on('request', (r) => { if (r.url().includes('/api/videos/')) out.requests.push(r.url()); });
    // How the plain <video> was answered: a player seeks in a file only if it was offered byte
    // ranges (Chromium takes a file without them as a stream, seekable only at 0).
    page.on('response', (r) => {
      if (!r.url().includes('/content.mp4')) return;
      const h = r.headers();
      out.mp4Replies.push({ status: r.status(), range: r.request().headers().range || null,
        acceptRanges: h['accept-ranges'] || null, contentRange: h['content-range'] || null,
        actual: [h['openva-actual-start'], h['openva-actual-end'], h['openva-gaps']], etag: h.etag || null });
    });
    await page.goto(`${base}/`);
    await exposeUi(page);
    out.hevcInMse = await page.evaluate(() => MediaSource.isTypeSupported('video/mp4; codecs="hvc1.1.6.L93.B0"'));
    await page.click(`.video[data-name="${video}"]`);
    await page.waitForSelector('#ranges .range');
    await page.waitForTimeout(300);

    await clickAt(page, Number(clickArg));
    out.play = await playing(page);
    out.note = await page.$eval('#variant', (e) => e.textContent);
    out.shown = await shownNow(page);
    await page.screenshot({ path: `${shots}/variant-playing.png` });

    // Seek: a click elsewhere plays from there (a transcode from the keyframe before it).
    await clickAt(page, Number(seekArg));
    out.seekClicked = await page.evaluate(() => state.clicked);
    out.seek = await playing(page);
    out.seekShown = await shownNow(page);

    // A lower quality: the same place at 180 lines.
    await page.selectOption('#quality', '360');
    await page.waitForFunction(() => document.getElementById('player').videoHeight > 0
      && document.getElementById('variant').textContent.includes('360p'), null, { timeout: 30000 });
    out.low = await playing(page);
    out.lowNote = await page.$eval('#variant', (e) => e.textContent);
    out.lowShown = await shownNow(page);
    await page.screenshot({ path: `${shots}/variant-360.png` });

    // Live view, still at 360p: the live edge, transcoded as it is recorded.
    await page.click('#live');
    out.live = await playing(page);
    out.liveNote = await page.$eval('#variant', (e) => e.textContent);
    out.liveShown = await shownNow(page);
    out.liveAt = await page.evaluate(() => Date.now());

    if (mp4Url) {
      await page.goto(`${base}/`);
      out.mp4 = await page.evaluate(async (url) => {
        const v = document.createElement('video');
        v.muted = true;
        document.body.prepend(v);
        const once = (ev) => new Promise((ok, no) => {
          v.addEventListener(ev, ok, { once: true });
          v.addEventListener('error', () => no(new Error(`video error ${v.error && v.error.code}`)), { once: true });
        });
        // Fetched whole first, so every fragment is cached (the range may name other frames
        // than the test's own fetch did: variants.rs) and the <video> is offered byte ranges.
        const whole = new DataView(await (await fetch(url)).arrayBuffer());
        // The duration the file declares (its moov's mvhd), for comparing with Chromium's.
        const box = (from, to, type) => {
          for (let at = from; at + 8 <= to;) {
            const size = whole.getUint32(at);
            const name = String.fromCharCode(...[4, 5, 6, 7].map((i) => whole.getUint8(at + i)));
            if (name === type) return [at + 8, at + size];
            if (size < 8) return null;
            at += size;
          }
          return null;
        };
        const moov = box(0, whole.byteLength, 'moov');
        const mvhd = moov && box(moov[0], moov[1], 'mvhd');
        const declared = mvhd && (whole.getUint8(mvhd[0]) === 1
          ? Number(whole.getBigUint64(mvhd[0] + 24)) / whole.getUint32(mvhd[0] + 20)
          : whole.getUint32(mvhd[0] + 16) / whole.getUint32(mvhd[0] + 12));
        const loaded = once('loadedmetadata');
        v.src = url;
        await loaded;
        const r = { duration: v.duration, declared, width: v.videoWidth, height: v.videoHeight };
        await v.play();
        const t0 = v.currentTime;
        // The simulator's stamp in the picture shown (drawn at the camera's 960×540, where
        // the stamp's cells are), with the element's time at that moment.
        const shown = () => {
          const c = document.createElement('canvas');
          c.width = 960;
          c.height = 540;
          const g = c.getContext('2d');
          g.drawImage(v, 0, 0, 960, 540);
          const px = g.getImageData(0, 16, 960, 1).data;
          let stamp = 0;
          for (let i = 0; i < 48; i++) stamp = stamp * 2 + (px[(i * 20 + 10) * 4] > 125 ? 1 : 0);
          return { stamp, at: v.currentTime };
        };
        await new Promise((ok) => setTimeout(ok, 1500));
        r.advanced = v.currentTime - t0;
        r.before = shown();
        const seeked = once('seeked');
        v.currentTime = v.duration - 1;
        await seeked;
        r.seekedTo = v.currentTime;
        await new Promise((ok) => setTimeout(ok, 300));
        r.afterSeek = v.currentTime;
        r.after = shown();
        return r;
      }, mp4Url);
    }
  } catch (e) {
    out.failure = String(e);
    try {
      out.player = await playerState(page);
      await page.screenshot({ path: `${shots}/variant-failure.png` });
    } catch (_) { /* the page is gone */ }
  } finally {
    await browser.close();
  }
  console.log(JSON.stringify(out));
})();
