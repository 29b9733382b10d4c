/**
 * The partitioner's entry point: split the items of a transaction
 * hypergraph into k parts of bounded weight, with as little transaction
 * weight crossing parts as it can find, and among equal cuts the fewest
 * items moved from where they are.
 *
 * How: only the items some transaction touched go through the multilevel
 * scheme (coarsen by heavy-edge matching, recursive bisection of the
 * coarsest level, k-way FM on the way back up), several times with seeds
 * drawn from the caller's; with a current assignment, a V-cycle that
 * coarsens within its parts and refines it is one more candidate, so a
 * partition that is already optimal stays as it is. The items nothing
 * touched stay where they are; where a part is then too heavy, the
 * cheapest vertices move out. The best candidate wins: balanced, least cut,
 * fewest moves.
 */
import { coarsen, type Level } from './coarsen.js';
import { rebalance, refine } from './fm.js';
import { balanceLimit, imbalanceOf, induced, type Hypergraph } from './hypergraph.js';
import { recursiveBisection } from './initial.js';
import { bestLabels, relabel } from './relabel.js';
import { createRng, deriveSeed, type Rng } from './rng.js';
import { PartitionState } from './state.js';

export interface PartitionOptions {
  /** Number of parts (clusters), at least 1. */
  parts: number;
  /** ε: no part may weigh more than (1 + ε) x the fair share W / k (default 0.03). */
  imbalance?: number;
  /** Same seed, same graph, same options: same result (default 1). */
  seed?: number;
  /** The part each vertex is in now (its current owner), 0..parts-1. */
  initial?: ArrayLike<number>;
  /** Independent multilevel runs to take the best of (default 4). */
  runs?: number;
}

export interface PartitionResult {
  /** Part 0..k-1 of each vertex. */
  parts: Int32Array;
  /** Connectivity - 1 (for transfers: the weight of the edges between parts). */
  cut: number;
  /** The heaviest part over the fair share, minus one (0.03: 3% over). */
  imbalance: number;
  partWeights: Float64Array;
  /** The most a part may weigh under the constraint. */
  maxPartWeight: number;
  /** Whether every part is within maxPartWeight (false only if vertex weights make it impossible). */
  balanced: boolean;
  /** Vertices whose part differs from `initial` (0 without one). */
  moved: number;
}

export const DEFAULT_IMBALANCE = 0.03;
const DEFAULT_RUNS = 4;
/** Whole recursive bisections per run, the best after k-way refinement kept: one greedy first cut can doom the rest. */
const INITIAL_TRIES = 4;
const BISECTION_TRIES = 2;
const PACKED_SIDE_IMBALANCE = 0.03;
const MAX_V_CYCLES = 3;

/**
 * Partitions g into `parts` balanced parts.
 *
 * @example
 * const g = graphFromPairs(6, [[0, 1], [1, 2], [3, 4], [4, 5], [2, 3]]);
 * partition(g, { parts: 2, imbalance: 0 }).cut; // 1: {0,1,2} and {3,4,5}
 */
export function partition(g: Hypergraph, options: PartitionOptions): PartitionResult {
  const { parts: k, imbalance = DEFAULT_IMBALANCE, seed = 1, runs = DEFAULT_RUNS } = options;
  checkOptions(g, options, k, imbalance, runs);
  const initial = options.initial ? Int32Array.from(options.initial) : undefined;
  const limit = balanceLimit(g.totalVertexWeight, k, imbalance);
  const caps = new Float64Array(k).fill(limit);
  const touched = touchedVertices(g);
  const sub = touched.length === g.vertexCount ? g : induced(g, touched);
  const subInitial = initial ? touched.map((v) => initial[v]!) : undefined;

  const score = (subPart: Int32Array) => complete(g, k, caps, touched, subPart, initial, createRng(deriveSeed(seed, runs + 1)));
  if (k === 1 || sub.vertexCount === 0) return result(score(new Int32Array(sub.vertexCount)), g, caps, initial);

  const candidates: Int32Array[] = [];
  const counts = partCounts(sub.totalVertexWeight, caps);
  for (let r = 0; r < runs; r++) {
    const used = counts[r % 3 === 1 ? counts.length - 1 : 0]!;
    candidates.push(multilevel(sub, caps, used, createRng(deriveSeed(seed, r)), subInitial));
  }
  if (subInitial) candidates.push(vCycle(sub, caps, subInitial, createRng(deriveSeed(seed, runs)), subInitial));
  let best = candidates.map(score).reduce((a, b) => (better(b, a) ? b : a));
  // V-cycles on the winner: coarsening within its parts lets FM move whole groups of items at once.
  for (let cycle = 0; cycle < MAX_V_CYCLES; cycle++) {
    const next = score(vCycle(sub, caps, best.subPart, createRng(deriveSeed(seed, runs + 2 + cycle)), subInitial));
    if (!better(next, best)) break;
    best = next;
  }
  return result(best, g, caps, initial);
}

