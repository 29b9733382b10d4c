/**
 * The executor: applies committed entries strictly in sequence order, each
 * exactly once, and answers balance reads at the leader.
 *
 * A transfer whose sender lacks the funds executes as a no-op with status
 * `aborted: insufficient balance`. A request already executed for the same
 * (client, timestamp) (a retry that was ordered twice, e.g. across a leader
 * change) is not applied again: its stored reply stands.
 */
import { enqueueActions, setup } from 'xstate';
import { shardbank, type Command, type LogEventProps } from '../protocol/messages.js';
import { clusterOfItem } from '../protocol/topology.js';
import { balanceOf, committedAt, type LogSlot } from '../store/state.js';
import { ACTOR, deliverNotices, type NodeEnv, type Notice } from './env.js';
import type { ExecuteEvent, ReadEvent } from './events.js';
import { replyTo } from './replies.js';

const { Status } = shardbank;

export interface ExecutorContext {
  env: NodeEnv;
}

export type ExecutorEvent = ExecuteEvent | ReadEvent;

/** The Executed event for one committed slot (pure: reads state, changes nothing). */
export function executeSlot(env: NodeEnv, slot: LogSlot): LogEventProps {
  const base = { seq: slot.seq, phase: slot.phase };
  const cmd = slot.command;
  const t = cmd?.transfer;
  if (!cmd || !t) return { executed: { ...base, command: cmd ?? undefined, status: Status.OK } };
  const stored = env.state.replies.get(cmd.client ?? '');
  if (stored && stored.timestamp >= (cmd.timestamp ?? 0)) {
    return { executed: { ...base, command: cmd, status: stored.reply.status, reason: stored.reply.reason } };
  }
  // An abort entry with no prepare before it: the leader skipped the transfer.
  if (slot.phase === shardbank.Phase.PHASE_ABORT) {
    return { executed: { ...base, command: cmd, status: Status.ABORTED, reason: 'lock conflict' } };
  }
  const sender = t.sender ?? 0;
  const receiver = t.receiver ?? 0;
  const amount = t.amount ?? 0;
  const topo = env.topology;
  if (clusterOfItem(topo, sender) !== env.cluster || clusterOfItem(topo, receiver) !== env.cluster) {
    return { executed: { ...base, command: cmd, status: Status.ABORTED, reason: 'wrong shard' } };
  }
  const from = balanceOf(env.state, sender);
  if (from < amount) {
    return { executed: { ...base, command: cmd, status: Status.ABORTED, reason: 'insufficient balance' } };
  }
  const to = balanceOf(env.state, receiver);
  return {
    executed: {
      ...base,
      command: cmd,
      status: Status.COMMITTED,
      writes: [
        { item: sender, balance: from - amount },
        { item: receiver, balance: to + amount },
      ],
    },
  };
}

/** Executes every committed entry that is next in line; returns the lock releases. */
function executeReady(env: NodeEnv): Notice[] {
  const notices: Notice[] = [];
  const { state } = env;
  while (state.executedThrough < state.commitThrough) {
    const seq = state.executedThrough + 1;
    for (const slot of committedAt(state, seq)) {
      const ev = executeSlot(env, slot);
      env.record(ev);
      const cmd = slot.command;
      if (!cmd?.transfer) continue;
      if (env.view.role === 'leader') {
        replyTo(env, cmd, { status: ev.executed!.status ?? 0, reason: ev.executed!.reason ?? '' });
      }
      notices.push({ to: ACTOR.lockManager, event: { type: 'release', command: cmd } });
    }
    // A seq whose only entries are decisions of earlier seqs still advances.
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
    answerRead: ({ context, event }) => answerRead(context.env, (event as ReadEvent).command),
  },
}).createMachine({
  id: 'executor',
  context: ({ input }) => ({ env: input.env }),
  on: {
    execute: { actions: 'executeCommitted' },
    read: { actions: 'answerRead' },
  },
});

export type { Command };
