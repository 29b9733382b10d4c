/**
 * The acceptor (Multi-Paxos phases 1b and 2b) and the learner side of commit.
 *
 * It promises ballots the election actor grants, accepts entries whose ballot
 * is at least the promised one (NACKing the rest so a stale leader learns it
 * was deposed), records commits, and keeps a replica current: a follower that
 * sees a commit point beyond its own, or a commit for an entry it lacks, asks
 * the leader for the committed entries it missed (`catchingUp`, one request
 * in flight, asked again after `retransmitTicks`).
 */
import { assign, raise, setup } from 'xstate';
import { compareBallots, requestId, slotKeyOf, type Ballot, type Entry, type NodeId } from '../protocol/messages.js';
import { invariant } from '../store/invariant.js';
import { committedAt, entryFromSlot, slotFromEntry, slotHasBallot, snapshotOf } from '../store/state.js';
import { addressed, record, send, type Body, type Effect, type Emitted } from './effects.js';
import type {
  AcceptEvent,
  AcceptorEvent,
  CatchupReplyEvent,
  CatchupRequestEvent,
  CommitEvent,
  GrantPromiseEvent,
  HeartbeatEvent,
  NewViewEvent,
  ViewEvent,
  TickEvent,
} from './events.js';
import { ticksOf } from './events.js';
import { NO_VIEW, type ActorInput, type View } from './node-info.js';
import { txRole } from './transfer.js';
import { act } from './act.js';

export interface AcceptorContext extends ActorInput {
  view: View;
  /** Ticks left before catch-up may be asked for again. */
  catchupWait: number;
  /** The last catch-up asked for: whom, and from which seq. */
  asked: { leader: NodeId; fromSeq: number } | null;
}

/** Ticks until the acceptor acts on one: the end of a catch-up wait (Infinity: it times nothing). */
export function acceptorDue(ctx: AcceptorContext, catchingUp: boolean): number {
  return catchingUp ? Math.max(1, ctx.catchupWait) : Infinity;
}

/** Raised by a handler that found this replica behind `leader`: ask for what follows `fromSeq - 1`. */
type BehindEvent = { type: 'behind'; leader: NodeId; fromSeq: number };

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Enqueue = any;

function reply(ctx: AcceptorContext, to: NodeId, body: Body): Effect {
  return send(addressed(ctx.info.self, to, body));
}

/** Raises the promise if needed; false (and a NACK) when the ballot is below it. */
function admitBallot(enqueue: Enqueue, ctx: AcceptorContext, from: NodeId, ballot: Ballot | null | undefined): boolean {
  const cmp = compareBallots(ballot, ctx.state.promised);
  if (cmp < 0) {
    enqueue.emit(reply(ctx, from, { nack: { ballot, promised: ctx.state.promised } }));
    return false;
  }
  if (cmp > 0) enqueue.emit(record({ promised: { ballot } }));
  return true;
}

/**
 * Accepts entries and acknowledges them. An entry already accepted under this
 * very ballot (a retransmission: one leader proposes one value per instance
 * and ballot), or below the low-water mark, is acknowledged again without
 * being written again.
 */
function acceptEntries(enqueue: Enqueue, ctx: AcceptorContext, from: NodeId, ballot: Ballot, entries: Entry[]): void {
  const { state } = ctx;
  const fresh: Entry[] = [];
  for (const e of entries) {
    const key = slotKeyOf(e);
    if (key > state.lowWater && !slotHasBallot(state.log.get(key), ballot)) fresh.push(entryFromSlot(slotFromEntry(e, false), ballot));
  }
  if (fresh.length > 0) enqueue.emit(record({ accepted: { entries: fresh } }));
  enqueue.emit(reply(ctx, from, { accepted: { ballot, slots: entries.map(slotKeyOf) } }));
}

/**
 * A follower hears that the participant acknowledged a decision. The ACK may
 * arrive before the decision has run here (the fold keeps it for then); one
 * for a decision already acknowledged changes nothing.
 */
function learnAck(enqueue: Enqueue, ctx: AcceptorContext, txid: string): void {
  const { state } = ctx;
  if (state.unacked.has(txid) || !state.decisions.has(txid)) enqueue.emit(record({ acked: { txid } }));
}

/**
 * The first seq not yet committed once `slots` are recorded committed too (a
 * handler's own records are folded in after its step, so it works it out).
 */
function nextUncommitted(ctx: AcceptorContext, slots: Iterable<number> = []): number {
  const added = new Set(slots);
  let c = ctx.state.commitThrough;
  while (added.has(c + 1) || ctx.state.log.get(c + 1)?.committed) c++;
  return c + 1;
}

