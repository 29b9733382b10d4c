/**
 * The 2PC coordinator: one actor per cross-shard transfer, at the leader of
 * the sender's cluster.
 *
 * It orders the prepare entry (P) in its own cluster and sends PREPARE to the
 * participant's leader at the same time. With both prepared it orders the
 * commit (C) at the seq of its P; on a participant ABORT, or when the
 * participant stays silent past `txTimeoutTicks`, it orders the abort (A)
 * there instead. Once the decision has executed here (the executor answers
 * the client) it sends the decision, again every `txRetryTicks`, until the
 * participant acknowledges it.
 *
 * A new leader restarts this actor from the log for what it inherits: a P
 * with no decision is aborted (`resolve`), a decision with no ACK is resent
 * (`notify`). A participant asking about a transaction this cluster never
 * prepared gets an abort that is ordered first (`fence`), so a late P can
 * never turn it into a commit.
 */
import { and, enqueueActions, not, setup } from 'xstate';
import { shardbank, type Command } from '../protocol/messages.js';
import { ACTOR, deliverNotices, sendToCluster, shareAck, type NodeEnv, type Notice } from './env.js';
import type { TxExecutedEvent } from './events.js';
import { replyTo } from './replies.js';

const { Phase, Status } = shardbank;

export type CoordinatorMode = 'start' | 'resolve' | 'notify' | 'fence';

export interface CoordinatorInput {
  env: NodeEnv;
  txid: string;
  command: Command;
  participantCluster: number;
  mode: CoordinatorMode;
  /** For resolve / notify: the seq of the P entry and the decision. */
  seq?: number;
  commit?: boolean;
  reason?: string;
}

interface CoordinatorContext extends CoordinatorInput {
  localPrepared: boolean;
  remotePrepared: boolean;
  abortReason: string;
  /** Retry periods since the start, or since the decision was ordered or first sent. */
  elapsed: number;
  retries: number;
}

export type CoordinatorEvent =
  | TxExecutedEvent
  | { type: 'vote'; prepared: boolean; reason: string }
  | { type: 'ack' }
  | { type: 'queried' }
  /** One retry period (`txRetryTicks`) has passed since the last one; the first comes one period after the start. */
  | { type: 'tick' }
  /** The leader stepped down or the set was flushed: stop here, quietly. */
  | { type: 'drop' };

function propose(ctx: CoordinatorContext, phase: number, seq?: number, reason?: string): Notice {
  return { to: ACTOR.proposer, event: { type: 'propose', command: ctx.command, phase, seq, reason } };
}

/** A request that vouches for nothing here: it leaves without waiting for the log (NodeEnv.sendNow). */
function sendPrepare(ctx: CoordinatorContext, everyone: boolean): void {
  const { env } = ctx;
  sendToCluster(env, ctx.participantCluster, { txPrepare: { txid: ctx.txid, command: ctx.command, coordinatorCluster: env.cluster } }, everyone, true);
}

function sendDecision(ctx: CoordinatorContext, everyone: boolean): void {
  const { env } = ctx;
  sendToCluster(
    env,
    ctx.participantCluster,
    { txDecision: { txid: ctx.txid, commit: !!ctx.commit, command: ctx.command, coordinatorCluster: env.cluster, reason: ctx.reason ?? '' } },
    everyone,
  );
}

