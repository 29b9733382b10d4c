/**
 * Which of a node's actors a clock tick concerns.
 *
 * A tick is the unit of every timer (retransmits, lock waits, 2PC retries,
 * read deadlines, catch-up waits), but most of the time most actors time
 * nothing: an idle leader's proposer has no round in flight, its lock manager
 * holds nothing, no transaction is open, no read waits. Telling each of them
 * the tick anyway costs a microstep apiece, forty times a second on every
 * node. The node asks, before it tells, whether anything of the actor is
 * timed now; an actor not told counts no tick, which is the same as counting
 * ticks while nothing is timed: each timer is a number of the actor's own
 * ticks from when it was set, and from then on the actor is told every tick.
 *
 * The election is always told (silence is what it times), so these
 * predicates cover the others. Each reads the actor's snapshot as it stands
 * when the node's clock ticks; none changes anything.
 */
import type { AcceptorContext } from './acceptor.js';
import type { ExecutorContext } from './executor.js';
import type { LockManagerContext } from './lockManager.js';
import type { ProposerContext } from './proposer.js';
import type { TransactionsContext } from './transactions.js';

interface Snapshot<C> {
  context: C;
  value: unknown;
  matches(value: unknown): boolean;
}

/** Catching up: the wait for the leader's reply runs out. */
export function acceptorTimes(s: Snapshot<AcceptorContext>): boolean {
  return s.value === 'catchingUp';
}

/** Reads waiting for execution or for the leader's confirmation have deadlines. */
export function executorTimes(s: Snapshot<ExecutorContext>): boolean {
  const r = s.context.reads;
  return r.unconfirmed.length + r.inRound.length + r.confirmed.length + r.session.length > 0;
}

/** Rounds in flight are resent; a state other than quiet settles back at a tick. */
export function proposerTimes(s: Snapshot<ProposerContext>): boolean {
  return s.context.pending.size > 0 || !s.matches({ leading: 'quiet' });
}

/** The end of a turn proposes what queued up and commits what has its majority: with neither, it is nothing. */
export function proposerHasWork(s: Snapshot<ProposerContext>): boolean {
  return s.context.queue.length > 0 || s.context.pending.size > 0;
}

/** Parked requests give up at their deadline; the chart's state follows the locks at ticks. */
export function lockManagerTimes(s: Snapshot<LockManagerContext>): boolean {
  const c = s.context;
  return c.parked.size > 0 || c.locks.size > 0 || c.moving.size > 0 || s.value !== 'free';
}

/** Open transactions retry; a leader adopts in-doubt ones from its state on the retry period. */
export function transactionsTimes(s: Snapshot<TransactionsContext>): boolean {
  const c = s.context;
  return c.actors.size > 0 || c.state.wal.size > 0 || c.state.unacked.size > 0;
}
