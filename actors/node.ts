/**
 * The root of a node's actor hierarchy.
 *
 * It spawns the election, acceptor, proposer, executor, lock manager and
 * transactions actors with fixed ids, passes the node's logical clock to
 * them (ticks of `tickMs`, which the core delivers: see `ticksUntilDue`),
 * and routes each wire message to the actors it concerns. A failed node
 * behaves as disconnected: it takes no message, sends nothing, and its clock
 * stops until it recovers.
 */
import { assign, setup, spawnChild, type Actor, type ActorRefFrom, type AnyStateMachine } from 'xstate';
import { bodyOf, compareBallots, requestId, shardbank, type Ballot, type Command, type EnvelopeProps, type NodeId } from '../protocol/messages.js';
import { clusterOfNode } from '../protocol/topology.js';
import { acceptorDue, acceptorMachine } from './acceptor.js';
import { record, send, type Effect, type SendEffect, type Emitted } from './effects.js';
import { electionDue, electionMachine } from './election.js';
import { ticksOf, type NodeEvent, type TickEvent } from './events.js';
import { executorMachine } from './executor.js';
import { escalate } from './fault.js';
import { lockManagerDue, lockManagerMachine } from './lockManager.js';
import { post, tell } from './mail.js';
import { ACTOR, NO_VIEW, type ActorInput, type View } from './node-info.js';
import { proposerDue, proposerMachine } from './proposer.js';
import type { Tell } from './events.js';
import { failReply } from './replies.js';
import { txRole, txSide } from './transfer.js';
import { transactionsDue, transactionsMachine } from './transactions.js';
import { readsDue } from './reads.js';
import { act } from './act.js';

export interface NodeContext extends ActorInput {
  /** Who leads, as the election last said. */
  view: View;
}

const PAXOS_BODIES = new Set(['prepare', 'promise', 'nack', 'preVote', 'preVoteReply', 'accept', 'accepted', 'commit', 'newView', 'heartbeat', 'heartbeatAck', 'catchupRequest', 'catchupReply']);
const TX_BODIES = new Set(['txPrepare', 'txVote', 'txDecision', 'txAck', 'txQuery']);

/**
 * Paxos runs among the nodes of one cluster and 2PC between nodes of
 * different clusters. A message from anyone else (an unknown id, 0, itself)
 * is noise however well formed: taken, it could commit a log entry no leader
 * proposed.
 */
function fromWhereItBelongs(ctx: NodeContext, body: string, from: NodeId): boolean {
  const { info } = ctx;
  if (PAXOS_BODIES.has(body)) return info.peers.includes(from);
  if (TX_BODIES.has(body)) {
    return info.topology.nodes.some((n) => n.id === from) && clusterOfNode(info.topology, from) !== info.cluster;
  }
  return true;
}

/**
 * A 2PC message names its transaction the way every real sender does: the
 * txid is the command's request id, the command is a cross-shard transfer in
 * which this cluster plays `role`, and the other cluster is the sender's.
 * Otherwise the actor it starts would wait for an entry that never runs here
 * under that txid, and stay forever.
 *
 * Ownership moves, so a cluster that no longer plays its role in a transfer
 * still hears about it: a PREPARE for a receiver that moved out of here (it
 * is answered where the receiver went), a decision (acknowledged: nothing was
 * prepared here; a coordinator resends it until someone does), a query
 * naming this cluster as the coordinator (the sender may have moved on once
 * it decided), and any message about a transaction this cluster prepared or
 * decided (its WAL or decision says what to answer).
 */
function txConsistent(
  ctx: NodeContext,
  from: NodeId,
  kind: 'prepare' | 'decision' | 'query',
  role: 'coordinator' | 'participant',
  txid: string | null | undefined,
  command: Command | null | undefined,
  otherCluster: number | null | undefined,
): boolean {
  if (!command || (!command.transfer && !command.move) || txid !== requestId(command)) return false;
  const { topology, cluster } = ctx.info;
  const sender = clusterOfNode(topology, from);
  if (sender === cluster || sender !== otherCluster) return false;
  if (txRole(ctx, command) !== role) {
    if (command.move) return false;
    return tookPart(ctx, txid) || kind === 'decision' || (kind === 'prepare' && receiverMovedOut(ctx, command)) || (kind === 'query' && command.transfer?.coordinatorCluster === cluster);
  }
  // A move names both clusters; a transfer's other item may have moved where this cluster cannot see.
  return !command.move || txSide(ctx, command, role).theirs === sender;
}

