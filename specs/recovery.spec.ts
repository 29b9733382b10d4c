/**
 * Recovery and the log as the truth (DESIGN rules 1 and 3, SPEC 6.2): a node
 * back from a failure or a crash catches up on what it missed, a node's state
 * is the fold of its log, and one seed gives one run.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { TxResult } from '../client/client.js';
import { shardbank, type Ballot, type NodeId } from '../protocol/messages.js';
import { SimCluster } from '../runtime/sim.js';
import { replay, type ReplicaState } from '../store/state.js';

const C1: NodeId[] = [1, 2, 3];
const ALL: NodeId[] = [1, 2, 3, 4, 5, 6, 7, 8, 9];

function plain(b: Ballot | null | undefined): Ballot {
  return { round: b?.round ?? 0, node: b?.node ?? 0 };
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

/** A state as plain data, Maps as sorted objects and messages as their encoding, so deepEqual is exact. */
function canonical(s: ReplicaState) {
  return {
    node: s.node,
    set: s.set,
    initialBalance: s.initialBalance,
    initialLeader: s.initialLeader,
    promised: plain(s.promised),
    log: [...s.log.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([key, slot]) => ({
        key,
        seq: slot.seq,
        phase: slot.phase,
        ballot: plain(slot.ballot),
        command: slot.command ? hex(shardbank.Command.encode(slot.command).finish()) : null,
        committed: slot.committed,
      })),
    logSize: s.log.size,
    maxSeq: s.maxSeq,
    commitThrough: s.commitThrough,
    executedThrough: s.executedThrough,
    balances: Object.fromEntries([...s.balances.entries()].sort((a, b) => a[0] - b[0])),
    modified: [...s.modified].sort((a, b) => a - b),
    replies: Object.fromEntries(
      [...s.replies.entries()]
        .sort((a, b) => (a[0] < b[0] ? -1 : 1))
        .map(([client, r]) => [client, { timestamp: r.timestamp, reply: hex(shardbank.ClientReply.encode(r.reply).finish()) }]),
    ),
    views: s.views.map((v) => hex(shardbank.ViewRecord.encode(v).finish())),
    failed: s.failed,
  };
}

/** The parts of two replicas that must agree once both have caught up. */
function replicated(s: ReplicaState) {
  const c = canonical(s);
  return { commitThrough: c.commitThrough, executedThrough: c.executedThrough, balances: c.balances, modified: c.modified };
}

async function replayed(sim: SimCluster, node: NodeId): Promise<ReplicaState> {
  await sim.until(sim.host(node).idle());
  return replay(node, await sim.logs.get(node)!.readAll());
}

async function assertReplayEqualsLive(sim: SimCluster, nodes: NodeId[]): Promise<void> {
  for (const n of nodes) {
    const folded = await replayed(sim, n);
    assert.equal(canonical(folded), canonical(sim.host(n).state), `n${n}: replay of its log equals its live state`);
  }
}

test('a recovered follower catches up on the commits it missed, with no leader change', async () => {
  const sim = await SimCluster.start({ seed: 41 });
  await sim.startSet();
  await sim.fail(3);
  for (let i = 0; i < 5; i++) assert.is((await sim.transfer(1001 + 2 * i, 1002 + 2 * i, 1)).status, 'committed');
  assert.is(sim.host(3).state.executedThrough, 0, 'n3 missed them');

  await sim.recover(3);
  await sim.runFor(1000);

  assert.equal(replicated(sim.host(3).state), replicated(sim.host(1).state));
  assert.is(sim.host(3).state.executedThrough, 5);
  assert.equal(sim.balances(1009, C1), [9, 9, 9]);
  assert.equal(sim.balances(1010, C1), [11, 11, 11]);
  // The catch-up came from the leader it already had.
  assert.is(sim.leaderOf(1), 1);
  for (const n of C1) {
    assert.equal(plain(sim.host(n).state.promised), { round: 1, node: 1 }, `n${n} promised`);
    assert.is(sim.host(n).state.views.length, 0, `n${n} views`);
  }
  await sim.stop();
});

test('a crashed follower restarts from its log with the state it had, then catches up', async () => {
  const sim = await SimCluster.start({ seed: 42 });
  await sim.startSet();
  await sim.transfer(1001, 1002, 1);
  await sim.transfer(1003, 1004, 1);
  await sim.runFor(200);
  const before = canonical(sim.host(3).state);
  assert.is(before.executedThrough, 2);

  await sim.crash(3);
  assert.is((await sim.transfer(1005, 1006, 1)).status, 'committed');
  assert.is((await sim.transfer(1001, 1005, 2)).status, 'committed');
  const h3 = await sim.restart(3);

  assert.equal(canonical(h3.state), before, 'rebuilt from its log alone');
  await sim.runFor(1000);
  assert.equal(replicated(sim.host(3).state), replicated(sim.host(1).state));
  assert.is(sim.host(3).state.executedThrough, 4);
  assert.equal(sim.balances(1001, C1), [7, 7, 7]);
  assert.equal(sim.balances(1005, C1), [11, 11, 11]);
  assert.is(sim.host(3).view.leader, 1);
  await sim.stop();
});

