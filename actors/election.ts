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
 */
import { and, enqueueActions, setup } from 'xstate';
import { compareBallots, wireKeyOf, type Ballot, type Entry, type NodeId } from '../protocol/messages.js';
import { ACTOR, acksForHeartbeat, deliverNotices, sendToNode, sendToPeers, sendToPeersNow, type NodeEnv, type Notice } from './env.js';
import type {
  ContactEvent,
  FlushedEvent,
  NackEvent,
  PrepareEvent,
  PromiseEvent,
  RecoveredEvent,
  TickEvent,
} from './events.js';
import { buildNewView } from './newView.js';

export interface ElectionContext {
  env: NodeEnv;
  /** Ticks since the leader was last heard (or the campaign started). */
  elapsed: number;
  timeoutTicks: number;
  sinceHeartbeat: number;
  /** A candidate's promises, by node. */
  promises: Map<NodeId, Entry[]>;
  /** The highest PREPARE deferred while the leader was still heard. */
  deferred: { from: NodeId; ballot: Ballot; commitThrough: number } | null;
  /** Set by a flush: the next leader state is the set's initial view, no NEW-VIEW. */
  installing: boolean;
  /** The highest round seen in a PREPARE or NACK, so a new campaign goes above it. */
  seenRound: number;
}

export type ElectionEvent = TickEvent | ContactEvent | PrepareEvent | PromiseEvent | NackEvent | FlushedEvent | RecoveredEvent;

function randomTimeout(env: NodeEnv): number {
  return env.rng.int(env.tuning.electionTicksMin, env.tuning.electionTicksMax);
}

function nack(env: NodeEnv, to: NodeId, ballot: Ballot | null | undefined): void {
  sendToNode(env, to, { nack: { ballot, promised: env.state.promised } });
}

function grant(ctx: ElectionContext, from: NodeId, ballot: Ballot, commitThrough: number): Notice[] {
  ctx.env.view.leader = 0;
  ctx.elapsed = 0;
  ctx.deferred = null;
  return [{ to: ACTOR.acceptor, event: { type: 'grantPromise', to: from, ballot, commitThrough } }];
}

function defer(ctx: ElectionContext, e: PrepareEvent): void {
  const ballot = e.msg.ballot ?? { round: 0, node: 0 };
  ctx.seenRound = Math.max(ctx.seenRound, ballot.round ?? 0);
  if (!ctx.deferred || compareBallots(ballot, ctx.deferred.ballot) > 0) {
    ctx.deferred = { from: e.from, ballot, commitThrough: e.msg.commitThrough ?? 0 };
  }
}

/** The candidate's ballot: one round above anything seen, with its own id. */
function nextBallot(ctx: ElectionContext): Ballot {
  const { env } = ctx;
  const round = Math.max(env.state.promised.round ?? 0, env.view.ballot.round ?? 0, ctx.seenRound) + 1;
  return { round, node: env.self };
}

