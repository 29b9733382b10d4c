/**
 * Checks the 2PC specs share: what a replica ordered for a transfer, the
 * money in the bank, replicas equal, nothing left in doubt, and running a
 * simulation until it is.
 */
import * as assert from 'uvu/assert';
import type { TxResult } from '../../client/client.js';
import type { NodeId } from '../../protocol/messages.js';
import { clusterNodes, clusterOfItem } from '../../protocol/topology.js';
import type { SimCluster } from '../../runtime/sim.js';

export const ALL: NodeId[] = [1, 2, 3, 4, 5, 6, 7, 8, 9];

export interface Ordered {
  seq: number;
  phase: number;
  committed: boolean;
}

/** The entries a replica holds for the transfer (sender -> receiver), by (seq, phase). */
export function entriesOf(sim: SimCluster, node: NodeId, sender: number, receiver: number): Ordered[] {
  return [...sim.host(node).state.log.values()]
    .filter((s) => s.command?.transfer?.sender === sender && s.command?.transfer?.receiver === receiver)
    .map((s) => ({ seq: s.seq, phase: s.phase, committed: s.committed }))
    .sort((a, b) => a.seq - b.seq || a.phase - b.phase);
}

export function outcome(r: TxResult): string {
  return r.reason ? `${r.status}: ${r.reason}` : r.status;
}

/** The money in the bank, counted at one replica per cluster (the first of `nodes` in it). */
export function totalMoney(sim: SimCluster, nodes: NodeId[] = ALL): number {
  const { topology } = sim;
  let total = 0;
  for (let c = 1; c <= topology.clusters; c++) {
    const node = clusterNodes(topology, c).find((n) => nodes.includes(n))!;
    const s = sim.host(node).state;
    for (let item = 1; item <= topology.items; item++) {
      if (clusterOfItem(topology, item) === c) total += s.balances.get(item) ?? s.initialBalance;
    }
  }
  return total;
}

export function assertReplicasEqual(sim: SimCluster, nodes: NodeId[]): void {
  const [first, ...rest] = nodes.map((n) => sim.host(n).state);
  const shape = (s: typeof first) => ({ balances: [...s!.balances].sort((a, b) => a[0] - b[0]), executedThrough: s!.executedThrough });
  for (const [i, s] of rest.entries()) assert.equal(shape(s), shape(first), `n${nodes[i + 1]} equals n${nodes[0]}`);
}

/** No prepared transaction, lock by one, or unacknowledged decision is left on any of these nodes. */
export function assertNothingInDoubt(sim: SimCluster, nodes: NodeId[] = ALL): void {
  for (const n of nodes) {
    const s = sim.host(n).state;
    assert.equal([...s.wal.keys()], [], `n${n} WAL`);
    assert.equal([...s.walLocks.keys()], [], `n${n} WAL locks`);
    assert.equal([...s.unacked.keys()], [], `n${n} unacked decisions`);
    assert.is(s.executedThrough, s.commitThrough, `n${n} executed all it committed`);
  }
}

/** Runs until every given replica has executed all it committed and holds no 2PC state. */
export async function settle(sim: SimCluster, nodes: NodeId[] = ALL, maxMs = 3000): Promise<void> {
  await sim.runUntil(
    () =>
      nodes.every((n) => {
        const s = sim.host(n).state;
        return s.wal.size === 0 && s.unacked.size === 0 && s.executedThrough === s.commitThrough;
      }),
    maxMs,
  );
  // Followers learn the last commits from the leader's next messages.
  await sim.runFor(200);
}
