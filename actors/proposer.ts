/**
 * The leader's proposer (Multi-Paxos phase 2a and the commit decision).
 *
 * Admitted transfers queue up; at the end of each turn (or when a batch is
 * full) they become one ACCEPT round: consecutive sequence numbers, one
 * message per follower. Several rounds are in flight at once, bounded by
 * config. An entry that a majority accepted is committed and the commit is
 * broadcast; an entry still waiting after `retransmitTicks` is sent again to
 * the followers that have not answered (lost messages, recovered nodes).
 *
 * While it leads, the chart says where phase 2 stands: `quiet` (nothing
 * waits for a majority), `replicating` (rounds in flight), `backlogged` (the
 * pipeline is full and transfers queue behind it).
 */
import { assign, setup } from 'xstate';
import { ballotEquals, requestId, slotKeyOf, type Ballot, type Entry, type NodeId } from '../protocol/messages.js';
import { invariant } from '../store/invariant.js';
import { hasDecisionEntry } from '../store/state.js';
import { addressed, record, send, toEach, type Effect, type Emitted } from './effects.js';
import { ticksOf, type AcceptedEvent, type LeadEvent, type ProposeEvent, type ProposerEvent, type Proposal, type Tell, type TickEvent } from './events.js';
import { post, tell } from './mail.js';
import { ACTOR, type ActorInput, type NodeInfo } from './node-info.js';
import { failReply } from './replies.js';
import { act } from './act.js';

interface Pending {
  entry: Entry;
  votes: Set<NodeId>;
  sentAtTick: number;
}

/**
 * `queue`, `pending` and `cursor` change in place: they change on every turn
 * of a leader. `queue` and `pending` hold up to maxInflightRounds x maxBatch
 * entries, and copying a map of a thousand entries costs about 40 µs
 * (against about 2 µs for the whole XState step); an `assign` of the next
 * seq on every round would add about 1 µs and a snapshot copy a turn.
 */
