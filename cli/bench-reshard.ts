/**
 * `bench --reshard-at S`: resharding in the middle of a run while the load
 * goes on, and what it changed. The run's operations fall into three phases
 * by when they were sent: before the reshard began, during it (from the
 * history's gathering to the last batch's answer), and after it. Each phase
 * gets its cross-shard share, its committed/s and its latency percentiles;
 * the move gets its items, its duration and the worst latency of any
 * operation in flight while it ran.
 *
 * An operation is cross-shard when its items live in different clusters as
 * the client knows them when the operation ends: after the move, the new
 * owners (which the client follows from MOVED answers and learns from the
 * resharder), not the static shard map.
 */
import type { TxResult } from '../client/client.js';
import type { ReshardOutcome } from './runner.js';
import { LatencyRecorder } from './stats.js';

export interface PhaseFigures {
  /** Operations sent in the phase, and how they ended. */
  ops: number;
  committed: number;
  failed: number;
  /** Of the transfers sent in the phase, the percent whose items live in two clusters. */
  crossSharePct: number;
  committedPerS: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  /** How long the phase lasted, in seconds. */
  spanS: number;
}

export interface ReshardFigures {
  /** Seconds into the run the reshard began. */
  atS: number;
  /** Items moved (committed batches), of `planned`. */
  moved: number;
  planned: number;
  batches: number;
  failedBatches: { from: number; to: number; items: number; status: string; reason: string }[];
  /** Each batch's items and how long it took from sending to its answer, in ms, in the order they were answered. */
  batchMs: { items: number; ms: number; status: string }[];
  /** Gathering the history and partitioning, in ms. */
  planMs: number;
  /** Moving the items, in ms. */
  moveMs: number;
  /** Transfers of the history that crossed clusters before and after the plan, of `transfers`. */
  cutBefore: number;
  cutAfter: number;
  transfers: number;
  /** The worst latency of an operation in flight while the reshard ran, in ms. */
  maxLatencyDuringMs: number;
  before: PhaseFigures;
  during: PhaseFigures;
  /** Null when the run ended before the move did. */
  after: PhaseFigures | null;
  /** Second by second (by when operations ended): committed, failed, cross-shard percent of transfers, worst latency. */
  timeline: { s: number; committed: number; aborted: number; failed: number; crossSharePct: number; maxMs: number }[];
}

class Phase {
  readonly latency = new LatencyRecorder();
  ops = 0;
  committed = 0;
  failed = 0;
  transfers = 0;
  cross = 0;

  add(kind: string, r: TxResult): void {
    this.ops++;
    this.latency.record(r.latencyMs);
    if (r.status === 'committed' || r.status === 'ok') this.committed++;
    if (r.status === 'failed') this.failed++;
    if (kind === 'intra' || kind === 'cross') this.transfers++;
    if (kind === 'cross') this.cross++;
  }

  figures(spanMs: number): PhaseFigures {
    const l = this.latency;
    const r = (v: number) => Math.round(v * 100) / 100;
    return {
      ops: this.ops,
      committed: this.committed,
      failed: this.failed,
      crossSharePct: r(this.transfers ? (100 * this.cross) / this.transfers : 0),
      committedPerS: r(spanMs > 0 ? (this.committed * 1000) / spanMs : 0),
      p50Ms: r(l.percentile(50)),
      p90Ms: r(l.percentile(90)),
      p99Ms: r(l.percentile(99)),
      maxMs: r(l.max()),
      spanS: r(spanMs / 1000),
    };
  }
}

/**
 * Sorts a run's results into before, during and after a reshard, by when
 * each operation was sent; marks are performance.now() times.
 */
export class ReshardPhases {
  private readonly before = new Phase();
  private readonly during = new Phase();
  private readonly after = new Phase();
  private reshardAt: number | null = null;
  private movedAt: number | null = null;
  private worstDuringMs = 0;
  private readonly seconds: { committed: number; aborted: number; failed: number; transfers: number; cross: number; maxMs: number }[] = [];

  constructor(private readonly runStart: number) {}

  /** The reshard begins now. */
  markStart(at = performance.now()): void {
    this.reshardAt = at;
  }

  /** The reshard is over (every batch answered, the owners learnt). */
  markEnd(at = performance.now()): void {
    this.movedAt = at;
  }

