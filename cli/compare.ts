/**
 * `shardbank compare-table DIR`: the side-by-side table that bench/compare.sh
 * prints. DIR holds one `bench --json` file per run (shardbank, PostgreSQL
 * with two synchronous standbys, etcd; `bench --idle` for the idle nodes)
 * and a `setup.json` saying when, where and how. Runs are matched by what
 * they say of themselves (system, preset, clients), not by file name. A run
 * that left no report has a file `{system, options, error}` in its place.
 *
 * The table is the one the performance targets are stated in: intra-shard
 * transfers/s with p50 and p99 per client count, balance reads, the ratio of
 * shardbank to PostgreSQL, then shardbank's cross-shard rows and the idle
 * nodes' CPU, each against its target.
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BenchReport } from './bench.js';
import type { IdleReport } from './bench-idle.js';

export type System = 'shardbank' | 'postgres' | 'etcd';
/** The table's columns, in order. */
export const SYSTEMS: System[] = ['shardbank', 'postgres', 'etcd'];

/** When, where and how the runs were made (written by bench/compare.sh). */
export interface Setup {
  date?: string;
  machine?: string;
  versions?: Record<string, string>;
  durationS?: number;
  warmupS?: number;
  seed?: number;
  quick?: boolean;
}

/**
 * One run's figures, or why there are none. `cpuUs`: CPU of shardbank's
 * nodes, or of the other system's server processes, per committed
 * operation, when the run measured it.
 */
export type Cell = { perS: number; p50: number; p99: number; cpuUs?: number; note?: string } | { error: string };

/** A run's file: a bench report, or the stand-in for a run that left none. */
type RunFile = Partial<BenchReport> & { serverCpuMs?: number; system?: System; options?: { preset?: string; clients?: number }; error?: string; postgres?: { total?: number; expectedTotal?: number }; etcd?: { total?: number; expectedTotal?: number }; deaths?: string[] };

export interface Runs {
  setup: Setup;
  /** By `system/preset/clients`. */
  cells: Map<string, Cell>;
  idle: IdleReport['idle'] | { error: string } | null;
  /** Every file read, by name, for the combined JSON. */
  files: Record<string, unknown>;
}

/** How a run is found: `shardbank/intra/64`. */
export const runKey = (system: System, preset: string, clients: number) => `${system}/${preset}/${clients}`;

/** What went wrong in a run that still reported: lost money, a dead node, failed requests. */
function runNote(r: RunFile): string | undefined {
  const notes: string[] = [];
  if (r.audit && (!r.audit.conserved || !r.audit.replicasAgree)) notes.push('audit failed');
  const other = r.system === 'postgres' ? r.postgres : r.system === 'etcd' ? r.etcd : undefined;
  if (other && other.total !== other.expectedTotal) notes.push('money not conserved');
  if (r.deaths?.length) notes.push(`${r.deaths.length} node(s) died`);
  const failed = Object.entries(r.outcomes?.['overall'] ?? {}).filter(([k]) => k.startsWith('failed')).reduce((s, [, n]) => s + n, 0);
  if (failed > 0) notes.push(`${failed} failed`);
  return notes.length ? notes.join(', ') : undefined;
}

/** The figures of one bench report. */
export function cellOf(r: RunFile): Cell {
  if (r.error) return { error: r.error };
  const overall = r.latencyMs?.['overall'];
  if (!r.throughput || !overall) return { error: 'no figures in the report' };
  const note = runNote(r);
  const cpuMs = r.system === 'shardbank' ? (r.nodes?.length ? r.nodes.reduce((t, n) => t + n.cpuMs, 0) : undefined) : r.serverCpuMs;
  const cpuUs = cpuMs !== undefined && r.committed ? (cpuMs * 1000) / r.committed : undefined;
  return Object.assign({ perS: r.throughput.committedPerS, p50: overall['p50'] ?? 0, p99: overall['p99'] ?? 0 }, cpuUs === undefined ? {} : { cpuUs }, note ? { note } : {});
}

/** Sorts parsed files into runs; `name` is only for the combined JSON. */
export function collectRuns(files: { name: string; json: unknown }[]): Runs {
  const runs: Runs = { setup: {}, cells: new Map(), idle: null, files: {} };
  for (const { name, json } of files) {
    runs.files[name] = json;
    const f = json as RunFile & { setup?: Setup; idle?: IdleReport['idle'] };
    if (f.setup) runs.setup = f.setup;
    else if (f.idle) runs.idle = f.idle;
    else if (f.system && f.options?.preset === 'idle') runs.idle = { error: f.error ?? 'no figures' };
    else if (f.system && f.options?.preset && f.options.clients !== undefined) runs.cells.set(runKey(f.system, f.options.preset, f.options.clients), cellOf(f));
  }
  return runs;
}