/** This cluster prepared or decided the transaction. */
function tookPart(ctx: NodeContext, txid: string): boolean {
  return ctx.state.wal.has(txid) || ctx.state.decisions.has(txid);
}

/** A transfer's receiver was this cluster's and a move took it elsewhere. */
function receiverMovedOut(ctx: NodeContext, command: Command): boolean {
  const receiver = command.transfer?.receiver ?? 0;
  const owner = ctx.state.owners.get(receiver);
  return owner !== undefined && owner.cluster !== ctx.info.cluster;
}

function txMakesSense(ctx: NodeContext, envelope: EnvelopeProps, from: NodeId): boolean {
  const { txPrepare: p, txDecision: d, txQuery: q } = envelope;
  if (p) return txConsistent(ctx, from, 'prepare', 'participant', p.txid, p.command, p.coordinatorCluster);
  if (d) return txConsistent(ctx, from, 'decision', 'participant', d.txid, d.command, d.coordinatorCluster);
  if (q) return txConsistent(ctx, from, 'query', 'coordinator', q.txid, q.command, q.participantCluster);
  return true;
}

/**
 * Who hears a message; `contact` tells the election a leader is alive. A
 * follower relays a client request (`sends`). `told` holds the contacts
 * already told in this turn, by sender: the same contact again (an ACCEPT
 * and a COMMIT of one leader in one turn) would tell the election nothing new.
 */
export function routeMessage(ctx: NodeContext, envelope: EnvelopeProps, tells: Tell[], sends: SendEffect[], told?: Map<NodeId, Ballot>): void {
  const from = envelope.from ?? 0;
  const body = bodyOf(envelope);
  if (!body) return;
  if (!fromWhereItBelongs(ctx, body, from)) return;
  if (TX_BODIES.has(body) && !txMakesSense(ctx, envelope, from)) return;
  const contact = (ballot: Ballot | null | undefined, nextIn?: number) => {
    if (compareBallots(ballot, ctx.state.promised) < 0) return;
    const b = ballot ?? { round: 0, node: 0 };
    const before = told?.get(from);
    // A heartbeat's `nextIn` is news even after an ACCEPT of the same leader in this turn.
    if (before && compareBallots(before, b) === 0 && nextIn === undefined) return;
    told?.set(from, b);
    tells.push(tell(ACTOR.election, nextIn === undefined ? { type: 'contact', from, ballot: b } : { type: 'contact', from, ballot: b, nextIn }));
  };
  switch (body) {
    case 'request':
      routeRequest(ctx, envelope, tells, sends);
      return;
    case 'prepare':
      tells.push(tell(ACTOR.election, { type: 'prepare', from, msg: envelope.prepare! }));
      return;
    case 'promise':
      tells.push(tell(ACTOR.election, { type: 'promise', from, msg: envelope.promise! }));
      return;
    case 'nack':
      tells.push(tell(ACTOR.election, { type: 'nack', from, msg: envelope.nack! }));
      return;
    case 'accept':
      tells.push(tell(ACTOR.acceptor, { type: 'accept', from, msg: envelope.accept! }));
      contact(envelope.accept!.ballot);
      return;
    case 'newView':
      tells.push(tell(ACTOR.acceptor, { type: 'newView', from, msg: envelope.newView! }));
      contact(envelope.newView!.ballot);
      return;
    case 'commit':
      tells.push(tell(ACTOR.acceptor, { type: 'commit', from, msg: envelope.commit! }));
      contact(envelope.commit!.ballot);
      return;
    case 'heartbeat':
      contact(envelope.heartbeat!.ballot, envelope.heartbeat!.nextIn ?? 0);
      tells.push(tell(ACTOR.acceptor, { type: 'heartbeat', from, msg: envelope.heartbeat! }));
      return;
    case 'accepted':
      tells.push(tell(ACTOR.proposer, { type: 'accepted', from, msg: envelope.accepted! }));
      return;
    case 'heartbeatAck':
      tells.push(tell(ACTOR.election, { type: 'heartbeatAck', from, msg: envelope.heartbeatAck! }));
      return;
    case 'preVote':
      tells.push(tell(ACTOR.election, { type: 'preVote', from, msg: envelope.preVote! }));
      return;
    case 'preVoteReply':
      tells.push(tell(ACTOR.election, { type: 'preVoteReply', from, msg: envelope.preVoteReply! }));
      return;
    case 'catchupRequest':
      tells.push(tell(ACTOR.acceptor, { type: 'catchupRequest', from, msg: envelope.catchupRequest! }));
      return;
    case 'catchupReply':
      tells.push(tell(ACTOR.acceptor, { type: 'catchupReply', from, msg: envelope.catchupReply! }));
      return;
    // 2PC runs leader to leader; the others drop it (senders retry to the whole cluster).
    case 'txPrepare': {
      const p = envelope.txPrepare!;
      if (ctx.view.role !== 'leader' || !p.command) return;
      tells.push(tell(ACTOR.lockManager, { type: 'txPrepare', command: p.command, from, coordinatorCluster: p.coordinatorCluster ?? 0 }));
      return;
    }
    case 'txVote':
    case 'txDecision':
    case 'txAck':
    case 'txQuery':
      if (ctx.view.role !== 'leader') return;
      tells.push(tell(ACTOR.transactions, { type: 'message', envelope }));
      return;
    default:
      return;
  }
}

