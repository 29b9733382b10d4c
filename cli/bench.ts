/**
 * `shardbank bench`: a SmallBank/YCSB-style benchmark against a local cluster
 * of real node processes (or running ones with `--connect`). `--clients`
 * requests are in flight at once; the mix, skew and size come from flags or
 * a `--preset`. At the end: a table of outcomes and latencies (overall and per
 * kind), throughput, and an audit that money is conserved and replicas agree.
 */
import { writeFileSync } from 'node:fs';
import type { Ora } from 'ora';
import type { BankClient, TxResult } from '../client/client.js';
import type { AdminClient } from '../client/admin.js';
import type { AdminReply } from '../protocol/messages.js';
import type { Topology, Tuning } from '../protocol/topology.js';
import type { SecurityFlags } from './credentials.js';
import { EXIT_CHECK_FAILED, EXIT_OK } from './exitCodes.js';
import { formatReshard, ReshardPhases, type ReshardFigures } from './bench-reshard.js';
import { auditHolds, flushCluster, formatAudit, freshSetNumber, SetRunner, type Audit, type ReshardOutcome } from './runner.js';
import { reshardLines } from './utilities.js';
import { Session } from './session.js';
import { progressSpinner } from './spinner.js';
import { LatencyRecorder } from './stats.js';
import { BenchSampler, sampleReporter, type BenchSample } from './bench-samples.js';
import { checkRunningLockPolicy, reportedLockPolicy, withLockPolicy } from './bench-locks.js';
import { formatLevels, ReadLevels, type LevelReport } from './bench-levels.js';
import { Workload, type Distribution, type Op, type OpKind, type ReadConsistency } from './workload.js';

export interface BenchOptions {
  count?: number;
  durationS?: number;
  clients: number;
  readOnlyPct: number;
  crossShardPct: number;
  distribution: Distribution;
  skew: number;
  seed: number;
  smallbank?: boolean;
  /** Seconds of the same workload run first and not counted: JIT compilation, caches, a steady pipeline. */
  warmupS?: number;
  /** The `--preset` the options came from, if any (for reports that line runs up). */
  preset?: string;
  /** Percent of read-write operations within one affinity group (`--affinity`); see Workload. */
  affinityPct?: number;
  /** Items per affinity group (`--group-size`). */
  groupSize?: number;
  /** Reshard this many seconds into the run, while the load goes on (`--reshard-at`). */
  reshardAtS?: number;
  /** PrintReshard after the run (the report's TC13 ends with it). */
  printReshard?: boolean;
  /** The level reads are asked at, or `mix` (the four in turn); unset: `leader`, the spec's. */
  consistency?: ReadConsistency;
  /** The local cluster's `tuning.lockPolicy`; with --connect, what the running nodes must report. */
  lockPolicy?: Tuning['lockPolicy'];
}

/** What was measured: shardbank itself, or the same workload on another system. */
export type BenchSystem = 'shardbank' | 'etcd' | 'postgres';


interface KindStats {
  latency: LatencyRecorder;
  outcomes: Record<string, number>;
}

export interface BenchReport {
  system: BenchSystem;
  options: BenchOptions;
  /** Operations run in the warm-up, not counted below. */
  warmupOperations: number;
  elapsedS: number;
  operations: number;
  committed: number;
  throughput: { committedPerS: number; opsPerS: number };
  /** By kind (overall, read, intra, cross, SmallBank names): outcome -> count. */
  outcomes: Record<string, Record<string, number>>;
  latencyMs: Record<string, Record<string, number>>;
  audit: Audit | null;
  /** Per node, over the run: CPU time, batches written (and fsynced) and events, and resident memory at the end. */
  nodes: NodeUsage[];
  /** CPU time of the bench process itself over the run (it shares the machine with the nodes). */
  clientCpuMs: number;
  /** Each second of the run: throughput and latency at the client. */
  samples: BenchSample[];
  /** `--reshard-at`: the move, and the run before and after it. */
  reshard?: ReshardFigures;
  /** PrintReshard after the run (`--preset tc13`). */
  printReshard?: Record<string, unknown>;
  /** Reads per consistency level (when the run asked for a level: `--consistency` or a preset's). */
  levels?: LevelReport;
  /** The lock policy the nodes report they run with (shardbank only). */
  lockPolicy?: string;
}

