/**
 * The deterministic simulator: one seed is one run, exactly, moves of items
 * included; and a swarm of seeds, with every kind of fault switched on in
 * some of them and items moving between clusters in all of them, finds no
 * violation of the bank's invariants (ownership's among them).
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FAULT_KINDS, simulate, type SimReport } from '../runtime/simulator.js';

const main = fileURLToPath(new URL('../cli/main.js', import.meta.url));
const SEEDS = Number(process.env.SHARDBANK_SIM_SEEDS ?? 200);

test('the same seed run twice gives byte-identical event logs and the same history', async () => {
  const a = await simulate({ seed: 4242, faults: [...FAULT_KINDS] });
  const b = await simulate({ seed: 4242, faults: [...FAULT_KINDS] });
  assert.is(a.digest, b.digest);
  assert.equal(a.history, b.history);
  assert.equal(a.faults, b.faults);
  assert.ok(Object.values(a.faults).some((n) => n > 0), 'faults were injected');
  assert.equal(a.moves, b.moves);
  assert.ok((a.moves?.itemsMoved ?? 0) > 0, 'items moved');
  const c = await simulate({ seed: 4243, faults: [...FAULT_KINDS] });
  assert.is.not(c.digest, a.digest, 'another seed is another run');
});

test(`a swarm of ${SEEDS} seeds with random faults finds no violation`, async () => {
  const child = spawn(process.execPath, [main, 'sim', '--seeds', `1..${SEEDS}`, '--jobs', '2', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const code = await new Promise<number | null>((r) => child.on('exit', r));
  const reports = out.trim().split('\n').map((l) => JSON.parse(l) as SimReport);
  const failing = reports.filter((r) => r.violations.length > 0).map((r) => `seed ${r.seed}: ${r.violations.join('; ')}`);
  assert.equal(failing, [], 'violations');
  assert.is(code, 0, err.slice(-2000));
  assert.is(reports.length, SEEDS);
  for (const kind of FAULT_KINDS) assert.ok(reports.some((r) => r.faults[kind] > 0), `${kind} was injected in some run`);
  const committed = reports.reduce((s, r) => s + (r.outcomes['committed'] ?? 0), 0);
  assert.ok(committed > SEEDS * 30, `work got done (${committed} committed)`);
  // Resharding ran in every run, random moves and the partitioner's plans both, and most moves committed.
  assert.ok(reports.every((r) => r.moves !== null), 'moves on in every run');
  const moved = reports.reduce((s, r) => s + (r.moves?.itemsMoved ?? 0), 0);
  assert.ok(moved > SEEDS * 5, `items moved (${moved})`);
  assert.ok(reports.filter((r) => (r.moves?.planned ?? 0) > 0).length > SEEDS / 4, 'the partitioner planned moves in many runs');
  assert.ok(reports.filter((r) => (r.moves?.committed ?? 0) > 0 && r.faults.leaderKill > 0).length > SEEDS / 4, 'moves committed in runs that killed leaders');
});

test('with resharding off a seed runs as it did before moves existed: no move, and the same run every time', async () => {
  const a = await simulate({ seed: 4242, faults: [...FAULT_KINDS], reshard: false });
  const b = await simulate({ seed: 4242, faults: [...FAULT_KINDS], reshard: false });
  assert.is(a.moves, null);
  assert.is(a.digest, b.digest);
  assert.is.not(a.digest, (await simulate({ seed: 4242, faults: [...FAULT_KINDS] })).digest, 'moves change the run');
});

test.run();
