import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ConfigError, addTopologyOptions, loadTopology, saveTopology, topologyFromOptions } from '../cli/config.js';
import {
  NO_ITEMS_MODIFIED,
  NO_NEW_VIEWS,
  formatPerformance,
  formatPrintBalance,
  formatPrintDb,
  formatPrintView,
  printDbJson,
  viewsJson,
  type ViewInfo,
} from '../cli/format.js';
import { LatencyRecorder, PerformanceMeter } from '../cli/stats.js';
import { clusterNodes, clusterOfItem } from '../protocol/topology.js';

// ------------------------------------------------------------ PrintBalance

test('PrintBalance: the spec example exactly', () => {
  assert.is(
    formatPrintBalance([
      { node: 4, balance: 8 },
      { node: 5, balance: 8 },
      { node: 6, balance: 10 },
    ]),
    'n4 : 8, n5 : 8, n6 : 10',
  );
  assert.is(
    formatPrintBalance([
      { node: 4, balance: null },
      { node: 5, balance: 12 },
    ]),
    'n4 : ?, n5 : 12',
  );
  assert.is(formatPrintBalance([]), '');
});

// ------------------------------------------------------------ PrintDB

const db = new Map<number, Map<number, number>>([
  [1, new Map([[1002, 11], [1001, 9]])],
  [2, new Map([[1001, 9]])],
  [4, new Map([[3001, 100]])],
]);

test('PrintDB: grid of modified items, - where a node has none', () => {
  assert.is(
    formatPrintDb(db, [1, 2, 3, 4]),
    [
      'node  1001  1002  3001',
      'n1       9    11     -',
      'n2       9     -     -',
      'n3       -     -     -',
      'n4       -     -   100',
    ].join('\n'),
  );
  assert.is(formatPrintDb(new Map(), [1, 2, 3]), `node\n${NO_ITEMS_MODIFIED}`);
  assert.is(formatPrintDb(new Map([[1, new Map()]]), [1]), `node\n${NO_ITEMS_MODIFIED}`);
  // Only the listed nodes count.
  assert.is(formatPrintDb(db, [3]), `node\n${NO_ITEMS_MODIFIED}`);
});

test('PrintDB: wide grids wrap into blocks', () => {
  const out = formatPrintDb(db, [1, 4], { width: 16 });
  assert.is(
    out,
    ['node  1001  1002', 'n1       9    11', 'n4       -     -', '', 'node  3001', 'n1       -', 'n4     100'].join('\n'),
  );
  const nodes = Array.from({ length: 25 }, (_, i) => i + 1);
  assert.ok(formatPrintDb(db, nodes).split('\n')[25]!.startsWith('n25'));
});

test('PrintDB JSON: every node, items ascending', () => {
  const j = printDbJson(db, [1, 2, 3]);
  assert.equal(j, { n1: { 1001: 9, 1002: 11 }, n2: { 1001: 9 }, n3: {} });
  assert.is(JSON.stringify(j), '{"n1":{"1001":9,"1002":11},"n2":{"1001":9},"n3":{}}');
});

// ------------------------------------------------------------ PrintView

const views: ViewInfo[] = [
  {
    cluster: 3,
    leader: 8,
    view: {
      ballot: { round: 2, node: 8 },
      log: [
        { seq: 1, phase: 0, ballot: { round: 2, node: 8 }, command: { client: 'c', timestamp: 1, transfer: { sender: 6001, receiver: 6002, amount: 1 } } },
        { seq: 2, phase: 1, ballot: { round: 2, node: 8 }, command: { client: 'c', timestamp: 2, transfer: { sender: 6005, receiver: 3001, amount: 2 } } },
        { seq: 3, ballot: { round: 2, node: 8 } },
        { seq: 2, phase: 2, ballot: { round: 2, node: 8 }, command: { client: 'c', timestamp: 2, transfer: { sender: 6005, receiver: 3001, amount: 2 } } },
        { seq: 4, phase: 3, ballot: { round: 2, node: 8 }, command: { client: 'c', timestamp: 3, transfer: { sender: 6007, receiver: 1, amount: 1 } } },
      ],
    },
  },
  { cluster: 1, leader: 2, view: { ballot: { round: 3, node: 2 }, log: [] } },
  {
    cluster: 2,
    leader: 5,
    view: { ballot: { round: 2, node: 5 }, log: [{ seq: 10, ballot: { round: 1, node: 4 }, command: { client: 'c', timestamp: 4, read: { item: 3002 } } }] },
  },
];

