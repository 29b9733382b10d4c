/**
 * `transition()` is pure for every machine of a node: stepping it with an
 * event that leads to writes and sends returns them as effects (emit),
 * messages for siblings (sendTo) or the parent (sendParent), and changes
 * nothing else. The replica state it reads is as it was, and so is the
 * snapshot it was given, but for the collections a machine documents as
 * changed in place on its hot path (the proposer's queue and pending
 * entries, the lock manager's locks and parked requests).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { AnyStateMachine, SnapshotFrom } from 'xstate';
import { acceptorMachine } from '../actors/acceptor.js';
import { coordinatorMachine } from '../actors/coordinator.js';
import { electionMachine } from '../actors/election.js';
import { executorMachine } from '../actors/executor.js';
import { lockManagerMachine } from '../actors/lockManager.js';
import { nodeMachine } from '../actors/node.js';
import { participantMachine } from '../actors/participant.js';
import { proposerMachine } from '../actors/proposer.js';
import { transactionsMachine } from '../actors/transactions.js';
import { shardbank, type Ballot, type Command } from '../protocol/messages.js';
import { applyEvent, snapshotOf, type ReplicaState } from '../store/state.js';
import { campaign, nodeInput, start, step, steps, type Stepped } from './support/step.js';

const { Phase, Status } = shardbank;
const B = (round: number, node: number): Ballot => ({ round, node });
const transfer = (client: string, sender: number, receiver: number): Command => ({ client, timestamp: 1, transfer: { sender, receiver, amount: 1 } });

/** A deep, order-stable picture of a value (maps and sets included), to compare before and after. */
function picture(value: unknown): string {
  const seen = new WeakSet<object>();
  return JSON.stringify(value, (_k, v) => {
    if (v instanceof Map) return { map: [...v.entries()] };
    if (v instanceof Set) return { set: [...v.values()] };
    if (v && typeof v === 'object') {
      if (seen.has(v)) return '(seen)';
      seen.add(v);
    }
    return v;
  });
}

/** The parts of a snapshot that must not change: its value and its context, minus what the machine changes in place. */
function pictureOf(snapshot: { value: unknown; context: Record<string, unknown> }, inPlace: string[]): string {
  const context = Object.fromEntries(Object.entries(snapshot.context).filter(([k]) => !['info', 'state', 'self', ...inPlace].includes(k)));
  return picture({ value: snapshot.value, context });
}

function checkPure<M extends AnyStateMachine>(
  name: string,
  machine: M,
  state: ReplicaState,
  snapshot: SnapshotFrom<M>,
  event: { type: string } & Record<string, unknown>,
  inPlace: string[] = [],
): Stepped<M> {
  const stateBefore = picture(snapshotOf(state));
  const snapshotBefore = pictureOf(snapshot as never, inPlace);
  const r = step(machine, snapshot, event);
  assert.is(picture(snapshotOf(state)), stateBefore, `${name}: the replica state is untouched`);
  assert.is(pictureOf(snapshot as never, inPlace), snapshotBefore, `${name}: the snapshot it was given is untouched`);
  assert.ok(r.effects.length + r.tells.length + r.parent.length > 0, `${name}: the step asks for something`);
  for (const a of r.actions) assert.ok(a.type.startsWith('xstate.') || typeof a.type === 'string', `${name}: actions are returned, not run`);
  return r;
}

test('election: a campaign that wins returns its records, its NEW-VIEW and its messages to siblings as values', () => {
  const input = nodeInput();
  let s = start(electionMachine, input).snapshot;
  s = campaign(electionMachine, s);
  assert.is(s.value, 'candidate', 'a majority would promise: it campaigns');
  const r = checkPure('election', electionMachine, input.state, s, { type: 'promise', from: 2, msg: { ballot: s.context.view.ballot, accepted: [], commitThrough: 0 } });
  assert.ok(r.effects.some((e) => e.type === 'record' && e.event.view));
  assert.ok(r.effects.some((e) => e.type === 'send' && e.envelope.newView));
  assert.ok(r.tells.some((t) => t.type === 'lead'));
});

test('acceptor: accepting entries returns the record and the vote', () => {
  const input = nodeInput();
  const s = start(acceptorMachine, input).snapshot;
  const r = checkPure('acceptor', acceptorMachine, input.state, s, {
    type: 'accept',
    from: 2,
    msg: { ballot: B(1, 2), entries: [{ seq: 1, phase: 0, ballot: B(1, 2), command: transfer('a', 1, 2) }] },
  });
  assert.equal(r.effects.map((e) => e.type), ['record', 'record', 'send']);
});

