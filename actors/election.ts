/**
 * Leader election for one cluster (Multi-Paxos phase 1).
 *
 * A follower counts ticks since it last heard from its leader; past a
 * randomised timeout it either promises the highest PREPARE it deferred or
 * becomes a candidate with ballot (round + 1, self). A follower that still
 * hears its leader defers a PREPARE instead of granting it, so one node that
 * lost contact cannot depose a working leader. A candidate with promises
 * from a majority builds the NEW-VIEW, sends it, and leads; a leader
 * heartbeats and steps down on seeing a higher ballot.
 *
 * The election owns the node's view (role, leader, ballot): every change is
 * a `role` event in the log and a `view` event to the actors that route,
 * reply or catch up.
 */
import { and, assign, setup } from 'xstate';
import { ballotEquals, compareBallots, formatBallot, nodeName, slotKeyOf, type Ballot, type Entry, type NodeId } from '../protocol/messages.js';
import { mulberry32Step } from '../protocol/rng.js';
import { invariant } from '../store/invariant.js';
import { record, send, toEach, type Effect, type Emitted } from './effects.js';
import { ticksOf, type ContactEvent, type ElectionEvent, type FlushedEvent, type HeartbeatAckEvent, type NackEvent, type PrepareEvent, type PreVoteEvent, type PreVoteReplyEvent, type PromiseEvent, type ShareAcksEvent, type TickEvent } from './events.js';
import { post, tell } from './mail.js';
import { buildNewView } from './newView.js';
import { ACTOR, NO_VIEW, type ActorInput, type Role, type View } from './node-info.js';
import { act } from './act.js';

export interface ElectionContext extends ActorInput {
  view: View;
  /** Ticks since the leader was last heard (or the campaign started). */
  elapsed: number;
  timeoutTicks: number;
  /** The state of this node's seeded random stream (mulberry32). */
  rng: number;
  sinceHeartbeat: number;
  /** A candidate's promises, by node. */
  promises: ReadonlyMap<NodeId, Entry[]>;
  /** A pre-candidate's pre-votes (itself included), for the ballot it would campaign with. */
  preVotes: ReadonlySet<NodeId>;
  /**
   * The low-water mark of a promiser's state this candidate took (0: none).
   * The snapshot is recorded in the same step that may build the NEW-VIEW,
   * before the state has folded it in: below this mark every seq executed,
   * and a no-op there would offer another value for a chosen slot.
   */
  snapshotLowWater: number;
  /** The highest PREPARE deferred while the leader was still heard. */
  deferred: { from: NodeId; ballot: Ballot; commitThrough: number } | null;
  /** Set by a flush: the next leader state is the set's initial view, no NEW-VIEW. */
  installing: boolean;
  /** The highest round seen in a PREPARE or NACK, so a new campaign goes above it. */
  seenRound: number;
  /** The last leader this node knew of (its successor campaigns first, see drawTimeout). */
  lastLeader: NodeId;
  /**
   * A follower's extra patience: the ticks its leader's last heartbeat said
   * it would wait past `heartbeatTicks` (a quiet leader heartbeats less
   * often). Added to the election timeout and to the silence the P1 rule asks for.
   */
  grace: number;
  /** A leader's clock, in ticks since it took the lead. */
  now: number;
  /** A leader's `now` when it last saw work: an entry ordered or committed, an ACK to share, a read to confirm. */
  activeAt: number;
  /** The log as the leader last looked at it, to see work come and go. */
  seenCommit: number;
  seenSeq: number;
  /** The wait the leader's last heartbeat announced (its `nextIn`). */
  announced: number;
  /**
   * A leader's failure detector: its recent heartbeats (probe number and
   * `now`, one per tick, oldest first). A peer is live while it has
   * acknowledged every heartbeat sent more than `electionTicksMin` ticks ago.
   */
  sent: readonly Probe[];
  /** The number of the last heartbeat sent, and the highest each peer acknowledged. */
  probe: number;
  acked: ReadonlyMap<NodeId, number>;
  /** When (`now`) each peer's last acknowledgement came. */
  heard: ReadonlyMap<NodeId, number>;
  /** A confirmation of leadership asked for: the heartbeat a majority must acknowledge (0: none). */
  confirming: number;
  /**
   * ACKed decisions to tell the followers on the next few heartbeats: txid ->
   * heartbeats left. Updated in place: ACKs come one per cross-shard
   * transfer, and copying a map of a thousand entries costs about 40 µs.
   */
  acks: Map<string, number>;
}

