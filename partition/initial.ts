/**
 * The first partition, of the coarsest hypergraph: recursive bisection.
 * Each bisection grows one side from a random vertex, always taking the
 * vertex that adds the least cut (greedy graph growing), refines the two
 * sides with FM, and keeps the best of several seeded tries. A k that is
 * not a power of two splits into floor(k/2) and ceil(k/2) parts, each side
 * getting weight in proportion to the capacity of its parts.
 */
import { GainBuckets } from './buckets.js';
import { refine } from './fm.js';
import { induced, type Hypergraph } from './hypergraph.js';
import type { Rng } from './rng.js';
import { PartitionState } from './state.js';

/**
 * FM effort per bisection: the coarsest level is small and refined again
 * as a k-way partition, so short refinement of many tries beats long
 * refinement of few (measured on the benchmark's transaction graphs).
 */
const BISECTION_PASSES = 3;
const BISECTION_STOP_AFTER = 50;

export interface BisectionOptions {
  rng: Rng;
  /** Grown-and-refined tries per bisection; the least cut is kept. */
  tries: number;
  /**
   * Most a side may exceed its proportional share, whatever room its parts
   * have: with much room, loose bisections wander into poor cuts that the
   * k-way refinement, which does use the room, then cannot leave.
   */
  sideImbalance: number;
}

/** Parts 0..k-1 for the vertices of g, each part within caps[p] where possible. */
export function recursiveBisection(g: Hypergraph, caps: Float64Array, opts: BisectionOptions): Int32Array {
  const part = new Int32Array(g.vertexCount);
  const all = new Int32Array(g.vertexCount);
  for (let v = 0; v < g.vertexCount; v++) all[v] = v;
  split(g, all, 0, caps.length, caps, part, opts);
  return part;
}

function split(g: Hypergraph, vertices: Int32Array, lo: number, hi: number, caps: Float64Array, part: Int32Array, opts: BisectionOptions): void {
  if (hi - lo === 1 || vertices.length === 0) {
    for (const v of vertices) part[v] = lo;
    return;
  }
  const mid = lo + Math.floor((hi - lo) / 2);
  const sub = vertices.length === g.vertexCount ? g : induced(g, vertices);
  const sides = bisect(sub, sideCaps(sub.totalVertexWeight, caps, lo, mid, hi, opts.sideImbalance), opts.rng, opts.tries);
  const left = vertices.filter((_, i) => sides[i] === 0);
  const right = vertices.filter((_, i) => sides[i] === 1);
  split(g, left, lo, mid, caps, part, opts);
  split(g, right, mid, hi, caps, part, opts);
}

/**
 * What each side of a bisection may hold: its share of the weight in
 * proportion to its parts' capacity, plus its part of the spare capacity
 * spread over the bisections still to come, and at most `sideImbalance`
 * over the share.
 */
function sideCaps(total: number, caps: Float64Array, lo: number, mid: number, hi: number, sideImbalance: number): { target: number; caps: Float64Array } {
  let capA = 0;
  let capB = 0;
  for (let p = lo; p < mid; p++) capA += caps[p]!;
  for (let p = mid; p < hi; p++) capB += caps[p]!;
  const targetA = (total * capA) / (capA + capB);
  const levels = Math.ceil(Math.log2(hi - lo));
  const maxA = Math.min(targetA * (1 + sideImbalance), targetA + Math.max(0, capA - targetA) / levels);
  const maxB = Math.min((total - targetA) * (1 + sideImbalance), total - targetA + Math.max(0, capB - (total - targetA)) / levels);
  return { target: targetA, caps: Float64Array.of(Math.max(maxA, 1), Math.max(maxB, 1)) };
}

function overflow(st: PartitionState, caps: Float64Array): number {
  let over = 0;
  st.partWeight.forEach((w, p) => (over += Math.max(0, w - caps[p]!)));
  return over;
}

/** Side 0 or 1 for each vertex: the best of `tries` grown-and-refined bisections. */
function bisect(g: Hypergraph, side: { target: number; caps: Float64Array }, rng: Rng, tries: number): Int32Array {
  let best: PartitionState | undefined;
  for (let t = 0; t < tries; t++) {
    const st = grow(g, side.target, side.caps[0]!, rng);
    refine(st, side.caps, { rng, maxPasses: BISECTION_PASSES, stopAfter: BISECTION_STOP_AFTER });
    if (!best) best = st;
    else {
      const a = overflow(st, side.caps);
      const b = overflow(best, side.caps);
      if (a < b || (a === b && st.cut < best.cut)) best = st;
    }
  }
  return best!.part;
}

/** Greedy graph growing: side 0 starts at a random vertex and takes the cheapest neighbour until it weighs `target`. */
function grow(g: Hypergraph, target: number, max: number, rng: Rng): PartitionState {
  const n = g.vertexCount;
  const st = new PartitionState(g, 2, new Int32Array(n).fill(1));
  let maxDegree = 0;
  for (const d of st.degree) maxDegree = Math.max(maxDegree, d);
  const frontier = new GainBuckets(n, maxDegree + 1);
  const add = (u: number) => {
    if (st.part[u] === 1) frontier.insert(u, st.gain(u, 0));
  };
  let scan = rng.int(0, n - 1);
  // Every skip drops a frontier vertex or passes the scan on, so this ends.
  let skips = 0;
  while (st.partWeight[0]! < target && skips <= 2 * n) {
    let v = frontier.popMax();
    if (v < 0) {
      // A new component: start again from the next vertex still on side 1.
      for (let i = 0; i < n && st.part[scan] !== 1; i++) scan = (scan + 1) % n;
      if (st.part[scan] !== 1) break;
      v = scan;
      scan = (scan + 1) % n;
    }
    if (st.partWeight[0]! + g.vertexWeight[v]! > max) {
      skips++;
      continue;
    }
    st.move(v, 0, add);
  }
  return st;
}
