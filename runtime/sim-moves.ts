/**
 * Resharding inside a simulated run: moves asked for at random points of the
 * safety phase, through the admin path an operator uses (a move at the
 * source's leader, executePlan), while the workload and the faults go on.
 * Some are random (random items, mostly the hot ones the workload writes, a
 * random source and destination, batches of one to a dozen items); the
 * others are the partitioner's plan over the run's own history, as
 * PrintReshard makes it. As each is asked for, a fault may be aimed at it: a
 * leader of either cluster killed, the two leaders cut apart, or one
 * cluster's power lost, moments after.
 *
 * Every choice comes from the run's resharding stream of random numbers, so
 * a run with resharding off draws nothing here and is the run it was before.
 */
import type { ItemMove, MoveBatch } from '../client/resharder.js';
import type { Rng } from '../protocol/rng.js';
import { clusterOfItem, type Topology } from '../protocol/topology.js';
import type { SimCluster } from './sim.js';

export interface MoveStats {
  /** Resharding actions asked for: random moves, and partitioner plans. */
  random: number;
  planned: number;
  /** Move transactions (batches) and how they ended. */
  batches: number;
  committed: number;
  aborted: number;
  failed: number;
  /** Items whose move committed. */
  itemsMoved: number;
  /** Why batches did not commit, and how often. */
  reasons: Record<string, number>;
}

/** Where in the run the resharding actions fall (ms after the run starts): while the workload runs. */
const FIRST_AT_MS = 100;
const LAST_AT_MS = 3500;

export class MoveDriver {
  readonly stats: MoveStats = { random: 0, planned: 0, batches: 0, committed: 0, aborted: 0, failed: 0, itemsMoved: 0, reasons: {} };
  private readonly pending: Promise<void>[] = [];
  /** Who the driver believes owns each item it moved (the shard map for the rest). */
  private readonly believed = new Map<number, number>();

  constructor(
    private readonly sim: SimCluster,
    private readonly topology: Topology,
    private readonly rng: Rng,
    /** The items the workload writes, per cluster of the shard map. */
    private readonly hot: readonly (readonly number[])[],
    /** Called as a move is asked for, with its source and destination: a fault may be aimed at it. */
    private readonly onMove: (from: number, to: number) => void,
  ) {}

  /** Schedules this run's resharding actions within the first `safetyMs` of simulated time. */
  schedule(safetyMs: number): void {
    const count = this.rng.int(2, 6);
    const last = Math.min(LAST_AT_MS, safetyMs - 500);
    for (let i = 0; i < count; i++) {
      const planned = this.rng.next() < 0.4;
      // A plan wants some history to partition: not in the first moments.
      const at = this.rng.int(planned ? Math.min(800, last) : FIRST_AT_MS, last);
      this.sim.scheduler.schedule(at, () => this.pending.push(planned ? this.planned() : this.random()));
    }
  }

  /** Settles once every action asked for has its outcome. */
  done(): Promise<unknown> {
    return Promise.all(this.pending);
  }

  private ownerOf(item: number): number {
    return this.believed.get(item) ?? clusterOfItem(this.topology, item) ?? 0;
  }

  /** A batch size: often one item, sometimes a few, now and then a dozen. */
  private size(): number {
    const r = this.rng.next();
    return r < 0.4 ? 1 : r < 0.75 ? this.rng.int(2, 4) : this.rng.int(5, 12);
  }

  /** Random items the driver believes `from` owns: mostly hot ones, else any of its range. */
  private pickItems(from: number, count: number): number[] {
    const hot = this.hot.flat().filter((i) => this.ownerOf(i) === from);
    const range = this.topology.shards.ranges.find((r) => r.cluster === from)!;
    const items = new Set<number>();
    for (let tries = 0; items.size < count && tries < count * 4; tries++) {
      if (hot.length > 0 && this.rng.next() < 0.7) items.add(hot.splice(this.rng.int(0, hot.length - 1), 1)[0]!);
      else {
        const item = this.rng.int(range.from, range.to);
        if (this.ownerOf(item) === from) items.add(item);
      }
    }
    return [...items];
  }

  private async random(): Promise<void> {
    const k = this.topology.clusters;
    const from = this.rng.int(1, k);
    const to = ((from - 1 + this.rng.int(1, k - 1)) % k) + 1;
    const items = this.pickItems(from, this.size());
    if (items.length === 0) return;
    this.stats.random++;
    this.onMove(from, to);
    this.note(await this.sim.moveItems(items.map((item): ItemMove => ({ item, from, to }))));
  }

  private async planned(): Promise<void> {
    this.stats.planned++;
    const plan = await this.sim.planReshard();
    const first = plan.moves[0];
    if (!first) return;
    this.onMove(first.from, first.to);
    this.note(await this.sim.moveItems(plan.moves));
  }

  private note(batches: MoveBatch[]): void {
    for (const b of batches) {
      this.stats.batches++;
      this.stats[b.status]++;
      if (b.status !== 'committed') {
        // Item numbers and nodes vary; the kind of reason is what counts.
        const why = `${b.status}: ${b.reason.replace(/\d+/g, 'N')}`;
        this.stats.reasons[why] = (this.stats.reasons[why] ?? 0) + 1;
        continue;
      }
      this.stats.itemsMoved += b.items.length;
      for (const item of b.items) this.believed.set(item, b.to);
    }
  }
}
