/**
 * The leader's lock manager and admission control for transfers.
 *
 * A transfer reaching the leader is checked in this order: well formed and
 * inside this cluster; already answered (a retry gets the stored reply, an
 * older timestamp is dropped); already in flight (a duplicate is dropped);
 * any of its items locked (the spec's rule: the leader skips it and tells the
 * client `aborted: lock conflict`). Otherwise both items are locked until the
 * transfer executes (grant), and it goes to the proposer.
 *
 * An item held by a prepared cross-shard transaction is different: its
 * decision is already on its way, so the transfer waits for it (at most
 * `lockWaitTicks`) before the conflict counts. Run one after the other, two
 * transfers through the same item then both commit, as a sequential reading
 * of the spec expects, though the coordinator answers its client before the
 * participant has applied the commit.
 *
 * With `tuning.lockPolicy: "wait"` a transfer whose items another transfer
 * holds waits too (at most `lockQueueTicks`, in arrival order) instead of
 * being skipped, as a database's row locks make it wait: under contention
 * transfers commit rather than abort. No transfer waits while it holds a
 * lock (it takes all of its locks at once, or none), so none waits for ever.
 *
 * A skipped transfer is still ordered, as an abort entry that changes no
 * balance: its answer then becomes the client's stored reply on every
 * replica, so a late copy of the request (a relayed broadcast, or one that
 * reaches a new leader) gets that answer instead of being executed. Every
 * skip and every wait is a `lock` event in the log, naming the request that
 * held the item.
 *
 * The chart: `free` (no lock held), `holding` (transfers in flight hold
 * their items), `contended` (requests wait for a prepared transaction), as
 * of the last tick.
 */
import { assign, setup } from 'xstate';
import { MOVE_ITEMS_BUSY, requestId, shardbank, type Command } from '../protocol/messages.js';
import { clusterOfItem } from '../protocol/topology.js';
import { abortReasonOf, balanceOf, ownerOf } from '../store/state.js';
import { addressed, record, send, type Effect, type Emitted } from './effects.js';
import { ticksOf, type AdmitEvent, type LockManagerEvent, type MoveEvent, type ReleaseEvent, type Tell, type TickEvent, type TxPrepareEvent, type ViewEvent } from './events.js';
import { post, tell } from './mail.js';
import { ACTOR, NO_VIEW, type ActorInput, type View } from './node-info.js';
import { failReply, movedReply, replyTo } from './replies.js';
import { transferClusters, txRole, txSide } from './transfer.js';
import { act } from './act.js';

const { Phase } = shardbank;

/**
 * `locks` and `parked` change in place: a busy leader locks and releases
 * hundreds of items a turn, and copying a map of a thousand entries costs
 * about 40 µs.
 */
export interface LockManagerContext extends ActorInput {
  view: View;
  /**
   * item -> ids of the requests holding it. One holder, except right after a
   * leader change: several inherited entries on one item may wait to run.
   */
  locks: Map<number, Set<string>>;
  /** Requests waiting for a prepared transaction's lock, by request id, in arrival order. */
  parked: Map<string, Parked>;
  /** Moves holding items here (from admission until their decision runs). */
  moving: Set<string>;
  /**
   * Items a waiting move has claimed: item -> the move. A transfer that
   * finds one waits behind the move instead of taking it, or under load a
   * move of many items would wait for ever for all of them to be free at
   * once, as new transfers keep taking them.
   */
  reserved: Map<number, string>;
  /**
   * Requests ordered as an abort at once (a lock conflict, no funds) that
   * have not run yet. They hold no lock, but a copy of one (the client's
   * broadcast, a follower's relay) is a duplicate in flight: its entry will
   * answer it. Answered afresh, it could be told its item moved away, and
   * run at the new owner as well.
   */
  aborting: Set<string>;
  ticks: number;
}

interface Parked {
  id: string;
  /** The tick it gives up at. */
  until: number;
  /** The locked items it waits for. */
  items: number[];
  request: { type: 'admit'; command: Command } | { type: 'move'; command: Command } | TxPrepareEvent;
}

/** One step's output: effects in order, and messages for siblings (posted at the end). */
interface Out {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  enqueue: any;
  tells: Tell[];
}

