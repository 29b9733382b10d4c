/**
 * Keeps one coordinator or participant actor per cross-shard transaction in
 * flight at this leader: spawns it with an explicit id (`c:<txid>`,
 * `p:<txid>`), routes the transaction's messages and executions to it, and
 * lets go of it when it is done (a final state; XState has stopped it then).
 * When the leader steps down, the actors still running are dropped: sent
 * `drop`, they go to a final state that does nothing.
 *
 * It is also their way out: it addresses their messages to other clusters'
 * leaders (it learns who leads from the 2PC messages it gets), carries out
 * their records, answers for them, and tells the election which decisions
 * were acknowledged (the followers hear it on the next heartbeats).
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
import { assign, createActor, setup, type AnyActorRef } from 'xstate';
import { shardbank, type Command, type EnvelopeProps, type NodeId } from '../protocol/messages.js';
import { clusterNodes, clusterOfNode } from '../protocol/topology.js';
import { hasDecisionEntry, ownerOf, type Ownership, type TxRole } from '../store/state.js';
import { coordinatorMachine, type CoordinatorInput } from './coordinator.js';
import { addressed, record, send, type Effect, type Emitted } from './effects.js';
import { ticksOf, type CoordinatorEvent, type ParticipantEvent, type TickEvent, type TransactionsEvent, type TxExecutedEvent, type TxOutEvent, type ViewEvent } from './events.js';
import { post, tell } from './mail.js';
import { escalate } from './fault.js';
import { ACTOR, NO_VIEW, type ActorInput, type View } from './node-info.js';
import { participantMachine, type ParticipantInput } from './participant.js';
import { replyTo } from './replies.js';
import { txRole, txSide } from './transfer.js';
import { act } from './act.js';

/**
 * `actors` and `wheel` change in place, when the step's actions run (they
 * hold actor references; a thousand transactions may be in flight). The
 * actors are not XState children: XState copies a parent's whole children
 * object on every spawn and stop, which with a thousand transactions in
 * flight cost more than the transactions. Created with this actor as parent,
 * they share the node's system (inspection sees them) and report errors here
 * all the same.
 */
