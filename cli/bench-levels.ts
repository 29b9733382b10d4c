/**
 * A benchmark's reads, level by level: how many were answered, how fast and
 * how slowly, who answered them, and how old what they returned was.
 *
 * How old is measured at the client, as a user could see it, from the
 * execute points the replies carry. The client keeps, per cluster, the
 * furthest point it knows was executed there: the seq of a transfer of its
 * own that committed, or the point a replica said it had executed through
 * when it answered a read. A read is `stale` when the replica that answered
 * had executed less than what the client knew when it sent the read: it
 * returned a state older than one the client had already seen. It `missed
 * its own write` when that replica had not even executed the client's own
 * last commit in the cluster. A linearizable read is never stale; a session
 * read may be, but never misses the client's own writes; an `any` read may
 * do both, by as much as its replica lags. (The bench is one client: its
 * session is every write of the run.)
 */
import type { TxResult } from '../client/client.js';
import { LEVELS, type Level } from '../protocol/consistency.js';
import { clusterOfItem, clusterOfNode, type Topology } from '../protocol/topology.js';
import { LatencyRecorder } from './stats.js';

/** One level's reads over a run. */
export interface LevelSummary {
  /** Reads that got an outcome, answered or not. */
  reads: number;
  ok: number;
  failed: number;
  /** Answered reads per second over the run. */
  okPerS: number;
  latencyMs: { mean: number; p50: number; p90: number; p99: number; max: number };
  /** Answered by a node other than its cluster's leader. */
  byFollower: number;
  /** Answered from a state older than one the client had already seen in that cluster. */
  stale: number;
  /** Answered from a state without the client's own last commit in that cluster. */
  missedOwnWrite: number;
  /** Over the stale reads: how many entries behind, on average and at most. */
  meanBehind: number;
  maxBehind: number;
}

export type LevelReport = Partial<Record<Level, LevelSummary>>;

/** What the client knew of a cluster when it sent a read: the furthest point seen, and its own last commit. */
export interface ReadMark {
  cluster: number | null;
  through: number;
  own: number;
}

interface Tally {
  latency: LatencyRecorder;
  ok: number;
  failed: number;
  byFollower: number;
  stale: number;
  missedOwnWrite: number;
  behindSum: number;
  maxBehind: number;
}

/**
 * Counts a run's reads per level. `leaderOf` (the bank client's own) tells
 * a follower's answer from the leader's; without it none is counted.
 */
export class ReadLevels {
  /** cluster -> the furthest seq the client knows was executed there. */
  private readonly known = new Map<number, number>();
  /** cluster -> the seq of the client's own last commit there. */
  private readonly own = new Map<number, number>();
  private readonly tallies = new Map<Level, Tally>();

  constructor(
    private readonly topology: Topology,
    private readonly leaderOf?: (cluster: number) => number | undefined,
  ) {}

  /** Before a read of `item` is sent: what the client then knows of its cluster. */
  mark(item: number): ReadMark {
    const cluster = clusterOfItem(this.topology, item);
    if (cluster === null) return { cluster, through: 0, own: 0 };
    return { cluster, through: this.known.get(cluster) ?? 0, own: this.own.get(cluster) ?? 0 };
  }

  /** A transfer's outcome: a commit tells how far its cluster has executed at least. */
  wrote(r: TxResult): void {
    if (r.status !== 'committed' || !r.seq || !r.node) return;
    const cluster = clusterOfNode(this.topology, r.node);
    this.learn(cluster, r.seq);
    if (r.seq > (this.own.get(cluster) ?? 0)) this.own.set(cluster, r.seq);
  }

  /** A read's outcome at its level, judged against what the client knew when it sent it. */
  read(level: Level, mark: ReadMark, r: TxResult): void {
    const t = this.tally(level);
    t.latency.record(r.latencyMs);
    if (r.status !== 'ok') {
      t.failed++;
      return;
    }
    t.ok++;
    if (!r.node) return;
    const cluster = clusterOfNode(this.topology, r.node);
    const leader = this.leaderOf?.(cluster);
    if (leader !== undefined && leader !== r.node) t.byFollower++;
    const through = r.executedThrough ?? 0;
    // A reply from another cluster (the item moved) is in another log: not comparable.
    if (cluster === mark.cluster && through < mark.through) {
      const behind = mark.through - through;
      t.stale++;
      t.behindSum += behind;
      t.maxBehind = Math.max(t.maxBehind, behind);
      if (through < mark.own) t.missedOwnWrite++;
    }
    this.learn(cluster, through);
  }

  /** The levels reads ran at, in the order of LEVELS. */
  summary(elapsedMs: number): LevelReport {
    const out: LevelReport = {};
    const r3 = (v: number) => Math.round(v * 1000) / 1000;
    for (const level of LEVELS) {
      const t = this.tallies.get(level);
      if (!t) continue;
      const l = t.latency;
      out[level] = {
        reads: l.count,
        ok: t.ok,
        failed: t.failed,
        okPerS: elapsedMs > 0 ? Math.round((t.ok * 10_000) / elapsedMs) / 10 : 0,
        latencyMs: { mean: r3(l.mean()), p50: r3(l.percentile(50)), p90: r3(l.percentile(90)), p99: r3(l.percentile(99)), max: r3(l.max()) },
        byFollower: t.byFollower,
        stale: t.stale,
        missedOwnWrite: t.missedOwnWrite,
        meanBehind: t.stale ? r3(t.behindSum / t.stale) : 0,
        maxBehind: t.maxBehind,
      };
    }
    return out;
  }

  private learn(cluster: number, through: number): void {
    if (through > (this.known.get(cluster) ?? 0)) this.known.set(cluster, through);
  }

  private tally(level: Level): Tally {
    let t = this.tallies.get(level);
    if (!t) this.tallies.set(level, (t = { latency: new LatencyRecorder(), ok: 0, failed: 0, byFollower: 0, stale: 0, missedOwnWrite: 0, behindSum: 0, maxBehind: 0 }));
    return t;
  }
}

/** The Performance per level table: one row per level reads ran at. */
export function formatLevels(levels: LevelReport): string {
  const rows: string[][] = [['level', 'reads', 'ok', 'failed', 'ok/s', 'mean', 'p50', 'p90', 'p99', 'by follower', 'stale', 'behind (mean / max)', 'missed own write']];
  for (const [level, s] of Object.entries(levels) as [Level, LevelSummary][]) {
    const pct = (n: number) => `${n} (${s.ok ? ((100 * n) / s.ok).toFixed(1) : '0.0'}%)`;
    rows.push([
      level,
      String(s.reads),
      String(s.ok),
      String(s.failed),
      s.okPerS.toFixed(0),
      ...(['mean', 'p50', 'p90', 'p99'] as const).map((k) => s.latencyMs[k].toFixed(2)),
      pct(s.byFollower),
      pct(s.stale),
      s.stale ? `${s.meanBehind.toFixed(1)} / ${s.maxBehind}` : '-',
      pct(s.missedOwnWrite),
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const lines = rows.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  '));
  lines.splice(1, 0, widths.map((w) => '-'.repeat(w)).join('  '));
  return [
    'Performance per level (reads; every transfer is ordered by consensus, as in the table above)',
    ...lines,
    '(latency in ms at the client; stale: answered from a state older than one the client had already seen in that cluster,',
    ' by so many log entries; missed own write: older than the bench\'s own last commit there; shares of the answered reads)',
  ].join('\n');
}
