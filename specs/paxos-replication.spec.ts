/**
 * Multi-Paxos inside a cluster (SPEC 6.1, 6.5) and the client's exactly-once
 * contract (SPEC 3): what a majority decides every replica executes in seq
 * order, a minority decides nothing, and a command however often delivered
 * is applied once.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BankClient } from '../client/client.js';
import { shardbank, type ClientReply, type Command, type EnvelopeProps, type NodeId } from '../protocol/messages.js';
import { SimCluster } from '../runtime/sim.js';

const { Status } = shardbank;
const C1: NodeId[] = [1, 2, 3];

/** The C1 log of a node as `seq:sender->receiver` (or `seq:no-op`), committed entries only. */
function committedLog(sim: SimCluster, node: NodeId): string[] {
  return [...sim.host(node).state.log.values()]
    .filter((s) => s.committed)
    .sort((a, b) => a.seq - b.seq || a.phase - b.phase)
    .map((s) => {
      const t = s.command?.transfer;
      return t ? `${s.seq}:${t.sender}->${t.receiver}` : `${s.seq}:no-op`;
    });
}

/** How many log slots on a node carry this client's request. */
function slotsOf(sim: SimCluster, node: NodeId, client: string, timestamp: number): number {
  return [...sim.host(node).state.log.values()].filter(
    (s) => s.command?.client === client && s.command?.timestamp === timestamp,
  ).length;
}

/** A raw client endpoint that records every reply it gets. */
function probe(sim: SimCluster, name: string) {
  const ep = sim.network.endpoint(name);
  const replies: ClientReply[] = [];
  ep.onEnvelope((env: EnvelopeProps) => {
    if (env.reply) replies.push(env.reply);
  });
  const send = (to: NodeId, command: Command) =>
    ep.send({ from: 0, to, fromClient: command.client, request: { command } });
  return { replies, send };
}

test('normal case: the leader orders transfers at seq 1, 2, ... and every replica executes them in that order', async () => {
  const sim = await SimCluster.start({ seed: 21 });
  await sim.startSet();

  const r1 = await sim.transfer(1001, 1002, 1);
  const r2 = await sim.transfer(1002, 1003, 5);
  await sim.runFor(200);

  for (const r of [r1, r2]) {
    assert.is(r.status, 'committed');
    assert.is(r.node, 1);
    assert.ok(r.latencyMs < sim.topology.tuning.clientTimeoutMs, `no retry needed (${r.latencyMs} ms)`);
  }
  for (const n of C1) {
    const s = sim.host(n).state;
    assert.equal(committedLog(sim, n), ['1:1001->1002', '2:1002->1003'], `n${n} log`);
    assert.is(s.commitThrough, 2, `n${n} commitThrough`);
    assert.is(s.executedThrough, 2, `n${n} executedThrough`);
    for (const slot of s.log.values()) assert.equal({ ...slot.ballot }, { round: 1, node: 1 }, `n${n} ballot`);
  }
  assert.equal(sim.balances(1001, C1), [9, 9, 9]);
  assert.equal(sim.balances(1002, C1), [6, 6, 6]);
  assert.equal(sim.balances(1003, C1), [15, 15, 15]);
  // Other clusters saw nothing.
  assert.is(sim.host(4).state.executedThrough, 0);
  await sim.stop();
});

test('a read is answered by the leader from its state, without a log entry', async () => {
  const sim = await SimCluster.start({ seed: 22 });
  await sim.startSet();
  await sim.transfer(3001, 3002, 4);

  const r = await sim.read(3002);

  assert.equal({ status: r.status, balance: r.balance, node: r.node }, { status: 'ok', balance: 14, node: 4 });
  assert.is(sim.host(4).state.log.size, 1, 'only the transfer was ordered');
  await sim.stop();
});

