/**
 * Moving an item, machine by machine: each rule of the move protocol (2PC
 * over Paxos between the source's and the destination's leaders) is one
 * spec that builds one machine's snapshot, steps it with XState's pure
 * `transition()`, and checks what it asks for. The executor's part is the
 * pure `executeSlot`, folded into a ReplicaState with `applyEvent`, the way
 * every replica applies it. Nothing runs: no network, no log.
 *
 * The move throughout: item 3001 (c2's by the shard map) moves from c2, the
 * source (its leader n4 coordinates), to c1, the destination (n1).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { coordinatorMachine } from '../actors/coordinator.js';
import { executorMachine } from '../actors/executor.js';
import { lockManagerMachine } from '../actors/lockManager.js';
import { routeMessage, type NodeContext } from '../actors/node.js';
import { transactionsMachine } from '../actors/transactions.js';
import { executeSlot } from '../actors/transfer.js';
import { ACTOR, type View } from '../actors/node-info.js';
import type { Tell } from '../actors/events.js';
import { requestId, shardbank, type Command, type EnvelopeProps, type LogEventProps } from '../protocol/messages.js';
import { applyEvent, balanceOf, ownerOf, type LogSlot, type ReplicaState } from '../store/state.js';
import { nodeInput, records, sends, start, step, steps } from './support/step.js';

const { Phase, Status } = shardbank;

const move: Command = { client: 'ops/m1', timestamp: 1, move: { items: [3001], fromCluster: 2, toCluster: 1 } };
const txid = requestId(move);
const transfer = (client: string, sender: number, receiver: number, amount = 1): Command => ({ client, timestamp: 1, transfer: { sender, receiver, amount } });
const leading = (node: number): View => ({ role: 'leader', leader: node, ballot: { round: 1, node }, live: [], quorum: true });

/** A committed slot of the log. */
const slot = (seq: number, phase: number, command: Command): LogSlot => ({ seq, phase, ballot: { round: 1, node: 4 }, command, committed: true });

/** Runs one committed slot the way the executor does, folds its event into the state, and returns the event. */
function run(input: { info: NodeContext['info']; state: ReplicaState }, s: LogSlot): NonNullable<LogEventProps['executed']> {
  const ev = executeSlot(input, s);
  applyEvent(input.state, ev);
  return ev.executed!;
}

/** The source n4 with 3001 at balance 8, its move-out run at seq 2. */
function sourceWithMoveOut() {
  const src = nodeInput({ node: 4 });
  applyEvent(src.state, { executed: { seq: 1, command: transfer('t', 3001, 3002, 2), status: Status.COMMITTED, writes: [{ item: 3001, balance: 8 }, { item: 3002, balance: 12 }] } });
  run(src, slot(2, Phase.PHASE_PREPARE, move));
  return src;
}

// ------------------------------------------------------------ the executor

test('move-out: the source locks the items and keeps their balances as before-images; nothing is written', () => {
  const src = nodeInput({ node: 4 });
  applyEvent(src.state, { executed: { seq: 1, command: transfer('t', 3001, 3002, 2), status: Status.COMMITTED, writes: [{ item: 3001, balance: 8 }, { item: 3002, balance: 12 }] } });
  const x = run(src, slot(2, Phase.PHASE_PREPARE, move));
  assert.equal([x.status, x.role, x.txid], [Status.COMMITTED, 'coordinator', txid]);
  assert.equal(x.before, [{ item: 3001, balance: 8 }]);
  assert.equal(x.writes ?? [], []);
  assert.is(src.state.walLocks.get(3001), txid, 'the item is locked by the move');
  assert.is(balanceOf(src.state, 3001), 8, 'and still here');
  assert.equal(ownerOf(src.info.topology, src.state, 3001), { cluster: 2, version: 0 }, "still c2's");
});

test('move-out: an item the source does not own, or one a prepared transfer holds, aborts the move and locks nothing', () => {
  const src = nodeInput({ node: 4 });
  const stray: Command = { client: 'ops/m2', timestamp: 1, move: { items: [3002, 1001], fromCluster: 2, toCluster: 1 } };
  const x = run(src, slot(1, Phase.PHASE_PREPARE, stray));
  assert.equal([x.status, x.reason], [Status.ABORTED, 'item 1001 is not this cluster\'s']);
  assert.is(src.state.walLocks.size, 0);

  // A cross-shard transfer from 3001 is prepared here: its WAL holds the item.
  run(src, slot(2, Phase.PHASE_PREPARE, transfer('x', 3001, 1, 3)));
  const held = run(src, slot(3, Phase.PHASE_PREPARE, move));
  assert.equal([held.status, held.reason], [Status.ABORTED, 'lock conflict on item 3001']);
  assert.is(src.state.walLocks.get(3001), 'x:1', 'the transfer keeps its lock');
});

