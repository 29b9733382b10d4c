/**
 * The client requests one connection has waiting for a reply, by request id
 * (`client:timestamp`), with when each arrived. A retry of a request already
 * waiting is not a new one. A request whose reply went another way (a
 * follower relays it, the leader answers over another connection) or never
 * came is forgotten once it is older than `expireMs`, so the count cannot
 * creep up on a client that behaves.
 */
export class InflightRequests {
  /** Insertion order is arrival order: the oldest are first. */
  private readonly waiting = new Map<string, number>();

  constructor(
    private readonly max: number,
    private readonly expireMs: number,
  ) {}

  get size(): number {
    return this.waiting.size;
  }

  /**
   * Notes a request arriving at `now`; false when the connection already has
   * `max` others waiting (the caller answers `overloaded`).
   */
  admit(id: string, now: number): boolean {
    if (this.waiting.has(id)) return true;
    if (this.waiting.size >= this.max) this.expire(now);
    if (this.waiting.size >= this.max) return false;
    this.waiting.set(id, now);
    return true;
  }

  /** A reply left for `id`: how long the request waited (ms), or undefined if it was not waiting here. */
  answer(id: string, now: number): number | undefined {
    const at = this.waiting.get(id);
    if (at === undefined) return undefined;
    this.waiting.delete(id);
    return now - at;
  }

  private expire(now: number): void {
    for (const [id, at] of this.waiting) {
      if (now - at < this.expireMs) return;
      this.waiting.delete(id);
    }
  }
}
