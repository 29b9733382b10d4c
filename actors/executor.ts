/**
 * The executor: applies committed entries strictly in sequence order, each
 * exactly once, and answers balance reads at the leader.
 *
 * A transfer whose sender lacks the funds executes as a no-op with status
 * `aborted: insufficient balance`. A request already executed for the same
 * (client, timestamp) (a retry that was ordered twice, e.g. across a leader
 * change) is not applied again: its stored reply stands. A 2PC decision whose
 * prepare ran earlier executes as soon as it is committed, at the seq the
 * leader reserved for it.
 *
 * The executor reads the replica state and never writes it: each entry's
 * outcome is an `executed` event, folded in by the host after the step. So a
 * step runs entries only while none reads what an earlier one of the same
 * step wrote (an item, a client's stored reply, a transaction's WAL); the
 * next entry waits for the next step (`continue`). Under the leader's locks
 * concurrent transfers touch different items, so a busy leader's commits
 * almost always run in one step. (`waiting`: a step stopped short, and the
 * executor carries on in its next.)
 */
import { setup } from 'xstate';
import { requestId, shardbank, type LogEventProps } from '../protocol/messages.js';
import { invariant } from '../store/invariant.js';
import { committedAt, type LogSlot } from '../store/state.js';
import { record, type Effect, type Emitted } from './effects.js';
import { ticksOf, type ExecutorEvent, type ReadEvent, type Tell, type TickEvent, type ViewEvent } from './events.js';
import { post, tell } from './mail.js';
import { ACTOR, NO_VIEW, type ActorInput, type View } from './node-info.js';
import { answerReady, dropLinearizable, emptyReadQueue, expire, roundConfirmed, takeReads, waitingForExecution, type ReadQueue } from './reads.js';
import { replyTo } from './replies.js';
import { executeSlot, type ExecContext } from './transfer.js';
import { act } from './act.js';

const { Status, Phase } = shardbank;