export interface NodeUsage {
  node: number;
  role: string;
  cpuMs: number;
  turns: number;
  batches: number;
  syncs: number;
  events: number;
  rssMb: number;
  heapMb: number;
}

type Status = NonNullable<AdminReply['status']>;

export async function statuses(admin: AdminClient, topology: Topology): Promise<Map<number, Status>> {
  const out = new Map<number, Status>();
  await Promise.all(
    topology.nodes.map(async ({ id }) => {
      const r = await admin.request(id, { status: {} }).catch(() => null);
      if (r?.status) out.set(id, r.status);
    }),
  );
  return out;
}

/** What each node spent between two status readings. */
export function nodeUsage(before: Map<number, Status>, after: Map<number, Status>): NodeUsage[] {
  const n = (v: unknown) => Number(v ?? 0);
  return [...after].sort((a, b) => a[0] - b[0]).map(([node, s]) => {
    const b = before.get(node) ?? {};
    return {
      node,
      role: s.role ?? '',
      cpuMs: n(s.cpuMs) - n(b.cpuMs),
      turns: n(s.turns) - n(b.turns),
      batches: n(s.batches) - n(b.batches),
      syncs: n(s.syncs) - n(b.syncs),
      events: n(s.events) - n(b.events),
      rssMb: n(s.rssBytes) / 2 ** 20,
      heapMb: n(s.heapUsedBytes) / 2 ** 20,
    };
  });
}

export function formatNodeUsage(nodes: NodeUsage[], committed: number, clientCpuMs: number): string {
  const client = `client     : ${(clientCpuMs / 1000).toFixed(2)} CPU-s in the bench process itself`;
  if (nodes.length === 0) return client;
  const cpu = nodes.reduce((t, u) => t + u.cpuMs, 0);
  const rows = nodes.map(
    (u) =>
      `  n${u.node} ${u.role.padEnd(8)} cpu ${(u.cpuMs / 1000).toFixed(2).padStart(6)} s  ` +
      `${String(u.batches).padStart(7)} batches (${String(u.syncs).padStart(7)} fsynced), ${(u.events / Math.max(1, u.batches)).toFixed(1).padStart(5)} events each  ` +
      `rss ${u.rssMb.toFixed(0).padStart(4)} MB (heap ${u.heapMb.toFixed(0)} MB)`,
  );
  return [
    `nodes      : ${(cpu / 1000).toFixed(2)} CPU-s in all, ${committed ? ((cpu * 1000) / committed).toFixed(0) : '-'} µs of node CPU per commit`,
    ...rows,
    client,
  ].join('\n');
}

function latencySummary(l: LatencyRecorder): Record<string, number> {
  const r = (v: number) => Math.round(v * 1000) / 1000;
  return { count: l.count, min: r(l.min()), mean: r(l.mean()), p50: r(l.percentile(50)), p90: r(l.percentile(90)), p99: r(l.percentile(99)), p999: r(l.percentile(99.9)), max: r(l.max()) };
}

/** How often the run is sampled (throughput and latency over time). */
const SAMPLE_MS = 1000;

/** What a run tells its caller besides its own figures. */
export interface RunHooks {
  /**
   * The kind an operation is counted under, decided when it ends (default:
   * the workload's, by the static shard map). shardbank's bench asks the
   * client, which knows where items live now.
   */
  kindOf?: (op: Op) => string;
  /** Each operation as it ends: its kind, its result, and when it was sent (performance.now()). */
  onResult?: (op: Op, kind: string, result: TxResult, sentAtMs: number) => void;
  /** Each second of the run: throughput and latency at the client. */
  onSample?: (sample: BenchSample) => void;
}

/**
 * The kind of an operation by the owners the client knows now (after
 * resharding, the new ones): a transfer is cross-shard when its two items
 * live in different clusters.
 */
export function liveKind(client: Pick<BankClient, 'ownerOf'>, op: Op): OpKind {
  if (op.kind === 'read') return 'read';
  return client.ownerOf(op.sender) === client.ownerOf(op.receiver) ? 'intra' : 'cross';
}