test('move-in: the destination writes the balances its PREPARE carried and locks the items; ownership stays the source\'s', () => {
  const dst = nodeInput({ node: 1 });
  const carried: Command = { client: 'ops/m1', timestamp: 1, move: { items: [3001], fromCluster: 2, toCluster: 1, balances: [{ item: 3001, balance: 8 }], owners: [{ item: 3001, cluster: 1, version: 1 }] } };
  const x = run(dst, slot(1, Phase.PHASE_PREPARE, carried));
  assert.equal([x.status, x.role], [Status.COMMITTED, 'participant']);
  assert.equal(x.writes, [{ item: 3001, balance: 8 }]);
  assert.equal(x.before, [{ item: 3001, balance: 10 }], 'its own (default) value, for the undo');
  assert.is(dst.state.balances.get(3001), 8);
  assert.is(dst.state.walLocks.get(3001), txid);
  assert.is(ownerOf(dst.info.topology, dst.state, 3001)!.cluster, 2, 'not c1\'s until the commit');
});

test('commit: ownership passes one version up on both sides, and the source forgets the balance', () => {
  const src = sourceWithMoveOut();
  const atSource = run(src, Object.assign(slot(2, Phase.PHASE_COMMIT, move), { runsAt: 3 }));
  assert.equal(atSource.owners, [{ item: 3001, cluster: 1, version: 1 }]);
  assert.equal(atSource.removes, [3001]);
  assert.is(src.state.balances.has(3001), false, 'no balance left at the source');
  assert.equal(ownerOf(src.info.topology, src.state, 3001), { cluster: 1, version: 1 });
  assert.is(src.state.walLocks.size, 0);
  assert.is(src.state.decisions.get(txid), true);

  const dst = nodeInput({ node: 1 });
  const carried: Command = { client: 'ops/m1', timestamp: 1, move: { items: [3001], fromCluster: 2, toCluster: 1, balances: [{ item: 3001, balance: 8 }], owners: [{ item: 3001, cluster: 1, version: 1 }] } };
  run(dst, slot(1, Phase.PHASE_PREPARE, carried));
  const atDestination = run(dst, Object.assign(slot(1, Phase.PHASE_COMMIT, carried), { runsAt: 2 }));
  assert.equal(atDestination.owners, [{ item: 3001, cluster: 1, version: 1 }]);
  assert.equal(atDestination.removes, []);
  assert.is(dst.state.balances.get(3001), 8, 'the balance stays, now the owner\'s');
  assert.equal(ownerOf(dst.info.topology, dst.state, 3001), { cluster: 1, version: 1 });
  assert.is(dst.state.walLocks.size, 0);
});

test('abort: nothing changes at the source; the destination takes the move-in back out', () => {
  const src = sourceWithMoveOut();
  const atSource = run(src, Object.assign(slot(2, Phase.PHASE_ABORT, move), { runsAt: 3 }));
  assert.equal([atSource.status, atSource.removes, atSource.owners ?? [], atSource.writes ?? []], [Status.ABORTED, [], [], []]);
  assert.is(balanceOf(src.state, 3001), 8);
  assert.equal(ownerOf(src.info.topology, src.state, 3001), { cluster: 2, version: 0 });
  assert.is(src.state.walLocks.size, 0, 'the item is free again');

  const dst = nodeInput({ node: 1 });
  const carried: Command = { client: 'ops/m1', timestamp: 1, move: { items: [3001], fromCluster: 2, toCluster: 1, balances: [{ item: 3001, balance: 8 }] } };
  run(dst, slot(1, Phase.PHASE_PREPARE, carried));
  const atDestination = run(dst, Object.assign(slot(1, Phase.PHASE_ABORT, carried), { runsAt: 2 }));
  assert.equal(atDestination.removes, [3001]);
  assert.is(dst.state.balances.has(3001), false, 'no balance left at the destination');
  assert.is(dst.state.walLocks.size, 0);
});

// ------------------------------------------------------------ the source's coordinator