function emit(out: Out, effects: Effect[]): void {
  for (const e of effects) out.enqueue.emit(e);
}

function problemWith(ctx: LockManagerContext, command: Command): string | null {
  const t = command.transfer;
  if (!t) return 'not a transfer';
  if (!command.client) return 'missing client id';
  if (!t.amount || t.amount <= 0) return 'amount must be a positive integer';
  if (t.sender === t.receiver) return 'sender and receiver are the same item';
  const c = transferClusters(ctx, command);
  if (c.sender === null || c.receiver === null) return 'item out of range';
  return null;
}

/** A move waiting for its items here. */
function waitingMove(ctx: LockManagerContext, holder: string): boolean {
  return ctx.parked.get(holder)?.request.type === 'move';
}

/** A move into this cluster holds the item prepared (its balance is here, its ownership not yet). */
function movingIn(ctx: LockManagerContext, item: number): boolean {
  const holder = ctx.state.walLocks.get(item);
  const wal = holder === undefined ? undefined : ctx.state.wal.get(holder);
  return !!wal?.command.move && wal.role === 'participant';
}

/** Held by a move: waiting for its items, admitted, or prepared here. */
function heldByMove(ctx: LockManagerContext, holder: string): boolean {
  return ctx.moving.has(holder) || waitingMove(ctx, holder) || !!ctx.state.wal.get(holder)?.command.move;
}

/** The request holding an item here (a transfer in flight, a prepared transaction's WAL, a waiting move's claim), if any. */
function holderOf(ctx: LockManagerContext, item: number): string | undefined {
  const holders = ctx.locks.get(item);
  if (holders && holders.size > 0) return holders.values().next().value;
  return ctx.state.walLocks.get(item) ?? ctx.reserved.get(item);
}

/** Lets go of a move's claims on its items (it was admitted, or gave up). */
function unreserve(ctx: LockManagerContext, id: string, items: readonly number[]): void {
  for (const i of items) if (ctx.reserved.get(i) === id) ctx.reserved.delete(i);
}

function lock(ctx: LockManagerContext, item: number, id: string): void {
  const holders = ctx.locks.get(item);
  if (holders) holders.add(id);
  else ctx.locks.set(item, new Set([id]));
}

function heldBy(ctx: LockManagerContext, item: number, id: string): boolean {
  return !!ctx.locks.get(item)?.has(id) || ctx.state.walLocks.get(item) === id;
}

/** Records why a request did not get its locks. */
function noteDecision(out: Out, ctx: LockManagerContext, command: Command, decision: 'skipped' | 'waiting', items: number[]): void {
  const item = items.find((i) => holderOf(ctx, i) !== undefined) ?? items[0] ?? 0;
  out.enqueue.emit(record({ lock: { command, decision, item, holder: holderOf(ctx, item) ?? '' } }));
}

/**
 * Parks a request whose items are held only by prepared cross-shard
 * transactions; false when it must take the conflict now.
 */
function park(out: Out, ctx: LockManagerContext, items: number[], id: string, request: Parked['request'], until: number | null): boolean {
  if (until !== null && ctx.ticks >= until) return false;
  const { state, info } = ctx;
  const holders = items
    .filter((i) => holderOf(ctx, i) !== undefined)
    .flatMap((i) => [...(ctx.locks.get(i) ?? []), ...(state.walLocks.has(i) ? [state.walLocks.get(i)!] : []), ...(ctx.reserved.has(i) ? [ctx.reserved.get(i)!] : [])]);
  // A move waits for whatever holds its items; anything waits for a prepared transaction or a move;
  // under the `wait` policy a transfer waits for any holder (none waits while holding a lock: no deadlock).
  const queue = info.tuning.lockPolicy === 'wait';
  if (request.type !== 'move' && !queue && !holders.every((h) => state.wal.has(h) || ctx.moving.has(h) || waitingMove(ctx, h))) return false;
  if (ctx.parked.size >= info.tuning.maxQueue) return false;
  if (!ctx.parked.has(id)) {
    // (A retry that parks again keeps its first deadline, and was noted the first time.)
    if (until === null) noteDecision(out, ctx, request.command, 'waiting', items);
    const wait =
      request.type === 'move' || holders.some((h) => heldByMove(ctx, h)) ? info.tuning.moveWaitTicks : queue ? info.tuning.lockQueueTicks : info.tuning.lockWaitTicks;
    ctx.parked.set(id, { id, request, items, until: until ?? ctx.ticks + wait });
  }
  // A waiting move claims its free items: new transfers queue behind it, not in front.
  if (request.type === 'move') for (const i of items) if (holderOf(ctx, i) === undefined) ctx.reserved.set(i, id);
  return true;
}

