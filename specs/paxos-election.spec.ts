/**
 * Leader election and NEW-VIEW (SPEC 6.2): ballots <round, node>, the P1
 * timer rule, and the NEW-VIEW log a new leader builds from a quorum of
 * promises. Each test sets up a fresh simulated cluster, takes one step and
 * checks one rule.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { buildNewView } from '../actors/newView.js';
import { type Ballot, type Command, type Entry, type NodeId } from '../protocol/messages.js';
import { SimCluster } from '../runtime/sim.js';
import { eventKind, type LogSlot } from '../store/state.js';

const CLUSTERS: NodeId[][] = [
  [1, 2, 3],
  [4, 5, 6],
  [7, 8, 9],
];
const C1 = CLUSTERS[0]!;

function ballot(round: number, node: number): Ballot {
  return { round, node };
}

function plain(b: Ballot | null | undefined): Ballot {
  return { round: b?.round ?? 0, node: b?.node ?? 0 };
}

function transfer(client: string, sender: number, receiver: number): Command {
  return { client, timestamp: 1, transfer: { sender, receiver, amount: 1 } };
}

/** The nodes of C1 that currently believe they lead. */
function c1Leaders(sim: SimCluster, among: NodeId[] = C1): NodeId[] {
  return among.filter((n) => sim.host(n).view.role === 'leader');
}

function senderAt(sim: SimCluster, node: NodeId, seq: number): number | undefined {
  return sim.host(node).state.log.get(seq)?.command?.transfer?.sender ?? undefined;
}

test('set start: n1, n4 and n7 lead with ballot <1, nX>, installed by the flush, not by a NEW-VIEW', async () => {
  const sim = await SimCluster.start({ seed: 1 });

  await sim.startSet();

  for (const members of CLUSTERS) {
    const first = members[0]!;
    for (const n of members) {
      const h = sim.host(n);
      assert.equal(h.view.role, n === first ? 'leader' : 'follower', `n${n} role`);
      assert.is(h.view.leader, first, `n${n} follows n${first}`);
      assert.equal(plain(h.view.ballot), ballot(1, first), `n${n} view ballot`);
      assert.equal(plain(h.state.promised), ballot(1, first), `n${n} promised`);
      assert.equal(h.state.views, [], `n${n} recorded no NEW-VIEW`);
    }
  }
  for (const [n, log] of sim.logs) {
    const kinds = (await log.readAll()).map(eventKind);
    assert.not.ok(kinds.includes('view'), `n${n} logged no view event`);
    assert.not.ok(kinds.includes('promised'), `n${n} promised no ballot of its own`);
  }
  await sim.stop();
});

test('set start: a quiet second later the same leaders hold the same ballots (heartbeats keep followers calm)', async () => {
  const sim = await SimCluster.start({ seed: 2 });
  await sim.startSet();

  await sim.runFor(1000);

  for (const members of CLUSTERS) {
    const first = members[0]!;
    assert.is(sim.leaderOf(CLUSTERS.indexOf(members) + 1), first);
    for (const n of members) {
      assert.equal(plain(sim.host(n).state.promised), ballot(1, first), `n${n} promised`);
      assert.is(sim.host(n).state.views.length, 0, `n${n} views`);
    }
  }
  await sim.stop();
});

test('re-election: with n1 failed, a C1 transfer commits via n2 or n3 after the client broadcasts', async () => {
  const sim = await SimCluster.start({ seed: 11 });
  await sim.startSet();
  assert.is((await sim.transfer(1001, 1002, 1)).status, 'committed');

  await sim.fail(1);
  const r = await sim.transfer(1003, 1004, 1);

  assert.is(r.status, 'committed');
  assert.ok(r.node === 2 || r.node === 3, `answered by n${r.node}`);
  // n1 never answered; only the broadcast on timeout reached the others.
  assert.ok(r.latencyMs >= sim.topology.tuning.clientTimeoutMs, `latency ${r.latencyMs} ms`);
  const leader = r.node!;
  assert.equal(c1Leaders(sim, [2, 3]), [leader]);
  assert.is(sim.client.leaderOf(1), leader, 'the reply named the new leader');
  // The follower applies the commit a moment after the leader answers.
  await sim.runFor(200);
  assert.equal(sim.balances(1001, [2, 3]), [9, 9]);
  assert.equal(sim.balances(1003, [2, 3]), [9, 9]);
  assert.equal(sim.balances(1004, [2, 3]), [11, 11]);
  await sim.stop();
});

