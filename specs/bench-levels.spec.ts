/**
 * The benchmark at each consistency level, and under each lock policy:
 * `--consistency` and `--lock-policy` as a user types them (and mistypes
 * them), the workload's reads spread over the levels, the client-side
 * measure of stale reads, and short runs on real node processes: a `mix`
 * run reports every level, `--lock-policy wait` reaches the nodes (they
 * report it, and a contended run aborts fewer transfers than under `skip`),
 * and a running cluster's policy is not silently taken for another.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { TxResult } from '../client/client.js';
import { ReadLevels } from '../cli/bench-levels.js';
import { checkRunningLockPolicy, reportedLockPolicy, withLockPolicy } from '../cli/bench-locks.js';
import type { BenchReport } from '../cli/bench.js';
import { LocalCluster } from '../cli/cluster.js';
import { parseReadConsistency, PRESETS, Workload } from '../cli/workload.js';
import { LEVELS } from '../protocol/consistency.js';
import { makeTopology } from '../protocol/topology.js';
import { freePortRange } from './support/ports.js';

const main = fileURLToPath(new URL('../cli/main.js', import.meta.url));
const scratch = mkdtempSync(join(tmpdir(), 'shardbank-bench-levels-'));
test.after(() => rmSync(scratch, { recursive: true, force: true }));

interface Ran {
  code: number | null;
  out: string;
  err: string;
}

/** Runs `shardbank ARGS`; the process (and so its nodes) is killed by its pid if it outlives the timeout. */
function shardbank(args: string[], timeoutMs = 60_000): Promise<Ran> {
  const child = spawn(process.execPath, [main, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const timer = setTimeout(() => process.kill(child.pid!, 'SIGKILL'), timeoutMs);
  return new Promise((resolve) =>
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    }),
  );
}

const readJson = (file: string) => JSON.parse(readFileSync(file, 'utf8')) as BenchReport;
const topology = makeTopology();

test('--consistency takes a level, an alias of one, or mix; anything else is refused with the choices', () => {
  for (const level of LEVELS) assert.is(parseReadConsistency(level), level);
  assert.is(parseReadConsistency('MIX'), 'mix');
  assert.is(parseReadConsistency('eventual'), 'any');
  assert.is(parseReadConsistency('ryw'), 'session');
  assert.throws(() => parseReadConsistency('weak'), /"weak" is not a consistency level; choose one of linearizable, leader, session, any, or mix/);
});

test('bad --consistency and --lock-policy values are one line naming the flag, exit code 2, and nothing starts', async () => {
  const cases: [string[], RegExp][] = [
    [['bench', '--consistency', 'weak'], /option '--consistency <level>' argument 'weak' is invalid\. "weak" is not a consistency level/],
    [['bench', '--lock-policy', 'maybe'], /option '--lock-policy <policy>' argument 'maybe' is invalid\. Allowed choices are skip, wait/],
    [['bench', '--consistency', 'any', '--preset', 'intra'], /--consistency any: this workload has no reads to ask at a level; give --read-only PCT/],
    [['bench', '--consistency', 'mix', '--read-only', '50', '--etcd', 'http://127.0.0.1:2379'], /option '--consistency <level>' cannot be used with option '--etcd <urls>'/],
    [['bench', '--lock-policy', 'wait', '--postgres', 'postgres://u@127.0.0.1:5432/db'], /option '--lock-policy <policy>' cannot be used with option '--postgres <url>'/],
  ];
  for (const [args, want] of cases) {
    const r = await shardbank(args);
    assert.is(r.code, 2, `${args.join(' ')}: ${r.err}`);
    assert.match(r.err.split('\n')[0]!, want, args.join(' '));
    assert.not.match(r.err, /\n\s+at /, 'no stack trace');
    assert.not.match(r.out + r.err, /node processes/, `${args.join(' ')} started no cluster`);
  }
});