test('proposer: a round returns its record and its ACCEPTs (queue and pending change in place)', () => {
  const input = nodeInput();
  const s = step(proposerMachine, start(proposerMachine, input).snapshot, { type: 'lead', ballot: B(1, 1), pending: [] }).snapshot;
  const queued = step(proposerMachine, s, { type: 'propose', proposals: [{ command: transfer('a', 1, 2), phase: Phase.PHASE_NONE }] }).snapshot;
  const r = checkPure('proposer', proposerMachine, input.state, queued, { type: 'endOfTurn' }, ['queue', 'pending', 'cursor']);
  assert.equal(r.effects.map((e) => (e.type === 'record' ? 'record' : Object.keys(e.envelope).find((k) => k === 'accept'))), ['record', 'accept', 'accept']);
});

test('executor: running a committed entry returns its executed event, its reply and its release', () => {
  const input = nodeInput();
  applyEvent(input.state, { accepted: { entries: [{ seq: 1, phase: 0, ballot: B(1, 1), command: transfer('a', 1, 2) }] } });
  applyEvent(input.state, { committed: { slots: [1] } });
  const s = step(executorMachine, start(executorMachine, input).snapshot, { type: 'view', view: { role: 'leader', leader: 1, ballot: B(1, 1), live: [2, 3], quorum: true } }).snapshot;
  const r = checkPure('executor', executorMachine, input.state, s, { type: 'execute' });
  assert.equal(r.effects.map((e) => (e.type === 'record' ? e.event.executed?.status : e.envelope.reply?.status)), [Status.COMMITTED, Status.COMMITTED]);
  assert.equal(r.tells.map((t) => t.type), ['release']);
});

test('lock manager: admitting transfers returns proposals and lock events (locks change in place)', () => {
  const input = nodeInput();
  const s = step(lockManagerMachine, start(lockManagerMachine, input).snapshot, { type: 'view', view: { role: 'leader', leader: 1, ballot: B(1, 1), live: [2, 3], quorum: true } }).snapshot;
  const r = checkPure('lock manager', lockManagerMachine, input.state, s, { type: 'admit', commands: [transfer('a', 1, 2), transfer('b', 2, 3)] }, ['locks', 'parked', 'moving', 'aborting']);
  assert.equal(r.tells.map((t) => t.type), ['propose']);
});

test('coordinator and participant: a transaction\'s first step returns its PREPARE, its proposal and its phase event', () => {
  const input = nodeInput();
  const tx = transfer('t', 1, 4001);
  const c = start(coordinatorMachine, Object.assign({ txid: 't:1', command: tx, participantCluster: 2, mode: 'start' }, input));
  assert.is(c.snapshot.value, 'preparing');
  assert.equal(c.parent.map((p) => p.type), ['effects', 'out']);
  assert.equal(c.tells, [{ type: 'propose', proposals: [{ command: tx, phase: Phase.PHASE_PREPARE, seq: undefined, reason: undefined }] }]);
  checkPure('coordinator', coordinatorMachine, input.state, c.snapshot, { type: 'tick' });
  const ran = checkPure('coordinator', coordinatorMachine, input.state, c.snapshot, { type: 'txExecuted', txid: 't:1', phase: Phase.PHASE_PREPARE, seq: 1, status: Status.ABORTED, reason: 'insufficient balance' });
  assert.is(ran.snapshot.value, 'deciding');

  const pInput = nodeInput({ node: 4 });
  const p = start(participantMachine, Object.assign({ txid: 't:1', command: tx, coordinatorCluster: 1, coordinator: 1, mode: 'start' }, pInput));
  const prepared = checkPure('participant', participantMachine, pInput.state, p.snapshot, { type: 'txExecuted', txid: 't:1', phase: Phase.PHASE_PREPARE, seq: 2, status: Status.COMMITTED, reason: '' });
  assert.is(prepared.snapshot.value, 'prepared');
  assert.ok(prepared.parent.some((e) => e.type === 'effects'), 'its vote');
});

test('transactions: an ACK for a decision nobody is handling returns the record and tells the election', () => {
  const input = nodeInput();
  const tx = transfer('t', 1, 4001);
  applyEvent(input.state, { accepted: { entries: [{ seq: 1, phase: Phase.PHASE_PREPARE, ballot: B(1, 1), command: tx }] } });
  applyEvent(input.state, { executed: { seq: 1, phase: Phase.PHASE_PREPARE, command: tx, txid: 't:1', role: 'coordinator', status: Status.COMMITTED, before: [{ item: 1, balance: 10 }], writes: [{ item: 1, balance: 9 }] } });
  applyEvent(input.state, { executed: { seq: 1, phase: Phase.PHASE_COMMIT, command: tx, txid: 't:1', role: 'coordinator', status: Status.COMMITTED } });
  assert.ok(input.state.unacked.has('t:1'));
  const s = start(transactionsMachine, input).snapshot;
  const r = checkPure('transactions', transactionsMachine, input.state, s, { type: 'message', envelope: { from: 4, to: 1, txAck: { txid: 't:1' } } }, ['leaders']);
  assert.equal(r.effects.map((e) => (e.type === 'record' ? e.event.acked?.txid : '')), ['t:1']);
  assert.equal(r.tells, [{ type: 'shareAcks', txids: ['t:1'] }]);
});