test('insufficient balance: executed as a failed no-op on every replica, answered aborted, nothing changes', async () => {
  const sim = await SimCluster.start({ seed: 23 });
  await sim.startSet();

  const r = await sim.transfer(1001, 1002, 11);
  await sim.runFor(200);

  assert.is(r.status, 'aborted');
  assert.is(r.reason, 'insufficient balance');
  for (const n of C1) {
    const s = sim.host(n).state;
    assert.equal(committedLog(sim, n), ['1:1001->1002'], `n${n} ordered it`);
    assert.is(s.executedThrough, 1, `n${n} executed it`);
    assert.equal([...s.balances.keys()], [], `n${n} wrote no balance`);
    assert.equal([...s.modified], [], `n${n} PrintDB stays empty`);
    const stored = [...s.replies.values()];
    assert.is(stored.length, 1, `n${n} stored the reply`);
    assert.is(stored[0]!.reply.status, Status.ABORTED);
    assert.is(stored[0]!.reply.reason, 'insufficient balance');
  }
  assert.equal(sim.balances(1001, C1), [10, 10, 10]);
  assert.equal(sim.balances(1002, C1), [10, 10, 10]);
  await sim.stop();
});

test('insufficient balance is strict: a sender may give exactly what it has', async () => {
  const sim = await SimCluster.start({ seed: 24 });
  await sim.startSet();

  const r = await sim.transfer(1001, 1002, 10);
  await sim.runFor(200);

  assert.is(r.status, 'committed');
  assert.equal(sim.balances(1001, C1), [0, 0, 0]);
  assert.equal(sim.balances(1002, C1), [20, 20, 20]);
  await sim.stop();
});

/** Past the leader's failure-detector window: it knows it no longer hears a majority. */
async function afterDetectorWindow(sim: SimCluster): Promise<void> {
  const { tickMs, electionTicksMin, heartbeatTicks } = sim.topology.tuning;
  await sim.runFor(tickMs * (electionTicksMin + 2 * heartbeatTicks + 1));
}

test('minority: a leader cut off alone refuses writes at once ("no majority"), logs nothing, its balances stay; reads still answer', async () => {
  const sim = await SimCluster.start({ seed: 4 });
  await sim.startSet();
  // The client reaches n1 only, so nothing it sends can go round the cut.
  sim.network.partition([1, 'client'], [2, 3]);
  await afterDetectorWindow(sim);

  const [t, rd] = await sim.until(Promise.all([sim.client.transfer(1001, 1002, 1), sim.client.read(1001)]));

  assert.equal({ status: t.status, reason: t.reason }, { status: 'failed', reason: 'no majority' });
  assert.ok(t.latencyMs < sim.topology.tuning.clientTimeoutMs, `answered at once (${t.latencyMs} ms)`);
  assert.equal({ status: rd.status, balance: rd.balance, node: rd.node }, { status: 'ok', balance: 10, node: 1 });
  const s1 = sim.host(1).state;
  assert.is(s1.maxSeq, 0, 'nothing was logged, so nothing can commit later');
  assert.is(s1.commitThrough, 0);
  assert.equal(sim.balances(1001, [1]), [10]);
  assert.equal(sim.balances(1002, [1]), [10]);
  await sim.stop();
});

test('minority: a write the leader proposed before it noticed is unknown, not failed: it is in its log, undecided', async () => {
  const sim = await SimCluster.start({ seed: 4 });
  await sim.startSet();
  sim.network.partition([1, 'client'], [2, 3]);

  const t = await sim.until(sim.client.transfer(1001, 1002, 1));

  assert.equal({ status: t.status, reason: t.reason }, { status: 'unknown', reason: 'no reply' });
  const slot = sim.host(1).state.log.get(1);
  assert.ok(slot && !slot.committed && slot.command?.transfer?.sender === 1001, 'proposed and undecided');
  await sim.stop();
});

