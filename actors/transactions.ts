/**
 * Keeps one coordinator or participant actor per cross-shard transaction in
 * flight at this leader: spawns it with an explicit id (`c:<txid>`,
 * `p:<txid>`), routes the transaction's messages and executions to it, and
 * lets go of it when it is done (a final state; XState has stopped it then).
 * When the leader steps down, the actors still running are dropped: sent
 * `drop`, they go to a final state that does nothing.
 *
 * Their timers run on one wheel: an actor hears `tick` once per
 * `txRetryTicks`, in the phase of the tick it was spawned at, so a node tick
 * costs events for one slot of the wheel, not for every transaction in flight.
 *
 * After a leader change the new leader rebuilds its in-doubt work from the
 * log (every `txRetryTicks`): a coordinator prepare with no decision is
 * resolved to abort, a decision with no ACK is resent, a prepared
 * participant asks for its decision. Nothing waits on a dead coordinator.
 */
import { createActor, enqueueActions, setup, type AnyActorRef } from 'xstate';
import { shardbank, type Command, type EnvelopeProps, type NodeId } from '../protocol/messages.js';
import { hasDecisionEntry } from '../store/state.js';
import { clusterOfItem } from '../protocol/topology.js';
import { coordinatorMachine, type CoordinatorInput } from './coordinator.js';
import { escalateChildError, sendToNode, shareAck, type NodeEnv } from './env.js';
import type { TxExecutedEvent } from './events.js';
import { participantMachine, type ParticipantMode } from './participant.js';

export interface TransactionsContext {
  env: NodeEnv;
  /**
   * The live coordinator and participant actors, by actor id. They are not
   * XState children: XState copies a parent's whole children object on every
   * spawn and stop, which with a thousand transactions in flight cost more
   * than the transactions. Created with this actor as parent, they share the
   * node's system and report errors here all the same.
   */
  actors: Map<string, AnyActorRef>;
  self: AnyActorRef;
  ticks: number;
  /** Actor ids by slot: slot k ticks at node ticks that are k modulo txRetryTicks. */
  wheel: Set<string>[];
}

export type TransactionsEvent =
  | { type: 'coordinate'; command: Command; txid: string }
  | { type: 'participate'; command: Command; txid: string; from: NodeId; coordinatorCluster: number; mode: ParticipantMode }
  | { type: 'message'; envelope: EnvelopeProps }
  | TxExecutedEvent
  | { type: 'txDone'; txid: string; role: 'coordinator' | 'participant' }
  | { type: 'tick' }
  | { type: 'reset' };

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Enqueue = any;

const coordId = (txid: string) => `c:${txid}`;
const partId = (txid: string) => `p:${txid}`;

function clusterOf(env: NodeEnv, item: number | null | undefined): number {
  return clusterOfItem(env.topology, item ?? 0) ?? 0;
}

function start(ctx: TransactionsContext, enqueue: Enqueue, id: string, ref: AnyActorRef): void {
  ctx.actors.set(id, ref);
  slotOf(ctx, ctx.ticks).add(id);
  enqueue(() => ref.start());
}

/** Passes an event to a live transaction actor; false if there is none by that id. */
function tell(ctx: TransactionsContext, enqueue: Enqueue, id: string, event: { type: string } & Record<string, unknown>): boolean {
  const ref = ctx.actors.get(id);
  if (!ref) return false;
  enqueue(() => ref.send(event));
  return true;
}

function slotOf(ctx: TransactionsContext, ticks: number): Set<string> {
  const period = ctx.env.tuning.txRetryTicks;
  while (ctx.wheel.length < period) ctx.wheel.push(new Set());
  return ctx.wheel[ticks % period]!;
}

function spawnCoordinator(ctx: TransactionsContext, enqueue: Enqueue, input: Omit<CoordinatorInput, 'env'>): void {
  const id = coordId(input.txid);
  if (ctx.actors.has(id)) return;
  start(ctx, enqueue, id, createActor(coordinatorMachine, { id, parent: ctx.self, input: Object.assign({}, input, { env: ctx.env }) }));
}

