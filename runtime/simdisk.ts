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
    return {
      open: () => disk.durable.open(),
      append(events: LogEventProps[]) {
        // Syncs complete in order; a crash (a newer generation) drops the rest.
        const done = new Promise<void>((resolve) => {
          disk.scheduler.schedule(disk.syncDelayMs(), () => {
            if (generation !== disk.generation) return;
            queue = queue
              .then(() => disk.durable.append(events))
              .then(() => {
                disk.journal.push(...events);
                resolve();
              });
          });
        });
        return done;
      },
      compact(snapshot: LogEventProps) {
        return new Promise<void>((resolve) => {
          disk.scheduler.schedule(disk.syncDelayMs(), () => {
            if (generation !== disk.generation) return;
            queue = queue
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

  /** The process died: appends not yet synced are lost. */
  crash(): void {
    this.generation++;
  }
}