export const electionMachine = setup({
  types: {
    context: {} as ElectionContext,
    events: {} as ElectionEvent,
    input: {} as { env: NodeEnv },
  },
  guards: {
    timerExpired: ({ context }) => context.elapsed + 1 >= context.timeoutTicks,
    hasDeferredPrepare: ({ context }) =>
      context.deferred !== null && compareBallots(context.deferred.ballot, context.env.state.promised) > 0,
    prepareIsStale: ({ context, event }) =>
      compareBallots((event as PrepareEvent).msg.ballot, context.env.state.promised) <= 0,
    /** The P1 rule: grant only once our own leader has gone quiet (or is unknown, or is the one asking). */
    mayGrantNow: ({ context, event }) =>
      context.env.view.leader === 0 ||
      (event as PrepareEvent).from === context.env.view.leader ||
      context.elapsed >= context.env.tuning.electionTicksMin,
    promiseCompletesQuorum: ({ context, event }) => {
      const e = event as PromiseEvent;
      if (compareBallots(e.msg.ballot, context.env.view.ballot) !== 0) return false;
      const voters = new Set(context.promises.keys()).add(e.from);
      return voters.size >= context.env.majority;
    },
    contactAtLeastMine: ({ context, event }) =>
      compareBallots((event as ContactEvent).ballot, context.env.view.ballot) >= 0,
    contactAboveMine: ({ context, event }) =>
      compareBallots((event as ContactEvent).ballot, context.env.view.ballot) > 0,
    nackAboveMine: ({ context, event }) =>
      compareBallots((event as NackEvent).msg.promised, context.env.view.ballot) > 0,
    isInitialLeader: ({ context, event }) => (event as FlushedEvent).leader === context.env.self,
  },
  actions: {
    resetTimer: ({ context }) => {
      context.elapsed = 0;
      context.timeoutTicks = randomTimeout(context.env);
    },
    countTick: ({ context }) => {
      context.elapsed++;
    },
    becomeFollower: ({ context }) => {
      context.env.view.role = 'follower';
      context.promises = new Map();
    },
    followLeader: ({ context, event }) => {
      const e = event as ContactEvent;
      const { view } = context.env;
      view.leader = e.from;
      if (compareBallots(e.ballot, view.ballot) > 0) view.ballot = { ...e.ballot };
      context.elapsed = 0;
      context.deferred = null;
    },
    deferPrepare: ({ context, event }) => defer(context, event as PrepareEvent),
    nack: ({ context, event }) => {
      const e = event as PrepareEvent | NackEvent;
      nack(context.env, e.from, e.msg.ballot);
    },
    noteNack: ({ context, event }) => {
      context.seenRound = Math.max(context.seenRound, (event as NackEvent).msg.promised?.round ?? 0);
    },
    grantPrepare: enqueueActions(({ context, event, enqueue }) => {
      const e = event as PrepareEvent;
      deliverNotices(enqueue, grant(context, e.from, e.msg.ballot ?? { round: 0, node: 0 }, e.msg.commitThrough ?? 0));
    }),
    grantDeferred: enqueueActions(({ context, enqueue }) => {
      const d = context.deferred!;
      deliverNotices(enqueue, grant(context, d.from, d.ballot, d.commitThrough));
    }),
    startCampaign: ({ context }) => {
      const { env } = context;
      const ballot = nextBallot(context);
      env.view = { role: 'candidate', leader: 0, ballot };
      env.record({ promised: { ballot } });
      // The candidate promises itself; its own log joins the merge directly.
      context.promises = new Map([[env.self, []]]);
      context.deferred = null;
      sendToPeers(env, { prepare: { ballot, commitThrough: env.state.commitThrough } });
    },
    addPromise: ({ context, event }) => {
      const e = event as PromiseEvent;
      const { env } = context;
      if (compareBallots(e.msg.ballot, env.view.ballot) !== 0) return;
      // A promiser that compacted past our commit point sent its state: take it before building the NEW-VIEW.
      const snap = e.msg.snapshot;
      if (snap && (snap.executedThrough ?? 0) > env.state.executedThrough) env.record({ snapshot: { ...snap, failed: env.state.failed } });
      context.promises.set(e.from, e.msg.accepted ?? []);
    },
    becomeLeader: enqueueActions(({ context, enqueue }) => {
      const { env } = context;
      env.view.role = 'leader';
      env.view.leader = env.self;
      context.sinceHeartbeat = 0;
      if (context.installing) {
        context.installing = false;
        deliverNotices(enqueue, [{ to: ACTOR.proposer, event: { type: 'lead', ballot: { ...env.view.ballot }, pending: [] } }]);
        return;
      }
      // (The NEW-VIEW below is recorded first, so the lock manager sees every entry it inherits.)
      const ballot = { ...env.view.ballot };
      const log = buildNewView(ballot, env.state.log.values(), [...context.promises.values()].flat(), env.state.lowWater);
      context.promises = new Map();
      env.record({ accepted: { entries: log } });
      const chosen = log.filter((e) => e.committed).map(wireKeyOf);
      if (chosen.length > 0) env.record({ committed: { keys: chosen } });
      env.record({ view: { view: { ballot, log }, leader: env.self } });
      sendToPeers(env, { newView: { ballot, log } });
      const pending = log.filter((e) => !e.committed);
      deliverNotices(enqueue, [
        { to: ACTOR.proposer, event: { type: 'lead', ballot, pending } },
        { to: ACTOR.lockManager, event: { type: 'adopt' } },
      ]);
    }),
    stepDown: enqueueActions(({ enqueue }) => {
      deliverNotices(enqueue, [
        { to: ACTOR.proposer, event: { type: 'stepDown' } },
        { to: ACTOR.lockManager, event: { type: 'reset' } },
        { to: ACTOR.transactions, event: { type: 'reset' } },
      ]);
    }),
    heartbeatIfDue: ({ context }) => {
      const { env } = context;
      if (++context.sinceHeartbeat < env.tuning.heartbeatTicks) return;
      context.sinceHeartbeat = 0;
      const acked = acksForHeartbeat(env);
      // Not behind the log: commitThrough is a hint (a follower asks for what it lacks, and
      // that answer is durable first); the ACKs it repeats are the participant's, already durable there.
      sendToPeersNow(env, { heartbeat: { ballot: env.view.ballot, commitThrough: env.state.commitThrough, acked } });
    },
    installInitialView: ({ context, event }) => {
      const { env } = context;
      const leader = (event as FlushedEvent).leader;
      env.view = { role: 'follower', leader, ballot: { round: 1, node: leader } };
      context.deferred = null;
      context.promises = new Map();
      context.installing = leader === env.self;
      context.seenRound = 0;
    },
    forgetLeader: ({ context }) => {
      context.env.view.leader = 0;
    },
  },
}).createMachine({
  id: 'election',
  context: ({ input }) => ({
    env: input.env,
    elapsed: 0,
    timeoutTicks: input.env.tuning.electionTicksMax,
    sinceHeartbeat: 0,
    promises: new Map(),
    deferred: null,
    installing: false,
    seenRound: 0,
  }),
  initial: 'follower',
  on: {
    flushed: [
      { guard: 'isInitialLeader', target: '.leader', reenter: true, actions: 'installInitialView' },
      { target: '.follower', reenter: true, actions: 'installInitialView' },
    ],
    // A node back from a disconnection cannot assume it still leads.
    recovered: { target: '.follower', reenter: true },
  },
  states: {
    follower: {
      entry: ['becomeFollower', 'resetTimer'],
      on: {
        tick: [
          { guard: and(['timerExpired', 'hasDeferredPrepare']), target: 'follower', reenter: true, actions: 'grantDeferred' },
          { guard: 'timerExpired', target: 'candidate' },
          { actions: 'countTick' },
        ],
        contact: { actions: 'followLeader' },
        prepare: [
          { guard: 'prepareIsStale', actions: 'nack' },
          { guard: 'mayGrantNow', actions: 'grantPrepare' },
          { actions: 'deferPrepare' },
        ],
      },
    },
    candidate: {
      entry: ['startCampaign', 'resetTimer'],
      on: {
        tick: [{ guard: 'timerExpired', target: 'candidate', reenter: true }, { actions: 'countTick' }],
        promise: [{ guard: 'promiseCompletesQuorum', target: 'leader', actions: 'addPromise' }, { actions: 'addPromise' }],
        contact: { guard: 'contactAtLeastMine', target: 'follower', actions: 'followLeader' },
        prepare: [
          { guard: 'prepareIsStale', actions: 'nack' },
          { target: 'follower', actions: 'grantPrepare' },
        ],
        nack: { guard: 'nackAboveMine', target: 'follower', actions: ['noteNack', 'forgetLeader'] },
      },
    },
    leader: {
      entry: 'becomeLeader',
      exit: 'stepDown',
      on: {
        tick: { actions: 'heartbeatIfDue' },
        contact: { guard: 'contactAboveMine', target: 'follower', actions: 'followLeader' },
        // A node asks with a higher ballot (it lost touch, its round grew): lead again above it,
        // or it stays a candidate forever while the others keep deferring it.
        prepare: [{ guard: 'prepareIsStale', actions: 'nack' }, { target: 'candidate', actions: 'deferPrepare' }],
        nack: { guard: 'nackAboveMine', target: 'follower', actions: ['noteNack', 'forgetLeader'] },
      },
    },
  },
});
