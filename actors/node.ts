/**
 * The root of a node's actor hierarchy.
 *
 * It spawns the election, acceptor, proposer, executor and lock manager with
 * fixed ids, keeps the node's logical clock (a tick every `tickMs`, from the
 * actor clock), and routes each wire message to the actors it concerns. A
 * failed node behaves as disconnected: it takes no message, sends nothing,
 * and its clock stops until it recovers.
 */
import { cancel, enqueueActions, raise, setup, spawnChild } from 'xstate';
import { bodyOf, compareBallots, type Ballot, type Command, type EnvelopeProps, type NodeId } from '../protocol/messages.js';
import { clusterOfItem, clusterOfNode } from '../protocol/topology.js';
import { acceptorMachine } from './acceptor.js';
import { electionMachine } from './election.js';
import { ACTOR, deliverNotices, escalateChildError, type NodeEnv, type Notice } from './env.js';
import type { NodeInput } from './events.js';
import { executorMachine } from './executor.js';
import { lockManagerMachine } from './lockManager.js';
import { proposerMachine } from './proposer.js';
import { requestId } from './replies.js';
import { transactionsMachine } from './transactions.js';

export interface NodeContext {
  env: NodeEnv;
}

export type NodeEvent = NodeInput | { type: 'tick' };

function wire(type: string, from: NodeId, msg: unknown) {
  return { type, from, msg } as Notice['event'];
}

const PAXOS_BODIES = new Set(['prepare', 'promise', 'nack', 'accept', 'accepted', 'commit', 'newView', 'heartbeat', 'catchupRequest', 'catchupReply']);
const TX_BODIES = new Set(['txPrepare', 'txVote', 'txDecision', 'txAck', 'txQuery']);

/**
 * Paxos runs among the nodes of one cluster and 2PC between nodes of
 * different clusters. A message from anyone else (an unknown id, 0, itself)
 * is noise however well formed: taken, it could commit a log entry no leader
 * proposed.
 */
function fromWhereItBelongs(env: NodeEnv, body: string, from: NodeId): boolean {
  if (PAXOS_BODIES.has(body)) return env.peers.includes(from);
  if (TX_BODIES.has(body)) {
    return env.topology.nodes.some((n) => n.id === from) && clusterOfNode(env.topology, from) !== env.cluster;
  }
  return true;
}

/**
 * A 2PC message names its transaction the way every real sender does: the
 * txid is the command's request id, the command is a cross-shard transfer in
 * which this cluster plays `role`, and the other cluster is the sender's.
 * Otherwise the actor it starts would wait for an entry that never runs here
 * under that txid, and stay forever.
 */
function txConsistent(
  env: NodeEnv,
  from: NodeId,
  role: 'coordinator' | 'participant',
  txid: string | null | undefined,
  command: Command | null | undefined,
  otherCluster: number | null | undefined,
): boolean {
  const t = command?.transfer;
  if (!t || txid !== requestId(command!)) return false;
  const cs = clusterOfItem(env.topology, t.sender ?? 0);
  const cr = clusterOfItem(env.topology, t.receiver ?? 0);
  const [mine, theirs] = role === 'coordinator' ? [cs, cr] : [cr, cs];
  return (
    mine === env.cluster && theirs !== null && theirs !== env.cluster && theirs === otherCluster && theirs === clusterOfNode(env.topology, from)
  );
}

function txMakesSense(env: NodeEnv, envelope: EnvelopeProps, from: NodeId): boolean {
  const { txPrepare: p, txDecision: d, txQuery: q } = envelope;
  if (p) return txConsistent(env, from, 'participant', p.txid, p.command, p.coordinatorCluster);
  if (d) return txConsistent(env, from, 'participant', d.txid, d.command, d.coordinatorCluster);
  if (q) return txConsistent(env, from, 'coordinator', q.txid, q.command, q.participantCluster);
  return true;
}

/** Who hears a message; `contact` tells the election a leader is alive. */
export function routeMessage(env: NodeEnv, envelope: EnvelopeProps): Notice[] {
  const from = envelope.from ?? 0;
  const body = bodyOf(envelope);
  if (body && !fromWhereItBelongs(env, body, from)) return [];
  if (body && TX_BODIES.has(body) && !txMakesSense(env, envelope, from)) return [];
  const contact = (ballot: Ballot | null | undefined): Notice[] =>
    compareBallots(ballot, env.state.promised) >= 0
      ? [{ to: ACTOR.election, event: { type: 'contact', from, ballot: ballot ?? { round: 0, node: 0 } } }]
      : [];
  switch (body) {
    case 'request':
      return routeRequest(env, envelope);
    case 'prepare':
    case 'promise':
    case 'nack':
      return [{ to: ACTOR.election, event: wire(body, from, envelope[body]) }];
    case 'accept':
    case 'newView':
    case 'commit':
      return [{ to: ACTOR.acceptor, event: wire(body, from, envelope[body]) }, ...contact(envelope[body]?.ballot)];
    case 'heartbeat':
      return [...contact(envelope.heartbeat?.ballot), { to: ACTOR.acceptor, event: wire(body, from, envelope.heartbeat) }];
    case 'accepted':
      return [{ to: ACTOR.proposer, event: wire(body, from, envelope.accepted) }];
    case 'catchupRequest':
    case 'catchupReply':
      return [{ to: ACTOR.acceptor, event: wire(body, from, envelope[body]) }];
    // 2PC runs leader to leader; the others drop it (senders retry to the whole cluster).
    case 'txPrepare': {
      const p = envelope.txPrepare!;
      if (env.view.role !== 'leader' || !p.command) return [];
      noteRemoteLeader(env, from);
      return [{ to: ACTOR.lockManager, event: { type: 'prepare', command: p.command, from, coordinatorCluster: p.coordinatorCluster ?? 0 } }];
    }
    case 'txVote':
    case 'txDecision':
    case 'txAck':
    case 'txQuery':
      if (env.view.role !== 'leader') return [];
      noteRemoteLeader(env, from);
      return [{ to: ACTOR.transactions, event: { type: 'message', envelope } }];
    default:
      return [];
  }
}