function spawnParticipant(
  ctx: TransactionsContext,
  enqueue: Enqueue,
  input: { txid: string; command: Command; coordinatorCluster: number; coordinator: NodeId; mode: ParticipantMode; seq?: number },
): void {
  const id = partId(input.txid);
  if (ctx.actors.has(id)) return;
  start(ctx, enqueue, id, createActor(participantMachine, { id, parent: ctx.self, input: Object.assign({}, input, { env: ctx.env }) }));
}

/** Messages between leaders; the sender leads its cluster, which is worth remembering. */
function onMessage(ctx: TransactionsContext, enqueue: Enqueue, envelope: EnvelopeProps): void {
  const { env } = ctx;
  const from = envelope.from ?? 0;
  if (envelope.txVote) {
    const v = envelope.txVote;
    tell(ctx, enqueue, coordId(v.txid ?? ''), { type: 'vote', prepared: !!v.prepared, reason: v.reason ?? '' });
    return;
  }
  if (envelope.txAck) {
    const txid = envelope.txAck.txid ?? '';
    if (tell(ctx, enqueue, coordId(txid), { type: 'ack' })) return;
    if (env.state.unacked.has(txid)) {
      env.record({ acked: { txid } });
      shareAck(env, txid);
    }
    return;
  }
  if (envelope.txDecision) {
    const d = envelope.txDecision;
    const txid = d.txid ?? '';
    if (tell(ctx, enqueue, partId(txid), { type: 'decision', commit: !!d.commit, from })) return;
    if (env.state.decisions.has(txid)) {
      sendToNode(env, from, { txAck: { txid } });
      return;
    }
    const wal = env.state.wal.get(txid);
    const base = { txid, command: d.command ?? {}, coordinatorCluster: d.coordinatorCluster ?? 0, coordinator: from };
    if (wal) {
      spawnParticipant(ctx, enqueue, { ...base, command: wal.command, mode: 'resume', seq: wal.seq });
      tell(ctx, enqueue, partId(txid), { type: 'decision', commit: !!d.commit, from });
    } else if (!d.commit) {
      // Never prepared here: order the abort, so a PREPARE still in flight cannot prepare it.
      spawnParticipant(ctx, enqueue, { ...base, mode: 'fence' });
    }
    return;
  }
  if (envelope.txQuery) {
    const q = envelope.txQuery;
    const txid = q.txid ?? '';
    if (tell(ctx, enqueue, coordId(txid), { type: 'queried' })) return;
    const participantCluster = q.participantCluster ?? clusterOf(env, q.command?.transfer?.receiver);
    const decided = env.state.decisions.get(txid);
    const wal = env.state.wal.get(txid);
    const base = { txid, command: q.command ?? {}, participantCluster };
    if (decided !== undefined) spawnCoordinator(ctx, enqueue, { ...base, mode: 'notify', commit: decided, reason: decided ? '' : 'aborted' });
    else if (wal && !hasDecisionEntry(env.state, txid)) {
      spawnCoordinator(ctx, enqueue, { ...base, command: wal.command, mode: 'resolve', seq: wal.seq, reason: 'coordinator changed' });
    } else if (!wal) spawnCoordinator(ctx, enqueue, { ...base, mode: 'fence' });
  }
}

