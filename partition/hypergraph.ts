/**
 * The hypergraph the partitioner works on: vertices are items, hyperedges are
 * transactions (a transfer is an edge of two pins). Stored both ways in
 * compressed arrays: the pins of each edge, and the edges of each vertex.
 * Weights are integers, as in METIS files (edges at least 1, vertices at
 * least 0); sums stay exact in Float64Array up to 2^53.
 */
export interface Hypergraph {
  readonly vertexCount: number;
  readonly edgeCount: number;
  readonly vertexWeight: Float64Array;
  readonly edgeWeight: Float64Array;
  /** Pins of edge e: pins[edgeStart[e] .. edgeStart[e + 1]). */
  readonly edgeStart: Int32Array;
  readonly pins: Int32Array;
  /** Edges of vertex v: incidence[vertexStart[v] .. vertexStart[v + 1]). */
  readonly vertexStart: Int32Array;
  readonly incidence: Int32Array;
  readonly totalVertexWeight: number;
}

/**
 * Collects edges and vertex weights, then builds a {@link Hypergraph}.
 * Repeated pins in one edge count once; an edge left with fewer than two
 * pins is dropped (it can never be cut); edges with the same pin set merge
 * into one whose weight is the sum, so that a pair that traded ten times is
 * one edge of weight 10.
 *
 * @example
 * const b = new HypergraphBuilder(4);
 * b.addEdge([0, 1]); b.addEdge([1, 0]); b.addEdge([1, 2, 3], 5);
 * const g = b.build(); // 2 edges: {0,1} weight 2, {1,2,3} weight 5
 */
export class HypergraphBuilder {
  private readonly vertexWeight: Float64Array;
  private readonly edgeIndex = new Map<number | string, number>();
  private readonly edgePins: number[][] = [];
  private readonly edgeWeights: number[] = [];
  private readonly seen: Int32Array;
  private stamp = 0;

  constructor(readonly vertexCount: number) {
    if (!Number.isInteger(vertexCount) || vertexCount < 0) throw new RangeError(`vertex count must be a whole number >= 0, got ${vertexCount}`);
    this.vertexWeight = new Float64Array(vertexCount).fill(1);
    this.seen = new Int32Array(vertexCount);
  }

  setVertexWeight(v: number, weight: number): this {
    this.checkVertex(v);
    if (!Number.isInteger(weight) || weight < 0) throw new RangeError(`vertex ${v}: weight must be a whole number >= 0, got ${weight}`);
    this.vertexWeight[v] = weight;
    return this;
  }

  /** Adds weight to the edge on these pins (0-based vertices). */
  addEdge(pins: ArrayLike<number>, weight = 1): this {
    if (!Number.isInteger(weight) || weight < 1) throw new RangeError(`edge weight must be a positive integer, got ${weight}`);
    const stamp = ++this.stamp;
    const distinct: number[] = [];
    for (let i = 0; i < pins.length; i++) {
      const v = pins[i]!;
      this.checkVertex(v);
      if (this.seen[v] === stamp) continue;
      this.seen[v] = stamp;
      distinct.push(v);
    }
    if (distinct.length < 2) return this;
    distinct.sort((a, b) => a - b);
    const key = distinct.length === 2 ? distinct[0]! * this.vertexCount + distinct[1]! : distinct.join(',');
    const known = this.edgeIndex.get(key);
    if (known !== undefined) {
      this.edgeWeights[known]! += weight;
      return this;
    }
    this.edgeIndex.set(key, this.edgePins.length);
    this.edgePins.push(distinct);
    this.edgeWeights.push(weight);
    return this;
  }

  build(): Hypergraph {
    const m = this.edgePins.length;
    const edgeStart = new Int32Array(m + 1);
    for (let e = 0; e < m; e++) edgeStart[e + 1] = edgeStart[e]! + this.edgePins[e]!.length;
    const pins = new Int32Array(edgeStart[m]!);
    this.edgePins.forEach((p, e) => pins.set(p, edgeStart[e]!));
    return assemble(this.vertexWeight.slice(), Float64Array.from(this.edgeWeights), edgeStart, pins);
  }

  private checkVertex(v: number): void {
    if (!Number.isInteger(v) || v < 0 || v >= this.vertexCount) throw new RangeError(`vertex ${v} is outside 0..${this.vertexCount - 1}`);
  }
}

/** Builds the vertex-to-edge side of a hypergraph from its edges. */
export function assemble(vertexWeight: Float64Array, edgeWeight: Float64Array, edgeStart: Int32Array, pins: Int32Array): Hypergraph {
  const n = vertexWeight.length;
  const m = edgeWeight.length;
  const vertexStart = new Int32Array(n + 1);
  for (let i = 0; i < pins.length; i++) vertexStart[pins[i]! + 1]!++;
  for (let v = 0; v < n; v++) vertexStart[v + 1]! += vertexStart[v]!;
  const fill = vertexStart.slice(0, n);
  const incidence = new Int32Array(pins.length);
  for (let e = 0; e < m; e++) {
    for (let i = edgeStart[e]!; i < edgeStart[e + 1]!; i++) incidence[fill[pins[i]!]!++] = e;
  }
  let total = 0;
  for (let v = 0; v < n; v++) total += vertexWeight[v]!;
  return { vertexCount: n, edgeCount: m, vertexWeight, edgeWeight, edgeStart, pins, vertexStart, incidence, totalVertexWeight: total };
}

