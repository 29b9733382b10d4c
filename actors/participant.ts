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
 *
 * Every phase it enters is a `txPhase` event in the node's log.
 */
import { assign, setup } from 'xstate';
import { shardbank, type NodeId } from '../protocol/messages.js';
import { addressed, send, type Body } from './effects.js';
import type { ParticipantEvent, ParticipantMode, TransactionsEvent, TxExecutedEvent } from './events.js';
import { post, tell } from './mail.js';
import { ACTOR } from './node-info.js';
import { txPhase, type TxActorInput } from './txPhase.js';
import { act } from './act.js';

const { Phase, Status } = shardbank;

export interface ParticipantInput extends TxActorInput {
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

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Enqueue = any;

/** To the transactions actor, this actor's parent (by its system id, so a pure step needs no parent to resolve it). */
function toParent(enqueue: Enqueue, event: TransactionsEvent): void {
  post(enqueue, [tell(ACTOR.transactions, event)]);
}

function enter(enqueue: Enqueue, ctx: ParticipantContext, phase: string, why = ''): void {
  toParent(enqueue, { type: 'effects', effects: [txPhase(ctx, 'participant', phase, why)] });
}

function propose(enqueue: Enqueue, ctx: ParticipantContext, phase: number, seq?: number, reason?: string): void {
  post(enqueue, [tell(ACTOR.proposer, { type: 'propose', proposals: [{ command: ctx.command, phase, seq, reason }] })]);
}

/** To the coordinator leader that asked, or, when none is known, to its cluster's believed leader. */
function toCoordinator(enqueue: Enqueue, ctx: ParticipantContext, body: Body): void {
  if (ctx.coordinator) toParent(enqueue, { type: 'effects', effects: [send(addressed(ctx.info.self, ctx.coordinator, body))] });
  else toParent(enqueue, { type: 'out', cluster: ctx.coordinatorCluster, body, everyone: false });
}

function vote(enqueue: Enqueue, ctx: ParticipantContext, prepared: boolean, reason = ''): void {
  toCoordinator(enqueue, ctx, { txVote: { txid: ctx.txid, prepared, reason, seq: prepared ? ctx.seq ?? 0 : 0 } });
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
    alreadyDecided: ({ context }) => context.state.decisions.has(context.txid),
  },
  actions: {
    orderPrepare: act(({ context, enqueue }) => {
      enter(enqueue, context, 'preparing');
      propose(enqueue, context, Phase.PHASE_PREPARE);
    }),
    orderAbortOnly: act(({ context, enqueue }) => {
      const abortReason = context.mode === 'locked' ? 'lock conflict' : 'aborted by the coordinator';
      enqueue.assign({ abortReason });
      enter(enqueue, context, context.mode === 'locked' ? 'refusing' : 'fencing', abortReason);
      propose(enqueue, context, Phase.PHASE_ABORT, undefined, abortReason);
    }),
    notePrepareRan: assign({ seq: ({ event }) => (event as TxExecutedEvent).seq }),
    votePrepared: act(({ context, enqueue }) => {
      enter(enqueue, context, 'prepared');
      vote(enqueue, context, true);
    }),
    voteAgain: act(({ context, enqueue }) => vote(enqueue, context, true)),
    voteAbort: act(({ context, enqueue }) => vote(enqueue, context, false, context.abortReason)),
    noteDecision: assign(({ context, event }) => {
      const e = event as Extract<ParticipantEvent, { type: 'decision' }>;
      return { decision: e.commit, coordinator: e.from || context.coordinator };
    }),
    noteAsker: assign({ coordinator: ({ context, event }) => (event as { from?: NodeId }).from || context.coordinator }),
    orderDecision: act(({ context, enqueue }) => {
      enter(enqueue, context, context.decision ? 'deciding commit' : 'deciding abort');
      propose(enqueue, context, context.decision ? Phase.PHASE_COMMIT : Phase.PHASE_ABORT, context.seq, context.decision ? undefined : 'coordinator aborted');
    }),
    /** Each tick is one retry period. */
    askCoordinator: act(({ context, enqueue }) => {
      const retries = context.retries + 1;
      enqueue.assign({ retries });
      const body = { txQuery: { txid: context.txid, command: context.command, participantCluster: context.info.cluster } };
      toParent(enqueue, { type: 'out', cluster: context.coordinatorCluster, body, everyone: retries % 2 === 0 });
    }),
    ack: act(({ context, enqueue }) => {
      enter(enqueue, context, 'done');
      toCoordinator(enqueue, context, { txAck: { txid: context.txid } });
    }),
    reportDone: act(({ context, enqueue }) => toParent(enqueue, { type: 'txDone', txid: context.txid, role: 'participant' })),
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
        prepareAgain: { actions: ['noteAsker', 'voteAgain'] },
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
