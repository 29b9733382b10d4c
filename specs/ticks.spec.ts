/**
 * The node's logical clock wakes it only for a tick some actor acts on.
 * Ticks fall every `tickMs`; the ones in between reach the actors as a count
 * (`{ type: 'tick', n }`) with the due tick, or before the next input. These
 * specs drive a NodeCore on a clock they move by hand, and watch the tick
 * events its root receives.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { AnyActorRef, InspectionEvent } from 'xstate';
import { ACTOR } from '../actors/node-info.js';
import { shardbank, type EnvelopeProps } from '../protocol/messages.js';
import { makeTopology } from '../protocol/topology.js';
import { NodeCore, type Clock } from '../runtime/core.js';
import { emptyState } from '../store/state.js';

/** A clock that moves only when told, firing its timers in time order. */
class HandClock implements Clock {
  time = 0;
  private timers = new Map<number, { at: number; fn: () => void }>();
  private next = 1;
  armed = 0;
  now(): number {
    return this.time;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    this.armed++;
    const id = this.next++;
    this.timers.set(id, { at: this.time + ms, fn });
    return id;
  }
  clearTimeout(id: unknown): void {
    this.timers.delete(id as number);
  }
  /** Moves to `to`, firing every timer due on the way, each at its own time. */
  advanceTo(to: number): void {
    for (;;) {
      const due = [...this.timers].filter(([, t]) => t.at <= to).sort((a, b) => a[1].at - b[1].at || a[0] - b[0])[0];
      if (!due) break;
      this.timers.delete(due[0]);
      this.time = Math.max(this.time, due[1].at);
      due[1].fn();
    }
    this.time = to;
  }
  get pending(): number[] {
    return [...this.timers.values()].map((t) => t.at).sort((a, b) => a - b);
  }
}

const topology = makeTopology({});
const { tickMs, electionTicksMin, electionTicksMax, heartbeatTicks, idleHeartbeatTicks } = topology.tuning;
const wire = (env: EnvelopeProps) => shardbank.Envelope.decode(shardbank.Envelope.encode(env).finish());

/** A core for node `self` in a set led by `leader`, and the tick events (n each) its root takes. */
function core(self: number, leader: number) {
  const clock = new HandClock();
  const ticks: number[] = [];
  const inspect = (e: InspectionEvent) => {
    if (e.type === '@xstate.event' && e.event.type === 'tick' && (e.actorRef as AnyActorRef).id === `n${self}`) ticks.push((e.event as { n?: number }).n ?? 1);
  };
  const c = new NodeCore({ topology, node: self, state: emptyState(self), clock, onFault: (err) => assert.unreachable(err.message), inspect });
  c.start();
  c.send({ type: 'flush', leader, initialBalance: 10, set: 1 });
  c.take();
  const election = () => (c.root.system.get(ACTOR.election) as AnyActorRef).getSnapshot();
  return { c, clock, ticks, election };
}

test('a follower that hears nothing sleeps until its election timeout, then asks for pre-votes: one tick event for all those ticks', () => {
  const { c, clock, ticks, election } = core(1, 2);
  const timeout = election().context.timeoutTicks as number;
  assert.ok(timeout >= electionTicksMin && timeout <= electionTicksMax, `timeout ${timeout} ticks in the configured range`);
  assert.equal(clock.pending, [timeout * tickMs], 'one timer, set for the tick the timeout falls on');
  clock.advanceTo(timeout * tickMs - 1);
  assert.equal(ticks, [], 'no wake-up before it');
  assert.is(election().value, 'follower');
  clock.advanceTo(timeout * tickMs);
  assert.equal(ticks, [timeout], 'woken once, with every tick since the set began');
  assert.is(election().value, 'precandidate');
  const out = c.take();
  assert.ok([...out.now, ...out.afterWrite].some((s) => s.preVote), 'pre-votes asked for');
  c.stop();
});

test('an input mid-sleep finds the counters where ticking every tickMs would have left them, and pushes the timeout back when it is the leader heard', () => {
  const { c, clock, ticks, election } = core(1, 2);
  const timeout = election().context.timeoutTicks as number;
  clock.advanceTo(3 * tickMs + 7);
  c.send({ type: 'endOfTurn' });
  assert.equal(ticks, [3], 'the three ticks fallen, before the input');
  assert.is(election().context.elapsed, 3);
  assert.equal(clock.pending, [timeout * tickMs], 'the timeout still falls where it did');
  // The leader's heartbeat: the follower has heard it, and its timeout starts again from this tick.
  clock.advanceTo(5 * tickMs);
  c.send({ type: 'messages', envelopes: [wire({ from: 2, to: 1, epoch: 1, heartbeat: { ballot: { round: 1, node: 2 }, commitThrough: 0, probe: 1 } })] });
  c.send({ type: 'endOfTurn' });
  assert.equal(ticks, [3, 2]);
  assert.is(election().context.elapsed, 0, 'heard: elapsed starts again');
  const again = election().context.timeoutTicks as number;
  assert.equal(clock.pending, [(5 + again) * tickMs], 'the timer moved with it');
  clock.advanceTo((5 + again) * tickMs);
  assert.equal(ticks, [3, 2, again]);
  assert.is(election().value, 'precandidate');
  c.stop();
});

