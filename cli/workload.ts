/**
 * The benchmark's workload: a seeded stream of balance reads and transfers,
 * with a given share of reads, a given share of cross-shard transfers among
 * the read-write ones, and items drawn uniformly, by Zipf (theta = skew), or
 * from a hotspot (a share `skew` of draws on the hottest 1% of each cluster).
 *
 * The SmallBank mix maps its six transaction kinds onto what the bank offers:
 * Balance is a read; DepositChecking, TransactSavings, WriteCheck,
 * SendPayment and Amalgamate are transfers (amounts by kind), in SmallBank's
 * proportions (15% each, SendPayment and Amalgamate 25% and 15%).
 *
 * The affinity mode gives the load a structure that the static ranges do
 * not see: items fall into groups of `groupSize` drawn at random over the
 * whole item range, so a group straddles clusters, and a transfer stays in
 * one group with probability `affinityPct`%. It is what resharding is for.
 *
 * Reads carry the consistency level they are asked at: one level for all,
 * or `mix`, which takes the four levels in turn, so that each gets a quarter
 * of the reads over the same stretch of the run (and the draws, and so the
 * items, are the same whatever the level).
 */
import { LEVELS, parseLevel, type Level } from '../protocol/consistency.js';
import { createRng, mixSeed, type Rng } from '../protocol/rng.js';
import { clusterOfItem, type Topology } from '../protocol/topology.js';

export type Distribution = 'uniform' | 'zipf' | 'hotspot';
export type OpKind = 'read' | 'intra' | 'cross';
/** The level every read is asked at, or `mix`: the four levels in turn. */
export type ReadConsistency = Level | 'mix';

/**
 * The level a `--consistency` word names (a level, one of its aliases, or
 * `mix`); throws a RangeError that lists the choices.
 */
export function parseReadConsistency(word: string): ReadConsistency {
  if (word.trim().toLowerCase() === 'mix') return 'mix';
  const level = parseLevel(word);
  if (level === null) throw new RangeError(`"${word}" is not a consistency level; choose one of ${LEVELS.join(', ')}, or mix (reads spread evenly over the four)`);
  return level;
}

export interface WorkloadOptions {
  seed: number;
  /** Percent of operations that are balance reads (0..100). */
  readOnlyPct: number;
  /** Percent of read-write operations whose receiver is in another cluster (0..100). */
  crossShardPct: number;
  distribution: Distribution;
  /** Zipf theta, or the hotspot's share of draws; 0..1 (Zipf 0.99 is the classic "highly skewed"). */
  skew: number;
  smallbank?: boolean;
  /**
   * Percent of read-write operations whose two items are drawn from one
   * affinity group (0..100); the others draw both items uniformly over all
   * items. Given, it replaces the cross-shard share and the distribution
   * for read-write operations; reads are drawn as usual.
   */
  affinityPct?: number;
  /** Items per affinity group (default 10). */
  groupSize?: number;
  /** The level reads are asked at (default `leader`, the spec's). */
  consistency?: ReadConsistency;
}

export const DEFAULT_GROUP_SIZE = 10;

/**
 * The affinity groups of a workload seed: items 1..items in a seeded random
 * order, cut into runs of `size` (a lone item at the end joins the group
 * before it). Returns the group index of each item (index 0 unused) and the
 * members of each group.
 */
export function affinityGroups(items: number, size: number, seed: number): { groupOf: Int32Array; members: Int32Array[] } {
  if (!Number.isInteger(size) || size < 2) throw new RangeError(`group size must be a whole number >= 2, got ${size}`);
  if (items < 2) throw new RangeError(`affinity groups need at least 2 items, got ${items}`);
  // Its own stream, so that the groups depend on the seed and the items only.
  const rng = createRng(mixSeed(seed, 0x61ff));
  const order = Int32Array.from({ length: items }, (_, i) => i + 1);
  for (let i = items - 1; i > 0; i--) {
    const j = rng.int(0, i);
    const t = order[i]!;
    order[i] = order[j]!;
    order[j] = t;
  }
  const count = Math.max(1, Math.floor(items / size));
  const members = Array.from({ length: count }, (_, g) => order.subarray(g * size, g === count - 1 ? items : (g + 1) * size));
  const groupOf = new Int32Array(items + 1);
  members.forEach((m, g) => m.forEach((item) => (groupOf[item] = g)));
  return { groupOf, members };
}

export interface Op {
  kind: OpKind;
  /** SmallBank's name for it, or the kind. */
  label: string;
  sender: number;
  receiver: number;
  amount: number;
  /** A read's consistency level. */
  level?: Level;
}

