/**
 * What a node's actors share. The durable state is read freely and changed
 * only through `record` (which applies the event and queues it for the next
 * batch); everything that leaves the node goes through `send`, which the
 * runtime releases only once everything it may depend on is durable (DESIGN
 * rule 2; see NodeHost.commit).
 * The machines themselves never touch sockets, disks, clocks or Math.random.
 */
import type { Ballot, EnvelopeProps, LogEventProps, NodeId } from '../protocol/messages.js';
import type { Rng } from '../protocol/rng.js';
import { clusterNodes, type Topology, type Tuning } from '../protocol/topology.js';
import type { ReplicaState } from '../store/state.js';

export type Role = 'follower' | 'candidate' | 'leader';

/** Volatile view of who leads: written by the election actor only. */
export interface ViewState {
  role: Role;
  leader: NodeId;
  ballot: Ballot;
}

export interface NodeEnv {
  self: NodeId;
  cluster: number;
  /** This cluster's nodes, self included, in order. */
  members: NodeId[];
  peers: NodeId[];
  majority: number;
  topology: Topology;
  tuning: Tuning;
  state: ReplicaState;
  view: ViewState;
  rng: Rng;
  /** Who this node believes leads each cluster (2PC talks leader to leader). */
  leaders: Map<number, NodeId>;
  /** ACKed decisions the leader tells its followers on its next few heartbeats: txid -> heartbeats left. */
  ackedToShare: Map<string, number>;
  record(event: LogEventProps): void;
  send(env: EnvelopeProps): void;
  /**
   * For a message that vouches for nothing in this node's log: it leaves at
   * the end of the turn, without waiting behind the log write in flight.
   * A leader's heartbeat (held up by a slow fsync or a compaction it would
   * look like a dead leader, and the followers would depose it), and its
   * ACCEPT requests: a proposal is not a vote, so the followers write theirs
   * while the leader writes its own, one fsync off the critical path. A
   * restarted node never proposes again under its old ballot, so a proposal
   * it sent and then lost cannot meet a different value in the same slot.
   * A coordinator's PREPARE too: it asks, and vouches for nothing. Should
   * the coordinator's prepare entry then be lost, the participant's query
   * for the decision meets a fence (an abort ordered first).
   */
  sendNow(env: EnvelopeProps): void;
  /**
   * An actor of this node threw: its state can no longer be trusted, so the
   * node stops on the spot (fail-stop) and recovers, if restarted, from its log.
   */
  fatal(error: unknown, actor: string): void;
}

/** The `xstate.error.actor.<id>` event a parent gets when a child throws. */
export function escalateChildError(env: NodeEnv, event: { type: string; error?: unknown }): void {
  env.fatal(event.error, event.type.slice('xstate.error.actor.'.length));
}

/** The actor ids of a node's hierarchy (explicit, so runs are reproducible). */
export const ACTOR = {
  election: 'election',
  acceptor: 'acceptor',
  proposer: 'proposer',
  executor: 'executor',
  lockManager: 'lockManager',
  transactions: 'transactions',
} as const;
export type ActorName = (typeof ACTOR)[keyof typeof ACTOR];

/** A message from one of a node's actors to a sibling. */
export interface Notice {
  to: ActorName;
  event: { type: string } & Record<string, unknown>;
}

/**
 * An envelope from this node to `to`. Built with Object.assign, not
 * `{ ...body, from, to }`: V8 takes a slow path for a spread followed by more
 * properties (microseconds a message).
 */
function addressed(env: NodeEnv, to: NodeId, body: Omit<EnvelopeProps, 'from' | 'to'>): EnvelopeProps {
  return Object.assign({ from: env.self, to }, body);
}

export function sendToPeers(env: NodeEnv, body: Omit<EnvelopeProps, 'from' | 'to'>): void {
  for (const peer of env.peers) env.send(addressed(env, peer, body));
}

/** See NodeEnv.sendNow: only for what promises nothing about this node's log. */
export function sendToPeersNow(env: NodeEnv, body: Omit<EnvelopeProps, 'from' | 'to'>): void {
  for (const peer of env.peers) env.sendNow(addressed(env, peer, body));
}

export function sendToNode(env: NodeEnv, to: NodeId, body: Omit<EnvelopeProps, 'from' | 'to'>): void {
  env.send(addressed(env, to, body));
}

/** Heartbeats that repeat an ACK, so a follower that misses one still hears it. */
const ACK_REPEATS = 3;

export function shareAck(env: NodeEnv, txid: string): void {
  if (env.ackedToShare.size < env.tuning.maxQueue) env.ackedToShare.set(txid, ACK_REPEATS);
}

/** The ACKs for the next heartbeat (at most maxBatch), counting each one down. */
export function acksForHeartbeat(env: NodeEnv): string[] {
  const out: string[] = [];
  for (const [txid, left] of env.ackedToShare) {
    if (out.length >= env.tuning.maxBatch) break;
    out.push(txid);
    if (left <= 1) env.ackedToShare.delete(txid);
    else env.ackedToShare.set(txid, left - 1);
  }
  return out;
}

/**
 * To another cluster's believed leader, or to all its nodes (a retry, when
 * the leader may have changed). `now`: see NodeEnv.sendNow.
 */
export function sendToCluster(env: NodeEnv, cluster: number, body: Omit<EnvelopeProps, 'from' | 'to'>, everyone = false, now = false): void {
  const members = clusterNodes(env.topology, cluster);
  const leader = env.leaders.get(cluster) ?? members[0]!;
  for (const node of everyone ? members : [leader]) {
    if (now) env.sendNow(addressed(env, node, body));
    else env.send(addressed(env, node, body));
  }
}

/** The part of XState's `enqueue` helper used to pass notices to siblings. */
interface Enqueue {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  sendTo: (...args: any[]) => void;
}

/**
 * Kinds of notice that come one per request, and the event that carries a
 * run of them: the actors take these only in runs (of one or more).
 */
const JOINED: Record<string, string> = { admit: 'admitAll', release: 'releaseAll', propose: 'proposeAll', read: 'readAll' };

/**
 * Queues each notice as an XState sendTo to the sibling's system id. A run
 * of notices of a JOINED kind to one actor goes as one event that carries
 * them all, in order.
 */
export function deliverNotices(enqueue: Enqueue, notices: Notice[]): void {
  for (let i = 0; i < notices.length; ) {
    const n = notices[i]!;
    const joined = JOINED[n.event.type];
    let j = i + 1;
    if (joined) while (j < notices.length && notices[j]!.to === n.to && notices[j]!.event.type === n.event.type) j++;
    const event = joined ? { type: joined, events: notices.slice(i, j).map((m) => m.event) } : n.event;
    enqueue.sendTo(({ system }: { system: { get(id: string): unknown } }) => system.get(n.to), event);
    i = j;
  }
}
