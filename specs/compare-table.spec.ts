/**
 * The side-by-side table bench/compare.sh prints: runs matched by what they
 * say of themselves, ratios over PostgreSQL, targets met or missed, and runs
 * that left no report shown as such.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { collectRuns, formatComparison, intraTargetMet, ms, type Cell } from '../cli/compare.js';

const MAIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'cli', 'main.js');

/** A bench --json report, as far as the table reads it. */
function report(system: string, preset: string, clients: number, perS: number, p50: number, p99: number, extra: object = {}) {
  return Object.assign(
    {
      system,
      options: { preset, clients },
      throughput: { committedPerS: perS, opsPerS: perS },
      latencyMs: { overall: { p50, p99 } },
      outcomes: { overall: { committed: Math.round(perS * 10) } },
    },
    extra,
  );
}

const idle = { system: 'shardbank', idle: { seconds: 10, settleS: 2, cpuMs: 3120, percentOfCore: 31.2, nodes: Array.from({ length: 9 }, (_, i) => ({ node: i + 1 })) } };
const setup = { setup: { date: '2026-11-26 02:30 UTC', machine: '2 cores', versions: { postgres: 'PostgreSQL 15.18', etcd: 'etcd 3.4.23' }, durationS: 10, warmupS: 5, seed: 1 } };

function files(): { name: string; json: unknown }[] {
  const runs = [
    report('shardbank', 'intra', 1, 247, 3.1, 9.04),
    report('postgres', 'intra', 1, 689, 1.4, 3.0),
    report('etcd', 'intra', 1, 224, 4.0, 9.0),
    report('shardbank', 'intra', 64, 6000, 9.5, 19.9, { committed: 60000, nodes: [{ cpuMs: 12000 }, { cpuMs: 19200 }] }),
    report('postgres', 'intra', 64, 5462, 10.1, 10.0, { postgres: { total: 5, expectedTotal: 5 }, committed: 54620, serverCpuMs: 10924 }),
    { system: 'etcd', options: { preset: 'intra', clients: 64 }, error: 'etcd did not start' },
    report('shardbank', 'reads', 64, 53928, 0.84, 6.5),
    report('postgres', 'reads', 64, 55313, 0.9, 3),
    report('shardbank', 'cross20', 64, 1477, 31, 164, { audit: { conserved: false, replicasAgree: true } }),
    report('shardbank', 'cross100', 1, 85, 3.9, 9.9, { outcomes: { overall: { committed: 850, 'failed: no reply': 2 } } }),
  ];
  return [...runs.map((json, i) => ({ name: `run${i}.json`, json })), { name: 'idle.json', json: idle }, { name: 'setup.json', json: setup }];
}

const lineOf = (table: string, start: string) => table.split('\n').find((l) => l.startsWith(start)) ?? '';

test('each client count is one row: three systems, the ratio over PostgreSQL, the target', () => {
  const table = formatComparison(collectRuns(files()));
  assert.is(lineOf(table, '| 1 |'), '| 1 | 247/s, 3.1 / 9.0 ms | 689/s, 1.4 / 3.0 ms | 224/s, 4.0 / 9.0 ms | 0.36x, p50 2.21x, p99 3.01x | missed |');
  assert.is(lineOf(table, '| 64 |'), '| 64 | 6,000/s, 9.5 / 19.9 ms | 5,462/s, 10.1 / 10.0 ms | no result (etcd did not start) | 1.10x, p99 1.99x | met |');
  assert.is(lineOf(table, '| reads, 64 |'), '| reads, 64 | 53,928/s, 0.84 / 6.5 ms | 55,313/s, 0.90 / 3.0 ms | - | 0.97x |  |');
});

