/**
 * Locking (SPEC 5): the leader locks s and r of a transfer before ordering
 * it and releases them once it executes; a transfer that finds either item
 * locked is skipped, and the client is told `aborted: lock conflict`. The skip
 * is ordered as an abort entry (phase A, no balance change), as the 2PC
 * participant does for a locked receiver, so the answer is final.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { TxResult } from '../client/client.js';
import { shardbank, type ClientReply, type Command, type EnvelopeProps, type NodeId } from '../protocol/messages.js';
import { makeTopology } from '../protocol/topology.js';
import { SimCluster } from '../runtime/sim.js';
import { executeSlot } from '../actors/transfer.js';
import { applyEvent, balanceOf, emptyState, type LogSlot } from '../store/state.js';

const { Status } = shardbank;
const C1: NodeId[] = [1, 2, 3];

/** The phases under which a C1 replica ordered this transfer. */
function orderedAs(sim: SimCluster, node: NodeId, sender: number, receiver: number): number[] {
  return [...sim.host(node).state.log.values()]
    .filter((s) => s.command?.transfer?.sender === sender && s.command?.transfer?.receiver === receiver)
    .map((s) => s.phase);
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
  for (const n of C1) {
    assert.equal(orderedAs(sim, n, loserS, loserR), [shardbank.Phase.PHASE_ABORT], `n${n} ordered the skip as an abort`);
  }
  assert.equal(sim.balances(1001, C1), aWon ? [9, 9, 9] : [10, 10, 10]);
  assert.equal(sim.balances(1002, C1), aWon ? [11, 11, 11] : [9, 9, 9]);
  assert.equal(sim.balances(1003, C1), aWon ? [10, 10, 10] : [11, 11, 11]);
  assert.equal(sim.balances(1004, C1), [9, 9, 9]);
  assert.equal(sim.balances(1005, C1), [11, 11, 11]);
  for (const n of C1) assert.is(sim.host(n).state.executedThrough, 3, `n${n} executed two transfers and one abort`);
  await sim.stop();
});

