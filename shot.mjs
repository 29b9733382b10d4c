import puppeteer from 'puppeteer-core';
const url = process.argv[2]; const view = process.argv[3] ?? 'live';
const browser = await puppeteer.launch({ executablePath: '/usr/bin/chromium', headless: true, userDataDir: '/tmp/chr-shot-' + process.pid,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
const page = await browser.newPage();
page.on('console', (m) => console.log('console:', m.text()));
page.on('pageerror', (e) => console.log('pageerror:', e.message));
await page.setViewport({ width: 1500, height: 1100 });
await page.goto(url + '#' + view);
await page.waitForSelector('body[data-ready]');
await new Promise((r) => setTimeout(r, 1500));
if (view === 'live') {
  await page.click('#op-transfer button');
  await new Promise((r) => setTimeout(r, 1500));
  console.log(await page.$eval('#outcomes', (e) => e.innerText));
  console.log(await page.$$eval('.chart-card', (cs) => cs.map((c) => c.dataset.machine + ': ' + (c.dataset.history ?? ''))));
}
await page.screenshot({ path: `/tmp/shots/${view}.png`, fullPage: false });
await browser.close();