test('the source\'s coordinator orders its move-out first, and sends its PREPARE only once the move-out ran, with the balances and the owners one version up', () => {
  const src = nodeInput({ node: 4 });
  applyEvent(src.state, { executed: { seq: 1, command: transfer('t', 3001, 3002, 2), status: Status.COMMITTED, writes: [{ item: 3001, balance: 8 }, { item: 3002, balance: 12 }] } });
  const s = start(coordinatorMachine, Object.assign({ txid, command: move, participantCluster: 1, mode: 'start' }, src));
  assert.equal(s.tells, [{ type: 'propose', proposals: [{ command: move, phase: Phase.PHASE_PREPARE, seq: undefined, reason: undefined }] }]);
  assert.equal(s.parent.filter((p) => p.type === 'out'), [], 'no PREPARE before the move-out');

  // Retries before the move-out ran still send nothing: there is no balance to carry yet.
  const waited = steps(coordinatorMachine, s.snapshot, [{ type: 'tick' }, { type: 'tick' }]);
  assert.equal(waited.parent.filter((p) => p.type === 'out'), []);

  run(src, slot(2, Phase.PHASE_PREPARE, move));
  const ran = step(coordinatorMachine, waited.snapshot, { type: 'txExecuted', txid, phase: Phase.PHASE_PREPARE, seq: 2, ranAt: 2, status: Status.COMMITTED, reason: '' });
  const out = ran.parent.filter((p) => p.type === 'out');
  assert.is(out.length, 1);
  assert.is(out[0]!['cluster'], 1);
  const prepare = (out[0]!['body'] as EnvelopeProps).txPrepare!;
  assert.equal(prepare.command!.move, { items: [3001], fromCluster: 2, toCluster: 1, balances: [{ item: 3001, balance: 8 }], owners: [{ item: 3001, cluster: 1, version: 1 }] });
  assert.is(prepare.coordinatorCluster, 2);
});

test('a move-out that aborted sends no PREPARE: the coordinator orders the abort', () => {
  const src = nodeInput({ node: 4 });
  const s = start(coordinatorMachine, Object.assign({ txid, command: move, participantCluster: 1, mode: 'start' }, src));
  const ran = step(coordinatorMachine, s.snapshot, { type: 'txExecuted', txid, phase: Phase.PHASE_PREPARE, seq: 2, ranAt: 2, status: Status.ABORTED, reason: 'lock conflict on item 3001' });
  assert.equal(ran.parent.filter((p) => p.type === 'out'), []);
  assert.is(ran.snapshot.value, 'deciding');
  assert.equal(ran.tells, [{ type: 'propose', proposals: [{ command: move, phase: Phase.PHASE_ABORT, seq: 2, reason: 'lock conflict on item 3001' }] }]);
});

test('a transfer\'s PREPARE names its coordinator\'s cluster, for the participant\'s WAL', () => {
  const c1 = nodeInput({ node: 1 });
  const t = transfer('a', 1001, 3001);
  const s = start(coordinatorMachine, Object.assign({ txid: 'a:1', command: t, participantCluster: 2, mode: 'start' }, c1));
  const prepare = (s.parent.find((p) => p.type === 'out')!['body'] as EnvelopeProps).txPrepare!;
  assert.equal(prepare.command!.transfer, { sender: 1001, receiver: 3001, amount: 1, coordinatorCluster: 1 });
});

test('a coordinator whose receiver moved into its own cluster settles its decision without telling anyone: no other cluster can hold it prepared', () => {
  const c1 = nodeInput({ node: 1 });
  const s = start(coordinatorMachine, Object.assign({ txid: 'a:1', command: transfer('a', 1001, 3001), participantCluster: 1, mode: 'notify', commit: false, reason: 'timeout' }, c1));
  assert.is(s.snapshot.value, 'done');
  assert.equal(s.parent.filter((p) => p.type === 'out'), [], 'no decision sent to itself');
  assert.ok(s.parent.some((p) => p.type === 'acked' && p['txid'] === 'a:1'), 'the decision needs no acknowledgement');
});

// ------------------------------------------------------------ the lock managers

test('the lock manager parks a transfer on an item in the middle of its move, and answers MOVED once the move commits', () => {
  const src = sourceWithMoveOut();
  const lm = steps(lockManagerMachine, start(lockManagerMachine, src).snapshot, [{ type: 'view', view: leading(4) }]);
  const t = transfer('c/1', 3001, 3002);
  const parked = step(lockManagerMachine, lm.snapshot, { type: 'admit', commands: [t] });
  assert.equal(parked.tells, [], 'not proposed, not skipped');
  assert.equal(sends(parked.effects), [], 'not answered yet');
  assert.equal(records(parked.effects).map((r) => r.lock), [{ command: t, decision: 'waiting', item: 3001, holder: txid }]);

  // The move commits at the source: the item is c1's, one version up, and its balance gone from here.
  run(src, Object.assign(slot(2, Phase.PHASE_COMMIT, move), { runsAt: 3 }));
  const released = step(lockManagerMachine, parked.snapshot, { type: 'release', commands: [move] });
  assert.equal(released.tells, [], 'nothing ordered here');
  const reply = sends(released.effects).map((e) => e.reply)[0]!;
  assert.equal([reply.status, reply.moved], [Status.MOVED, { item: 3001, cluster: 1, version: 1 }]);
  assert.is(reply.reason, 'item 3001 moved to c1 (version 1)');
});

