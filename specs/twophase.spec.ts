/**
 * Two-Phase Commit over Paxos (SPEC 5, 6.3-6.6): the coordinator (leader of
 * the sender's cluster) and the participant (leader of the receiver's) each
 * order a prepare entry P, then the decision C or A at the same seq as that
 * P. P applies the cluster's half tentatively and keeps a before-image in the
 * WAL, which holds the lock; C keeps the write, A restores the before-image.
 * The faults (failed leaders, lost decisions, no majority, random drops) are
 * in twophase-faults.spec.ts.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { TxResult } from '../client/client.js';
import { shardbank, type EnvelopeProps, type NodeId } from '../protocol/messages.js';
import { createRng } from '../protocol/rng.js';
import { clusterOfItem } from '../protocol/topology.js';
import { SimCluster } from '../runtime/sim.js';
import { assertNothingInDoubt, assertReplicasEqual, entriesOf, outcome, settle, totalMoney, type Ordered } from './support/bank.js';

const { Phase } = shardbank;
const C1: NodeId[] = [1, 2, 3];
const C2: NodeId[] = [4, 5, 6];


type Rule = (env: EnvelopeProps) => 'drop' | 'hold' | 'pass';

/**
 * Filters what nodes send: a rule may drop an envelope or hold it back; the
 * returned `release` sends what was held, `restore` puts the network back.
 */
function intercept(sim: SimCluster, rule: Rule) {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const net = sim.network as any;
  const original = net.transmit;
  const held: [unknown, EnvelopeProps][] = [];
  net.transmit = (from: unknown, env: EnvelopeProps) => {
    const verdict = rule(env);
    if (verdict === 'drop') return;
    if (verdict === 'hold') held.push([from, env]);
    else original.call(net, from, env);
  };
  return {
    held,
    release(): void {
      for (const [from, env] of held.splice(0)) original.call(net, from, env);
    },
    restore(): void {
      net.transmit = original;
    },
  };
}

test('commit: (1001 -> 3001, 1) prepares and commits in both clusters, the decision at the seq of the prepare', async () => {
  const sim = await SimCluster.start({ seed: 101 });
  await sim.startSet();

  const r = await sim.transfer(1001, 3001, 1);
  await settle(sim);

  assert.is(outcome(r), 'committed');
  for (const n of [...C1, ...C2]) {
    const entries = entriesOf(sim, n, 1001, 3001);
    assert.is(entries.length, 2, `n${n} holds a P and a C`);
    const [p, c] = entries as [Ordered, Ordered];
    assert.equal([p.phase, c.phase], [Phase.PHASE_PREPARE, Phase.PHASE_COMMIT], `n${n} phases`);
    assert.is(c.seq, p.seq, `n${n}: the C entry reuses the P entry's seq`);
    assert.ok(p.committed && c.committed, `n${n}: both entries committed`);
  }
  assert.equal(sim.balances(1001, C1), [9, 9, 9]);
  assert.equal(sim.balances(3001, C2), [11, 11, 11]);
  assertNothingInDoubt(sim);
  for (const n of [...C1, ...C2]) assert.equal([...sim.host(n).state.decisions.values()], [true], `n${n} recorded the commit`);
  assert.is(totalMoney(sim), 90_000);
  await sim.stop();
});

