/**
 * Resharding, from an operator's side: gather each cluster's recent
 * committed transfers, partition the items so that as few transfers as
 * possible cross clusters (within the balance bound), and move the items
 * whose cluster changes, in batches, each batch one move transaction at its
 * source's leader (2PC over Paxos between the two clusters).
 *
 * The plan is a pure function of the history and the current owners; the
 * moves are the cluster's to make atomic, and each one is answered like any
 * request (committed, aborted, or failed with the leader to ask instead).
 */
import { cutOf, HypergraphBuilder, movesBetween, partition } from '../partition/index.js';
import { MOVE_ITEMS_BUSY, nodeName, shardbank, type ClientReply, type Command, type NodeId } from '../protocol/messages.js';
import { clusterNodes, clusterOfItem, type Topology } from '../protocol/topology.js';
import type { AdminClient } from './admin.js';

export interface ReshardHistory {
  /** Committed transfers, each once (a cross-shard one is kept by both its clusters). */
  transfers: [sender: number, receiver: number][];
  /** Items whose owner a move changed: item -> newest owner and version reported. */
  owners: Map<number, { cluster: number; version: number }>;
  /** Clusters no node of which answered. */
  unreachable: number[];
}

export interface ItemMove {
  item: number;
  from: number;
  to: number;
}

export interface ReshardPlan {
  moves: ItemMove[];
  /** Transfers of the history that cross clusters, before and after the plan. */
  cutBefore: number;
  cutAfter: number;
  /** The heaviest cluster after the plan, over its fair share (0.03: 3% over). */
  imbalance: number;
  transfers: number;
  /** How long the partitioner took, in ms. */
  partitionMs: number;
}

export interface MoveBatch {
  from: number;
  to: number;
  items: number[];
  /** committed, aborted or failed, and why. */
  status: 'committed' | 'aborted' | 'failed';
  reason: string;
  /** From sending the move to its answer (retries at other nodes included), in ms. */
  ms: number;
}

const STATUS: Record<number, MoveBatch['status']> = {
  [shardbank.Status.COMMITTED]: 'committed',
  [shardbank.Status.ABORTED]: 'aborted',
};

/**
 * Asks every cluster for its recent committed transfers and the owners its
 * moves set, trying `order(cluster)`'s nodes in turn until one answers.
 */
export async function gatherHistory(admin: AdminClient, topology: Topology, order: (cluster: number) => NodeId[] = (c) => clusterNodes(topology, c)): Promise<ReshardHistory> {
  const clusters = Array.from({ length: topology.clusters }, (_, i) => i + 1);
  // The clusters answer side by side: each reply is a window of thousands of transfers.
  const replies = await Promise.all(clusters.map((c) => historyOf(admin, order(c))));
  const seen = new Set<string>();
  const transfers: [number, number][] = [];
  const owners = new Map<number, { cluster: number; version: number }>();
  const unreachable: number[] = [];
  replies.forEach((reply, i) => {
    if (!reply) {
      unreachable.push(clusters[i]!);
      return;
    }
    for (const h of reply.history ?? []) {
      if (h.txid) {
        if (seen.has(h.txid)) continue;
        seen.add(h.txid);
      }
      transfers.push([h.sender ?? 0, h.receiver ?? 0]);
    }
    for (const o of reply.owners ?? []) {
      const item = o.item ?? 0;
      const version = o.version ?? 0;
      if ((owners.get(item)?.version ?? -1) < version) owners.set(item, { cluster: o.cluster ?? 0, version });
    }
  });
  return { transfers, owners, unreachable };
}

/** One cluster's history, from the first of `nodes` that answers; null when none does. */
async function historyOf(admin: AdminClient, nodes: NodeId[]): Promise<shardbank.IAdminReply | null> {
  for (const node of nodes) {
    const reply = await admin.request(node, { history: {} }).catch(() => null);
    if (reply) return reply;
  }
  return null;
}

