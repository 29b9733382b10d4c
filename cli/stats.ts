/**
 * Client-side performance: latency from send to reply, throughput over the
 * span of a run (SPEC §4.4: both measured at the client).
 */
import hdr from 'hdr-histogram-js';

type Histogram = ReturnType<typeof hdr.build>;

/**
 * Latencies in an HDR histogram at microsecond resolution, 3 significant
 * digits: percentiles stay accurate to 0.1% from microseconds to hours at a
 * fixed memory cost. Count, mean, min and max are kept exactly beside it.
 */
export class LatencyRecorder {
  private readonly hist: Histogram = hdr.build({
    numberOfSignificantValueDigits: 3,
    lowestDiscernibleValue: 1,
    autoResize: true,
    useWebAssembly: false,
  });
  private n = 0;
  private sumMs = 0;
  private minMs = Infinity;
  private maxMs = -Infinity;

  /** Records one latency in ms; negative values (clock skew) count as 0, NaN is ignored. */
  record(ms: number): void {
    if (!Number.isFinite(ms)) return;
    const v = Math.max(0, ms);
    this.hist.recordValue(Math.round(v * 1000));
    this.n += 1;
    this.sumMs += v;
    if (v < this.minMs) this.minMs = v;
    if (v > this.maxMs) this.maxMs = v;
  }

  get count(): number {
    return this.n;
  }

  mean(): number {
    return this.n === 0 ? 0 : this.sumMs / this.n;
  }

  /** The latency (ms) at percentile p in 0..100; 0 with no samples. */
  percentile(p: number): number {
    if (this.n === 0) return 0;
    const q = Math.min(100, Math.max(0, p));
    const v = this.hist.getValueAtPercentile(q) / 1000;
    // A bucket's upper edge can lie past the real extremes.
    return Math.min(this.maxMs, Math.max(this.minMs, v));
  }

  min(): number {
    return this.n === 0 ? 0 : this.minMs;
  }

  max(): number {
    return this.n === 0 ? 0 : this.maxMs;
  }

  reset(): void {
    this.hist.reset();
    this.n = 0;
    this.sumMs = 0;
    this.minMs = Infinity;
    this.maxMs = -Infinity;
  }
}

export type ResultStatus = 'committed' | 'aborted' | 'failed' | 'unknown' | 'ok';

export interface Performance {
  /** Requests that got an outcome (replies and give-ups alike). */
  transactions: number;
  committed: number;
  aborted: number;
  failed: number;
  /** Writes with no answer in time: they may still apply. */
  unknown: number;
  /** Balance reads among `transactions`. */
  reads: number;
  elapsedMs: number;
  /** transactions per second over `elapsedMs`. */
  throughput: number;
  latencyMs: { mean: number; p50: number; p90: number; p99: number; p999: number; min: number; max: number };
}

export interface PerformanceMeterOptions {
  /** Clock in ms; injectable so that tests are deterministic. */
  now?: () => number;
}

/**
 * Counts outcomes and latencies of one run (a test set, a benchmark).
 * Elapsed time runs from `start()` to the last result (or `stop()`), so a
 * snapshot taken long after the run, at a prompt, still reports the run.
 */
export class PerformanceMeter {
  private readonly now: () => number;
  private readonly latency = new LatencyRecorder();
  private startedAt: number | null = null;
  private lastAt: number | null = null;
  private stoppedAt: number | null = null;
  private counts = { transactions: 0, committed: 0, aborted: 0, failed: 0, unknown: 0, reads: 0 };
  private kinds = new Map<string, number>();

  constructor(opts: PerformanceMeterOptions = {}) {
    this.now = opts.now ?? (() => performance.now());
  }

  /** Starts a fresh measurement, forgetting everything recorded before. */
  start(): void {
    this.reset();
    this.startedAt = this.now();
  }

  /** Ends the measured span now; later results still count but do not extend it. */
  stop(): void {
    if (this.startedAt !== null && this.stoppedAt === null) this.stoppedAt = this.now();
  }

  reset(): void {
    this.latency.reset();
    this.startedAt = null;
    this.lastAt = null;
    this.stoppedAt = null;
    this.counts = { transactions: 0, committed: 0, aborted: 0, failed: 0, unknown: 0, reads: 0 };
    this.kinds.clear();
  }

  /**
   * One request's outcome. `ok` is a read's answer; `kind` (e.g. `read`,
   * `intra`, `cross`) is counted for `byKind`.
   */
  recordResult(latencyMs: number, status: ResultStatus, kind?: string): void {
    const at = this.now();
    // Without start(), the run began when its first request was sent.
    if (this.startedAt === null) this.startedAt = at - Math.max(0, Number.isFinite(latencyMs) ? latencyMs : 0);
    this.lastAt = at;
    this.latency.record(latencyMs);
    this.counts.transactions += 1;
    if (status === 'committed') this.counts.committed += 1;
    else if (status === 'aborted') this.counts.aborted += 1;
    else if (status === 'failed') this.counts.failed += 1;
    else if (status === 'unknown') this.counts.unknown += 1;
    if (status === 'ok' || kind === 'read') this.counts.reads += 1;
    if (kind !== undefined) this.kinds.set(kind, (this.kinds.get(kind) ?? 0) + 1);
  }

  /** Results per `kind` given to recordResult. */
  byKind(): Record<string, number> {
    return Object.fromEntries(this.kinds);
  }

  snapshot(): Performance {
    const end = this.stoppedAt ?? this.lastAt ?? this.startedAt;
    const elapsedMs = this.startedAt === null || end === null ? 0 : Math.max(0, end - this.startedAt);
    const l = this.latency;
    return {
      ...this.counts,
      elapsedMs,
      throughput: elapsedMs > 0 ? (this.counts.transactions * 1000) / elapsedMs : 0,
      latencyMs: {
        mean: l.mean(),
        p50: l.percentile(50),
        p90: l.percentile(90),
        p99: l.percentile(99),
        p999: l.percentile(99.9),
        min: l.min(),
        max: l.max(),
      },
    };
  }
}