export const coordinatorMachine = setup({
  types: {
    context: {} as CoordinatorContext,
    events: {} as CoordinatorEvent,
    input: {} as CoordinatorInput,
  },
  guards: {
    isResolve: ({ context }) => context.mode === 'resolve',
    isNotify: ({ context }) => context.mode === 'notify',
    isFence: ({ context }) => context.mode === 'fence',
    prepareRan: ({ event }) => (event as TxExecutedEvent).phase === Phase.PHASE_PREPARE,
    decisionRan: ({ event }) => (event as TxExecutedEvent).phase >= Phase.PHASE_COMMIT,
    bothPrepared: ({ context }) => context.localPrepared && context.remotePrepared,
    mustAbort: ({ context }) => context.localPrepared && context.abortReason !== '',
    timedOut: ({ context }) => context.elapsed * context.env.tuning.txRetryTicks >= context.env.tuning.txTimeoutTicks,
    localPrepared: ({ context }) => context.localPrepared,
    /** The decision may have run before this actor ordered it (it was already in the log). */
    alreadyDecided: ({ context }) => context.env.state.decisions.has(context.txid),
  },
  actions: {
    startPrepare: enqueueActions(({ context, enqueue }) => {
      sendPrepare(context, false);
      deliverNotices(enqueue, [propose(context, Phase.PHASE_PREPARE)]);
    }),
    notePrepareRan: ({ context, event }) => {
      const e = event as TxExecutedEvent;
      context.seq = e.seq;
      context.localPrepared = true;
      if (e.status !== Status.COMMITTED) context.abortReason ||= e.reason || 'aborted';
    },
    noteVote: ({ context, event }) => {
      const e = event as Extract<CoordinatorEvent, { type: 'vote' }>;
      if (e.prepared) context.remotePrepared = true;
      else context.abortReason ||= e.reason ? `participant aborted: ${e.reason}` : 'participant aborted';
    },
    countTick: ({ context }) => {
      context.elapsed++;
    },
    resendPrepare: ({ context }) => sendPrepare(context, ++context.retries % 2 === 0),
    noteTimeout: ({ context }) => {
      context.abortReason ||= context.localPrepared ? 'timeout' : 'no majority';
    },
    decideCommit: ({ context }) => {
      context.commit = true;
      context.reason = '';
    },
    decideAbort: ({ context }) => {
      context.commit = false;
      context.reason = context.abortReason || context.reason || 'aborted';
    },
    orderDecision: enqueueActions(({ context, enqueue }) => {
      context.elapsed = 0;
      deliverNotices(enqueue, [
        propose(context, context.commit ? Phase.PHASE_COMMIT : Phase.PHASE_ABORT, context.seq, context.commit ? undefined : context.reason),
      ]);
    }),
    orderFence: enqueueActions(({ context, enqueue }) => {
      context.commit = false;
      context.reason = 'unknown to the coordinator';
      deliverNotices(enqueue, [propose(context, Phase.PHASE_ABORT, undefined, context.reason)]);
    }),
    /**
     * Our own cluster has not ordered the prepare: answer now, as `failed`
     * (outcome unknown), not aborted. Without a majority no abort can be made
     * durable, and the request may still commit: its P later (then resolved
     * from the log), or a copy of it at another leader. The sender stays
     * locked until the P is resolved.
     */
    giveUp: ({ context }) => {
      if (context.env.view.role === 'leader') replyTo(context.env, context.command, { status: Status.FAILED, reason: 'no majority' });
    },
    /** What the participant must hear is what ran here (a decision inherited from the log may win). */
    noteDecisionRan: ({ context, event }) => {
      const e = event as TxExecutedEvent;
      context.commit = e.phase === Phase.PHASE_COMMIT;
      context.reason = context.commit ? '' : e.reason || context.reason;
    },
    takeDecisionFromLog: ({ context }) => {
      context.commit = context.env.state.decisions.get(context.txid) === true;
      if (!context.commit) context.reason ||= 'aborted';
    },
    startNotify: ({ context }) => {
      context.elapsed = 0;
      sendDecision(context, false);
    },
    // Periods keep the phase of the start, so the first one after startNotify may be short: skip it.
    resendDecision: ({ context }) => {
      if (context.elapsed >= 2) sendDecision(context, ++context.retries % 2 === 0);
    },
    recordAck: ({ context }) => {
      context.env.record({ acked: { txid: context.txid } });
      shareAck(context.env, context.txid);
    },
    reportDone: enqueueActions(({ context, enqueue }) => {
      deliverNotices(enqueue, [{ to: ACTOR.transactions, event: { type: 'txDone', txid: context.txid, role: 'coordinator' } }]);
    }),
  },
}).createMachine({
  id: 'coordinator',
  context: ({ input }) => Object.assign({}, input, { localPrepared: false, remotePrepared: false, abortReason: '', elapsed: 0, retries: 0 }),
  initial: 'routing',
  on: { drop: '.dropped' },
  states: {
    routing: {
      always: [
        { guard: 'isNotify', target: 'notifying' },
        { guard: 'isFence', target: 'fencing' },
        { guard: 'isResolve', target: 'deciding', actions: 'decideAbort' },
        { target: 'preparing' },
      ],
    },
    preparing: {
      entry: 'startPrepare',
      always: [
        { guard: 'mustAbort', target: 'deciding', actions: 'decideAbort' },
        { guard: 'bothPrepared', target: 'deciding', actions: 'decideCommit' },
      ],
      on: {
        txExecuted: { guard: 'prepareRan', actions: 'notePrepareRan' },
        vote: { actions: 'noteVote' },
        tick: [
          // Our own prepare never ran: answer now; a P that commits later is resolved to abort.
          { guard: and(['timedOut', not('localPrepared')]), target: 'abandoned' },
          { guard: 'timedOut', actions: ['countTick', 'noteTimeout'] },
          { actions: ['countTick', 'resendPrepare'] },
        ],
      },
    },
    deciding: {
      entry: 'orderDecision',
      always: { guard: 'alreadyDecided', target: 'notifying', actions: 'takeDecisionFromLog' },
      on: {
        txExecuted: { guard: 'decisionRan', target: 'notifying', actions: 'noteDecisionRan' },
        vote: {},
        tick: { actions: 'countTick' },
      },
    },
    fencing: {
      entry: 'orderFence',
      always: { guard: 'alreadyDecided', target: 'notifying', actions: 'takeDecisionFromLog' },
      on: {
        txExecuted: { guard: 'decisionRan', target: 'notifying', actions: 'noteDecisionRan' },
      },
    },
    notifying: {
      entry: 'startNotify',
      on: {
        ack: { target: 'done', actions: 'recordAck' },
        queried: { actions: 'startNotify' },
        tick: { actions: ['countTick', 'resendDecision'] },
      },
    },
    abandoned: {
      entry: ['giveUp', 'reportDone'],
      type: 'final',
    },
    done: {
      entry: 'reportDone',
      type: 'final',
    },
    dropped: { type: 'final' },
  },
});