/** A graph of transfers: each [a, b] pair is an edge of weight 1, repeats add up. */
export function graphFromPairs(vertexCount: number, pairs: Iterable<readonly [number, number]>): Hypergraph {
  const b = new HypergraphBuilder(vertexCount);
  for (const [u, v] of pairs) b.addEdge([u, v]);
  return b.build();
}

/** Whether every edge has exactly two pins (a plain graph, as METIS reads). */
export function isGraph(g: Hypergraph): boolean {
  for (let e = 0; e < g.edgeCount; e++) if (g.edgeStart[e + 1]! - g.edgeStart[e]! !== 2) return false;
  return true;
}

/**
 * The sub-hypergraph on `vertices` (renumbered 0..), each edge cut down to
 * its pins inside; edges left with one pin are dropped.
 */
export function induced(g: Hypergraph, vertices: Int32Array): Hypergraph {
  const local = new Int32Array(g.vertexCount).fill(-1);
  vertices.forEach((v, i) => (local[v] = i));
  const vw = new Float64Array(vertices.length);
  vertices.forEach((v, i) => (vw[i] = g.vertexWeight[v]!));
  const starts: number[] = [0];
  const pins: number[] = [];
  const weights: number[] = [];
  const edgeSeen = new Uint8Array(g.edgeCount);
  for (const v of vertices) {
    for (let i = g.vertexStart[v]!; i < g.vertexStart[v + 1]!; i++) {
      const e = g.incidence[i]!;
      if (edgeSeen[e]) continue;
      edgeSeen[e] = 1;
      const before = pins.length;
      for (let j = g.edgeStart[e]!; j < g.edgeStart[e + 1]!; j++) {
        const u = local[g.pins[j]!]!;
        if (u >= 0) pins.push(u);
      }
      if (pins.length - before < 2) {
        pins.length = before;
        continue;
      }
      starts.push(pins.length);
      weights.push(g.edgeWeight[e]!);
    }
  }
  return assemble(vw, Float64Array.from(weights), Int32Array.from(starts), Int32Array.from(pins));
}

/**
 * The objective: connectivity minus one, sum over edges of weight x (parts
 * the edge touches - 1). For a transfer (two pins) this is its weight when
 * its items sit in different parts and 0 otherwise: the edge cut of METIS.
 */
export function cutOf(g: Hypergraph, parts: ArrayLike<number>, k: number): number {
  const seen = new Int32Array(k).fill(-1);
  let cut = 0;
  for (let e = 0; e < g.edgeCount; e++) {
    let lambda = 0;
    for (let i = g.edgeStart[e]!; i < g.edgeStart[e + 1]!; i++) {
      const p = parts[g.pins[i]!]!;
      if (seen[p] !== e) {
        seen[p] = e;
        lambda++;
      }
    }
    cut += g.edgeWeight[e]! * (lambda - 1);
  }
  return cut;
}

/** The weight of the edges that touch more than one part (the cut-net metric). */
export function cutNetOf(g: Hypergraph, parts: ArrayLike<number>): number {
  let cut = 0;
  for (let e = 0; e < g.edgeCount; e++) {
    const first = parts[g.pins[g.edgeStart[e]!]!]!;
    for (let i = g.edgeStart[e]! + 1; i < g.edgeStart[e + 1]!; i++) {
      if (parts[g.pins[i]!] !== first) {
        cut += g.edgeWeight[e]!;
        break;
      }
    }
  }
  return cut;
}

/** Total vertex weight in each part. */
export function partWeightsOf(g: Hypergraph, parts: ArrayLike<number>, k: number): Float64Array {
  const w = new Float64Array(k);
  for (let v = 0; v < g.vertexCount; v++) w[parts[v]!]! += g.vertexWeight[v]!;
  return w;
}

/**
 * The most weight a part may hold: (1 + imbalance) x its fair share W / k,
 * but never less than ceil(W / k), without which no partition of unit
 * weights could fit (10 items in 3 parts must put 4 somewhere).
 */
export function balanceLimit(totalWeight: number, parts: number, imbalance: number): number {
  const fair = totalWeight / parts;
  return Math.max(Math.floor((1 + imbalance) * fair + 1e-9), Math.ceil(fair - 1e-9));
}

/** The heaviest part over the fair share, minus one: 0.03 means 3% over. */
export function imbalanceOf(partWeights: Float64Array, totalWeight: number): number {
  if (totalWeight === 0) return 0;
  let max = 0;
  for (const w of partWeights) max = Math.max(max, w);
  return max / (totalWeight / partWeights.length) - 1;
}