/**
 * Gives the parked requests that `pick` selects another go, in arrival
 * order: those waiting for an item just released, or those whose wait is
 * over (they take the conflict now, unless the item is free). The others
 * would only park again.
 */
function retryParked(out: Out, ctx: LockManagerContext, pick: (p: Parked) => boolean): void {
  const chosen: Parked[] = [];
  for (const p of ctx.parked.values()) if (pick(p)) chosen.push(p);
  for (const p of chosen) {
    ctx.parked.delete(p.id);
    if (p.request.type === 'admit') admit(out, ctx, p.request.command, p.until);
    else if (p.request.type === 'move') {
      unreserve(ctx, p.id, p.items);
      admitMove(out, ctx, p.request.command, p.until);
    } else admitPrepare(out, ctx, p.request, p.until);
  }
}

/**
 * Without a live majority nothing this leader orders can commit: a new
 * request is refused now, logging nothing, so that the answer holds for good
 * (a copy already in flight, or in the log, is not new: it is not refused).
 */
function refuseWithoutMajority(out: Out, ctx: LockManagerContext, command: Command): boolean {
  if (ctx.view.quorum) return false;
  emit(out, failReply(ctx.info.self, ctx.view, command, 'no majority'));
  return true;
}

/** Orders a transfer as an abort, to answer it for good; until it runs, copies of it are dropped. */
function abortAtOnce(out: Out, ctx: LockManagerContext, command: Command, reason: string): void {
  ctx.aborting.add(requestId(command));
  propose(out, command, Phase.PHASE_ABORT, reason);
}

function propose(out: Out, command: Command, phase: number, reason?: string): void {
  out.tells.push(tell(ACTOR.proposer, { type: 'propose', proposals: [{ command, phase, reason }] }));
}

function admit(out: Out, ctx: LockManagerContext, command: Command, until: number | null = null): void {
  const { info, state, view } = ctx;
  const problem = problemWith(ctx, command);
  if (problem) {
    emit(out, failReply(info.self, view, command, problem));
    return;
  }
  const stored = state.replies.get(command.client!);
  const ts = command.timestamp ?? 0;
  if (stored && stored.timestamp === ts) {
    emit(out, replyTo(info.self, view, command, stored.reply));
    return;
  }
  if (stored && stored.timestamp > ts) return;
  const id = requestId(command);
  if (ctx.aborting.has(id)) return;
  const t = command.transfer!;
  const senderOwner = ownerOf(info.topology, state, t.sender!)!;
  // (The planted bug `stale-owner-applies` goes by the initial ranges instead.)
  const staleOwnerBug = info.bugs.has('stale-owner-applies') && clusterOfItem(info.topology, t.sender!) === info.cluster;
  if (senderOwner.cluster !== info.cluster && !staleOwnerBug) {
    // Moving in here, not decided yet: wait for the decision. Gone: say where.
    if (state.walLocks.has(t.sender!) && park(out, ctx, [t.sender!], id, { type: 'admit', command }, until)) return;
    emit(out, movedReply(info.self, view, command, t.sender!, senderOwner));
    return;
  }
  if (txRole(ctx, command) === 'coordinator') {
    // The spec's coordinator checks: s unlocked and funded, else abort at once.
    const sender = t.sender!;
    if (heldBy(ctx, sender, id) || state.wal.has(id) || state.decisions.has(id)) return;
    if (refuseWithoutMajority(out, ctx, command)) return;
    // The receiver is moving in here: wait for the move's decision (the transfer may then be this cluster's alone).
    if (movingIn(ctx, t.receiver!) && park(out, ctx, [t.receiver!], id, { type: 'admit', command }, until)) return;
    // Aborted at once, without 2PC; ordered all the same, so the answer is final.
    if (holderOf(ctx, sender) !== undefined) {
      if (park(out, ctx, [sender], id, { type: 'admit', command }, until)) return;
      noteDecision(out, ctx, command, 'skipped', [sender]);
      abortAtOnce(out, ctx, command, 'lock conflict');
      return;
    }
    if (balanceOf(state, sender) < (t.amount ?? 0)) {
      abortAtOnce(out, ctx, command, 'insufficient balance');
      return;
    }
    lock(ctx, sender, id);
    out.tells.push(tell(ACTOR.transactions, { type: 'coordinate', command, txid: id }));
    return;
  }
  const items = [t.sender!, t.receiver!];
  if (items.some((i) => ctx.locks.get(i)?.has(id))) return;
  if (refuseWithoutMajority(out, ctx, command)) return;
  if (items.some((i) => holderOf(ctx, i) !== undefined)) {
    if (park(out, ctx, items, id, { type: 'admit', command }, until)) return;
    noteDecision(out, ctx, command, 'skipped', items);
    abortAtOnce(out, ctx, command, 'lock conflict');
    return;
  }
  for (const i of items) lock(ctx, i, id);
  propose(out, command, Phase.PHASE_NONE);
}