test('participant abort: its receiver is locked, so it orders an abort entry, and the coordinator undoes the sender\'s debit', async () => {
  const sim = await SimCluster.start({ seed: 102 });
  await sim.startSet();
  // A transfer from C3 leaves 3001 prepared at C2: its decision does not reach C2 yet.
  const net = intercept(sim, (env) => (env.txDecision && C2.includes(env.to ?? 0) ? 'drop' : 'pass'));
  const first = await sim.transfer(6001, 3001, 1);
  assert.is(outcome(first), 'committed', 'the coordinator answers once its own cluster decided');
  assert.ok(sim.host(4).state.walLocks.has(3001), '3001 is held by the prepared transaction');

  const r = await sim.transfer(1001, 3001, 1);

  assert.is(r.status, 'aborted');
  assert.match(r.reason ?? '', /participant/);
  assert.match(r.reason ?? '', /lock conflict/);
  for (const n of C2) {
    assert.equal(
      entriesOf(sim, n, 1001, 3001).map((e) => e.phase),
      [Phase.PHASE_ABORT],
      `n${n} ordered only an abort entry for it`,
    );
  }
  await sim.runFor(100);
  for (const n of C1) {
    const entries = entriesOf(sim, n, 1001, 3001);
    assert.equal(entries.map((e) => e.phase), [Phase.PHASE_PREPARE, Phase.PHASE_ABORT], `n${n} prepared, then aborted`);
    assert.is(entries[1]!.seq, entries[0]!.seq, `n${n}: A at the seq of P`);
    assert.equal([...sim.host(n).state.wal.keys()], [], `n${n} undid and dropped its WAL entry`);
  }
  assert.equal(sim.balances(1001, C1), [10, 10, 10], 'the debit is undone on every C1 replica');

  net.restore();
  await settle(sim);
  assert.equal(sim.balances(3001, C2), [11, 11, 11], 'the first transfer commits once its decision gets through');
  assert.equal(sim.balances(6001, [7, 8, 9]), [9, 9, 9]);
  assertNothingInDoubt(sim);
  assert.is(totalMoney(sim), 90_000);
  await sim.stop();
});

test('coordinator abort: a sender without the funds is aborted at once, without 2PC: only an abort entry in its own cluster, so the answer is final', async () => {
  const sim = await SimCluster.start({ seed: 103 });
  await sim.startSet();

  const r = await sim.transfer(1001, 3001, 11);
  await sim.runFor(200);

  assert.is(outcome(r), 'aborted: insufficient balance');
  assert.ok(r.latencyMs < sim.topology.tuning.clientTimeoutMs, `answered after one consensus round in C1 (${r.latencyMs} ms)`);
  for (const n of C1) {
    assert.equal(
      entriesOf(sim, n, 1001, 3001).map((e) => e.phase),
      [Phase.PHASE_ABORT],
      `n${n} ordered the abort, no prepare`,
    );
  }
  for (const n of C2) assert.is(sim.host(n).state.maxSeq, 0, `n${n}: the participant never heard of it`);
  assert.equal(sim.balances(1001, C1), [10, 10, 10]);
  assert.equal(sim.balances(3001, C2), [10, 10, 10]);
  // The refusal held no lock: the same sender can pay what it has.
  assert.is(outcome(await sim.transfer(1001, 3001, 10)), 'committed');
  await sim.stop();
});

test('a decision lost on the way (the first COMMIT and the first ACK) is resent until acknowledged, and applied once', async () => {
  const sim = await SimCluster.start({ seed: 107 });
  await sim.startSet();
  let decisions = 0;
  let acks = 0;
  const net = intercept(sim, (env) => {
    if (env.txDecision) return ++decisions === 1 ? 'drop' : 'pass';
    if (env.txAck) return ++acks === 1 ? 'drop' : 'pass';
    return 'pass';
  });

  const r = await sim.transfer(1001, 3001, 1);
  await settle(sim);
  net.restore();

  assert.is(outcome(r), 'committed');
  assert.ok(decisions >= 3, `the decision was sent ${decisions} times: once lost, once unacknowledged, once acknowledged`);
  assert.ok(acks >= 2, `acknowledged ${acks} times`);
  for (const n of C2) {
    const entries = entriesOf(sim, n, 1001, 3001);
    assert.equal(entries.map((e) => e.phase), [Phase.PHASE_PREPARE, Phase.PHASE_COMMIT], `n${n}: one P, one C`);
    assert.is(entries[1]!.seq, entries[0]!.seq);
  }
  assert.equal(sim.balances(3001, C2), [11, 11, 11], 'credited once');
  assert.equal(sim.balances(1001, C1), [9, 9, 9]);
  assertNothingInDoubt(sim);
  await sim.stop();
});

