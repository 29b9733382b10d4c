/**
 * Messages between the actors of one node: XState `sendTo` by system id,
 * with the event checked against the receiver's inbox (events.ts).
 */
import type { Inboxes, Tell } from './events.js';
import type { ActorName } from './node-info.js';

/** A message to a sibling. */
export function tell<K extends ActorName>(to: K, event: Inboxes[K]): Tell {
  return { to, event } as Tell;
}

/** The part of XState's `enqueue` used to post to siblings. */
interface Enqueue {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  sendTo: (...args: any[]) => void;
}

/** The events that carry a run of requests, and the field that holds it. */
const RUNS: Partial<Record<string, 'commands' | 'proposals'>> = {
  admit: 'commands',
  read: 'commands',
  release: 'commands',
  propose: 'proposals',
};

/**
 * Posts messages in order. Consecutive runs of one kind to one actor go as
 * one event that carries them all, in order.
 */
export function post(enqueue: Enqueue, messages: readonly Tell[]): void {
  for (let i = 0; i < messages.length; ) {
    const m = messages[i]!;
    const field = RUNS[m.event.type];
    let j = i + 1;
    let event: Tell['event'] = m.event;
    if (field) {
      while (j < messages.length && messages[j]!.to === m.to && messages[j]!.event.type === m.event.type) j++;
      if (j > i + 1) {
        const joined = messages.slice(i, j).flatMap((x) => (x.event as unknown as Record<string, unknown[]>)[field]!);
        event = Object.assign({}, m.event, { [field]: joined });
      }
    }
    const to = m.to;
    enqueue.sendTo(({ system }: { system: { get(id: string): unknown } }) => system.get(to), event);
    i = j;
  }
}
