/**
 * Coarsening: merge pairs of vertices joined by heavy edges, level after
 * level, until the hypergraph is small enough to partition directly. An
 * edge's weight is shared among its pins (w / (|e| - 1)), so a transfer
 * pair counts in full and a large transaction a little to each of its
 * items. Vertices left alone after that (the leaves of a hot item, which
 * all want the same partner) are paired with another leaf of the same
 * neighbour, as METIS does, or a Zipf star would barely shrink.
 */
import { assemble, HypergraphBuilder, isGraph, type Hypergraph } from './hypergraph.js';
import { shuffled, type Rng } from './rng.js';

export interface Level {
  fine: Hypergraph;
  coarse: Hypergraph;
  /** Coarse vertex of each fine vertex. */
  map: Int32Array;
}

export interface CoarsenOptions {
  rng: Rng;
  /** Stop once a level has at most this many vertices. */
  targetVertices: number;
  /** No merged vertex may weigh more. */
  maxVertexWeight: number;
  /** When given, only vertices of the same part here merge (a V-cycle keeps this partition). */
  keep?: Int32Array;
}

/** Edges with more pins than this are left out of the ratings: they say little about any one pair. */
const MAX_RATED_EDGE = 64;
/** Levels stop when a level keeps more than this share of its vertices. */
const MIN_SHRINK = 0.95;
/** The leaf pairing runs when more than this share of vertices found no partner. */
const UNMATCHED_FOR_TWO_HOP = 0.1;

/** The levels from `g` down, finest first (empty if `g` is already small). */
export function coarsen(g: Hypergraph, opts: CoarsenOptions): Level[] {
  const levels: Level[] = [];
  let current = g;
  let keep = opts.keep;
  while (current.vertexCount > opts.targetVertices && levels.length < 64) {
    const match = matchVertices(current, opts, keep);
    const { map, count } = numberPairs(match);
    if (count > MIN_SHRINK * current.vertexCount) break;
    const coarse = contract(current, map, count);
    levels.push({ fine: current, coarse, map });
    if (keep) {
      const coarseKeep = new Int32Array(count);
      for (let v = 0; v < current.vertexCount; v++) coarseKeep[map[v]!] = keep[v]!;
      keep = coarseKeep;
    }
    current = coarse;
  }
  return levels;
}

/** Vertices by ascending degree, ties in seeded random order, so that light vertices choose first. */
function visitOrder(g: Hypergraph, rng: Rng): Int32Array {
  const random = shuffled(g.vertexCount, rng);
  let maxDegree = 0;
  for (let v = 0; v < g.vertexCount; v++) maxDegree = Math.max(maxDegree, g.vertexStart[v + 1]! - g.vertexStart[v]!);
  const start = new Int32Array(maxDegree + 2);
  for (const v of random) start[g.vertexStart[v + 1]! - g.vertexStart[v]! + 1]!++;
  for (let d = 0; d <= maxDegree; d++) start[d + 1]! += start[d]!;
  const order = new Int32Array(g.vertexCount);
  for (const v of random) order[start[g.vertexStart[v + 1]! - g.vertexStart[v]!]!++] = v;
  return order;
}

/** match[v] = v's partner, or v itself. */
function matchVertices(g: Hypergraph, opts: CoarsenOptions, keep: Int32Array | undefined): Int32Array {
  const n = g.vertexCount;
  const match = new Int32Array(n).fill(-1);
  const rating = new Float64Array(n);
  const rated = new Int32Array(n);
  let ratedCount = 0;
  const vw = g.vertexWeight;
  const order = visitOrder(g, opts.rng);
  let unmatched = 0;
  for (const u of order) {
    if (match[u]! >= 0) continue;
    for (let i = g.vertexStart[u]!; i < g.vertexStart[u + 1]!; i++) {
      const e = g.incidence[i]!;
      const size = g.edgeStart[e + 1]! - g.edgeStart[e]!;
      if (size > MAX_RATED_EDGE) continue;
      const share = g.edgeWeight[e]! / (size - 1);
      for (let j = g.edgeStart[e]!; j < g.edgeStart[e + 1]!; j++) {
        const v = g.pins[j]!;
        if (v === u || match[v]! >= 0) continue;
        if (keep && keep[v] !== keep[u]) continue;
        if (vw[u]! + vw[v]! > opts.maxVertexWeight) continue;
        if (rating[v] === 0) rated[ratedCount++] = v;
        rating[v]! += share;
      }
    }
    let best = -1;
    for (let r = 0; r < ratedCount; r++) {
      const v = rated[r]!;
      if (best < 0 || rating[v]! > rating[best]! || (rating[v] === rating[best] && vw[v]! < vw[best]!)) best = v;
    }
    for (let r = 0; r < ratedCount; r++) rating[rated[r]!] = 0;
    ratedCount = 0;
    if (best >= 0) {
      match[u] = best;
      match[best] = u;
    } else unmatched++;
  }
  if (unmatched > UNMATCHED_FOR_TWO_HOP * n) {
    pairLeaves(g, match, opts, keep, order, 2);
    pairLeaves(g, match, opts, keep, order, Infinity);
  }
  pairIsolated(g, match, opts, keep, order);
  for (let v = 0; v < n; v++) if (match[v]! < 0) match[v] = v;
  return match;
}

/**
 * Pairs unmatched vertices of degree <= maxDegree that share a neighbour:
 * for each vertex, its unmatched neighbours two by two.
 */
