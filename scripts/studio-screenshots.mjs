// Takes README's screenshots of the studio, as the page is: run after
// `npm run build`, it writes docs/studio/*.png.
//   node scripts/studio-screenshots.mjs
// It records the official file's set 3 (run --set 3 --data-dir), starts a
// studio with its own local cluster, drives Debian's Chromium headless, and
// stops every process it started by its pid.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import puppeteer from 'puppeteer-core';

const OUT = 'docs/studio';
const MAIN = 'dist/cli/main.js';
const BASE = Number(process.env.STUDIO_SHOT_PORT ?? 27600);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function startStudio(args) {
  const child = spawn(process.execPath, [MAIN, 'studio', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const m = /studio: (http:\/\/\S+)/.exec(out);
      if (m) resolve({ url: m[1], child });
    });
    child.once('exit', (code) => reject(new Error(`studio exited with ${code}`)));
  });
}

async function stop(child) {
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  process.kill(child.pid, 'SIGTERM');
  await exited;
}

const dir = mkdtempSync(join(tmpdir(), 'shardbank-shots-'));
mkdirSync(OUT, { recursive: true });
const set3 = join(dir, 'set3');
const run = spawnSync(process.execPath, [MAIN, 'run', 'testcases/gayathrigaddam00-CSE535-F25-Project-3-Testcases.csv', '--set', '3', '--data-dir', set3, '--base-port', String(BASE + 20), '--yes'], { stdio: 'ignore' });
if (run.status !== 0) throw new Error('run --set 3 failed');
const roles = spawnSync(process.execPath, [MAIN, 'replay', join(set3, 'n8'), '--type', 'role', '--json'], { encoding: 'utf8' })
  .stdout.trim()
  .split('\n')
  .map((l) => JSON.parse(l));
const campaign = roles.find((r) => r.event.role.role === 'candidate').index;

const studio = await startStudio(['--port', String(BASE), '--base-port', String(BASE + 1)]);
const profile = mkdtempSync(join(tmpdir(), 'shardbank-shots-chromium-'));
const browser = await puppeteer.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  userDataDir: profile,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1500, height: 1000, deviceScaleFactor: 1 });
  await page.goto(`${studio.url}#live`);
  await page.waitForSelector('body[data-ready]');
  await page.waitForFunction(() => document.querySelector('.node-col[data-node="n1"] .role')?.textContent === 'leader');

  // The cluster view: every node streamed, a light cross-shard load from the page's bench.
  await page.select('#watch-mode', 'all');
  await page.evaluate(() => fetch('/api/bench/start', { method: 'POST', body: JSON.stringify({ preset: 'cross20', clients: 4, duration: 6 }) }));
  await sleep(3500);
  await page.screenshot({ path: `${OUT}/cluster.png`, clip: { x: 0, y: 0, width: 1500, height: 560 } });
  await page.waitForFunction(() => !document.querySelector('#bench-output').hidden, { timeout: 60_000 });

  // n1's charts during cross-shard transfers: every transfer crosses clusters, n1 coordinates some and takes part in others.
  await page.select('#watch-mode', 'one');
  await page.evaluate(() => fetch('/api/bench/start', { method: 'POST', body: JSON.stringify({ preset: 'cross100', clients: 32, duration: 8 }) }));
  await sleep(4500);
  const top = await page.$eval('#node-title', (e) => e.getBoundingClientRect().top + window.scrollY);
  await page.evaluate((y) => window.scrollTo(0, y - 8), top);
  await page.setViewport({ width: 1500, height: 1500, deviceScaleFactor: 1 });
  await sleep(300);
  await page.screenshot({ path: `${OUT}/live-charts.png` });
  await page.setViewport({ width: 1500, height: 1000, deviceScaleFactor: 1 });
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.waitForFunction(() => !document.querySelector('#bench-output').hidden, { timeout: 60_000 });

  // Replay of the official set 3 at n8's campaign.
  await page.click('#tabs button[data-view="replay"]');
  await page.type('.pane[data-pane="A"] .open input', join(set3, 'n8'));
  await page.click('.pane[data-pane="A"] .open button');
  await page.waitForSelector('.pane[data-pane="A"] .content:not([hidden])');
  await page.evaluate((s) => window.studio.replay.panes[0].go(s), campaign);
  await page.waitForFunction((s) => document.querySelector('.pane[data-pane="A"]').dataset.step === String(s), {}, campaign);
  await sleep(300);
  await page.screenshot({ path: `${OUT}/replay-set3-n8-campaign.png` });
} finally {
  await browser.close();
  if (browser.process()?.exitCode === null) process.kill(browser.process().pid, 'SIGKILL');
  await stop(studio.child);
  rmSync(dir, { recursive: true, force: true });
  rmSync(profile, { recursive: true, force: true });
}
console.log(`wrote ${OUT}/cluster.png, ${OUT}/live-charts.png, ${OUT}/replay-set3-n8-campaign.png`);
