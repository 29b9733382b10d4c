/**
 * A benchmark run over time: one sample per second of what completed in it
 * (operations, commits, latency percentiles at the client). The bench keeps
 * them in its `--json` report and, with `--report-to URL`, posts each one to
 * a studio as it is taken, which plots them live. `parseBenchReport` reads a
 * `bench --json` file back for the studio, with a one-line reason when it is
 * not one.
 */
import type { TxResult } from '../client/client.js';
import { LatencyRecorder } from './stats.js';

export interface BenchSample {
  /** Seconds since the run started, at the end of the sample. */
  tS: number;
  opsPerS: number;
  committedPerS: number;
  meanMs: number;
  p50Ms: number;
  p99Ms: number;
}

/** Cuts a run into samples: `record` each result, `take` one sample per interval. */
export class BenchSampler {
  readonly samples: BenchSample[] = [];
  private readonly latency = new LatencyRecorder();
  private ops = 0;
  private committed = 0;
  private lastMs: number;

  constructor(private readonly startMs: number) {
    this.lastMs = startMs;
  }

  record(r: TxResult): void {
    this.ops++;
    if (r.status === 'committed' || r.status === 'ok') this.committed++;
    this.latency.record(r.latencyMs);
  }

  /** The sample since the last one, ending at `nowMs`. */
  take(nowMs: number): BenchSample {
    const spanS = Math.max(1e-3, (nowMs - this.lastMs) / 1000);
    const r2 = (v: number) => Math.round(v * 100) / 100;
    const sample = {
      tS: r2((nowMs - this.startMs) / 1000),
      opsPerS: Math.round(this.ops / spanS),
      committedPerS: Math.round(this.committed / spanS),
      meanMs: r2(this.latency.mean()),
      p50Ms: r2(this.latency.percentile(50)),
      p99Ms: r2(this.latency.percentile(99)),
    };
    this.samples.push(sample);
    this.latency.reset();
    this.ops = 0;
    this.committed = 0;
    this.lastMs = nowMs;
    return sample;
  }
}

/**
 * Posts samples to a studio (`--report-to URL`). A studio that is not there
 * costs one warning, then nothing: the run goes on.
 */
export function sampleReporter(url: string, run: Record<string, unknown>, warn: (line: string) => void): (s: BenchSample | null) => void {
  let broken = false;
  const target = new URL('/api/bench/sample', url).href;
  return (sample) => {
    if (broken) return;
    fetch(target, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ run, sample, done: sample === null }) }).catch((err: Error) => {
      broken = true;
      warn(`bench: cannot report to the studio at ${url} (${err.message}); going on without it`);
    });
  };
}

export interface BenchFile {
  system: string;
  preset: string;
  clients: number;
  elapsedS: number;
  committedPerS: number;
  opsPerS: number;
  /** Kind -> percentile name -> ms. */
  latencyMs: Record<string, Record<string, number>>;
  samples: BenchSample[];
}

export class BenchFileError extends Error {}


/** A `bench --json` file's figures; throws BenchFileError naming what is wrong. */
export function parseBenchReport(text: string, name = 'the file'): BenchFile {
  let obj: Record<string, unknown>;
  try {
    obj = JSON.parse(text) as Record<string, unknown>;
  } catch (err) {
    throw new BenchFileError(`${name} is not JSON (${(err as Error).message})`);
  }
  const num = (v: unknown, what: string): number => {
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new BenchFileError(`${name} is not a bench --json report: ${what} is not a number`);
    return v;
  };
  if (!obj || typeof obj !== 'object' || Array.isArray(obj)) throw new BenchFileError(`${name} is not a bench --json report: not an object`);
  const throughput = obj['throughput'] as Record<string, unknown> | undefined;
  if (!throughput || typeof throughput !== 'object') throw new BenchFileError(`${name} is not a bench --json report: it has no "throughput"`);
  const latency = obj['latencyMs'];
  if (!latency || typeof latency !== 'object') throw new BenchFileError(`${name} is not a bench --json report: it has no "latencyMs"`);
  const options = (obj['options'] ?? {}) as Record<string, unknown>;
  const samples = Array.isArray(obj['samples']) ? (obj['samples'] as unknown[]) : [];
  return {
    system: typeof obj['system'] === 'string' ? obj['system'] : 'shardbank',
    preset: typeof options['preset'] === 'string' ? options['preset'] : '',
    clients: typeof options['clients'] === 'number' ? options['clients'] : 0,
    elapsedS: num(obj['elapsedS'], '"elapsedS"'),
    committedPerS: num(throughput['committedPerS'], '"throughput.committedPerS"'),
    opsPerS: num(throughput['opsPerS'], '"throughput.opsPerS"'),
    latencyMs: Object.fromEntries(
      Object.entries(latency as Record<string, Record<string, unknown>>).map(([kind, l]) => [
        kind,
        Object.fromEntries(['mean', 'p50', 'p90', 'p99', 'p999', 'max'].filter((k) => typeof l?.[k] === 'number').map((k) => [k, l[k] as number])),
      ]),
    ),
    samples: samples.map((s, i) => {
      const o = s as Record<string, unknown>;
      const at = `"samples[${i}]`;
      return { tS: num(o['tS'], `${at}.tS"`), opsPerS: num(o['opsPerS'], `${at}.opsPerS"`), committedPerS: num(o['committedPerS'], `${at}.committedPerS"`), meanMs: num(o['meanMs'], `${at}.meanMs"`), p50Ms: num(o['p50Ms'], `${at}.p50Ms"`), p99Ms: num(o['p99Ms'], `${at}.p99Ms"`) };
    }),
  };
}