export interface ExecutorContext extends ActorInput {
  view: View;
  /** Reads waiting for the leader's confirmation or for execution (reads.ts). */
  reads: ReadQueue;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Enqueue = any;

/** What an entry reads and writes beyond its own slot: its items, its client's reply, its transaction. */
function touches(slot: Readonly<LogSlot>): string[] {
  const cmd = slot.command;
  if (!cmd) return [];
  const t = cmd.transfer;
  const items = t ? [t.sender ?? 0, t.receiver ?? 0] : cmd.move?.items ?? [];
  return [...items.map((i) => `i${i}`), `c${cmd.client ?? ''}`, `t${requestId(cmd)}`];
}

/** The outcome of one entry, and what its siblings and client hear of it. */
function apply(enqueue: Enqueue, ctx: ExecutorContext, exec: ExecContext, slot: Readonly<LogSlot>, tells: Tell[]): void {
  const ev: LogEventProps = executeSlot(exec, slot);
  enqueue.emit(record(ev));
  const x = ev.executed!;
  const cmd = slot.command;
  if (!cmd?.transfer && !cmd?.move) return;
  const { self } = ctx.info;
  const leading = ctx.view.role === 'leader';
  if (x.txid) {
    // Only a leader runs 2PC actors (a node that steps down drops them): elsewhere nobody waits for this.
    if (leading) tells.push(tell(ACTOR.transactions, { type: 'txExecuted', txid: x.txid, phase: slot.phase, seq: slot.seq, ranAt: x.ranAt ?? slot.seq, status: x.status ?? 0, reason: x.reason ?? '' }));
    // A prepare that failed here (no funds) holds nothing: its decision is an abort with nothing to undo.
    if (leading && slot.phase === Phase.PHASE_PREPARE && x.status !== Status.COMMITTED) tells.push(tell(ACTOR.lockManager, { type: 'release', commands: [cmd] }));
    if (slot.phase >= Phase.PHASE_COMMIT) {
      // The coordinator's decision is the client's answer: after a prepare its actor gives it, with what the
      // participant said; a transfer aborted at once, without 2PC, has no actor, and is answered here.
      const prepared = ctx.state.wal.has(x.txid);
      if (x.role === 'coordinator' && leading && !prepared) for (const s of replyTo(self, ctx.view, cmd, { status: x.status ?? 0, reason: x.reason ?? '', seq: x.ranAt ?? 0 })) enqueue.emit(s);
      if (leading) tells.push(tell(ACTOR.lockManager, { type: 'release', commands: [cmd] }));
    }
    return;
  }
  // Only the leader answers, and only its lock manager holds locks.
  if (x.status === undefined || !leading) return;
  // A transfer that wrote ran both items here: a session read of the receiver comes to this
  // cluster. (A copy answered from the stored reply wrote nothing, and says nothing of where.)
  const wrote = (x.writes?.length ?? 0) > 0;
  const reply = { status: x.status ?? 0, reason: x.reason ?? '', seq: x.ranAt ?? 0, receiverCluster: wrote ? ctx.info.cluster : 0 };
  for (const s of replyTo(self, ctx.view, cmd, reply)) enqueue.emit(s);
  tells.push(tell(ACTOR.lockManager, { type: 'release', commands: [cmd] }));
}

/**
 * Executes committed entries that are next in line, seq by seq (a 2PC
 * decision at the seq reserved for it), the same order on every replica,
 * until one would read what an earlier one of this step wrote. Returns
 * whether entries are left for the next step.
 */
function executeRun(enqueue: Enqueue, ctx: ExecutorContext): boolean {
  const { state } = ctx;
  const exec: ExecContext = ctx;
  const written = new Set<string>();
  const tells: Tell[] = [];
  let seq = state.executedThrough;
  let left = false;
  while (seq < state.commitThrough) {
    const slots = committedAt(state, seq + 1);
    invariant(slots.length > 0, () => `seq ${seq + 1} is below the commit point ${state.commitThrough} but not committed`);
    const keys = slots.flatMap(touches);
    if (keys.some((k) => written.has(k))) {
      left = true;
      break;
    }
    seq++;
    for (const slot of slots) apply(enqueue, ctx, exec, slot, tells);
    // A decision's executed event names its prepare's seq: mark this seq done.
    if (slots.every((s) => (s.runsAt ?? 0) > 0)) enqueue.emit(record({ executed: { seq } }));
    for (const k of keys) written.add(k);
  }
  post(enqueue, tells);
  return left;
}

function emitAll(enqueue: Enqueue, effects: Effect[]): void {
  for (const e of effects) enqueue.emit(e);
}

/** Reads waiting for execution are looked at in the next step, once this step's executions are folded in. */
function lookAgainIfWaiting(enqueue: Enqueue, ctx: ExecutorContext, self: unknown): void {
  if (waitingForExecution(ctx.reads)) enqueue.sendTo(self, { type: 'answerWaiting' });
}

export const executorMachine = setup({
  types: {
    context: {} as ExecutorContext,
    events: {} as ExecutorEvent | { type: 'blocked' } | { type: 'caughtUp' } | { type: 'answerWaiting' },
    input: {} as ActorInput,
    emitted: {} as Emitted,
  },
  guards: {
    hasCommitted: ({ context }) => context.state.commitThrough > context.state.executedThrough,
  },
  actions: {
    executeRun: act(({ context, enqueue, self }) => {
      if (executeRun(enqueue, context)) enqueue.raise({ type: 'blocked' });
      lookAgainIfWaiting(enqueue, context, self);
    }),
    executeRest: act(({ context, enqueue, self }) => {
      enqueue.raise({ type: executeRun(enqueue, context) ? 'blocked' : 'caughtUp' });
      lookAgainIfWaiting(enqueue, context, self);
    }),
    continueLater: act(({ enqueue, self }) => enqueue.sendTo(self, { type: 'continue' })),
    answerReads: act(({ context, event, enqueue }) => {
      const out: Effect[] = [];
      const round = takeReads(context, (event as ReadEvent).commands, out);
      emitAll(enqueue, out);
      if (round) post(enqueue, [tell(ACTOR.election, { type: 'confirm' })]);
    }),
    confirmed: act(({ context, enqueue }) => {
      const out: Effect[] = [];
      const again = roundConfirmed(context.reads);
      answerReady(context, out);
      emitAll(enqueue, out);
      if (again) post(enqueue, [tell(ACTOR.election, { type: 'confirm' })]);
    }),
    answerWaiting: act(({ context, enqueue }) => {
      const out: Effect[] = [];
      answerReady(context, out);
      emitAll(enqueue, out);
    }),
    expireReads: act(({ context, event, enqueue }) => {
      const out: Effect[] = [];
      expire(context, out, ticksOf(event as TickEvent));
      emitAll(enqueue, out);
    }),
    noteView: act(({ context, event, enqueue }) => {
      const view = (event as ViewEvent).view;
      enqueue.assign({ view });
      if (view.role === 'leader') return;
      const out: Effect[] = [];
      dropLinearizable(Object.assign({}, context, { view }), out);
      emitAll(enqueue, out);
    }),
  },
}).createMachine({
  id: 'executor',
  context: ({ input }) => ({ info: input.info, state: input.state, view: NO_VIEW, reads: emptyReadQueue() }),
  initial: 'idle',
  on: {
    read: { actions: 'answerReads' },
    confirmed: { actions: 'confirmed' },
    answerWaiting: { actions: 'answerWaiting' },
    tick: { actions: 'expireReads' },
    view: { actions: 'noteView' },
  },
  states: {
    // Each step runs what it can; only a step that stopped at an entry reading what it wrote
    // waits for the next (a state change on the common path would cost every turn a microstep).
    idle: {
      on: {
        execute: { guard: 'hasCommitted', actions: 'executeRun' },
        blocked: { target: 'waiting' },
      },
    },
    waiting: {
      entry: 'continueLater',
      on: {
        continue: { actions: 'executeRest' },
        blocked: { target: 'waiting', reenter: true },
        caughtUp: { target: 'idle' },
      },
    },
  },
});