test('a copy of a transfer ordered as an abort is dropped until the abort runs, even once its item has moved away: never answered MOVED', () => {
  const src = sourceWithMoveOut();
  const lm = steps(lockManagerMachine, start(lockManagerMachine, src).snapshot, [{ type: 'view', view: leading(4) }]);
  // 3001 moves to c1, where its receiver 1 is: a cross-shard transfer becomes c1's alone.
  const t = transfer('c/1', 3001, 1);
  const parked = step(lockManagerMachine, lm.snapshot, { type: 'admit', commands: [t] });
  // The wait runs out while the move still holds the item: the transfer is skipped, ordered as an abort.
  const skipped = step(lockManagerMachine, parked.snapshot, { type: 'tick', n: 100 });
  assert.equal(skipped.tells.map((x) => (x as { proposals?: { phase: number; reason?: string }[] }).proposals?.map((p) => [p.phase, p.reason])), [[[Phase.PHASE_ABORT, 'lock conflict']]]);
  // The move commits before that abort runs: the item is c1's now.
  run(src, Object.assign(slot(2, Phase.PHASE_COMMIT, move), { runsAt: 3 }));
  const released = step(lockManagerMachine, skipped.snapshot, { type: 'release', commands: [move] });
  assert.is(ownerOf(src.info.topology, src.state, 3001)!.cluster, 1);
  // The client's broadcast copy: its abort is in flight here, so it is dropped. Answered MOVED,
  // the client would send it to c1, which would run it, while this cluster answers aborted.
  const copy = step(lockManagerMachine, released.snapshot, { type: 'admit', commands: [t] });
  assert.equal(sends(copy.effects), [], 'no answer: the abort in flight answers it');
  assert.equal(copy.tells, [], 'nothing ordered twice');
  // Once the abort has run, a copy is answered from the stored reply: aborted, still not MOVED.
  run(src, Object.assign(slot(3, Phase.PHASE_ABORT, t), { reason: 'lock conflict' }));
  const ran = step(lockManagerMachine, copy.snapshot, { type: 'release', commands: [t] });
  const late = step(lockManagerMachine, ran.snapshot, { type: 'admit', commands: [t] });
  assert.equal(sends(late.effects).map((e) => [e.reply?.status, e.reply?.reason]), [[Status.ABORTED, 'lock conflict']]);
});

test('an abort a participant ordered when it refused a PREPARE never answers the client, though both items have moved away since (found by the simulator, seed 160)', () => {
  // c3 refused c2's PREPARE for (3001 -> 6001): an abort entry naming c2 as the coordinator. When it runs,
  // 6001 has moved to c1 and 3001 to c1 too: c3 owns neither item, and the transfer is none of its business.
  const p = nodeInput({ node: 7 });
  const tx: Command = { client: 'c/1', timestamp: 1, transfer: { sender: 3001, receiver: 6001, amount: 1, coordinatorCluster: 2 } };
  p.state.owners.set(6001, { cluster: 1, version: 1 });
  p.state.owners.set(3001, { cluster: 1, version: 1 });
  applyEvent(p.state, { accepted: { entries: [{ seq: 1, phase: Phase.PHASE_ABORT, ballot: { round: 1, node: 7 }, command: tx, reason: 'lock conflict' }] } });
  applyEvent(p.state, { committed: { slots: [1] } });
  const ex = steps(executorMachine, start(executorMachine, p).snapshot, [{ type: 'view', view: leading(7) }]);
  const ran = step(executorMachine, ex.snapshot, { type: 'execute' });
  const x = records(ran.effects).find((r) => r.executed)!.executed!;
  assert.equal([x.status, x.reason, x.role, x.txid], [Status.ABORTED, 'lock conflict', 'participant', requestId(tx)]);
  assert.equal(sends(ran.effects).filter((e) => e.reply), [], 'the client hears its coordinator, not this cluster');
});