test('PrintView: one block per NEW-VIEW with P/C/A flags and no-ops', () => {
  assert.is(
    formatPrintView(views),
    [
      'NEW-VIEW <2, n8> from n8 (cluster 3), 5 entries',
      '  seq 1    <2, n8>  (6001, 6002, 1)',
      '  seq 2 P  <2, n8>  (6005, 3001, 2)',
      '  seq 3    <2, n8>  no-op',
      '  seq 2 C  <2, n8>  (6005, 3001, 2)',
      '  seq 4 A  <2, n8>  (6007, 1, 1)',
      'NEW-VIEW <3, n2> from n2 (cluster 1), 0 entries',
      'NEW-VIEW <2, n5> from n5 (cluster 2), 1 entry',
      '  seq 10  <1, n4>  (3002)',
    ].join('\n'),
  );
  assert.is(formatPrintView([]), NO_NEW_VIEWS);
  // Without phases, the line is exactly the documented form.
  const plain = formatPrintView([
    { cluster: 3, leader: 8, view: { ballot: { round: 2, node: 8 }, log: [{ seq: 3, ballot: { round: 2, node: 8 }, command: { transfer: { sender: 6005, receiver: 6006, amount: 1 } } }] } },
  ]);
  assert.is(plain.split('\n')[1], '  seq 3  <2, n8>  (6005, 6006, 1)');
});

test('PrintView JSON', () => {
  const j = viewsJson(views);
  assert.is(j.length, 3);
  assert.equal(j[0]!.ballot, { round: 2, node: 8 });
  assert.is(j[0]!.leader, 'n8');
  assert.is(j[0]!.cluster, 3);
  assert.equal(
    j[0]!.log.map((e) => [e.seq, e.phase, e.command]),
    [
      [1, '', '(6001, 6002, 1)'],
      [2, 'P', '(6005, 3001, 2)'],
      [3, '', 'no-op'],
      [2, 'C', '(6005, 3001, 2)'],
      [4, 'A', '(6007, 1, 1)'],
    ],
  );
  assert.equal(j[0]!.log[0]!.ballot, { round: 2, node: 8 });
  assert.equal(j[1], { cluster: 1, leader: 'n2', ballot: { round: 3, node: 2 }, log: [] });
  assert.equal(j[2]!.log, [{ seq: 10, phase: '', ballot: { round: 1, node: 4 }, command: '(3002)' }]);
  assert.equal(viewsJson([]), []);
});

// ------------------------------------------------------------ stats

const near = (actual: number, expected: number, tol: number, what: string) =>
  assert.ok(Math.abs(actual - expected) <= tol, `${what}: ${actual} not within ${tol} of ${expected}`);

test('LatencyRecorder: percentiles of 1..100 ms', () => {
  const r = new LatencyRecorder();
  assert.is(r.count, 0);
  assert.is(r.mean(), 0);
  assert.is(r.percentile(50), 0);
  for (let i = 1; i <= 100; i++) r.record(i);
  assert.is(r.count, 100);
  near(r.mean(), 50.5, 1e-9, 'mean');
  near(r.percentile(50), 50, 0.05, 'p50');
  near(r.percentile(90), 90, 0.1, 'p90');
  near(r.percentile(99), 99, 0.1, 'p99');
  assert.is(r.percentile(100), 100);
  assert.is(r.min(), 1);
  assert.is(r.max(), 100);
  r.record(-5);
  r.record(Number.NaN);
  assert.is(r.count, 101);
  assert.is(r.min(), 0);
  r.reset();
  assert.is(r.count, 0);
  assert.is(r.max(), 0);
  r.record(0.25);
  near(r.percentile(50), 0.25, 0.001, 'sub-ms');
});

