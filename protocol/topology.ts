/**
 * The shape of a deployment: clusters of nodes, where each node listens, and
 * which cluster owns which item. The shard map is data (ranges plus per-item
 * overrides), never a formula spread through the code.
 */
import type { NodeId } from './messages.js';

export interface NodeAddress {
  id: NodeId;
  host: string;
  port: number;
}

export interface ShardRange {
  cluster: number;
  /** First item, inclusive. */
  from: number;
  /** Last item, inclusive. */
  to: number;
}

export interface ShardMap {
  version: number;
  ranges: ShardRange[];
  /** item -> cluster, written by resharding. */
  overrides: Record<string, number>;
}

/** Limits and timers of the protocol; every one of them lives here. */
export interface Tuning {
  /** One logical clock tick of a node, in ms: the unit of the timers below. */
  tickMs: number;
  heartbeatTicks: number;
  /**
   * The longest a leader with nothing to order waits between heartbeats, in
   * ticks. A leader quiet for q ticks heartbeats every q/4 ticks, between
   * `heartbeatTicks` and this; each heartbeat names the wait to the next, and
   * its followers stretch their election timeouts by as much. Equal to
   * `heartbeatTicks`: no slowing down.
   */
  idleHeartbeatTicks: number;
  electionTicksMin: number;
  electionTicksMax: number;
  /** Ticks an uncommitted accept waits before it is sent again. */
  retransmitTicks: number;
  /** Most requests in one accept round. */
  maxBatch: number;
  /** Most accept rounds in flight at once. */
  maxInflightRounds: number;
  /** Most requests waiting at a leader before it answers `failed: overloaded`. */
  maxQueue: number;
  /** Most committed entries in one catch-up reply. */
  maxCatchupEntries: number;
  /** Largest frame accepted from the network, in bytes. */
  maxFrameBytes: number;
  /** 2PC: ticks a coordinator waits for both prepares before it aborts. */
  txTimeoutTicks: number;
  /** 2PC: ticks between resends of PREPARE, a decision, or a participant's query. */
  txRetryTicks: number;
  /** Ticks a transfer may wait for an item held by a prepared cross-shard transaction. */
  lockWaitTicks: number;
  /**
   * What a leader does with a transfer whose item another transfer holds:
   * `skip` it (ordered as an abort, `aborted: lock conflict`: the spec's rule,
   * and the default) or `wait` behind the holder, at most `lockQueueTicks`.
   */
  lockPolicy: 'skip' | 'wait';
  lockQueueTicks: number;
  /** Events between two snapshots; each snapshot deletes the events before it. */
  snapshotEvery: number;
  /** Executed log entries kept in memory (and in snapshots) for catch-up and NEW-VIEW. */
  retainEntries: number;
  /** Client: time before a request is broadcast to the whole cluster. */
  clientTimeoutMs: number;
  /** Client: time after which a request is given up as `failed`. */
  clientGiveUpMs: number;
  /**
   * A node process spends at most this long (ms) of one turn on its inbox
   * before it lets its timers run (the simulator, being deterministic, has no
   * such budget).
   */
  turnBudgetMs: number;
  /** Ticks a session or linearizable read may wait (for execution, or the leader's confirmation) before it is answered failed. */
  readWaitTicks: number;
  /** Resharding: committed transfers each cluster keeps for the partitioner. */
  reshardWindow: number;
  /** Resharding: no cluster may own more than (1 + this) times its fair share of the items. */
  reshardImbalance: number;
  /** Resharding: most items in one move (one 2PC transaction between two clusters). */
  maxMoveBatch: number;
  /** Resharding: ticks a move waits for its items to be free before it gives up. */
  moveWaitTicks: number;
  /** Most envelopes in one frame, sent or accepted: decoding one frame is one bounded piece of work. */
  maxEnvelopesPerFrame: number;
  /** Largest frame a client or admin connection may send, in bytes (peers have `maxFrameBytes`). */
  maxClientFrameBytes: number;
  /** Inbound connections a node keeps per role; a new one past the limit closes the one idle longest. */
  maxPeerConnections: number;
  maxClientConnections: number;
  maxAdminConnections: number;
  /** Inbound connections of one identity (a node, a client name); a new one past it closes the oldest. */
  maxConnectionsPerIdentity: number;
  /** Inbound connections still in their handshake or before their hello; past it new ones are refused. */
  maxPendingConnections: number;
  /** A connection must finish its handshake and hello within this (ms) from its first byte, however it trickles. */
  helloTimeoutMs: number;
  /** A connection with no traffic either way for this long (ms) is closed. */
  idleTimeoutMs: number;
  /** Client requests awaiting a reply on one connection; past it the request is answered `overloaded` at once. */
  maxInflightPerConnection: number;
}