test('mix takes the four levels in turn over the reads, and draws the same items as one level does', () => {
  const opts = { seed: 7, readOnlyPct: 50, crossShardPct: 20, distribution: 'uniform' as const, skew: 0 };
  const mixed = new Workload(topology, { ...opts, consistency: 'mix' });
  const single = new Workload(topology, { ...opts, consistency: 'any' });
  const plain = new Workload(topology, opts);
  const counts = new Map<string, number>();
  const levels: string[] = [];
  for (let i = 0; i < 4000; i++) {
    const m = mixed.next();
    const s = single.next();
    const p = plain.next();
    assert.equal({ ...m, level: undefined }, { ...s, level: undefined }, `op ${i}: the same draw`);
    if (m.kind !== 'read') {
      assert.is(m.level, undefined, 'a transfer has no level');
      continue;
    }
    assert.is(s.level, 'any');
    assert.is(p.level, 'leader', 'without a level, reads are at the spec\'s default');
    levels.push(m.level!);
    counts.set(m.level!, (counts.get(m.level!) ?? 0) + 1);
  }
  assert.equal(levels.slice(0, 8), [...LEVELS, ...LEVELS]);
  const n = levels.length;
  for (const level of LEVELS) assert.ok(Math.abs(counts.get(level)! - n / 4) <= 1, `${level}: ${counts.get(level)} of ${n}`);
});

test('preset tc12 mixes transfers, some cross-shard, with reads at every level', () => {
  const p = PRESETS['tc12']!;
  assert.is(p.consistency, 'mix');
  assert.ok(p.readOnlyPct! > 0 && p.readOnlyPct! < 100);
  assert.ok(p.crossShardPct! > 0);
});

test('a read answered from a state older than one the client already saw is stale, by so many entries', () => {
  const leaders = new Map([[1, 1]]);
  const levels = new ReadLevels(topology, (c) => leaders.get(c));
  const ok = (node: number, executedThrough: number): TxResult => ({ status: 'ok', node, executedThrough, balance: 5, latencyMs: 2 });
  // Before anything is known, no read can be stale.
  levels.read('any', levels.mark(10), ok(3, 4));
  // The client's own transfer from item 5 committed at seq 12 in cluster 1 (n1 leads it).
  levels.wrote({ status: 'committed', node: 1, seq: 12, latencyMs: 3 });
  // An aborted transfer or another cluster's commit tells nothing about cluster 1.
  levels.wrote({ status: 'aborted', node: 1, seq: 40, latencyMs: 3 });
  levels.wrote({ status: 'committed', node: 4, seq: 90, latencyMs: 3 });
  const mark = levels.mark(20);
  assert.equal(mark, { cluster: 1, through: 12, own: 12 });
  levels.read('any', mark, ok(2, 9)); // n2 lags: 3 entries behind, without the client's own commit
  levels.read('any', levels.mark(30), ok(3, 12)); // caught up
  levels.read('linearizable', levels.mark(30), ok(1, 13));
  // Seen at 13 now: a session read answered at 12 missed nothing of its own, yet is older than what was seen.
  levels.read('session', levels.mark(40), ok(2, 12));
  levels.read('session', levels.mark(40), { status: 'failed', reason: 'no reply', latencyMs: 2500 });
  const s = levels.summary(1000);
  assert.equal(Object.keys(s), ['linearizable', 'session', 'any'], 'only the levels that ran, in order');
  assert.equal([s.any!.reads, s.any!.ok, s.any!.stale, s.any!.maxBehind, s.any!.byFollower, s.any!.missedOwnWrite], [3, 3, 1, 3, 3, 1]);
  assert.equal([s.linearizable!.stale, s.linearizable!.byFollower], [0, 0]);
  assert.equal([s.session!.reads, s.session!.ok, s.session!.failed, s.session!.stale, s.session!.maxBehind, s.session!.missedOwnWrite], [2, 1, 1, 1, 1, 0]);
  assert.is(s.session!.okPerS, 1);
});

