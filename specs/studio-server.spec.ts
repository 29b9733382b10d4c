/**
 * The studio server without a browser: what it serves, how it answers bad
 * input (a directory that is not a log, a file that is not a bench report, a
 * port in use, a live call with no cluster) while it keeps serving, a bench's
 * samples pushed to the page as Server-Sent Events, and `sim --record`
 * logs opened as a replay.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BenchSampler, parseBenchReport } from '../cli/bench-samples.js';
import { drawCharts } from '../cli/studio-charts.js';
import { StudioServer } from '../cli/studio-server.js';
import { simCommand } from '../cli/sim.js';
import { freePortRange } from './support/ports.js';

async function offlineServer(): Promise<StudioServer> {
  const server = new StudioServer({ charts: drawCharts(), info: { mode: 'offline', nodes: [], clusters: [] } });
  await server.listen(await freePortRange(1));
  return server;
}

async function call(server: StudioServer, path: string, body?: unknown): Promise<{ status: number; data: Record<string, unknown> }> {
  const init = body === undefined ? {} : { method: 'POST', body: typeof body === 'string' ? body : JSON.stringify(body) };
  const res = await fetch(new URL(path, server.url), init);
  return { status: res.status, data: (await res.json()) as Record<string, unknown> };
}

test('it serves the page, its scripts and the charts, and nothing outside its own folder', async () => {
  const server = await offlineServer();
  try {
    const page = await fetch(server.url);
    assert.is(page.status, 200);
    const html = await page.text();
    assert.match(html, /<script type="module" src="\/assets\/app.js">/);
    assert.not.match(html, /https?:\/\//, 'the page loads nothing from the network');
    for (const asset of ['app.js', 'charts.js', 'live.js', 'replay.js', 'bench.js', 'style.css']) {
      const r = await fetch(new URL(`/assets/${asset}`, server.url));
      assert.is(r.status, 200, asset);
      assert.not.match(await r.text(), /(import|src|href)[^\n]*https?:\/\//, `${asset} imports nothing from the network`);
    }
    assert.is((await fetch(new URL('/assets/..%2f..%2fpackage.json', server.url))).status, 404);
    const charts = (await (await fetch(new URL('/api/charts', server.url))).json()) as { id: string; svg: string; states: string[] }[];
    assert.is(charts.length, 9);
    for (const c of charts) for (const s of c.states) assert.ok(c.svg.includes(`data-state="${s}"`), `${c.id}: ${s}`);
  } finally {
    await server.close();
  }
});

test('bad input is answered with one line and the server goes on serving', async () => {
  const server = await offlineServer();
  const dir = mkdtempSync(join(tmpdir(), 'shardbank-studio-bad-'));
  try {
    let r = await call(server, '/api/replay/open', { path: dir });
    assert.is(r.status, 400);
    assert.match(String(r.data['error']), /not a LevelDB event log/);
    r = await call(server, '/api/replay/open', { path: join(dir, 'missing') });
    assert.match(String(r.data['error']), /no such directory/);
    r = await call(server, '/api/replay/open', '{not json');
    assert.is(r.status, 400);
    assert.match(String(r.data['error']), /not a JSON object/);
    r = await call(server, '/api/bench/file?name=x.json', '[1, 2]');
    assert.is(r.status, 400);
    assert.match(String(r.data['error']), /x\.json is not a bench --json report/);
    r = await call(server, '/api/bench/file?name=y.json', 'hello');
    assert.match(String(r.data['error']), /y\.json is not JSON/);
    r = await call(server, '/api/live/transfer', { sender: 1, receiver: 2, amount: 1 });
    assert.is(r.status, 409);
    assert.match(String(r.data['error']), /without a cluster/);
    r = await call(server, '/api/replay/r99/step');
    assert.is(r.status, 404);
    r = await call(server, '/api/nothing');
    assert.is(r.status, 404);
    // Still serving.
    assert.is((await fetch(server.url)).status, 200);
    // A second server on the same port: one line, no stack.
    const other = new StudioServer({ charts: drawCharts(), info: {} });
    const port = Number(new URL(server.url).port);
    await other.listen(port).then(
      () => assert.unreachable('the port is in use'),
      (err: Error) => assert.is(err.message, `port ${port} is in use`),
    );
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a bench posts its samples; the page gets them as Server-Sent Events', async () => {
  const server = await offlineServer();
  const abort = new AbortController();
  try {
    const res = await fetch(new URL('/api/events', server.url), { signal: abort.signal });
    const reader = res.body!.getReader();
    const sampler = new BenchSampler(0);
    sampler.record({ status: 'committed', latencyMs: 2 });
    sampler.record({ status: 'aborted', latencyMs: 4 });
    const sample = sampler.take(1000);
    assert.equal([sample.opsPerS, sample.committedPerS], [2, 1]);
    await call(server, '/api/bench/sample', { run: { preset: 'intra', clients: 2 }, sample, done: false });
    let text = '';
    while (!text.includes('event: bench')) text += new TextDecoder().decode((await reader.read()).value);
    const data = JSON.parse(/event: bench\ndata: (.*)\n/.exec(text)![1]!) as { sample: { committedPerS: number } };
    assert.is(data.sample.committedPerS, 1);
  } finally {
    abort.abort();
    await server.close();
  }
});

test('a bench --json report reads back with its samples; a field of the wrong kind is named', () => {
  const report = {
    system: 'shardbank',
    options: { preset: 'intra', clients: 64 },
    elapsedS: 10,
    throughput: { committedPerS: 1500, opsPerS: 1510 },
    latencyMs: { overall: { mean: 3, p50: 2, p99: 9, max: 20 } },
    samples: [{ tS: 1, opsPerS: 1500, committedPerS: 1490, meanMs: 3, p50Ms: 2, p99Ms: 9 }],
  };
  const f = parseBenchReport(JSON.stringify(report));
  assert.is(f.preset, 'intra');
  assert.is(f.samples.length, 1);
  assert.equal(f.latencyMs['overall'], { mean: 3, p50: 2, p99: 9, max: 20 });
  assert.throws(() => parseBenchReport(JSON.stringify({ ...report, samples: [{ tS: 'x' }] }), 'r.json'), /r\.json.*"samples\[0\]\.tS" is not a number/);
});

test('sim --record keeps every node\'s log, and the studio replays it to the end', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'shardbank-record-'));
  const server = await offlineServer();
  const write = process.stdout.write.bind(process.stdout);
  try {
    process.stdout.write = (() => true) as typeof process.stdout.write;
    const code = await simCommand({ seed: 3, ops: 20, record: join(dir, 'rec') });
    process.stdout.write = write;
    assert.is(code, 0);
    const list = await call(server, `/api/replay/list?dir=${encodeURIComponent(join(dir, 'rec'))}`);
    const logs = list.data['logs'] as { name: string; path: string }[];
    assert.ok(logs.length >= 6, `a log per node: ${logs.map((l) => l.name).join(', ')}`);
    const opened = await call(server, '/api/replay/open', { path: logs[0]!.path });
    assert.is(opened.status, 200, JSON.stringify(opened.data));
    const count = opened.data['count'] as number;
    const last = await call(server, `/api/replay/${opened.data['id']}/step?i=${count - 1}`);
    assert.is(last.data['step'], count - 1);
    assert.ok((last.data['lit'] as Record<string, string[]>)['election']!.length === 2, 'the election is in one state');
  } finally {
    process.stdout.write = write;
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