test('re-election: the new leader records exactly one NEW-VIEW, with a round above 1 and its own id', async () => {
  const sim = await SimCluster.start({ seed: 11 });
  await sim.startSet();

  await sim.fail(1);
  const r = await sim.transfer(1001, 1002, 1);

  assert.is(r.status, 'committed');
  const leader = r.node!;
  const views = sim.host(leader).state.views;
  assert.is(views.length, 1, 'one NEW-VIEW');
  const b = plain(views[0]!.view?.ballot);
  assert.ok(b.round! > 1, `round ${b.round}`);
  assert.is(b.node, leader);
  assert.is(views[0]!.leader, leader);
  assert.equal(plain(sim.host(leader).view.ballot), b);
  // The follower that promised saw the same NEW-VIEW.
  const follower = leader === 2 ? 3 : 2;
  assert.equal(
    sim.host(follower).state.views.map((v) => plain(v.view?.ballot)),
    [b],
  );
  await sim.stop();
});

test('re-election: a failed node keeps no timer, and once recovered it steps down to follow the new leader', async () => {
  const sim = await SimCluster.start({ seed: 11 });
  await sim.startSet();
  await sim.fail(1);
  const r = await sim.transfer(1001, 1002, 1);
  assert.is(r.status, 'committed');
  const leader = r.node!;
  // Its clock stopped: a failed node never campaigned on its own.
  assert.equal(plain(sim.host(1).state.promised), ballot(1, 1));

  await sim.recover(1);
  await sim.runFor(500);

  const h1 = sim.host(1);
  assert.is(h1.view.role, 'follower');
  assert.is(h1.view.leader, leader);
  assert.equal(plain(h1.view.ballot), plain(sim.host(leader).view.ballot));
  assert.equal(c1Leaders(sim), [leader]);
  // It also caught up on what was decided while it was away.
  assert.equal(sim.balances(1001, C1), [9, 9, 9]);
  await sim.stop();
});

test('P1 timer rule and pre-vote: a follower cut off from a working leader cannot depose it, nor even raise its ballot', async () => {
  const sim = await SimCluster.start({ seed: 8 });
  await sim.startSet();

  // n3 loses n1 but still reaches n2, which keeps hearing n1.
  sim.network.partition([1], [3]);
  await sim.runFor(1000);

  const n3 = await sim.logs.get(3)!.readAll();
  const n2 = await sim.logs.get(2)!.readAll();
  assert.ok(n3.some((e) => e.role?.role === 'precandidate'), 'n3 asked for pre-votes');
  assert.ok(n2.some((e) => e.vote?.answer === 'pre-vote refused' && e.vote.candidate === 3), 'n2 refused them: it still hears n1');
  assert.equal(plain(sim.host(3).state.promised), ballot(1, 1), 'n3 never raised its ballot');
  assert.equal(c1Leaders(sim), [1]);
  assert.equal(plain(sim.host(2).state.promised), ballot(1, 1), 'n2 promised nothing new');
  for (const n of C1) assert.is(sim.host(n).state.views.length, 0, `n${n} views`);
  const r = await sim.transfer(1001, 1002, 1);
  assert.is(r.status, 'committed');
  assert.is(r.node, 1);
  await sim.stop();
});

function slot(seq: number, b: Ballot, command: Command | null, committed = false, phase = 0): LogSlot {
  return { seq, phase, ballot: b, command, committed };
}

function entry(seq: number, b: Ballot, command: Command | undefined, committed = false, phase = 0): Entry {
  return { seq, phase, ballot: b, command, committed };
}

test('NEW-VIEW (unit): per seq the highest-ballot value, gaps as no-ops, every entry re-stamped with the new ballot', () => {
  const a = transfer('c/1', 1, 2);
  const bOld = transfer('c/2', 3, 4);
  const bNew = transfer('c/3', 5, 6);
  const e = transfer('c/4', 7, 8);
  const own = [slot(1, ballot(1, 1), a, true), slot(2, ballot(1, 1), bOld)];
  const promised = [
    entry(2, ballot(2, 2), bNew),
    entry(2, ballot(1, 1), bOld),
    entry(5, ballot(1, 1), e),
  ];
  const nb = ballot(3, 3);

  const log = buildNewView(nb, own, promised);

  assert.equal(
    log.map((x) => x.seq),
    [1, 2, 3, 4, 5],
    'runs from seq 1 to the highest seq seen',
  );
  const at = (seq: number) => log.find((x) => x.seq === seq)!;
  assert.equal(at(1).command, a);
  assert.ok(at(1).committed, 'a chosen value stays chosen');
  assert.equal(at(2).command, bNew, 'highest ballot wins');
  assert.not.ok(at(2).committed);
  for (const gap of [3, 4]) {
    assert.is(at(gap).command, undefined, `seq ${gap} is a no-op`);
    assert.is(at(gap).phase, 0);
    assert.not.ok(at(gap).committed);
  }
  assert.equal(at(5).command, e);
  for (const x of log) assert.equal(plain(x.ballot), nb, `seq ${x.seq} re-stamped`);
});