test('minority: meanwhile the other two elect a leader and commit', async () => {
  const sim = await SimCluster.start({ seed: 4 });
  await sim.startSet();
  const other = new BankClient({ topology: sim.topology, transport: sim.network.endpoint('other'), name: 'other', timers: sim.timers() });
  sim.network.partition([1, 'client'], [2, 3, 'other']);
  await afterDetectorWindow(sim);

  const [lost, won] = await sim.until(Promise.all([sim.client.transfer(1001, 1002, 1), other.transfer(1003, 1004, 1)]));
  await sim.runFor(100);

  assert.equal({ status: lost.status, reason: lost.reason }, { status: 'failed', reason: 'no majority' });
  assert.is(won.status, 'committed');
  assert.ok(won.node === 2 || won.node === 3, `answered by n${won.node}`);
  assert.is(sim.host(won.node!).view.role, 'leader');
  assert.is(sim.host(won.node!).state.views.length, 1);
  assert.equal(sim.balances(1003, [2, 3]), [9, 9]);
  assert.equal(sim.balances(1004, [2, 3]), [11, 11]);
  assert.equal(sim.balances(1003, [1]), [10], 'n1 learned nothing across the cut');
  await sim.stop();
});

test('minority: after the cut heals, the transfer reported failed never takes effect and n1 converges', async () => {
  const sim = await SimCluster.start({ seed: 4 });
  await sim.startSet();
  const other = new BankClient({ topology: sim.topology, transport: sim.network.endpoint('other'), name: 'other', timers: sim.timers() });
  sim.network.partition([1, 'client'], [2, 3, 'other']);
  await afterDetectorWindow(sim);
  const [lost, won] = await sim.until(Promise.all([sim.client.transfer(1001, 1002, 1), other.transfer(1003, 1004, 1)]));
  assert.is(lost.status, 'failed');
  assert.is(won.status, 'committed');

  sim.network.heal();
  await sim.runFor(1000);

  assert.is(sim.host(1).view.role, 'follower');
  assert.is(sim.host(1).view.leader, won.node);
  assert.equal(sim.balances(1001, C1), [10, 10, 10]);
  assert.equal(sim.balances(1002, C1), [10, 10, 10]);
  assert.equal(sim.balances(1003, C1), [9, 9, 9]);
  assert.equal(sim.balances(1004, C1), [11, 11, 11]);
  const logs = C1.map((n) => committedLog(sim, n));
  assert.equal(logs[0], logs[1]);
  assert.equal(logs[1], logs[2]);
  await sim.stop();
});

test('exactly once: the same command delivered twice is applied once; the second delivery gets the stored reply', async () => {
  const sim = await SimCluster.start({ seed: 25 });
  await sim.startSet();
  const p = probe(sim, 'probe');
  const cmd: Command = { client: 'probe/1', timestamp: 1, transfer: { sender: 1001, receiver: 1002, amount: 3 } };

  p.send(1, cmd);
  await sim.runUntil(() => p.replies.length === 1, 1000);
  p.send(1, cmd);
  await sim.runUntil(() => p.replies.length === 2, 1000);
  await sim.runFor(200);

  assert.equal(
    p.replies.map((r) => [r.client, r.timestamp, r.status]),
    [
      ['probe/1', 1, Status.COMMITTED],
      ['probe/1', 1, Status.COMMITTED],
    ],
  );
  for (const n of C1) {
    assert.is(slotsOf(sim, n, 'probe/1', 1), 1, `n${n} ordered it once`);
    assert.is(sim.host(n).state.executedThrough, 1, `n${n}`);
  }
  assert.equal(sim.balances(1001, C1), [7, 7, 7]);
  assert.equal(sim.balances(1002, C1), [13, 13, 13]);
  await sim.stop();
});

test('exactly once: a retry sent to a follower is relayed and answered from the leader\'s stored reply', async () => {
  const sim = await SimCluster.start({ seed: 26 });
  await sim.startSet();
  const p = probe(sim, 'probe');
  const cmd: Command = { client: 'probe/1', timestamp: 1, transfer: { sender: 1001, receiver: 1002, amount: 3 } };
  p.send(1, cmd);
  await sim.runUntil(() => p.replies.length === 1, 1000);

  p.send(2, cmd);
  p.send(3, cmd);
  await sim.runUntil(() => p.replies.length === 3, 1000);
  await sim.runFor(200);

  assert.ok(p.replies.every((r) => r.status === Status.COMMITTED && r.leader === 1));
  assert.is(sim.host(1).state.log.size, 1);
  assert.equal(sim.balances(1001, C1), [7, 7, 7]);
  await sim.stop();
});

