/**
 * Gain buckets, the priority queue of Fiduccia-Mattheyses: one doubly linked
 * list of vertices per integer gain, and a pointer to the highest non-empty
 * bucket. Insert, remove and change of gain are O(1); taking the best is
 * amortised O(1) because the pointer only moves down between inserts.
 * Within a bucket the newest vertex comes out first (LIFO), which keeps a
 * pass working on one region of the graph.
 */
export class GainBuckets {
  private readonly head: Int32Array;
  private readonly next: Int32Array;
  private readonly prev: Int32Array;
  private readonly keyOf: Int32Array;
  private readonly queued: Uint8Array;
  private top = -1;
  private count = 0;

  /** Vertices 0..vertexCount-1 with keys in [-maxKey, maxKey] (larger ones are clamped). */
  constructor(
    vertexCount: number,
    private readonly maxKey: number,
  ) {
    this.head = new Int32Array(2 * maxKey + 1).fill(-1);
    this.next = new Int32Array(vertexCount);
    this.prev = new Int32Array(vertexCount);
    this.keyOf = new Int32Array(vertexCount);
    this.queued = new Uint8Array(vertexCount);
  }

  get size(): number {
    return this.count;
  }

  has(v: number): boolean {
    return this.queued[v] === 1;
  }

  key(v: number): number {
    return this.keyOf[v]!;
  }

  insert(v: number, key: number): void {
    if (this.queued[v]) this.remove(v);
    const k = Math.max(-this.maxKey, Math.min(this.maxKey, key));
    const slot = k + this.maxKey;
    const first = this.head[slot]!;
    this.next[v] = first;
    this.prev[v] = -1;
    if (first >= 0) this.prev[first] = v;
    this.head[slot] = v;
    this.keyOf[v] = k;
    this.queued[v] = 1;
    this.count++;
    if (slot > this.top) this.top = slot;
  }

  remove(v: number): void {
    if (!this.queued[v]) return;
    const slot = this.keyOf[v]! + this.maxKey;
    const p = this.prev[v]!;
    const n = this.next[v]!;
    if (p >= 0) this.next[p] = n;
    else this.head[slot] = n;
    if (n >= 0) this.prev[n] = p;
    this.queued[v] = 0;
    this.count--;
  }

  /** Takes out a vertex of the highest key, or returns -1 when empty. */
  popMax(): number {
    if (this.count === 0) return -1;
    while (this.head[this.top]! < 0) this.top--;
    const v = this.head[this.top]!;
    this.remove(v);
    return v;
  }
}