/** Reads every `*.json` in `dir`; a file that is not JSON is named in the error. */
export function readRuns(dir: string): Runs {
  const names = readdirSync(dir).filter((n) => n.endsWith('.json')).sort();
  return collectRuns(
    names.map((name) => {
      try {
        return { name, json: JSON.parse(readFileSync(join(dir, name), 'utf8')) as unknown };
      } catch (err) {
        throw new Error(`${join(dir, name)}: not JSON (${(err as Error).message})`);
      }
    }),
  );
}

/** Client counts that some system ran `preset` with, ascending. */
export function clientCounts(runs: Runs, preset: string): number[] {
  const out = new Set<number>();
  for (const key of runs.cells.keys()) {
    const [, p, c] = key.split('/');
    if (p === preset) out.add(Number(c));
  }
  return [...out].sort((a, b) => a - b);
}

// --- formatting -------------------------------------------------------------

const perS = (v: number) => `${Math.round(v).toLocaleString('en-US')}/s`;

/** Milliseconds the way the targets are written: 0.84, 3.1, 19.8, 164. */
export function ms(v: number): string {
  if (v < 1) return v.toFixed(2);
  if (v < 100) return v.toFixed(1);
  return Math.round(v).toString();
}

const ok = (c: Cell | undefined): c is Extract<Cell, { perS: number }> => c !== undefined && !('error' in c);

/** `1,077/s, 50.1 / 160 ms`, with what went wrong in the run; or why there is no result. */
export function formatCell(c: Cell | undefined, latency = true): string {
  if (c === undefined) return '-';
  if ('error' in c) return `no result (${c.error})`;
  const figures = latency ? `${perS(c.perS)}, ${ms(c.p50)} / ${ms(c.p99)} ms` : perS(c.perS);
  return c.note ? `${figures} (${c.note})` : figures;
}

const ratio = (a: number, b: number) => (b > 0 ? `${(a / b).toFixed(2)}x` : '-');

/** shardbank's figures over PostgreSQL's: throughput, and (for transfers) p50 at one client and p99. */
export function formatRatio(sb: Cell | undefined, pg: Cell | undefined, clients: number, latency = true): string {
  if (!ok(sb) || !ok(pg)) return '-';
  const parts = [ratio(sb.perS, pg.perS)];
  if (latency && clients === 1) parts.push(`p50 ${ratio(sb.p50, pg.p50)}`);
  if (latency) parts.push(`p99 ${ratio(sb.p99, pg.p99)}`);
  return parts.join(', ');
}

/**
 * The intra-shard target: at least PostgreSQL's transfers/s, p99 at most
 * twice its p99, and with one client a p50 no higher than its p50.
 */
export function intraTargetMet(sb: Cell | undefined, pg: Cell | undefined, clients: number): boolean | null {
  if (!ok(sb) || !ok(pg)) return null;
  return sb.perS >= pg.perS && sb.p99 <= 2 * pg.p99 && (clients !== 1 || sb.p50 <= pg.p50);
}

/** shardbank's rows that stand alone, each with its target. */
export const SHARDBANK_ROWS: { preset: string; clients: number; label: string; target: string; met: (c: Extract<Cell, { perS: number }>) => boolean }[] = [
  { preset: 'intra', clients: 512, label: 'intra-shard, 512 clients', target: '>= 12,000/s', met: (c) => c.perS >= 12_000 },
  { preset: 'cross20', clients: 64, label: '20% cross-shard, 64 clients', target: '>= 5,000/s', met: (c) => c.perS >= 5_000 },
  { preset: 'cross100', clients: 512, label: '100% cross-shard, 512 clients', target: '>= 4,000/s', met: (c) => c.perS >= 4_000 },
  { preset: 'cross100', clients: 1, label: '100% cross-shard, 1 client', target: 'p50 <= 4 ms, p99 <= 10 ms', met: (c) => c.p50 <= 4 && c.p99 <= 10 },
];

/** Percent of one core that nine idle nodes may use together. */
export const IDLE_TARGET_PCT = 2;

const verdict = (met: boolean | null) => (met === null ? '-' : met ? 'met' : 'missed');

function markdown(rows: string[][]): string[] {
  return [`| ${rows[0]!.join(' | ')} |`, `| ${rows[0]!.map(() => '---').join(' | ')} |`, ...rows.slice(1).map((r) => `| ${r.join(' | ')} |`)];
}

function header(setup: Setup): string[] {
  const v = setup.versions ?? {};
  const lines = [
    `shardbank (9 node processes) vs ${v['postgres'] ?? 'PostgreSQL'} with 2 synchronous standbys (ANY 1 (r1, r2)) vs ${v['etcd'] ?? 'etcd'} with 3 members; fsync on, loopback`,
  ];
  if (setup.date || setup.machine) lines.push([setup.date, setup.machine].filter(Boolean).join(', '));
  if (setup.durationS !== undefined) {
    lines.push(
      `each row: ${setup.durationS} s measured after ${setup.warmupS ?? 0} s of the same workload, seed ${setup.seed ?? 1}, accounts 1..9000 with 1,000,000 each, amounts 1..10, items uniform` +
        (setup.quick ? ' (--quick: a smoke run, not figures to quote)' : ''),
    );
  }
  return lines;
}