/** Holds the participant's vote back, so the transaction stays prepared at the coordinator. */
async function preparedAtCoordinator(sim: SimCluster, sender: number, receiver: number) {
  const net = intercept(sim, (env) => (env.txVote ? 'hold' : 'pass'));
  const pending = sim.client.transfer(sender, receiver, 1);
  await sim.runUntil(() => net.held.length > 0 && C1.every((n) => sim.host(n).state.wal.size === 1), 1000);
  const wal = [...sim.host(1).state.wal.values()][0]!;
  return { net, pending, seq: wal.seq };
}

test('figure 4: while (1001 -> 3001) is prepared at seq s, an intra-shard transfer on other items takes seq s+1, and C lands at s', async () => {
  const sim = await SimCluster.start({ seed: 108 });
  await sim.startSet();
  await sim.transfer(1002, 1003, 1); // seq 1, as the figure's first record
  const { net, pending, seq: s } = await preparedAtCoordinator(sim, 1001, 3001);
  assert.is(s, 2);

  const intra = await sim.transfer(1004, 1005, 5);
  assert.is(outcome(intra), 'committed', 'the prepared transaction does not hold up other items');
  assert.equal(sim.balances(1001, C1), [9, 9, 9], 'tentatively debited');

  net.release();
  net.restore();
  const cross = await sim.until(pending);
  await settle(sim);

  assert.is(outcome(cross), 'committed');
  for (const n of C1) {
    const { log } = sim.host(n).state;
    assert.is(log.get(s)?.command?.transfer?.receiver, 3001, `n${n}: P at s`);
    assert.is(log.get(s + 1)?.command?.transfer?.sender, 1004, `n${n}: intra at s+1`);
    assert.is(log.get(s)?.command?.transfer?.receiver, 3001, `n${n}: C at s`);
    // Executed in that order: a decision runs behind the cursor, when it commits.
    const executed = (await sim.logs.get(n)!.readAll())
      .filter((e) => e.executed?.command?.transfer)
      .map((e) => [e.executed!.seq, e.executed!.phase ?? 0]);
    assert.equal(executed, [[1, 0], [s, Phase.PHASE_PREPARE], [s + 1, 0], [s, Phase.PHASE_COMMIT]], `n${n} execution order`);
  }
  assert.equal(sim.balances(1001, C1), [9, 9, 9]);
  assert.equal(sim.balances(1004, C1), [5, 5, 5]);
  assert.equal(sim.balances(1005, C1), [15, 15, 15]);
  assertNothingInDoubt(sim);
  await sim.stop();
});

test('an intra-shard transfer on an item held by a prepared transaction is skipped (ordered abort) once the bounded wait runs out', async () => {
  const sim = await SimCluster.start({ seed: 109 });
  await sim.startSet();
  const { net, pending, seq: s } = await preparedAtCoordinator(sim, 1001, 3001);

  const blocked = await sim.transfer(1001, 1002, 1);

  assert.is(outcome(blocked), 'aborted: lock conflict');
  const { lockWaitTicks, tickMs } = sim.topology.tuning;
  assert.ok(blocked.latencyMs >= lockWaitTicks * tickMs - tickMs, `it waited for the lock first (${blocked.latencyMs} ms)`);
  for (const n of C1) {
    const entries = entriesOf(sim, n, 1001, 1002);
    assert.equal(entries.map((e) => e.phase), [Phase.PHASE_ABORT], `n${n} ordered the skip`);
    assert.ok(entries[0]!.seq > s, 'at a seq of its own');
  }

  net.release();
  net.restore();
  assert.is(outcome(await sim.until(pending)), 'committed');
  await settle(sim);
  assert.equal(sim.balances(1001, C1), [9, 9, 9]);
  assert.equal(sim.balances(1002, C1), [10, 10, 10]);
  assertNothingInDoubt(sim);
  await sim.stop();
});