interface Probe {
  probe: number;
  at: number;
}

/** The actors that keep a copy of the view. */
const VIEW_WATCHERS = [ACTOR.node, ACTOR.acceptor, ACTOR.executor, ACTOR.lockManager, ACTOR.transactions] as const;

/** Ticks a successor waits beyond electionTicksMin, so that the others' timers (not in step) have passed it too. */
const SKEW_TICKS = 2;

/** Heartbeats that repeat an ACK, so a follower that misses one still hears it. */
const ACK_REPEATS = 3;

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Enqueue = any;

/** Why the view changes, in words for the log. */
function why(event: ElectionEvent): string {
  switch (event.type) {
    case 'contact':
      return `heard ${nodeName(event.from)} at ${formatBallot(event.ballot)}`;
    case 'prepare':
      return `${nodeName(event.from)} asks with ${formatBallot(event.msg.ballot)}`;
    case 'nack':
      return `${nodeName(event.from)} promised ${formatBallot(event.msg.promised)}`;
    case 'promise':
      return `promised by a majority`;
    case 'preVoteReply':
      return 'a majority would promise';
    case 'tick':
      return 'leader silent past the election timeout';
    case 'flushed':
      return 'the set starts';
    case 'recovered':
      return 'back from a disconnection';
    default:
      return event.type;
  }
}

/**
 * Moves the view to `next`: a `role` event when the role or leader changes,
 * and a `view` event to every watcher.
 */
function changeView(enqueue: Enqueue, prev: View, next: View, because: string, voters: NodeId[] = []): void {
  if (prev.role === next.role && prev.leader === next.leader && ballotEquals(prev.ballot, next.ballot) && prev.quorum === next.quorum && sameNodes(prev.live, next.live)) return;
  enqueue.assign(next.leader ? { view: next, lastLeader: next.leader } : { view: next });
  if (prev.role !== next.role || prev.leader !== next.leader || (next.role === 'leader' && prev.quorum !== next.quorum)) {
    enqueue.emit(record({ role: { role: next.role, leader: next.leader, ballot: next.ballot, why: because, voters, live: [...next.live], quorum: next.quorum } }));
  }
  post(
    enqueue,
    VIEW_WATCHERS.map((to) => tell(to, { type: 'view', view: next })),
  );
}

function sameNodes(a: readonly NodeId[], b: readonly NodeId[]): boolean {
  return a.length === b.length && a.every((n, i) => n === b[i]);
}

/** Where in `sent` the newest heartbeat sent more than `electionTicksMin` ticks before `now` is (-1: none). */
function lastOverdue(ctx: ElectionContext, sent: readonly Probe[], now: number): number {
  const window = ctx.info.tuning.electionTicksMin;
  let i = sent.length - 1;
  while (i >= 0 && now - sent[i]!.at <= window) i--;
  return i;
}

/** The newest heartbeat sent more than `electionTicksMin` ticks before `now` (0: none): every live peer has acknowledged it. */
function overdueProbe(ctx: ElectionContext, sent: readonly Probe[], now: number): number {
  return sent[lastOverdue(ctx, sent, now)]?.probe ?? 0;
}

/**
 * The peers heard within the failure detector's window, or that
 * acknowledged every heartbeat older than it, and whether with this node
 * they are a majority. A quiet leader heartbeats seldom: a peer that dies
 * then is noticed one window after the next heartbeat, and the first
 * heartbeat after new work goes at once. A busy peer whose acknowledgements
 * all come late, but keep coming, stays live.
 */
function liveness(ctx: ElectionContext, acked: ReadonlyMap<NodeId, number>, heard: ReadonlyMap<NodeId, number>, sent: readonly Probe[], now: number): { live: NodeId[]; quorum: boolean } {
  const due = overdueProbe(ctx, sent, now);
  const window = ctx.info.tuning.electionTicksMin;
  const live = ctx.info.peers.filter((p) => (acked.get(p) ?? -1) >= due || now - (heard.get(p) ?? -Infinity) <= window);
  return { live, quorum: live.length + 1 >= ctx.info.majority };
}

/**
 * Has the leader work since it last looked: entries ordered, committed or in
 * flight, ACKs to share, a read to confirm; or no majority heard, which it
 * wants back soon.
 */
function workSeen(ctx: ElectionContext): boolean {
  const { state } = ctx;
  return state.commitThrough !== ctx.seenCommit || state.maxSeq !== ctx.seenSeq || state.maxSeq > state.commitThrough || ctx.acks.size > 0 || ctx.confirming > 0 || !ctx.view.quorum;
}