/** The whole table, as markdown with a few lines of setup above it. */
export function formatComparison(runs: Runs): string {
  const cell = (s: System, preset: string, c: number) => runs.cells.get(runKey(s, preset, c));
  const main: string[][] = [['clients', 'shardbank transfers/s, p50 / p99', 'PostgreSQL + 2 sync standbys', 'etcd, 3 members', 'shardbank / PostgreSQL', 'target']];
  for (const c of clientCounts(runs, 'intra')) {
    const [sb, pg, etcd] = SYSTEMS.map((s) => cell(s, 'intra', c));
    if (!pg && !etcd && c === 512) continue; // shardbank alone: in the second table
    main.push([String(c), formatCell(sb), formatCell(pg), formatCell(etcd), formatRatio(sb, pg, c), verdict(intraTargetMet(sb, pg, c))]);
  }
  for (const c of clientCounts(runs, 'reads')) {
    const [sb, pg, etcd] = SYSTEMS.map((s) => cell(s, 'reads', c));
    main.push([`reads, ${c}`, formatCell(sb), formatCell(pg), formatCell(etcd), formatRatio(sb, pg, c, false), '']);
  }
  const alone: string[][] = [['shardbank alone', 'transfers/s, p50 / p99', 'target', 'met?']];
  for (const row of SHARDBANK_ROWS) {
    const c = cell('shardbank', row.preset, row.clients);
    if (c === undefined || (row.preset === 'intra' && (cell('postgres', 'intra', row.clients) || cell('etcd', 'intra', row.clients)))) continue;
    alone.push([row.label, formatCell(c), row.target, verdict(ok(c) ? row.met(c) : null)]);
  }
  if (runs.idle) {
    const idle = runs.idle;
    const figures = 'error' in idle ? `no result (${idle.error})` : `${idle.percentOfCore.toFixed(2)}% of one core (${idle.cpuMs.toFixed(0)} ms of CPU)`;
    const label = 'error' in idle ? 'idle nodes' : `${idle.nodes.length} idle nodes, ${idle.seconds} s`;
    alone.push([label, figures, `< ${IDLE_TARGET_PCT}% of one core`, verdict('error' in idle ? null : idle.percentOfCore < IDLE_TARGET_PCT)]);
  }
  const cpu: string[][] = [['CPU per committed transfer', 'shardbank (9 nodes)', 'PostgreSQL (3 servers)', 'etcd (3 members)']];
  for (const c of clientCounts(runs, 'intra')) {
    const cells = SYSTEMS.map((s) => cell(s, 'intra', c));
    if (cells.some((x) => ok(x) && x.cpuUs !== undefined)) cpu.push([`${c} client${c === 1 ? '' : 's'}`, ...cells.map((x) => (ok(x) && x.cpuUs !== undefined ? `${Math.round(x.cpuUs).toLocaleString('en-US')} µs` : '-'))]);
  }
  const out = [...header(runs.setup), '', ...markdown(main)];
  if (alone.length > 1) out.push('', ...markdown(alone));
  if (cpu.length > 1) out.push('', ...markdown(cpu));
  out.push(
    '',
    'p50 / p99: latency at the client, from send to reply. Ratios are shardbank over PostgreSQL: throughput, then latency (lower is better).',
    "target: at least PostgreSQL's transfers/s with at most twice its p99, and with one client a p50 no higher than its own.",
    ...(cpu.length > 1 ? ['CPU: all threads of the node or server processes over the measured run (PostgreSQL: the postmasters and every backend and WAL sender), over the transfers committed.'] : []),
  );
  return out.join('\n');
}

/** The combined JSON: setup, the table's figures, and every run's report. */
export function comparisonJson(runs: Runs): object {
  return { setup: runs.setup, cells: Object.fromEntries(runs.cells), idle: runs.idle, runs: runs.files };
}

/** Prints the table of the reports in `dir`; exit code 2 when there are none. */
export function compareTableCommand(dir: string, opts: { json?: string }): number {
  let runs: Runs;
  try {
    runs = readRuns(dir);
  } catch (err) {
    process.stderr.write(`compare-table: ${(err as Error).message}\n`);
    return 2;
  }
  if (runs.cells.size === 0 && !runs.idle) {
    process.stderr.write(`compare-table: no bench reports in ${dir}\n`);
    return 2;
  }
  process.stdout.write(`${formatComparison(runs)}\n`);
  if (opts.json) writeFileSync(opts.json, `${JSON.stringify(comparisonJson(runs), null, 1)}\n`);
  return 0;
}
