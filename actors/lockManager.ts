/**
 * The leader's lock manager and admission control for transfers.
 *
 * A transfer reaching the leader is checked in this order: well formed and
 * inside this cluster; already answered (a retry gets the stored reply, an
 * older timestamp is dropped); already in flight (a duplicate is dropped);
 * any of its items locked (the spec's rule: the leader skips it and tells the
 * client `aborted: lock conflict`). Otherwise both items are locked until the
 * transfer executes, and it goes to the proposer.
 *
 * A skipped transfer is still ordered, as an abort entry that changes no
 * balance: its answer then becomes the client's stored reply on every
 * replica, so a late copy of the request (a relayed broadcast, or one that
 * reaches a new leader) gets that answer instead of being executed.
 */
import { enqueueActions, setup } from 'xstate';
import type { Command } from '../protocol/messages.js';
import { clusterOfItem } from '../protocol/topology.js';
import { ACTOR, deliverNotices, type NodeEnv, type Notice } from './env.js';
import type { AdmitEvent, ReleaseEvent } from './events.js';
import { failReply, replyTo, requestId } from './replies.js';

export interface LockManagerContext {
  env: NodeEnv;
  /** item -> id of the request holding it */
  locks: Map<number, string>;
}

export type LockManagerEvent = AdmitEvent | ReleaseEvent | { type: 'reset' };

function problemWith(env: NodeEnv, command: Command): string | null {
  const t = command.transfer;
  if (!t) return 'not a transfer';
  if (!command.client) return 'missing client id';
  if (!t.amount || t.amount <= 0) return 'amount must be a positive integer';
  if (t.sender === t.receiver) return 'sender and receiver are the same item';
  const cs = clusterOfItem(env.topology, t.sender ?? 0);
  const cr = clusterOfItem(env.topology, t.receiver ?? 0);
  if (cs === null || cr === null) return 'item out of range';
  if (cs !== cr) return 'cross-shard not supported';
  if (cs !== env.cluster) return 'wrong shard';
  return null;
}

function admit(ctx: LockManagerContext, command: Command): Notice[] {
  const { env } = ctx;
  const problem = problemWith(env, command);
  if (problem) {
    failReply(env, command, problem);
    return [];
  }
  const stored = env.state.replies.get(command.client!);
  const ts = command.timestamp ?? 0;
  if (stored && stored.timestamp === ts) {
    replyTo(env, command, stored.reply);
    return [];
  }
  if (stored && stored.timestamp > ts) return [];
  const id = requestId(command);
  const items = [command.transfer!.sender!, command.transfer!.receiver!];
  if (items.some((i) => ctx.locks.get(i) === id)) return [];
  if (items.some((i) => ctx.locks.has(i))) return [{ to: ACTOR.proposer, event: { type: 'propose', command, skipped: true } }];
  for (const i of items) ctx.locks.set(i, id);
  return [{ to: ACTOR.proposer, event: { type: 'propose', command } }];
}

function release(ctx: LockManagerContext, command: Command): void {
  const id = requestId(command);
  const t = command.transfer;
  if (!t) return;
  for (const i of [t.sender ?? 0, t.receiver ?? 0]) if (ctx.locks.get(i) === id) ctx.locks.delete(i);
}

export const lockManagerMachine = setup({
  types: {
    context: {} as LockManagerContext,
    events: {} as LockManagerEvent,
    input: {} as { env: NodeEnv },
  },
  actions: {
    admit: enqueueActions(({ context, event, enqueue }) => {
      deliverNotices(enqueue, admit(context, (event as AdmitEvent).command));
    }),
    release: ({ context, event }) => release(context, (event as ReleaseEvent).command),
    clear: ({ context }) => {
      context.locks = new Map();
    },
  },
}).createMachine({
  id: 'lockManager',
  context: ({ input }) => ({ env: input.env, locks: new Map() }),
  on: {
    admit: { actions: 'admit' },
    release: { actions: 'release' },
    reset: { actions: 'clear' },
  },
});
