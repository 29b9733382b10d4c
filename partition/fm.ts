/**
 * k-way Fiduccia-Mattheyses refinement. A pass takes the boundary vertex
 * whose best move gains the most (gain buckets), moves it to a part with
 * room, locks it, and goes on, also through moves that lose, so that it can
 * climb out of a local minimum; at the end it rolls back to the best prefix
 * of the moves. Passes repeat while they improve.
 *
 * "Best" is lexicographic: less cut first, then fewer vertices away from
 * their initial part, when the caller gives one. The second criterion is
 * folded into the bucket key (3 x gain + 1 for a move home, - 1 for a move
 * away), which is exact because gains are integers.
 */
import { GainBuckets } from './buckets.js';
import { shuffled, type Rng } from './rng.js';
import type { PartitionState } from './state.js';

export interface RefineOptions {
  rng: Rng;
  /** Part each vertex started in (the current owner); ties go toward it. */
  initial?: Int32Array;
  /** Most passes per call (default 8). */
  maxPasses?: number;
  /**
   * A pass stops after this many moves without a new best (default: 10% of
   * the vertices, at least 300): long climbs are what find the better cuts
   * of Zipf graphs, whose hot items move only with their neighbourhoods.
   */
  stopAfter?: number;
}

/** Picks moves for one state: the best target of a vertex and its bucket key. */
class MovePicker {
  readonly factor: number;
  key = 0;

  constructor(
    private readonly st: PartitionState,
    private readonly caps: Float64Array,
    private readonly initial: Int32Array | undefined,
  ) {
    this.factor = initial ? 3 : 1;
  }

  /** The largest |key| a vertex can have. */
  maxKey(): number {
    let max = 0;
    for (const d of this.st.degree) max = Math.max(max, d);
    return this.factor * max + 1;
  }

  /** How a move of v changes the count of vertices away from home: -1, 0 or +1. */
  awayDelta(v: number, to: number): number {
    if (!this.initial) return 0;
    const home = this.initial[v]!;
    return (this.st.part[v] === home ? 1 : 0) - (to === home ? 1 : 0);
  }

  /**
   * The best part for v (by gain, then home, then the emptiest), or -1;
   * with `roomOnly`, only parts that can take v. Sets `this.key`.
   */
  target(v: number, roomOnly: boolean): number {
    const { st, caps, factor } = this;
    const { k, part, partWeight } = st;
    const from = part[v]!;
    const w = st.graph.vertexWeight[v]!;
    let best = -1;
    let bestKey = -Infinity;
    let bestFill = Infinity;
    for (let p = 0; p < k; p++) {
      if (p === from) continue;
      if (roomOnly && partWeight[p]! + w > caps[p]!) continue;
      const key = st.gain(v, p) * factor - this.awayDelta(v, p);
      const fill = partWeight[p]! / caps[p]!;
      if (key > bestKey || (key === bestKey && fill < bestFill)) {
        best = p;
        bestKey = key;
        bestFill = fill;
      }
    }
    this.key = bestKey;
    return best;
  }
}

/** Calls back once per distinct vertex touched by one move. */
class TouchSet {
  private readonly mark: Int32Array;
  private stamp = 0;
  readonly list: number[] = [];
  readonly add = (u: number): void => {
    if (this.mark[u] === this.stamp) return;
    this.mark[u] = this.stamp;
    this.list.push(u);
  };

  constructor(n: number) {
    this.mark = new Int32Array(n);
  }

  reset(): void {
    this.stamp++;
    this.list.length = 0;
  }
}

/**
 * Moves vertices out of parts over their cap into parts with room, the
 * cheapest first, until every part fits or nothing more can move.
 * Returns whether every part fits.
 */
export function rebalance(st: PartitionState, caps: Float64Array, opts: RefineOptions): boolean {
  const over = (p: number) => st.partWeight[p]! > caps[p]!;
  const anyOver = () => st.partWeight.some((w, p) => w > caps[p]!);
  if (!anyOver()) return true;
  const pick = new MovePicker(st, caps, opts.initial);
  const n = st.graph.vertexCount;
  const queue = new GainBuckets(n, pick.maxKey());
  const done = new Uint8Array(n);
  for (const v of shuffled(n, opts.rng)) {
    if (over(st.part[v]!) && pick.target(v, true) >= 0) queue.insert(v, pick.key);
  }
  const touch = new TouchSet(n);
  while (queue.size > 0 && anyOver()) {
    const v = queue.popMax();
    if (!over(st.part[v]!)) continue;
    const queued = queue.key(v);
    const to = pick.target(v, true);
    if (to < 0) continue;
    if (pick.key < queued) {
      queue.insert(v, pick.key);
      continue;
    }
    touch.reset();
    st.move(v, to, touch.add);
    done[v] = 1;
    for (const u of touch.list) {
      if (!done[u] && queue.has(u) && pick.target(u, true) >= 0) queue.insert(u, pick.key);
    }
  }
  return !anyOver();
}

/** One FM pass; returns whether it ended better than it started. */
export function fmPass(st: PartitionState, caps: Float64Array, opts: RefineOptions): boolean {
  const n = st.graph.vertexCount;
  const pick = new MovePicker(st, caps, opts.initial);
  const queue = new GainBuckets(n, pick.maxKey());
  for (const v of shuffled(n, opts.rng)) {
    if (st.isBoundary(v) && pick.target(v, false) >= 0) queue.insert(v, pick.key);
  }
  const locked = new Uint8Array(n);
  const moved = new Int32Array(n);
  const movedFrom = new Int32Array(n);
  const stopAfter = opts.stopAfter ?? Math.max(300, Math.floor(n * 0.1));
  const touch = new TouchSet(n);
  const startCut = st.cut;
  let length = 0;
  let away = 0;
  let bestCut = st.cut;
  let bestAway = 0;
  let bestLength = 0;
  let sinceBest = 0;
  while (queue.size > 0) {
    const v = queue.popMax();
    const queued = queue.key(v);
    const to = pick.target(v, true);
    if (to < 0) continue;
    if (pick.key < queued) {
      queue.insert(v, pick.key);
      continue;
    }
    away += pick.awayDelta(v, to);
    moved[length] = v;
    movedFrom[length++] = st.part[v]!;
    touch.reset();
    st.move(v, to, touch.add);
    locked[v] = 1;
    for (const u of touch.list) {
      if (locked[u]) continue;
      if (pick.target(u, false) >= 0) queue.insert(u, pick.key);
      else queue.remove(u);
    }
    if (st.cut < bestCut || (st.cut === bestCut && away < bestAway)) {
      bestCut = st.cut;
      bestAway = away;
      bestLength = length;
      sinceBest = 0;
    } else if (++sinceBest >= stopAfter) break;
  }
  for (let i = length - 1; i >= bestLength; i--) st.move(moved[i]!, movedFrom[i]!);
  return bestCut < startCut || bestAway < 0;
}

/** Rebalances if needed, then runs FM passes while they improve. */
export function refine(st: PartitionState, caps: Float64Array, opts: RefineOptions): void {
  rebalance(st, caps, opts);
  const passes = opts.maxPasses ?? 8;
  for (let i = 0; i < passes; i++) if (!fmPass(st, caps, opts)) break;
}