/**
 * A coordinator's PREPARE at the participant's leader: lock the receiver (a
 * move's items), or refuse. A receiver that moved away is answered with where
 * it went: nothing is prepared here, and the coordinator asks there.
 */
function admitPrepare(out: Out, ctx: LockManagerContext, e: TxPrepareEvent, until: number | null = null): void {
  const { info, state } = ctx;
  const command = e.command;
  const id = requestId(command);
  if (txRole(ctx, command) !== 'participant') {
    const receiver = command.transfer?.receiver ?? undefined;
    const owner = receiver === undefined ? null : ownerOf(info.topology, state, receiver);
    // Moving in here, not decided yet: wait for the decision. Gone: say where.
    if (receiver !== undefined && state.walLocks.has(receiver) && park(out, ctx, [receiver], id, e, until)) return;
    if (receiver !== undefined && owner && owner.cluster !== info.cluster) {
      const moved = { item: receiver, cluster: owner.cluster, version: owner.version };
      out.enqueue.emit(send(addressed(info.self, e.from, { txVote: { txid: id, prepared: false, reason: `item ${receiver} moved to c${owner.cluster}`, moved } })));
    }
    return;
  }
  const decided = state.decisions.get(id);
  if (decided !== undefined) {
    // A PREPARE sent again after this cluster refused: the same answer, with the same reason.
    const reason = decided ? '' : (abortReasonOf(state, id) ?? 'aborted');
    out.enqueue.emit(send(addressed(info.self, e.from, { txVote: { txid: id, prepared: decided, reason } })));
    return;
  }
  // Without a live majority our prepare could not commit: refuse at once, and log nothing.
  if (!ctx.view.quorum && !state.wal.has(id)) {
    out.enqueue.emit(send(addressed(info.self, e.from, { txVote: { txid: id, prepared: false, reason: 'no majority' } })));
    return;
  }
  const participate = (mode: 'start' | 'locked'): void => {
    out.tells.push(tell(ACTOR.transactions, { type: 'participate', command, txid: id, from: e.from, coordinatorCluster: e.coordinatorCluster, mode }));
  };
  const items = txSide(ctx, command, 'participant').items;
  if (items.every((i) => heldBy(ctx, i, id)) || state.wal.has(id)) return participate('start');
  if (items.some((i) => holderOf(ctx, i) !== undefined)) {
    if (park(out, ctx, items, id, e, until)) return;
    noteDecision(out, ctx, command, 'skipped', items);
    return participate('locked');
  }
  for (const i of items) lock(ctx, i, id);
  participate('start');
}

/**
 * An operator's move at the source's leader: its items must be this
 * cluster's, and free; it waits (at most `moveWaitTicks`) for the transfers
 * that hold them, and then holds them itself until its decision runs.
 */
