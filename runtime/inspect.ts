/**
 * The inspection stream: every step of every actor of a node (the fixed
 * ones and each transaction's), as an rxjs Observable of InspectRecords.
 *
 * XState's inspection is attached to the node's actor system only while
 * someone subscribes (and once for all of them: the stream is shared), so
 * a node nobody watches pays nothing for it.
 */
import { Observable, share } from 'rxjs';
import type { AnyActorRef, InspectionEvent } from 'xstate';
import type { NodeId, shardbank } from '../protocol/messages.js';

export type InspectRecord = shardbank.InspectRecord.$Properties;

/** Characters of an event's JSON kept in a record. */
const EVENT_JSON_MAX = 400;

/** An event as a short JSON string: a turn's envelopes by kind and count, anything else cut. */
export function summarizeEvent(event: { type: string } & Record<string, unknown>): string {
  if (event.type === 'messages' && Array.isArray(event['envelopes'])) {
    const kinds: Record<string, number> = {};
    for (const e of event['envelopes'] as Record<string, unknown>[]) {
      const kind = Object.keys(e).find((k) => !['from', 'to', 'toClient', 'fromClient', 'epoch'].includes(k) && e[k] != null) ?? 'unknown';
      kinds[kind] = (kinds[kind] ?? 0) + 1;
    }
    return JSON.stringify({ type: 'messages', envelopes: kinds });
  }
  let json: string;
  try {
    json = JSON.stringify(event, (_k, v) => (v instanceof Map ? Object.fromEntries(v) : v instanceof Set ? [...v] : v));
  } catch {
    json = JSON.stringify({ type: event.type });
  }
  return json.length > EVENT_JSON_MAX ? `${json.slice(0, EVENT_JSON_MAX - 1)}…` : json;
}

function machineOf(ref: AnyActorRef): string {
  const logic = (ref as unknown as { logic?: { id?: string } }).logic;
  return logic?.id ?? '';
}

/** `root` and every actor under it, parents first. */
function actorTree(root: AnyActorRef): AnyActorRef[] {
  const out: AnyActorRef[] = [];
  const visit = (ref: AnyActorRef) => {
    out.push(ref);
    const children = (ref.getSnapshot() as { children?: Record<string, AnyActorRef | undefined> }).children ?? {};
    for (const child of Object.values(children)) if (child) visit(child);
  };
  visit(root);
  return out;
}

/**
 * The steps of every actor in `root`'s system, after a record of where each
 * actor stands when the stream is subscribed. `now` stamps each record
 * (milliseconds since the node started).
 */
export function inspectActors(root: AnyActorRef, node: NodeId, now: () => number): Observable<InspectRecord> {
  return new Observable<InspectRecord>((subscriber) => {
    let seq = 0;
    const states = new Map<string, string>();
    const record = (r: Omit<InspectRecord, 'node' | 'seq' | 'atMs'>) => subscriber.next(Object.assign({ node, seq: ++seq, atMs: now() }, r));
    const sub = root.system.inspect((ev: InspectionEvent) => {
      if (ev.type === '@xstate.actor') {
        const ref = ev.actorRef as AnyActorRef;
        record({ kind: 'spawned', actor: ref.id, machine: machineOf(ref), event: '', eventJson: '', stateJson: '', changed: false });
        return;
      }
      if (ev.type !== '@xstate.snapshot') return;
      const ref = ev.actorRef as AnyActorRef;
      const snapshot = ev.snapshot as { value?: unknown; status?: string };
      const stateJson = JSON.stringify(snapshot.value ?? null);
      const before = states.get(ref.id);
      const stopped = snapshot.status !== undefined && snapshot.status !== 'active';
      if (stopped) states.delete(ref.id);
      else states.set(ref.id, stateJson);
      const event = ev.event as { type: string } & Record<string, unknown>;
      record({
        kind: stopped ? 'stopped' : 'transition',
        actor: ref.id,
        machine: machineOf(ref),
        event: event.type,
        eventJson: summarizeEvent(event),
        stateJson,
        changed: before !== stateJson,
      });
    });
    // Where every actor stands now, as if each had just started: an actor that takes no step
    // while watched (an idle one is told no ticks) is still shown in its state.
    for (const ref of actorTree(root)) {
      const snapshot = ref.getSnapshot() as { value?: unknown; status?: string };
      if (snapshot.status !== undefined && snapshot.status !== 'active') continue;
      const stateJson = JSON.stringify(snapshot.value ?? null);
      states.set(ref.id, stateJson);
      record({ kind: 'transition', actor: ref.id, machine: machineOf(ref), event: 'xstate.init', eventJson: '{"type":"xstate.init"}', stateJson, changed: false });
    }
    return () => sub.unsubscribe();
  }).pipe(share());
}
