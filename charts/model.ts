/**
 * A statechart as data, read from an XState machine's own definition: its
 * state tree (nested and parallel regions, initial and final states) and its
 * transitions with the event and guard that take them. Nothing here is placed
 * by hand; the layout comes later (layout.ts).
 *
 * XState's `machine.toJSON()` leaves out eventless (`always`) transitions and
 * guards built with `and` / `or` / `not`, so the walk reads the StateNode
 * objects that `toJSON()` is made from.
 *
 * Transitions without a target (actions only) are drawn inside their state
 * as lines, `event [guard] / actions`, as UML does for internal transitions.
 * A transition declared on a compound state that targets one of its own
 * descendants (e.g. the machine's `flushed`) leaves from a pseudo-state
 * "in any state" inside it.
 */
import type { AnyStateMachine } from 'xstate';

export type StateKind = 'atomic' | 'compound' | 'parallel' | 'final' | 'history' | 'initial' | 'any';

export interface ChartState {
  /** Dotted path from the machine id: `proposer.leading.quiet`. */
  id: string;
  /** The last part of the id (a pseudo-state's is `•` or `any`). */
  key: string;
  kind: StateKind;
  children: ChartState[];
  /** Targetless transitions, one text line each: `tick [timerExpired] / countTick`. */
  internal: string[];
  entry: string[];
  exit: string[];
}

export interface ChartEdge {
  id: string;
  source: string;
  target: string;
  event: string;
  guard: string;
  /** `event [guard]`: what the drawing writes beside the arrow. */
  label: string;
  actions: string[];
}

export interface Chart {
  machine: string;
  root: ChartState;
  edges: ChartEdge[];
}

/** The XState StateNode fields this walk reads (they are public, not all typed as such). */
interface NodeLike {
  id: string;
  key: string;
  type: 'atomic' | 'compound' | 'parallel' | 'final' | 'history';
  states: Record<string, NodeLike>;
  initial?: { target?: readonly NodeLike[] };
  transitions: Map<string, TransitionLike[]>;
  always?: TransitionLike[];
  entry: unknown[];
  exit: unknown[];
}

interface TransitionLike {
  eventType: string;
  target?: readonly NodeLike[];
  guard?: unknown;
  actions: unknown[];
  reenter?: boolean;
}

/** An eventless transition's event name in the drawing. */
export const ALWAYS = 'always';

/** A guard as text: `timerExpired`, `timedOut ∧ ¬localPrepared`. */
export function guardText(guard: unknown): string {
  if (guard === undefined || guard === null) return '';
  if (typeof guard === 'string') return guard;
  if (typeof guard === 'function') {
    const g = guard as { name?: string; guards?: unknown[] };
    const parts = (g.guards ?? []).map(guardText);
    if (g.name === 'not' && parts.length === 1) return `¬${parts[0]}`;
    if (g.name === 'and') return parts.map(wrap).join(' ∧ ');
    if (g.name === 'or') return parts.map(wrap).join(' ∨ ');
    return g.name || 'guard';
  }
  if (typeof guard === 'object' && 'type' in (guard as object)) return String((guard as { type: unknown }).type);
  return 'guard';
}

function wrap(text: string): string {
  return /[∧∨]/.test(text) ? `(${text})` : text;
}

/** An action as text: its name, or `spawn` / `raise` for XState's built-ins. */
function actionText(action: unknown): string {
  if (typeof action === 'string') return action;
  if (typeof action === 'function') {
    const t = (action as { type?: string }).type ?? (action as { name?: string }).name ?? '';
    return t.replace(/^xstate\./, '') || 'action';
  }
  if (action && typeof action === 'object' && 'type' in action) return String((action as { type: unknown }).type).replace(/^xstate\./, '');
  return 'action';
}

function labelOf(event: string, guard: string): string {
  return guard ? `${event} [${guard}]` : event;
}

function isDescendant(id: string, ancestor: string): boolean {
  return id.startsWith(`${ancestor}.`);
}