test('exactly once: a request older than the client\'s last answered one is dropped, unapplied and unanswered', async () => {
  const sim = await SimCluster.start({ seed: 27 });
  await sim.startSet();
  const p = probe(sim, 'probe');
  const first: Command = { client: 'probe/1', timestamp: 1, transfer: { sender: 1001, receiver: 1002, amount: 1 } };
  const second: Command = { client: 'probe/1', timestamp: 2, transfer: { sender: 1003, receiver: 1004, amount: 1 } };
  p.send(1, first);
  await sim.runUntil(() => p.replies.length === 1, 1000);
  p.send(1, second);
  await sim.runUntil(() => p.replies.length === 2, 1000);

  p.send(1, first);
  await sim.runFor(500);

  assert.is(p.replies.length, 2, 'no answer to the stale request');
  assert.is(sim.host(1).state.log.size, 2);
  assert.equal(sim.balances(1001, C1), [9, 9, 9]);
  assert.equal(sim.balances(1003, C1), [9, 9, 9]);
  await sim.stop();
});

test('exactly once: a lost reply makes the client broadcast its retry, which gets the stored reply', async () => {
  const sim = await SimCluster.start({ seed: 5 });
  await sim.startSet();
  const pending = sim.client.transfer(1001, 1002, 3);
  await sim.runUntil(() => sim.host(1).state.executedThrough >= 1, 1000);

  // Executed, but its reply is still on the wire: cut it, and heal before the client's timer fires.
  sim.network.partition(['client'], [1]);
  await sim.runFor(sim.topology.tuning.clientTimeoutMs - 100);
  assert.is(sim.client.pending, 1, 'the client has no reply yet');
  sim.network.heal();
  const r = await sim.until(pending);
  await sim.runFor(200);

  assert.is(r.status, 'committed');
  assert.ok(r.latencyMs >= sim.topology.tuning.clientTimeoutMs, `answered after the retry (${r.latencyMs} ms)`);
  for (const n of C1) assert.is(sim.host(n).state.log.size, 1, `n${n} ordered it once`);
  assert.equal(sim.balances(1001, C1), [7, 7, 7]);
  assert.equal(sim.balances(1002, C1), [13, 13, 13]);
  await sim.stop();
});

test('exactly once: with every message duplicated by the network, each transfer is applied once', async () => {
  const sim = await SimCluster.start({ seed: 28 });
  await sim.startSet();
  sim.network.setDuplicateRate(1);

  const results = await sim.until(
    Promise.all([
      sim.client.transfer(1001, 1002, 1),
      sim.client.transfer(1003, 1004, 2),
      sim.client.transfer(1005, 1006, 3),
      sim.client.transfer(3001, 3002, 4),
    ]),
  );
  const more = await sim.transfer(1002, 1001, 5);
  await sim.runFor(300);

  assert.ok(sim.network.stats.duplicated > 0);
  assert.equal(
    [...results, more].map((r) => r.status),
    ['committed', 'committed', 'committed', 'committed', 'committed'],
  );
  for (const n of C1) {
    const log = committedLog(sim, n);
    assert.is(log.length, 4, `n${n}: ${log.join(' ')}`);
    assert.is(sim.host(n).state.executedThrough, 4);
  }
  assert.equal(sim.balances(1001, C1), [14, 14, 14]);
  assert.equal(sim.balances(1002, C1), [6, 6, 6]);
  assert.equal(sim.balances(1004, C1), [12, 12, 12]);
  assert.equal(sim.balances(1006, C1), [13, 13, 13]);
  assert.equal(sim.balances(3002, [4, 5, 6]), [14, 14, 14]);
  await sim.stop();
});

test.run();