const SMALLBANK: { label: string; weight: number; read: boolean; amount: [number, number] }[] = [
  { label: 'Balance', weight: 15, read: true, amount: [0, 0] },
  { label: 'DepositChecking', weight: 15, read: false, amount: [1, 5] },
  { label: 'TransactSavings', weight: 15, read: false, amount: [1, 10] },
  { label: 'WriteCheck', weight: 15, read: false, amount: [1, 20] },
  { label: 'SendPayment', weight: 25, read: false, amount: [1, 50] },
  { label: 'Amalgamate', weight: 15, read: false, amount: [50, 100] },
];

/** Ranks 0..n-1 drawn with probability proportional to 1 / (rank + 1)^theta. */
export class ZipfSampler {
  private readonly cdf: Float64Array;

  constructor(n: number, theta: number) {
    this.cdf = new Float64Array(n);
    let sum = 0;
    for (let i = 0; i < n; i++) {
      sum += 1 / Math.pow(i + 1, theta);
      this.cdf[i] = sum;
    }
    for (let i = 0; i < n; i++) this.cdf[i]! /= sum;
  }

  sample(u: number): number {
    let lo = 0;
    let hi = this.cdf.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.cdf[mid]! < u) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

export class Workload {
  private readonly rng: Rng;
  private readonly ranges: { from: number; size: number }[];
  private readonly zipf: Map<number, ZipfSampler> = new Map();
  private readonly groups?: { groupOf: Int32Array; members: Int32Array[] };
  /** Reads made so far: `mix` takes the levels in turn by it, and draws nothing from the stream. */
  private reads = 0;

  constructor(
    readonly topology: Topology,
    private readonly opts: WorkloadOptions,
  ) {
    this.rng = createRng(opts.seed);
    this.ranges = topology.shards.ranges.map((r) => ({ from: r.from, size: r.to - r.from + 1 }));
    if (opts.readOnlyPct < 0 || opts.readOnlyPct > 100) throw new RangeError(`read-only share must be 0..100, got ${opts.readOnlyPct}`);
    if (opts.crossShardPct < 0 || opts.crossShardPct > 100) throw new RangeError(`cross-shard share must be 0..100, got ${opts.crossShardPct}`);
    if (opts.skew < 0 || opts.skew > 1) throw new RangeError(`skew must be 0..1, got ${opts.skew}`);
    if (opts.affinityPct !== undefined) {
      if (!(opts.affinityPct >= 0 && opts.affinityPct <= 100)) throw new RangeError(`affinity share must be 0..100, got ${opts.affinityPct}`);
      const size = opts.groupSize ?? DEFAULT_GROUP_SIZE;
      if (!Number.isInteger(size) || size < 2 || size > topology.items) throw new RangeError(`group size must be a whole number in 2..${topology.items}, got ${size}`);
      this.groups = affinityGroups(topology.items, size, opts.seed);
    }
  }

  /** A transfer of the affinity mode: within one group, or between two items drawn uniformly. */
  private affinityTransfer(label: string, amount: number): Op {
    const { rng, groups } = this;
    const items = this.topology.items;
    const sender = rng.int(1, items);
    let receiver: number;
    if (rng.next() * 100 < this.opts.affinityPct!) {
      const members = groups!.members[groups!.groupOf[sender]!]!;
      const at = rng.int(0, members.length - 2);
      // Any member but the sender, each equally likely.
      receiver = members[at]! === sender ? members[members.length - 1]! : members[at]!;
    } else {
      receiver = rng.int(1, items - 1);
      if (receiver >= sender) receiver++;
    }
    const cross = clusterOfItem(this.topology, sender) !== clusterOfItem(this.topology, receiver);
    return { kind: cross ? 'cross' : 'intra', label: label || (cross ? 'cross' : 'intra'), sender, receiver, amount };
  }

  /** The level of the next read. */
  private readLevel(): Level {
    const c = this.opts.consistency ?? 'leader';
    return c === 'mix' ? LEVELS[this.reads++ % LEVELS.length]! : c;
  }

  /** An item of cluster c (1-based), by the distribution. */
  item(c: number): number {
    const r = this.ranges[c - 1]!;
    const { distribution, skew } = this.opts;
    if (distribution === 'zipf' && skew > 0) {
      let z = this.zipf.get(r.size);
      if (!z) this.zipf.set(r.size, (z = new ZipfSampler(r.size, skew)));
      return r.from + z.sample(this.rng.next());
    }
    if (distribution === 'hotspot' && this.rng.next() < skew) {
      return r.from + this.rng.int(0, Math.max(1, Math.floor(r.size / 100)) - 1);
    }
    return r.from + this.rng.int(0, r.size - 1);
  }

