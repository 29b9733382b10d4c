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
import { clusterNodes, makeTopology } from '../protocol/topology.js';
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
const { tickMs, electionTicksMin, electionTicksMax, heartbeatTicks } = topology.tuning;
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

test('a leader wakes for its heartbeats only: one every heartbeatTicks, none in between', () => {
  const { c, clock, ticks } = core(1, 1);
  // Its followers never answer here: once its failure detector's window has passed (a wake-up of its
  // own, the tick they drop out of it), it sees no one live and times nothing but its heartbeats.
  const settled = heartbeatTicks * Math.ceil((electionTicksMin + 2) / heartbeatTicks) * tickMs;
  clock.advanceTo(settled);
  c.take();
  ticks.length = 0;
  const before = clock.armed;
  clock.advanceTo(settled + 10 * heartbeatTicks * tickMs);
  const out = c.take();
  const heartbeats = [...out.now, ...out.afterWrite].filter((s) => s.heartbeat);
  assert.equal(ticks, Array.from({ length: 10 }, () => heartbeatTicks), 'ten wake-ups of heartbeatTicks ticks each');
  assert.is(heartbeats.length, 10 * (clusterNodes(topology, 1).length - 1), 'a heartbeat to each follower at each');
  assert.ok(clock.armed - before <= 10, 'one timer a wake-up');
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