/** The leader orders transfers and answers reads; a follower relays to its leader. */
function routeRequest(ctx: NodeContext, envelope: EnvelopeProps, tells: Tell[], sends: SendEffect[]): void {
  const command = envelope.request?.command;
  if (!command) return;
  const { view, info } = ctx;
  // Any replica answers a session or `any` read; the rest is the leader's.
  const anyReplica = command.read && (command.read.consistency === shardbank.Consistency.SESSION || command.read.consistency === shardbank.Consistency.ANY);
  if (view.role === 'leader' || anyReplica) {
    if (command.read) tells.push(tell(ACTOR.executor, { type: 'read', commands: [command] }));
    else tells.push(tell(ACTOR.lockManager, { type: 'admit', commands: [command] }));
    return;
  }
  if (view.leader && view.leader !== info.self && !envelope.request?.relayedBy) {
    sends.push(send({ from: info.self, to: view.leader, request: { command, relayedBy: info.self } }));
  }
}

const children: [string, AnyStateMachine][] = [
  [ACTOR.election, electionMachine],
  [ACTOR.acceptor, acceptorMachine],
  [ACTOR.proposer, proposerMachine],
  [ACTOR.executor, executorMachine],
  [ACTOR.lockManager, lockManagerMachine],
  [ACTOR.transactions, transactionsMachine],
];

