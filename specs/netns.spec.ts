/**
 * Across hosts: the nine nodes in three network namespaces of their own
 * (10.77.0.1, .2, .3), each namespace joined to a fourth, the switch, by a
 * veth link, every connection over TLS with certificates from
 * `shardbank init`. The official file's sets give their expected outcomes
 * from a client in the switch namespace; then, under load, the link of the
 * namespace holding every cluster's leader is taken down and brought back:
 * each cluster elects another leader, and the bench's audit holds.
 *
 * Needs root on Linux with iproute2; skipped elsewhere, with the reason.
 * Every namespace it makes it deletes (which deletes its veth links too).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createAuthority } from '../cli/authority.js';
import type { StatusReport } from '../cli/status.js';

const main = fileURLToPath(new URL('../cli/main.js', import.meta.url));
const root = new URL('../../testcases/', import.meta.url);
const OFFICIAL = 'gayathrigaddam00-CSE535-F25-Project-3-Testcases';
const SUBNET = '10.77.0';
const HOSTS = ['A', 'B', 'C'] as const;
const prefix = `sb${process.pid % 100000}`;
const ns = (name: string) => `${prefix}${name}`;

function ip(args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${(r.stderr || r.error?.message || '').trim()}`);
}

/** Why this spec cannot run here, or null. */
function unsupported(): string | null {
  if (process.platform !== 'linux') return `network namespaces need Linux (this is ${process.platform})`;
  if (process.getuid?.() !== 0) return 'making network namespaces needs root';
  if (spawnSync('ip', ['-V']).error) return 'needs iproute2 (the ip command)';
  const probe = ns('probe');
  const made = spawnSync('ip', ['netns', 'add', probe], { encoding: 'utf8' });
  if (made.status !== 0) return `cannot make a network namespace here: ${made.stderr.trim()}`;
  spawnSync('ip', ['netns', 'del', probe]);
  return null;
}

/** The switch namespace S with a bridge, and A, B, C each on it by a veth link (A's end in S is pA). */
function makeNetwork(): void {
  for (const n of ['S', ...HOSTS]) ip(['netns', 'add', ns(n)]);
  ip(['-n', ns('S'), 'link', 'set', 'lo', 'up']);
  ip(['-n', ns('S'), 'link', 'add', 'br0', 'type', 'bridge']);
  ip(['-n', ns('S'), 'addr', 'add', `${SUBNET}.254/24`, 'dev', 'br0']);
  ip(['-n', ns('S'), 'link', 'set', 'br0', 'up']);
  HOSTS.forEach((h, i) => {
    ip(['link', 'add', 'eth0', 'netns', ns(h), 'type', 'veth', 'peer', 'name', `p${h}`, 'netns', ns('S')]);
    ip(['-n', ns('S'), 'link', 'set', `p${h}`, 'master', 'br0']);
    ip(['-n', ns('S'), 'link', 'set', `p${h}`, 'up']);
    ip(['-n', ns(h), 'addr', 'add', `${SUBNET}.${i + 1}/24`, 'dev', 'eth0']);
    ip(['-n', ns(h), 'link', 'set', 'eth0', 'up']);
    ip(['-n', ns(h), 'link', 'set', 'lo', 'up']);
  });
}

function deleteNetwork(): void {
  for (const n of ['S', ...HOSTS]) spawnSync('ip', ['netns', 'del', ns(n)]);
}

const why = unsupported();
let dir = '';
let config = '';
let tls = '';
const nodes = new Map<number, ChildProcess>();

/** Runs `shardbank ARGS` in the switch namespace; resolves with its exit code and output. */
function inSwitch(args: string[], timeoutMs = 120_000): Promise<{ code: number | null; out: string; err: string }> {
  const child = spawn('ip', ['netns', 'exec', ns('S'), process.execPath, main, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve) =>
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    }),
  );
}

async function status(): Promise<StatusReport | null> {
  const r = await inSwitch(['status', '--config', config, '--tls', tls, '--json'], 30_000);
  try {
    return JSON.parse(r.out) as StatusReport;
  } catch {
    return null;
  }
}

async function statusUntil(pred: (s: StatusReport) => boolean, ms: number): Promise<StatusReport | null> {
  const deadline = Date.now() + ms;
  let last: StatusReport | null = null;
  while (Date.now() < deadline) {
    last = await status();
    if (last && pred(last)) return last;
    await new Promise((r) => setTimeout(r, 500));
  }
  return last;
}

