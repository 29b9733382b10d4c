/**
 * Every item's serial order of balances, rebuilt after a simulated run from
 * what the replicas executed, for the read checkers (runtime/read-checks.ts).
 *
 * Inside a cluster every replica executes the same entries in the same
 * order, each at its own point of the log (its seq, or the seq a 2PC
 * decision was reserved to run at), so the union of the replicas' journals,
 * keyed by that point, is the cluster's execution, whatever crashes lost and
 * snapshots skipped on one replica. Across clusters an item's history is
 * cut by its moves: each version of its ownership belongs to one cluster
 * (the ownership checkers hold that), so (version, point of the log) orders
 * every write of an item. A move-in's tentative write at a cluster that
 * does not own the item yet is left out: nobody reads it there, and once the
 * move commits it is the balance the source last held.
 */
import { requestId, type LogEventProps, type NodeId } from '../protocol/messages.js';
import { clusterNodes, clusterOfItem, type Topology } from '../protocol/topology.js';
import type { Ownership } from '../store/state.js';

type Executed = NonNullable<LogEventProps['executed']>;

/** One state of an item: the balance an executed entry left it with. */
export interface ItemState {
  balance: number;
  cluster: number;
  /** The item's ownership version when it was written. */
  version: number;
  /** The point of the cluster's log the entry ran at. */
  ranAt: number;
  /** The request that wrote it (`client/k:timestamp`; a 2PC undo names the transfer it undoes). */
  requestId: string;
}

/** Where an executed entry ran: its reserved seq (a decision), else its own. */
function pointOf(x: Executed): number {
  return x.ranAt || (x.seq ?? 0);
}

/** What an executed event changes (a marker that a seq is done changes nothing). */
function changesSomething(x: Executed): boolean {
  return (x.writes?.length ?? 0) > 0 || (x.owners?.length ?? 0) > 0 || (x.removes?.length ?? 0) > 0;
}

/** A cluster's executed entries, in the order its replicas ran them, from every replica's journal since the set began. */
function executionOf(journals: readonly (readonly LogEventProps[])[]): Executed[] {
  const byPoint = new Map<number, Executed>();
  for (const journal of journals) {
    let sinceFlush: Executed[] = [];
    for (const ev of journal) {
      if (ev.flushed) sinceFlush = [];
      else if (ev.executed && changesSomething(ev.executed)) sinceFlush.push(ev.executed);
    }
    for (const x of sinceFlush) if (!byPoint.has(pointOf(x))) byPoint.set(pointOf(x), x);
  }
  return [...byPoint.entries()].sort((a, b) => a[0] - b[0]).map(([, x]) => x);
}

export class ItemTimelines {
  /** item -> its states in serial order (the initial balance not included). */
  private readonly states = new Map<number, ItemState[]>();
  /** item -> every balance any replica ever wrote for it, tentative ones included. */
  private readonly held = new Map<number, Set<number>>();

  constructor(
    private readonly topology: Topology,
    journal: (node: NodeId) => readonly LogEventProps[],
  ) {
    for (let c = 1; c <= topology.clusters; c++) {
      const journals = clusterNodes(topology, c).map(journal);
      for (const j of journals) for (const ev of j) for (const w of ev.executed?.writes ?? []) this.noteHeld(w.item ?? 0, w.balance ?? 0);
      this.addCluster(c, executionOf(journals));
    }
    for (const list of this.states.values()) list.sort((a, b) => a.version - b.version || a.ranAt - b.ranAt);
  }

  private noteHeld(item: number, balance: number): void {
    let set = this.held.get(item);
    if (!set) this.held.set(item, (set = new Set([this.topology.initialBalance])));
    set.add(balance);
  }

  /** Folds the cluster's ownership along its execution, keeping the writes it made as the item's owner. */
  private addCluster(cluster: number, execution: readonly Executed[]): void {
    const owners = new Map<number, Ownership>();
    const ownerOf = (item: number): Ownership => owners.get(item) ?? { cluster: clusterOfItem(this.topology, item) ?? 0, version: 0 };
    for (const x of execution) {
      const id = x.command ? requestId(x.command) : '';
      for (const w of x.writes ?? []) {
        const item = w.item ?? 0;
        const owner = ownerOf(item);
        if (owner.cluster !== cluster) continue;
        let list = this.states.get(item);
        if (!list) this.states.set(item, (list = []));
        list.push({ balance: w.balance ?? 0, cluster, version: owner.version, ranAt: pointOf(x), requestId: id });
      }
      for (const o of x.owners ?? []) owners.set(o.item ?? 0, { cluster: o.cluster ?? 0, version: o.version ?? 0 });
    }
  }

  /** The item's states in serial order, after its initial balance. */
  statesOf(item: number): readonly ItemState[] {
    return this.states.get(item) ?? [];
  }

  /** Where in the item's order a request last wrote it (null: it never did). */
  lastWriteBy(item: number, id: string): number | null {
    const list = this.statesOf(item);
    for (let i = list.length - 1; i >= 0; i--) if (list[i]!.requestId === id) return i;
    return null;
  }

  /** What every item held before any write. */
  get initialBalance(): number {
    return this.topology.initialBalance;
  }

  /** Every balance the item ever held: its initial one, and every one a replica wrote. */
  heldBalances(item: number): ReadonlySet<number> {
    return this.held.get(item) ?? new Set([this.topology.initialBalance]);
  }
}
