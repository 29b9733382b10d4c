/**
 * `shardbank replay`: a node's event log read back after the fact. Prints the
 * timeline (filtered by transaction, item, kind or seq), rebuilds the state
 * at any index with the same fold the node uses, and diffs two replicas'
 * logs to find where they stopped agreeing.
 *
 * Everything streams: one event is decoded, described and written at a time,
 * so a log of 100k events costs the node's own state and nothing more.
 * Output depends only on the log, never on time or map order.
 */
import { createReadStream, existsSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { InvalidArgumentError } from 'commander';
import { requestId } from '../protocol/messages.js';
import {
  formatBallot,
  formatCommand,
  nodeName,
  parseNodeName,
  shardbank,
  type Command,
  type Entry,
} from '../protocol/messages.js';
import { clusterOfNode } from '../protocol/topology.js';
import { EventLog } from '../store/eventlog.js';
import { applyEvent, balanceOf, emptyState, eventKind, type ReplicaState } from '../store/state.js';
import { loadTopology } from './config.js';
import { phaseFlag } from './format.js';

const { Phase, Status } = shardbank;

export const EVENT_KINDS = [
  'flushed',
  'promised',
  'accepted',
  'committed',
  'executed',
  'view',
  'failed',
  'recovered',
  'acked',
  'role',
  'vote',
  'heard',
  'lock',
  'phase',
  'catchup',
] as const;
export type EventKind = (typeof EVENT_KINDS)[number];

export interface SeqRange {
  from: number;
  to: number;
}

export interface ReplayFilter {
  /** A request id, `client:timestamp`. */
  tx?: string;
  item?: number;
  type?: EventKind[];
  seq?: SeqRange;
}

export interface ReplayOptions extends ReplayFilter {
  /** A node's LevelDB directory, or a file of `replay --json` lines. */
  dir: string;
  until?: number;
  state?: boolean;
  diff?: string;
  json?: boolean;
}

/** Bad input: reported as one line and exit code 2, never a stack trace. */
export class ReplayError extends Error {
  override name = 'ReplayError';
}

export interface LogRecord {
  index: number;
  event: shardbank.LogEvent;
}

export interface EventSource {
  /** `n4` when the directory is named after its node, else the path as given. */
  label: string;
  /** 0 when the name does not say. */
  node: number;
  path: string;
  records(): AsyncIterable<LogRecord>;
  close(): Promise<void>;
}

// ---------------------------------------------------------------- arguments

/** `7` or `7..12`. */
export function seqArg(value: string): SeqRange {
  const m = /^\s*(\d+)\s*(?:\.\.\s*(\d+)\s*)?$/.exec(value);
  if (!m) throw new InvalidArgumentError(`"${value}" is not a seq (N) or a seq range (A..B).`);
  const from = Number(m[1]);
  const to = m[2] === undefined ? from : Number(m[2]);
  if (to < from) throw new InvalidArgumentError(`the range ${from}..${to} is empty (A must not exceed B).`);
  return { from, to };
}

/** `executed` or `accepted,committed`; repeatable. */
export function typeArg(value: string, prev: EventKind[] = []): EventKind[] {
  const out = [...prev];
  for (const raw of value.split(',')) {
    const kind = raw.trim().toLowerCase();
    if (!(EVENT_KINDS as readonly string[]).includes(kind)) {
      throw new InvalidArgumentError(`"${raw.trim()}" is not an event kind (one of ${EVENT_KINDS.join(', ')}).`);
    }
    if (!out.includes(kind as EventKind)) out.push(kind as EventKind);
  }
  return out;
}

/** A request id as the nodes write it: `client:timestamp`, e.g. `client/3:17`. */
export function txArg(value: string): string {
  const t = value.trim();
  if (!/^.+:\d+$/.test(t)) throw new InvalidArgumentError(`"${value}" is not a transaction id like client/3:17 (client:timestamp).`);
  return t;
}

// ---------------------------------------------------------------- sources

function innermost(err: unknown): { code: string; message: string } {
  const codes: string[] = [];
  let e = err as { code?: unknown; message?: unknown; cause?: unknown } | undefined;
  let message = String(err);
  for (let depth = 0; e && depth < 5; depth++) {
    if (typeof e.code === 'string') codes.push(e.code);
    if (typeof e.message === 'string') message = e.message;
    e = e.cause as typeof e;
  }
  return { code: codes.join(' '), message };
}

function labelFor(path: string): { label: string; node: number } {
  const node = parseNodeName(basename(path).replace(/\.jsonl?$/i, '')) ?? 0;
  return { label: node ? nodeName(node) : path, node };
}

/** Opens a node's LevelDB directory (without creating one) or a JSON-lines dump. */
export async function openSource(path: string): Promise<EventSource> {
  const abs = resolve(path);
  let isDir: boolean;
  try {
    isDir = statSync(abs).isDirectory();
  } catch {
    throw new ReplayError(`${path}: no such directory`);
  }
  const { label, node } = labelFor(abs);
  const named = { label: node ? label : path, node, path };
  if (!isDir) return jsonLinesSource(abs, named);
  // LevelDB would create an empty store in any directory it is pointed at.
  if (!existsSync(join(abs, 'CURRENT'))) {
    throw new ReplayError(`${path}: not a LevelDB event log (no CURRENT file); a node's log is <data-dir>/n4`);
  }
  const log = EventLog.onDisk(abs, { sync: false });
  try {
    await log.open();
  } catch (err) {
    const { code, message } = innermost(err);
    if (/LOCKED/.test(code) || /\block\b/i.test(message)) {
      throw new ReplayError(`${path}: the LevelDB log is locked (is a node still running on it?): ${message}`);
    }
    throw new ReplayError(`${path}: cannot open the LevelDB log: ${message}`);
  }
  return { ...named, records: () => checkedRecords(log, path), close: () => log.close() };
}

/** A log already open in this process, e.g. a simulated node's in-memory log. */
export function logSource(log: EventLog, label: string, node = 0): EventSource {
  return { label, node, path: label, records: () => checkedRecords(log, label), close: async () => undefined };
}

async function* checkedRecords(log: EventLog, path: string): AsyncGenerator<LogRecord> {
  let last = -1;
  const it = log.entries();
  for (;;) {
    let next: IteratorResult<LogRecord>;
    try {
      next = await it.next();
    } catch (err) {
      const where = last < 0 ? 'the first event' : `the event after #${last}`;
      throw new ReplayError(`${path}: ${where} cannot be decoded (${innermost(err).message}); is this a shardbank event log?`);
    }
    if (next.done) return;
    if (!Number.isSafeInteger(next.value.index)) throw new ReplayError(`${path}: a key after #${last} is not an event index; is this a shardbank event log?`);
    last = next.value.index;
    yield next.value;
  }
}

function jsonLinesSource(abs: string, named: { label: string; node: number; path: string }): EventSource {
  async function* records(): AsyncGenerator<LogRecord> {
    const lines = createInterface({ input: createReadStream(abs, 'utf8'), crlfDelay: Infinity });
    let lineNo = 0;
    try {
      for await (const line of lines) {
        lineNo++;
        if (line.trim() === '') continue;
        let event: shardbank.LogEvent;
        let index: unknown;
        try {
          const obj = JSON.parse(line) as { index?: unknown; event?: unknown };
          index = obj.index ?? lineNo - 1;
          event = shardbank.LogEvent.fromObject((obj.event ?? obj) as Record<string, unknown>);
        } catch (err) {
          throw new ReplayError(`${named.path}:${lineNo}: not an event line of "replay --json" (${innermost(err).message})`);
        }
        if (!event.kind) throw new ReplayError(`${named.path}:${lineNo}: not an event line of "replay --json" (no event kind)`);
        if (typeof index !== 'number' || !Number.isSafeInteger(index)) throw new ReplayError(`${named.path}:${lineNo}: "index" is not a whole number`);
        yield { index, event };
      }
    } finally {
      lines.close();
    }
  }
  return { ...named, records, close: async () => undefined };
}

// ---------------------------------------------------------------- describing events

/** What a fold gives the description and the filters: values an event refers to but does not carry. */
interface Context {
  state: ReplicaState;
  /** Prepared transactions: txid -> where and what, so an ACK can be matched by seq or item. */
  txs: Map<string, { seq: number; command: Command | null }>;
}

function newContext(node: number): Context {
  return { state: emptyState(node), txs: new Map() };
}

function advance(ctx: Context, ev: shardbank.LogEvent): void {
  applyEvent(ctx.state, ev);
  const x = ev.executed;
  if (x?.txid && x.phase === Phase.PHASE_PREPARE && !ctx.txs.has(x.txid)) ctx.txs.set(x.txid, { seq: x.seq ?? 0, command: x.command ?? null });
  if (ev.flushed) ctx.txs.clear();
}

/** Where the 2PC decision named (seq, phase) runs, as the log recorded it (its own instance). */
function runsAtOf(ctx: Context, seq: number, phase: number): number {
  for (const keys of ctx.state.decisionSlots.values()) {
    for (const key of keys) {
      const slot = ctx.state.log.get(key);
      if (slot && slot.seq === seq && slot.phase === phase) return slot.runsAt ?? 0;
    }
  }
  return 0;
}

const STATUS_WORDS: Record<number, string> = {
  [Status.COMMITTED]: 'committed',
  [Status.ABORTED]: 'aborted',
  [Status.FAILED]: 'failed',
  [Status.OK]: 'ok',
};

/** Entries shown per event before `(+N more)`: a NEW-VIEW re-proposal can carry thousands. */
const MAX_SHOWN = 8;
const KIND_WIDTH = 9;

function seqText(seq: number, phase: number | null | undefined): string {
  const f = phaseFlag(phase);
  return f ? `seq ${seq} ${f}` : `seq ${seq}`;
}

function entryText(e: Entry): string {
  const runs = (e.runsAt ?? 0) > 0 ? ` runs at ${e.runsAt}` : '';
  const why = e.reason ? ` (${e.reason})` : '';
  return `${seqText(e.seq ?? 0, e.phase)} ${formatBallot(e.ballot)} ${formatCommand(e.command)}${runs}${why}`;
}

function balancesText(list: shardbank.IItemBalance[] | null | undefined): string {
  return (list ?? []).map((w) => `${w.item ?? 0}=${w.balance ?? 0}`).join(' ');
}

/** Items shown, hidden by the mask, and cut at MAX_SHOWN. */
function listText<T>(items: T[], mask: boolean[] | undefined, text: (t: T) => string, sep = '; '): string {
  const shown = mask ? items.filter((_, i) => mask[i]) : items;
  const parts = shown.slice(0, MAX_SHOWN).map(text);
  const more = items.length - Math.min(shown.length, MAX_SHOWN);
  return parts.join(sep) + (more > 0 ? ` (+${more} more)` : '');
}

function committedText(keys: number[], ctx: Context, mask: boolean[] | undefined): string {
  // Runs of consecutive plain seqs read as one range: `seq 7..12`.
  const groups: { from: number; to: number; phase: number; runsAt: number; keep: boolean }[] = [];
  keys.forEach((key, i) => {
    // A decision's slot is the seq it runs at; it is named after its prepare's seq.
    const slot = ctx.state.log.get(key);
    const decision = (slot?.runsAt ?? 0) > 0 ? slot! : null;
    const seq = decision ? decision.seq : key;
    const phase = decision ? decision.phase : slot?.phase ?? 0;
    const keep = !mask || mask[i]!;
    const last = groups[groups.length - 1];
    if (last && phase === 0 && last.phase === 0 && last.keep === keep && last.to + 1 === seq) last.to = seq;
    else groups.push({ from: seq, to: seq, phase, runsAt: decision?.runsAt ?? 0, keep });
  });
  const text = (g: (typeof groups)[number]) => {
    const span = g.from === g.to ? `${g.from}` : `${g.from}..${g.to}`;
    const f = phaseFlag(g.phase);
    return `${span}${f ? ` ${f}` : ''}${g.runsAt > 0 ? ` runs at ${g.runsAt}` : ''}`;
  };
  const kept = groups.filter((g) => g.keep);
  const hiddenKeys = keys.length - kept.reduce((n, g) => n + g.to - g.from + 1, 0);
  const body = kept.slice(0, MAX_SHOWN).map(text).join(', ');
  const cut = kept.slice(MAX_SHOWN).reduce((n, g) => n + g.to - g.from + 1, 0);
  const more = hiddenKeys + cut;
  return `seq ${body}${more > 0 ? ` (+${more} more)` : ''}`;
}

function executedText(x: shardbank.Executed.$Properties, ctx: Context): string {
  const seq = x.seq ?? 0;
  const phase = x.phase ?? 0;
  const head = seqText(seq, phase);
  const status = x.status ?? 0;
  if (!x.command && !status) return phase > 0 ? `${head} (repeat, no change)` : `${head} (cursor)`;
  if (!x.command) return `${head} no-op`;
  const parts = [head, formatCommand(x.command)];
  if (x.txid) parts.push(`tx ${x.txid}`, x.role || 'coordinator');
  const word = phase === Phase.PHASE_PREPARE && status === Status.COMMITTED ? 'prepared' : STATUS_WORDS[status] ?? `status ${status}`;
  parts.push(x.reason ? `${word} (${x.reason})` : word);
  const writes = balancesText(x.writes);
  if (writes) parts.push(phase === Phase.PHASE_ABORT && x.txid ? `undo ${writes}` : writes);
  const before = balancesText(x.before);
  if (before) parts.push(`(before ${before})`);
  const runsAt = phase >= Phase.PHASE_COMMIT ? runsAtOf(ctx, seq, phase) : 0;
  if (runsAt > 0) parts.push(`(at seq ${runsAt})`);
  return parts.join(' ');
}

/**
 * The text after `#index kind`. `mask` (from the filters) says which of an
 * event's entries or keys to show; the rest are counted.
 */
function describe(ev: shardbank.LogEvent, ctx: Context, mask?: boolean[]): string {
  switch (ev.kind) {
    case 'accepted':
      return listText(ev.accepted!.entries ?? [], mask, entryText);
    case 'committed':
      return committedText(ev.committed!.slots ?? [], ctx, mask);
    case 'executed':
      return executedText(ev.executed!, ctx);
    case 'promised':
      return formatBallot(ev.promised!.ballot);
    case 'view': {
      const v = ev.view!;
      const log = v.view?.log ?? [];
      const head = `NEW-VIEW ${formatBallot(v.view?.ballot)} from ${nodeName(v.leader ?? 0)}, ${log.length} ${log.length === 1 ? 'entry' : 'entries'}`;
      return mask ? `${head}: ${listText(log, mask, entryText)}` : head;
    }
    case 'flushed': {
      const f = ev.flushed!;
      const ballot = f.ballot && (f.ballot.round || f.ballot.node) ? ` ballot ${formatBallot(f.ballot)}` : '';
      return `set ${f.set ?? 0} leader ${nodeName(f.leader ?? 0)}${ballot} balance ${f.initialBalance ?? 0}`;
    }
    case 'acked':
      return `tx ${ev.acked!.txid ?? ''}`;
    case 'role':
      return roleText(ev.role!);
    case 'vote': {
      const v = ev.vote!;
      const answer = v.answer === 'refused' ? `refused (promised ${formatBallot(v.promised)})` : v.answer === 'deferred' ? 'deferred (our leader is still heard)' : v.answer;
      return `${nodeName(v.candidate ?? 0)}'s PREPARE ${formatBallot(v.ballot)}: ${answer}`;
    }
    case 'heard': {
      const h = ev.heard!;
      return `promise from ${nodeName(h.from ?? 0)} for ${formatBallot(h.ballot)}, ${h.entries ?? 0} ${h.entries === 1 ? 'entry' : 'entries'} above our commit point`;
    }
    case 'lock': {
      const l = ev.lock!;
      const id = l.command ? requestId(l.command) : '';
      const held = l.holder ? `item ${l.item} held by ${l.holder}` : `item ${l.item} held`;
      return `${formatCommand(l.command)} tx ${id} ${l.decision}: ${held}`;
    }
    case 'phase': {
      const p = ev.phase!;
      const prepared = ctx.txs.get(p.txid ?? '');
      const at = prepared ? `, prepared at seq ${prepared.seq}` : '';
      return `tx ${p.txid} ${p.role} ${p.phase}${p.why ? ` (${p.why})` : ''}${at}`;
    }
    case 'catchup':
      return catchupText(ev.catchup!);
    default:
      return '';
  }
}

function roleText(r: shardbank.IRoleChanged): string {
  const b = formatBallot(r.ballot);
  const voters = (r.voters ?? []).length > 0 ? ` (promises from ${(r.voters ?? []).map(nodeName).join(', ')})` : '';
  const detector = r.role === 'leader' && (r.live ?? []).length + 1 > 0 ? ` hearing ${(r.live ?? []).map(nodeName).join(', ') || 'no peer'}${r.quorum ? '' : ': no majority, refusing writes'}` : '';
  const head =
    r.role === 'leader'
      ? `leader ${b}${voters}${detector}`
      : r.role === 'candidate'
        ? `candidate ${b}: campaigning`
        : `follower of ${r.leader ? nodeName(r.leader) : 'nobody yet'} ${b}`;
  return r.why ? `${head}; ${r.why}` : head;
}

function catchupText(c: shardbank.ICatchupNote): string {
  const from = nodeName(c.from ?? 0);
  if (c.what === 'requested') return `asked ${from} for the committed entries from seq ${c.fromSeq ?? 0}`;
  if (c.what === 'snapshot') return `installed ${from}'s state, executed through seq ${c.through ?? 0}`;
  return `${c.entries ?? 0} committed ${c.entries === 1 ? 'entry' : 'entries'} from ${from} (its commit point: seq ${c.through ?? 0})`;
}

function formatLine(index: number, ev: shardbank.LogEvent, text: string): string {
  return `#${index} ${eventKind(ev).padEnd(KIND_WIDTH)} ${text}`.trimEnd();
}

function eventJson(index: number, ev: shardbank.LogEvent, text: string): string {
  const event = shardbank.LogEvent.toObject(ev, { enums: String, json: true });
  return JSON.stringify({ index, kind: eventKind(ev), text, event });
}

// ---------------------------------------------------------------- filters

/** The parts of an event a filter can match: one per entry or key, one for the rest. */
interface Unit {
  seq?: number;
  runsAt?: number;
  command?: Command | null;
  txid?: string;
  items?: number[];
}

function unitsOf(ev: shardbank.LogEvent, ctx: Context): Unit[] {
  const fromEntry = (e: Entry): Unit => ({ seq: e.seq ?? 0, runsAt: e.runsAt ?? 0, command: e.command ?? null });
  switch (ev.kind) {
    case 'accepted':
      return (ev.accepted!.entries ?? []).map(fromEntry);
    case 'view':
      return (ev.view!.view?.log ?? []).map(fromEntry);
    case 'committed':
      return (ev.committed!.slots ?? []).map((key) => {
        const slot = ctx.state.log.get(key);
        return { seq: slot?.seq ?? key, runsAt: slot?.runsAt ?? 0, command: slot?.command ?? null };
      });
    case 'executed': {
      const x = ev.executed!;
      const seq = x.seq ?? 0;
      const items = [...(x.writes ?? []), ...(x.before ?? [])].map((w) => w.item ?? 0);
      return [{ seq, runsAt: runsAtOf(ctx, seq, x.phase ?? 0), command: x.command ?? null, txid: x.txid ?? '', items }];
    }
    case 'lock':
      return [{ command: ev.lock!.command ?? null, items: [ev.lock!.item ?? 0], txid: ev.lock!.holder ?? '' }];
    case 'phase': {
      const txid = ev.phase!.txid ?? '';
      const known = ctx.txs.get(txid);
      return [{ seq: known?.seq, command: ev.phase!.command ?? known?.command ?? null, txid }];
    }
    case 'acked': {
      const txid = ev.acked!.txid ?? '';
      const known = ctx.txs.get(txid);
      const command = known?.command ?? ctx.state.unacked.get(txid)?.command ?? null;
      return [{ seq: known?.seq, runsAt: known ? runsAtOf(ctx, known.seq, Phase.PHASE_COMMIT) || runsAtOf(ctx, known.seq, Phase.PHASE_ABORT) : 0, command, txid }];
    }
    default:
      return [];
  }
}

function touches(cmd: Command | null | undefined, item: number): boolean {
  if (!cmd) return false;
  if (cmd.transfer) return cmd.transfer.sender === item || cmd.transfer.receiver === item;
  return cmd.read?.item === item;
}

function unitMatches(u: Unit, f: ReplayFilter): boolean {
  if (f.seq) {
    const inRange = (s: number | undefined) => s !== undefined && s > 0 && s >= f.seq!.from && s <= f.seq!.to;
    if (!inRange(u.seq) && !inRange(u.runsAt)) return false;
  }
  if (f.tx !== undefined && u.txid !== f.tx && !(u.command && requestId(u.command) === f.tx)) return false;
  if (f.item !== undefined && !touches(u.command, f.item) && !(u.items ?? []).includes(f.item)) return false;
  return true;
}

function hasUnitFilter(f: ReplayFilter): boolean {
  return f.tx !== undefined || f.item !== undefined || f.seq !== undefined;
}

// ---------------------------------------------------------------- timeline

/** Writes one line per event that passes the filter; returns how many. */
export async function printTimeline(src: EventSource, filter: ReplayFilter, json: boolean, write: (line: string) => void): Promise<number> {
  const ctx = newContext(src.node);
  const byUnit = hasUnitFilter(filter);
  let printed = 0;
  for await (const { index, event } of src.records()) {
    let show = !filter.type || filter.type.includes(eventKind(event) as EventKind);
    let mask: boolean[] | undefined;
    if (show && byUnit) {
      mask = unitsOf(event, ctx).map((u) => unitMatches(u, filter));
      show = mask.some(Boolean);
    }
    if (show) {
      const text = describe(event, ctx, mask && mask.every(Boolean) ? undefined : mask);
      write(json ? eventJson(index, event, text) : formatLine(index, event, text));
      printed++;
    }
    advance(ctx, event);
  }
  return printed;
}

// ---------------------------------------------------------------- state

export interface Folded {
  state: ReplicaState;
  /** The last index folded, or -1 for none. */
  index: number;
  events: number;
}

/** Folds the events up to and including `until` (all when undefined). */
export async function foldUntil(src: EventSource, until?: number): Promise<Folded> {
  const ctx = newContext(src.node);
  let index = -1;
  let events = 0;
  for await (const r of src.records()) {
    if (until !== undefined && r.index > until) break;
    advance(ctx, r.event);
    index = r.index;
    events++;
  }
  if (until !== undefined && index !== until) {
    if (events === 0) throw new ReplayError(`${src.path}: the log is empty, there is no index ${until}`);
    throw new ReplayError(`${src.path}: there is no index ${until} (the last is #${index})`);
  }
  return { state: ctx.state, index, events };
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

function sortedBalances(s: ReplicaState): [number, number][] {
  return [...s.modified].sort((a, b) => a - b).map((item) => [item, balanceOf(s, item)]);
}

const byKey = <T>(m: Map<string, T>): [string, T][] => [...m.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));

/** The rebuilt state, one fact per line. */
export function stateSummary(label: string, f: Folded): string[] {
  const s = f.state;
  const committed = [...s.log.values()].filter((slot) => slot.committed).length;
  const row = (k: string, v: string) => `${k.padEnd(16)} ${v}`;
  const balances = sortedBalances(s);
  const wal = byKey(s.wal);
  const unacked = byKey(s.unacked);
  const locks = [...s.walLocks.entries()].sort((a, b) => a[0] - b[0]);
  return [
    f.index < 0 ? `state of ${label}: empty log` : `state of ${label} after #${f.index} (${plural(f.events, 'event')})`,
    row('set', `${s.set} (leader at start ${nodeName(s.initialLeader)}, initial balance ${s.initialBalance})`),
    row('promised', formatBallot(s.promised)),
    row('commitThrough', String(s.commitThrough)),
    row('executedThrough', String(s.executedThrough)),
    row('log', `${plural(s.log.size, 'entry', 'entries')}, ${committed} committed, max seq ${s.maxSeq}`),
    row('failed', s.failed ? 'yes' : 'no'),
    row('views', String(s.views.length)),
    row('balances', `${plural(balances.length, 'modified item')}`),
    ...balances.map(([item, b]) => `  ${item} = ${b}`),
    row('WAL', plural(wal.length, 'entry', 'entries')),
    ...wal.map(([txid, w]) => `  ${txid}  seq ${w.seq} ${w.role} ${formatCommand(w.command)} before ${balancesText(w.before)}`),
    row('unacked', plural(unacked.length, 'decision')),
    ...unacked.map(([txid, u]) => `  ${txid}  ${u.commit ? 'commit' : 'abort'} ${formatCommand(u.command)}${u.reason ? ` (${u.reason})` : ''}`),
    row('locks', plural(locks.length, 'item')),
    ...locks.map(([item, txid]) => `  ${item} = ${txid}`),
  ];
}

export function stateJson(label: string, f: Folded): Record<string, unknown> {
  const s = f.state;
  return {
    node: label,
    index: f.index,
    events: f.events,
    set: s.set,
    initialLeader: nodeName(s.initialLeader),
    initialBalance: s.initialBalance,
    promised: { round: s.promised.round ?? 0, node: s.promised.node ?? 0 },
    commitThrough: s.commitThrough,
    executedThrough: s.executedThrough,
    logEntries: s.log.size,
    committedEntries: [...s.log.values()].filter((slot) => slot.committed).length,
    maxSeq: s.maxSeq,
    failed: s.failed,
    views: s.views.length,
    balances: Object.fromEntries(sortedBalances(s).map(([item, b]) => [String(item), b])),
    wal: byKey(s.wal).map(([txid, w]) => ({ txid, seq: w.seq, role: w.role, command: formatCommand(w.command), before: w.before })),
    unacked: byKey(s.unacked).map(([txid, u]) => ({ txid, commit: u.commit, command: formatCommand(u.command), reason: u.reason })),
    locks: Object.fromEntries([...s.walLocks.entries()].sort((a, b) => a[0] - b[0]).map(([item, txid]) => [String(item), txid])),
  };
}

// ---------------------------------------------------------------- diff

const CONTEXT_BEFORE = 3;
const CONTEXT_AFTER = 2;

/** One log read forward, remembering the last few events for context. */
class Cursor {
  readonly ctx: Context;
  /** Recent records, each with its line as described when it was read. */
  readonly recent: { index: number; line: string }[] = [];
  executed = 0;
  private readonly it: AsyncIterator<LogRecord>;
  private done = false;

  constructor(readonly src: EventSource) {
    this.ctx = newContext(src.node);
    this.it = src.records()[Symbol.asyncIterator]();
  }

  /** The next record of any kind, folded. */
  async step(): Promise<LogRecord | null> {
    if (this.done) return null;
    const r = await this.it.next();
    if (r.done) {
      this.done = true;
      return null;
    }
    const { index, event } = r.value;
    this.recent.push({ index, line: formatLine(index, event, describe(event, this.ctx)) });
    if (this.recent.length > CONTEXT_BEFORE + 1) this.recent.shift();
    advance(this.ctx, event);
    return r.value;
  }

  async nextExecuted(): Promise<LogRecord | null> {
    for (let r = await this.step(); r; r = await this.step()) {
      if (r.event.executed) {
        this.executed++;
        return r;
      }
    }
    return null;
  }

  async drain(): Promise<void> {
    while (await this.nextExecuted());
  }

  /** The remembered records, the last of them marked, and a few read after it. */
  async context(): Promise<string[]> {
    const before = [...this.recent];
    const after: string[] = [];
    for (let i = 0; i < CONTEXT_AFTER; i++) {
      if (!(await this.step())) break;
      after.push(this.recent[this.recent.length - 1]!.line);
    }
    return [...before.map((r, i) => `${i === before.length - 1 ? '  > ' : '    '}${r.line}`), ...after.map((l) => `    ${l}`)];
  }
}

function sameExecuted(a: shardbank.LogEvent, b: shardbank.LogEvent): boolean {
  return Buffer.from(shardbank.Executed.encode(a.executed!).finish()).equals(shardbank.Executed.encode(b.executed!).finish());
}

/** What a committed slot decided, without the ballot it was accepted at. */
function slotValue(s: ReplicaState, key: number): string | null {
  const slot = s.log.get(key);
  if (!slot?.committed) return null;
  const entry = shardbank.Entry.encode({ seq: slot.seq, phase: slot.phase, command: slot.command ?? undefined, reason: slot.reason ?? '', runsAt: slot.runsAt ?? 0 }).finish();
  return Buffer.from(entry).toString('base64');
}

/** The lines around the event that committed `key`. */
async function contextOfCommit(src: EventSource, key: number): Promise<{ index: number; lines: string[] }> {
  const cursor = new Cursor(src);
  for (;;) {
    const before = cursor.ctx.state.log.get(key)?.committed ?? false;
    const r = await cursor.step();
    if (!r) return { index: -1, lines: [] };
    if (!before && cursor.ctx.state.log.get(key)?.committed) return { index: r.index, lines: await cursor.context() };
  }
}

export interface DiffResult {
  diverged: boolean;
  agree: number;
  lines: string[];
  json: Record<string, unknown>;
}

/**
 * Compares two replicas: their Executed events in order, then the value each
 * committed per (seq, phase). A log that is a prefix of the other is behind,
 * not divergent.
 */
export async function diffSources(a: EventSource, b: EventSource): Promise<DiffResult> {
  const ca = new Cursor(a);
  const cb = new Cursor(b);
  let agree = 0;
  for (;;) {
    const ra = await ca.nextExecuted();
    const rb = await cb.nextExecuted();
    if (!ra || !rb) {
      if (ra) await ca.drain();
      if (rb) await cb.drain();
      break;
    }
    if (!sameExecuted(ra.event, rb.event)) {
      const seq = Math.min(ra.event.executed!.seq ?? 0, rb.event.executed!.seq ?? 0);
      const head = `diverged at executed entry ${agree + 1} (seq ${seq}): ${a.label} #${ra.index}, ${b.label} #${rb.index}`;
      const lines = [head, `${a.label}:`, ...(await ca.context()), `${b.label}:`, ...(await cb.context())];
      return {
        diverged: true,
        agree,
        lines,
        json: {
          diverged: true,
          agree,
          at: 'executed',
          seq,
          [a.label]: { index: ra.index, text: describe(ra.event, ca.ctx) },
          [b.label]: { index: rb.index, text: describe(rb.event, cb.ctx) },
        },
      };
    }
    agree++;
  }

  // Executions agree; a value committed differently and not yet executed by both still counts.
  const sa = ca.ctx.state;
  const sb = cb.ctx.state;
  const keys = [...sa.log.keys()].filter((k) => sb.log.has(k)).sort((x, y) => x - y);
  for (const key of keys) {
    const va = slotValue(sa, key);
    const vb = slotValue(sb, key);
    if (va === null || vb === null || va === vb) continue;
    const slot = sa.log.get(key)!;
    const other = sb.log.get(key)!;
    const at = seqText(slot.seq, slot.phase);
    const pa = await contextOfCommit(a, key);
    const pb = await contextOfCommit(b, key);
    const head = `diverged at ${at}: committed ${formatCommand(slot.command)} on ${a.label} #${pa.index}, ${formatCommand(other.command)} on ${b.label} #${pb.index}`;
    return {
      diverged: true,
      agree,
      lines: [head, `${a.label}:`, ...pa.lines, `${b.label}:`, ...pb.lines],
      json: {
        diverged: true,
        agree,
        at: 'committed',
        seq: slot.seq,
        phase: phaseFlag(slot.phase),
        [a.label]: { index: pa.index, command: formatCommand(slot.command) },
        [b.label]: { index: pb.index, command: formatCommand(other.command) },
      },
    };
  }

  const lines = [`no divergence: ${agree} executed ${agree === 1 ? 'entry agrees' : 'entries agree'}`];
  const json: Record<string, unknown> = { diverged: false, agree };
  if (ca.executed !== cb.executed) {
    const [behind, ahead] = ca.executed < cb.executed ? [ca, cb] : [cb, ca];
    const by = ahead.executed - behind.executed;
    lines.push(
      `${behind.src.label} is behind ${ahead.src.label} by ${plural(by, 'entry', 'entries')} (executed through seq ${behind.ctx.state.executedThrough} vs ${ahead.ctx.state.executedThrough})`,
    );
    json.behind = { node: behind.src.label, ahead: ahead.src.label, by };
  }
  return { diverged: false, agree, lines, json };
}

/** Two logs only make sense side by side when they are replicas of one cluster. */
function checkSameCluster(a: EventSource, b: EventSource): void {
  if (!a.node || !b.node) return;
  const parent = dirname(resolve(a.path));
  const config = join(parent, 'config.json');
  if (parent !== dirname(resolve(b.path)) || !existsSync(config)) return;
  let ca: number;
  let cb: number;
  try {
    const topology = loadTopology({ config });
    ca = clusterOfNode(topology, a.node);
    cb = clusterOfNode(topology, b.node);
  } catch {
    return;
  }
  if (ca !== cb) throw new ReplayError(`${a.label} is in cluster ${ca} and ${b.label} in cluster ${cb}: only replicas of one cluster can be diffed`);
}

// ---------------------------------------------------------------- the command

/**
 * Runs `replay` and writes its output line by line; returns the exit code
 * (1 when `--diff` finds a divergence). Bad input throws ReplayError.
 */
export async function replayCommand(opts: ReplayOptions, write: (line: string) => void): Promise<number> {
  if (opts.diff !== undefined && resolve(opts.diff) === resolve(opts.dir)) {
    throw new ReplayError(`${opts.dir}: --diff needs another node's log, not the same one`);
  }
  const src = await openSource(opts.dir);
  try {
    if (opts.diff !== undefined) {
      const other = await openSource(opts.diff);
      try {
        if (src.label === other.label) {
          Object.assign(src, { label: src.path });
          Object.assign(other, { label: other.path });
        }
        checkSameCluster(src, other);
        const result = await diffSources(src, other);
        if (opts.json) write(JSON.stringify(result.json));
        else for (const line of result.lines) write(line);
        return result.diverged ? 1 : 0;
      } finally {
        await other.close();
      }
    }
    if (opts.until !== undefined || opts.state) {
      const folded = await foldUntil(src, opts.until);
      if (opts.json) write(JSON.stringify(stateJson(src.label, folded)));
      else for (const line of stateSummary(src.label, folded)) write(line);
      return 0;
    }
    await printTimeline(src, opts, opts.json ?? false, write);
    return 0;
  } finally {
    await src.close();
  }
}

/**
 * Lines to stdout in large chunks: a 100k-event timeline would otherwise be
 * 100k writes. A closed pipe (`| head`) ends the process quietly.
 */
class StdoutLines {
  private chunk: string[] = [];
  private size = 0;

  constructor() {
    process.stdout.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') process.exit(0);
      throw err;
    });
  }

  readonly write = (line: string): void => {
    this.chunk.push(line, '\n');
    this.size += line.length + 1;
    if (this.size >= 1 << 16) this.flush();
  };

  flush(): void {
    if (this.chunk.length === 0) return;
    process.stdout.write(this.chunk.join(''));
    this.chunk = [];
    this.size = 0;
  }
}

export type ReplayCliOptions = Omit<ReplayOptions, 'dir'>;

/** The CLI entry: prints, and turns bad input into one line on stderr and exit code 2. */
export async function replayMain(dir: string, opts: ReplayCliOptions): Promise<number> {
  const out = new StdoutLines();
  try {
    return await replayCommand({ ...opts, dir }, out.write);
  } catch (err) {
    if (!(err instanceof ReplayError)) throw err;
    out.flush();
    process.stderr.write(`replay: ${err.message}\n`);
    return 2;
  } finally {
    out.flush();
  }
}
