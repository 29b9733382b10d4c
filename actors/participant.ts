/**
 * The 2PC participant: one actor per cross-shard transfer, at the leader of
 * the receiver's cluster.
 *
 * With the receiver free it orders the prepare (P: credit tentatively, WAL)
 * and answers PREPARED once it has executed; with the receiver locked it
 * orders an abort entry and answers ABORT. A prepared participant never
 * decides alone: it waits for COMMIT or ABORT, asking the coordinator's
 * cluster every `txRetryTicks` in case its leader died, then orders the
 * decision at the seq of its P and acknowledges it.
 */
import { enqueueActions, setup } from 'xstate';
import { shardbank, type Command, type NodeId } from '../protocol/messages.js';
import { ACTOR, deliverNotices, sendToCluster, sendToNode, type NodeEnv, type Notice } from './env.js';
import type { TxExecutedEvent } from './events.js';

const { Phase, Status } = shardbank;

/** start: prepare; locked: the receiver is locked, abort; resume: prepared before (a new leader); fence: abort an unknown one. */
export type ParticipantMode = 'start' | 'locked' | 'resume' | 'fence';

export interface ParticipantInput {
  env: NodeEnv;
  txid: string;
  command: Command;
  coordinatorCluster: number;
  /** The coordinator leader that asked, when known. */
  coordinator: NodeId;
  mode: ParticipantMode;
  seq?: number;
}

interface ParticipantContext extends ParticipantInput {
  decision: boolean | null;
  retries: number;
  abortReason: string;
}

export type ParticipantEvent =
  | TxExecutedEvent
  | { type: 'prepareAgain'; from: NodeId }
  | { type: 'decision'; commit: boolean; from: NodeId }
  | { type: 'tick' }
  /** The leader stepped down or the set was flushed: stop here, quietly. */
  | { type: 'drop' };

function propose(ctx: ParticipantContext, phase: number, seq?: number, reason?: string): Notice {
  return { to: ACTOR.proposer, event: { type: 'propose', command: ctx.command, phase, seq, reason } };
}

/** To the coordinator leader that asked, or, when none is known, to its cluster's believed leader. */
function toCoordinator(ctx: ParticipantContext, body: Parameters<typeof sendToNode>[2]): void {
  if (ctx.coordinator) sendToNode(ctx.env, ctx.coordinator, body);
  else sendToCluster(ctx.env, ctx.coordinatorCluster, body);
}

function vote(ctx: ParticipantContext, prepared: boolean, reason = ''): void {
  toCoordinator(ctx, { txVote: { txid: ctx.txid, prepared, reason } });
}

export const participantMachine = setup({
  types: {
    context: {} as ParticipantContext,
    events: {} as ParticipantEvent,
    input: {} as ParticipantInput,
  },
  guards: {
    isLocked: ({ context }) => context.mode === 'locked',
    isResume: ({ context }) => context.mode === 'resume',
    isFence: ({ context }) => context.mode === 'fence',
    prepareRan: ({ event }) => (event as TxExecutedEvent).phase === Phase.PHASE_PREPARE,
    prepareFailed: ({ event }) => (event as TxExecutedEvent).status !== Status.COMMITTED,
    decisionRan: ({ event }) => (event as TxExecutedEvent).phase >= Phase.PHASE_COMMIT,
    hasDecision: ({ context }) => context.decision !== null,
    /** The decision may have run before this actor asked for it (it was already in the log). */
    alreadyDecided: ({ context }) => context.env.state.decisions.has(context.txid),
  },
  actions: {
    orderPrepare: enqueueActions(({ context, enqueue }) => {
      deliverNotices(enqueue, [propose(context, Phase.PHASE_PREPARE)]);
    }),
    orderAbortOnly: enqueueActions(({ context, enqueue }) => {
      context.abortReason = context.mode === 'locked' ? 'lock conflict' : 'aborted by the coordinator';
      deliverNotices(enqueue, [propose(context, Phase.PHASE_ABORT, undefined, context.abortReason)]);
    }),
    notePrepareRan: ({ context, event }) => {
      context.seq = (event as TxExecutedEvent).seq;
    },
    votePrepared: ({ context }) => vote(context, true),
    voteAbort: ({ context }) => vote(context, false, context.abortReason),
    noteDecision: ({ context, event }) => {
      const e = event as Extract<ParticipantEvent, { type: 'decision' }>;
      context.decision = e.commit;
      if (e.from) context.coordinator = e.from;
    },
    noteAsker: ({ context, event }) => {
      const from = (event as { from?: NodeId }).from;
      if (from) context.coordinator = from;
    },
    orderDecision: enqueueActions(({ context, enqueue }) => {
      deliverNotices(enqueue, [
        propose(context, context.decision ? Phase.PHASE_COMMIT : Phase.PHASE_ABORT, context.seq, context.decision ? undefined : 'coordinator aborted'),
      ]);
    }),
    /** Each tick is one retry period. */
    askCoordinator: ({ context }) => {
      const { env } = context;
      sendToCluster(
        env,
        context.coordinatorCluster,
        { txQuery: { txid: context.txid, command: context.command, participantCluster: env.cluster } },
        ++context.retries % 2 === 0,
      );
    },
    ack: ({ context }) => toCoordinator(context, { txAck: { txid: context.txid } }),
    reportDone: enqueueActions(({ context, enqueue }) => {
      deliverNotices(enqueue, [{ to: ACTOR.transactions, event: { type: 'txDone', txid: context.txid, role: 'participant' } }]);
    }),
  },
}).createMachine({
  id: 'participant',
  context: ({ input }) => Object.assign({}, input, { decision: null, retries: 0, abortReason: '' }),
  initial: 'routing',
  on: { drop: '.dropped' },
  states: {
    routing: {
      always: [
        { guard: 'isLocked', target: 'refusing' },
        { guard: 'isFence', target: 'fencing' },
        { guard: 'isResume', target: 'prepared' },
        { target: 'preparing' },
      ],
    },
    preparing: {
      entry: 'orderPrepare',
      on: {
        txExecuted: [
          { guard: 'prepareFailed', target: 'done' },
          { guard: 'prepareRan', target: 'prepared', actions: 'notePrepareRan' },
        ],
        // A decision can overtake our own prepare (the coordinator timed out): keep it for later.
        decision: { actions: 'noteDecision' },
        prepareAgain: { actions: 'noteAsker' },
      },
    },
    prepared: {
      entry: 'votePrepared',
      always: { guard: 'hasDecision', target: 'deciding' },
      on: {
        prepareAgain: { actions: ['noteAsker', 'votePrepared'] },
        decision: { target: 'deciding', actions: 'noteDecision' },
        tick: { actions: 'askCoordinator' },
      },
    },
    deciding: {
      entry: 'orderDecision',
      always: { guard: 'alreadyDecided', target: 'done', actions: 'ack' },
      on: {
        txExecuted: { guard: 'decisionRan', target: 'done', actions: 'ack' },
      },
    },
    refusing: {
      entry: 'orderAbortOnly',
      on: {
        txExecuted: { guard: 'decisionRan', target: 'done', actions: 'voteAbort' },
      },
    },
    fencing: {
      entry: 'orderAbortOnly',
      always: { guard: 'alreadyDecided', target: 'done', actions: 'ack' },
      on: {
        txExecuted: { guard: 'decisionRan', target: 'done', actions: 'ack' },
      },
    },
    done: {
      entry: 'reportDone',
      type: 'final',
    },
    dropped: { type: 'final' },
  },
});