test('an input that comes as the due tick falls is taken first; the timer then delivers that tick', () => {
  const { c, clock, ticks, election } = core(1, 2);
  const timeout = election().context.timeoutTicks as number;
  clock.time = timeout * tickMs; // the timer has not fired yet
  c.send({ type: 'endOfTurn' });
  assert.equal(ticks, [timeout - 1], 'all but the due tick');
  assert.is(election().value, 'follower', 'not timed out by an input');
  clock.advanceTo(timeout * tickMs);
  assert.equal(ticks, [timeout - 1, 1]);
  assert.is(election().value, 'precandidate');
  c.stop();
});

test('a timer that fires late delivers the due tick and drops the ones past it, as a late periodic tick would', () => {
  const { c, clock, ticks, election } = core(1, 2);
  const timeout = election().context.timeoutTicks as number;
  clock.time = (timeout + 5) * tickMs; // a process stalled past its timeout
  clock.advanceTo((timeout + 5) * tickMs);
  assert.equal(ticks, [timeout]);
  assert.is(election().context.elapsed, 0, 'a pre-candidate counts from its own start');
  // The dropped ticks are not delivered later.
  clock.advanceTo((timeout + 6) * tickMs - 1);
  assert.equal(ticks, [timeout]);
  c.stop();
});

/** Moves the clock one tick at a time for `n` ticks, and the heartbeats sent at each: [tick, nextIn]. */
function runTicks(c: NodeCore, clock: HandClock, n: number, answer?: (hb: EnvelopeProps) => EnvelopeProps[]): [number, number][] {
  const seen: [number, number][] = [];
  const start = Math.round(clock.time / tickMs);
  for (let t = start + 1; t <= start + n; t++) {
    clock.advanceTo(t * tickMs);
    const out = c.take();
    const sent = [...out.now, ...out.afterWrite].filter((s) => s.heartbeat);
    if (sent.length > 0) seen.push([t, Number(sent[0]!.heartbeat!.nextIn ?? 0)]);
    const replies = answer ? sent.flatMap((s) => answer(s)) : [];
    if (replies.length > 0) {
      c.send({ type: 'messages', envelopes: replies.map(wire) });
      c.send({ type: 'endOfTurn' });
      c.take();
    }
  }
  return seen;
}

/** At tick `at`, n2's heartbeat `probe` reaches n1, saying the next comes in idleHeartbeatTicks. */
function quietHeartbeat(c: NodeCore, clock: HandClock, at: number, probe: number): void {
  clock.advanceTo(at * tickMs);
  c.send({ type: 'messages', envelopes: [wire({ from: 2, to: 1, epoch: 1, heartbeat: { ballot: { round: 1, node: 2 }, commitThrough: 0, probe, nextIn: idleHeartbeatTicks } })] });
  c.send({ type: 'endOfTurn' });
  c.take();
}

/** Followers that acknowledge every heartbeat at once. */
const acknowledge = (hb: EnvelopeProps): EnvelopeProps[] => [{ from: hb.to!, to: hb.from!, epoch: 1, heartbeatAck: { ballot: hb.heartbeat!.ballot, probe: hb.heartbeat!.probe, executedThrough: 0 } }];

test('a quiet leader heartbeats less and less often, down to one every idleHeartbeatTicks, and names each wait in the heartbeat before it', () => {
  const { c, clock, ticks } = core(1, 1);
  const beats = runTicks(c, clock, 12 * idleHeartbeatTicks, acknowledge);
  assert.equal(beats[0], [heartbeatTicks, heartbeatTicks], 'a new leader starts at heartbeatTicks');
  for (let i = 1; i < beats.length; i++) {
    assert.is(beats[i]![0] - beats[i - 1]![0], beats[i - 1]![1], `heartbeat ${i} comes when the one before said (${beats[i - 1]![1]} ticks)`);
    assert.ok(beats[i]![1] >= beats[i - 1]![1], 'the waits only grow while nothing happens');
    // Quiet for q ticks: every q/4, within the bounds.
    assert.is(beats[i]![1], Math.max(heartbeatTicks, Math.min(idleHeartbeatTicks, Math.floor(beats[i]![0] / 4))));
  }
  assert.is(beats.at(-1)![1], idleHeartbeatTicks, 'it settles at idleHeartbeatTicks');
  const settledAt = beats.findIndex((b) => b[1] === idleHeartbeatTicks);
  assert.ok(beats.length - settledAt >= 5, 'and stays there');
  // Once settled, the leader is woken for its heartbeats and nothing else.
  ticks.length = 0;
  const armed = clock.armed;
  runTicks(c, clock, 5 * idleHeartbeatTicks, acknowledge);
  assert.equal(ticks, Array.from({ length: 5 }, () => idleHeartbeatTicks), 'five wake-ups, one per heartbeat');
  assert.ok(clock.armed - armed <= 5 + 2 * 5, 'a timer per wake-up and per acknowledgement turn at most');
  assert.is((c.root.system.get(ACTOR.election) as AnyActorRef).getSnapshot().context.view.quorum, true, 'followers that answer stay live');
  c.stop();
});