/** Each item's owner (cluster 1..k): the shard map, overridden by what moves reported. */
export function currentOwners(topology: Topology, owners: ReadonlyMap<number, { cluster: number }>): Int32Array {
  return Int32Array.from({ length: topology.items }, (_, v) => owners.get(v + 1)?.cluster ?? clusterOfItem(topology, v + 1) ?? 1);
}

/**
 * The moves that bring the items to the partition of the history's
 * transaction graph (items are vertices, transfers edges) with the fewest
 * crossing transfers, no cluster over (1 + imbalance) x its share, and among
 * equal cuts the fewest moves.
 */
export function planReshard(topology: Topology, history: ReshardHistory, opts: { imbalance?: number; seed?: number } = {}): ReshardPlan {
  const k = topology.clusters;
  const b = new HypergraphBuilder(topology.items);
  for (const [s, r] of history.transfers) if (s >= 1 && r >= 1 && s <= topology.items && r <= topology.items && s !== r) b.addEdge([s - 1, r - 1]);
  const graph = b.build();
  const initial = currentOwners(topology, history.owners).map((c) => c - 1);
  const started = performance.now();
  const result = partition(graph, { parts: k, imbalance: opts.imbalance ?? topology.tuning.reshardImbalance, seed: opts.seed ?? 1, initial });
  const partitionMs = performance.now() - started;
  const moves = movesBetween(initial, result.parts).map((m) => ({ item: m.vertex + 1, from: m.from + 1, to: m.to + 1 }));
  return { moves, cutBefore: cutOf(graph, initial, k), cutAfter: result.cut, imbalance: result.imbalance, transfers: history.transfers.length, partitionMs };
}

/** The moves as batches of at most `max` items, one per (source, destination), in item order. */
export function batchesOf(moves: readonly ItemMove[], max: number): { from: number; to: number; items: number[] }[] {
  const byPair = new Map<string, { from: number; to: number; items: number[] }>();
  for (const m of [...moves].sort((a, b) => a.item - b.item)) {
    const key = `${m.from}>${m.to}`;
    let b = byPair.get(key);
    if (!b) byPair.set(key, (b = { from: m.from, to: m.to, items: [] }));
    b.items.push(m.item);
  }
  const out: { from: number; to: number; items: number[] }[] = [];
  for (const b of byPair.values()) for (let i = 0; i < b.items.length; i += max) out.push({ from: b.from, to: b.to, items: b.items.slice(i, i + max) });
  return out;
}

/** Batches in flight at once, over all (source, destination) pairs. */
const MAX_PAIRS_IN_FLIGHT = 8;

/**
 * How long one attempt at a move waits for its answer before asking again
 * (the same node, or the next). A move waits at most moveWaitTicks for its
 * items and then runs one 2PC; a leader that stepped down meanwhile drops it
 * without an answer, and asking again is safe: the move is one request, and
 * a decided one is answered with its decision.
 */
const MOVE_ATTEMPT_MS = 5000;

/** A batch whose items stayed busy is split in halves and tried again, down to this size. */
const MIN_SPLIT = 8;

/**
 * Carries out the moves: each (source, destination) pair's batches one
 * after the other, up to MAX_PAIRS_IN_FLIGHT pairs side by side (no item is
 * in two batches, so their moves are independent transactions). Each batch
 * goes to its source's leader (the believed one, then whoever the answers
 * name, then every node in turn). A batch refused because its items stayed
 * busy (a move waits, bounded, for the transfers holding them) is split in
 * halves, which are tried in its place: fewer items are sooner all free at
 * once. Resolves with every batch's outcome, pair by pair; a batch that
 * aborted or failed moved nothing.
 *
 * Each batch is a request of its own logical client, named after this plan
 * (`client/<plan>/m<k>`), so that a later plan's batches are never taken for
 * retries of this one's. A caller that names its plans apart itself (the
 * simulator, whose runs must not depend on the clock) passes `plan: ''`.
 */
