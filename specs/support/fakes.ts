/**
 * A clock and a network for driving a BankClient by hand: timers fire only
 * when the test moves time on, and the network records what the client sends
 * and hands it whatever the test answers.
 */
import type { Timers } from '../../client/timers.js';
import type { EnvelopeProps } from '../../protocol/messages.js';
import type { EnvelopeHandler, Transport } from '../../protocol/transport.js';

/** A clock whose timers fire only when the test moves time on. */
export class FakeTimers implements Timers {
  t = 0;
  private timers = new Map<number, { at: number; fn: () => void }>();
  private nextId = 1;
  now = () => this.t;
  setTimeout = (fn: () => void, ms: number) => {
    const id = this.nextId++;
    this.timers.set(id, { at: this.t + ms, fn });
    return id;
  };
  clearTimeout = (id: unknown) => void this.timers.delete(id as number);
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      const due = [...this.timers].filter(([, x]) => x.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      this.timers.delete(due[0]);
      this.t = due[1].at;
      due[1].fn();
    }
    this.t = end;
  }
}

/** Records what the client sends; `handler` delivers what the test answers. */
export class RecordingNet implements Transport {
  sent: EnvelopeProps[] = [];
  handler: EnvelopeHandler = () => {};
  send(env: EnvelopeProps): void {
    this.sent.push(env);
  }
  flush(): void {}
  onEnvelope(h: EnvelopeHandler): void {
    this.handler = h;
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}