test('an intra-shard transfer on an item held by a prepared transaction waits for its decision and commits when it comes in time', async () => {
  const sim = await SimCluster.start({ seed: 110 });
  await sim.startSet();
  const { net, pending } = await preparedAtCoordinator(sim, 1001, 3001);

  const waiting = sim.client.transfer(1001, 1002, 1);
  await sim.runFor(2 * sim.topology.tuning.tickMs);
  assert.equal(entriesOf(sim, 1, 1001, 1002), [], 'not ordered while the lock is held');
  net.release();
  net.restore();
  const [cross, intra] = await sim.until(Promise.all([pending, waiting]));
  await settle(sim);

  assert.is(outcome(cross), 'committed');
  assert.is(outcome(intra), 'committed');
  const { lockWaitTicks, tickMs } = sim.topology.tuning;
  assert.ok(intra.latencyMs < (lockWaitTicks - 2) * tickMs, `it ran once the decision freed the item, not at the end of its wait (${intra.latencyMs} ms)`);
  const { seq: crossSeq } = entriesOf(sim, 1, 1001, 3001)[0]!;
  for (const n of C1) {
    assert.equal(entriesOf(sim, n, 1001, 1002).map((e) => e.phase), [Phase.PHASE_NONE]);
    assert.ok(entriesOf(sim, n, 1001, 1002)[0]!.seq > crossSeq);
  }
  assert.equal(sim.balances(1001, C1), [8, 8, 8]);
  assert.equal(sim.balances(1002, C1), [11, 11, 11]);
  assert.equal(sim.balances(3001, C2), [11, 11, 11]);
  assertNothingInDoubt(sim);
  await sim.stop();
});

test('40 concurrent transfers over 6 hot items in C1 and C2: each commits or aborts, no money is made or lost, nothing stays locked', async () => {
  const sim = await SimCluster.start({ seed: 111 });
  await sim.startSet();
  const hot = [1001, 1002, 1003, 3001, 3002, 3003];
  const rng = createRng(111);
  const pairs: [number, number, number][] = [];
  while (pairs.length < 40) {
    const s = hot[rng.int(0, 5)]!;
    const r = hot[rng.int(0, 5)]!;
    if (s !== r) pairs.push([s, r, rng.int(1, 4)]);
  }
  assert.ok(pairs.some(([s, r]) => clusterOfItem(sim.topology, s) !== clusterOfItem(sim.topology, r)), 'some cross-shard');
  assert.ok(pairs.some(([s, r]) => clusterOfItem(sim.topology, s) === clusterOfItem(sim.topology, r)), 'some intra-shard');

  // In waves a few ms apart, so later ones meet earlier ones at every stage: admitted, prepared, deciding.
  const running: Promise<TxResult>[] = [];
  for (const [i, [s, r, a]] of pairs.entries()) {
    running.push(sim.client.transfer(s, r, a));
    if (i % 5 === 4) await sim.runFor(15);
  }
  const results = await sim.until(Promise.all(running));
  await settle(sim);

  const allowed = /^(committed|aborted: (lock conflict|insufficient balance|participant aborted: lock conflict))$/;
  for (const [i, r] of results.entries()) assert.match(outcome(r), allowed, `(${pairs[i]!.join(', ')})`);
  assert.ok(results.filter((r) => r.status === 'committed').length >= 5, 'some commit');
  assert.ok(results.some((r) => r.status === 'aborted'), 'some conflict');
  assert.is(totalMoney(sim), 90_000);
  for (const n of [...C1, ...C2]) for (const item of hot) assert.ok(sim.balances(item, [n])[0]! >= 0, `n${n}: ${item} not negative`);
  assertReplicasEqual(sim, C1);
  assertReplicasEqual(sim, C2);
  assertNothingInDoubt(sim);
  // Every lock was released: each hot item can be used again.
  const again = await sim.until(Promise.all([sim.client.transfer(1001, 3001, 1), sim.client.transfer(3002, 1002, 1), sim.client.transfer(1003, 3003, 1)]));
  assert.equal(again.map(outcome), ['committed', 'committed', 'committed']);
  await sim.stop();
});

test.run();
