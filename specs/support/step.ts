/**
 * Stepping one machine of a node with XState's pure `transition()`: no
 * actor runs, nothing is sent or written. What a step asks for comes back as
 * values: `effects` (records and sends, `emit`), `tells` (events for
 * siblings, `sendTo`; the receiver is named by the event's type) and
 * `parent` (a 2PC actor's events for the transactions actor, its parent).
 */
import { initialTransition, transition, type AnyStateMachine, type SnapshotFrom } from 'xstate';
import type { Effect, Emitted } from '../../actors/effects.js';
import { nodeInfo, type ActorInput } from '../../actors/node-info.js';
import { makeTopology, type Tuning } from '../../protocol/topology.js';
import { emptyState, type ReplicaState } from '../../store/state.js';
import type { electionMachine } from '../../actors/election.js';

export interface Stepped<M extends AnyStateMachine> {
  snapshot: SnapshotFrom<M>;
  effects: Effect[];
  tells: { type: string; [k: string]: unknown }[];
  parent: { type: string; [k: string]: unknown }[];
  /** Every action the step returned, unexecuted. */
  actions: { type: string; params?: unknown }[];
}

/** A node's input: node 1 of a 3 x 3 cluster, with a fresh replica state (or the one given). */
export function nodeInput(opts: { node?: number; state?: ReplicaState; tuning?: Partial<Tuning> } = {}): ActorInput & { state: ReplicaState } {
  const node = opts.node ?? 1;
  const topology = makeTopology({ tuning: opts.tuning });
  return { info: nodeInfo(topology, node), state: opts.state ?? emptyState(node) };
}

function sort<M extends AnyStateMachine>(snapshot: SnapshotFrom<M>, actions: unknown[]): Stepped<M> {
  const out: Stepped<M> = { snapshot, effects: [], tells: [], parent: [], actions: [] };
  for (const a of actions as { type: string; params?: Record<string, unknown> }[]) {
    out.actions.push({ type: a.type, params: a.params });
    if (a.type === 'xstate.emit') {
      const e = a.params!['event'] as Emitted;
      if (e.type === 'effects') out.effects.push(...e.effects);
      else out.effects.push(e);
    }
    else if (a.type === 'xstate.sendTo') {
      const event = a.params!['event'] as Stepped<M>['tells'][number];
      (isParentEvent(event) ? out.parent : out.tells).push(event);
    }
  }
  return out;
}

/** Events a 2PC actor sends its parent (the transactions actor), as opposed to siblings. */
const PARENT_EVENTS = new Set(['out', 'effects', 'acked', 'reply', 'txDone']);
function isParentEvent(e: { type: string }): boolean {
  return PARENT_EVENTS.has(e.type);
}

export function start<M extends AnyStateMachine>(machine: M, input: unknown): Stepped<M> {
  const [snapshot, actions] = initialTransition(machine, input as never);
  return sort(snapshot as SnapshotFrom<M>, actions);
}

export function step<M extends AnyStateMachine>(machine: M, snapshot: SnapshotFrom<M>, event: { type: string } & Record<string, unknown>): Stepped<M> {
  const [next, actions] = transition(machine, snapshot as never, event as never);
  return sort(next as SnapshotFrom<M>, actions);
}

/** Steps through events in order, each from the snapshot the last one left. */
export function steps<M extends AnyStateMachine>(machine: M, snapshot: SnapshotFrom<M>, events: ({ type: string } & Record<string, unknown>)[]): Stepped<M> {
  let s = { snapshot } as Stepped<M>;
  for (const e of events) s = step(machine, s.snapshot, e);
  return s;
}

/** The records among effects. */
export function records(effects: Effect[]) {
  return effects.flatMap((e) => (e.type === 'record' ? [e.event] : []));
}

/** The envelopes among effects. */
export function sends(effects: Effect[]) {
  return effects.flatMap((e) => (e.type === 'send' ? [e.envelope] : []));
}

/**
 * An election machine stepped until it campaigns: ticks until its leader is
 * quiet long enough (pre-candidate), then a pre-vote from `voter` for the
 * ballot it would campaign with. Bounded, so a machine that never gets there
 * fails the spec instead of hanging it.
 */
export function campaign(machine: typeof electionMachine, snapshot: SnapshotFrom<typeof electionMachine>, voter = 2): SnapshotFrom<typeof electionMachine> {
  let s = snapshot;
  for (let i = 0; i < 100 && s.value !== 'precandidate'; i++) s = step(machine, s, { type: 'tick' }).snapshot;
  if (s.value !== 'precandidate') throw new Error(`no pre-vote after 100 ticks (state ${JSON.stringify(s.value)})`);
  const round = Math.max(s.context.view.ballot.round ?? 0, s.context.state.promised.round ?? 0, s.context.seenRound) + 1;
  return step(machine, s, { type: 'preVoteReply', from: voter, msg: { ballot: { round, node: s.context.info.self }, granted: true } }).snapshot;
}
