/**
 * The partitioner's public face, for the resharder and the CLI: build a
 * transaction hypergraph, partition it, list the moves from the current
 * owners. Pure: no I/O, nothing imported from the rest of shardbank.
 *
 * @example
 * const b = new HypergraphBuilder(9000);          // vertex i = item i + 1
 * for (const t of history) b.addEdge([t.sender - 1, t.receiver - 1]);
 * const owners = Int32Array.from({ length: 9000 }, (_, v) => clusterOf(v + 1) - 1);
 * const r = partition(b.build(), { parts: 3, imbalance: 0.03, seed: 1, initial: owners });
 * movesBetween(owners, r.parts); // [{ vertex: 4000, from: 1, to: 0 }, ...]
 */
export { partition, DEFAULT_IMBALANCE, type PartitionOptions, type PartitionResult } from './partition.js';
export { HypergraphBuilder, graphFromPairs, cutOf, cutNetOf, partWeightsOf, balanceLimit, imbalanceOf, isGraph, type Hypergraph } from './hypergraph.js';
export { FormatError, parseMetisGraph, parseHmetis, parseGraph, parsePartition, formatMetisGraph, formatHmetis, formatPartition, formatOfPath, type GraphFormat } from './formats.js';

export interface Move {
  vertex: number;
  from: number;
  to: number;
}

/** The vertices whose part differs between two assignments, in vertex order. */
export function movesBetween(initial: ArrayLike<number>, parts: ArrayLike<number>): Move[] {
  if (initial.length !== parts.length) throw new RangeError(`assignments of ${initial.length} and ${parts.length} vertices`);
  const moves: Move[] = [];
  for (let v = 0; v < parts.length; v++) if (initial[v] !== parts[v]) moves.push({ vertex: v, from: initial[v]!, to: parts[v]! });
  return moves;
}
