/**
 * A k-way partition of a hypergraph with what refinement needs to price a
 * move in O(k): how many pins each edge has in each part, and per vertex
 * the weight of the edges it alone holds in its part (what moving it away
 * saves) and, per part, the weight of its edges that already reach that part
 * (what moving it there does not cost). Moving a vertex updates them all
 * by delta, in time proportional to the pins of its edges.
 */
import type { Hypergraph } from './hypergraph.js';

export class PartitionState {
  readonly part: Int32Array;
  readonly partWeight: Float64Array;
  /** pinCount[e * k + p]: pins of edge e in part p. */
  readonly pinCount: Int32Array;
  /** Weight of v's edges that v alone holds in its part. */
  readonly benefit: Float64Array;
  /** connection[v * k + p]: weight of v's edges with a pin in part p. */
  readonly connection: Float64Array;
  /** Weight of all of v's edges. */
  readonly degree: Float64Array;
  /** The objective, connectivity - 1, kept up to date by every move. */
  cut = 0;

  constructor(
    readonly graph: Hypergraph,
    readonly k: number,
    parts: ArrayLike<number>,
  ) {
    const { vertexCount: n, edgeCount: m } = graph;
    this.part = Int32Array.from(parts);
    this.partWeight = new Float64Array(k);
    this.pinCount = new Int32Array(m * k);
    this.benefit = new Float64Array(n);
    this.connection = new Float64Array(n * k);
    this.degree = new Float64Array(n);
    for (let v = 0; v < n; v++) this.partWeight[this.part[v]!]! += graph.vertexWeight[v]!;
    this.count();
  }

  private count(): void {
    const { graph: g, k, part, pinCount, connection, benefit, degree } = this;
    for (let e = 0; e < g.edgeCount; e++) {
      const w = g.edgeWeight[e]!;
      const base = e * k;
      const from = g.edgeStart[e]!;
      const to = g.edgeStart[e + 1]!;
      for (let i = from; i < to; i++) pinCount[base + part[g.pins[i]!]!]!++;
      let lambda = 0;
      for (let p = 0; p < k; p++) if (pinCount[base + p]! > 0) lambda++;
      this.cut += w * (lambda - 1);
      for (let i = from; i < to; i++) {
        const u = g.pins[i]!;
        degree[u]! += w;
        if (pinCount[base + part[u]!] === 1) benefit[u]! += w;
        for (let p = 0; p < k; p++) if (pinCount[base + p]! > 0) connection[u * k + p]! += w;
      }
    }
  }

  /** What the objective falls by if v moves to part `to` (negative: it rises). */
  gain(v: number, to: number): number {
    return this.benefit[v]! - this.degree[v]! + this.connection[v * this.k + to]!;
  }

  /** Whether v has an edge reaching another part. */
  isBoundary(v: number): boolean {
    const { k } = this;
    const own = this.part[v]!;
    for (let p = 0; p < k; p++) if (p !== own && this.connection[v * k + p]! > 0) return true;
    return false;
  }

  /**
   * Moves v to part `to`, keeping every count exact; `touched(u)` hears of
   * each vertex whose gains may have changed (possibly more than once).
   */
  move(v: number, to: number, touched?: (u: number) => void): void {
    const { graph: g, k, part, pinCount, connection, benefit } = this;
    const from = part[v]!;
    if (from === to) return;
    this.cut -= this.gain(v, to);
    const w = g.vertexWeight[v]!;
    this.partWeight[from]! -= w;
    this.partWeight[to]! += w;
    part[v] = to;
    for (let i = g.vertexStart[v]!; i < g.vertexStart[v + 1]!; i++) {
      const e = g.incidence[i]!;
      const ew = g.edgeWeight[e]!;
      const base = e * k;
      const left = --pinCount[base + from]!;
      const arrived = ++pinCount[base + to]!;
      if (left === 0) benefit[v]! -= ew;
      if (arrived === 1) benefit[v]! += ew;
      const start = g.edgeStart[e]!;
      const end = g.edgeStart[e + 1]!;
      if (left === 0 || arrived === 1) {
        for (let j = start; j < end; j++) {
          const u = g.pins[j]!;
          if (left === 0) connection[u * k + from]! -= ew;
          if (arrived === 1) connection[u * k + to]! += ew;
          if (u !== v) touched?.(u);
        }
      }
      if (left === 1) {
        // The one pin left behind now holds the edge in `from` alone.
        for (let j = start; j < end; j++) {
          const u = g.pins[j]!;
          if (part[u] === from) {
            benefit[u]! += ew;
            touched?.(u);
            break;
          }
        }
      }
      if (arrived === 2) {
        // The pin that held the edge in `to` alone no longer does.
        for (let j = start; j < end; j++) {
          const u = g.pins[j]!;
          if (u !== v && part[u] === to) {
            benefit[u]! -= ew;
            touched?.(u);
            break;
          }
        }
      }
    }
  }
}
