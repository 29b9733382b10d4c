/**
 * A local cluster is the run's own: a second run refuses to start and names
 * the port and the flag that moves it; Ctrl-C at any moment, or a closed
 * output pipe, stops the run and its nodes and removes its temporary
 * directory; `--connect` leaves nothing behind and talks only to the cluster
 * its credentials name.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { LocalCluster } from '../cli/cluster.js';
import { BUSY_BUDGET, BUSY_TURNS, JitBudget, LOOK_MS, operatorBudget, QUIET_MS, V8_DEFAULT_BUDGET } from '../cli/jit.js';
import { makeTopology } from '../protocol/topology.js';
import { freePortRange } from './support/ports.js';

const main = fileURLToPath(new URL('../cli/main.js', import.meta.url));
const official = fileURLToPath(new URL('../../testcases/gayathrigaddam00-CSE535-F25-Project-3-Testcases.csv', import.meta.url));
const scratch = mkdtempSync(join(tmpdir(), 'shardbank-lifecycle-'));
test.after(() => rmSync(scratch, { recursive: true, force: true }));

interface Run {
  child: ChildProcess;
  out: string;
  err: string;
  exited: Promise<number | null>;
  /** The run's own temporary directory root (TMPDIR), empty when it left nothing. */
  tmp: string;
}

let runs = 0;
function run(args: string[], stdout: 'pipe' | 'ignore' = 'pipe'): Run {
  const tmp = join(scratch, `tmp-${++runs}`);
  mkdirSync(tmp, { recursive: true });
  const child = spawn(process.execPath, [main, 'run', ...args], { stdio: ['ignore', stdout, 'pipe'], env: { ...process.env, TMPDIR: tmp } });
  const r: Run = { child, out: '', err: '', tmp, exited: new Promise((resolve) => child.once('exit', (code) => resolve(code))) };
  child.stdout?.on('data', (d) => (r.out += d));
  child.stderr!.on('data', (d) => (r.err += d));
  const kill = setTimeout(() => child.kill('SIGKILL'), 120_000);
  void r.exited.then(() => clearTimeout(kill));
  return r;
}