/** Committed entries from `fromSeq` up to the commit point, at most `max`. */
export function committedEntries(ctx: ActorInput, fromSeq: number, max: number): Entry[] {
  const out: Entry[] = [];
  const { state } = ctx;
  for (let seq = Math.max(1, fromSeq); seq <= state.commitThrough && out.length < max; seq++) {
    for (const slot of committedAt(state, seq)) out.push(entryFromSlot(slot));
  }
  return out;
}

export const acceptorMachine = setup({
  types: {
    context: {} as AcceptorContext,
    events: {} as AcceptorEvent | BehindEvent,
    input: {} as ActorInput,
    emitted: {} as Emitted,
  },
  guards: {
    waitOver: ({ context, event }) => context.catchupWait <= ticksOf(event as TickEvent),
    knowsLeader: ({ context, event }) => {
      const leader = (event as BehindEvent).leader;
      return leader !== 0 && leader !== context.info.self;
    },
  },
  actions: {
    onAccept: act(({ context, event, enqueue }) => {
      const e = event as AcceptEvent;
      if (!admitBallot(enqueue, context, e.from, e.msg.ballot)) return;
      acceptEntries(enqueue, context, e.from, e.msg.ballot!, e.msg.entries ?? []);
    }),
    onNewView: act(({ context, event, enqueue }) => {
      const e = event as NewViewEvent;
      if (!admitBallot(enqueue, context, e.from, e.msg.ballot)) return;
      const log = e.msg.log ?? [];
      enqueue.emit(record({ view: { view: e.msg, leader: e.from } }));
      acceptEntries(enqueue, context, e.from, e.msg.ballot!, log);
      const chosen = log.filter((x) => x.committed);
      if (chosen.length > 0) enqueue.emit(record({ committed: { slots: chosen.map(slotKeyOf) } }));
    }),
    onCommit: act(({ context, event, enqueue }) => {
      const e = event as CommitEvent;
      const ready: number[] = [];
      let missing = false;
      for (const key of e.msg.slots ?? []) {
        const slot = context.state.log.get(key);
        if (slot?.committed) continue;
        if (slotHasBallot(slot, e.msg.ballot)) ready.push(key);
        else missing = true;
      }
      if (ready.length > 0) enqueue.emit(record({ committed: { slots: ready } }));
      if (missing) enqueue.raise({ type: 'behind', leader: e.from, fromSeq: nextUncommitted(context, ready) });
    }),
    onHeartbeat: act(({ context, event, enqueue }) => {
      const e = event as HeartbeatEvent;
      // Only the current leader's ACKs count: a stale heartbeat is not the word of anyone in charge.
      if (compareBallots(e.msg.ballot, context.state.promised) < 0) return;
      // The leader's failure detector, and its confirmation that it still leads, count this.
      enqueue.emit(reply(context, e.from, { heartbeatAck: { ballot: e.msg.ballot, probe: e.msg.probe ?? 0, executedThrough: context.state.executedThrough } }));
      for (const txid of e.msg.acked ?? []) learnAck(enqueue, context, txid);
      if ((e.msg.commitThrough ?? 0) > context.state.commitThrough) enqueue.raise({ type: 'behind', leader: e.from, fromSeq: nextUncommitted(context) });
    }),
    onCatchupRequest: act(({ context, event, enqueue }) => {
      const e = event as CatchupRequestEvent;
      const { state, info, view } = context;
      // Behind what this node still keeps: the entries are gone, send the state instead.
      if ((e.msg.fromSeq ?? 1) <= state.lowWater) {
        enqueue.emit(reply(context, e.from, { catchupReply: { ballot: view.ballot, commitThrough: state.commitThrough, snapshot: snapshotOf(state) } }));
        return;
      }
      const max = Math.min(e.msg.maxEntries || info.tuning.maxCatchupEntries, info.tuning.maxCatchupEntries);
      const entries = committedEntries(context, e.msg.fromSeq ?? 1, max);
      const acked = entries
        .filter((x) => (x.runsAt ?? 0) > 0 && x.command && txRole(context, x.command) === 'coordinator')
        .map((x) => requestId(x.command!))
        .filter((txid) => !state.unacked.has(txid));
      enqueue.emit(reply(context, e.from, { catchupReply: { ballot: view.ballot, entries, commitThrough: state.commitThrough, acked } }));
    }),
    onCatchupReply: act(({ context, event, enqueue }) => {
      const e = event as CatchupReplyEvent;
      const { state } = context;
      const snap = e.msg.snapshot;
      if (snap) {
        // Installed only if it is ahead; this node's own connection state stays its own.
        if ((snap.executedThrough ?? 0) > state.executedThrough) {
          enqueue.emit(record({ snapshot: Object.assign({}, snap, { failed: state.failed }) }));
          enqueue.emit(record({ catchup: { what: 'snapshot', from: e.from, through: snap.executedThrough ?? 0 } }));
        }
        return;
      }
      const entries = (e.msg.entries ?? []).filter((x) => !state.log.get(slotKeyOf(x))?.committed);
      if (entries.length > 0) {
        enqueue.emit(record({ accepted: { entries } }));
        enqueue.emit(record({ committed: { slots: entries.map(slotKeyOf) } }));
        enqueue.emit(record({ catchup: { what: 'received', from: e.from, entries: entries.length, through: e.msg.commitThrough ?? 0 } }));
      }
      for (const txid of e.msg.acked ?? []) learnAck(enqueue, context, txid);
      // Still behind and the reply was full: ask for the next chunk now.
      const next = nextUncommitted(context, entries.map(slotKeyOf));
      if ((e.msg.commitThrough ?? 0) >= next && entries.length > 0) enqueue.raise({ type: 'behind', leader: e.from, fromSeq: next });
    }),
    onGrantPromise: act(({ context, event, enqueue }) => {
      const e = event as GrantPromiseEvent;
      const { state } = context;
      if (compareBallots(e.ballot, state.promised) <= 0) return;
      enqueue.emit(record({ promised: { ballot: e.ballot } }));
      const accepted: Entry[] = [];
      // A 2PC decision counts at the seq it runs at, which may be above the candidate's commit point when its own is not.
      for (const slot of state.log.values()) {
        if (Math.max(slot.seq, slot.runsAt ?? 0) > e.commitThrough) accepted.push(entryFromSlot(slot));
      }
      // Entries at or below our low-water mark are gone: if the candidate still needs them, it gets our state.
      const snapshot = e.commitThrough < state.lowWater ? snapshotOf(state) : undefined;
      enqueue.emit(reply(context, e.to, { promise: { ballot: e.ballot, accepted, commitThrough: state.commitThrough, snapshot } }));
    }),
    askForCatchup: act(({ context, event, enqueue }) => {
      const { leader, fromSeq } = event as BehindEvent;
      const { info } = context;
      invariant(leader !== info.self, 'a node asks itself for catch-up');
      enqueue.assign({ catchupWait: info.tuning.retransmitTicks, asked: { leader, fromSeq } });
      enqueue.emit(record({ catchup: { what: 'requested', from: leader, fromSeq } }));
      enqueue.emit(reply(context, leader, { catchupRequest: { fromSeq, maxEntries: info.tuning.maxCatchupEntries } }));
    }),
    countDown: assign({ catchupWait: ({ context, event }) => context.catchupWait - ticksOf(event as TickEvent) }),
    clearWait: assign({ catchupWait: 0 }),
    /**
     * The wait ended with no reply (lost, or the leader busy): ask again if
     * nothing since has brought us to the seq asked for. A quiet leader's
     * heartbeat, which would show us behind, may be a second or more away.
     */
    askAgainIfStillBehind: act(({ context, enqueue }) => {
      const { asked, view, state } = context;
      if (asked && view.leader === asked.leader && state.commitThrough < asked.fromSeq) enqueue.raise({ type: 'behind', leader: asked.leader, fromSeq: state.commitThrough + 1 });
    }),
    noteView: assign({ view: ({ event }) => (event as ViewEvent).view }),
    /** Back from a disconnection: ask the leader we knew for what we missed, before any heartbeat. */
    askLeaderWeKnew: raise(({ context }) => ({ type: 'behind' as const, leader: context.view.leader, fromSeq: context.state.commitThrough + 1 })),
  },
}).createMachine({
  id: 'acceptor',
  context: ({ input }) => ({ info: input.info, state: input.state, view: NO_VIEW, catchupWait: 0, asked: null }),
  initial: 'current',
  on: {
    accept: { actions: 'onAccept' },
    newView: { actions: 'onNewView' },
    commit: { actions: 'onCommit' },
    heartbeat: { actions: 'onHeartbeat' },
    catchupRequest: { actions: 'onCatchupRequest' },
    grantPromise: { actions: 'onGrantPromise' },
    view: { actions: 'noteView' },
  },
  states: {
    current: {
      on: {
        behind: { guard: 'knowsLeader', target: 'catchingUp', actions: 'askForCatchup' },
        catchupReply: { actions: 'onCatchupReply' },
        recovered: { actions: 'askLeaderWeKnew' },
      },
    },
    catchingUp: {
      on: {
        tick: [{ guard: 'waitOver', target: 'current', actions: ['clearWait', 'askAgainIfStillBehind'] }, { actions: 'countDown' }],
        catchupReply: { target: 'current', actions: ['clearWait', 'onCatchupReply'] },
        recovered: { target: 'current', actions: ['clearWait', 'askLeaderWeKnew'] },
      },
    },
  },
});
