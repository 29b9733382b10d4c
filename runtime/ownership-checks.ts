/**
 * The simulator's resharding checkers. Ownership is replica state, changed
 * only by a move's decision in each of its two clusters, so what must hold
 * can be read off the replicas and their logs:
 *
 * - every item has exactly one owner: one cluster claims it, and a cluster
 *   that says it moved out points at a cluster that has it at that version or
 *   moved it on since (at the end of a run);
 * - no version of an item ever had two owners (at every checkpoint, over the
 *   whole run);
 * - an item's balance lives only on its owner's replicas: a replica holds a
 *   balance for an item it does not own only while a move into its cluster
 *   holds the item prepared (at every checkpoint; at the end, not at all);
 * - no transfer was applied by a cluster that did not own its item at that
 *   point of its log, and no move took out an item its source did not own
 *   (each node's journal, folded event by event);
 * - money is conserved, summed over each item's owner.
 *
 * Every violation names the item, the clusters and the seed.
 */
import { formatCommand, shardbank, type LogEventProps, type NodeId } from '../protocol/messages.js';
import { clusterNodes, clusterOfNode, type Topology } from '../protocol/topology.js';
import { applyEvent, balanceOf, emptyState, ownerOf, type Ownership, type ReplicaView } from '../store/state.js';

const { Status, Phase } = shardbank;

/** At most this many violations from one checker about one node or one kind, so a broken run stays readable. */
const MAX_PER_CHECK = 5;

function describeView(c: number, o: Ownership | null): string {
  if (!o) return `c${c} knows no owner`;
  return o.cluster === c ? `c${c} owns it (version ${o.version})` : `c${c} says c${o.cluster} (version ${o.version})`;
}

/**
 * The owner of each item as the clusters' committed ownership says, at the
 * end of a run: `states` holds one replica per cluster (the replicas of a
 * cluster are compared with each other elsewhere). Returns the violations
 * and each item's owner where there is exactly one.
 */
export function checkOwners(topology: Topology, states: ReadonlyMap<number, ReplicaView>, seed: number): { violations: string[]; owners: Map<number, number> } {
  const violations: string[] = [];
  const owners = new Map<number, number>();
  const clusters = [...states.keys()].sort((a, b) => a - b);
  for (let item = 1; item <= topology.items; item++) {
    const views = new Map(clusters.map((c) => [c, ownerOf(topology, states.get(c)!, item)] as const));
    const claimers = clusters.filter((c) => views.get(c)?.cluster === c);
    if (claimers.length !== 1) {
      if (violations.length < MAX_PER_CHECK * 2) {
        const what = claimers.length === 0 ? 'no owner' : `${claimers.length} owners (${claimers.map((c) => `c${c}`).join(', ')})`;
        violations.push(`seed ${seed}: item ${item} has ${what}: ${clusters.map((c) => describeView(c, views.get(c)!)).join(', ')}`);
      }
      continue;
    }
    const owner = claimers[0]!;
    owners.set(item, owner);
    const version = views.get(owner)!.version;
    for (const c of clusters) {
      const said = views.get(c)!;
      if (c === owner || said.cluster === c) continue;
      const there = views.get(said.cluster);
      // A cluster that says the item went to d: d has it at that version, or has moved it on since.
      const pointsRight = there != null && (there.version > said.version || (there.version === said.version && there.cluster === said.cluster));
      if (said.version > version || !pointsRight) {
        violations.push(`seed ${seed}: item ${item}: ${describeView(c, said)}, but ${describeView(said.cluster, there ?? null)}; its owner is c${owner} (version ${version})`);
      }
    }
  }
  return { violations, owners };
}

/** At the end of a run: a replica holds balances only for items its cluster owns. */
export function checkBalancesAtOwners(topology: Topology, replicas: ReadonlyMap<NodeId, ReplicaView>, owners: ReadonlyMap<number, number>, seed: number): string[] {
  const violations: string[] = [];
  for (const [node, state] of replicas) {
    const cluster = clusterOfNode(topology, node);
    let found = 0;
    for (const [item, balance] of state.balances) {
      const owner = owners.get(item);
      if (owner === undefined || owner === cluster) continue;
      if (found++ < MAX_PER_CHECK) violations.push(`seed ${seed}: item ${item}: n${node} of c${cluster} holds a balance (${balance}) for it, but c${owner} owns it`);
    }
  }
  return violations;
}

/** Money is conserved: every item's balance, read at its owner, sums to what the run started with. */
export function checkMoney(topology: Topology, states: ReadonlyMap<number, ReplicaView>, owners: ReadonlyMap<number, number>, seed: number): string[] {
  let total = 0;
  for (const [item, owner] of owners) total += balanceOf(states.get(owner)!, item) - topology.initialBalance;
  return total === 0 ? [] : [`seed ${seed}: money not conserved: the balances at each item's owner changed by ${total} in total`];
}