test('a PREPARE for a receiver that moved away is answered with where it went, and prepares nothing', () => {
  const src = sourceWithMoveOut();
  run(src, Object.assign(slot(2, Phase.PHASE_COMMIT, move), { runsAt: 3 }));
  const lm = steps(lockManagerMachine, start(lockManagerMachine, src).snapshot, [{ type: 'view', view: leading(4) }]);
  const t = transfer('d', 7001, 3001);
  const r = step(lockManagerMachine, lm.snapshot, { type: 'txPrepare', command: t, from: 7, coordinatorCluster: 3 });
  assert.equal(r.tells, []);
  assert.equal(sends(r.effects), [{ from: 4, to: 7, txVote: { txid: 'd:1', prepared: false, reason: 'item 3001 moved to c1', moved: { item: 3001, cluster: 1, version: 1 } } }]);
});

test('the node lets such a PREPARE through to its lock manager, though its cluster no longer plays a part', () => {
  const src = sourceWithMoveOut();
  run(src, Object.assign(slot(2, Phase.PHASE_COMMIT, move), { runsAt: 3 }));
  const ctx: NodeContext = Object.assign({ view: leading(4) }, src);
  const tells: Tell[] = [];
  routeMessage(ctx, shardbank.Envelope.fromObject({ from: 7, to: 4, txPrepare: { txid: 'd:1', command: transfer('d', 7001, 3001), coordinatorCluster: 3 } }), tells, []);
  assert.equal(tells.map((t) => [t.to, t.event.type]), [[ACTOR.lockManager, 'txPrepare']]);
});

test('a decision for a transfer this cluster no longer takes part in is acknowledged at once', () => {
  const src = sourceWithMoveOut();
  run(src, Object.assign(slot(2, Phase.PHASE_COMMIT, move), { runsAt: 3 }));
  const tx = steps(transactionsMachine, start(transactionsMachine, src).snapshot, [{ type: 'view', view: leading(4) }]);
  const envelope = shardbank.Envelope.fromObject({ from: 7, to: 4, txDecision: { txid: 'd:1', commit: false, command: transfer('d', 7001, 3001), coordinatorCluster: 3 } });
  const r = step(transactionsMachine, tx.snapshot, { type: 'message', envelope });
  assert.equal(sends(r.effects), [{ from: 4, to: 7, txAck: { txid: 'd:1' } }]);
});

test('a COMMIT for a transfer prepared in another cluster, whose receiver has moved here since, is acknowledged at its leader (not resent for ever)', () => {
  // 3001 moved to c3, where the transfer prepared and committed, then on to c1: c2's new leader sends the decision here.
  const c1 = nodeInput({ node: 1 });
  applyEvent(c1.state, { executed: { seq: 1, owners: [{ item: 3001, cluster: 1, version: 2 }], writes: [{ item: 3001, balance: 13 }] } });
  const decision = (view: View) => {
    const tx = steps(transactionsMachine, start(transactionsMachine, c1).snapshot, [{ type: 'view', view }]);
    const envelope = shardbank.Envelope.fromObject({ from: 4, to: 1, txDecision: { txid: 'd:1', commit: true, command: transfer('d', 4001, 3001), coordinatorCluster: 2 } });
    return step(transactionsMachine, tx.snapshot, { type: 'message', envelope });
  };
  assert.equal(sends(decision(leading(1)).effects), [{ from: 1, to: 4, txAck: { txid: 'd:1' } }]);
  // A follower leaves it to its leader.
  assert.equal(sends(decision({ role: 'follower', leader: 2, ballot: { round: 1, node: 2 }, live: [], quorum: false }).effects), []);
});

test('the executor runs a fence the participant\'s question asked for as the named coordinator\'s abort, though the sender has moved on', () => {
  const c1 = nodeInput({ node: 1 });
  // 1001 moved from c1 to c3 after the transfer was decided... or never prepared here.
  applyEvent(c1.state, { executed: { seq: 1, owners: [{ item: 1001, cluster: 3, version: 1 }], removes: [1001] } });
  const asked: Command = { client: 'e', timestamp: 1, transfer: { sender: 1001, receiver: 3001, amount: 1, coordinatorCluster: 1 } };
  const x = run(c1, slot(2, Phase.PHASE_ABORT, asked));
  assert.equal([x.status, x.txid, x.role], [Status.ABORTED, 'e:1', 'coordinator']);
  assert.is(c1.state.decisions.get('e:1'), false, 'the abort is this cluster\'s decision: a participant that asks hears it');
});

test.run();