/** The chart of one machine, from its definition. */
export function chartOf(machine: AnyStateMachine): Chart {
  const rootNode = machine.root as unknown as NodeLike;
  const edges: ChartEdge[] = [];
  const pending: { owner: ChartState; t: TransitionLike }[] = [];

  const build = (node: NodeLike): ChartState => {
    const state: ChartState = {
      id: node.id,
      key: node.key,
      kind: node.type,
      children: [],
      internal: [],
      entry: node.entry.map(actionText).filter((a) => a !== 'spawnChild'),
      exit: node.exit.map(actionText),
    };
    const childNodes = Object.values(node.states ?? {});
    if (childNodes.length > 0 && node.type === 'compound') {
      const initial = node.initial?.target?.[0];
      if (initial) {
        const marker: ChartState = { id: `${node.id}.•`, key: '•', kind: 'initial', children: [], internal: [], entry: [], exit: [] };
        state.children.push(marker);
        edges.push({ id: `e${edges.length}`, source: marker.id, target: initial.id, event: '', guard: '', label: '', actions: [] });
      }
    }
    for (const child of childNodes) state.children.push(build(child));
    const all = [...node.transitions.values()].flat();
    for (const t of [...all, ...(node.always ?? [])]) pending.push({ owner: state, t });
    return state;
  };
  const root = build(rootNode);

  const anyStates = new Map<string, ChartState>();
  const anyOf = (owner: ChartState): ChartState => {
    let any = anyStates.get(owner.id);
    if (!any) {
      any = { id: `${owner.id}.*`, key: 'any', kind: 'any', children: [], internal: [], entry: [], exit: [] };
      owner.children.push(any);
      anyStates.set(owner.id, any);
    }
    return any;
  };

  for (const { owner, t } of pending) {
    const event = t.eventType === '' || t.eventType === undefined ? ALWAYS : t.eventType;
    const guard = guardText(t.guard);
    const actions = t.actions.map(actionText);
    const targets = t.target ?? [];
    if (targets.length === 0) {
      // A transition on the machine itself with no target: a line in the "in any state" box.
      const where = owner === root ? anyOf(root) : owner;
      where.internal.push(actions.length > 0 ? `${labelOf(event, guard)} / ${actions.join(', ')}` : labelOf(event, guard));
      continue;
    }
    for (const target of targets) {
      const source = isDescendant(target.id, owner.id) || owner === root ? anyOf(owner).id : owner.id;
      edges.push({ id: `e${edges.length}`, source, target: target.id, event, guard, label: labelOf(event, guard), actions });
    }
  }
  return { machine: machine.id, root, edges };
}

/** Every state of a chart, depth first (pseudo-states included). */
export function statesOf(chart: Chart): ChartState[] {
  const out: ChartState[] = [];
  const walk = (s: ChartState) => {
    out.push(s);
    s.children.forEach(walk);
  };
  walk(chart.root);
  return out;
}

/**
 * The ids of the states a state value makes active, ancestors included:
 * `{ leading: 'quiet' }` in `proposer` is `proposer`, `proposer.leading`,
 * `proposer.leading.quiet`.
 */
export function activeIds(machine: string, value: unknown): string[] {
  const out = [machine];
  const walk = (prefix: string, v: unknown) => {
    if (typeof v === 'string') {
      out.push(`${prefix}.${v}`);
      return;
    }
    if (v && typeof v === 'object') {
      for (const [k, sub] of Object.entries(v as Record<string, unknown>)) {
        out.push(`${prefix}.${k}`);
        walk(`${prefix}.${k}`, sub);
      }
    }
  };
  walk(machine, value);
  return out;
}

/**
 * The edges a step most likely took: those for `event` that leave an
 * active state (or its "any state"), and reach a state active after it.
 */
export function firedEdges(chart: Chart, before: readonly string[], event: string, after: readonly string[]): string[] {
  const was = new Set(before);
  const now = new Set(after);
  const leaves = (source: string) => was.has(source) || (source.endsWith('.*') && was.has(source.slice(0, -2)));
  return chart.edges
    .filter((e) => (e.event === event || e.event === ALWAYS) && e.event !== '' && leaves(e.source) && now.has(e.target))
    .map((e) => e.id);
}