function admitMove(out: Out, ctx: LockManagerContext, command: Command, until: number | null = null): void {
  const { info, state, view } = ctx;
  const m = command.move!;
  const id = requestId(command);
  const items = m.items ?? [];
  // Asked again (its answer was lost, or its leader changed): a decided move answers with its outcome.
  const stored = state.decisions.has(id) ? state.replies.get(command.client ?? '') : undefined;
  if (stored && stored.timestamp === (command.timestamp ?? 0)) {
    emit(out, replyTo(info.self, view, command, stored.reply));
    return;
  }
  if (state.wal.has(id) || state.decisions.has(id) || ctx.moving.has(id)) return;
  const problem =
    !command.client || items.length === 0
      ? 'a move needs a client id and items'
      : m.fromCluster !== info.cluster || m.toCluster === info.cluster || !(m.toCluster! >= 1 && m.toCluster! <= info.topology.clusters)
        ? `a move from c${m.fromCluster} to c${m.toCluster} is not this cluster's (c${info.cluster}) to make`
        : items.length > info.tuning.maxMoveBatch
          ? `at most ${info.tuning.maxMoveBatch} items in one move`
          : null;
  const stray = problem ? undefined : items.find((i) => ownerOf(info.topology, state, i)?.cluster !== info.cluster);
  if (problem || stray !== undefined) {
    emit(out, failReply(info.self, view, command, problem ?? `item ${stray} is not this cluster's`));
    return;
  }
  if (refuseWithoutMajority(out, ctx, command)) return;
  // (Its own claims, when this is a copy of a move still waiting, do not count.)
  if (items.some((i) => (holderOf(ctx, i) ?? id) !== id)) {
    if (park(out, ctx, items, id, { type: 'move', command }, until)) return;
    emit(out, failReply(info.self, view, command, MOVE_ITEMS_BUSY));
    return;
  }
  for (const i of items) lock(ctx, i, id);
  ctx.moving.add(id);
  out.tells.push(tell(ACTOR.transactions, { type: 'coordinate', command, txid: id }));
}

/**
 * A new leader inherits entries its predecessor ordered that have not run
 * yet; their items stay locked until they do, or a transfer admitted now
 * could slip between a prepare and its undo.
 */
function adoptPending(ctx: LockManagerContext): void {
  const { state } = ctx;
  for (let seq = state.executedThrough + 1; seq <= state.maxSeq; seq++) {
    const slot = state.log.get(seq);
    if (!slot || (slot.runsAt ?? 0) > 0) continue;
    const command = slot.command;
    const t = command?.transfer;
    if (!command || (!t && !command.move)) continue;
    const id = requestId(command);
    // A transfer aborted at once holds no lock, but its copies wait for its entry; decisions hold none either.
    if (slot.phase === Phase.PHASE_ABORT && t) ctx.aborting.add(id);
    if (slot.phase >= Phase.PHASE_COMMIT) continue;
    const role = txRole(ctx, command);
    const items = role ? txSide(ctx, command, role).items : [t!.sender!, t!.receiver!];
    for (const item of items) lock(ctx, item, id);
    if (command.move) ctx.moving.add(id);
  }
}

/** The items a command locks: a transfer's two, a move's all. */
function itemsOf(command: Command): number[] {
  const t = command.transfer;
  return t ? [t.sender ?? 0, t.receiver ?? 0] : command.move?.items ?? [];
}

function release(ctx: LockManagerContext, command: Command): void {
  const id = requestId(command);
  for (const i of itemsOf(command)) {
    const holders = ctx.locks.get(i);
    if (holders?.delete(id) && holders.size === 0) ctx.locks.delete(i);
  }
  ctx.moving.delete(id);
  ctx.aborting.delete(id);
}

/** Runs `step` with an output, then posts its messages. */
function stepWith(enqueue: Out['enqueue'], step: (out: Out) => void): void {
  const out: Out = { enqueue, tells: [] };
  step(out);
  post(enqueue, out.tells);
}

/**
 * Ticks until the lock manager acts on one: every tick while a request is
 * parked (its items may come free, its wait may end), or while its chart
 * has still to show that locks are held or gone (Infinity otherwise).
 */
