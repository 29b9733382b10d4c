/**
 * The studio's replay: a node's event log opened once, read into memory and
 * described line by line (as `shardbank replay` prints it), then stepped to
 * any point. At a step the page gets the lit state of every chart
 * (charts/lights.ts), the replica state rebuilt by the node's own fold, and
 * the timeline around it. Stepping forward folds on from where it is;
 * stepping back starts again from the nearest checkpoint (one every
 * CHECKPOINT_EVERY events).
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { activeIds } from '../charts/model.js';
import { cloneLights, FINAL_TX_STATES, initialLights, stepLights, type Lights } from '../charts/lights.js';
import { parseNodeName } from '../protocol/messages.js';
import {
  advance,
  describe,
  diffSources,
  eventMatches,
  formatLine,
  newContext,
  openSource,
  ReplayError,
  stateJson,
  type Context,
  type EventSource,
  type LogRecord,
  type ReplayFilter,
} from './replay.js';

const CHECKPOINT_EVERY = 1000;
/** Lines of timeline sent around a step. */
const WINDOW = 12;
/** The most events one log may hold in the studio (a bigger one is refused with a message). */
const MAX_EVENTS = 2_000_000;

interface Checkpoint {
  step: number;
  ctx: Context;
  lights: Lights;
}

/** Where a step lands: its event, every chart's lit states and the replica state. */
export interface StepView {
  step: number;
  index: number;
  count: number;
  line: string;
  /** Machine id -> active state ids. */
  lit: Record<string, string[]>;
  /** Cross-shard transactions of this set: txid, role, chart state, the logged phase. */
  txs: { txid: string; role: string; state: string; phase: string; why: string; active: boolean; lit: string[] }[];
  state: Record<string, unknown>;
  timeline: { step: number; line: string }[];
}

export interface ReplayMarks {
  /** Steps where the node's role changed (campaigns, leadership) and where sets started. */
  roles: { step: number; text: string }[];
  flushes: number[];
}

export class ReplayLog {
  readonly lines: string[] = [];
  readonly marks: ReplayMarks = { roles: [], flushes: [] };
  private readonly checkpoints: Checkpoint[] = [];
  private cursor: Checkpoint;

  private constructor(
    readonly id: string,
    readonly label: string,
    readonly node: number,
    readonly path: string,
    readonly records: LogRecord[],
  ) {
    this.cursor = { step: -1, ctx: newContext(node), lights: initialLights() };
  }

  /** Reads a whole log; bad input is a ReplayError with one line to show. */
  static async open(id: string, path: string): Promise<ReplayLog> {
    const src = await openSource(path);
    const records: LogRecord[] = [];
    try {
      for await (const r of src.records()) {
        if (records.length >= MAX_EVENTS) throw new ReplayError(`${path}: more than ${MAX_EVENTS} events; use shardbank replay with filters instead`);
        records.push(r);
      }
    } finally {
      await src.close();
    }
    if (records.length === 0) throw new ReplayError(`${path}: the log holds no events`);
    const log = new ReplayLog(id, src.label, src.node, resolve(path), records);
    log.readThrough();
    return log;
  }

  get count(): number {
    return this.records.length;
  }

  /** One pass: the timeline lines, the marks, and the checkpoints. */
  private readThrough(): void {
    const ctx = newContext(this.node);
    const lights = initialLights();
    this.checkpoints.push({ step: -1, ctx: structuredClone(ctx), lights: cloneLights(lights) });
    this.records.forEach(({ index, event }, step) => {
      this.lines.push(formatLine(index, event, describe(event, ctx)));
      if (event.role) this.marks.roles.push({ step, text: `${event.role.role}` });
      if (event.flushed) this.marks.flushes.push(step);
      advance(ctx, event);
      stepLights(lights, this.node, index, event, ctx.state);
      if ((step + 1) % CHECKPOINT_EVERY === 0) this.checkpoints.push({ step, ctx: structuredClone(ctx), lights: cloneLights(lights) });
    });
  }

