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
 * An item held by a prepared cross-shard transaction is different: its
 * decision is already on its way, so the transfer waits for it (at most
 * `lockWaitTicks`) before the conflict counts. Run one after the other, two
 * transfers through the same item then both commit, as a sequential reading
 * of the spec expects, though the coordinator answers its client before the
 * participant has applied the commit.
 *
 * A skipped transfer is still ordered, as an abort entry that changes no
 * balance: its answer then becomes the client's stored reply on every
 * replica, so a late copy of the request (a relayed broadcast, or one that
 * reaches a new leader) gets that answer instead of being executed.
 */
import { enqueueActions, setup } from 'xstate';
import { entryKey, shardbank, type Command, type NodeId } from '../protocol/messages.js';
import { clusterOfItem } from '../protocol/topology.js';
import { balanceOf } from '../store/state.js';
import { ACTOR, deliverNotices, sendToNode, type NodeEnv, type Notice } from './env.js';
import type { AdmitAllEvent, AdmitEvent, ReleaseAllEvent } from './events.js';
import { failReply, replyTo, requestId } from './replies.js';
import { txRole } from './transfer.js';


export interface LockManagerContext {
  env: NodeEnv;
  /**
   * item -> ids of the requests holding it. One holder, except right after a
   * leader change: several inherited entries on one item may wait to run.
   */
  locks: Map<number, Set<string>>;
  /** Requests waiting for a prepared transaction's lock, by request id, in arrival order. */
  parked: Map<string, Parked>;
  ticks: number;
}

interface Parked {
  id: string;
  /** The tick it gives up at. */
  until: number;
  /** The locked items it waits for. */
  items: number[];
  event: AdmitEvent | PrepareTxEvent;
}

export type PrepareTxEvent = { type: 'prepare'; command: Command; from: NodeId; coordinatorCluster: number };

export type LockManagerEvent =
  | AdmitAllEvent
  | ReleaseAllEvent
  | PrepareTxEvent
  | { type: 'reset' }
  | { type: 'tick' }
  | { type: 'adopt' };

function problemWith(env: NodeEnv, command: Command): string | null {
  const t = command.transfer;
  if (!t) return 'not a transfer';
  if (!command.client) return 'missing client id';
  if (!t.amount || t.amount <= 0) return 'amount must be a positive integer';
  if (t.sender === t.receiver) return 'sender and receiver are the same item';
  const cs = clusterOfItem(env.topology, t.sender ?? 0);
  const cr = clusterOfItem(env.topology, t.receiver ?? 0);
  if (cs === null || cr === null) return 'item out of range';
  if (cs !== env.cluster) return "wrong shard: send to the sender's cluster";
  return null;
}

/** Held by a transfer in flight here, or by a prepared cross-shard transaction (its WAL). */
function isLocked(ctx: LockManagerContext, item: number): boolean {
  return (ctx.locks.get(item)?.size ?? 0) > 0 || ctx.env.state.walLocks.has(item);
}

function lock(ctx: LockManagerContext, item: number, id: string): void {
  const holders = ctx.locks.get(item);
  if (holders) holders.add(id);
  else ctx.locks.set(item, new Set([id]));
}

function heldBy(ctx: LockManagerContext, item: number, id: string): boolean {
  return !!ctx.locks.get(item)?.has(id) || ctx.env.state.walLocks.get(item) === id;
}

/**
 * Parks a request whose items are held only by prepared cross-shard
 * transactions; false when it must take the conflict now.
 */
function park(ctx: LockManagerContext, items: number[], id: string, event: Parked['event'], until: number | null): boolean {
  if (until !== null && ctx.ticks >= until) return false;
  const { state } = ctx.env;
  const holders = items.filter((i) => isLocked(ctx, i)).flatMap((i) => [...(ctx.locks.get(i) ?? []), ...(state.walLocks.has(i) ? [state.walLocks.get(i)!] : [])]);
  if (!holders.every((h) => state.wal.has(h))) return false;
  if (ctx.parked.size >= ctx.env.tuning.maxQueue) return false;
  if (!ctx.parked.has(id)) ctx.parked.set(id, { id, event, items, until: until ?? ctx.ticks + ctx.env.tuning.lockWaitTicks });
  return true;
}

/**
 * Gives the parked requests that `pick` selects another go, in arrival
 * order: those waiting for an item just released, or those whose wait is
 * over (they take the conflict now, unless the item is free). The others
 * would only park again.
 */
function retryParked(ctx: LockManagerContext, pick: (p: Parked) => boolean): Notice[] {
  const chosen: Parked[] = [];
  for (const p of ctx.parked.values()) if (pick(p)) chosen.push(p);
  const out: Notice[] = [];
  for (const p of chosen) {
    ctx.parked.delete(p.id);
    for (const n of p.event.type === 'admit' ? admit(ctx, p.event.command, p.until) : admitPrepare(ctx, p.event, p.until)) out.push(n);
  }
  return out;
}