/**
 * A leader's heartbeat cadence at `now`: when it last had work (now, if it
 * has work since it last looked), the ticks between heartbeats that quiet
 * gives (a quarter of it, between heartbeatTicks and idleHeartbeatTicks), and
 * the wait from the last heartbeat to the next (what that one announced, or
 * sooner once work comes).
 */
function cadence(ctx: ElectionContext, now: number): { activeAt: number; every: number; wait: number } {
  const { heartbeatTicks, idleHeartbeatTicks } = ctx.info.tuning;
  const activeAt = workSeen(ctx) ? now : ctx.activeAt;
  const every = Math.max(heartbeatTicks, Math.min(idleHeartbeatTicks, Math.floor((now - activeAt) / 4)));
  return { activeAt, every, wait: Math.min(ctx.announced, every) };
}

/**
 * Ticks until the election acts on one (at least 1): a follower's or
 * candidate's timeout, or a leader's next heartbeat or the tick a peer it
 * hears leaves a heartbeat unacknowledged past the failure detector's window.
 */
export function electionDue(ctx: ElectionContext, leading: boolean): number {
  if (!leading) return Math.max(1, ctx.timeoutTicks + ctx.grace - ctx.elapsed);
  let due = cadence(ctx, ctx.now).wait - ctx.sinceHeartbeat;
  const window = ctx.info.tuning.electionTicksMin;
  // The first tick a live peer could drop out: its last acknowledgement leaves the window
  // with a heartbeat it has not acknowledged past it.
  for (const p of ctx.view.live) {
    const acked = ctx.acked.get(p) ?? -1;
    const unanswered = ctx.sent.find((s) => s.probe > acked);
    if (!unanswered) continue;
    const out = Math.max(unanswered.at, ctx.heard.get(p) ?? -Infinity) + window + 1;
    due = Math.min(due, out - ctx.now);
  }
  return Math.max(1, due);
}

/** The highest heartbeat a majority (this node included) acknowledged. */
function confirmedProbe(ctx: ElectionContext, acked: ReadonlyMap<NodeId, number>, probe: number): number {
  const counts = [probe, ...ctx.info.peers.map((p) => acked.get(p) ?? 0)].sort((a, b) => b - a);
  return counts[ctx.info.majority - 1] ?? 0;
}

/**
 * A heartbeat to every peer, numbered one above the last, saying the next
 * comes within `nextIn` ticks. Returns its number, and the heartbeats the
 * failure detector keeps (one per tick: a later probe of the same tick
 * stands for it; those older than the newest overdue one are dropped).
 */
function heartbeat(enqueue: Enqueue, ctx: ElectionContext, now: number, acks: string[], nextIn: number): { probe: number; sent: Probe[] } {
  const probe = ctx.probe + 1;
  const { info, state } = ctx;
  for (const s of toEach(info.self, info.peers, { heartbeat: { ballot: ctx.view.ballot, commitThrough: state.commitThrough, acked: acks, probe, nextIn } })) enqueue.emit(s);
  const sent = ctx.sent.slice(Math.max(0, lastOverdue(ctx, ctx.sent, now))).filter((s) => s.at !== now);
  sent.push({ probe, at: now });
  return { probe, sent };
}

/** The patience a contact grants: what a heartbeat's announced wait exceeds heartbeatTicks by (0 for anything else). */
function graceOf(ctx: ElectionContext, event: { type: string }): number {
  const nextIn = event.type === 'contact' ? (event as ContactEvent).nextIn : undefined;
  return nextIn === undefined ? 0 : Math.max(0, nextIn - ctx.info.tuning.heartbeatTicks);
}

function withRole(view: View, role: Role, patch: Partial<View> = {}): View {
  return Object.assign({}, view, patch, { role });
}

/**
 * A new election timeout, drawn from the node's seeded stream. A follower's
 * falls in a band by its rank after the last leader it knew (the next node
 * in cluster order first): when a leader dies, its successor campaigns
 * first, so a test set elects the same leader on every run and votes do not
 * split. A candidate that failed draws from the whole range, so two of them
 * do not collide forever.
 */