test('PerformanceMeter: counts, throughput and latency on a fake clock', () => {
  let t = 1000;
  const m = new PerformanceMeter({ now: () => t });
  m.start();
  for (let i = 1; i <= 100; i++) {
    t += 10;
    const status = i <= 90 ? 'committed' : i <= 95 ? 'aborted' : i <= 98 ? 'failed' : 'ok';
    m.recordResult(i, status, status === 'ok' ? 'read' : 'transfer');
  }
  t += 60_000; // a user at the prompt does not count
  const p = m.snapshot();
  assert.is(p.transactions, 100);
  assert.is(p.committed, 90);
  assert.is(p.aborted, 5);
  assert.is(p.failed, 3);
  assert.is(p.reads, 2);
  assert.is(p.elapsedMs, 1000);
  assert.is(p.throughput, 100);
  near(p.latencyMs.mean, 50.5, 1e-9, 'mean');
  near(p.latencyMs.p50, 50, 0.05, 'p50');
  near(p.latencyMs.p99, 99, 0.1, 'p99');
  assert.is(p.latencyMs.min, 1);
  assert.is(p.latencyMs.max, 100);
  assert.equal(m.byKind(), { transfer: 98, read: 2 });

  m.start();
  const empty = m.snapshot();
  assert.is(empty.transactions, 0);
  assert.is(empty.throughput, 0);
  assert.is(empty.elapsedMs, 0);

  // Without start(), the span begins when the first request was sent.
  const n = new PerformanceMeter({ now: () => t });
  t = 5000;
  n.recordResult(20, 'committed');
  t = 5480;
  n.recordResult(20, 'committed');
  n.stop();
  t = 9000;
  assert.is(n.snapshot().elapsedMs, 500);
  assert.is(n.snapshot().throughput, 4);
});

test('formatPerformance: one metric per line', () => {
  let t = 0;
  const m = new PerformanceMeter({ now: () => t });
  m.start();
  for (let i = 1; i <= 100; i++) {
    t += 10;
    m.recordResult(i, 'committed');
  }
  const out = formatPerformance(m.snapshot());
  const lines = out.split('\n');
  assert.is(lines[0], 'transactions  : 100');
  assert.ok(lines.includes('committed     : 100'));
  assert.ok(lines.includes('aborted       : 0'));
  assert.ok(lines.includes('failed        : 0'));
  assert.ok(lines.includes('elapsed       : 1.000 s'));
  assert.ok(lines.includes('throughput    : 100.00 txn/s'));
  assert.ok(lines.includes('latency mean  : 50.500 ms'));
  assert.ok(lines.includes('latency max   : 100.000 ms'));
  assert.match(out, /latency p50 {3}: 50\.0\d\d ms/);
  assert.match(out, /latency p99 {3}: 99\.\d{3} ms/);
});

// ------------------------------------------------------------ config

const tmp = mkdtempSync(join(tmpdir(), 'shardbank-cli-'));
const writeJson = (name: string, data: unknown) => {
  const p = join(tmp, name);
  writeFileSync(p, typeof data === 'string' ? data : JSON.stringify(data));
  return p;
};
const configError = (fn: () => unknown, ...parts: (string | RegExp)[]) => {
  try {
    fn();
  } catch (e) {
    assert.instance(e, ConfigError);
    for (const part of parts) assert.match((e as Error).message, part);
    return e as ConfigError;
  }
  assert.unreachable('expected a ConfigError');
  throw new Error('unreachable');
};

test('config: defaults are 3 x 3 over 9000 items', () => {
  const t = loadTopology();
  assert.is(t.clusters, 3);
  assert.is(t.nodesPerCluster, 3);
  assert.is(t.items, 9000);
  assert.is(t.initialBalance, 10);
  assert.equal(t.shards.ranges, [
    { cluster: 1, from: 1, to: 3000 },
    { cluster: 2, from: 3001, to: 6000 },
    { cluster: 3, from: 6001, to: 9000 },
  ]);
  assert.equal(
    t.nodes.map((n) => n.port),
    [7101, 7102, 7103, 7104, 7105, 7106, 7107, 7108, 7109],
  );
  assert.equal(clusterNodes(t, 2), [4, 5, 6]);
  assert.is(clusterOfItem(t, 3000), 1);
  assert.is(clusterOfItem(t, 3001), 2);
});

