/** A queue that keeps at most `max` items: pushing beyond that forgets the oldest. */
export class BoundedQueue<T> {
  private items: (T | undefined)[] = [];
  private head = 0;

  constructor(
    private readonly max: number,
    private readonly onDrop: () => void,
  ) {}

  get size(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    this.items.push(item);
    if (this.size > this.max) {
      this.items[this.head++] = undefined;
      this.onDrop();
      if (this.head >= 1024 && this.head * 2 >= this.items.length) {
        this.items = this.items.slice(this.head);
        this.head = 0;
      }
    }
  }

  /** Everything queued, oldest first; the queue is empty after. */
  take(): T[] {
    const out = (this.head === 0 ? this.items : this.items.slice(this.head)) as T[];
    this.items = [];
    this.head = 0;
    return out;
  }

  /** Empties the queue; returns how many items it held. */
  clear(): number {
    const n = this.size;
    this.items = [];
    this.head = 0;
    return n;
  }
}