test('the lock policy: a local cluster is started with it; running nodes must already have it', () => {
  assert.is(withLockPolicy(topology, 'wait').tuning.lockPolicy, 'wait');
  assert.is(topology.tuning.lockPolicy, 'skip', 'the topology given is not changed');
  assert.is(withLockPolicy(topology, undefined), topology);
  const nodes = new Map([[1, { lockPolicy: 'skip' }], [2, { lockPolicy: 'skip' }]]);
  assert.is(reportedLockPolicy(nodes), 'skip');
  assert.is(reportedLockPolicy(new Map([[1, { lockPolicy: 'wait' }], [2, { lockPolicy: '' }]])), 'mixed (n1 wait, n2 not reported)');
  checkRunningLockPolicy('skip', nodes);
  checkRunningLockPolicy(undefined, nodes);
  assert.throws(() => checkRunningLockPolicy('wait', nodes), /--lock-policy wait: a running cluster's lock policy cannot be changed from bench \(n1 runs "skip", n2 runs "skip"\)/);
});

test('bench --consistency mix on real nodes reports every level, each with answered reads, and no linearizable read is stale', async () => {
  const base = await freePortRange(6);
  const json = join(scratch, 'mix.json');
  const r = await shardbank(['bench', '--clusters', '2', '--items', '600', '--count', '240', '--clients', '8', '--read-only', '60', '--consistency', 'mix', '--base-port', String(base), '--plaintext', '--settle', '5', '--json', json]);
  assert.is(r.code, 0, r.err + r.out);
  assert.match(r.out, /Performance per level/);
  const report = readJson(json);
  assert.is(report.options.consistency, 'mix');
  const levels = report.levels!;
  assert.equal(Object.keys(levels), [...LEVELS]);
  for (const level of LEVELS) {
    const s = levels[level]!;
    assert.ok(s.reads > 0 && s.ok > 0, `${level}: ${s.reads} reads, ${s.ok} answered`);
    assert.match(r.out, new RegExp(`\\n${level}\\s+${s.reads}\\s+${s.ok}\\s`), `${level}'s row`);
  }
  assert.is(levels.linearizable!.stale, 0, 'a linearizable read never returns a state older than one already seen');
  assert.is(levels.session!.missedOwnWrite, 0, "a session read never misses the client's own writes");
  assert.is(levels.leader!.byFollower + levels.linearizable!.byFollower, 0, 'the leader answers leader and linearizable reads');
  const reads = LEVELS.reduce((t, l) => t + levels[l]!.reads, 0);
  assert.is(reads, report.latencyMs['read']!['count'], 'every read is counted at its level');
});

test('--lock-policy wait reaches the nodes: they report it, and a contended run aborts fewer transfers than under skip', async () => {
  const base = await freePortRange(3);
  const run = async (policy: string) => {
    const json = join(scratch, `${policy}.json`);
    const r = await shardbank(['bench', '--clusters', '1', '--items', '30', '--distribution', 'zipf', '--skew', '0.99', '--cross-shard', '0', '--clients', '32', '--count', '400', '--lock-policy', policy, '--base-port', String(base), '--plaintext', '--settle', '5', '--json', json]);
    assert.is(r.code, 0, r.err + r.out);
    assert.match(r.out, new RegExp(`locks      : ${policy} \\(as the nodes report it\\)`));
    const report = readJson(json);
    assert.is(report.lockPolicy, policy);
    return report.outcomes['overall']!['aborted: lock conflict'] ?? 0;
  };
  const skipped = await run('skip');
  const waited = await run('wait');
  assert.ok(skipped >= 40, `30 hot items under skip: ${skipped} of 400 transfers skipped`);
  assert.ok(waited < skipped / 4, `under wait ${waited} lock-conflict aborts, under skip ${skipped}`);
});

test('bench --connect refuses a --lock-policy the running nodes do not have, in one line', async () => {
  const t = makeTopology({ clusters: 1, items: 90, basePort: await freePortRange(3), initialBalance: 1_000_000 });
  const dir = mkdtempSync(join(scratch, 'running-'));
  const cluster = await LocalCluster.create(t, dir, { plaintext: true });
  const { admin, transport } = cluster.admin('spec');
  try {
    await cluster.start(admin);
    const common = ['bench', '--connect', '--plaintext', '--cluster-id', cluster.security.cluster, '--config', cluster.configPath, '--count', '30', '--clients', '4', '--settle', '2'];
    const refused = await shardbank([...common, '--lock-policy', 'wait']);
    assert.is(refused.code, 2, refused.err);
    // (Before it, the progress line that says it connected.)
    const errors = refused.err.split('\n').filter((l) => l.startsWith('shardbank:'));
    assert.is(errors.length, 1, refused.err);
    assert.match(errors[0]!, /^shardbank: --lock-policy wait: a running cluster's lock policy cannot be changed from bench \(n1 runs "skip", n2 runs "skip", n3 runs "skip"\); start its nodes with "tuning": \{"lockPolicy": "wait"\}/);
    assert.not.match(refused.err, /\n\s+at /, 'no stack trace');
    const same = await shardbank([...common, '--lock-policy', 'skip']);
    assert.is(same.code, 0, same.err + same.out);
    assert.match(same.out, /locks      : skip/);
  } finally {
    await cluster.stop();
    await transport.close();
  }
});

test.run();