if (why) {
  process.stderr.write(`netns.spec: skipped: ${why}\n`);
  test.skip(`nine nodes in three network namespaces over TLS (skipped: ${why})`, () => {});
} else {
  test.before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'shardbank-netns-'));
    // Namespaces go however the process ends.
    process.once('exit', deleteNetwork);
    makeNetwork();
    const placement = Array.from({ length: 9 }, (_, i) => ({ id: i + 1, host: `${SUBNET}.${(i % 3) + 1}`, port: 7101 + i }));
    config = join(dir, 'config.json');
    writeFileSync(config, JSON.stringify({ clusters: 3, nodesPerCluster: 3, nodes: placement }));
    tls = join(dir, 'tls');
    await createAuthority(tls, {
      certificates: [...placement.map((n) => ({ role: 'peer' as const, name: `n${n.id}` })), { role: 'client', name: 'client' }, { role: 'admin', name: 'admin' }],
      days: 1,
    });
    for (const { id } of placement) {
      const host = HOSTS[(id - 1) % 3]!;
      const log = createWriteStream(join(dir, `n${id}.log`));
      const child = spawn(
        'ip',
        ['netns', 'exec', ns(host), process.execPath, main, 'node', '--id', `n${id}`, '--tls', tls, '--config', config, '--data-dir', join(dir, 'data'), '--test-cluster'],
        // The IPC channel carries nothing; its closing stops the node if this process dies.
        { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] },
      );
      child.stdout!.pipe(log);
      child.stderr!.pipe(log);
      nodes.set(id, child);
    }
    const up = await statusUntil((s) => s.nodes.every((n) => n.status), 30_000);
    assert.ok(up, `every node answers: ${JSON.stringify(up?.nodes.filter((n) => !n.status))}`);
  });

  test.after(async () => {
    await Promise.all(
      [...nodes.values()].map(async (child) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise((r) => child.once('exit', r));
        process.kill(child.pid!, 'SIGTERM');
        const force = setTimeout(() => child.exitCode === null && process.kill(child.pid!, 'SIGKILL'), 3000);
        await exited;
        clearTimeout(force);
      }),
    );
    deleteNetwork();
    const left = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
    assert.not.match(left, new RegExp(`^${prefix}`, 'm'), 'no namespace of this spec is left');
    rmSync(dir, { recursive: true, force: true });
  });

  test('the official file\'s sets give their expected outcomes across three namespaces over TLS', async () => {
    const r = await inSwitch(['run', fileURLToPath(new URL(`${OFFICIAL}.csv`, root)), '--yes', '--json', '--connect', '--tls', tls, '--config', config]);
    assert.is(r.code, 0, r.err.slice(-2000));
    const got = r.out.trim().split('\n').map((l) => JSON.parse(l) as { set: number; results: { command: string; status: string; reason?: string; balance?: number }[]; db: unknown; audit: { conserved: boolean; replicasAgree: boolean } });
    const expected = JSON.parse(readFileSync(new URL(`expected/${OFFICIAL}.json`, root), 'utf8')) as { set: number; results: string[]; db: unknown }[];
    assert.is(got.length, expected.length);
    for (const want of expected) {
      const set = got.find((g) => g.set === want.set)!;
      const results = set.results.map((x) => [x.command, x.status, x.reason ?? (x.balance !== undefined ? String(x.balance) : '')].join(' ').trim());
      assert.equal(results, want.results, `set ${want.set}: command outcomes`);
      assert.equal(set.db, want.db, `set ${want.set}: balances on every node`);
      assert.ok(set.audit.conserved && set.audit.replicasAgree, `set ${want.set}: audit`);
    }
  });

  test('under load, the link of the namespace holding every leader goes down and comes back: new leaders, the audit holds', async () => {
    const bench = inSwitch(['bench', '--connect', '--tls', tls, '--config', config, '--duration', '12', '--clients', '16', '--settle', '20', '--json', join(dir, 'bench.json')]);
    await new Promise((r) => setTimeout(r, 4000));
    // A holds n1, n4 and n7: the leaders every set starts with.
    ip(['-n', ns('S'), 'link', 'set', 'pA', 'down']);
    await new Promise((r) => setTimeout(r, 4000));
    ip(['-n', ns('S'), 'link', 'set', 'pA', 'up']);
    const r = await bench;
    assert.is(r.code, 0, `${r.out.slice(-1500)}\n${r.err.slice(-1500)}`);
    const report = JSON.parse(readFileSync(join(dir, 'bench.json'), 'utf8')) as { committed: number; audit: { conserved: boolean; replicasAgree: boolean } };
    assert.ok(report.committed > 100, `${report.committed} committed`);
    assert.ok(report.audit.conserved && report.audit.replicasAgree);
    const after = await statusUntil((s) => s.nodes.every((n) => n.status) && s.clusters.every((c) => c.leader !== null), 30_000);
    assert.ok(after, 'every node answers again and every cluster has a leader');
    const moved = after!.clusters.filter((c) => c.leader !== [1, 4, 7][c.cluster - 1]);
    assert.ok(moved.length > 0, `a cluster elected a leader outside the cut namespace: ${JSON.stringify(after!.clusters)}`);
    for (const [id, child] of nodes) assert.is(child.exitCode, null, `n${id} is still running`);
  });
}

test.run();
