/**
 * The leader's proposer (Multi-Paxos phase 2a and the commit decision).
 *
 * Admitted transfers queue up; at the end of each turn (or when a batch is
 * full) they become one ACCEPT round: consecutive sequence numbers, one
 * message per follower. Several rounds are in flight at once, bounded by
 * config. An entry that a majority accepted is committed and the commit is
 * broadcast; an entry still waiting after `retransmitTicks` is sent again to
 * the followers that have not answered (lost messages, recovered nodes).
 */
import { enqueueActions, setup } from 'xstate';
import { ballotEquals, entryKey, shardbank, slotKeyOf, wireKeyOf, type Ballot, type Command, type Entry, type EntryKey, type NodeId } from '../protocol/messages.js';
import { ACTOR, deliverNotices, sendToNode, sendToPeers, sendToPeersNow, type NodeEnv, type Notice } from './env.js';
import type { AcceptedEvent, EndOfTurnEvent, LeadEvent, ProposeAllEvent, ProposeEvent, StepDownEvent, TickEvent } from './events.js';
import { hasDecisionEntry } from '../store/state.js';
import { failReply, requestId } from './replies.js';

interface Queued {
  command: Command;
  /** PHASE_ABORT for a transfer the leader skipped; a 2PC phase otherwise. */
  phase: number;
  /** A 2PC decision goes at the seq of its prepare; everything else gets the next seq. */
  seq?: number;
  reason?: string;
}

interface Pending {
  entry: Entry;
  votes: Set<NodeId>;
  sentAtTick: number;
}

export interface ProposerContext {
  env: NodeEnv;
  ballot: Ballot;
  nextSeq: number;
  queue: Queued[];
  /** Entries awaiting a majority, by entry key, in proposal order. */
  pending: Map<number, Pending>;
  ticks: number;
}

export type ProposerEvent =
  | LeadEvent
  | StepDownEvent
  | ProposeAllEvent
  | AcceptedEvent
  | EndOfTurnEvent
  | TickEvent
  | { type: 'reset' };

function inflightLimit(env: NodeEnv): number {
  return env.tuning.maxInflightRounds * env.tuning.maxBatch;
}

/** Turns queued commands into ACCEPT rounds while the pipeline has room. */
function proposeQueued(ctx: ProposerContext): void {
  const { env } = ctx;
  while (ctx.queue.length > 0 && ctx.pending.size < inflightLimit(env)) {
    const batch = ctx.queue.splice(0, env.tuning.maxBatch);
    // A decision keeps its prepare's seq and runs at a seq reserved for it.
    const entries: Entry[] = batch.map(({ command, phase, seq, reason }) => ({
      seq: seq ?? ctx.nextSeq++,
      phase,
      ballot: ctx.ballot,
      command,
      reason,
      runsAt: seq === undefined ? 0 : ctx.nextSeq++,
    }));
    env.record({ accepted: { entries } });
    for (const entry of entries) {
      ctx.pending.set(slotKeyOf(entry), { entry, votes: new Set([env.self]), sentAtTick: ctx.ticks });
    }
    // A proposal, not a vote: it goes out while our own record of it is still being written.
    // Our vote counts at once, but everything it can lead to (a commit, a reply) is sent
    // after that record is durable, so it never counts before it is.
    sendToPeersNow(env, { accept: { ballot: ctx.ballot, entries } });
  }
  commitReady(ctx, [...ctx.pending.keys()]);
}

/** Commits every listed entry that has a majority; one COMMIT for all of them. */
function commitReady(ctx: ProposerContext, keys: number[]): void {
  const { env } = ctx;
  const chosen: EntryKey[] = [];
  for (const key of keys) {
    const p = ctx.pending.get(key);
    if (!p || p.votes.size < env.majority) continue;
    ctx.pending.delete(key);
    chosen.push(wireKeyOf(p.entry));
  }
  if (chosen.length === 0) return;
  env.record({ committed: { keys: chosen } });
  sendToPeers(env, { commit: { ballot: ctx.ballot, keys: chosen } });
}