test('work brings the heartbeats back at once, and a follower that stopped answering during the quiet is noticed one window later', () => {
  const { c, clock, election } = core(1, 1);
  runTicks(c, clock, 10 * idleHeartbeatTicks, acknowledge);
  assert.is(election().context.announced, idleHeartbeatTicks);
  // Both followers die (they stop acknowledging) right after the last heartbeat; a transfer comes mid-wait.
  runTicks(c, clock, idleHeartbeatTicks / 2);
  assert.is(election().context.view.quorum, true, 'the quiet leader has not asked since');
  const at = Math.round(clock.time / tickMs);
  c.send({ type: 'messages', envelopes: [wire({ from: 0, fromClient: 'c', request: { command: { client: 'c', timestamp: 1, transfer: { sender: 1, receiver: 2, amount: 1 } } } })] });
  c.send({ type: 'endOfTurn' });
  c.take();
  const beats = runTicks(c, clock, electionTicksMin + 1);
  assert.equal(beats[0], [at + 1, heartbeatTicks], 'a heartbeat at the next tick, announcing heartbeatTicks');
  assert.is(election().context.view.quorum, true, 'still live while that heartbeat is inside the window');
  runTicks(c, clock, 1);
  assert.is(election().context.view.quorum, false, `no majority ${electionTicksMin + 1} ticks after the heartbeat that went unanswered`);
  assert.equal(election().context.view.live, []);
  c.stop();
});

test('a follower whose acknowledgements keep coming, each later than the window, stays live', () => {
  const { c, clock, election } = core(1, 1);
  // Every acknowledgement answers the heartbeat sent electionTicksMin + 2 ticks before it.
  const late: EnvelopeProps[][] = [];
  const lag = electionTicksMin + 2;
  const start = Math.round(clock.time / tickMs);
  for (let t = start + 1; t <= start + 6 * lag; t++) {
    clock.advanceTo(t * tickMs);
    const out = c.take();
    late.push([...out.now, ...out.afterWrite].filter((e) => e.heartbeat).flatMap(acknowledge));
    const due = late.length > lag ? late[late.length - 1 - lag]! : [];
    if (due.length > 0) {
      c.send({ type: 'messages', envelopes: due.map(wire) });
      c.send({ type: 'endOfTurn' });
      c.take();
    }
    if (t > start + 2 * lag) assert.is(election().context.view.quorum, true, `tick ${t}: late but steady acknowledgements keep a majority`);
  }
  c.stop();
});

test('a follower told the next heartbeat is far off waits that much longer, for its timeout and for the P1 rule', () => {
  const { c, clock, election } = core(1, 2);
  quietHeartbeat(c, clock, 1, 1);
  const grace = idleHeartbeatTicks - heartbeatTicks;
  assert.is(election().context.grace, grace);
  const timeout = election().context.timeoutTicks as number;
  assert.equal(clock.pending, [(1 + timeout + grace) * tickMs], 'the timeout is pushed back by the announced wait');
  // Past electionTicksMin but inside the announced wait, a pre-vote and a PREPARE from n3 are refused.
  clock.advanceTo((1 + electionTicksMin + 1) * tickMs);
  const ballot = { round: 2, node: 3 };
  c.send({ type: 'messages', envelopes: [wire({ from: 3, to: 1, epoch: 1, preVote: { ballot, commitThrough: 0 } }), wire({ from: 3, to: 1, epoch: 1, prepare: { ballot, commitThrough: 0 } })] });
  c.send({ type: 'endOfTurn' });
  const out = c.take();
  const sent = [...out.now, ...out.afterWrite];
  assert.is(sent.find((s) => s.preVoteReply)?.preVoteReply?.granted, false, 'pre-vote refused: the leader may still be heard');
  assert.not.ok(sent.some((s) => s.promise), 'PREPARE deferred, not granted');
  assert.is(election().value, 'follower');
  // The heartbeat never comes: once the stretched timeout falls, the follower grants the deferred PREPARE.
  clock.advanceTo((1 + timeout + grace) * tickMs - 1);
  assert.is(election().context.view.leader, 2, 'still following n2 a moment before');
  clock.advanceTo((1 + timeout + grace) * tickMs);
  const after = c.take();
  assert.ok([...after.now, ...after.afterWrite].some((s) => s.to === 3 && s.promise), 'the deferred PREPARE granted: a promise to n3');
  assert.is(election().context.view.leader, 0, 'it has stopped following n2');
  c.stop();
});