/** What a new leader inherits from the log and nobody is handling yet. */
function adoptInDoubt(ctx: TransactionsContext, enqueue: Enqueue): void {
  const { env } = ctx;
  for (const w of env.state.wal.values()) {
    const t = w.command.transfer;
    if (w.role === 'coordinator') {
      if (ctx.actors.has(coordId(w.txid))) continue;
      // A decision already in the log (inherited in the NEW-VIEW) runs in its turn; never decide twice.
      if (hasDecisionEntry(env.state, w.txid)) continue;
      spawnCoordinator(ctx, enqueue, {
        txid: w.txid,
        command: w.command,
        participantCluster: clusterOf(env, t?.receiver),
        mode: 'resolve',
        seq: w.seq,
        reason: 'coordinator changed',
      });
    } else if (!ctx.actors.has(partId(w.txid))) {
      spawnParticipant(ctx, enqueue, {
        txid: w.txid,
        command: w.command,
        coordinatorCluster: clusterOf(env, t?.sender),
        coordinator: 0,
        mode: 'resume',
        seq: w.seq,
      });
    }
  }
  for (const u of env.state.unacked.values()) {
    if (ctx.actors.has(coordId(u.txid))) continue;
    spawnCoordinator(ctx, enqueue, {
      txid: u.txid,
      command: u.command,
      participantCluster: clusterOf(env, u.command.transfer?.receiver),
      mode: 'notify',
      commit: u.commit,
      reason: u.reason,
    });
  }
}

export const transactionsMachine = setup({
  types: {
    context: {} as TransactionsContext,
    events: {} as TransactionsEvent,
    input: {} as { env: NodeEnv },
  },
  actions: {
    escalate: ({ context, event }) => escalateChildError(context.env, event as never),
    coordinate: enqueueActions(({ context, event, enqueue }) => {
      const e = event as Extract<TransactionsEvent, { type: 'coordinate' }>;
      spawnCoordinator(context, enqueue, {
        txid: e.txid,
        command: e.command,
        participantCluster: clusterOf(context.env, e.command.transfer?.receiver),
        mode: 'start',
      });
    }),
    participate: enqueueActions(({ context, event, enqueue }) => {
      const e = event as Extract<TransactionsEvent, { type: 'participate' }>;
      if (tell(context, enqueue, partId(e.txid), { type: 'prepareAgain', from: e.from })) return;
      const wal = context.env.state.wal.get(e.txid);
      spawnParticipant(context, enqueue, {
        txid: e.txid,
        command: e.command,
        coordinatorCluster: e.coordinatorCluster,
        coordinator: e.from,
        mode: wal ? 'resume' : e.mode,
        seq: wal?.seq,
      });
    }),
    onMessage: enqueueActions(({ context, event, enqueue }) => {
      onMessage(context, enqueue, (event as Extract<TransactionsEvent, { type: 'message' }>).envelope);
    }),
    forwardExecuted: enqueueActions(({ context, event, enqueue }) => {
      const e = event as TxExecutedEvent;
      tell(context, enqueue, coordId(e.txid), e);
      tell(context, enqueue, partId(e.txid), e);
    }),
    finish: enqueueActions(({ context, event, enqueue }) => {
      const e = event as Extract<TransactionsEvent, { type: 'txDone' }>;
      const id = e.role === 'coordinator' ? coordId(e.txid) : partId(e.txid);
      // It is in a final state: XState has already stopped it and let go of it.
      if (!context.actors.delete(id)) return;
      for (const slot of context.wheel) if (slot.delete(id)) break;
    }),
    tick: enqueueActions(({ context, enqueue }) => {
      for (const id of slotOf(context, ++context.ticks)) tell(context, enqueue, id, { type: 'tick' });
      if (context.ticks % context.env.tuning.txRetryTicks === 0 && context.env.view.role === 'leader') {
        adoptInDoubt(context, enqueue);
      }
    }),
    stopAll: enqueueActions(({ context, enqueue }) => {
      for (const id of context.actors.keys()) tell(context, enqueue, id, { type: 'drop' });
      context.actors = new Map();
      context.wheel = [];
    }),
  },
}).createMachine({
  id: 'transactions',
  context: ({ input, self }) => ({ env: input.env, actors: new Map(), self, ticks: 0, wheel: [] }),
  on: {
    coordinate: { actions: 'coordinate' },
    participate: { actions: 'participate' },
    message: { actions: 'onMessage' },
    txExecuted: { actions: 'forwardExecuted' },
    txDone: { actions: 'finish' },
    tick: { actions: 'tick' },
    reset: { actions: 'stopAll' },
    'xstate.error.actor.*': { actions: 'escalate' },
  },
});

export const TX_STATUS = shardbank.Status;