test('a crashed leader restarts from its log as a follower of the leader elected meanwhile, then catches up', async () => {
  const sim = await SimCluster.start({ seed: 43 });
  await sim.startSet();
  await sim.transfer(1001, 1002, 1);
  await sim.runFor(100);

  await sim.crash(1);
  const r = await sim.transfer(1003, 1004, 1);
  assert.is(r.status, 'committed');
  const leader = r.node!;
  assert.ok(leader === 2 || leader === 3);
  const h1 = await sim.restart(1);
  assert.equal(sim.balances(1003, [1]), [10], 'n1 came back with only its own log');
  await sim.runFor(1000);

  assert.is(h1.view.role, 'follower');
  assert.is(h1.view.leader, leader);
  assert.equal(plain(h1.view.ballot), plain(sim.host(leader).view.ballot));
  assert.equal(replicated(h1.state), replicated(sim.host(leader).state));
  assert.equal(sim.balances(1003, C1), [9, 9, 9]);
  await sim.stop();
});

test('replay of every node\'s log equals its live state, after transfers, aborts, failures and an election', async () => {
  const sim = await SimCluster.start({ seed: 44 });
  await sim.startSet();
  await sim.until(
    Promise.all([
      sim.client.transfer(1001, 1002, 1),
      sim.client.transfer(1002, 1003, 1),
      sim.client.transfer(3001, 3002, 2),
      sim.client.transfer(6001, 6002, 3),
    ]),
  );
  await sim.transfer(1004, 1005, 99);
  await sim.fail(3);
  await sim.transfer(1006, 1007, 1);
  await sim.recover(3);
  await sim.fail(1);
  await sim.transfer(1008, 1009, 1);
  await sim.recover(1);
  await sim.runFor(1000);
  assert.ok(sim.host(1).view.ballot.round! > 1, 'C1 changed leader');

  await assertReplayEqualsLive(sim, ALL);
  await sim.stop();
});

test('a node failed in one set is live in the next: it takes part, and its state is still the fold of its log', async () => {
  const sim = await SimCluster.start({ seed: 45 });
  await sim.startSet([1, 2, 4, 5, 6, 7, 8, 9]);
  assert.ok(sim.host(3).state.failed);

  await sim.startSet();
  await sim.fail(2);
  // n1 and n3 are the majority now.
  const r = await sim.transfer(1001, 1002, 1);

  assert.not.ok(sim.host(3).state.failed, 'n3 is live in this set');
  assert.is(r.status, 'committed');
  await sim.runFor(200);
  assert.equal(sim.balances(1001, [1, 3]), [9, 9]);
  await assertReplayEqualsLive(sim, C1);
  await sim.stop();
});

interface RunRecord {
  results: TxResult[];
  logs: Record<string, string[]>;
}

/** One busy run: concurrent transfers, lossy links, a leader failure and recovery. */
async function busyRun(seed: number): Promise<RunRecord> {
  const sim = await SimCluster.start({ seed });
  await sim.startSet();
  const results: TxResult[] = [];
  results.push(
    ...(await sim.until(
      Promise.all([
        sim.client.transfer(1001, 1002, 1),
        sim.client.transfer(1002, 1003, 1),
        sim.client.transfer(3001, 3002, 2),
        sim.client.transfer(6001, 6002, 3),
        sim.client.read(3002),
      ]),
    )),
  );
  sim.network.setDropRate(0.1);
  results.push(...(await sim.until(Promise.all([sim.client.transfer(1004, 1005, 1), sim.client.transfer(6003, 6004, 1)]))));
  sim.network.setDropRate(0);
  await sim.fail(7);
  results.push(await sim.transfer(6005, 6006, 1));
  await sim.recover(7);
  results.push(await sim.transfer(6007, 6008, 1));
  await sim.runFor(500);
  const logs: Record<string, string[]> = {};
  for (const n of ALL) {
    await sim.until(sim.host(n).idle());
    logs[`n${n}`] = (await sim.logs.get(n)!.readAll()).map((e) => JSON.stringify(e.toJSON()));
  }
  await sim.stop();
  return { results, logs };
}

test('determinism: the same seed run twice gives identical event logs and identical results', async () => {
  const first = await busyRun(46);
  const second = await busyRun(46);

  // The run exercised the interesting paths, so equality below means something.
  assert.ok(first.results.some((r) => r.reason === 'lock conflict'), 'a lock conflict');
  assert.ok(first.logs['n8']!.some((e) => e.includes('"view"')) || first.logs['n9']!.some((e) => e.includes('"view"')), 'an election');
  assert.is(first.results.filter((r) => r.status === 'failed').length, 0, JSON.stringify(first.results));
  assert.equal(second.results, first.results);
  for (const n of ALL) assert.equal(second.logs[`n${n}`], first.logs[`n${n}`], `n${n} event log`);
});

test.run();