function pairLeaves(g: Hypergraph, match: Int32Array, opts: CoarsenOptions, keep: Int32Array | undefined, order: Int32Array, maxDegree: number): void {
  const vw = g.vertexWeight;
  const degree = (v: number) => g.vertexStart[v + 1]! - g.vertexStart[v]!;
  for (let idx = order.length - 1; idx >= 0; idx--) {
    const hub = order[idx]!;
    let waiting = -1;
    for (let i = g.vertexStart[hub]!; i < g.vertexStart[hub + 1]!; i++) {
      const e = g.incidence[i]!;
      if (g.edgeStart[e + 1]! - g.edgeStart[e]! > MAX_RATED_EDGE) continue;
      for (let j = g.edgeStart[e]!; j < g.edgeStart[e + 1]!; j++) {
        const v = g.pins[j]!;
        if (v === hub || match[v]! >= 0 || degree(v) > maxDegree) continue;
        if (waiting < 0) {
          waiting = v;
          continue;
        }
        if ((keep && keep[v] !== keep[waiting]) || vw[v]! + vw[waiting]! > opts.maxVertexWeight) continue;
        match[v] = waiting;
        match[waiting] = v;
        waiting = -1;
      }
    }
  }
}

/**
 * Pairs vertices without edges (at coarse levels: whole components already
 * merged into one vertex), lightest with lightest in visiting order, so
 * that coarsening does not stall on them; how they pack into parts costs
 * no cut.
 */
function pairIsolated(g: Hypergraph, match: Int32Array, opts: CoarsenOptions, keep: Int32Array | undefined, order: Int32Array): void {
  let waiting = -1;
  for (const v of order) {
    if (match[v]! >= 0 || g.vertexStart[v + 1]! > g.vertexStart[v]!) continue;
    if (waiting >= 0 && (!keep || keep[v] === keep[waiting]) && g.vertexWeight[v]! + g.vertexWeight[waiting]! <= opts.maxVertexWeight) {
      match[v] = waiting;
      match[waiting] = v;
      waiting = -1;
    } else waiting = v;
  }
}

/** Numbers the coarse vertices in the order of their first fine vertex. */
function numberPairs(match: Int32Array): { map: Int32Array; count: number } {
  const map = new Int32Array(match.length).fill(-1);
  let count = 0;
  for (let v = 0; v < match.length; v++) {
    if (map[v]! >= 0) continue;
    map[v] = count;
    map[match[v]!] = count;
    count++;
  }
  return { map, count };
}

/** The coarse hypergraph: weights summed, edges mapped, parallel edges merged. */
function contract(g: Hypergraph, map: Int32Array, count: number): Hypergraph {
  const weight = new Float64Array(count);
  for (let v = 0; v < g.vertexCount; v++) weight[map[v]!]! += g.vertexWeight[v]!;
  return isGraph(g) ? contractGraph(g, map, count, weight) : contractHypergraph(g, map, count, weight);
}

/**
 * The same for a plain graph, without hashing: the edges of each coarse
 * vertex c to coarse vertices d > c, merged through a table indexed by d.
 */
function contractGraph(g: Hypergraph, map: Int32Array, count: number, weight: Float64Array): Hypergraph {
  const memberStart = new Int32Array(count + 1);
  for (let v = 0; v < g.vertexCount; v++) memberStart[map[v]! + 1]!++;
  for (let c = 0; c < count; c++) memberStart[c + 1]! += memberStart[c]!;
  const fill = memberStart.slice(0, count);
  const members = new Int32Array(g.vertexCount);
  for (let v = 0; v < g.vertexCount; v++) members[fill[map[v]!]!++] = v;
  const slot = new Int32Array(count).fill(-1);
  const pins = new Int32Array(2 * g.edgeCount);
  const edgeWeight = new Float64Array(g.edgeCount);
  let m = 0;
  for (let c = 0; c < count; c++) {
    const first = m;
    for (let i = memberStart[c]!; i < memberStart[c + 1]!; i++) {
      const v = members[i]!;
      for (let j = g.vertexStart[v]!; j < g.vertexStart[v + 1]!; j++) {
        const e = g.incidence[j]!;
        const a = g.pins[2 * e]!;
        const d = map[a === v ? g.pins[2 * e + 1]! : a]!;
        if (d <= c) continue;
        if (slot[d]! < 0) {
          slot[d] = m;
          pins[2 * m] = c;
          pins[2 * m + 1] = d;
          edgeWeight[m++] = g.edgeWeight[e]!;
        } else edgeWeight[slot[d]!]! += g.edgeWeight[e]!;
      }
    }
    for (let e = first; e < m; e++) slot[pins[2 * e + 1]!] = -1;
  }
  const edgeStart = new Int32Array(m + 1);
  for (let e = 0; e <= m; e++) edgeStart[e] = 2 * e;
  return assemble(weight, edgeWeight.slice(0, m), edgeStart, pins.slice(0, 2 * m));
}

function contractHypergraph(g: Hypergraph, map: Int32Array, count: number, weight: Float64Array): Hypergraph {
  const b = new HypergraphBuilder(count);
  weight.forEach((w, c) => b.setVertexWeight(c, w));
  const pins: number[] = [];
  for (let e = 0; e < g.edgeCount; e++) {
    pins.length = 0;
    for (let i = g.edgeStart[e]!; i < g.edgeStart[e + 1]!; i++) pins.push(map[g.pins[i]!]!);
    b.addEdge(pins, g.edgeWeight[e]!);
  }
  return b.build();
}