export const nodeMachine = setup({
  types: {
    context: {} as NodeContext,
    events: {} as NodeEvent,
    input: {} as ActorInput & { failed?: boolean },
    emitted: {} as Emitted,
  },
  guards: {
    startsFailed: ({ context }) => context.state.failed,
  },
  actions: {
    /** A child that throws is stopped by XState without a word; the node must not go on without it. */
    escalate,
    noteView: assign({ view: ({ event }) => (event as Extract<NodeEvent, { type: 'view' }>).view }),
    route: act(({ context, event, enqueue }) => {
      const tells: Tell[] = [];
      const sends: SendEffect[] = [];
      const told = new Map<NodeId, Ballot>();
      let relayedHere = false;
      for (const envelope of (event as Extract<NodeEvent, { type: 'messages' }>).envelopes) {
        routeMessage(context, envelope, tells, sends, told);
        if (envelope.request?.relayedBy) relayedHere = true;
      }
      for (const s of sends) enqueue.emit(s);
      // A follower relayed requests (their client had no answer in time), or a leader got them
      // relayed: the follower gives its leader a normal timeout from now, however quiet it was,
      // and the leader heartbeats at once, whether or not the requests lead to entries.
      if (sends.length > 0 || (relayedHere && context.view.role === 'leader')) tells.push(tell(ACTOR.election, { type: 'asked' }));
      post(enqueue, tells);
    }),
    // Only a leader proposes, keeps transactions and parks requests: the other
    // nodes' proposer, transactions and lock manager have nothing to time.
    tickChildren: act(({ context, event, enqueue }) => {
      const tick: TickEvent = { type: 'tick', n: ticksOf(event as TickEvent) };
      // The executor times out the reads waiting at any replica.
      const tells: Tell[] = [tell(ACTOR.election, tick), tell(ACTOR.acceptor, tick), tell(ACTOR.executor, tick)];
      if (context.view.role === 'leader') tells.push(tell(ACTOR.proposer, tick), tell(ACTOR.transactions, tick), tell(ACTOR.lockManager, tick));
      post(enqueue, tells);
    }),
    /** An operator's move goes to the lock manager at the leader; anywhere else its client hears who leads. */
    move: act(({ context, event, enqueue }) => {
      const { command } = event as Extract<NodeEvent, { type: 'move' }>;
      if (context.view.role === 'leader') post(enqueue, [tell(ACTOR.lockManager, { type: 'move', command })]);
      else for (const s of failReply(context.info.self, context.view, command, 'not the leader')) enqueue.emit(s);
    }),
    endTurn: act(({ context, enqueue }) => {
      const tells: Tell[] = [];
      if (context.view.role === 'leader') tells.push(tell(ACTOR.proposer, { type: 'endOfTurn' }));
      if (context.state.commitThrough > context.state.executedThrough) tells.push(tell(ACTOR.executor, { type: 'execute' }));
      post(enqueue, tells);
    }),
    recordFailed: act(({ enqueue }) => enqueue.emit(record({ failed: {} }))),
    recordRecovered: act(({ enqueue }) => {
      enqueue.emit(record({ recovered: {} }));
      post(enqueue, [tell(ACTOR.election, { type: 'recovered' }), tell(ACTOR.acceptor, { type: 'recovered' })]);
    }),
    startSet: act(({ context, event, enqueue }) => {
      const e = event as Extract<NodeEvent, { type: 'flush' }>;
      const historyWindow = context.info.tuning.reshardWindow;
      enqueue.emit(record({ flushed: { initialBalance: e.initialBalance, leader: e.leader, set: e.set, ballot: { round: 1, node: e.leader }, historyWindow } }));
      post(enqueue, [
        tell(ACTOR.proposer, { type: 'reset' }),
        tell(ACTOR.lockManager, { type: 'reset' }),
        tell(ACTOR.transactions, { type: 'reset' }),
        tell(ACTOR.election, { type: 'flushed', leader: e.leader }),
      ]);
    }),
  },
}).createMachine({
  id: 'node',
  context: ({ input }) => ({ info: input.info, state: input.state, view: NO_VIEW }),
  entry: children.map(([id, machine]) =>
    spawnChild(machine as never, { id, systemId: id, input: ({ context }: { context: NodeContext }) => ({ info: context.info, state: context.state }) } as never),
  ),
  initial: 'booting',
  on: {
    flush: { target: '.live', actions: 'startSet' },
    view: { actions: 'noteView' },
    'xstate.error.actor.*': { actions: 'escalate' },
  },
  states: {
    booting: {
      always: [{ guard: 'startsFailed', target: 'failed' }, { target: 'live' }],
    },
    live: {
      on: {
        messages: { actions: 'route' },
        move: { actions: 'move' },
        tick: { actions: 'tickChildren' },
        endOfTurn: { actions: 'endTurn' },
        fail: { target: 'failed', actions: 'recordFailed' },
      },
    },
    failed: {
      on: {
        recover: { target: 'live', actions: 'recordRecovered' },
        // Work already committed before the failure still executes locally.
        endOfTurn: { actions: 'endTurn' },
      },
    },
  },
});

/**
 * Ticks from now until the first tick some actor of the node acts on
 * (Infinity: none): a timeout, a heartbeat, a retry, a read's or a parked
 * request's wait. The ticks before it only move the actors' counters, so
 * the core need not wake the node for them: it delivers them with that
 * tick, as one event of `n` ticks. A failed node's clock is stopped.
 */
export function ticksUntilDue(root: Actor<typeof nodeMachine>): number {
  const snapshot = root.getSnapshot();
  if (snapshot.value !== 'live') return Infinity;
  const { system } = root;
  const election = (system.get(ACTOR.election) as ActorRefFrom<typeof electionMachine>).getSnapshot();
  const acceptor = (system.get(ACTOR.acceptor) as ActorRefFrom<typeof acceptorMachine>).getSnapshot();
  const executor = (system.get(ACTOR.executor) as ActorRefFrom<typeof executorMachine>).getSnapshot();
  let due = Math.min(
    electionDue(election.context, election.value === 'leader'),
    acceptorDue(acceptor.context, acceptor.value === 'catchingUp'),
    readsDue(executor.context.reads),
  );
  // Only a leader's proposer, lock manager and transactions hear ticks (tickChildren).
  if (snapshot.context.view.role === 'leader') {
    const proposer = (system.get(ACTOR.proposer) as ActorRefFrom<typeof proposerMachine>).getSnapshot();
    const lockManager = (system.get(ACTOR.lockManager) as ActorRefFrom<typeof lockManagerMachine>).getSnapshot();
    const transactions = (system.get(ACTOR.transactions) as ActorRefFrom<typeof transactionsMachine>).getSnapshot();
    const quiet = proposer.matches('idle') || proposer.matches({ leading: 'quiet' });
    due = Math.min(
      due,
      proposerDue(proposer.context, quiet),
      lockManagerDue(lockManager.context, lockManager.value as string),
      transactionsDue(transactions.context),
    );
  }
  return due;
}