  /** One operation's end: `sentAt` is when it was sent. */
  record(kind: string, r: TxResult, sentAt: number): void {
    const endedAt = sentAt + r.latencyMs;
    const start = this.reshardAt;
    const end = this.movedAt;
    if (start === null || sentAt < start) this.before.add(kind, r);
    else if (end === null || sentAt < end) this.during.add(kind, r);
    else this.after.add(kind, r);
    const second = Math.max(0, Math.floor((endedAt - this.runStart) / 1000));
    while (this.seconds.length <= second) this.seconds.push({ committed: 0, aborted: 0, failed: 0, transfers: 0, cross: 0, maxMs: 0 });
    const b = this.seconds[second]!;
    if (r.status === 'committed' || r.status === 'ok') b.committed++;
    if (r.status === 'failed') b.failed++;
    if (r.status === 'aborted') b.aborted++;
    if (kind === 'intra' || kind === 'cross') b.transfers++;
    if (kind === 'cross') b.cross++;
    b.maxMs = Math.max(b.maxMs, Math.round(r.latencyMs));
    // In flight at some point while the reshard ran.
    if (start !== null && endedAt >= start && (end === null || sentAt <= end)) this.worstDuringMs = Math.max(this.worstDuringMs, r.latencyMs);
  }

  /** The figures, once the run (ended at `runEnd`) and the reshard are over. */
  figures(outcome: ReshardOutcome, runEnd: number): ReshardFigures {
    const start = this.reshardAt ?? runEnd;
    const end = this.movedAt ?? runEnd;
    const failed = outcome.batches.filter((b) => b.status !== 'committed');
    return {
      atS: Math.round((start - this.runStart) / 10) / 100,
      moved: outcome.moved.length,
      planned: outcome.plan.moves.length,
      batches: outcome.batches.length,
      failedBatches: failed.map((b) => ({ from: b.from, to: b.to, items: b.items.length, status: b.status, reason: b.reason })),
      batchMs: outcome.batches.map((b) => ({ items: b.items.length, ms: b.ms, status: b.status })),
      planMs: Math.round(outcome.planMs),
      moveMs: Math.round(outcome.moveMs),
      cutBefore: outcome.plan.cutBefore,
      cutAfter: outcome.plan.cutAfter,
      transfers: outcome.plan.transfers,
      maxLatencyDuringMs: Math.round(this.worstDuringMs * 100) / 100,
      before: this.before.figures(start - this.runStart),
      during: this.during.figures(end - start),
      after: end < runEnd ? this.after.figures(runEnd - end) : null,
      timeline: this.seconds.map((b, i) => ({ s: i, committed: b.committed, aborted: b.aborted, failed: b.failed, crossSharePct: b.transfers ? Math.round((1000 * b.cross) / b.transfers) / 10 : 0, maxMs: b.maxMs })),
    };
  }
}

function phaseLine(name: string, p: PhaseFigures): string {
  const failed = p.failed ? `, ${p.failed} failed` : '';
  return (
    `  ${name.padEnd(6)}: ${p.crossSharePct.toFixed(1).padStart(5)}% cross-shard, ${p.committedPerS.toFixed(0).padStart(6)} committed/s over ${p.spanS.toFixed(1)} s` +
    ` (${p.ops} operations${failed}), p50 / p90 / p99 / max ${p.p50Ms.toFixed(1)} / ${p.p90Ms.toFixed(1)} / ${p.p99Ms.toFixed(1)} / ${p.maxMs.toFixed(0)} ms`
  );
}

/** The reshard's lines of the bench report. */
export function formatReshard(f: ReshardFigures): string {
  const lines = [
    `reshard    : at ${f.atS.toFixed(1)} s, ${f.moved} of ${f.planned} planned items moved in ${f.batches} batches over ${(f.moveMs / 1000).toFixed(2)} s ` +
      `(history and plan ${(f.planMs / 1000).toFixed(2)} s: cut ${f.cutBefore} -> ${f.cutAfter} of ${f.transfers} recent transfers); ` +
      `worst latency during it ${f.maxLatencyDuringMs.toFixed(0)} ms`,
    ...f.failedBatches.map((b) => `  batch of ${b.items} items from c${b.from} to c${b.to} ${b.status}: ${b.reason}`),
    phaseLine('before', f.before),
    phaseLine('during', f.during),
    f.after ? phaseLine('after', f.after) : '  after : the run ended before the move did',
  ];
  if (f.after && f.before.committedPerS > 0) lines.push(`  after / before: ${(f.after.committedPerS / f.before.committedPerS).toFixed(2)}x committed/s`);
  return lines.join('\n');
}