export async function executePlan(
  admin: AdminClient,
  topology: Topology,
  moves: readonly ItemMove[],
  opts: { client: string; plan?: string; leaders?: Map<number, NodeId>; attempts?: number; onBatch?: (batch: MoveBatch) => void },
): Promise<MoveBatch[]> {
  const leaders = opts.leaders ?? new Map<number, NodeId>();
  const plan = opts.plan ?? `${Date.now().toString(36)}${Math.floor(Math.random() * 36 ** 4).toString(36)}`;
  const prefix = plan ? `${opts.client}/${plan}` : opts.client;
  const pairs = new Map<string, { from: number; to: number; items: number[] }[]>();
  for (const b of batchesOf(moves, topology.tuning.maxMoveBatch)) {
    const key = `${b.from}>${b.to}`;
    pairs.set(key, [...(pairs.get(key) ?? []), b]);
  }
  const outcomes = new Map<string, MoveBatch[]>([...pairs.keys()].map((k) => [k, []]));
  const queue = [...pairs.keys()];
  let n = 0;
  const worker = async () => {
    for (let key = queue.shift(); key; key = queue.shift()) {
      const todo = pairs.get(key)!;
      for (let batch = todo.shift(); batch; batch = todo.shift()) {
        const command: Command = { client: `${prefix}/m${++n}`, timestamp: 1, move: { items: batch.items, fromCluster: batch.from, toCluster: batch.to } };
        const sent = performance.now();
        const reply = await moveAtLeader(admin, topology, batch.from, command, leaders, opts.attempts ?? 6);
        const outcome: MoveBatch = Object.assign({}, batch, { status: STATUS[reply.status ?? 0] ?? 'failed', reason: reply.reason ?? '', ms: Math.round(performance.now() - sent) });
        if (outcome.status === 'failed' && outcome.reason === MOVE_ITEMS_BUSY && batch.items.length >= 2 * MIN_SPLIT) {
          const half = Math.ceil(batch.items.length / 2);
          todo.unshift(Object.assign({}, batch, { items: batch.items.slice(0, half) }), Object.assign({}, batch, { items: batch.items.slice(half) }));
          continue;
        }
        outcomes.get(key)!.push(outcome);
        opts.onBatch?.(outcome);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(MAX_PAIRS_IN_FLIGHT, queue.length) }, worker));
  return [...outcomes.values()].flat();
}

async function moveAtLeader(admin: AdminClient, topology: Topology, cluster: number, command: Command, leaders: Map<number, NodeId>, attempts: number): Promise<ClientReply> {
  const members = clusterNodes(topology, cluster);
  let last: ClientReply = { status: shardbank.Status.FAILED, reason: `no node of c${cluster} answered` };
  for (let i = 0; i < attempts; i++) {
    const node = leaders.get(cluster) ?? members[i % members.length]!;
    const reply = await admin.move(node, command, MOVE_ATTEMPT_MS).catch((err: Error): ClientReply => ({ status: shardbank.Status.FAILED, reason: `${nodeName(node)}: ${err.message}` }));
    if (reply.status !== shardbank.Status.FAILED || !/not the leader|did not answer|no node/.test(reply.reason ?? '')) return reply;
    last = reply;
    // Not the leader: go where it says, else the next node.
    if (reply.leader && reply.leader !== node) leaders.set(cluster, reply.leader);
    else leaders.set(cluster, members[(members.indexOf(node) + 1) % members.length]!);
  }
  return last;
}

/** `(4001, c2, c1)` triplets, in item order, as PrintReshard prints them. */
export function formatMoves(moves: readonly ItemMove[]): string {
  if (moves.length === 0) return 'no items moved';
  return [...moves].sort((a, b) => a.item - b.item).map((m) => `(${m.item}, c${m.from}, c${m.to})`).join(' ');
}