test('a pre-candidate brought back by a quiet leader\'s heartbeat keeps the announced wait', () => {
  const { c, clock, election } = core(1, 2);
  const timeout = election().context.timeoutTicks as number;
  clock.advanceTo(timeout * tickMs);
  assert.is(election().value, 'precandidate', 'a heartbeat was missed');
  c.take();
  const at = timeout + 1;
  quietHeartbeat(c, clock, at, 3);
  assert.is(election().value, 'follower');
  assert.is(election().context.grace, idleHeartbeatTicks - heartbeatTicks, 'the heartbeat\'s wait, not reset on entering follower');
  const again = election().context.timeoutTicks as number;
  assert.equal(clock.pending, [(at + again + idleHeartbeatTicks - heartbeatTicks) * tickMs]);
  c.stop();
});

test('a quiet leader that gets a relayed request heartbeats at the next tick, even when the request orders nothing', () => {
  const { c, clock, election } = core(1, 1);
  runTicks(c, clock, 10 * idleHeartbeatTicks, acknowledge);
  runTicks(c, clock, idleHeartbeatTicks / 2, acknowledge);
  const at = Math.round(clock.time / tickMs);
  // A read at the default level: the leader answers it from its state, with no log entry.
  c.send({ type: 'messages', envelopes: [wire({ from: 2, to: 1, epoch: 1, request: { command: { client: 'c', timestamp: 1, read: { item: 1 } }, relayedBy: 2 } })] });
  c.send({ type: 'endOfTurn' });
  c.take();
  assert.is(election().context.state.maxSeq, 0, 'nothing ordered');
  const beats = runTicks(c, clock, 1, acknowledge);
  assert.equal(beats, [[at + 1, heartbeatTicks]], 'a heartbeat at the next tick, announcing heartbeatTicks');
  c.stop();
});

test('a client request relayed to a quiet leader ends the follower\'s extra patience: a normal timeout from then on', () => {
  const { c, clock, election } = core(1, 2);
  quietHeartbeat(c, clock, 1, 1);
  const timeout = election().context.timeoutTicks as number;
  clock.advanceTo(21 * tickMs);
  c.send({ type: 'messages', envelopes: [wire({ from: 0, fromClient: 'c', request: { command: { client: 'c', timestamp: 1, transfer: { sender: 1, receiver: 2, amount: 1 } } } })] });
  c.send({ type: 'endOfTurn' });
  const out = c.take();
  assert.ok([...out.now, ...out.afterWrite].some((s) => s.to === 2 && s.request?.relayedBy === 1), 'relayed to n2');
  assert.is(election().context.grace, 20, 'the patience left is what has already passed');
  assert.equal(clock.pending, [(21 + timeout) * tickMs], 'the timeout falls a normal timeout after the request');
  // n3 got the client's request too and asks electionTicksMin ticks later: n1 grants the pre-vote only then.
  const ballot = { round: 2, node: 3 };
  const preVote = () => {
    c.send({ type: 'messages', envelopes: [wire({ from: 3, to: 1, epoch: 1, preVote: { ballot, commitThrough: 0 } })] });
    c.send({ type: 'endOfTurn' });
    const o = c.take();
    return [...o.now, ...o.afterWrite].find((s) => s.preVoteReply)?.preVoteReply?.granted;
  };
  clock.advanceTo((21 + electionTicksMin - 1) * tickMs);
  assert.is(preVote(), false, 'not before electionTicksMin ticks of silence since the request');
  clock.advanceTo((21 + electionTicksMin) * tickMs);
  assert.is(preVote(), true);
  c.stop();
});

test('a failed node\'s clock stops: nothing is due, no timer is set, and on recovery its ticks start from there', () => {
  const { c, clock, ticks, election } = core(1, 2);
  c.send({ type: 'fail' });
  assert.equal(clock.pending, [], 'no timer while failed');
  clock.advanceTo(100 * tickMs);
  assert.equal(ticks, []);
  c.send({ type: 'recover' });
  assert.equal(ticks, [100], 'the fallen ticks reach a failed root, which ignores them');
  assert.is(election().context.elapsed, 0, 'the election counted none of them');
  assert.is(clock.pending.length, 1, 'timed again once live');
  c.stop();
});

test.run();