test('locks are held from admission until execution: while one transfer waits for its majority, another on its sender is skipped', async () => {
  // Without a majority the skip cannot be ordered either, so it is answered once the partition heals.
  const sim = await SimCluster.start({ seed: 32 });
  await sim.startSet();
  // Hold the first transfer in flight: n1 orders it but cannot reach a majority.
  sim.network.partition([1], [2, 3]);
  const first = sim.client.transfer(1001, 1002, 1);
  await sim.runUntil(() => sim.host(1).state.maxSeq === 1, 1000);

  const skipped = sim.client.transfer(1001, 1003, 1);
  await sim.runUntil(() => sim.host(1).state.maxSeq === 2, 1000);
  const other = sim.client.transfer(1004, 1005, 1);
  await sim.runUntil(() => sim.host(1).state.maxSeq === 3, 1000);

  assert.equal(orderedAs(sim, 1, 1001, 1003), [shardbank.Phase.PHASE_ABORT], 'the skip is an abort entry, not the transfer');
  assert.equal(orderedAs(sim, 1, 1004, 1005), [shardbank.Phase.PHASE_NONE], 'the transfer on other items was ordered');

  sim.network.heal();
  const [r1, rs, r2] = await sim.until(Promise.all([first, skipped, other]));
  assert.is(r1.status, 'committed');
  assert.is(outcome(rs), 'aborted: lock conflict');
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

test('a request answered "lock conflict" stays aborted: a late copy of it (a relayed broadcast) does not execute it', async () => {
  const sim = await SimCluster.start({ seed: 35 });
  await sim.startSet();
  const ep = sim.network.endpoint('probe');
  const replies: ClientReply[] = [];
  ep.onEnvelope((env: EnvelopeProps) => {
    if (env.reply) replies.push(env.reply);
  });
  const send = (to: NodeId, command: Command) => ep.send({ from: 0, to, fromClient: command.client, request: { command } });
  const a: Command = { client: 'probe/1', timestamp: 1, transfer: { sender: 1001, receiver: 1002, amount: 1 } };
  const b: Command = { client: 'probe/2', timestamp: 1, transfer: { sender: 1002, receiver: 1003, amount: 5 } };
  send(1, a);
  send(1, b);
  await sim.runUntil(() => replies.length === 2, 1000);
  const first = replies.find((r) => r.client === 'probe/2')!;
  assert.equal([first.status, first.reason], [Status.ABORTED, 'lock conflict']);

  // The copy a client's broadcast sent via a follower arrives after the lock is free.
  send(2, b);
  await sim.runFor(300);

  const forB = replies.filter((r) => r.client === 'probe/2');
  assert.ok(
    forB.every((r) => r.status === Status.ABORTED),
    `one request, one answer: got ${forB.map((r) => `${r.status} ${r.reason}`).join(', ')}`,
  );
  for (const n of C1) assert.equal(orderedAs(sim, n, 1002, 1003), [shardbank.Phase.PHASE_ABORT], 'only its abort was ordered');
  assert.equal(sim.balances(1003, C1), [10, 10, 10]);
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

/**
 * A deposed leader's entry can be chosen by a later NEW-VIEW after a newer
 * leader, which never saw it, admitted a conflicting transfer: the locks of
 * either leader then protect nothing, and only the log order is common to all
 * replicas. Here C1 has prepared tx A (1001 -> C2), which holds 1001 in its
 * WAL, and then finds later entries that touch 1001.
 */
test('execution: an entry that would write an item a prepared transaction holds aborts with lock conflict, so its undo stays exact', () => {
  const topology = makeTopology({});
  const state = emptyState(1, 100);
  const ctx = { info: { topology, cluster: 1 }, state };
  const slot = (seq: number, phase: number, client: string, sender: number, receiver: number, amount: number): LogSlot => ({
    seq, phase, ballot: { round: 1, node: 1 }, committed: true,
    command: { client, timestamp: 1, transfer: { sender, receiver, amount } },
  });
  const run = (s: LogSlot) => {
    const ev = executeSlot(ctx, s);
    applyEvent(state, ev);
    return ev.executed!;
  };
  const { Phase } = shardbank;

  const a = run(slot(1, Phase.PHASE_PREPARE, 'a', 1001, 4001, 30));
  assert.is(a.status, Status.COMMITTED);
  assert.is(balanceOf(state, 1001), 70);

  // A second cross-shard prepare on 1001 (the revived entry), and an intra-shard transfer through it.
  const b = run(slot(2, Phase.PHASE_PREPARE, 'b', 1001, 4002, 5));
  assert.is(b.status, Status.ABORTED);
  assert.is(b.reason, 'lock conflict');
  const c = run(slot(3, Phase.PHASE_PREPARE, 'c', 1002, 1001, 7));
  assert.is(c.status, Status.ABORTED);
  assert.is(c.reason, 'lock conflict');
  assert.is(balanceOf(state, 1001), 70);
  assert.is(balanceOf(state, 1002), 100);

  // A aborts: the before-image is exact, and nothing is lost or made.
  run({ ...slot(1, Phase.PHASE_ABORT, 'a', 1001, 4001, 30), reason: 'coordinator changed', runsAt: 4 });
  // (The decision's event names its prepare's seq; the executor marks seq 4, where it ran, as done.)
  applyEvent(state, { executed: { seq: 4 } });
  assert.is(balanceOf(state, 1001), 100);
  assert.is(state.walLocks.size, 0);
  // The lock is free again: the same transfer through 1001 now runs.
  const d = run(slot(5, Phase.PHASE_PREPARE, 'd', 1002, 1001, 7));
  assert.is(d.status, Status.COMMITTED);
  assert.is(balanceOf(state, 1001) + balanceOf(state, 1002), 200);
});

test.run();