  /** The fold after `step` (0-based, through the event at that position). */
  private foldTo(step: number): Checkpoint {
    if (step < this.cursor.step) {
      const from = [...this.checkpoints].reverse().find((c) => c.step <= step)!;
      this.cursor = { step: from.step, ctx: structuredClone(from.ctx), lights: cloneLights(from.lights) };
    }
    const c = this.cursor;
    while (c.step < step) {
      c.step++;
      const { index, event } = this.records[c.step]!;
      advance(c.ctx, event);
      stepLights(c.lights, this.node, index, event, c.ctx.state);
    }
    return c;
  }

  /** Everything the page shows at one step. */
  at(stepAsked: number): StepView {
    const step = Math.max(0, Math.min(this.count - 1, Math.trunc(stepAsked)));
    const c = this.foldTo(step);
    const lit: Record<string, string[]> = {};
    for (const [machine, value] of Object.entries(c.lights.values)) lit[machine] = activeIds(machine, value);
    const txs = [...c.lights.txs.values()]
      .sort((a, b) => a.at - b.at)
      .map((t) => ({ txid: t.txid, role: t.role, state: t.state, phase: t.phase, why: t.why, active: !FINAL_TX_STATES.has(t.state), lit: activeIds(t.role, t.state) }));
    const from = Math.max(0, step - WINDOW);
    const to = Math.min(this.count - 1, step + WINDOW);
    const timeline = [];
    for (let i = from; i <= to; i++) timeline.push({ step: i, line: this.lines[i]! });
    return {
      step,
      index: this.records[step]!.index,
      count: this.count,
      line: this.lines[step]!,
      lit,
      txs,
      state: stateJson(this.label, { state: c.ctx.state, index: this.records[step]!.index, events: step + 1 }),
      timeline,
    };
  }

  /** The first step after `from` (wrapping to the start) whose event matches; -1 when none does. */
  find(filter: ReplayFilter, from: number): number {
    const matches: number[] = [];
    const ctx = newContext(this.node);
    this.records.forEach(({ event }, step) => {
      if (eventMatches(event, ctx, filter)) matches.push(step);
      advance(ctx, event);
    });
    if (matches.length === 0) return -1;
    return matches.find((s) => s > from) ?? matches[0]!;
  }

  /** The step of a log index (as `replay` prints `#17`), or -1. */
  stepOfIndex(index: number): number {
    let lo = 0;
    let hi = this.count - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const at = this.records[mid]!.index;
      if (at === index) return mid;
      if (at < index) lo = mid + 1;
      else hi = mid - 1;
    }
    return -1;
  }

  /** The log as an event source again (for the diff). */
  source(): EventSource {
    const records = this.records;
    return {
      label: this.label,
      node: this.node,
      path: this.path,
      records: async function* () {
        yield* records;
      },
      close: async () => undefined,
    };
  }
}

export interface DiffView {
  diverged: boolean;
  lines: string[];
  /** The steps of the first divergence in each log (or their last steps when one is behind). */
  stepA: number;
  stepB: number;
}

/** Two replicas side by side: where they first diverge, as `replay --diff` finds it. */
export async function diffLogs(a: ReplayLog, b: ReplayLog): Promise<DiffView> {
  const sa = a.source();
  const sb = b.source();
  if (sa.label === sb.label) {
    sa.label = `${a.label} (${a.path})`;
    sb.label = `${b.label} (${b.path})`;
  }
  const result = await diffSources(sa, sb);
  const json = result.json as Record<string, { index?: number } | unknown>;
  const indexIn = (label: string) => (json[label] as { index?: number } | undefined)?.index;
  const ia = indexIn(sa.label);
  const ib = indexIn(sb.label);
  return {
    diverged: result.diverged,
    lines: result.lines,
    stepA: ia === undefined ? a.count - 1 : a.stepOfIndex(ia),
    stepB: ib === undefined ? b.count - 1 : b.stepOfIndex(ib),
  };
}

/** The node logs in a directory (`<data-dir>` of run, or `sim --record DIR`): n1, n2, … that hold a LevelDB log. */
export function logsIn(dir: string): { name: string; path: string }[] {
  let names: string[];
  try {
    if (!statSync(dir).isDirectory()) return [];
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names
    .filter((n) => parseNodeName(n) !== null && existsSync(join(dir, n, 'CURRENT')))
    .sort((x, y) => parseNodeName(x)! - parseNodeName(y)!)
    .map((name) => ({ name, path: join(dir, name) }));
}