test('NEW-VIEW (unit): a committed value wins over an uncommitted one with a higher ballot', () => {
  const chosen = transfer('c/1', 1, 2);
  const other = transfer('c/2', 3, 4);

  const log = buildNewView(ballot(5, 2), [slot(1, ballot(1, 1), chosen, true)], [entry(1, ballot(3, 3), other)]);

  assert.is(log.length, 1);
  assert.equal(log[0]!.command, chosen);
  assert.ok(log[0]!.committed);
});

test('NEW-VIEW (unit): a seq holding only a 2PC entry is not a gap; an empty log gives an empty view', () => {
  const p = transfer('c/1', 1, 3001);

  const log = buildNewView(ballot(2, 2), [], [entry(3, ballot(1, 1), p, false, 1)]);

  assert.equal(
    log.map((x) => [x.seq, x.phase, x.command ? 'cmd' : 'no-op']),
    [
      [1, 0, 'no-op'],
      [2, 0, 'no-op'],
      [3, 1, 'cmd'],
    ],
  );
  assert.equal(buildNewView(ballot(2, 2), [], []), []);
});

test('NEW-VIEW (end to end): a seq only the old leader accepted becomes a no-op; a later seq one follower accepted keeps its value', async () => {
  const sim = await SimCluster.start({ seed: 3 });
  await sim.startSet();
  assert.is((await sim.transfer(1001, 1002, 1)).status, 'committed'); // seq 1 everywhere

  // seq 2 reaches nobody but n1.
  sim.network.partition([1], [2, 3]);
  const t2 = sim.client.transfer(1003, 1004, 1);
  await sim.runUntil(() => sim.host(1).state.log.has(2), 1000);
  // seq 3 reaches n3 only; then n1 is cut off before it can resend seq 2.
  sim.network.heal();
  sim.network.partition([1], [2]);
  const t3 = sim.client.transfer(1005, 1006, 1);
  await sim.runUntil(() => sim.host(3).state.log.has(3), 1000);
  sim.network.isolate(1);
  assert.not.ok(sim.host(2).state.log.has(2), 'n2 lacks seq 2');
  assert.not.ok(sim.host(3).state.log.has(2), 'n3 lacks seq 2');
  assert.is(senderAt(sim, 3, 3), 1005);

  await sim.runUntil(() => c1Leaders(sim, [2, 3]).length === 1, 2000);

  const [leader] = c1Leaders(sim, [2, 3]);
  assert.ok(leader, 'n2 or n3 leads');
  const views = sim.host(leader!).state.views;
  assert.is(views.length, 1);
  const nv = views[0]!.view!;
  const log = nv.log ?? [];
  assert.equal(
    log.map((e) => [e.seq, e.command?.transfer?.sender ?? 'no-op']),
    [
      [1, 1001],
      [2, 'no-op'],
      [3, 1005],
    ],
  );
  for (const e of log) assert.equal(plain(e.ballot), plain(nv.ballot), `seq ${e.seq} carries the new ballot`);

  // Both clients still get an answer: seq 3 from the NEW-VIEW, the other by its retry at a new seq.
  const [r2, r3] = await sim.until(Promise.all([t2, t3]));
  assert.is(r2.status, 'committed');
  assert.is(r3.status, 'committed');

  // The old leader rejoins: its seq 2 is replaced by the no-op, and the transfer runs once, at seq 4.
  sim.network.heal();
  await sim.runFor(1000);
  for (const n of C1) {
    const s = sim.host(n).state;
    assert.is(senderAt(sim, n, 2), undefined, `n${n} seq 2 is a no-op`);
    assert.ok(s.log.get(2)?.committed, `n${n} seq 2 committed`);
    assert.is(senderAt(sim, n, 4), 1003, `n${n} seq 4`);
    assert.is(s.executedThrough, 4, `n${n} executedThrough`);
  }
  assert.equal(sim.balances(1003, C1), [9, 9, 9]);
  assert.equal(sim.balances(1004, C1), [11, 11, 11]);
  assert.equal(sim.balances(1005, C1), [9, 9, 9]);
  assert.equal(sim.balances(1006, C1), [11, 11, 11]);
  await sim.stop();
});

test.run();
