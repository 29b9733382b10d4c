/**
 * An in-memory event log the specs can get in the way of: `held` makes writes
 * wait until `release()`, `broken` makes them fail.
 */
import type { LogEventProps } from '../../protocol/messages.js';
import { EventLog, type NodeLog } from '../../store/eventlog.js';

export class ControlledLog implements NodeLog {
  held = false;
  broken = false;
  /** The number of events in each write that went through. */
  readonly appends: number[] = [];
  /** Each write that went through: its events, and whether it asked for an fsync. */
  readonly writes: { events: LogEventProps[]; sync: boolean }[] = [];
  private waiting: (() => void)[] = [];
  private readonly inner = EventLog.inMemory();
  open = () => this.inner.open();
  readAll = () => this.inner.readAll();
  clear = () => this.inner.clear();
  close = () => this.inner.close();
  compact = (s: LogEventProps) => this.inner.compact(s);
  get size() {
    return this.inner.size;
  }
  async append(events: LogEventProps[], opts: { sync?: boolean } = {}): Promise<void> {
    if (this.held) await new Promise<void>((r) => this.waiting.push(r));
    if (this.broken) throw new Error('disk full');
    this.appends.push(events.length);
    this.writes.push({ events, sync: opts.sync !== false });
    return this.inner.append(events);
  }
  release(): void {
    this.held = false;
    for (const r of this.waiting.splice(0)) r();
  }
}
