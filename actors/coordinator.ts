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
 *
 * Every phase it enters is a `txPhase` event in the node's log.
 */
import { and, assign, not, setup } from 'xstate';
import { shardbank, type Command } from '../protocol/messages.js';
import { ownerOf } from '../store/state.js';
import type { CoordinatorEvent, CoordinatorMode, TransactionsEvent, TxExecutedEvent } from './events.js';
import { post, tell } from './mail.js';
import { ACTOR } from './node-info.js';
import { txPhase, type TxActorInput } from './txPhase.js';
import { act } from './act.js';

const { Phase, Status } = shardbank;

export interface CoordinatorInput extends TxActorInput {
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
  /** The seq the participant's prepare ran at (its vote said), for the client's session. */
  peerSeq: number;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Enqueue = any;

/** To the transactions actor, this actor's parent (by its system id, so a pure step needs no parent to resolve it). */
function toParent(enqueue: Enqueue, event: TransactionsEvent): void {
  post(enqueue, [tell(ACTOR.transactions, event)]);
}

/** Notes the phase in the log. */
function enter(enqueue: Enqueue, ctx: CoordinatorContext, phase: string, why = ''): void {
  toParent(enqueue, { type: 'effects', effects: [txPhase(ctx, 'coordinator', phase, why)] });
}

function propose(enqueue: Enqueue, command: Command, phase: number, seq?: number, reason?: string): void {
  post(enqueue, [tell(ACTOR.proposer, { type: 'propose', proposals: [{ command, phase, seq, reason }] })]);
}

/**
 * The command a PREPARE carries: the transfer naming this cluster as its
 * coordinator (the participant's WAL keeps it); a move with the balances its
 * items had when the move-out ran here (its before-images) and the ownership
 * version each will have at the destination.
 */
function preparedCommand(ctx: CoordinatorContext): Command {
  const m = ctx.command.move;
  const t = ctx.command.transfer;
  if (t) return Object.assign({}, ctx.command, { transfer: Object.assign({}, t, { coordinatorCluster: ctx.info.cluster }) });
  if (!m) return ctx.command;
  const before = ctx.state.wal.get(ctx.txid)?.before ?? [];
  const owners = before.map((b) => ({ item: b.item, cluster: m.toCluster ?? 0, version: (ownerOf(ctx.info.topology, ctx.state, b.item)?.version ?? 0) + 1 }));
  return Object.assign({}, ctx.command, { move: Object.assign({}, m, { balances: before, owners }) });
}

function sendPrepare(enqueue: Enqueue, ctx: CoordinatorContext, everyone: boolean): void {
  const body = { txPrepare: { txid: ctx.txid, command: preparedCommand(ctx), coordinatorCluster: ctx.info.cluster } };
  toParent(enqueue, { type: 'out', cluster: ctx.participantCluster, body, everyone });
}

function sendDecision(enqueue: Enqueue, ctx: CoordinatorContext, everyone: boolean): void {
  if (receiverMovedHere(ctx)) return;
  const body = {
    txDecision: { txid: ctx.txid, commit: !!ctx.commit, command: ctx.command, coordinatorCluster: ctx.info.cluster, reason: ctx.reason ?? '' },
  };
  toParent(enqueue, { type: 'out', cluster: ctx.participantCluster, body, everyone });
}

/**
 * The receiver's owner, as this cluster knows it now, is this very cluster
 * (a new leader names the participant from ownership, and the receiver moved
 * in since). Then no other cluster can hold the transfer prepared: a
 * participant's prepare locks the receiver, and a locked item does not move.
 * So nobody is left to tell, and nobody can answer.
 */
function receiverMovedHere(ctx: CoordinatorContext): boolean {
  return ctx.participantCluster === ctx.info.cluster;
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
    bothPrepared: ({ context }) =>
      context.localPrepared && (context.remotePrepared || (!!context.command.move && context.info.bugs.has('move-commit-before-move-in'))),
    mustAbort: ({ context }) => context.localPrepared && context.abortReason !== '',
    timedOut: ({ context }) => context.elapsed * context.info.tuning.txRetryTicks >= context.info.tuning.txTimeoutTicks,
    localPrepared: ({ context }) => context.localPrepared,
    participantMoved: ({ event }) => !!(event as Extract<CoordinatorEvent, { type: 'vote' }>).moved,
    /** The receiver moved into this very cluster: there is no other cluster to prepare it. */
    movedHere: ({ context, event }) => (event as Extract<CoordinatorEvent, { type: 'vote' }>).moved?.cluster === context.info.cluster,
    /** The decision may have run before this actor ordered it (it was already in the log). */
    alreadyDecided: ({ context }) => context.state.decisions.has(context.txid),
    receiverMovedHere: ({ context }) => receiverMovedHere(context),
  },
  actions: {
    startPrepare: act(({ context, enqueue }) => {
      enter(enqueue, context, 'preparing');
      // A transfer's PREPARE asks at once; a move's carries the balances its move-out finds.
      if (!context.command.move) sendPrepare(enqueue, context, false);
      propose(enqueue, context.command, Phase.PHASE_PREPARE);
    }),
    sendMovePrepare: act(({ context, event, enqueue }) => {
      const e = event as TxExecutedEvent;
      if (context.command.move && e.status === Status.COMMITTED) sendPrepare(enqueue, context, false);
    }),
    /** The receiver moved: nothing was prepared there; ask its new owner. */
    followMove: act(({ context, event, enqueue }) => {
      const moved = (event as Extract<CoordinatorEvent, { type: 'vote' }>).moved!;
      const next = Object.assign({}, context, { participantCluster: moved.cluster, retries: 0 });
      enqueue.assign({ participantCluster: moved.cluster, retries: 0 });
      enter(enqueue, context, 'preparing', `item ${moved.item} moved to c${moved.cluster} (version ${moved.version})`);
      sendPrepare(enqueue, next, false);
    }),
    noteMovedHere: assign(({ context, event }) => {
      const moved = (event as Extract<CoordinatorEvent, { type: 'vote' }>).moved!;
      return { abortReason: context.abortReason || `item ${moved.item} moved into c${moved.cluster}` };
    }),
    notePrepareRan: assign(({ context, event }) => {
      const e = event as TxExecutedEvent;
      const failed = e.status !== Status.COMMITTED;
      return { seq: e.seq, localPrepared: true, abortReason: context.abortReason || (failed ? e.reason || 'aborted' : '') };
    }),
    noteVote: assign(({ context, event }) => {
      const e = event as Extract<CoordinatorEvent, { type: 'vote' }>;
      if (e.prepared) return { remotePrepared: true, peerSeq: e.seq ?? 0 };
      return { abortReason: context.abortReason || (e.reason ? `participant aborted: ${e.reason}` : 'participant aborted') };
    }),
    countTick: assign({ elapsed: ({ context }) => context.elapsed + 1 }),
    resendPrepare: act(({ context, enqueue }) => {
      if (context.command.move && !context.localPrepared) return;
      const retries = context.retries + 1;
      enqueue.assign({ retries });
      sendPrepare(enqueue, context, retries % 2 === 0);
    }),
    noteTimeout: assign({ abortReason: ({ context }) => context.abortReason || (context.localPrepared ? 'timeout' : 'no majority') }),
    decideCommit: assign({ commit: true, reason: '' }),
    decideAbort: assign(({ context }) => ({ commit: false, reason: context.abortReason || context.reason || 'aborted' })),
    orderDecision: act(({ context, enqueue }) => {
      enqueue.assign({ elapsed: 0 });
      enter(enqueue, context, context.commit ? 'deciding commit' : 'deciding abort', context.commit ? '' : context.reason ?? '');
      propose(enqueue, context.command, context.commit ? Phase.PHASE_COMMIT : Phase.PHASE_ABORT, context.seq, context.commit ? undefined : context.reason);
    }),
    orderFence: act(({ context, enqueue }) => {
      const reason = 'unknown to the coordinator';
      enqueue.assign({ commit: false, reason });
      enter(enqueue, context, 'fencing', reason);
      propose(enqueue, context.command, Phase.PHASE_ABORT, undefined, reason);
    }),
    /**
     * Our own cluster has not ordered the prepare: answer now, as `unknown`,
     * not aborted. Without a majority no abort can be made
     * durable, and the request may still commit: its P later (then resolved
     * from the log), or a copy of it at another leader. The sender stays
     * locked until the P is resolved.
     */
    giveUp: act(({ context, enqueue }) => {
      enter(enqueue, context, 'abandoned', 'our own prepare never ran');
      toParent(enqueue, { type: 'reply', command: context.command, reply: { status: Status.UNKNOWN, reason: 'our prepare never ran: it may still' } });
    }),
    /**
     * What the participant must hear is what ran here (a decision inherited
     * from the log may win), and it is the client's answer: with the seq it
     * ran at here and, committed, the seq the credit was prepared at there.
     */
    noteDecisionRan: act(({ context, event, enqueue }) => {
      const e = event as TxExecutedEvent;
      const commit = e.phase === Phase.PHASE_COMMIT;
      const reason = commit ? '' : e.reason || context.reason || '';
      enqueue.assign({ commit, reason });
      const reply = { status: e.status, reason, seq: e.ranAt, peerSeq: commit ? context.peerSeq : 0, receiverCluster: commit ? context.participantCluster : 0 };
      toParent(enqueue, { type: 'reply', command: context.command, reply });
    }),
    takeDecisionFromLog: assign(({ context }) => {
      const commit = context.state.decisions.get(context.txid) === true;
      return { commit, reason: commit ? context.reason : context.reason || 'aborted' };
    }),
    startNotify: act(({ context, enqueue }) => {
      enqueue.assign({ elapsed: 0 });
      enter(enqueue, context, context.commit ? 'notifying commit' : 'notifying abort');
      sendDecision(enqueue, context, false);
    }),
    notifyAgain: act(({ context, enqueue }) => {
      enqueue.assign({ elapsed: 0 });
      sendDecision(enqueue, context, false);
    }),
    // Periods keep the phase of the start, so the first one after startNotify may be short: skip it.
    resendDecision: act(({ context, enqueue }) => {
      if (context.elapsed < 2) return;
      const retries = context.retries + 1;
      enqueue.assign({ retries });
      sendDecision(enqueue, context, retries % 2 === 0);
    }),
    recordAck: act(({ context, enqueue }) => {
      enter(enqueue, context, 'done', 'participant acknowledged');
      toParent(enqueue, { type: 'acked', txid: context.txid });
    }),
    settleHere: act(({ context, enqueue }) => {
      enter(enqueue, context, 'done', 'the receiver moved into this cluster: no other cluster holds it prepared');
      toParent(enqueue, { type: 'acked', txid: context.txid });
    }),
    reportDone: act(({ context, enqueue }) => toParent(enqueue, { type: 'txDone', txid: context.txid, role: 'coordinator' })),
  },
}).createMachine({
  id: 'coordinator',
  context: ({ input }) => Object.assign({}, input, { localPrepared: false, remotePrepared: false, abortReason: '', elapsed: 0, retries: 0, peerSeq: 0 }),
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
        txExecuted: { guard: 'prepareRan', actions: ['notePrepareRan', 'sendMovePrepare'] },
        vote: [{ guard: 'movedHere', actions: 'noteMovedHere' }, { guard: 'participantMoved', actions: 'followMove' }, { actions: 'noteVote' }],
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
      always: { guard: 'receiverMovedHere', target: 'done', actions: 'settleHere' },
      on: {
        ack: { target: 'done', actions: 'recordAck' },
        queried: { actions: 'notifyAgain' },
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