function enqueue(ctx: ProposerContext, e: ProposeEvent): void {
  const phase = e.phase ?? (e.skipped ? shardbank.Phase.PHASE_ABORT : shardbank.Phase.PHASE_NONE);
  // A decision already in the log (inherited in a NEW-VIEW) is that slot's value: proposing
  // it again, with a new seq to run at, could give one Paxos instance two values.
  if (e.seq !== undefined && hasDecisionEntry(ctx.env.state, requestId(e.command))) return;
  ctx.queue.push({ command: e.command, phase, seq: e.seq, reason: e.reason });
  if (ctx.queue.length >= ctx.env.tuning.maxBatch) proposeQueued(ctx);
}

/** The queue is full: the client hears `overloaded`, and the transfer's locks go. */
function refuse(ctx: ProposerContext, command: Command): Notice {
  failReply(ctx.env, command, 'overloaded');
  return { to: ACTOR.lockManager, event: { type: 'release', command } };
}

function retransmit(ctx: ProposerContext): void {
  const { env } = ctx;
  const due = ctx.ticks - env.tuning.retransmitTicks;
  const byPeer = new Map<NodeId, Entry[]>();
  for (const p of ctx.pending.values()) {
    if (p.sentAtTick > due) break; // later entries were sent later
    p.sentAtTick = ctx.ticks;
    for (const peer of env.peers) {
      if (p.votes.has(peer)) continue;
      let list = byPeer.get(peer);
      if (!list) byPeer.set(peer, (list = []));
      if (list.length < env.tuning.maxCatchupEntries) list.push(p.entry);
    }
  }
  // Entries re-sent in ballot order keep the pending map ordered by send tick.
  if (byPeer.size > 0) {
    const again = [...ctx.pending.entries()];
    ctx.pending = new Map(again.sort((a, b) => a[1].sentAtTick - b[1].sentAtTick || a[0] - b[0]));
  }
  for (const [peer, entries] of byPeer) sendToNode(env, peer, { accept: { ballot: ctx.ballot, entries } });
}

export const proposerMachine = setup({
  types: {
    context: {} as ProposerContext,
    events: {} as ProposerEvent,
    input: {} as { env: NodeEnv },
  },
  actions: {
    takeLead: ({ context, event }) => {
      const e = event as LeadEvent;
      const { env } = context;
      context.ballot = { ...e.ballot };
      context.queue = [];
      context.pending = new Map();
      for (const entry of e.pending) {
        context.pending.set(slotKeyOf(entry), { entry, votes: new Set([env.self]), sentAtTick: context.ticks });
      }
      context.nextSeq = env.state.maxSeq + 1;
      commitReady(context, [...context.pending.keys()]);
    },
    enqueueAll: enqueueActions(({ context, event, enqueue: enqueueAction }) => {
      const refused: Notice[] = [];
      for (const e of (event as ProposeAllEvent).events) {
        if (context.queue.length >= context.env.tuning.maxQueue) refused.push(refuse(context, e.command));
        else enqueue(context, e);
      }
      deliverNotices(enqueueAction, refused);
    }),
    flushQueue: ({ context }) => proposeQueued(context),
    countVote: ({ context, event }) => {
      const e = event as AcceptedEvent;
      if (!ballotEquals(e.msg.ballot, context.ballot)) return;
      const keys: number[] = [];
      for (const k of e.msg.keys ?? []) {
        const key = entryKey(k.seq ?? 0, k.phase);
        const p = context.pending.get(key);
        if (!p) continue;
        p.votes.add(e.from);
        keys.push(key);
      }
      commitReady(context, keys);
    },
    onTick: ({ context }) => {
      context.ticks++;
      retransmit(context);
    },
    countTick: ({ context }) => {
      context.ticks++;
    },
    forget: ({ context }) => {
      context.queue = [];
      context.pending = new Map();
    },
  },
}).createMachine({
  id: 'proposer',
  context: ({ input }) => ({
    env: input.env,
    ballot: { round: 0, node: 0 },
    nextSeq: 1,
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
      on: {
        proposeAll: { actions: 'enqueueAll' },
        accepted: { actions: 'countVote' },
        endOfTurn: { actions: 'flushQueue' },
        tick: { actions: 'onTick' },
        stepDown: { target: 'idle' },
        lead: { target: 'leading', reenter: true, actions: 'takeLead' },
      },
    },
  },
});