/** Runs the workload against the client; resolves when count or duration is reached. */
export async function runWorkload(
  client: Pick<BankClient, 'transfer' | 'read'> & Partial<Pick<BankClient, 'leaderOf'>>,
  workload: Workload,
  opts: BenchOptions,
  onTick?: (done: number, elapsedMs: number) => void,
  hooks: RunHooks = {},
): Promise<{ stats: Map<string, KindStats>; elapsedMs: number; done: number; clientCpuMs: number; samples: BenchSample[]; levels: LevelReport }> {
  const stats = new Map<string, KindStats>();
  const stat = (k: string) => {
    let s = stats.get(k);
    if (!s) stats.set(k, (s = { latency: new LatencyRecorder(), outcomes: {} }));
    return s;
  };
  const started = performance.now();
  const cpu = process.cpuUsage();
  const deadline = opts.durationS ? started + opts.durationS * 1000 : Infinity;
  let issued = 0;
  let done = 0;
  const more = () => (opts.count === undefined || issued < opts.count) && performance.now() < deadline;
  const timer = onTick ? setInterval(() => onTick(done, performance.now() - started), 250) : null;
  const sampler = new BenchSampler(started);
  const levels = new ReadLevels(workload.topology, client.leaderOf ? (c) => client.leaderOf!(c) : undefined);
  const sampling = setInterval(() => hooks.onSample?.(sampler.take(performance.now())), SAMPLE_MS);
  const loop = async () => {
    while (more()) {
      issued++;
      const op = workload.next();
      const sentAt = performance.now();
      let r: TxResult;
      if (op.kind === 'read') {
        const mark = levels.mark(op.sender);
        r = await client.read(op.sender, op.level);
        levels.read(op.level ?? 'leader', mark, r);
      } else {
        r = await client.transfer(op.sender, op.receiver, op.amount);
        levels.wrote(r);
      }
      done++;
      sampler.record(r);
      const kind = hooks.kindOf?.(op) ?? op.kind;
      hooks.onResult?.(op, kind, r, sentAt);
      // The SmallBank name, when there is one, is counted besides the kind.
      const label = op.label === op.kind || op.label === 'intra' || op.label === 'cross' ? null : op.label;
      for (const key of ['overall', kind, ...(label ? [label] : [])]) {
        const s = stat(key);
        s.latency.record(r.latencyMs);
        const o = r.reason ? `${r.status}: ${r.reason}` : r.status;
        s.outcomes[o] = (s.outcomes[o] ?? 0) + 1;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, opts.clients) }, loop));
  if (timer) clearInterval(timer);
  clearInterval(sampling);
  const elapsedMs = performance.now() - started;
  // The last part-second is a sample too, unless it is too short to say anything.
  if (elapsedMs - (sampler.samples.at(-1)?.tS ?? 0) * 1000 > SAMPLE_MS / 4) hooks.onSample?.(sampler.take(performance.now()));
  const used = process.cpuUsage(cpu);
  return { stats, elapsedMs, done, clientCpuMs: (used.user + used.system) / 1000, samples: sampler.samples, levels: levels.summary(elapsedMs) };
}

