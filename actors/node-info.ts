/**
 * What every actor of a node knows from the start and never changes: who it
 * is, its cluster, the topology and the tuning. Together with a read-only
 * view of the replica state (`ReplicaView`), it is the input of each machine.
 */
import type { Ballot, NodeId } from '../protocol/messages.js';
import { mixSeed } from '../protocol/rng.js';
import { clusterNodes, clusterOfNode, type Topology, type Tuning } from '../protocol/topology.js';
import type { ReplicaView } from '../store/state.js';

export interface NodeInfo {
  readonly self: NodeId;
  readonly cluster: number;
  /** This cluster's nodes, self included, in order. */
  readonly members: readonly NodeId[];
  readonly peers: readonly NodeId[];
  readonly majority: number;
  readonly topology: Topology;
  readonly tuning: Tuning;
  /** Seeds this node's random choices (election timeouts), so a run replays from its seed. */
  readonly seed: number;
  /** Bugs planted on purpose (the simulator's checkers must catch them); empty on every real node. */
  readonly bugs: ReadonlySet<PlantedBug>;
}

/**
 * Bugs the simulator can plant in its nodes, to show that its checkers
 * catch what each breaks. Only the simulator passes them (SimCluster, down
 * through NodeHost and NodeCore); a node process, its config and its flags
 * cannot name them.
 *
 * - `linearizable-without-round`: a leader answers a linearizable read from
 *   its own state at once, without confirming that it still leads; a deposed
 *   leader that has not heard of its successor answers what it has.
 * - `session-before-caught-up`: a replica answers a session read at once,
 *   before it has executed through the client's last write.
 * - `move-commit-before-move-in`: a move's source orders its commit as soon
 *   as its own move-out ran, without waiting for the destination's move-in:
 *   the items change owner whether or not their balances arrived.
 * - `stale-owner-applies`: a cluster admits and runs a transfer by the
 *   initial shard ranges, without the ownership (and its version) that moves
 *   wrote: an item that moved away is still debited or credited here.
 */
export const PLANTED_BUGS = ['linearizable-without-round', 'session-before-caught-up', 'move-commit-before-move-in', 'stale-owner-applies'] as const;
export type PlantedBug = (typeof PLANTED_BUGS)[number];

const NO_BUGS: ReadonlySet<PlantedBug> = new Set();

/** What a node knows of itself; `bugs` only from the simulator. */
export function nodeInfo(topology: Topology, self: NodeId, seed = 1, bugs: readonly PlantedBug[] = []): NodeInfo {
  const cluster = clusterOfNode(topology, self);
  const members = clusterNodes(topology, cluster);
  return {
    self,
    cluster,
    members,
    peers: members.filter((n) => n !== self),
    majority: Math.floor(members.length / 2) + 1,
    topology,
    tuning: topology.tuning,
    seed: mixSeed(seed, self),
    bugs: bugs.length === 0 ? NO_BUGS : new Set(bugs),
  };
}

/** The input every machine of a node's hierarchy starts from. */
export interface ActorInput {
  info: NodeInfo;
  /** Read only: it changes when the host folds a recorded event into it. */
  state: ReplicaView;
}

export type Role = 'follower' | 'precandidate' | 'candidate' | 'leader';

/**
 * Who leads this cluster, as the election actor decided it. The election
 * owns it; the actors that route, reply or catch up get a copy in a `view`
 * event whenever it changes.
 */
export interface View {
  role: Role;
  leader: NodeId;
  ballot: Ballot;
  /**
   * A leader's failure detector: the peers it heard from within its window
   * (`electionTicksMin`), and whether with itself they make a majority.
   * Without one it refuses new writes at once, so that none can commit later.
   */
  live: readonly NodeId[];
  quorum: boolean;
}

export const NO_VIEW: View = Object.freeze({ role: 'follower', leader: 0, ballot: Object.freeze({ round: 0, node: 0 }), live: Object.freeze([]), quorum: false }) as View;

/** The actor ids of a node's hierarchy (explicit, so runs are reproducible). */
export const ACTOR = {
  node: 'node',
  election: 'election',
  acceptor: 'acceptor',
  proposer: 'proposer',
  executor: 'executor',
  lockManager: 'lockManager',
  transactions: 'transactions',
} as const;
export type ActorName = (typeof ACTOR)[keyof typeof ACTOR];
