// What watching costs: `bench --preset intra --clients 64` (after a 3 s
// warm-up) against one local cluster, four ways in a rotating order, ROUNDS
// times (run after `npm run build`):
//   none     nothing attached, the nodes never watched in this round;
//   studio   a studio attached with its Live page open on n1 (the default:
//            every node streamed while quiet, n1 only under load);
//   all      the same page forced to stream every node;
//   after    nothing attached again, right after a watcher left (its lease
//            ran out): inspection with no subscriber.
//   node bench/studio-overhead.mjs [ROUNDS] [SECONDS] [WAYS]   (WAYS: e.g. none,studio)
// Every process is started and stopped here by its pid.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import puppeteer from 'puppeteer-core';
import { cpuMeter } from '../dist/cli/proc-cpu.js';

const ROUNDS = Number(process.argv[2] ?? 3);
const SECONDS = Number(process.argv[3] ?? 10);
const BASE = Number(process.env.OVERHEAD_PORT ?? 27700);
const MAIN = 'dist/cli/main.js';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const dir = mkdtempSync(join(tmpdir(), 'shardbank-overhead-'));
const config = join(dir, 'config.json');

function start(args, ready) {
  const child = spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  return new Promise((resolve, reject) => {
    const on = (d) => {
      out += d;
      const m = ready.exec(out);
      if (m) resolve({ child, match: m });
    };
    child.stdout.on('data', on);
    child.stderr.on('data', on);
    child.once('exit', (code) => reject(new Error(`${args[0]} exited with ${code}: ${out}`)));
  });
}

async function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  process.kill(child.pid, 'SIGTERM');
  await exited;
}

/**
 * One bench run: committed/s, and the nodes' CPU per commit (all nodes, and
 * n1's), which other load on the machine sways less. With a page open, how
 * many of its seconds the studio was sampling (under load) rather than streaming.
 */