function admit(ctx: LockManagerContext, command: Command, until: number | null = null): Notice[] {
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
  const t = command.transfer!;
  if (txRole(env.topology, env.cluster, command) === 'coordinator') {
    // The spec's coordinator checks: s unlocked and funded, else abort at once.
    if (heldBy(ctx, t.sender!, id) || env.state.wal.has(id) || env.state.decisions.has(id)) return [];
    // Aborted at once, without 2PC; ordered all the same, so the answer is final.
    if (isLocked(ctx, t.sender!)) {
      if (park(ctx, [t.sender!], id, { type: 'admit', command }, until)) return [];
      return [abortAtOnce(command, 'lock conflict')];
    }
    if (balanceOf(env.state, t.sender!) < (t.amount ?? 0)) return [abortAtOnce(command, 'insufficient balance')];
    lock(ctx, t.sender!, id);
    return [{ to: ACTOR.transactions, event: { type: 'coordinate', command, txid: id } }];
  }
  const items = [t.sender!, t.receiver!];
  if (items.some((i) => ctx.locks.get(i)?.has(id))) return [];
  if (items.some((i) => isLocked(ctx, i))) {
    if (park(ctx, items, id, { type: 'admit', command }, until)) return [];
    return [{ to: ACTOR.proposer, event: { type: 'propose', command, skipped: true } }];
  }
  for (const i of items) lock(ctx, i, id);
  return [{ to: ACTOR.proposer, event: { type: 'propose', command } }];
}

/** A coordinator's PREPARE at the participant's leader: lock the receiver, or refuse. */
function admitPrepare(ctx: LockManagerContext, e: PrepareTxEvent, until: number | null = null): Notice[] {
  const { env } = ctx;
  const command = e.command;
  const id = requestId(command);
  const receiver = command.transfer?.receiver ?? 0;
  if (clusterOfItem(env.topology, receiver) !== env.cluster) return [];
  const decided = env.state.decisions.get(id);
  if (decided !== undefined) {
    sendToNode(env, e.from, { txVote: { txid: id, prepared: decided, reason: decided ? '' : 'aborted' } });
    return [];
  }
  const base = { type: 'participate', command, txid: id, from: e.from, coordinatorCluster: e.coordinatorCluster };
  if (heldBy(ctx, receiver, id) || env.state.wal.has(id)) return [{ to: ACTOR.transactions, event: Object.assign({}, base, { mode: 'start' }) }];
  if (isLocked(ctx, receiver)) {
    if (park(ctx, [receiver], id, e, until)) return [];
    return [{ to: ACTOR.transactions, event: Object.assign({}, base, { mode: 'locked' }) }];
  }
  lock(ctx, receiver, id);
  return [{ to: ACTOR.transactions, event: Object.assign({}, base, { mode: 'start' }) }];
}

/**
 * A new leader inherits entries its predecessor ordered that have not run
 * yet; their items stay locked until they do, or a transfer admitted now
 * could slip between a prepare and its undo.
 */
function adoptPending(ctx: LockManagerContext): void {
  const { state, topology, cluster } = ctx.env;
  for (let seq = state.executedThrough + 1; seq <= state.maxSeq; seq++) {
    const slot = state.log.get(entryKey(seq));
    // Decisions and skipped transfers hold no lock of their own.
    if (!slot || (slot.runsAt ?? 0) > 0 || slot.phase >= shardbank.Phase.PHASE_COMMIT) continue;
    const command = slot.command;
    const t = command?.transfer;
    if (!t) continue;
    const id = requestId(command);
    const role = txRole(topology, cluster, command);
    const items = role === 'coordinator' ? [t.sender!] : role === 'participant' ? [t.receiver!] : [t.sender!, t.receiver!];
    for (const item of items) lock(ctx, item, id);
  }
}

function abortAtOnce(command: Command, reason: string): Notice {
  return { to: ACTOR.proposer, event: { type: 'propose', command, phase: shardbank.Phase.PHASE_ABORT, reason } };
}

function release(ctx: LockManagerContext, command: Command): void {
  const id = requestId(command);
  const t = command.transfer;
  if (!t) return;
  for (const i of [t.sender ?? 0, t.receiver ?? 0]) {
    const holders = ctx.locks.get(i);
    if (holders?.delete(id) && holders.size === 0) ctx.locks.delete(i);
  }
}

export const lockManagerMachine = setup({
  types: {
    context: {} as LockManagerContext,
    events: {} as LockManagerEvent,
    input: {} as { env: NodeEnv },
  },
  actions: {
    admitPrepare: enqueueActions(({ context, event, enqueue }) => {
      deliverNotices(enqueue, admitPrepare(context, event as PrepareTxEvent));
    }),
    admitAll: enqueueActions(({ context, event, enqueue }) => {
      const notices: Notice[] = [];
      for (const e of (event as AdmitAllEvent).events) for (const n of admit(context, e.command)) notices.push(n);
      deliverNotices(enqueue, notices);
    }),
    releaseAll: enqueueActions(({ context, event, enqueue }) => {
      const released = new Set<number>();
      for (const e of (event as ReleaseAllEvent).events) {
        release(context, e.command);
        const t = e.command.transfer;
        if (t) released.add(t.sender ?? 0).add(t.receiver ?? 0);
      }
      // A prepared transaction's WAL lock goes when its decision runs, which releases the same items.
      if (context.parked.size > 0) deliverNotices(enqueue, retryParked(context, (p) => p.items.some((i) => released.has(i))));
    }),
    tick: enqueueActions(({ context, enqueue }) => {
      const ticks = ++context.ticks;
      if (context.parked.size > 0) deliverNotices(enqueue, retryParked(context, (p) => ticks >= p.until));
    }),
    clear: ({ context }) => {
      context.locks = new Map();
      context.parked = new Map();
    },
    adopt: ({ context }) => adoptPending(context),
  },
}).createMachine({
  id: 'lockManager',
  context: ({ input }) => ({ env: input.env, locks: new Map(), parked: new Map(), ticks: 0 }),
  on: {
    admitAll: { actions: 'admitAll' },
    prepare: { actions: 'admitPrepare' },
    releaseAll: { actions: 'releaseAll' },
    reset: { actions: 'clear' },
    adopt: { actions: ['clear', 'adopt'] },
    tick: { actions: 'tick' },
  },
});