export interface ProposerContext extends ActorInput {
  ballot: Ballot;
  /** The next seq to assign. */
  cursor: SeqCursor;
  queue: Proposal[];
  /** Entries awaiting a majority, by slot, in proposal order. */
  pending: Map<number, Pending>;
  ticks: number;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Enqueue = any;

/**
 * Ticks until the proposer acts on one: every tick while rounds are in
 * flight or its state is still to follow them (Infinity: quiet, nothing sent).
 */
export function proposerDue(ctx: ProposerContext, quietOrIdle: boolean): number {
  return quietOrIdle && ctx.pending.size === 0 ? Infinity : 1;
}

function inflightLimit(info: NodeInfo): number {
  return info.tuning.maxInflightRounds * info.tuning.maxBatch;
}

interface SeqCursor {
  next: number;
}

/**
 * Turns queued proposals into ACCEPT rounds while the pipeline has room, then
 * commits what already has a majority (a cluster of one).
 */
function proposeQueued(enqueue: Enqueue, ctx: ProposerContext): void {
  const { info, cursor } = ctx;
  while (ctx.queue.length > 0 && ctx.pending.size < inflightLimit(info)) {
    const batch = ctx.queue.splice(0, info.tuning.maxBatch);
    // A decision keeps its prepare's seq and runs at a seq reserved for it.
    const entries: Entry[] = batch.map(({ command, phase, seq, reason }) => ({
      seq: seq ?? cursor.next++,
      phase,
      ballot: ctx.ballot,
      command,
      reason,
      runsAt: seq === undefined ? 0 : cursor.next++,
    }));
    enqueue.emit(record({ accepted: { entries } }));
    for (const entry of entries) ctx.pending.set(slotKeyOf(entry), { entry, votes: new Set([info.self]), sentAtTick: ctx.ticks });
    // A proposal: it leaves beside our own record of it (ready.ts). Our vote counts at once;
    // the COMMIT and replies it leads to wait for that record.
    for (const s of toEach(info.self, info.peers, { accept: { ballot: ctx.ballot, entries } })) enqueue.emit(s);
  }
  commitReady(enqueue, ctx, ctx.pending.keys());
}

/** Commits every listed entry that has a majority; one COMMIT for all of them. */
function commitReady(enqueue: Enqueue, ctx: ProposerContext, slots: Iterable<number>): void {
  const { info } = ctx;
  const chosen: number[] = [];
  for (const slot of [...slots]) {
    const p = ctx.pending.get(slot);
    if (!p || p.votes.size < info.majority) continue;
    ctx.pending.delete(slot);
    chosen.push(slot);
  }
  if (chosen.length === 0) return;
  enqueue.emit(record({ committed: { slots: chosen } }));
  for (const s of toEach(info.self, info.peers, { commit: { ballot: ctx.ballot, slots: chosen } })) enqueue.emit(s);
}

/** The queue is full: the client hears `overloaded`, and the transfer's locks go. */
function refuse(enqueue: Enqueue, ctx: ProposerContext, p: Proposal, released: Tell[]): void {
  const view = { role: 'leader' as const, leader: ctx.info.self, ballot: ctx.ballot, live: [], quorum: true };
  for (const s of failReply(ctx.info.self, view, p.command, 'overloaded')) enqueue.emit(s);
  released.push(tell(ACTOR.lockManager, { type: 'release', commands: [p.command] }));
}

function retransmit(enqueue: Enqueue, ctx: ProposerContext, ticks: number): void {
  const { info } = ctx;
  const due = ticks - info.tuning.retransmitTicks;
  const byPeer = new Map<NodeId, Entry[]>();
  for (const p of ctx.pending.values()) {
    if (p.sentAtTick > due) break; // later entries were sent later
    p.sentAtTick = ticks;
    for (const peer of info.peers) {
      if (p.votes.has(peer)) continue;
      let list = byPeer.get(peer);
      if (!list) byPeer.set(peer, (list = []));
      if (list.length < info.tuning.maxCatchupEntries) list.push(p.entry);
    }
  }
  if (byPeer.size === 0) return;
  // Entries re-sent keep the pending map ordered by send tick.
  const again = [...ctx.pending.entries()].sort((a, b) => a[1].sentAtTick - b[1].sentAtTick || a[0] - b[0]);
  ctx.pending.clear();
  for (const [k, v] of again) ctx.pending.set(k, v);
  for (const [peer, entries] of byPeer) enqueue.emit(send(addressed(info.self, peer, { accept: { ballot: ctx.ballot, entries } })));
}

export const proposerMachine = setup({
  types: {
    context: {} as ProposerContext,
    events: {} as ProposerEvent,
    input: {} as ActorInput,
    emitted: {} as Emitted,
  },
  guards: {
    hasQueued: ({ context }) => context.queue.length > 0,
    pipelineFull: ({ context }) => context.queue.length > 0 && context.pending.size >= inflightLimit(context.info),
    roundsInFlight: ({ context }) => context.pending.size > 0,
    nothingInFlight: ({ context }) => context.pending.size === 0,
    pipelineHasRoom: ({ context }) => context.pending.size > 0 && !(context.queue.length > 0 && context.pending.size >= inflightLimit(context.info)),
  },
  actions: {
    takeLead: act(({ context, event, enqueue }) => {
      const e = event as LeadEvent;
      const pending = new Map<number, Pending>();
      for (const entry of e.pending) pending.set(slotKeyOf(entry), { entry, votes: new Set([context.info.self]), sentAtTick: context.ticks });
      const next = { ballot: Object.assign({}, e.ballot), queue: [] as Proposal[], pending, cursor: { next: context.state.maxSeq + 1 } };
      enqueue.assign(next);
      commitReady(enqueue, Object.assign({}, context, next), pending.keys());
    }),
    enqueue: act(({ context, event, enqueue }) => {
      const { info, state } = context;
      const released: Tell[] = [];
      for (const p of (event as ProposeEvent).proposals) {
        // A decision already in the log (inherited in a NEW-VIEW) is that slot's value: proposing
        // it again, with a new seq to run at, could give one Paxos instance two values.
        if (p.seq !== undefined && hasDecisionEntry(state, requestId(p.command))) continue;
        if (context.queue.length >= info.tuning.maxQueue) {
          refuse(enqueue, context, p, released);
          continue;
        }
        context.queue.push(p);
        if (context.queue.length >= info.tuning.maxBatch) proposeQueued(enqueue, context);
      }
      post(enqueue, released);
    }),
    proposeQueued: act(({ context, enqueue }) => proposeQueued(enqueue, context)),
    countVote: act(({ context, event, enqueue }) => {
      const e = event as AcceptedEvent;
      if (!ballotEquals(e.msg.ballot, context.ballot)) return;
      invariant(context.info.peers.includes(e.from), () => `a vote from n${e.from}, who is not a peer`);
      const slots: number[] = [];
      for (const slot of e.msg.slots ?? []) {
        const p = context.pending.get(slot);
        if (!p) continue;
        p.votes.add(e.from);
        slots.push(slot);
      }
      commitReady(enqueue, context, slots);
    }),
    retransmit: act(({ context, event, enqueue }) => {
      const ticks = context.ticks + ticksOf(event as TickEvent);
      enqueue.assign({ ticks });
      retransmit(enqueue, context, ticks);
    }),
    countTick: assign({ ticks: ({ context, event }) => context.ticks + ticksOf(event as TickEvent) }),
    forget: assign({ queue: () => [], pending: () => new Map() }),
  },
}).createMachine({
  id: 'proposer',
  context: ({ input }) => ({
    info: input.info,
    state: input.state,
    ballot: { round: 0, node: 0 },
    cursor: { next: 1 },
    queue: [],
    pending: new Map(),
    ticks: 0,
  }),
  initial: 'idle',
  on: {
    reset: { target: '.idle', actions: 'forget' },
  },
  states: {
    idle: {
      entry: 'forget',
      on: {
        lead: { target: 'leading', actions: 'takeLead' },
        tick: { actions: 'countTick' },
      },
    },
    leading: {
      initial: 'quiet',
      on: {
        propose: { actions: 'enqueue' },
        accepted: { actions: 'countVote' },
        endOfTurn: { actions: 'proposeQueued' },
        stepDown: { target: 'idle' },
        lead: { target: 'leading', reenter: true, actions: 'takeLead' },
      },
      // A round going out ends `quiet` at once; the other moves are checked on each tick, not
      // on each round: with one client a round is in flight for a millisecond or two, and a
      // state change on every one would cost a microstep per transfer.
      states: {
        quiet: {
          on: {
            endOfTurn: [{ guard: 'hasQueued', target: 'replicating', actions: 'proposeQueued' }, { actions: 'proposeQueued' }],
            tick: [{ guard: 'roundsInFlight', target: 'replicating', actions: 'retransmit' }, { actions: 'retransmit' }],
          },
        },
        replicating: {
          on: {
            tick: [
              { guard: 'pipelineFull', target: 'backlogged', actions: 'retransmit' },
              { guard: 'nothingInFlight', target: 'quiet', actions: 'retransmit' },
              { actions: 'retransmit' },
            ],
          },
        },
        backlogged: {
          on: {
            tick: [
              { guard: 'nothingInFlight', target: 'quiet', actions: 'retransmit' },
              { guard: 'pipelineHasRoom', target: 'replicating', actions: 'retransmit' },
              { actions: 'retransmit' },
            ],
          },
        },
      },
    },
  },
});