export interface TransactionsContext extends ActorInput {
  view: View;
  actors: Map<string, AnyActorRef>;
  self: AnyActorRef;
  ticks: number;
  /** Actor ids by slot: slot k ticks at node ticks that are k modulo txRetryTicks. */
  wheel: Set<string>[];
  /** Who this node believes leads each other cluster (2PC talks leader to leader). */
  leaders: ReadonlyMap<number, NodeId>;
  /** Where other clusters said items went (`moved` answers), newer than this node's log knows. */
  hints: ReadonlyMap<number, Ownership>;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Enqueue = any;

/** One step: what it spawns is started when its actions run, so it remembers what it already decided to spawn. */
interface Step {
  enqueue: Enqueue;
  ctx: TransactionsContext;
  spawned: Set<string>;
}

const coordId = (txid: string) => `c:${txid}`;
const partId = (txid: string) => `p:${txid}`;

/**
 * The other cluster of a transaction this one plays `role` in: a move names
 * it, and so does a participant's copy of a transfer (its coordinator); else
 * it is the other item's owner as this node knows it, from its own log or,
 * newer, from a `moved` answer.
 */
function otherCluster(ctx: TransactionsContext, command: Command, role: TxRole): number {
  if (command.move) return txSide(ctx, command, role).theirs ?? 0;
  const t = command.transfer;
  // A participant's WAL names its coordinator (the PREPARE did): the sender may have moved since.
  if (role === 'participant' && t?.coordinatorCluster) return t.coordinatorCluster;
  const item = (role === 'coordinator' ? t?.receiver : t?.sender) ?? 0;
  const known = ownerOf(ctx.info.topology, ctx.state, item);
  const hint = ctx.hints.get(item);
  return (hint && hint.version > (known?.version ?? -1) ? hint.cluster : known?.cluster) ?? 0;
}

/** A `moved` answer: remember where the item went, unless this node knows a newer owner. */
function noteOwner(step: Step, moved: { item?: number | null; cluster?: number | null; version?: number | null }): void {
  const { ctx } = step;
  const item = moved.item ?? 0;
  const version = moved.version ?? 0;
  if ((ctx.hints.get(item)?.version ?? -1) >= version) return;
  step.enqueue.assign({ hints: new Map(ctx.hints).set(item, { cluster: moved.cluster ?? 0, version }) });
}

function has(step: Step, id: string): boolean {
  return step.ctx.actors.has(id) || step.spawned.has(id);
}

function slotOf(ctx: TransactionsContext, ticks: number): Set<string> {
  const period = ctx.info.tuning.txRetryTicks;
  while (ctx.wheel.length < period) ctx.wheel.push(new Set());
  return ctx.wheel[ticks % period]!;
}

/**
 * Ticks until the transactions actor acts on one: the next tick of a live
 * coordinator's or participant's slot, or the next look for transactions
 * left in doubt (every `txRetryTicks`, at a leader whose log holds a
 * before-image or an unacknowledged decision: with neither there is nothing
 * to look for).
 */
export function transactionsDue(ctx: TransactionsContext): number {
  const period = ctx.info.tuning.txRetryTicks;
  const inDoubt = ctx.state.wal.size > 0 || ctx.state.unacked.size > 0;
  let due = ctx.view.role === 'leader' && inDoubt ? period - (ctx.ticks % period) : Infinity;
  if (ctx.actors.size === 0) return due;
  for (let k = 1; k < due && k <= period; k++) {
    if ((ctx.wheel[(ctx.ticks + k) % period]?.size ?? 0) > 0) return k;
  }
  return due;
}

function start(step: Step, id: string, create: (parent: AnyActorRef) => AnyActorRef): void {
  if (has(step, id)) return;
  step.spawned.add(id);
  const { ctx } = step;
  step.enqueue(() => {
    const ref = create(ctx.self);
    ctx.actors.set(id, ref);
    slotOf(ctx, ctx.ticks).add(id);
    ref.start();
  });
}

/** Passes an event to a live transaction actor; false if there is none by that id. */
function pass(step: Step, id: string, event: CoordinatorEvent | ParticipantEvent): boolean {
  if (!has(step, id)) return false;
  const { ctx } = step;
  step.enqueue(() => ctx.actors.get(id)?.send(event));
  return true;
}

/** Stops a transaction actor and forgets it. */
function forget(step: Step, id: string): void {
  if (!pass(step, id, { type: 'drop' })) return;
  const { ctx } = step;
  step.enqueue(() => {
    ctx.actors.delete(id);
    for (const slot of ctx.wheel) if (slot.delete(id)) break;
  });
}

function spawnCoordinator(step: Step, input: Omit<CoordinatorInput, 'info' | 'state'>): void {
  const { info, state } = step.ctx;
  const id = coordId(input.txid);
  start(step, id, (parent) => createActor(coordinatorMachine, { id, parent, input: Object.assign({ info, state }, input) }));
}

function spawnParticipant(step: Step, input: Omit<ParticipantInput, 'info' | 'state'>): void {
  const { info, state } = step.ctx;
  const id = partId(input.txid);
  start(step, id, (parent) => createActor(participantMachine, { id, parent, input: Object.assign({ info, state }, input) }));
}

/** Only leaders send 2PC messages, so their sender leads its cluster. */
function noteLeader(step: Step, from: NodeId): void {
  const { ctx } = step;
  if (!from) return;
  const cluster = clusterOfNode(ctx.info.topology, from);
  if (ctx.leaders.get(cluster) === from) return;
  step.enqueue.assign({ leaders: new Map(ctx.leaders).set(cluster, from) });
}

/**
 * To another cluster's believed leader, or to all its nodes.
 *
 * A decision addressed to this very cluster means the receiver has since
 * moved here, and the participant's part is settled: its item could only
 * leave it once no prepare held it (a move-out waits for the item's locks),
 * and a late PREPARE there is answered "moved". So it counts as acknowledged;
 * sent, this cluster's nodes would drop it and the coordinator resend it for ever.
 */
function out(step: Step, e: TxOutEvent): void {
  const { info, leaders } = step.ctx;
  if (e.cluster === info.cluster) {
    if (e.body.txDecision) pass(step, coordId(e.body.txDecision.txid ?? ''), { type: 'ack' });
    return;
  }
  const members = clusterNodes(info.topology, e.cluster);
  const leader = leaders.get(e.cluster) ?? members[0]!;
  for (const node of e.everyone ? members : [leader]) step.enqueue.emit(send(addressed(info.self, node, e.body)));
}

/** The participant acknowledged a decision: forget it, and tell the followers. */
function acked(step: Step, txid: string): void {
  step.enqueue.emit(record({ acked: { txid } }));
  post(step.enqueue, [tell(ACTOR.election, { type: 'shareAcks', txids: [txid] })]);
}

/** Acknowledges a decision to the coordinator leader that sent it. */
function ackTo(step: Step, coordinator: NodeId, txid: string): void {
  step.enqueue.emit(send(addressed(step.ctx.info.self, coordinator, { txAck: { txid } })));
}

/** Messages between leaders. */
function onMessage(step: Step, envelope: EnvelopeProps): void {
  const { ctx, enqueue } = step;
  const { state, info } = ctx;
  const from = envelope.from ?? 0;
  noteLeader(step, from);
  if (envelope.txVote) {
    const v = envelope.txVote;
    if (v.moved) noteOwner(step, v.moved);
    const moved = v.moved ? { item: v.moved.item ?? 0, cluster: v.moved.cluster ?? 0, version: v.moved.version ?? 0 } : undefined;
    pass(step, coordId(v.txid ?? ''), { type: 'vote', prepared: !!v.prepared, reason: v.reason ?? '', seq: v.seq ?? 0, moved });
    return;
  }
  if (envelope.txAck) {
    const txid = envelope.txAck.txid ?? '';
    if (pass(step, coordId(txid), { type: 'ack' })) return;
    if (state.unacked.has(txid)) acked(step, txid);
    return;
  }
  // Only a leader starts 2PC actors: one started by a candidate would propose to a proposer
  // that is not leading, lose its entry, and outlive into the node's next leadership, waiting
  // for ever (its transaction's later messages go to it, and adoption skips it).
  const leading = ctx.view.role === 'leader';
  if (envelope.txDecision) {
    const d = envelope.txDecision;
    const txid = d.txid ?? '';
    const wal = state.wal.get(txid);
    // Nothing prepared here and the transfer is not this cluster's to take part in any more (an
    // item moved): nothing to undo, and no entry runs here under this txid, so an actor waiting
    // for one never would finish. Acknowledge, and let it go.
    if (!wal && !state.decisions.has(txid) && txRole(ctx, d.command ?? {}) !== 'participant') {
      forget(step, partId(txid));
      ackTo(step, from, txid);
      return;
    }
    if (pass(step, partId(txid), { type: 'decision', commit: !!d.commit, from })) return;
    if (state.decisions.has(txid)) {
      ackTo(step, from, txid);
      return;
    }
    // A COMMIT, and nothing prepared or decided here: the credit ran in the cluster that owned the
    // receiver then, which voted PREPARED; the receiver has moved here since, and a new leader of
    // the coordinator's cluster names the participant from today's owner. Nothing to apply here:
    // acknowledge, or it is resent for ever. (Were this cluster's prepare only not yet executed,
    // its participant asks the coordinator once it has, and hears the decision then.)
    if (d.commit && !wal && leading) {
      ackTo(step, from, txid);
      return;
    }
    const base = { txid, command: d.command ?? {}, coordinatorCluster: d.coordinatorCluster ?? 0, coordinator: from };
    if (wal) {
      if (!leading) return;
      spawnParticipant(step, Object.assign(base, { command: wal.command, mode: 'resume' as const, seq: wal.seq }));
      pass(step, partId(txid), { type: 'decision', commit: !!d.commit, from });
    } else if (!d.commit && d.command?.transfer && txRole(ctx, d.command) !== 'participant') {
      // Never prepared here, and the receiver has moved away: a PREPARE still in flight is
      // answered "moved", so there is nothing to fence (an abort entry here would run as
      // another cluster's transfer and never finish). Acknowledged at once.
      ackTo(step, from, txid);
    } else if (!d.commit && leading && ctx.view.quorum) {
      // Never prepared here: order the abort, so a PREPARE still in flight cannot prepare it.
      spawnParticipant(step, Object.assign(base, { mode: 'fence' as const }));
    } else if (!d.commit && leading) {
      // Without a majority no fence could commit, and no PREPARE can prepare here either
      // (it is refused); one that comes later, and prepares, asks the coordinator, who says abort.
      ackTo(step, from, txid);
    }
    return;
  }
  if (envelope.txQuery) {
    const q = envelope.txQuery;
    const txid = q.txid ?? '';
    if (pass(step, coordId(txid), { type: 'queried' })) return;
    if (!leading) return;
    const participantCluster = q.participantCluster || otherCluster(ctx, q.command ?? {}, 'coordinator');
    const decided = state.decisions.get(txid);
    const wal = state.wal.get(txid);
    const base = { txid, command: q.command ?? {}, participantCluster };
    if (decided !== undefined) spawnCoordinator(step, Object.assign(base, { mode: 'notify' as const, commit: decided, reason: decided ? '' : 'aborted' }));
    else if (wal && !hasDecisionEntry(state, txid)) {
      spawnCoordinator(step, Object.assign(base, { command: wal.command, mode: 'resolve' as const, seq: wal.seq, reason: 'coordinator changed' }));
    } else if (!wal) spawnCoordinator(step, Object.assign(base, { mode: 'fence' as const }));
  }
}

/** What a new leader inherits from the log and nobody is handling yet. */
function adoptInDoubt(step: Step): void {
  const { state } = step.ctx;
  for (const w of state.wal.values()) {
    const t = w.command.transfer;
    if (w.role === 'coordinator') {
      // A decision already in the log (inherited in the NEW-VIEW) runs in its turn; never decide twice.
      if (hasDecisionEntry(state, w.txid)) continue;
      spawnCoordinator(step, {
        txid: w.txid,
        command: w.command,
        participantCluster: otherCluster(step.ctx, w.command, 'coordinator'),
        mode: 'resolve',
        seq: w.seq,
        reason: 'coordinator changed',
      });
    } else {
      spawnParticipant(step, {
        txid: w.txid,
        command: w.command,
        coordinatorCluster: otherCluster(step.ctx, w.command, 'participant'),
        coordinator: 0,
        mode: 'resume',
        seq: w.seq,
      });
    }
  }
  for (const u of state.unacked.values()) {
    spawnCoordinator(step, {
      txid: u.txid,
      command: u.command,
      participantCluster: otherCluster(step.ctx, u.command, 'coordinator'),
      mode: 'notify',
      commit: u.commit,
      reason: u.reason,
    });
  }
}

function newStep(enqueue: Enqueue, ctx: TransactionsContext): Step {
  return { enqueue, ctx, spawned: new Set() };
}

export const transactionsMachine = setup({
  types: {
    context: {} as TransactionsContext,
    events: {} as TransactionsEvent,
    input: {} as ActorInput,
    emitted: {} as Emitted,
  },
  actions: {
    escalate,
    coordinate: act(({ context, event, enqueue }) => {
      // Admitted just before this node stopped leading: nothing to run it with (see onMessage).
      if (context.view.role !== 'leader') return;
      const step = newStep(enqueue, context);
      const e = event as Extract<TransactionsEvent, { type: 'coordinate' }>;
      spawnCoordinator(step, { txid: e.txid, command: e.command, participantCluster: otherCluster(step.ctx, e.command, 'coordinator'), mode: 'start' });
    }),
    participate: act(({ context, event, enqueue }) => {
      const step = newStep(enqueue, context);
      const e = event as Extract<TransactionsEvent, { type: 'participate' }>;
      noteLeader(step, e.from);
      if (pass(step, partId(e.txid), { type: 'prepareAgain', from: e.from })) return;
      if (context.view.role !== 'leader') return;
      const wal = step.ctx.state.wal.get(e.txid);
      spawnParticipant(step, {
        txid: e.txid,
        command: e.command,
        coordinatorCluster: e.coordinatorCluster,
        coordinator: e.from,
        mode: wal ? 'resume' : e.mode,
        seq: wal?.seq,
      });
    }),
    onMessage: act(({ context, event, enqueue }) => onMessage(newStep(enqueue, context), (event as Extract<TransactionsEvent, { type: 'message' }>).envelope)),
    forwardExecuted: act(({ context, event, enqueue }) => {
      const step = newStep(enqueue, context);
      const e = event as TxExecutedEvent;
      pass(step, coordId(e.txid), e);
      pass(step, partId(e.txid), e);
    }),
    out: act(({ context, event, enqueue }) => out(newStep(enqueue, context), event as TxOutEvent)),
    carryOut: act(({ event, enqueue }) => {
      for (const effect of (event as Extract<TransactionsEvent, { type: 'effects' }>).effects) enqueue.emit(effect);
    }),
    acked: act(({ context, event, enqueue }) => acked(newStep(enqueue, context), (event as Extract<TransactionsEvent, { type: 'acked' }>).txid)),
    reply: act(({ context, event, enqueue }) => {
      const e = event as Extract<TransactionsEvent, { type: 'reply' }>;
      if (context.view.role !== 'leader') return;
      for (const s of replyTo(context.info.self, context.view, e.command, e.reply)) enqueue.emit(s);
    }),
    finish: act(({ context, event, enqueue }) => {
      const e = event as Extract<TransactionsEvent, { type: 'txDone' }>;
      const id = e.role === 'coordinator' ? coordId(e.txid) : partId(e.txid);
      // It is in a final state: XState has already stopped it and let go of it.
      enqueue(() => {
        if (!context.actors.delete(id)) return;
        for (const slot of context.wheel) if (slot.delete(id)) break;
      });
    }),
    tick: act(({ context, event, enqueue }) => {
      const step = newStep(enqueue, context);
      const ctx = context;
      const period = ctx.info.tuning.txRetryTicks;
      const ticks = ctx.ticks + ticksOf(event as TickEvent);
      enqueue.assign({ ticks });
      for (let t = Math.max(ctx.ticks + 1, ticks - period + 1); t <= ticks; t++) for (const id of slotOf(ctx, t)) pass(step, id, { type: 'tick' });
      if (Math.floor(ticks / period) > Math.floor(ctx.ticks / period) && ctx.view.role === 'leader') adoptInDoubt(step);
    }),
    dropAll: act(({ context, enqueue }) => {
      const step = newStep(enqueue, context);
      const ctx = context;
      for (const id of ctx.actors.keys()) pass(step, id, { type: 'drop' });
      enqueue(() => {
        ctx.actors.clear();
        ctx.wheel.length = 0;
      });
    }),
    noteView: assign({ view: ({ event }) => (event as ViewEvent).view }),
  },
}).createMachine({
  id: 'transactions',
  context: ({ input, self }) => ({
    info: input.info,
    state: input.state,
    view: NO_VIEW,
    actors: new Map(),
    self,
    ticks: 0,
    wheel: [],
    leaders: new Map(),
    hints: new Map(),
  }),
  on: {
    coordinate: { actions: 'coordinate' },
    participate: { actions: 'participate' },
    message: { actions: 'onMessage' },
    txExecuted: { actions: 'forwardExecuted' },
    out: { actions: 'out' },
    effects: { actions: 'carryOut' },
    acked: { actions: 'acked' },
    reply: { actions: 'reply' },
    txDone: { actions: 'finish' },
    tick: { actions: 'tick' },
    reset: { actions: 'dropAll' },
    view: { actions: 'noteView' },
    'xstate.error.actor.*': { actions: 'escalate' },
  },
});