function checkOptions(g: Hypergraph, options: PartitionOptions, k: number, imbalance: number, runs: number): void {
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`parts must be a whole number >= 1, got ${k}`);
  if (!(imbalance >= 0) || !Number.isFinite(imbalance)) throw new RangeError(`imbalance must be a number >= 0, got ${imbalance}`);
  if (!Number.isInteger(runs) || runs < 1) throw new RangeError(`runs must be a whole number >= 1, got ${runs}`);
  const { initial } = options;
  if (!initial) return;
  if (initial.length !== g.vertexCount) throw new RangeError(`initial assignment has ${initial.length} entries for ${g.vertexCount} vertices`);
  for (let v = 0; v < initial.length; v++) {
    const p = initial[v]!;
    if (!Number.isInteger(p) || p < 0 || p >= k) throw new RangeError(`initial part of vertex ${v} is ${p}, outside 0..${k - 1}`);
  }
}

/** Vertices with at least one edge: the only ones whose part changes the cut. */
function touchedVertices(g: Hypergraph): Int32Array {
  const out: number[] = [];
  for (let v = 0; v < g.vertexCount; v++) if (g.vertexStart[v + 1]! > g.vertexStart[v]!) out.push(v);
  return Int32Array.from(out);
}

/** Where coarsening stops: METIS's choice, enough vertices for a good first partition. */
function coarsenTarget(n: number, k: number): number {
  return Math.max(30 * k, Math.floor(n / (20 * Math.log2(Math.max(k, 2)))));
}

/** One multilevel run: coarsen, bisect recursively, refine back up. */
function multilevel(g: Hypergraph, caps: Float64Array, used: number, rng: Rng, initial: Int32Array | undefined): Int32Array {
  const k = caps.length;
  const target = coarsenTarget(g.vertexCount, k);
  const levels = coarsen(g, { rng, targetVertices: target, maxVertexWeight: (1.5 * g.totalVertexWeight) / target });
  const coarsest = levels.length > 0 ? levels[levels.length - 1]!.coarse : g;
  const part = firstPartition(coarsest, caps, used, rng);
  if (initial) {
    const top = coarsestOf(levels, g.vertexCount);
    relabel(part, bestLabels(k, initial, (v) => part[top[v]!]!));
  }
  return uncoarsen(levels, g, part, caps, rng, initial);
}

/**
 * How many parts the runs spread the touched vertices over. When they weigh
 * less than all the parts can hold (the untouched items fill the rest),
 * fewer, fuller parts may cut less: runs alternate between the fewest parts
 * that can hold them and all k (the counts between rarely win).
 */
function partCounts(weight: number, caps: Float64Array): number[] {
  // Returned as [fewest, k]: runs 0, 2, 3, ... pack, run 1 spreads.
  const k = caps.length;
  let fewest = 1;
  for (let room = caps[0]!; room < weight && fewest < k; fewest++) room += caps[fewest]!;
  return fewest < k ? [fewest, k] : [k];
}

/** The first partition of the coarsest level: recursive bisection into `used` parts, refined as a k-way partition. */
function firstPartition(g: Hypergraph, caps: Float64Array, used: number, rng: Rng): Int32Array {
  let best: PartitionState | undefined;
  for (let t = 0; t < INITIAL_TRIES; t++) {
    // Packed into fewer parts, the bisections keep close to their shares; the room is for the k-way refinement.
    const sideImbalance = used < caps.length ? PACKED_SIDE_IMBALANCE : Infinity;
    const st = new PartitionState(g, caps.length, recursiveBisection(g, caps.subarray(0, used), { rng, tries: BISECTION_TRIES, sideImbalance }));
    refine(st, caps, { rng });
    if (!best || overflowOf(st, caps) < overflowOf(best, caps) || (overflowOf(st, caps) === overflowOf(best, caps) && st.cut < best.cut)) best = st;
  }
  return best!.part;
}

function overflowOf(st: PartitionState, caps: Float64Array): number {
  let over = 0;
  st.partWeight.forEach((w, p) => (over += Math.max(0, w - caps[p]!)));
  return over;
}

/**
 * Refines a given partition through the levels: coarsening only merges
 * vertices of the same part, so the partition holds at every level and FM
 * can move whole clusters of items at once.
 */
