/**
 * Locking (SPEC 5): the leader locks s and r of a transfer before ordering
 * it and releases them once it executes; a transfer that finds either item
 * locked is skipped, and the client is told `aborted: lock conflict`.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { TxResult } from '../client/client.js';
import { type NodeId } from '../protocol/messages.js';
import { makeTopology } from '../protocol/topology.js';
import { SimCluster } from '../runtime/sim.js';

const C1: NodeId[] = [1, 2, 3];

/** Whether any C1 replica ever put this transfer in its log. */
function ordered(sim: SimCluster, sender: number, receiver: number): boolean {
  return C1.some((n) =>
    [...sim.host(n).state.log.values()].some(
      (s) => s.command?.transfer?.sender === sender && s.command?.transfer?.receiver === receiver,
    ),
  );
}

function outcome(r: TxResult): string {
  return r.reason ? `${r.status}: ${r.reason}` : r.status;
}

test('lock skip: of two concurrent transfers sharing an item, the one that finds it locked is aborted and changes nothing', async () => {
  const sim = await SimCluster.start({ seed: 31 });
  await sim.startSet();

  // 1002 is the receiver of one and the sender of the other; neither waits for the other.
  const a = sim.client.transfer(1001, 1002, 1);
  const b = sim.client.transfer(1002, 1003, 1);
  const c = sim.client.transfer(1004, 1005, 1);
  const [ra, rb, rc] = await sim.until(Promise.all([a, b, c]));
  await sim.runFor(200);

  const outcomes = [outcome(ra), outcome(rb)].sort();
  assert.equal(outcomes, ['aborted: lock conflict', 'committed']);
  assert.is(outcome(rc), 'committed', 'a transfer on other items proceeds');
  const aWon = ra.status === 'committed';
  const [loserS, loserR] = aWon ? [1002, 1003] : [1001, 1002];
  assert.not.ok(ordered(sim, loserS, loserR), 'the skipped transfer was never ordered');
  assert.equal(sim.balances(1001, C1), aWon ? [9, 9, 9] : [10, 10, 10]);
  assert.equal(sim.balances(1002, C1), aWon ? [11, 11, 11] : [9, 9, 9]);
  assert.equal(sim.balances(1003, C1), aWon ? [10, 10, 10] : [11, 11, 11]);
  assert.equal(sim.balances(1004, C1), [9, 9, 9]);
  assert.equal(sim.balances(1005, C1), [11, 11, 11]);
  for (const n of C1) assert.is(sim.host(n).state.executedThrough, 2, `n${n} executed two transfers`);
  await sim.stop();
});

test('locks are held from admission until execution: while one transfer waits for its majority, another on its sender is skipped', async () => {
  const sim = await SimCluster.start({ seed: 32 });
  await sim.startSet();
  // Hold the first transfer in flight: n1 orders it but cannot reach a majority.
  sim.network.partition([1], [2, 3]);
  const first = sim.client.transfer(1001, 1002, 1);
  await sim.runUntil(() => sim.host(1).state.maxSeq === 1, 1000);

  const skipped = await sim.transfer(1001, 1003, 1);
  const other = sim.client.transfer(1004, 1005, 1);
  await sim.runUntil(() => sim.host(1).state.maxSeq === 2, 1000);

  assert.is(outcome(skipped), 'aborted: lock conflict');
  assert.ok(skipped.latencyMs < sim.topology.tuning.clientTimeoutMs, 'skipped at once, not after a timeout');
  assert.is(sim.host(1).state.log.size, 2, 'the transfer on other items was ordered, the skipped one was not');

  sim.network.heal();
  const [r1, r2] = await sim.until(Promise.all([first, other]));
  assert.is(r1.status, 'committed');
  assert.is(r2.status, 'committed');
  // Executed: its locks are gone, so the same items are free again.
  const again = await sim.transfer(1001, 1003, 1);
  assert.is(again.status, 'committed');
  await sim.runFor(200);
  assert.equal(sim.balances(1001, C1), [8, 8, 8]);
  assert.equal(sim.balances(1002, C1), [11, 11, 11]);
  assert.equal(sim.balances(1003, C1), [11, 11, 11]);
  await sim.stop();
});

test('a transfer aborted for insufficient balance still releases its locks', async () => {
  const sim = await SimCluster.start({ seed: 33 });
  await sim.startSet();

  const poor = await sim.transfer(1001, 1002, 50);
  const next = await sim.transfer(1002, 1001, 1);

  assert.is(outcome(poor), 'aborted: insufficient balance');
  assert.is(next.status, 'committed');
  await sim.stop();
});

test('locks belong to the leader of one cluster: a transfer in C2 is not blocked by C1\'s locks on the same positions', async () => {
  const sim = await SimCluster.start({ seed: 34 });
  await sim.startSet();
  sim.network.partition([1], [2, 3]);
  const held = sim.client.transfer(1001, 1002, 1);
  await sim.runUntil(() => sim.host(1).state.maxSeq === 1, 1000);

  const elsewhere = await sim.transfer(3001, 3002, 1);

  assert.is(elsewhere.status, 'committed');
  sim.network.heal();
  assert.is((await sim.until(held)).status, 'committed');
  await sim.stop();
});

test('a transfer the leader refuses as overloaded does not keep its items locked', async () => {
  // A pipeline of one round of one entry and a queue of one, so the third request overflows.
  const topology = makeTopology({ tuning: { maxBatch: 1, maxInflightRounds: 1, maxQueue: 1 } });
  const sim = await SimCluster.start({ seed: 6, topology });
  await sim.startSet();
  sim.network.partition([1], [2, 3]);
  const inFlight = sim.client.transfer(1001, 1002, 1);
  await sim.runUntil(() => sim.host(1).state.maxSeq === 1, 1000);
  const queued = sim.client.transfer(1003, 1004, 1);
  await sim.runFor(10);
  const refused = await sim.transfer(1005, 1006, 1);
  assert.is(outcome(refused), 'failed: overloaded');
  sim.network.heal();
  const done = await sim.until(Promise.all([inFlight, queued]));
  assert.equal(done.map((r) => r.status), ['committed', 'committed']);

  // Nothing is in flight now: 1005 and 1006 must be free.
  const retry = await sim.transfer(1005, 1006, 1);

  assert.is(outcome(retry), 'committed');
  await sim.stop();
});

test.run();