test('node root: a turn\'s messages are routed as messages to siblings, nothing else', () => {
  const input = nodeInput();
  const s = steps(nodeMachine, start(nodeMachine, input).snapshot, [{ type: 'view', view: { role: 'leader', leader: 1, ballot: B(1, 1), live: [2, 3], quorum: true } }]).snapshot;
  const request = shardbank.Envelope.decode(shardbank.Envelope.encode({ from: 0, fromClient: 'c', request: { command: transfer('c', 1, 2) } }).finish());
  const r = checkPure('node', nodeMachine, input.state, s, { type: 'messages', envelopes: [request] });
  assert.equal(r.tells.map((t) => t.type), ['admit']);
});

test('executor: a follower runs a committed transfer and a 2PC entry, and tells no sibling: only a leader locks and runs 2PC actors', () => {
  const input = nodeInput();
  const tx = transfer('t', 5, 4001);
  applyEvent(input.state, { accepted: { entries: [{ seq: 1, phase: 0, ballot: B(1, 2), command: transfer('a', 1, 2) }, { seq: 2, phase: Phase.PHASE_PREPARE, ballot: B(1, 2), command: tx }] } });
  applyEvent(input.state, { committed: { slots: [1, 2] } });
  const s = step(executorMachine, start(executorMachine, input).snapshot, { type: 'view', view: { role: 'follower', leader: 2, ballot: B(1, 2), live: [], quorum: false } }).snapshot;
  const r = step(executorMachine, s, { type: 'execute' });
  assert.equal(r.effects.filter((e) => e.type === 'record' && e.event.executed).length, 2, 'both entries ran');
  assert.equal(r.effects.filter((e) => e.type === 'send').length, 0, 'no reply from a follower');
  assert.equal(r.tells, [], 'no release, no txExecuted');
});

test('a leader that steps down forgets its locks: the election tells the lock manager to reset, and the reset drops them', () => {
  const input = nodeInput();
  let e = campaign(electionMachine, start(electionMachine, input).snapshot);
  e = step(electionMachine, e, { type: 'promise', from: 2, msg: { ballot: e.context.view.ballot, accepted: [], commitThrough: 0 } }).snapshot;
  assert.is(e.value, 'leader');
  const deposed = step(electionMachine, e, { type: 'contact', from: 3, ballot: B((e.context.view.ballot.round ?? 0) + 1, 3) });
  assert.is(deposed.snapshot.value, 'follower');
  assert.ok(deposed.tells.some((t) => t.type === 'reset'), 'the lock manager is told to reset');

  const leader = { role: 'leader', leader: 1, ballot: B(1, 1), live: [2, 3], quorum: true };
  let s = step(lockManagerMachine, start(lockManagerMachine, input).snapshot, { type: 'view', view: leader }).snapshot;
  s = step(lockManagerMachine, s, { type: 'admit', commands: [transfer('a', 1, 2)] }).snapshot;
  assert.equal([...s.context.locks.keys()].sort(), [1, 2]);
  s = step(lockManagerMachine, s, { type: 'reset' }).snapshot;
  assert.is(s.context.locks.size, 0);
});

test('node root: an ACCEPT and a COMMIT of one leader in one turn tell the election once; another ballot is told again', () => {
  const input = nodeInput();
  const s = start(nodeMachine, input).snapshot;
  const wire = (e: object) => shardbank.Envelope.decode(shardbank.Envelope.encode(e).finish());
  const accept = wire({ from: 2, to: 1, accept: { ballot: B(1, 2), entries: [{ seq: 1, phase: 0, ballot: B(1, 2), command: transfer('a', 1, 2) }] } });
  const commit = wire({ from: 2, to: 1, commit: { ballot: B(1, 2), slots: [1] } });
  const later = wire({ from: 2, to: 1, commit: { ballot: B(2, 2), slots: [1] } });
  const r = step(nodeMachine, s, { type: 'messages', envelopes: [accept, commit, later] });
  assert.equal(r.tells.map((t) => t.type), ['accept', 'contact', 'commit', 'commit', 'contact']);
});

test.run();