export function formatBenchTable(report: BenchReport): string {
  const rows: string[][] = [['kind', 'ops', 'committed', 'aborted', 'failed', 'unknown', 'min', 'mean', 'p50', 'p90', 'p99', 'p99.9', 'max']];
  for (const [kind, l] of Object.entries(report.latencyMs)) {
    const o = report.outcomes[kind];
    const sum = (p: string) => Object.entries(o ?? {}).filter(([k]) => k.startsWith(p)).reduce((s, [, n]) => s + n, 0);
    rows.push([kind, String(l['count']), String(sum('committed') + sum('ok')), String(sum('aborted')), String(sum('failed')), String(sum('unknown')), ...['min', 'mean', 'p50', 'p90', 'p99', 'p999', 'max'].map((k) => (l[k] ?? 0).toFixed(2))]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const lines = rows.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  '));
  lines.splice(1, 0, widths.map((w) => '-'.repeat(w)).join('  '));
  const reasons = Object.entries(report.outcomes['overall'] ?? {}).map(([k, n]) => `${k} ${n}`).join(', ');
  const levels = report.levels && Object.keys(report.levels).length > 0 ? ['', formatLevels(report.levels), ''] : [];
  return [
    ...lines,
    '(latency in ms, measured at the client from send to reply)',
    ...levels,
    `outcomes   : ${reasons}`,
    `throughput : ${report.throughput.committedPerS.toFixed(0)} committed/s, ${report.throughput.opsPerS.toFixed(0)} operations/s over ${report.elapsedS.toFixed(2)} s`,
  ].join('\n');
}

export type Run = Awaited<ReturnType<typeof runWorkload>>;

export function makeReport(system: BenchSystem, options: BenchOptions, { stats, elapsedMs, done, clientCpuMs, samples, levels }: Run, audit: Audit | null, nodes: NodeUsage[], warmupOperations: number): BenchReport {
  const overall = stats.get('overall');
  const committed = (overall?.outcomes['committed'] ?? 0) + (overall?.outcomes['ok'] ?? 0);
  // Reads per level when the run chose a level; a default run's report stays as it was.
  const perLevel = options.consistency !== undefined && Object.keys(levels).length > 0 ? { levels } : {};
  return {
    system,
    options,
    warmupOperations,
    elapsedS: elapsedMs / 1000,
    operations: done,
    committed,
    throughput: { committedPerS: (committed * 1000) / elapsedMs, opsPerS: (done * 1000) / elapsedMs },
    outcomes: Object.fromEntries([...stats].map(([k, s]) => [k, s.outcomes])),
    latencyMs: Object.fromEntries([...stats].map(([k, s]) => [k, latencySummary(s.latency)])),
    audit,
    nodes,
    clientCpuMs,
    samples,
    ...perLevel,
  };
}

export function progress(spinner: Ora): (n: number, ms: number) => void {
  return (n, ms) => {
    spinner.text = `${n} operations, ${((n * 1000) / Math.max(1, ms)).toFixed(0)}/s`;
  };
}

/** Runs the workload for `warmupS` seconds and forgets the results; returns how many operations ran. */
export async function warmUp(client: Pick<BankClient, 'transfer' | 'read'>, workload: Workload, opts: BenchOptions, spinner: Ora): Promise<number> {
  if (!opts.warmupS) return 0;
  spinner.start(`warming up for ${opts.warmupS} s`);
  const run = await runWorkload(client, workload, Object.assign({}, opts, { count: undefined, durationS: opts.warmupS }));
  return run.done;
}

export function warmupLine(report: BenchReport): string {
  const s = report.options.warmupS;
  return s ? `warm-up    : ${report.warmupOperations} operations over ${s} s before the run, not counted above\n` : '';
}

export function workloadFor(topology: Topology, opts: BenchOptions): Workload {
  const { seed, readOnlyPct, crossShardPct, distribution, skew, smallbank, affinityPct, groupSize, consistency } = opts;
  return new Workload(topology, { seed, readOnlyPct, crossShardPct, distribution, skew, smallbank, affinityPct, groupSize, consistency });
}

/** Reshards at `at` (performance.now() time) while the run goes on; resolves with what it did. */
async function reshardAt(runner: SetRunner, phases: ReshardPhases, at: number): Promise<ReshardOutcome> {
  await new Promise((r) => setTimeout(r, Math.max(0, at - performance.now())));
  phases.markStart();
  try {
    return await runner.printReshard();
  } finally {
    phases.markEnd();
  }
}

/** PrintReshard after the run, as the runner's menu prints it. */
async function printReshardAfter(runner: SetRunner, spinner: Ora): Promise<{ text: string; json: Record<string, unknown>; failedBatches: number }> {
  spinner.text = 'PrintReshard';
  const r = await runner.printReshard();
  const out = reshardLines(r);
  return { text: `printreshard: ${out.text}`, json: out.json, failedBatches: r.batches.filter((b) => b.status !== 'committed').length };
}

export interface BenchCommandOptions extends BenchOptions, SecurityFlags {
  connect?: boolean;
  json?: string;
  dataDir?: string;
  settleS?: number;
  /** A running studio's URL: throughput and latency are posted there every second. */
  reportTo?: string;
}

/**
 * Runs the benchmark; resolves to the exit code: 0 when the audit holds and
 * no node died, 1 otherwise. A node that stopped by itself keeps the data
 * directory, for its log.
 */
export async function benchCommand(given: Topology, opts: BenchCommandOptions): Promise<number> {
  const spinner = progressSpinner();
  // A local cluster's nodes are started with the policy; running nodes keep theirs (checked below).
  const topology = opts.connect ? given : withLockPolicy(given, opts.lockPolicy);
  const session = await Session.open({ ...opts, topology, command: 'bench', clientSlots: Math.max(1, opts.clients) });
  const { admin, client } = session;
  try {
    await session.start(spinner);
    const first = await statuses(admin, topology);
    if (opts.connect) checkRunningLockPolicy(opts.lockPolicy, first);
    // A set of its own: with --connect, nothing in flight from an earlier run on these nodes leaks in.
    await flushCluster(admin, topology, freshSetNumber());
    const workload = workloadFor(topology, opts);
    const warmed = await warmUp(client, workload, opts, spinner);
    const runner = new SetRunner({ topology, client, admin });
    const before = await statuses(admin, topology);
    spinner.start('running');
    const sample = opts.reportTo ? sampleReporter(opts.reportTo, { preset: opts.preset ?? '', clients: opts.clients, pid: process.pid }, (l) => process.stderr.write(`${l}\n`)) : null;
    const runStart = performance.now();
    const phases = new ReshardPhases(runStart);
    const resharding = opts.reshardAtS === undefined ? null : reshardAt(runner, phases, runStart + opts.reshardAtS * 1000);
    const run = await runWorkload(client, workload, opts, progress(spinner), {
      kindOf: (op) => liveKind(client, op),
      ...(resharding ? { onResult: (_op: Op, kind: string, r: TxResult, sentAt: number) => phases.record(kind, r, sentAt) } : {}),
      ...(sample ? { onSample: sample } : {}),
    });
    sample?.(null);
    const runEnd = performance.now();
    if (resharding) spinner.text = 'waiting for the reshard to finish';
    const reshard = resharding ? phases.figures(await resharding, runEnd) : undefined;
    const after = await statuses(admin, topology);
    const printed = opts.printReshard ? await printReshardAfter(runner, spinner) : undefined;
    spinner.text = 'auditing';
    const audit = await runner.audit((opts.settleS ?? 10) * 1000);
    spinner.stop();
    const report: BenchReport = Object.assign(
      makeReport('shardbank', opts, run, audit, nodeUsage(before, after), warmed),
      { lockPolicy: reportedLockPolicy(first) },
      reshard ? { reshard } : {},
      printed ? { printReshard: printed.json } : {},
    );
    const security = session.security.mode === 'tls' ? 'TLS' : 'plaintext';
    const extra = [reshard ? formatReshard(reshard) : null, printed ? printed.text : null].filter(Boolean).map((l) => `${l}\n`).join('');
    process.stdout.write(`${formatBenchTable(report)}\n${warmupLine(report)}${extra}transport  : ${security}\nlocks      : ${report.lockPolicy} (as the nodes report it)\n${formatNodeUsage(report.nodes, report.committed, report.clientCpuMs)}\n${formatAudit(audit)}\n`);
    const deaths = session.cluster?.deaths() ?? [];
    for (const line of deaths) process.stdout.write(`${line}\n`);
    if (opts.json) writeFileSync(opts.json, `${JSON.stringify({ ...report, transport: security, deaths }, null, 1)}\n`);
    if (deaths.length > 0) session.keep();
    const movesHeld = (reshard?.failedBatches.length ?? 0) === 0 && (printed?.failedBatches ?? 0) === 0;
    return auditHolds(audit) && deaths.length === 0 && movesHeld ? EXIT_OK : EXIT_CHECK_FAILED;
  } finally {
    spinner.stop();
    await session.close();
  }
}