export function lockManagerDue(ctx: LockManagerContext, state: string): number {
  if (ctx.parked.size > 0) return 1;
  if (state === 'free' ? ctx.locks.size > 0 : state === 'holding' ? ctx.locks.size === 0 : true) return 1;
  return Infinity;
}

export const lockManagerMachine = setup({
  types: {
    context: {} as LockManagerContext,
    events: {} as LockManagerEvent,
    input: {} as ActorInput,
    emitted: {} as Emitted,
  },
  guards: {
    somethingParked: ({ context }) => context.parked.size > 0,
    nothingParked: ({ context }) => context.parked.size === 0,
    locksHeld: ({ context }) => context.locks.size > 0,
    noLocks: ({ context }) => context.locks.size === 0,
  },
  actions: {
    admitPrepare: act(({ context, event, enqueue }) => stepWith(enqueue, (out) => admitPrepare(out, context, event as TxPrepareEvent))),
    admitMove: act(({ context, event, enqueue }) => stepWith(enqueue, (out) => admitMove(out, context, (event as MoveEvent).command))),
    admit: act(({ context, event, enqueue }) =>
      stepWith(enqueue, (out) => {
        for (const command of (event as AdmitEvent).commands) admit(out, context, command);
      }),
    ),
    release: act(({ context, event, enqueue }) =>
      stepWith(enqueue, (out) => {
        const released = new Set<number>();
        for (const command of (event as ReleaseEvent).commands) {
          release(context, command);
          for (const i of itemsOf(command)) released.add(i);
        }
        // A prepared transaction's WAL lock goes when its decision runs, which releases the same items.
        if (context.parked.size > 0) retryParked(out, context, (p) => p.items.some((i) => released.has(i)));
      }),
    ),
    tick: act(({ context, event, enqueue }) => {
      const ticks = context.ticks + ticksOf(event as TickEvent);
      enqueue.assign({ ticks });
      if (context.parked.size === 0) return;
      // Also those whose items came free without a release (a waiting move gave up its claims).
      const ctx = Object.assign({}, context, { ticks });
      stepWith(enqueue, (out) => retryParked(out, ctx, (p) => ticks >= p.until || (p.request.type !== 'move' && p.items.every((i) => holderOf(ctx, i) === undefined))));
    }),
    clear: assign({ locks: () => new Map(), parked: () => new Map(), moving: () => new Set<string>(), reserved: () => new Map(), aborting: () => new Set<string>() }),
    adopt: act(({ context }) => adoptPending(context)),
    noteView: assign({ view: ({ event }) => (event as ViewEvent).view }),
  },
}).createMachine({
  id: 'lockManager',
  context: ({ input }) => ({ info: input.info, state: input.state, view: NO_VIEW, locks: new Map(), parked: new Map(), moving: new Set(), reserved: new Map(), aborting: new Set(), ticks: 0 }),
  initial: 'free',
  on: {
    admit: { actions: 'admit' },
    txPrepare: { actions: 'admitPrepare' },
    move: { actions: 'admitMove' },
    release: { actions: 'release' },
    reset: { target: '.free', actions: 'clear' },
    adopt: { actions: ['clear', 'adopt'] },
    view: { actions: 'noteView' },
  },
  // The state follows the locks at each tick, not at each request: a transfer takes and
  // gives back its locks within a few milliseconds, and a state change on every one would
  // cost a busy leader a microstep per request.
  states: {
    free: {
      on: {
        tick: [
          { guard: 'somethingParked', target: 'contended', actions: 'tick' },
          { guard: 'locksHeld', target: 'holding', actions: 'tick' },
          { actions: 'tick' },
        ],
      },
    },
    holding: {
      on: {
        tick: [
          { guard: 'somethingParked', target: 'contended', actions: 'tick' },
          { guard: 'noLocks', target: 'free', actions: 'tick' },
          { actions: 'tick' },
        ],
      },
    },
    contended: {
      on: {
        tick: [
          { guard: 'nothingParked', target: 'free', actions: 'tick' },
          { actions: 'tick' },
        ],
      },
    },
  },
});