function drawTimeout(ctx: ElectionContext, role: Role): { timeoutTicks: number; rng: number } {
  const { electionTicksMin: min, electionTicksMax: max } = ctx.info.tuning;
  const [v, rng] = mulberry32Step(ctx.rng);
  const { members, self } = ctx.info;
  if (role !== 'follower' || members.length < 2) return { timeoutTicks: min + Math.floor(v * (max - min + 1)), rng };
  const n = members.length;
  const leaderAt = Math.max(0, members.indexOf(ctx.lastLeader));
  const rank = (members.indexOf(self) - leaderAt - 1 + n) % n;
  // The bands start SKEW ticks past electionTicksMin: the others grant a PREPARE only once their
  // leader has been quiet that long, and their ticks are not in step with the campaigner's.
  // Bands a gap of SKEW_TICKS apart, for the same reason: a successor's PREPARE must arrive before the next in line times out.
  const first = Math.min(max, min + SKEW_TICKS);
  const band = Math.max(1, Math.floor((max - first + 1 - (n - 2) * SKEW_TICKS) / (n - 1)));
  return { timeoutTicks: Math.min(max, first + rank * (band + SKEW_TICKS) + Math.floor(v * band)), rng };
}

/** The candidate's ballot: one round above anything seen, with its own id. */
function nextBallot(ctx: ElectionContext): Ballot {
  const round = Math.max(ctx.state.promised.round ?? 0, ctx.view.ballot.round ?? 0, ctx.seenRound) + 1;
  return { round, node: ctx.info.self };
}

function answered(candidate: NodeId, ballot: Ballot | null | undefined, answer: 'granted' | 'refused' | 'deferred' | 'pre-vote granted' | 'pre-vote refused', promised: Ballot): Effect {
  return record({ vote: { candidate, ballot, answer, promised } });
}

/** Would this node promise that ballot now: it is above our promise, and our own leader (if any) has gone quiet. */
function wouldGrantPreVote(ctx: ElectionContext, e: PreVoteEvent): boolean {
  if (compareBallots(e.msg.ballot, ctx.state.promised) <= 0) return false;
  return ctx.view.leader === 0 || ctx.elapsed >= ctx.info.tuning.electionTicksMin + ctx.grace;
}

/** Promises `ballot` to `from`: the acceptor records the promise and answers with its log. */
function grant(enqueue: Enqueue, ctx: ElectionContext, event: ElectionEvent, from: NodeId, ballot: Ballot, commitThrough: number): void {
  enqueue.emit(answered(from, ballot, 'granted', ctx.state.promised));
  // The old leader's announced wait is no reason to wait longer for the candidate.
  enqueue.assign({ elapsed: 0, deferred: null, grace: 0 });
  changeView(enqueue, ctx.view, Object.assign({}, ctx.view, { leader: 0 }), why(event));
  post(enqueue, [tell(ACTOR.acceptor, { type: 'grantPromise', to: from, ballot, commitThrough })]);
}