test("shardbank's own rows carry their targets, and say what went wrong in a run", () => {
  const table = formatComparison(collectRuns(files()));
  assert.is(lineOf(table, '| 20% cross-shard, 64 clients |'), '| 20% cross-shard, 64 clients | 1,477/s, 31.0 / 164 ms (audit failed) | >= 5,000/s | missed |');
  assert.is(lineOf(table, '| 100% cross-shard, 1 client |'), '| 100% cross-shard, 1 client | 85/s, 3.9 / 9.9 ms (2 failed) | p50 <= 4 ms, p99 <= 10 ms | met |');
  assert.not.match(table, /512 clients/, 'a run that was not made has no row');
  assert.is(lineOf(table, '| 9 idle nodes, 10 s |'), '| 9 idle nodes, 10 s | 31.20% of one core (3120 ms of CPU) | < 2% of one core | missed |');
});

test('CPU per committed transfer: all nodes for shardbank, the server processes for the others, where measured', () => {
  const table = formatComparison(collectRuns(files()));
  assert.is(lineOf(table, '| 64 clients |'), '| 64 clients | 520 µs | 200 µs | - |');
  assert.is(lineOf(table, '| 1 client |'), '', 'no row where nothing measured CPU');
});

test('the header says with what, when, and how long each row ran', () => {
  const table = formatComparison(collectRuns(files()));
  assert.match(table, /vs PostgreSQL 15\.18 with 2 synchronous standbys \(ANY 1 \(r1, r2\)\) vs etcd 3\.4\.23 with 3 members/);
  assert.match(table, /2026-11-26 02:30 UTC, 2 cores/);
  assert.match(table, /each row: 10 s measured after 5 s of the same workload, seed 1/);
});

test('the intra-shard target: throughput at least PostgreSQL\'s, p99 at most twice, and with one client p50 no higher', () => {
  const c = (perS: number, p50: number, p99: number): Cell => ({ perS, p50, p99 });
  assert.is(intraTargetMet(c(100, 5, 20), c(100, 4, 10), 16), true, 'equal throughput, p99 exactly twice');
  assert.is(intraTargetMet(c(99, 1, 1), c(100, 4, 10), 16), false);
  assert.is(intraTargetMet(c(100, 5, 21), c(100, 4, 10), 16), false);
  assert.is(intraTargetMet(c(100, 5, 20), c(100, 4, 10), 1), false, 'one client: p50 counts too');
  assert.is(intraTargetMet({ error: 'x' }, c(100, 4, 10), 1), null);
  assert.is(intraTargetMet(c(100, 4, 10), undefined, 1), null);
});

test('milliseconds are written like the targets: two decimals under 1, one under 100, none above', () => {
  assert.equal([0.844, 3.14, 19.84, 164.4, 1581.2].map(ms), ['0.84', '3.1', '19.8', '164', '1581']);
});

test('shardbank compare-table prints the table and writes the JSON; an empty or missing directory is a one-line error', () => {
  const dir = mkdtempSync(join(tmpdir(), 'shardbank-compare-spec-'));
  try {
    for (const f of files()) writeFileSync(join(dir, f.name), JSON.stringify(f.json));
    const out = join(dir, 'combined.out');
    mkdirSync(join(dir, 'empty'));
    const r = spawnSync(process.execPath, [MAIN, 'compare-table', dir, '--json', out], { encoding: 'utf8' });
    assert.is(r.status, 0, r.stderr);
    assert.match(r.stdout, /\| 64 \| 6,000\/s/);
    const combined = JSON.parse(readFileSync(out, 'utf8'));
    assert.equal(combined.cells['shardbank/intra/64'], { perS: 6000, p50: 9.5, p99: 19.9, cpuUs: 520 });
    assert.is(Object.keys(combined.runs).length, files().length, 'every report is kept');
    const empty = spawnSync(process.execPath, [MAIN, 'compare-table', join(dir, 'empty')], { encoding: 'utf8' });
    assert.is(empty.status, 2);
    assert.match(empty.stderr, /^compare-table: no bench reports in .*\n$/);
    const missing = spawnSync(process.execPath, [MAIN, 'compare-table', join(dir, 'nope')], { encoding: 'utf8' });
    assert.is(missing.status, 2);
    assert.match(missing.stderr, /^compare-table: ENOENT: no such file or directory.*\n$/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
