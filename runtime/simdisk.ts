/**
 * A simulated disk for one node: an append becomes durable only when a sync,
 * scheduled on the simulated clock `syncDelayMs` later, has run. A crash
 * loses every append not yet synced, as a power cut loses what the OS had
 * not written, so a node that answered before its write was durable is
 * caught out.
 */
import type { Scheduler } from '../protocol/memory.js';
import type { LogEventProps, shardbank } from '../protocol/messages.js';
import { EventLog, type NodeLog } from '../store/eventlog.js';

export class SimDisk {
  /** What survived: synced events only. */
  readonly durable = EventLog.inMemory();
  /** Every event ever synced, compaction or not: the simulator's checkers read the whole history. */
  readonly journal: LogEventProps[] = [];
  private generation = 0;

  constructor(
    private readonly scheduler: Scheduler,
    private readonly syncDelayMs: () => number,
  ) {}

  /** The log a (re)started node process opens. */
  open(): NodeLog {
    const generation = ++this.generation;
    const disk = this;
    let queue: Promise<void> = Promise.resolve();
    // Appended without a sync, not durable yet: a crash or a restart (a new process) loses them.
    const unsynced: LogEventProps[] = [];
    // What reaches the disk goes into the journal too, in the order it got there.
    const writeDurably = (events: LogEventProps[]) => disk.durable.append(events).then(() => void disk.journal.push(...events));
    this.settleUnsynced = () => {
      if (generation !== disk.generation || unsynced.length === 0) return queue;
      const pending = unsynced.splice(0);
      queue = queue.then(() => writeDurably(pending));
      return queue;
    };
    return {
      open: () => disk.durable.open(),
      append(events: LogEventProps[], opts: { sync?: boolean } = {}) {
        if (opts.sync === false) {
          // In the OS's hands, not the disk's: the next synced append takes it along, a crash loses it.
          return new Promise<void>((resolve) => {
            disk.scheduler.schedule(0, () => {
              if (generation !== disk.generation) return;
              unsynced.push(...events);
              resolve();
            });
          });
        }
        // Syncs complete in order; a crash (a newer generation) drops the rest.
        const done = new Promise<void>((resolve) => {
          disk.scheduler.schedule(disk.syncDelayMs(), () => {
            if (generation !== disk.generation) return;
            const all = [...unsynced.splice(0), ...events];
            queue = queue.then(() => writeDurably(all)).then(resolve);
          });
        });
        return done;
      },
      compact(snapshot: LogEventProps) {
        return new Promise<void>((resolve) => {
          disk.scheduler.schedule(disk.syncDelayMs(), () => {
            if (generation !== disk.generation) return;
            const pending = unsynced.splice(0);
            queue = queue
              .then(() => writeDurably(pending))
              .then(() => disk.durable.compact(snapshot))
              .then(() => {
                disk.journal.push(snapshot);
                resolve();
              });
          });
        });
      },
      readAll: (): Promise<shardbank.LogEvent[]> => disk.durable.readAll(),
      clear: () => disk.durable.clear(),
      close: () => Promise.resolve(),
      get size() {
        return disk.durable.size;
      },
    };
  }

  private settleUnsynced: () => Promise<void> = () => Promise.resolve();

  /**
   * What the OS does in its own time when no power cut comes: the appends
   * the running process made without a sync reach the disk.
   */
  settle(): Promise<void> {
    return this.settleUnsynced();
  }

  /** The process died: appends not yet synced are lost. */
  crash(): void {
    this.generation++;
  }
}