async function until(pred: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

async function portsFreed(base: number, count: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (let p = base; p < base + count; p++) {
    while (!(await portFree(p))) {
      if (Date.now() > deadline) throw new Error(`port ${p} still held after the run ended`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

test("a node process's V8 interrupt budget is V8's default at first, low while the node is busy, the default again after a quiet spell, unless its operator set one", () => {
  assert.ok(!operatorBudget([]));
  assert.ok(!operatorBudget(['--cpu-prof'], '--max-old-space-size=512'));
  assert.ok(operatorBudget(['--interrupt-budget=67584']));
  assert.ok(operatorBudget([], '--max-old-space-size=512 --interrupt_budget=4096'));
  assert.ok(!operatorBudget(['--interrupt-budget-for-feedback-allocation=100']));
  const set: number[] = [];
  const jit = new JitBudget((b) => set.push(b), 0);
  let now = 0;
  let turns = 0;
  // Turns at a given rate per look, one look each call.
  const look = (perLook: number) => jit.turned((now += LOOK_MS), (turns += perLook));
  for (let i = 0; i < 30; i++) look(BUSY_TURNS);
  assert.equal(set, [], "a node that never gets busy keeps V8's default");
  jit.turned(now + LOOK_MS - 1, turns + 10 * BUSY_TURNS);
  assert.equal(set, [], 'no look before LOOK_MS has passed');
  look(BUSY_TURNS + 1);
  assert.equal(set, [BUSY_BUDGET], 'busy');
  for (let i = 0; i < QUIET_MS / LOOK_MS - 1; i++) look(BUSY_TURNS);
  assert.equal(set, [BUSY_BUDGET], 'not yet a quiet spell');
  look(1);
  assert.equal(set, [BUSY_BUDGET, V8_DEFAULT_BUDGET], 'quiet');
  look(BUSY_TURNS + 1);
  assert.equal(set, [BUSY_BUDGET, V8_DEFAULT_BUDGET, BUSY_BUDGET], 'busy again');
  for (let i = 0; i < QUIET_MS / LOOK_MS - 1; i++) look(0);
  look(BUSY_TURNS + 1);
  for (let i = 0; i < QUIET_MS / LOOK_MS - 1; i++) look(0);
  assert.equal(set.length, 3, 'a busy look ends the quiet spell before it counts');
  // An idle node is not woken to look: the first turn after a long gap counts the gap as quiet.
  jit.turned((now += 60_000), (turns += 1));
  assert.equal(set, [BUSY_BUDGET, V8_DEFAULT_BUDGET, BUSY_BUDGET, V8_DEFAULT_BUDGET]);
  jit.turned((now += 2 * LOOK_MS), (turns += 2 * BUSY_TURNS + 1));
  assert.equal(set.at(-1), BUSY_BUDGET, 'the rate is over the time since the last look');
});

test('with its base port held by another program, run refuses to start, naming the port and --base-port', async () => {
  const base = await freePortRange(9);
  const squatter = net.createServer();
  await new Promise<void>((r) => squatter.listen(base + 4, '127.0.0.1', () => r()));
  try {
    const r = run([official, '--yes', '--base-port', String(base)]);
    assert.is(await r.exited, 2, r.err);
    assert.match(r.err, new RegExp(`port ${base + 4} on 127\\.0\\.0\\.1 \\(for n5\\) is in use .*--base-port`));
    assert.equal(readdirSync(r.tmp), [], 'no temporary directory left');
  } finally {
    squatter.close();
  }
});

test('a second run while one runs refuses to start; Ctrl-C then stops the first, its nodes and its directory', async () => {
  const base = await freePortRange(9);
  const first = run([official, '--yes', '--base-port', String(base)]);
  await until(() => /nodes running/.test(first.err), 30_000, 'the first run\'s nodes');
  const second = run([official, '--yes', '--base-port', String(base)]);
  assert.is(await second.exited, 2, second.err);
  assert.match(second.err, new RegExp(`port ${base} on 127\\.0\\.0\\.1 \\(for n1\\) is in use`));
  assert.equal(readdirSync(second.tmp), []);
  assert.is(first.child.exitCode, null, 'the first run goes on');
  first.child.kill('SIGINT');
  assert.is(await first.exited, 130);
  assert.match(first.err, /SIGINT: stopping/);
  assert.equal(readdirSync(first.tmp), [], 'the first run\'s directory is gone');
  await portsFreed(base, 9);
});

test('Ctrl-C while the nodes are still starting stops everything and leaves nothing', async () => {
  const base = await freePortRange(9);
  const r = run([official, '--yes', '--base-port', String(base)]);
  await until(() => /starting 9 node processes/.test(r.err), 20_000, 'the start');
  r.child.kill('SIGINT');
  assert.is(await r.exited, 130, r.err);
  assert.equal(readdirSync(r.tmp), []);
  await portsFreed(base, 9);
});

test('a closed output pipe stops the run, its nodes and its directory', async () => {
  const base = await freePortRange(9);
  const r = run([official, '--yes', '--base-port', String(base)]);
  await until(() => r.out.length > 0, 30_000, 'the first output');
  r.child.stdout!.destroy();
  assert.is(await r.exited, 130, r.err);
  assert.equal(readdirSync(r.tmp), []);
  await portsFreed(base, 9);
});

test('run --connect uses the nodes its credentials name, leaves no directory, and refuses other clusters', async () => {
  const base = await freePortRange(9);
  const topology = makeTopology({ basePort: base });
  const dataDir = join(scratch, 'connect');
  const cluster = await LocalCluster.create(topology, dataDir);
  const { admin, transport } = cluster.admin('spec');
  try {
    await cluster.start(admin);
    const tls = join(dataDir, 'tls');
    const ok = run([official, '--yes', '--set', '4', '--connect', '--tls', tls, '--config', cluster.configPath]);
    assert.is(await ok.exited, 0, ok.err);
    assert.match(ok.out, /audit: money conserved/);
    assert.equal(readdirSync(ok.tmp), [], '--connect left nothing behind');
    const plain = run([official, '--yes', '--set', '4', '--connect', '--plaintext', '--config', cluster.configPath]);
    assert.is(await plain.exited, 2, plain.err);
    assert.match(plain.err, /--connect: n\d does not answer as a node of cluster local/);
    const foreign = join(scratch, 'foreign');
    const { createAuthority } = await import('../cli/authority.js');
    await createAuthority(foreign, { certificates: [{ role: 'admin', name: 'admin' }, { role: 'client', name: 'client' }], days: 1 });
    const other = run([official, '--yes', '--set', '4', '--connect', '--tls', foreign, '--config', cluster.configPath]);
    assert.is(await other.exited, 2, other.err);
    assert.match(other.err, /does not answer as a node of cluster/);
    assert.equal(cluster.deaths(), []);
  } finally {
    await cluster.stop();
    await transport.close();
  }
});

test.run();
