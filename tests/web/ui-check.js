// Drives openva's web UI in Debian's Chromium (playwright-core, no downloaded browser) and
// prints what it saw as one JSON line; tests/tests/web_ui.rs makes the assertions.
// Usage: node ui-check.js BASE_URL VIDEO CLICK_MS SCREENSHOT_DIR HISTORY_VIDEO
'use strict';
const { exposeUi, launchChromium, playerState, playing, readStamp } = require('./ui-handles');

const [base, video, clickArg, shots, history] = process.argv.slice(2);
let page;
const clickMs = Number(clickArg);

(async () => {
  const out = { consoleErrors: [] };
  const browser = await launchChromium();
  try {
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on('console', (m) => { if (m.type() === 'error') out.consoleErrors.push(m.text()); });
    page.on('pageerror', (e) => out.consoleErrors.push(String(e)));
    await page.goto(`${base}/`);
    await exposeUi(page);
    const token = process.env.OPENVA_UI_TOKEN;
    // The API token goes in headers only: no URL the page asks for carries it.
    out.tokenInUrls = [];
    if (token) page.on('request', (r) => { if (r.url().includes(encodeURIComponent(token))) out.tokenInUrls.push(r.url()); });
    if (token) {
      // The host is beyond loopback: the page asks for its token before anything else.
      await page.waitForSelector('#token-form:not([hidden])');
      await page.fill('#token', token);
      await page.click('#save-token');
    }
    await page.click(`.video[data-name="${video}"]`);
    await page.waitForSelector('#ranges .range');
    await page.waitForTimeout(300);
    out.ranges = await page.$$eval('#ranges .range', (els) => els.map((e) => [e.dataset.start, e.dataset.end]));
    await page.screenshot({ path: `${shots}/timeline.png` });
    // The page refreshes on events, never on a timer: idle, it asks the host nothing.
    let polled = 0;
    const count = (r) => { if (/\/api\/(videos|pipelineJobs|livePipelines)/.test(r.url())) polled++; };
    page.on('request', count);
    await page.waitForTimeout(7000);
    page.off('request', count);
    out.idleRequests = polled;
    out.rangesAfterIdle = await page.$$eval('#ranges .range', (els) => els.map((e) => [e.dataset.start, e.dataset.end]));

    // Click the timeline at the asked wall time.
    const x = await page.evaluate((ms) => xOf(ms), clickMs);
    const box = await page.locator('#timeline').boundingBox();
    // Resting the pointer there shows a thumbnail of that moment.
    await page.mouse.move(box.x + (box.width * x) / 100, box.y + box.height / 2);
    await page.waitForFunction(() => { const i = document.getElementById('thumb'); return !i.hidden && i.complete && i.naturalWidth > 0; });
    out.thumb = await page.$eval('#thumb', (i) => ({ width: i.naturalWidth, height: i.naturalHeight, time: i.dataset.time }));
    await page.screenshot({ path: `${shots}/thumbnail.png` });
    await page.mouse.click(box.x + (box.width * x) / 100, box.y + box.height / 2);
    out.clickedAt = await page.evaluate(() => state.clicked);
    out.play = await playing(page);
    // Evaluate the stamp reader and the displayed clock at the same moment.
    out.shown = await page.evaluate(`(() => { const readStamp = ${readStamp.toString()};
      return { wall: Number(document.getElementById('wallclock').dataset.ms), stamp: readStamp() }; })()`);
    await page.screenshot({ path: `${shots}/playing.png` });

    // Live.
    await page.click('#live');
    try {
      out.live = await playing(page);
    } catch (e) {
      // Once more, keeping what the first attempt saw (for diagnosis).
      out.liveRetry = await page.evaluate(() => {
        const v = document.getElementById('player');
        const p = state.player;
        return { readyState: v.readyState, currentTime: v.currentTime, paused: v.paused, media: p && p.media, next: p && p.next };
      });
      await page.click('#live');
      out.live = await playing(page);
    }
    out.liveShown = await page.evaluate(`(() => { const readStamp = ${readStamp.toString()};
      return { wall: Number(document.getElementById('wallclock').dataset.ms), stamp: readStamp(), now: Date.now() }; })()`);
    // Glass-to-glass: once the player has settled at the live edge, the capture stamp of the
    // frame on screen against this machine's clock (the simulated camera runs on it too).
    await page.waitForTimeout(4000);
    out.glassToGlass = [];
    for (let i = 0; i < 20; i++) {
      out.glassToGlass.push(await page.evaluate(`(() => { const readStamp = ${readStamp.toString()};
        return Date.now() - readStamp(); })()`));
      await page.waitForTimeout(250);
    }
    out.liveLabel = await page.$eval('#latency', (e) => e.textContent);
    await page.screenshot({ path: `${shots}/live.png` });

    // Export a span: shift+click two points inside the first range.
    const [s, e] = out.ranges[0].map((t) => Date.parse(t));
    for (const t of [s + (e - s) * 0.3, s + (e - s) * 0.6]) {
      const xx = await page.evaluate((ms) => xOf(ms), t);
      await page.keyboard.down('Shift');
      await page.mouse.click(box.x + (box.width * xx) / 100, box.y + box.height / 2);
      await page.keyboard.up('Shift');
    }
    await page.click('#export');
    await page.waitForSelector('.job[data-state="Completed"] a.download', { timeout: 60000 });
    out.download = await page.$eval('.job[data-state="Completed"] a.download', (a) => a.href);
    await page.screenshot({ path: `${shots}/export.png` });

    // A video with days of history: the day bar, one day exactly, then whole days.
    out.history = {};
    await page.click(`.video[data-name="${history}"]`);
    await page.waitForSelector('#days .day');
    out.history.days = await page.$$eval('#days .day', (els) => els.map((e) => e.dataset.day));
    await page.click('#days .day');
    // Until the day's own ranges are loaded, those of the window before are still drawn.
    await page.waitForFunction(() => state.rangeKind === 'full' && state.windowMs === 24 * 3600e3 && state.ranges.length > 0
      && state.ranges.every(([s, e]) => e > state.endMs - state.windowMs && s < state.endMs));
    out.history.dayRanges = await page.$$eval('#ranges .range', (els) => els.map((e) => [e.dataset.start, e.dataset.end]));
    await page.click('#zoom-out');
    await page.waitForSelector('#ranges .range.day');
    out.history.dayBlocks = await page.$$eval('#ranges .range.day', (els) => els.length);
    out.history.label = await page.$eval('#window-label', (e) => e.textContent);
    await page.screenshot({ path: `${shots}/days.png` });
    await page.click('#zoom-in');
    await page.waitForFunction(() => state.rangeKind === 'full' && state.ranges.length > 0);
    // Play from the middle of the day's recording.
    const [hs, he] = await page.evaluate(() => state.ranges[0]);
    const hx = await page.evaluate((ms) => xOf(ms), (hs + he) / 2);
    const tbox = await page.locator('#timeline').boundingBox();
    await page.mouse.click(tbox.x + (tbox.width * hx) / 100, tbox.y + tbox.height / 2);
    out.history.play = await playing(page);

    // Pipelines page.
    await page.click('#nav-pipelines');
    await page.waitForSelector('#pipelines li');
    out.pipelines = await page.$$eval('#pipelines li', (els) => els.map((e) => e.textContent));
    await page.waitForSelector('#events li');
    out.events = await page.$$eval('#events li', (els) => els.length);
    await page.screenshot({ path: `${shots}/pipelines.png` });
    // Shown: the page's text (links to downloads carry it in their address, as documented).
    out.tokenShown = token ? (await page.evaluate(() => document.body.innerText)).includes(token) : false;
  } catch (e) {
    out.failure = String(e);
    try {
      out.player = await playerState(page);
      await page.screenshot({ path: `${shots}/failure.png` });
    } catch (_) { /* the page is gone */ }
  } finally {
    await browser.close();
  }
  console.log(JSON.stringify(out));
})();