export interface Topology {
  clusters: number;
  nodesPerCluster: number;
  items: number;
  initialBalance: number;
  /** nodes[c-1] lists cluster c's nodes in order; the first leads at set start. */
  nodes: NodeAddress[];
  shards: ShardMap;
  tuning: Tuning;
}

export const DEFAULT_TUNING: Readonly<Tuning> = Object.freeze({
  tickMs: 25,
  heartbeatTicks: 2,
  idleHeartbeatTicks: 60,
  electionTicksMin: 8,
  electionTicksMax: 16,
  retransmitTicks: 8,
  maxBatch: 256,
  maxInflightRounds: 16,
  maxQueue: 20000,
  maxCatchupEntries: 1000,
  maxFrameBytes: 16 * 1024 * 1024,
  txTimeoutTicks: 40,
  txRetryTicks: 8,
  lockWaitTicks: 8,
  lockPolicy: 'skip',
  lockQueueTicks: 40,
  snapshotEvery: 20000,
  retainEntries: 2000,
  clientTimeoutMs: 400,
  clientGiveUpMs: 2500,
  turnBudgetMs: 20,
  readWaitTicks: 40,
  reshardWindow: 10000,
  reshardImbalance: 0.03,
  maxMoveBatch: 200,
  moveWaitTicks: 40,
  maxEnvelopesPerFrame: 4096,
  maxClientFrameBytes: 256 * 1024,
  maxPeerConnections: 256,
  maxClientConnections: 1024,
  maxAdminConnections: 32,
  maxConnectionsPerIdentity: 16,
  maxPendingConnections: 64,
  helloTimeoutMs: 5000,
  idleTimeoutMs: 300_000,
  maxInflightPerConnection: 1024,
});

/** The cluster (1-based) a node belongs to. */
export function clusterOfNode(topo: Topology, node: NodeId): number {
  return Math.floor((node - 1) / topo.nodesPerCluster) + 1;
}

/** The nodes of cluster c (1-based), in order. */
export function clusterNodes(topo: Topology, cluster: number): NodeId[] {
  const first = (cluster - 1) * topo.nodesPerCluster + 1;
  return Array.from({ length: topo.nodesPerCluster }, (_, i) => first + i);
}

/** The cluster that owns an item, or null when the item is out of range. */
export function clusterOfItem(topo: Topology, item: number): number | null {
  const o = topo.shards.overrides[String(item)];
  if (o !== undefined) return o;
  for (const r of topo.shards.ranges) if (item >= r.from && item <= r.to) return r.cluster;
  return null;
}

/** The node that leads a node's cluster when a set starts: its first node (n1, n4, n7). */
export function initialLeader(topo: Topology, node: NodeId): NodeId {
  return clusterNodes(topo, clusterOfNode(topo, node))[0]!;
}

export function allNodes(topo: Topology): NodeId[] {
  return topo.nodes.map((n) => n.id);
}

export function addressOf(topo: Topology, node: NodeId): NodeAddress | undefined {
  return topo.nodes.find((n) => n.id === node);
}

/** Equal ranges of items over clusters: 9000 over 3 gives 1..3000, 3001..6000, 6001..9000. */
export function evenRanges(clusters: number, items: number): ShardRange[] {
  const per = Math.floor(items / clusters);
  return Array.from({ length: clusters }, (_, i) => ({
    cluster: i + 1,
    from: i * per + 1,
    to: i === clusters - 1 ? items : (i + 1) * per,
  }));
}

/** A topology on 127.0.0.1 with consecutive ports from basePort. */
export function makeTopology(opts: {
  clusters?: number;
  nodesPerCluster?: number;
  items?: number;
  initialBalance?: number;
  host?: string;
  basePort?: number;
  tuning?: Partial<Tuning>;
} = {}): Topology {
  const clusters = opts.clusters ?? 3;
  const nodesPerCluster = opts.nodesPerCluster ?? 3;
  const items = opts.items ?? 9000;
  const basePort = opts.basePort ?? 7101;
  const nodes: NodeAddress[] = Array.from({ length: clusters * nodesPerCluster }, (_, i) => ({
    id: i + 1,
    host: opts.host ?? '127.0.0.1',
    port: basePort + i,
  }));
  return {
    clusters,
    nodesPerCluster,
    items,
    initialBalance: opts.initialBalance ?? 10,
    nodes,
    shards: { version: 1, ranges: evenRanges(clusters, items), overrides: {} },
    tuning: { ...DEFAULT_TUNING, ...opts.tuning },
  };
}