test('config: 5 x 5 gives n1..n25 and 1800 items per cluster', () => {
  const t = loadTopology({ clusters: 5, nodesPerCluster: 5 });
  assert.is(t.nodes.length, 25);
  assert.is(t.nodes.at(-1)!.id, 25);
  assert.equal(
    t.shards.ranges.map((r) => [r.from, r.to]),
    [
      [1, 1800],
      [1801, 3600],
      [3601, 5400],
      [5401, 7200],
      [7201, 9000],
    ],
  );
  assert.equal(clusterNodes(t, 5), [21, 22, 23, 24, 25]);
});

test('config: file values, flags override the file', () => {
  const p = writeJson('five.json', { clusters: 5, nodesPerCluster: 5, initialBalance: 100, tuning: { maxBatch: 64 } });
  const t = loadTopology({ config: p });
  assert.is(t.clusters, 5);
  assert.is(t.initialBalance, 100);
  assert.is(t.tuning.maxBatch, 64);
  assert.is(t.tuning.tickMs, 25);
  const o = loadTopology({ config: p, clusters: 4, initialBalance: 7, basePort: 9000 });
  assert.is(o.clusters, 4);
  assert.is(o.nodes.length, 20);
  assert.is(o.initialBalance, 7);
  assert.is(o.nodes[0]!.port, 9000);
  assert.is(o.tuning.maxBatch, 64);

  const nodes = Array.from({ length: 9 }, (_, i) => ({ id: `n${9 - i}`, host: '10.0.0.1', port: 8000 + 9 - i }));
  const withNodes = writeJson('nodes.json', {
    nodes,
    shards: { ranges: [{ cluster: 1, from: 1, to: 10 }, { cluster: 2, from: 11, to: 50 }, { cluster: 3, from: 51, to: 90 }], overrides: { 5: 3 } },
    items: 90,
  });
  const n = loadTopology({ config: withNodes });
  assert.equal(n.nodes[0], { id: 1, host: '10.0.0.1', port: 8001 });
  assert.is(clusterOfItem(n, 5), 3);
  assert.is(clusterOfItem(n, 11), 2);
  const moved = loadTopology({ config: withNodes, basePort: 7000, host: '127.0.0.1' });
  assert.equal(moved.nodes[8], { id: 9, host: '127.0.0.1', port: 7008 });
});

