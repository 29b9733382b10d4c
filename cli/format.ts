/**
 * The utility outputs of SPEC §4 as text (for the terminal) and as plain
 * objects (for `--json`). Pure: data in, strings out.
 */
import { formatBallot, formatCommand, nodeName, type Ballot, type Entry } from '../protocol/messages.js';
import type { Performance } from './stats.js';

/** `n4 : 8, n5 : 8, n6 : 10`, the format the spec mandates; `?` for a node that did not answer. */
export function formatPrintBalance(entries: { node: number; balance: number | null }[]): string {
  return entries.map((e) => `${nodeName(e.node)} : ${e.balance === null ? '?' : e.balance}`).join(', ');
}

/** Per node, the items modified in the set and their balances. */
export type DbSnapshot = Map<number, Map<number, number>>;

function modifiedItems(db: DbSnapshot, nodes: number[]): number[] {
  const items = new Set<number>();
  for (const n of nodes) for (const item of db.get(n)?.keys() ?? []) items.add(item);
  return [...items].sort((a, b) => a - b);
}

export const NO_ITEMS_MODIFIED = '(no items modified in this set)';

/**
 * A grid: one row per node, one column per item modified on any node, `-`
 * where a node has no value. With `width`, columns wrap into blocks that fit,
 * each with its own header, because set 10 alone modifies 1800 items.
 */
export function formatPrintDb(db: DbSnapshot, nodes: number[], opts: { width?: number } = {}): string {
  const items = modifiedItems(db, nodes);
  if (items.length === 0) return `node\n${NO_ITEMS_MODIFIED}`;
  const nodeCol = Math.max(4, ...nodes.map((n) => nodeName(n).length));
  const cell = (n: number, item: number) => {
    const v = db.get(n)?.get(item);
    return v === undefined ? '-' : String(v);
  };
  const colWidth = items.map((item) => Math.max(String(item).length, ...nodes.map((n) => cell(n, item).length)));

  const width = opts.width ?? Infinity;
  const blocks: number[][] = [];
  let block: number[] = [];
  let used = nodeCol;
  items.forEach((_, k) => {
    const w = 2 + colWidth[k]!;
    if (block.length > 0 && used + w > width) {
      blocks.push(block);
      block = [];
      used = nodeCol;
    }
    block.push(k);
    used += w;
  });
  blocks.push(block);

  const row = (label: string, cells: string[], ks: number[]) =>
    label.padEnd(nodeCol) + ks.map((k, j) => `  ${cells[j]!.padStart(colWidth[k]!)}`).join('');
  return blocks
    .map((ks) =>
      [
        row('node', ks.map((k) => String(items[k])), ks),
        ...nodes.map((n) => row(nodeName(n), ks.map((k) => cell(n, items[k]!)), ks)),
      ].join('\n'),
    )
    .join('\n\n');
}

/** `{"n1": {"1001": 9, ...}, "n3": {}}`: every node listed, items ascending. */
export function printDbJson(db: DbSnapshot, nodes: number[]): Record<string, Record<string, number>> {
  const out: Record<string, Record<string, number>> = {};
  for (const n of nodes) {
    const row: Record<string, number> = {};
    const m = db.get(n);
    if (m) for (const item of [...m.keys()].sort((a, b) => a - b)) row[String(item)] = m.get(item)!;
    out[nodeName(n)] = row;
  }
  return out;
}

/** One NEW-VIEW as PrintView shows it. */
export interface ViewInfo {
  cluster: number;
  /** The node that sent it. */
  leader: number;
  view: { ballot?: Ballot | null; log?: Entry[] | null };
}

const PHASE_FLAGS = ['', 'P', 'C', 'A'] as const;
export type PhaseFlag = (typeof PHASE_FLAGS)[number];

export function phaseFlag(phase: number | null | undefined): PhaseFlag {
  return PHASE_FLAGS[phase ?? 0] ?? '';
}

export const NO_NEW_VIEWS = '(no NEW-VIEW messages in this set)';

/**
 * Every NEW-VIEW in the order given, with its full accept log:
 *
 *     NEW-VIEW <2, n8> from n8 (cluster 3), 2 entries
 *       seq 1    <2, n8>  (6001, 6002, 1)
 *       seq 2 P  <2, n8>  (6005, 3001, 1)
 */
export function formatPrintView(views: ViewInfo[]): string {
  if (views.length === 0) return NO_NEW_VIEWS;
  return views
    .map((v) => {
      const log = v.view.log ?? [];
      const head = `NEW-VIEW ${formatBallot(v.view.ballot)} from ${nodeName(v.leader)} (cluster ${v.cluster}), ${log.length} ${log.length === 1 ? 'entry' : 'entries'}`;
      const keys = log.map((e) => {
        const f = phaseFlag(e.phase);
        return `seq ${e.seq ?? 0}${f ? ` ${f}` : ''}`;
      });
      const w = Math.max(0, ...keys.map((k) => k.length));
      const runs = (e: Entry) => ((e.runsAt ?? 0) > 0 ? `  (runs at seq ${e.runsAt})` : '');
      const lines = log.map((e, i) => `  ${keys[i]!.padEnd(w)}  ${formatBallot(e.ballot)}  ${formatCommand(e.command)}${runs(e)}`);
      return [head, ...lines].join('\n');
    })
    .join('\n');
}

export interface ViewJson {
  cluster: number;
  leader: string;
  ballot: { round: number; node: number };
  log: { seq: number; phase: PhaseFlag; ballot: { round: number; node: number }; command: string; runsAt?: number }[];
}

function ballotJson(b: Ballot | null | undefined): { round: number; node: number } {
  return { round: b?.round ?? 0, node: b?.node ?? 0 };
}

export function viewsJson(views: ViewInfo[]): ViewJson[] {
  return views.map((v) => ({
    cluster: v.cluster,
    leader: nodeName(v.leader),
    ballot: ballotJson(v.view.ballot),
    log: (v.view.log ?? []).map((e) => ({
      seq: e.seq ?? 0,
      phase: phaseFlag(e.phase),
      ballot: ballotJson(e.ballot),
      command: formatCommand(e.command),
      ...((e.runsAt ?? 0) > 0 ? { runsAt: e.runsAt! } : {}),
    })),
  }));
}

function ms(v: number): string {
  return `${v.toFixed(3)} ms`;
}

/** Performance, one metric per line, `label : value`. */
export function formatPerformance(p: Performance): string {
  const rows: [string, string][] = [
    ['transactions', String(p.transactions)],
    ['committed', String(p.committed)],
    ['aborted', String(p.aborted)],
    ['failed', String(p.failed)],
    ['unknown', String(p.unknown ?? 0)],
    ['reads', String(p.reads)],
    ['elapsed', `${(p.elapsedMs / 1000).toFixed(3)} s`],
    ['throughput', `${p.throughput.toFixed(2)} txn/s`],
    ['latency mean', ms(p.latencyMs.mean)],
    ['latency p50', ms(p.latencyMs.p50)],
    ['latency p90', ms(p.latencyMs.p90)],
    ['latency p99', ms(p.latencyMs.p99)],
    ['latency p99.9', ms(p.latencyMs.p999)],
    ['latency min', ms(p.latencyMs.min)],
    ['latency max', ms(p.latencyMs.max)],
  ];
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(w)} : ${v}`).join('\n');
}
