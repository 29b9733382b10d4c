/**
 * The executor: applies committed entries strictly in sequence order, each
 * exactly once, and answers balance reads at the leader.
 *
 * A transfer whose sender lacks the funds executes as a no-op with status
 * `aborted: insufficient balance`. A request already executed for the same
 * (client, timestamp) (a retry that was ordered twice, e.g. across a leader
 * change) is not applied again: its stored reply stands. A 2PC decision whose
 * prepare ran earlier executes as soon as it is committed: its seq is behind
 * the cursor, since the decision reuses the prepare's seq.
 */
import { enqueueActions, setup } from 'xstate';
import { shardbank, type Command, type LogEventProps } from '../protocol/messages.js';
import { clusterOfItem } from '../protocol/topology.js';
import { balanceOf, committedAt, type LogSlot } from '../store/state.js';
import { ACTOR, deliverNotices, type NodeEnv, type Notice } from './env.js';
import type { ExecuteEvent, ReadAllEvent } from './events.js';
import { replyTo } from './replies.js';
import { executeSlot } from './transfer.js';

const { Status } = shardbank;

export interface ExecutorContext {
  env: NodeEnv;
}

export type ExecutorEvent = ExecuteEvent | ReadAllEvent;

function apply(env: NodeEnv, slot: LogSlot, notices: Notice[]): void {
  const ev: LogEventProps = executeSlot(env, slot);
  env.record(ev);
  const x = ev.executed!;
  const cmd = slot.command;
  if (!cmd?.transfer) return;
  if (x.txid) {
    notices.push({
      to: ACTOR.transactions,
      event: { type: 'txExecuted', txid: x.txid, phase: slot.phase, seq: slot.seq, status: x.status ?? 0, reason: x.reason ?? '' },
    });
    // A prepare that failed here (no funds) holds nothing: its decision is an abort with nothing to undo.
    if (slot.phase === shardbank.Phase.PHASE_PREPARE && x.status !== shardbank.Status.COMMITTED) {
      notices.push({ to: ACTOR.lockManager, event: { type: 'release', command: cmd } });
    }
    if (slot.phase >= shardbank.Phase.PHASE_COMMIT) {
      // The coordinator's decision is the client's answer.
      if (x.role === 'coordinator' && env.view.role === 'leader') replyTo(env, cmd, { status: x.status ?? 0, reason: x.reason ?? '' });
      notices.push({ to: ACTOR.lockManager, event: { type: 'release', command: cmd } });
    }
    return;
  }
  if (x.status === undefined) return;
  if (env.view.role === 'leader') replyTo(env, cmd, { status: x.status ?? 0, reason: x.reason ?? '' });
  notices.push({ to: ACTOR.lockManager, event: { type: 'release', command: cmd } });
}

/**
 * Executes every committed entry that is next in line, seq by seq (a 2PC
 * decision at the seq reserved for it), the same order on every replica;
 * returns notices for siblings.
 */
function executeReady(env: NodeEnv): Notice[] {
  const notices: Notice[] = [];
  const { state } = env;
  while (state.executedThrough < state.commitThrough) {
    const seq = state.executedThrough + 1;
    for (const slot of committedAt(state, seq)) apply(env, slot, notices);
    if (state.executedThrough < seq) env.record({ executed: { seq } });
  }
  return notices;
}

function answerRead(env: NodeEnv, command: Command): void {
  const item = command.read?.item ?? 0;
  if (clusterOfItem(env.topology, item) !== env.cluster) {
    replyTo(env, command, { status: Status.FAILED, reason: 'wrong shard' });
    return;
  }
  replyTo(env, command, { status: Status.OK, balance: balanceOf(env.state, item), hasBalance: true });
}

export const executorMachine = setup({
  types: {
    context: {} as ExecutorContext,
    events: {} as ExecutorEvent,
    input: {} as { env: NodeEnv },
  },
  actions: {
    executeCommitted: enqueueActions(({ context, enqueue }) => {
      deliverNotices(enqueue, executeReady(context.env));
    }),
    answerReads: ({ context, event }) => {
      for (const e of (event as ReadAllEvent).events) answerRead(context.env, e.command);
    },
  },
}).createMachine({
  id: 'executor',
  context: ({ input }) => ({ env: input.env }),
  on: {
    execute: { actions: 'executeCommitted' },
    readAll: { actions: 'answerReads' },
  },
});