  next(): Op {
    const { rng } = this;
    let read = rng.next() * 100 < this.opts.readOnlyPct;
    let label = '';
    let amount = rng.int(1, 10);
    if (this.opts.smallbank) {
      const total = SMALLBANK.reduce((s, k) => s + k.weight, 0);
      let pick = rng.next() * total;
      const kind = SMALLBANK.find((k) => (pick -= k.weight) < 0) ?? SMALLBANK[SMALLBANK.length - 1]!;
      label = kind.label;
      read = kind.read;
      amount = rng.int(kind.amount[0], kind.amount[1]);
    }
    if (!read && this.groups) return this.affinityTransfer(label, amount);
    const clusters = this.ranges.length;
    const c = rng.int(1, clusters);
    const sender = this.item(c);
    if (read) return { kind: 'read', label: label || 'read', sender, receiver: 0, amount: 0, level: this.readLevel() };
    const cross = clusters > 1 && rng.next() * 100 < this.opts.crossShardPct;
    const rc = cross ? ((c - 1 + rng.int(1, clusters - 1)) % clusters) + 1 : c;
    let receiver = this.item(rc);
    for (let tries = 0; receiver === sender && tries < 10; tries++) receiver = this.item(rc);
    if (receiver === sender) receiver = sender === this.ranges[rc - 1]!.from ? sender + 1 : sender - 1;
    return { kind: cross ? 'cross' : 'intra', label: label || (cross ? 'cross' : 'intra'), sender, receiver, amount };
  }
}

/** A named mix for `shardbank bench --preset`; flags given with it win. */
export interface Preset {
  about: string;
  count?: number;
  durationS?: number;
  clients?: number;
  readOnlyPct?: number;
  crossShardPct?: number;
  distribution?: Distribution;
  skew?: number;
  smallbank?: boolean;
  /** Ends with PrintReshard: the moves the run's transfers call for. */
  printReshard?: boolean;
  consistency?: ReadConsistency;
}

/** Named mixes: the spec's report cases (TC11 to TC14) and one per target. */
export const PRESETS: Record<string, Preset> = {
  tc11: { about: '200 txns, 80% read-write, 20% cross-shard, uniform (report TC11)', count: 200, readOnlyPct: 20, crossShardPct: 20, distribution: 'uniform', skew: 0 },
  tc12: { about: 'transfers and reads for 10 s: 50% reads spread evenly over the four consistency levels, 20% cross-shard, uniform (report TC12)', durationS: 10, readOnlyPct: 50, crossShardPct: 20, distribution: 'uniform', skew: 0, consistency: 'mix' },
  tc13: { about: '2000 txns, 90% read-write, 20% cross-shard, Zipf 0.99, then PrintReshard (report TC13)', count: 2000, printReshard: true, readOnlyPct: 10, crossShardPct: 20, distribution: 'zipf', skew: 0.99 },
  tc14: { about: '30000 txns, 100% read-write, 0% cross-shard, uniform (report TC14)', count: 30000, readOnlyPct: 0, crossShardPct: 0, distribution: 'uniform', skew: 0 },
  smallbank: { about: 'SmallBank mix for 10 s, 20% cross-shard, uniform', durationS: 10, smallbank: true, crossShardPct: 20, distribution: 'uniform', skew: 0 },
  intra: { about: 'intra-shard transfers for 10 s, uniform', durationS: 10, readOnlyPct: 0, crossShardPct: 0, distribution: 'uniform', skew: 0 },
  cross20: { about: 'transfers for 10 s, 20% cross-shard', durationS: 10, readOnlyPct: 0, crossShardPct: 20, distribution: 'uniform', skew: 0 },
  cross100: { about: 'cross-shard transfers only, 10 s', durationS: 10, readOnlyPct: 0, crossShardPct: 100, distribution: 'uniform', skew: 0 },
  reads: { about: 'balance reads only, 10 s', durationS: 10, readOnlyPct: 100, crossShardPct: 0, distribution: 'uniform', skew: 0 },
  zipf: { about: 'transfers for 10 s, Zipf 0.99', durationS: 10, readOnlyPct: 0, crossShardPct: 0, distribution: 'zipf', skew: 0.99 },
  single: { about: 'one client, one request at a time, intra-shard, 2000 txns', count: 2000, clients: 1, readOnlyPct: 0, crossShardPct: 0, distribution: 'uniform', skew: 0 },
};