/** Only leaders send 2PC messages, so their sender leads its cluster. */
function noteRemoteLeader(env: NodeEnv, from: NodeId): void {
  if (from) env.leaders.set(clusterOfNode(env.topology, from), from);
}

/** The leader orders transfers and answers reads; a follower relays to its leader. */
function routeRequest(env: NodeEnv, envelope: EnvelopeProps): Notice[] {
  const command = envelope.request?.command;
  if (!command) return [];
  if (env.view.role === 'leader') {
    return command.read
      ? [{ to: ACTOR.executor, event: { type: 'read', command } }]
      : [{ to: ACTOR.lockManager, event: { type: 'admit', command } }];
  }
  const leader = env.view.leader;
  if (leader && leader !== env.self && !envelope.request?.relayedBy) {
    env.send({ from: env.self, to: leader, request: { command, relayedBy: env.self } });
  }
  return [];
}

const children = [
  [ACTOR.election, electionMachine],
  [ACTOR.acceptor, acceptorMachine],
  [ACTOR.proposer, proposerMachine],
  [ACTOR.executor, executorMachine],
  [ACTOR.lockManager, lockManagerMachine],
  [ACTOR.transactions, transactionsMachine],
] as const;

export const nodeMachine = setup({
  types: {
    context: {} as NodeContext,
    events: {} as NodeEvent,
    input: {} as { env: NodeEnv; failed?: boolean },
  },
  guards: {
    startsFailed: ({ context }) => context.env.state.failed,
  },
  actions: {
    escalate: ({ context, event }) => escalateChildError(context.env, event as never),
    route: enqueueActions(({ context, event, enqueue }) => {
      const e = event as Extract<NodeEvent, { type: 'messages' }>;
      const notices: Notice[] = [];
      for (const envelope of e.envelopes) for (const n of routeMessage(context.env, envelope)) notices.push(n);
      deliverNotices(enqueue, notices);
    }),
    // Only a leader proposes, keeps transactions and parks requests: the other
    // nodes' proposer, transactions and lock manager have nothing to time.
    tickChildren: enqueueActions(({ context, enqueue }) => {
      const tick = { type: 'tick' };
      const notices: Notice[] = [
        { to: ACTOR.election, event: tick },
        { to: ACTOR.acceptor, event: tick },
      ];
      if (context.env.view.role === 'leader') {
        notices.push({ to: ACTOR.proposer, event: tick }, { to: ACTOR.transactions, event: tick }, { to: ACTOR.lockManager, event: tick });
      }
      deliverNotices(enqueue, notices);
    }),
    endTurn: enqueueActions(({ context, enqueue }) => {
      const { env } = context;
      const notices: Notice[] = [];
      if (env.view.role === 'leader') notices.push({ to: ACTOR.proposer, event: { type: 'endOfTurn' } });
      if (env.state.commitThrough > env.state.executedThrough) notices.push({ to: ACTOR.executor, event: { type: 'execute' } });
      deliverNotices(enqueue, notices);
    }),
    scheduleTick: raise({ type: 'tick' }, { id: 'tick', delay: ({ context }) => context.env.tuning.tickMs }),
    stopClock: cancel('tick'),
    recordFailed: ({ context }) => context.env.record({ failed: {} }),
    recordRecovered: enqueueActions(({ context, enqueue }) => {
      context.env.record({ recovered: {} });
      deliverNotices(enqueue, [
        { to: ACTOR.election, event: { type: 'recovered' } },
        { to: ACTOR.acceptor, event: { type: 'recovered' } },
      ]);
    }),
    startSet: enqueueActions(({ context, event, enqueue }) => {
      const e = event as Extract<NodeEvent, { type: 'flush' }>;
      const { env } = context;
      env.record({
        flushed: { initialBalance: e.initialBalance, leader: e.leader, set: e.set, ballot: { round: 1, node: e.leader } },
      });
      deliverNotices(enqueue, [
        { to: ACTOR.proposer, event: { type: 'reset' } },
        { to: ACTOR.lockManager, event: { type: 'reset' } },
        { to: ACTOR.transactions, event: { type: 'reset' } },
        { to: ACTOR.election, event: { type: 'flushed', leader: e.leader } },
      ]);
    }),
  },
}).createMachine({
  id: 'node',
  context: ({ input }) => ({ env: input.env }),
  entry: children.map(([id, machine]) =>
    spawnChild(machine as never, { id, systemId: id, input: ({ context }: { context: NodeContext }) => ({ env: context.env }) } as never),
  ),
  initial: 'booting',
  on: {
    flush: { target: '.live', actions: 'startSet' },
    // A child that throws is stopped by XState without a word; the node must not go on without it.
    'xstate.error.actor.*': { actions: 'escalate' },
  },
  states: {
    booting: {
      always: [{ guard: 'startsFailed', target: 'failed' }, { target: 'live' }],
    },
    live: {
      entry: 'scheduleTick',
      exit: 'stopClock',
      on: {
        messages: { actions: 'route' },
        tick: { actions: ['tickChildren', 'scheduleTick'] },
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
