/**
 * Part numbers out of a partitioner are arbitrary; the items' current
 * owners are not. Renumbering the parts so that they overlap the initial
 * assignment the most changes no cut and saves every move it can: it is an
 * assignment problem on the k x k overlap matrix, solved exactly.
 */

/**
 * Minimum-cost assignment (Hungarian method, O(k^3)) on a square matrix:
 * returns the column given to each row.
 */
export function minCostAssignment(cost: number[][]): Int32Array {
  const n = cost.length;
  const u = new Float64Array(n + 1);
  const v = new Float64Array(n + 1);
  const p = new Int32Array(n + 1);
  const way = new Int32Array(n + 1);
  for (let i = 1; i <= n; i++) {
    p[0] = i;
    let j0 = 0;
    const minv = new Float64Array(n + 1).fill(Infinity);
    const used = new Uint8Array(n + 1);
    do {
      used[j0] = 1;
      const i0 = p[j0]!;
      let delta = Infinity;
      let j1 = 0;
      for (let j = 1; j <= n; j++) {
        if (used[j]) continue;
        const cur = cost[i0 - 1]![j - 1]! - u[i0]! - v[j]!;
        if (cur < minv[j]!) {
          minv[j] = cur;
          way[j] = j0;
        }
        if (minv[j]! < delta) {
          delta = minv[j]!;
          j1 = j;
        }
      }
      for (let j = 0; j <= n; j++) {
        if (used[j]) {
          u[p[j]!]! += delta;
          v[j]! -= delta;
        } else minv[j]! -= delta;
      }
      j0 = j1;
    } while (p[j0] !== 0);
    do {
      const j1 = way[j0]!;
      p[j0] = p[j1]!;
      j0 = j1;
    } while (j0 !== 0);
  }
  const result = new Int32Array(n);
  for (let j = 1; j <= n; j++) result[p[j]! - 1] = j - 1;
  return result;
}

/**
 * The renumbering of parts that keeps the most vertices in their initial
 * part. `partOf(v)` is v's part now (v over `initial`'s indices).
 * Returns newLabel[oldPart].
 */
export function bestLabels(k: number, initial: ArrayLike<number>, partOf: (v: number) => number): Int32Array {
  const overlap = Array.from({ length: k }, () => new Array<number>(k).fill(0));
  for (let v = 0; v < initial.length; v++) overlap[partOf(v)]![initial[v]!]!++;
  return minCostAssignment(overlap.map((row) => row.map((x) => -x)));
}

/** Applies newLabel to parts in place. */
export function relabel(parts: Int32Array, newLabel: Int32Array): void {
  for (let v = 0; v < parts.length; v++) parts[v] = newLabel[parts[v]!]!;
}
