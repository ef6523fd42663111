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

module.exports = { exposeUi, launchChromium };