test('config: bad files and values name the field and file', () => {
  configError(() => loadTopology({ config: join(tmp, 'missing.json') }), 'missing.json', 'cannot read');
  configError(() => loadTopology({ config: writeJson('bad.json', '{ "clusters": 3,') }), 'bad.json', 'not valid JSON');
  configError(() => loadTopology({ config: writeJson('arr.json', '[1]') }), 'must be a JSON object');
  const e = configError(() => loadTopology({ config: writeJson('zero.json', { clusters: 0 }) }), 'zero.json', 'clusters', 'positive integer');
  assert.is(e.field, 'clusters');
  assert.match(e.file ?? '', 'zero.json');
  configError(() => loadTopology({ config: writeJson('frac.json', { items: 10.5 }) }), 'items', 'whole number');
  configError(() => loadTopology({ config: writeJson('str.json', { nodesPerCluster: '3' }) }), 'nodesPerCluster');
  configError(() => loadTopology({ config: writeJson('neg.json', { initialBalance: -1 }) }), 'initialBalance', 'at least 0');
  configError(() => loadTopology({ config: writeJson('few.json', { clusters: 4, items: 3 }) }), 'items', 'at least the number of clusters');
  configError(() => loadTopology({ config: writeJson('typo.json', { cluster: 3 }) }), 'cluster', 'not a known field');
  configError(() => loadTopology({ config: writeJson('tun.json', { tuning: { maxBatch: 0 } }) }), 'tuning.maxBatch');
  configError(() => loadTopology({ config: writeJson('tun2.json', { tuning: { bogus: 1 } }) }), 'tuning.bogus');
  configError(() => loadTopology({ config: writeJson('tun3.json', { tuning: { electionTicksMin: 20, electionTicksMax: 10 } }) }), 'electionTicksMin');
  configError(() => loadTopology({ config: writeJson('tun4.json', { tuning: { heartbeatTicks: 4, idleHeartbeatTicks: 3 } }) }), 'idleHeartbeatTicks');
  assert.is(loadTopology({ config: writeJson('tun5.json', { tuning: { idleHeartbeatTicks: 2 } }) }).tuning.idleHeartbeatTicks, 2, 'equal to heartbeatTicks: no slowing down, allowed');
  configError(() => loadTopology({ clusters: 0 }), '--clusters');

  const nodes9 = Array.from({ length: 9 }, (_, i) => ({ id: i + 1, host: 'h', port: 7000 + i }));
  configError(() => loadTopology({ config: writeJson('n8.json', { nodes: nodes9.slice(1) }) }), 'nodes', 'lists 8 nodes', '= 9');
  const dupPort = nodes9.map((n) => (n.id === 5 ? { ...n, port: 7000 } : n));
  configError(() => loadTopology({ config: writeJson('dup.json', { nodes: dupPort }) }), 'nodes[4].port', 'already used by n1');
  const dupId = nodes9.map((n) => (n.id === 5 ? { ...n, id: 4 } : n));
  configError(() => loadTopology({ config: writeJson('dupid.json', { nodes: dupId }) }), 'nodes[4].id', 'repeats node n4');
  configError(() => loadTopology({ config: writeJson('bigid.json', { nodes: nodes9.map((n) => ({ ...n, id: n.id + 1 })) }) }), 'nodes[8].id');
  configError(() => loadTopology({ config: writeJson('port.json', { nodes: nodes9.map((n) => ({ ...n, port: 70000 + n.id })) }) }), 'nodes[0].port');
  configError(() => loadTopology({ config: writeJson('host.json', { nodes: nodes9.map((n) => ({ ...n, host: '' })) }) }), 'nodes[0].host');

  const r = (ranges: unknown) => writeJson('ranges.json', { items: 100, shards: { ranges } });
  configError(() => loadTopology({ config: r([{ cluster: 1, from: 1, to: 50 }, { cluster: 2, from: 50, to: 100 }]) }), 'shards.ranges', 'overlap', '50..50');
  configError(() => loadTopology({ config: r([{ cluster: 1, from: 1, to: 40 }, { cluster: 2, from: 51, to: 100 }]) }), 'shards.ranges', '41..50');
  configError(() => loadTopology({ config: r([{ cluster: 1, from: 1, to: 90 }]) }), 'shards.ranges', '91..100');
  configError(() => loadTopology({ config: r([{ cluster: 4, from: 1, to: 100 }]) }), 'shards.ranges[0].cluster');
  configError(() => loadTopology({ config: r([{ cluster: 1, from: 60, to: 50 }]) }), 'shards.ranges[0].to');
  configError(
    () => loadTopology({ config: writeJson('ov.json', { shards: { overrides: { 9001: 1 } } }) }),
    'shards.overrides.9001',
    'outside 1..9000',
  );
});

test('config: saveTopology round-trips', () => {
  const t = loadTopology({ clusters: 5, nodesPerCluster: 5, initialBalance: 1000 });
  t.shards.overrides['4001'] = 1;
  const p = join(tmp, 'sub', 'saved.json');
  saveTopology(t, p);
  assert.equal(loadTopology({ config: p }), t);
});

test('config: commander flags parse integers and reject bad values', () => {
  const make = () => {
    const cmd = addTopologyOptions(new Command('x'))
      .exitOverride()
      .configureOutput({ writeErr: () => {}, writeOut: () => {} });
    return cmd;
  };
  const ok = make();
  ok.parse(['--clusters', '5', '--nodes-per-cluster', '5', '--items', '9000', '--initial-balance', '0', '--base-port', '9100'], { from: 'user' });
  const opts = ok.opts();
  assert.equal(opts, { clusters: 5, nodesPerCluster: 5, items: 9000, initialBalance: 0, basePort: 9100 });
  const t = topologyFromOptions(opts);
  assert.is(t.nodes.length, 25);
  assert.is(t.nodes[24]!.port, 9124);
  assert.is(t.initialBalance, 0);

  for (const args of [['--clusters', 'three'], ['--clusters', '0'], ['--items', '1.5'], ['--base-port', '70000'], ['--initial-balance', '-1']]) {
    try {
      make().parse(args, { from: 'user' });
      assert.unreachable(`${args.join(' ')} accepted`);
    } catch (e) {
      assert.is((e as { code?: string }).code, 'commander.invalidArgument', args.join(' '));
    }
  }
});

test.after(() => rmSync(tmp, { recursive: true, force: true }));

test.run();
