/**
 * The per-node event log on any abstract-level store: LevelDB on disk for real
 * nodes (classic-level), memory-level in simulation. Each `append` is one
 * batch, synced to disk before it resolves (group commit).
 */
import { ClassicLevel } from 'classic-level';
import { MemoryLevel } from 'memory-level';
import { shardbank, type LogEventProps } from '../protocol/messages.js';

/** The part of abstract-level this log uses; both stores provide it. */
interface Db {
  open(): Promise<void>;
  close(): Promise<void>;
  clear(opts?: { lt?: string }): Promise<void>;
  batch(ops: { type: 'put'; key: string; value: Uint8Array }[], opts: { sync?: boolean }): Promise<void>;
  iterator(opts?: { reverse?: boolean; limit?: number }): AsyncIterable<[string, Uint8Array]>;
}

const KEY_WIDTH = 12;

function keyFor(index: number): string {
  return index.toString(16).padStart(KEY_WIDTH, '0');
}

/** What a node needs of its log; the simulator's disk provides it too. */
export interface NodeLog {
  open(): Promise<void>;
  /**
   * Appends events as one batch. With `sync: false` it may resolve before
   * the batch is on disk: a power cut can lose it, and with it everything
   * after it, until the next synced append makes all of them durable.
   */
  append(events: LogEventProps[], opts?: { sync?: boolean }): Promise<void>;
  readAll(): Promise<shardbank.LogEvent[]>;
  clear(): Promise<void>;
  close(): Promise<void>;
  readonly size: number;
  /** Appends a snapshot, then deletes every event before it. */
  compact(snapshot: LogEventProps): Promise<void>;
}

export class EventLog implements NodeLog {
  private nextIndex = 0;
  private opened = false;

  private constructor(
    private readonly db: Db,
    private readonly sync: boolean,
  ) {}

  /** A log in a LevelDB directory; events are fsynced before append resolves. */
  static onDisk(dir: string, opts: { sync?: boolean } = {}): EventLog {
    return new EventLog(new ClassicLevel<string, Uint8Array>(dir, { valueEncoding: 'view' }) as unknown as Db, opts.sync ?? true);
  }

  /** A log in memory (simulation, specs). */
  static inMemory(): EventLog {
    return new EventLog(new MemoryLevel<string, Uint8Array>({ valueEncoding: 'view' }) as unknown as Db, false);
  }

  async open(): Promise<void> {
    if (this.opened) return;
    await this.db.open();
    this.opened = true;
    for await (const [key, value] of this.db.iterator({ reverse: true, limit: 1 })) {
      this.nextIndex = parseInt(key, 16) + (shardbank.LogEvent.decode(value).batch?.events?.length || 1);
    }
  }

  /**
   * Appends events as one record (keyed by the index of its first event);
   * resolves once it is durable, or, with `sync: false`, once LevelDB has it
   * (a later synced append makes it durable too: LevelDB's log is one file,
   * written in order). One record a turn keeps the store's per-write cost off
   * each event.
   */
  async append(events: LogEventProps[], opts: { sync?: boolean } = {}): Promise<void> {
    if (events.length === 0) return;
    const key = keyFor(this.nextIndex);
    this.nextIndex += events.length;
    const value = shardbank.LogEvent.encode(events.length === 1 ? events[0]! : { batch: { events } }).finish();
    await this.db.batch([{ type: 'put', key, value }], { sync: this.sync && opts.sync !== false });
  }

  /** Every event in order, with its index (records holding a batch are flattened). */
  async *entries(): AsyncGenerator<{ index: number; event: shardbank.LogEvent }> {
    for await (const [key, value] of this.db.iterator()) {
      const index = parseInt(key, 16);
      const event = shardbank.LogEvent.decode(value);
      if (!event.batch) {
        yield { index, event };
        continue;
      }
      // Decoding builds LogEvent instances; the generated type only promises their fields.
      const events = (event.batch.events ?? []) as shardbank.LogEvent[];
      for (const [i, e] of events.entries()) yield { index: index + i, event: e };
    }
  }

  async readAll(): Promise<shardbank.LogEvent[]> {
    const out: shardbank.LogEvent[] = [];
    for await (const { event } of this.entries()) out.push(event);
    return out;
  }

  async compact(snapshot: LogEventProps): Promise<void> {
    const index = this.nextIndex;
    await this.append([snapshot]);
    // A crash between the two leaves old events before the snapshot; replay starts over at it anyway.
    await this.db.clear({ lt: keyFor(index) });
  }

  /** Events actually stored (after compaction, fewer than `size`). */
  async count(): Promise<number> {
    let n = 0;
    for await (const _ of this.entries()) n++;
    return n;
  }

  /** Drops every event (a flush starts the log anew). */
  async clear(): Promise<void> {
    await this.db.clear();
    this.nextIndex = 0;
  }

  get size(): number {
    return this.nextIndex;
  }

  async close(): Promise<void> {
    if (this.opened) await this.db.close();
    this.opened = false;
  }
}