/**
 * At a checkpoint, one replica on its own: a balance for an item its
 * cluster does not own is there only because a move into its cluster holds
 * the item prepared (the move-in wrote it; the commit makes it the owner's,
 * an abort takes it out).
 */
export function checkReplicaBalances(topology: Topology, node: NodeId, state: ReplicaView, seed: number): string[] {
  const cluster = clusterOfNode(topology, node);
  const violations: string[] = [];
  for (const [item, balance] of state.balances) {
    const owner = ownerOf(topology, state, item);
    if (!owner || owner.cluster === cluster) continue;
    const holder = state.walLocks.get(item);
    const wal = holder === undefined ? undefined : state.wal.get(holder);
    if (wal?.command.move && wal.role === 'participant') continue;
    violations.push(`seed ${seed}: item ${item}: n${node} of c${cluster} holds a balance (${balance}) for it, yet says c${owner.cluster} owns it (version ${owner.version}) and no move into c${cluster} holds it`);
    if (violations.length >= MAX_PER_CHECK) break;
  }
  return violations;
}

/**
 * Every (item, version) a replica's ownership ever named, with its cluster,
 * across checkpoints: a version of an item belongs to one cluster only (two
 * moves of one item from the same version, to two clusters, would both
 * claim it).
 */
export class VersionLedger {
  private readonly seen = new Map<string, { cluster: number; node: NodeId }>();
  private readonly reported = new Set<string>();

  constructor(
    private readonly topology: Topology,
    private readonly seed: number,
  ) {}

  /** Notes a replica's ownership; returns violations not reported before. */
  note(node: NodeId, state: ReplicaView): string[] {
    const violations: string[] = [];
    for (const [item, o] of state.owners) {
      const key = `${item}@${o.version}`;
      const had = this.seen.get(key);
      if (!had) {
        this.seen.set(key, { cluster: o.cluster, node });
        continue;
      }
      if (had.cluster === o.cluster || this.reported.has(key)) continue;
      this.reported.add(key);
      violations.push(
        `seed ${this.seed}: item ${item} version ${o.version} has two owners: c${had.cluster} (as n${had.node} of c${clusterOfNode(this.topology, had.node)} says) and c${o.cluster} (as n${node} of c${clusterOfNode(this.topology, node)} says)`,
      );
    }
    return violations;
  }
}

/**
 * Folds a node's journal (every event it made durable, in order) and checks
 * each executed entry against the ownership at that point of the log: a
 * transfer writes only items its cluster owns, a move-out takes only items
 * its cluster owns, a move-in brings only items its cluster does not own.
 */
export function checkAppliedByOwner(topology: Topology, node: NodeId, journal: readonly LogEventProps[], seed: number): string[] {
  const cluster = clusterOfNode(topology, node);
  const state = emptyState(node);
  const violations: string[] = [];
  const say = (msg: string) => {
    if (violations.length < MAX_PER_CHECK) violations.push(`seed ${seed}: ${msg}`);
  };
  for (const [index, ev] of journal.entries()) {
    const x = ev.executed;
    const command = x?.command;
    if (x && command?.transfer) {
      for (const w of x.writes ?? []) {
        const owner = ownerOf(topology, state, w.item ?? 0);
        if (owner && owner.cluster !== cluster) {
          say(`item ${w.item}: n${node} of c${cluster} applied ${formatCommand(command)}${x.txid ? ` (${x.txid})` : ''} at seq ${x.seq} while c${owner.cluster} owned the item (version ${owner.version})`);
        }
      }
    }
    if (x && command?.move && x.phase === Phase.PHASE_PREPARE && x.status === Status.COMMITTED) {
      const outOf = x.role !== 'participant';
      for (const item of command.move.items ?? []) {
        const owner = ownerOf(topology, state, item);
        const ours = owner?.cluster === cluster;
        if (outOf !== ours) {
          say(
            `item ${item}: n${node} of c${cluster} ran the move-${outOf ? 'out' : 'in'} of ${x.txid} (c${command.move.fromCluster} to c${command.move.toCluster}) at seq ${x.seq} while ${ours ? 'owning it' : `c${owner?.cluster} owned it`} (version ${owner?.version})`,
          );
        }
      }
    }
    try {
      applyEvent(state, ev);
    } catch (err) {
      say(`n${node} of c${cluster}: its journal does not fold at event ${index}: ${(err as Error).message}`);
      break;
    }
  }
  return violations;
}

/** One replica per cluster: the first node's (every node runs at the end of a run). */
export function firstReplicas(topology: Topology, state: (node: NodeId) => ReplicaView): Map<number, ReplicaView> {
  return new Map(Array.from({ length: topology.clusters }, (_, i) => [i + 1, state(clusterNodes(topology, i + 1)[0]!)] as const));
}
