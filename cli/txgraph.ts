/**
 * The transaction graph of a benchmark workload: one vertex per item
 * (vertex i - 1 is item i), one edge per pair of items that traded, weighted
 * by how often. It is the graph the resharder partitions, and written as a
 * METIS file it is what `shardbank partition` and `gpmetis` compare on.
 */
import { HypergraphBuilder, induced, type Hypergraph } from '../partition/hypergraph.js';
import { clusterOfItem, type Topology } from '../protocol/topology.js';
import { Workload, type WorkloadOptions } from './workload.js';

export interface WorkloadGraph {
  graph: Hypergraph;
  /** Current owner of each vertex's item: its cluster - 1, a part number. */
  owners: Int32Array;
  /** Item of each vertex. */
  items: Int32Array;
}

/** Reads drawn per transfer before the workload is deemed to have none. */
const MAX_READS_PER_TRANSFER = 1000;

/**
 * The graph of the first `transfers` read-write operations of the workload
 * (reads are skipped). With `touchedOnly`, items no transfer touched are
 * left out and the vertices renumbered.
 */
export function workloadGraph(topology: Topology, options: WorkloadOptions, transfers: number, touchedOnly = false): WorkloadGraph {
  if (options.readOnlyPct >= 100) throw new RangeError('a workload of reads only has no transfers to make a graph of');
  const workload = new Workload(topology, options);
  const builder = new HypergraphBuilder(topology.items);
  let drawn = 0;
  for (let made = 0; made < transfers; ) {
    const op = workload.next();
    if (++drawn > transfers * MAX_READS_PER_TRANSFER) throw new RangeError(`only ${made} transfers in ${drawn - 1} operations`);
    if (op.kind === 'read') continue;
    builder.addEdge([op.sender - 1, op.receiver - 1]);
    made++;
  }
  let graph = builder.build();
  let items = Int32Array.from({ length: topology.items }, (_, v) => v + 1);
  if (touchedOnly) {
    const kept = items.map((_, v) => v).filter((v) => graph.vertexStart[v + 1]! > graph.vertexStart[v]!);
    graph = induced(graph, kept);
    items = kept.map((v) => v + 1);
  }
  const owners = items.map((item) => (clusterOfItem(topology, item) ?? 1) - 1);
  return { graph, owners, items };
}