export const electionMachine = setup({
  types: {
    context: {} as ElectionContext,
    events: {} as ElectionEvent,
    input: {} as ActorInput,
    emitted: {} as Emitted,
  },
  guards: {
    timerExpired: ({ context, event }) => context.elapsed + ticksOf(event as TickEvent) >= context.timeoutTicks + context.grace,
    hasDeferredPrepare: ({ context }) => context.deferred !== null && compareBallots(context.deferred.ballot, context.state.promised) > 0,
    prepareIsStale: ({ context, event }) => compareBallots((event as PrepareEvent).msg.ballot, context.state.promised) <= 0,
    /** The P1 rule: grant only once our own leader has gone quiet (or is unknown, or is the one asking). */
    mayGrantNow: ({ context, event }) =>
      context.view.leader === 0 || (event as PrepareEvent).from === context.view.leader || context.elapsed >= context.info.tuning.electionTicksMin + context.grace,
    promiseCompletesQuorum: ({ context, event }) => {
      const e = event as PromiseEvent;
      if (!ballotEquals(e.msg.ballot, context.view.ballot)) return false;
      const voters = new Set(context.promises.keys()).add(e.from);
      return voters.size >= context.info.majority;
    },
    contactAtLeastMine: ({ context, event }) => compareBallots((event as ContactEvent).ballot, context.view.ballot) >= 0,
    contactAboveMine: ({ context, event }) => compareBallots((event as ContactEvent).ballot, context.view.ballot) > 0,
    nackAboveMine: ({ context, event }) => compareBallots((event as NackEvent).msg.promised, context.view.ballot) > 0,
    isInitialLeader: ({ context, event }) => (event as FlushedEvent).leader === context.info.self,
    /** A cluster of one: its own promise (or pre-vote) is a majority. */
    selfIsMajority: ({ context }) => context.info.majority <= 1,
    graceOutlastsTimeout: ({ context }) => context.grace > context.elapsed,
    preVoteCompletesMajority: ({ context, event }) => {
      const e = event as PreVoteReplyEvent;
      if (!e.msg.granted || !ballotEquals(e.msg.ballot, nextBallot(context))) return false;
      return new Set(context.preVotes).add(e.from).size >= context.info.majority;
    },

  },
  actions: {
    // A heartbeat that makes a (pre)candidate follow again brings its leader's announced wait with it.
    resetFollowerTimer: assign(({ context, event }) => Object.assign({ elapsed: 0, grace: graceOf(context, event) }, drawTimeout(context, 'follower'))),
    resetCandidateTimer: assign(({ context }) => Object.assign({ elapsed: 0, grace: 0 }, drawTimeout(context, 'candidate'))),
    countTick: assign({ elapsed: ({ context, event }) => context.elapsed + ticksOf(event as TickEvent) }),
    /**
     * A client waits on the leader: the timeout and the P1 rule count a
     * normal timeout and electionTicksMin from now, not from the quiet
     * leader's last heartbeat plus its announced wait.
     */
    shortenGrace: assign({ grace: ({ context }) => context.elapsed }),
    /** A leader asked for through a follower: work, so the next heartbeat goes at the next tick. */
    noteWork: assign({ activeAt: ({ context }) => context.now }),
    becomeFollower: act(({ context, event, enqueue }) => {
      enqueue.assign({ promises: new Map() });
      changeView(enqueue, context.view, withRole(context.view, 'follower', { live: [], quorum: false }), why(event));
    }),
    followLeader: act(({ context, event, enqueue }) => {
      const e = event as ContactEvent;
      const ballot = compareBallots(e.ballot, context.view.ballot) > 0 ? e.ballot : context.view.ballot;
      enqueue.assign({ elapsed: 0, deferred: null });
      // A heartbeat says how long its leader may now be silent; any other contact leaves that as it was.
      if (e.nextIn !== undefined) enqueue.assign({ grace: graceOf(context, e) });
      changeView(enqueue, context.view, Object.assign({}, context.view, { leader: e.from, ballot }), why(event));
    }),
    deferPrepare: act(({ context, event, enqueue }) => {
      const e = event as PrepareEvent;
      const ballot = e.msg.ballot ?? { round: 0, node: 0 };
      enqueue.emit(answered(e.from, ballot, 'deferred', context.state.promised));
      const deferred =
        !context.deferred || compareBallots(ballot, context.deferred.ballot) > 0
          ? { from: e.from, ballot, commitThrough: e.msg.commitThrough ?? 0 }
          : context.deferred;
      enqueue.assign({ seenRound: Math.max(context.seenRound, ballot.round ?? 0), deferred });
    }),
    /** The leader went quiet: ask whether a majority would promise the next ballot, before raising it. */
    startPreVote: act(({ context, event, enqueue }) => {
      const { info, state } = context;
      const ballot = nextBallot(context);
      enqueue.assign({ preVotes: new Set([info.self]) });
      changeView(enqueue, context.view, { role: 'precandidate' as Role, leader: 0, ballot: context.view.ballot, live: [], quorum: false }, why(event));
      for (const s of toEach(info.self, info.peers, { preVote: { ballot, commitThrough: state.commitThrough } })) enqueue.emit(s);
    }),
    notePreVote: assign({ preVotes: ({ context, event }) => new Set(context.preVotes).add((event as PreVoteReplyEvent).from) }),
    answerPreVote: act(({ context, event, enqueue }) => {
      const e = event as PreVoteEvent;
      const granted = wouldGrantPreVote(context, e) && context.view.role !== 'leader';
      enqueue.emit(answered(e.from, e.msg.ballot, granted ? 'pre-vote granted' : 'pre-vote refused', context.state.promised));
      enqueue.emit(send({ from: context.info.self, to: e.from, preVoteReply: { ballot: e.msg.ballot, granted } }));
    }),
    /** A PREPARE at or below our promise: NACK it, so the candidate learns the ballot to beat. */
    refusePrepare: act(({ context, event, enqueue }) => {
      const e = event as PrepareEvent;
      const { self } = context.info;
      enqueue.emit(answered(e.from, e.msg.ballot, 'refused', context.state.promised));
      enqueue.emit(send({ from: self, to: e.from, nack: { ballot: e.msg.ballot, promised: context.state.promised } }));
    }),
    noteNack: assign({ seenRound: ({ context, event }) => Math.max(context.seenRound, (event as NackEvent).msg.promised?.round ?? 0) }),
    grantPrepare: act(({ context, event, enqueue }) => {
      const e = event as PrepareEvent;
      grant(enqueue, context, event, e.from, e.msg.ballot ?? { round: 0, node: 0 }, e.msg.commitThrough ?? 0);
    }),
    grantDeferred: act(({ context, event, enqueue }) => {
      const d = context.deferred!;
      grant(enqueue, context, event, d.from, d.ballot, d.commitThrough);
    }),
    startCampaign: act(({ context, event, enqueue }) => {
      const { info, state } = context;
      const ballot = nextBallot(context);
      changeView(enqueue, context.view, { role: 'candidate', leader: 0, ballot, live: [], quorum: false }, why(event));
      enqueue.emit(record({ promised: { ballot } }));
      // The candidate promises itself; its own log joins the merge directly.
      enqueue.assign({ promises: new Map([[info.self, []]]), deferred: null, snapshotLowWater: 0 });
      for (const s of toEach(info.self, info.peers, { prepare: { ballot, commitThrough: state.commitThrough } })) enqueue.emit(s);
    }),
    addPromise: act(({ context, event, enqueue }) => {
      const e = event as PromiseEvent;
      if (!ballotEquals(e.msg.ballot, context.view.ballot)) return;
      invariant(context.view.role === 'candidate', 'a promise counted outside a campaign');
      enqueue.emit(record({ heard: { from: e.from, ballot: e.msg.ballot, entries: e.msg.accepted?.length ?? 0 } }));
      // A promiser that compacted past our commit point sent its state: take it before building the NEW-VIEW.
      const snap = e.msg.snapshot;
      if (snap && (snap.executedThrough ?? 0) > context.state.executedThrough) {
        enqueue.emit(record({ snapshot: Object.assign({}, snap, { failed: context.state.failed }) }));
        enqueue.assign({ snapshotLowWater: Math.max(context.snapshotLowWater, snap.lowWater ?? 0) });
      }
      enqueue.assign({ promises: new Map(context.promises).set(e.from, e.msg.accepted ?? []) });
    }),
    becomeLeader: act(({ context, event, enqueue }) => {
      const { info, state } = context;
      const ballot = context.view.ballot;
      const voters = [...context.promises.keys()];
      // The detector starts out believing those it just heard from: every peer at a set's start, the voters after a campaign.
      const acked = new Map((context.installing ? info.peers : voters.filter((n) => n !== info.self)).map((n) => [n, 0] as [NodeId, number]));
      const heard = new Map([...acked.keys()].map((n) => [n, 0] as [NodeId, number]));
      const alive = liveness(context, acked, heard, [], 0);
      const { heartbeatTicks } = info.tuning;
      // A new leader starts busy: it heartbeats every heartbeatTicks until it has been quiet a while.
      enqueue.assign({ sinceHeartbeat: 0, promises: new Map(), now: 0, activeAt: 0, announced: heartbeatTicks, sent: [], acked, heard, confirming: 0 });
      if (context.installing) {
        enqueue.assign({ installing: false });
        changeView(enqueue, context.view, withRole(context.view, 'leader', Object.assign({ leader: info.self }, alive)), why(event));
        post(enqueue, [tell(ACTOR.proposer, { type: 'lead', ballot, pending: [] })]);
        return;
      }
      invariant(voters.length >= info.majority, () => `leading ${formatBallot(ballot)} with ${voters.length} of ${info.majority} promises`);
      changeView(enqueue, context.view, withRole(context.view, 'leader', Object.assign({ leader: info.self }, alive)), why(event), voters);
      // The NEW-VIEW is recorded before anything else runs, so the lock manager sees every entry it inherits.
      const log = buildNewView(ballot, state.log.values(), [...context.promises.values()].flat(), Math.max(state.lowWater, context.snapshotLowWater));
      enqueue.emit(record({ accepted: { entries: log } }));
      const chosen = log.filter((e) => e.committed).map(slotKeyOf);
      if (chosen.length > 0) enqueue.emit(record({ committed: { slots: chosen } }));
      enqueue.emit(record({ view: { view: { ballot, log }, leader: info.self } }));
      for (const s of toEach(info.self, info.peers, { newView: { ballot, log } })) enqueue.emit(s);
      post(enqueue, [
        tell(ACTOR.proposer, { type: 'lead', ballot, pending: log.filter((e) => !e.committed) }),
        tell(ACTOR.lockManager, { type: 'adopt' }),
      ]);
    }),
    stepDown: act(({ enqueue }) => {
      post(enqueue, [
        tell(ACTOR.proposer, { type: 'stepDown' }),
        tell(ACTOR.lockManager, { type: 'reset' }),
        tell(ACTOR.transactions, { type: 'reset' }),
      ]);
    }),
    /**
     * A leader's tick: its clock, its failure detector, and a heartbeat when
     * one is due. With work it heartbeats every heartbeatTicks; quiet for q
     * ticks, every q/4 (at most idleHeartbeatTicks), and each heartbeat
     * names the wait to the next.
     */
    leaderTick: act(({ context, event, enqueue }) => {
      const { info, state } = context;
      const n = ticksOf(event as TickEvent);
      const now = context.now + n;
      const { activeAt, every, wait } = cadence(context, now);
      const since = context.sinceHeartbeat + n;
      const due = since >= wait;
      let { probe, sent, announced } = context;
      if (due) {
        ({ probe, sent } = heartbeat(enqueue, context, now, takeAcks(context.acks, info.tuning.maxBatch), every));
        announced = every;
      }
      enqueue.assign({ now, activeAt, seenCommit: state.commitThrough, seenSeq: state.maxSeq, sinceHeartbeat: due ? 0 : since, probe, sent, announced });
      const alive = liveness(context, context.acked, context.heard, sent, now);
      changeView(enqueue, context.view, Object.assign({}, context.view, alive), alive.quorum ? 'a majority heard' : 'no majority heard within the window');
    }),
    /** A follower acknowledged a heartbeat of ours: it is live, and it still follows this ballot. */
    noteAck: act(({ context, event, enqueue }) => {
      const e = event as HeartbeatAckEvent;
      if (!ballotEquals(e.msg.ballot, context.view.ballot)) return;
      invariant(context.info.peers.includes(e.from), () => `an acknowledgement from n${e.from}, who is not a peer`);
      const acked = new Map(context.acked).set(e.from, Math.max(context.acked.get(e.from) ?? 0, Number(e.msg.probe ?? 0)));
      const heard = new Map(context.heard).set(e.from, context.now);
      enqueue.assign({ acked, heard });
      const alive = liveness(context, acked, heard, context.sent, context.now);
      changeView(enqueue, context.view, Object.assign({}, context.view, alive), alive.quorum ? `a majority heard again (n${e.from})` : 'no majority heard within the window');
      if (context.confirming > 0 && confirmedProbe(context, acked, context.probe) >= context.confirming) {
        enqueue.assign({ confirming: 0 });
        post(enqueue, [tell(ACTOR.executor, { type: 'confirmed', probe: context.confirming })]);
      }
    }),
    /** Linearizable reads wait: ask the followers now, with a heartbeat a majority must acknowledge. */
    confirmLeadership: act(({ context, enqueue }) => {
      if (context.confirming > 0) return;
      const every = context.info.tuning.heartbeatTicks;
      const { probe, sent } = heartbeat(enqueue, context, context.now, [], every);
      enqueue.assign({ probe, sent, confirming: probe, sinceHeartbeat: 0, announced: every, activeAt: context.now });
    }),
    shareAcks: act(({ context, event }) => {
      const { txids } = event as ShareAcksEvent;
      const max = context.info.tuning.maxQueue;
      for (const txid of txids) if (context.acks.size < max) context.acks.set(txid, ACK_REPEATS);
    }),
    installInitialView: act(({ context, event, enqueue }) => {
      const leader = (event as FlushedEvent).leader;
      enqueue.assign({ deferred: null, promises: new Map(), installing: leader === context.info.self, seenRound: 0, acks: new Map() });
      changeView(enqueue, context.view, { role: 'follower', leader, ballot: { round: 1, node: leader }, live: [], quorum: false }, why(event));
    }),
    forgetLeader: act(({ context, event, enqueue }) => {
      changeView(enqueue, context.view, Object.assign({}, context.view, { leader: 0 }), why(event));
    }),
  },
}).createMachine({
  id: 'election',
  context: ({ input }) => ({
    info: input.info,
    state: input.state,
    view: Object.assign({}, NO_VIEW, { ballot: Object.assign({}, input.state.promised) }),
    elapsed: 0,
    timeoutTicks: input.info.tuning.electionTicksMax,
    rng: input.info.seed,
    sinceHeartbeat: 0,
    grace: 0,
    activeAt: 0,
    seenCommit: 0,
    seenSeq: 0,
    announced: input.info.tuning.heartbeatTicks,
    sent: [],
    promises: new Map(),
    preVotes: new Set(),
    snapshotLowWater: 0,
    deferred: null,
    installing: false,
    seenRound: 0,
    lastLeader: 0,
    acks: new Map(),
    now: 0,
    heard: new Map(),
    probe: 0,
    acked: new Map(),
    confirming: 0,
  }),
  initial: 'follower',
  on: {
    preVote: { actions: 'answerPreVote' },
    flushed: [
      { guard: 'isInitialLeader', target: '.leader', reenter: true, actions: 'installInitialView' },
      { target: '.follower', reenter: true, actions: 'installInitialView' },
    ],
    // A node back from a disconnection cannot assume it still leads.
    recovered: { target: '.follower', reenter: true },
    shareAcks: { actions: 'shareAcks' },
  },
  states: {
    follower: {
      entry: ['becomeFollower', 'resetFollowerTimer'],
      on: {
        tick: [
          { guard: and(['timerExpired', 'hasDeferredPrepare']), target: 'follower', reenter: true, actions: 'grantDeferred' },
          { guard: 'timerExpired', target: 'precandidate' },
          { actions: 'countTick' },
        ],
        contact: { actions: 'followLeader' },
        asked: { guard: 'graceOutlastsTimeout', actions: 'shortenGrace' },
        prepare: [
          { guard: 'prepareIsStale', actions: 'refusePrepare' },
          { guard: 'mayGrantNow', actions: 'grantPrepare' },
          { actions: 'deferPrepare' },
        ],
      },
    },
    // Pre-vote: the ballot is not raised until a majority would promise it.
    precandidate: {
      entry: ['startPreVote', 'resetCandidateTimer'],
      always: { guard: 'selfIsMajority', target: 'candidate' },
      on: {
        tick: [{ guard: 'timerExpired', target: 'precandidate', reenter: true }, { actions: 'countTick' }],
        preVoteReply: [{ guard: 'preVoteCompletesMajority', target: 'candidate', actions: 'notePreVote' }, { actions: 'notePreVote' }],
        contact: { target: 'follower', actions: 'followLeader' },
        prepare: [
          { guard: 'prepareIsStale', actions: 'refusePrepare' },
          { target: 'follower', actions: 'grantPrepare' },
        ],
      },
    },
    candidate: {
      entry: ['startCampaign', 'resetCandidateTimer'],
      always: { guard: 'selfIsMajority', target: 'leader' },
      on: {
        // A campaign that did not win asks for pre-votes again before it raises the ballot once more.
        tick: [{ guard: 'timerExpired', target: 'precandidate' }, { actions: 'countTick' }],
        promise: [{ guard: 'promiseCompletesQuorum', target: 'leader', actions: 'addPromise' }, { actions: 'addPromise' }],
        contact: { guard: 'contactAtLeastMine', target: 'follower', actions: 'followLeader' },
        prepare: [
          { guard: 'prepareIsStale', actions: 'refusePrepare' },
          { target: 'follower', actions: 'grantPrepare' },
        ],
        nack: { guard: 'nackAboveMine', target: 'follower', actions: ['noteNack', 'forgetLeader'] },
      },
    },
    leader: {
      entry: 'becomeLeader',
      exit: 'stepDown',
      on: {
        tick: { actions: 'leaderTick' },
        heartbeatAck: { actions: 'noteAck' },
        confirm: { actions: 'confirmLeadership' },
        asked: { actions: 'noteWork' },
        contact: { guard: 'contactAboveMine', target: 'follower', actions: 'followLeader' },
        // A node asks with a higher ballot (it lost touch, its round grew): lead again above it,
        // or it stays a candidate forever while the others keep deferring it.
        prepare: [{ guard: 'prepareIsStale', actions: 'refusePrepare' }, { target: 'candidate', actions: 'deferPrepare' }],
        nack: { guard: 'nackAboveMine', target: 'follower', actions: ['noteNack', 'forgetLeader'] },
      },
    },
  },
});

/** The ACKs for the next heartbeat (at most `max`), counting each one down (in place, see `acks`). */
function takeAcks(acks: Map<string, number>, max: number): string[] {
  const out: string[] = [];
  for (const [txid, left] of acks) {
    if (out.length >= max) break;
    out.push(txid);
    if (left <= 1) acks.delete(txid);
    else acks.set(txid, left - 1);
  }
  return out;
}