async function bench(page) {
  const json = join(dir, 'bench.json');
  const child = spawn(process.execPath, [MAIN, 'bench', '--connect', '--config', config, '--initial-balance', '1000000', '--preset', 'intra', '--clients', '64', '--duration', String(SECONDS), '--warmup', '3', '--settle', '2', '--json', json], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise((r) => child.once('exit', r));
  let sampled = 0;
  let seconds = 0;
  while (child.exitCode === null) {
    await Promise.race([exited, sleep(1000)]);
    if (!page || child.exitCode !== null) continue;
    seconds++;
    if (/sampled/.test(await page.$eval('#live-notice', (e) => e.textContent))) sampled++;
  }
  if (child.exitCode !== 0) throw new Error(`bench failed:\n${out}`);
  const report = JSON.parse(readFileSync(json, 'utf8'));
  const cpu = report.nodes.reduce((t, n) => t + n.cpuMs, 0);
  const n1 = report.nodes.find((n) => n.node === 1).cpuMs;
  return { tps: Math.round(report.throughput.committedPerS), usPerCommit: Math.round((cpu * 1000) / report.committed), n1UsPerCommit: Math.round((n1 * 1000) / report.committed), sampled, seconds };
}

// The cluster: nine node processes kept for the whole run by a small host
// process (a local cluster with nothing attached); the studios connect to it.
const HOST = `
import { LocalCluster, tcpAdmin } from './dist/cli/cluster.js';
import { makeTopology } from './dist/protocol/topology.js';
const topology = makeTopology({ basePort: ${BASE + 1}, initialBalance: 1000000 });
const cluster = new LocalCluster(topology, ${JSON.stringify(dir)});
const { admin, transport } = tcpAdmin(topology, 'overhead-host');
await cluster.start(admin);
await transport.close();
console.log('cluster ready');
process.once('SIGTERM', () => cluster.stop().then(() => process.exit(0)));
setInterval(() => {}, 60_000);
`;
const host = await new Promise((resolve, reject) => {
  const child = spawn(process.execPath, ['--input-type=module', '-e', HOST], { stdio: ['ignore', 'pipe', 'inherit'] });
  child.stdout.on('data', (d) => String(d).includes('cluster ready') && resolve({ child }));
  child.once('exit', (code) => reject(new Error(`the cluster host exited with ${code}`)));
});
const profile = mkdtempSync(join(tmpdir(), 'shardbank-overhead-chromium-'));
const browser = await puppeteer.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  userDataDir: profile,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const results = Object.fromEntries((process.argv[4] ?? 'none,studio,all,after').split(',').map((w) => [w, []]));
try {
  const WAYS = (process.argv[4] ?? 'none,studio,all,after').split(',');
  for (let round = 1; round <= ROUNDS; round++) {
    // Each round starts one further along, so that no way always runs first (cold) or last.
    const order = WAYS.map((_, i) => WAYS[(i + round - 1) % WAYS.length]);
    // "after" needs a watcher that just left: it follows "all" when the rotation puts it first.
    if (order[0] === 'after' && WAYS.includes('all')) order.push(order.shift());
    for (const way of order) {
      let studio = null;
      let page = null;
      if (way === 'studio' || way === 'all') {
        studio = await start(['studio', '--connect', '--config', config, '--port', String(BASE + 20)], /studio: (http:\S+)/);
        page = await browser.newPage();
        await page.goto(`${studio.match[1]}#live`);
        await page.waitForSelector('body[data-ready]');
        if (way === 'all') await page.select('#watch-mode', 'all');
        await sleep(1500);
      }
      // The CPU the watching side used over the run: the studio process, and Chromium with the page.
      const studioCpu = studio ? cpuMeter([studio.child.pid]) : null;
      const pageCpu = page ? cpuMeter([browser.process().pid]) : null;
      const r = await bench(page);
      results[way].push(r);
      const cpu = studio ? `; studio ${(studioCpu.since() / 1000).toFixed(1)} CPU-s, Chromium ${(pageCpu.since() / 1000).toFixed(1)} CPU-s; sampling ${r.sampled} of ${r.seconds} s` : '';
      process.stderr.write(`round ${round} ${way.padEnd(6)} ${r.tps} committed/s, nodes ${r.usPerCommit} µs CPU per commit (n1 ${r.n1UsPerCommit})${cpu}\n`);
      if (page) await page.close();
      if (studio) await stop(studio.child);
      // A watcher's lease runs out within 3 s of its last renewal.
      if (way === 'all') await sleep(4000);
    }
  }
} finally {
  await browser.close();
  if (browser.process()?.exitCode === null) process.kill(browser.process().pid, 'SIGKILL');
  await stop(host.child);
  rmSync(profile, { recursive: true, force: true });
  rmSync(dir, { recursive: true, force: true });
}
// Medians: a shared machine's other load makes single runs swing far.
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const pct = (x, base) => `${x >= base ? '+' : ''}${((100 * (x - base)) / base).toFixed(1)}%`;
const base = { tps: median(results.none.map((r) => r.tps)), us: median(results.none.map((r) => r.usPerCommit)), n1: median(results.none.map((r) => r.n1UsPerCommit)) };
console.log('way      committed/s (each run)          median vs none | node µs/commit median vs none | n1 µs/commit  vs none');
for (const [way, rs] of Object.entries(results)) {
  const tps = median(rs.map((r) => r.tps));
  const us = median(rs.map((r) => r.usPerCommit));
  const n1 = median(rs.map((r) => r.n1UsPerCommit));
  console.log(`${way.padEnd(8)} ${rs.map((r) => r.tps).join(', ').padEnd(30)} ${tps.toFixed(0).padStart(5)} ${pct(tps, base.tps).padStart(7)} | ${us.toFixed(0).padStart(6)} ${pct(us, base.us).padStart(7)} | ${n1.toFixed(0).padStart(5)} ${pct(n1, base.n1).padStart(7)}`);
}
