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
import { assign, setup } from 'xstate';
import { requestId, shardbank, type Command, type LogEventProps } from '../protocol/messages.js';
import { invariant } from '../store/invariant.js';
import { balanceOf, committedAt, ownerOf, type LogSlot } from '../store/state.js';
import { record, type Effect, type Emitted } from './effects.js';
import type { ExecutorEvent, ReadEvent, Tell, ViewEvent } from './events.js';
import { post, tell } from './mail.js';
import { ACTOR, NO_VIEW, type ActorInput, type View } from './node-info.js';
import { failReply, movedReply, replyTo } from './replies.js';
import { executeSlot, type ExecContext } from './transfer.js';
import { act } from './act.js';

const { Status, Phase } = shardbank;

export interface ExecutorContext extends ActorInput {
  view: View;
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
    tells.push(tell(ACTOR.transactions, { type: 'txExecuted', txid: x.txid, phase: slot.phase, seq: slot.seq, status: x.status ?? 0, reason: x.reason ?? '' }));
    // A prepare that failed here (no funds) holds nothing: its decision is an abort with nothing to undo.
    if (slot.phase === Phase.PHASE_PREPARE && x.status !== Status.COMMITTED) tells.push(tell(ACTOR.lockManager, { type: 'release', commands: [cmd] }));
    if (slot.phase >= Phase.PHASE_COMMIT) {
      // The coordinator's decision is the client's answer.
      if (x.role === 'coordinator' && leading) for (const s of replyTo(self, ctx.view, cmd, { status: x.status ?? 0, reason: x.reason ?? '' })) enqueue.emit(s);
      tells.push(tell(ACTOR.lockManager, { type: 'release', commands: [cmd] }));
    }
    return;
  }
  if (x.status === undefined) return;
  if (leading) for (const s of replyTo(self, ctx.view, cmd, { status: x.status ?? 0, reason: x.reason ?? '' })) enqueue.emit(s);
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

function answerRead(enqueue: Enqueue, ctx: ExecutorContext, command: Command): void {
  const item = command.read?.item ?? 0;
  const { info, view, state } = ctx;
  const owner = ownerOf(info.topology, state, item);
  const effects =
    owner === null
      ? failReply(info.self, view, command, 'item out of range')
      : owner.cluster !== info.cluster
        ? movedReply(info.self, view, command, item, owner)
        : replyTo(info.self, view, command, { status: Status.OK, balance: balanceOf(state, item), hasBalance: true });
  for (const s of effects) enqueue.emit(s);
}

export const executorMachine = setup({
  types: {
    context: {} as ExecutorContext,
    events: {} as ExecutorEvent | { type: 'blocked' } | { type: 'caughtUp' },
    input: {} as ActorInput,
    emitted: {} as Emitted,
  },
  guards: {
    hasCommitted: ({ context }) => context.state.commitThrough > context.state.executedThrough,
  },
  actions: {
    executeRun: act(({ context, enqueue }) => {
      if (executeRun(enqueue, context)) enqueue.raise({ type: 'blocked' });
    }),
    executeRest: act(({ context, enqueue }) => {
      enqueue.raise({ type: executeRun(enqueue, context) ? 'blocked' : 'caughtUp' });
    }),
    continueLater: act(({ enqueue, self }) => enqueue.sendTo(self, { type: 'continue' })),
    answerReads: act(({ context, event, enqueue }) => {
      for (const command of (event as ReadEvent).commands) answerRead(enqueue, context, command);
    }),
    noteView: assign({ view: ({ event }) => (event as ViewEvent).view }),
  },
}).createMachine({
  id: 'executor',
  context: ({ input }) => ({ info: input.info, state: input.state, view: NO_VIEW }),
  initial: 'idle',
  on: {
    read: { actions: 'answerReads' },
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