function vCycle(g: Hypergraph, caps: Float64Array, start: Int32Array, rng: Rng, initial: Int32Array | undefined): Int32Array {
  const k = caps.length;
  const target = coarsenTarget(g.vertexCount, k);
  const levels = coarsen(g, { rng, targetVertices: target, maxVertexWeight: (1.5 * g.totalVertexWeight) / target, keep: start });
  const top = coarsestOf(levels, g.vertexCount);
  const coarseCount = levels.length > 0 ? levels[levels.length - 1]!.coarse.vertexCount : g.vertexCount;
  const part = new Int32Array(coarseCount);
  for (let v = 0; v < g.vertexCount; v++) part[top[v]!] = start[v]!;
  return uncoarsen(levels, g, part, caps, rng, initial);
}

/** The coarsest vertex of each vertex of the finest level. */
function coarsestOf(levels: Level[], n: number): Int32Array {
  const top = new Int32Array(n);
  for (let v = 0; v < n; v++) top[v] = v;
  for (const level of levels) for (let v = 0; v < n; v++) top[v] = level.map[top[v]!]!;
  return top;
}

/** Refines at the coarsest level, then projects and refines at each finer one. */
function uncoarsen(levels: Level[], g: Hypergraph, coarsePart: Int32Array, caps: Float64Array, rng: Rng, initial: Int32Array | undefined): Int32Array {
  const k = caps.length;
  let graph = levels.length > 0 ? levels[levels.length - 1]!.coarse : g;
  let st = new PartitionState(graph, k, coarsePart);
  refine(st, caps, { rng, initial: levels.length === 0 ? initial : undefined });
  for (let i = levels.length - 1; i >= 0; i--) {
    const { fine, map } = levels[i]!;
    const projected = new Int32Array(fine.vertexCount);
    for (let v = 0; v < fine.vertexCount; v++) projected[v] = st.part[map[v]!]!;
    graph = fine;
    st = new PartitionState(graph, k, projected);
    refine(st, caps, { rng, initial: i === 0 ? initial : undefined });
  }
  return st.part;
}

interface Scored {
  /** The partition of the touched vertices it came from. */
  subPart: Int32Array;
  state: PartitionState;
  overflow: number;
  moved: number;
}

/**
 * A whole-graph partition from one of the touched vertices: renumbered
 * toward the initial assignment, untouched vertices where they are (or in
 * the lightest part, without an initial assignment), then rebalanced.
 */
function complete(g: Hypergraph, k: number, caps: Float64Array, touched: Int32Array, subPart: Int32Array, initial: Int32Array | undefined, rng: Rng): Scored {
  const labels = subPart.slice();
  if (initial) relabel(labels, bestLabels(k, Int32Array.from(touched, (v) => initial[v]!), (i) => labels[i]!));
  const full = new Int32Array(g.vertexCount).fill(-1);
  touched.forEach((v, i) => (full[v] = labels[i]!));
  const weights = new Float64Array(k);
  touched.forEach((v) => (weights[full[v]!]! += g.vertexWeight[v]!));
  for (let v = 0; v < g.vertexCount; v++) {
    if (full[v]! >= 0) continue;
    full[v] = initial ? initial[v]! : lightest(weights);
    weights[full[v]!]! += g.vertexWeight[v]!;
  }
  const state = new PartitionState(g, k, full);
  rebalance(state, caps, { rng, initial });
  const overflow = overflowOf(state, caps);
  let moved = 0;
  if (initial) for (let v = 0; v < g.vertexCount; v++) if (state.part[v] !== initial[v]) moved++;
  return { subPart: Int32Array.from(touched, (v) => state.part[v]!), state, overflow, moved };
}

function lightest(weights: Float64Array): number {
  let best = 0;
  for (let p = 1; p < weights.length; p++) if (weights[p]! < weights[best]!) best = p;
  return best;
}

function better(a: Scored, b: Scored): boolean {
  if (a.overflow !== b.overflow) return a.overflow < b.overflow;
  if (a.state.cut !== b.state.cut) return a.state.cut < b.state.cut;
  return a.moved < b.moved;
}

function result(best: Scored, g: Hypergraph, caps: Float64Array, initial: Int32Array | undefined): PartitionResult {
  const { state } = best;
  return {
    parts: state.part,
    cut: state.cut,
    imbalance: imbalanceOf(state.partWeight, g.totalVertexWeight),
    partWeights: state.partWeight,
    maxPartWeight: caps[0]!,
    balanced: best.overflow === 0,
    moved: initial ? best.moved : 0,
  };
}
