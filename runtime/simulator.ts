/**
 * One simulated run, from one seed: the topology, the workload, the fault
 * rates and the fault schedule all come from it, so `shardbank sim --seed S`
 * reruns a run exactly.
 *
 * A run has a safety phase (transfers, and reads at every consistency level,
 * from three clients, while faults are injected: dropped, delayed, duplicated
 * and reordered messages, partitions, crashes that lose unsynced writes,
 * leader kills, a whole cluster losing power, clock jumps) and a liveness
 * phase (faults healed, every node back) after which every cluster must
 * converge. Then the checkers read the history and the replicas; the read
 * checkers hold each level to its promise (runtime/read-checks.ts).
 *
 * With resharding on (the default), items move between clusters during the
 * safety phase too (runtime/sim-moves.ts), faults are aimed at the moves, and
 * the ownership checkers (runtime/ownership-checks.ts) run at every fault
 * decision and at the end.
 */
import { createHash } from 'node:crypto';
import type { PlantedBug } from '../actors/node-info.js';
import type { BankClient, TxResult } from '../client/client.js';
import { LEVELS, type Level } from '../protocol/consistency.js';
import { formatCommand, shardbank, type NodeId } from '../protocol/messages.js';
import { createRng, mixSeed, type Rng } from '../protocol/rng.js';
import { allNodes, clusterNodes, DEFAULT_TUNING, makeTopology, type Topology, type Tuning } from '../protocol/topology.js';
import { requestId } from '../protocol/messages.js';
import type { EventLog } from '../store/eventlog.js';
import { NodeStoppedError, SimCluster } from './sim.js';
import { MoveDriver, type MoveStats } from './sim-moves.js';
import { ItemTimelines } from './item-timelines.js';
import { checkReadLevels } from './read-checks.js';
import type { HistoryOp } from './sim-history.js';
import {
  checkAppliedByOwner,
  checkBalancesAtOwners,
  checkMoney,
  checkOwners,
  checkReplicaBalances,
  firstReplicas,
  VersionLedger,
} from './ownership-checks.js';

export type { HistoryOp } from './sim-history.js';

export const FAULT_KINDS = ['drop', 'delay', 'duplicate', 'partition', 'crash', 'leaderKill', 'powerLoss', 'clockJump'] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface SimConfig {
  seed: number;
  /** Transfers and reads issued during the safety phase. */
  ops?: number;
  /** Requests in flight at once. */
  concurrency?: number;
  safetyMs?: number;
  livenessMs?: number;
  /** Fault kinds switched on; by default the seed picks a random subset and rates. */
  faults?: FaultKind[];
  /** Keep every history operation in the report. */
  keepHistory?: boolean;
  /**
   * Called with every node's log at the end of the run (what each node's disk
   * holds), before the simulation stops: `sim --record` copies them out.
   */
  keepLogs?: (logs: ReadonlyMap<NodeId, EventLog>, topology: Topology) => Promise<void>;
  /** Move items between clusters during the run (default true). Off, a seed runs as it did before resharding. */
  reshard?: boolean;
  /** Bugs planted in every node, to show the checkers catch them (actors/node-info.ts). */
  plantedBugs?: readonly PlantedBug[];
}

export interface SimReport {
  seed: number;
  topology: { clusters: number; nodesPerCluster: number; items: number };
  faultsOn: FaultKind[];
  faults: Record<FaultKind, number>;
  ops: number;
  outcomes: Record<string, number>;
  violations: string[];
  /** sha256 over every node's event log, for determinism checks. */
  digest: string;
  history: HistoryOp[];
  simulatedMs: number;
  /** What resharding did (null: off). */
  moves: MoveStats | null;
  /** Bugs planted in every node (none but in the checkers' own specs). */
  plantedBugs: PlantedBug[];
}

const HOT_ITEMS_PER_CLUSTER = 6;

/** Client connections of a run, each a session of its own: a session read waits only for its own client's writes. */
const CLIENTS = 3;

/** The share of operations that are reads, their level drawn from LEVELS. */
const READ_SHARE = 0.3;

/** Runs one seed. */
export async function simulate(config: SimConfig): Promise<SimReport> {
  const rng = createRng(mixSeed(config.seed, 0x51a));
  const clusters = rng.int(2, 3);
  const nodesPerCluster = rng.next() < 0.75 ? 3 : 5;
  // Half the runs snapshot and compact often, so that catch-up by snapshot happens under faults too.
  const tuning: Partial<Tuning> = rng.next() < 0.5 ? { snapshotEvery: rng.int(40, 400), retainEntries: rng.int(2, 40) } : {};
  // Resharding draws from a stream of its own: with it off, the run is the one it always was.
  const reshard = config.reshard ?? true;
  const moveRng = createRng(mixSeed(config.seed, 0x5e5a));
  // Large moves go in one batch, or in many small ones.
  if (reshard) tuning.maxMoveBatch = [1, 3, 200][moveRng.int(0, 2)]!;
  // A quiet leader's heartbeats slow down to idleHeartbeatTicks: a little, the default, or twice as far, in half
  // the runs (a stream of its own too). In the other half they never do: a quiet cluster then notices a
  // partitioned leader within a normal timeout, and elections (and what a deposed leader may do) come often.
  const hb = DEFAULT_TUNING.heartbeatTicks;
  tuning.idleHeartbeatTicks = [hb, hb, hb, 8, DEFAULT_TUNING.idleHeartbeatTicks, 120][createRng(mixSeed(config.seed, 0x1d1e)).int(0, 5)]!;
  const topology = makeTopology({ clusters, nodesPerCluster, items: clusters * 300, initialBalance: 20, tuning });
  const faultsOn = config.faults ?? FAULT_KINDS.filter(() => rng.next() < 0.6);
  // fsync latency varies from disk to disk and stalls now and then: a crash can land inside a slow one.
  const syncDelayMs: [number, number] = [1, rng.int(3, 40)];
  const sim = await SimCluster.start({ seed: config.seed, topology, syncDelayMs, plantedBugs: config.plantedBugs });
  const run = new Run(sim, topology, rng, faultsOn, config, reshard ? moveRng : null);
  try {
    return await run.execute();
  } finally {
    await config.keepLogs?.(sim.logs, topology);
    await sim.stop();
  }
}

class Run {
  readonly faults = Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as Record<FaultKind, number>;
  readonly history: HistoryOp[] = [];
  private readonly hot: number[][];
  private readonly down = new Map<NodeId, number>();
  private healAt = 0;
  private readonly moves: MoveDriver | null;
  private readonly versions: VersionLedger;
  /** Violations the checkpoints found during the run. */
  private readonly midRun: string[] = [];
  /** The run's client connections (sim.client first). */
  private readonly clients: { name: string; client: BankClient }[];

  constructor(
    private readonly sim: SimCluster,
    private readonly topology: Topology,
    private readonly rng: Rng,
    private readonly faultsOn: FaultKind[],
    private readonly config: SimConfig,
    /** Resharding's random stream (null: resharding is off). */
    private readonly moveRng: Rng | null,
  ) {
    this.hot = topology.shards.ranges.map((r) => Array.from({ length: HOT_ITEMS_PER_CLUSTER }, (_, i) => r.from + i));
    this.moves = moveRng ? new MoveDriver(sim, topology, moveRng, this.hot, (from, to) => this.aimAtMove(moveRng, from, to)) : null;
    this.versions = new VersionLedger(topology, config.seed);
    const more = Array.from({ length: CLIENTS - 1 }, (_, i) => `client${i + 2}`);
    this.clients = [{ name: 'client', client: sim.client }, ...more.map((name) => ({ name, client: sim.addClient(name) }))];
  }

  async execute(): Promise<SimReport> {
    const { sim, config } = this;
    const ops = config.ops ?? 150;
    const safetyMs = config.safetyMs ?? 8000;
    const livenessMs = config.livenessMs ?? 8000;
    await sim.startSet();
    const started = sim.scheduler.now();

    // The workload: `ops` requests spread over the safety phase, `concurrency` at a time.
    const pending: Promise<void>[] = [];
    const concurrency = config.concurrency ?? 6;
    let issued = 0;
    const issue = () => {
      if (issued >= ops) return;
      const id = issued++;
      pending.push(this.invoke(id).then(() => issue()));
    };
    for (let i = 0; i < concurrency; i++) {
      sim.scheduler.schedule(this.rng.int(0, 200), issue);
    }
    this.moves?.schedule(safetyMs);

    let violations: string[];
    try {
      // Safety phase: a fault decision every 100 ms.
      for (let t = 0; t < safetyMs; t += 100) {
        this.injectFaults(started + t);
        await sim.runFor(100);
        this.checkpoint();
      }
      // Liveness phase: heal everything, bring every node back, let the last requests finish.
      await this.healAll();
      await sim.until(Promise.all([...pending, this.moves?.done()]), livenessMs + 60_000);
      await sim.runFor(livenessMs);
      violations = await this.check();
    } catch (err) {
      // A node that stopped itself (an invariant broke) ends the run: a violation of this seed, not of the swarm.
      if (!(err instanceof NodeStoppedError)) throw err;
      violations = [`seed ${config.seed}: ${err.message.split('\n')[0]}`];
    }
    return {
      seed: config.seed,
      topology: { clusters: this.topology.clusters, nodesPerCluster: this.topology.nodesPerCluster, items: this.topology.items },
      faultsOn: this.faultsOn,
      faults: this.faults,
      ops,
      outcomes: this.outcomes(),
      violations,
      digest: await this.digest(),
      history: config.keepHistory === false ? [] : this.history,
      simulatedMs: sim.scheduler.now(),
      moves: this.moves ? this.moves.stats : null,
      plantedBugs: [...(config.plantedBugs ?? [])],
    };
  }

  // ------------------------------------------------------------ workload

  private pickItem(cluster: number): number {
    const items = this.hot[cluster - 1]!;
    return items[this.rng.int(0, items.length - 1)]!;
  }

  /**
   * One request from one of the run's clients: a transfer, or a read at a
   * level drawn from LEVELS. A session read goes through the client's own
   * read path, which carries that client's point in the cluster its last
   * write to the item ran in; the history notes it, and who answered.
   */
  private async invoke(id: number): Promise<void> {
    const { sim, rng } = this;
    const c = rng.int(1, this.topology.clusters);
    const { name, client } = this.clients[rng.int(0, this.clients.length - 1)]!;
    const invokedAt = sim.scheduler.now();
    let op: string;
    let items: number[];
    let level: Level | undefined;
    let result: Promise<TxResult>;
    if (rng.next() < READ_SHARE) {
      const item = this.pickItem(c);
      level = LEVELS[rng.int(0, LEVELS.length - 1)]!;
      op = `(${item}, ${level})`;
      items = [item];
      result = client.read(item, level);
    } else {
      const s = this.pickItem(c);
      const cross = this.topology.clusters > 1 && rng.next() < 0.35;
      const rc = cross ? ((c + rng.int(0, this.topology.clusters - 2)) % this.topology.clusters) + 1 : c;
      let r = this.pickItem(rc);
      if (r === s) r = this.hot[rc - 1]!.find((x) => x !== s)!;
      const amount = rng.int(1, 8);
      op = `(${s}, ${r}, ${amount})`;
      items = [s, r];
      result = client.transfer(s, r, amount);
    }
    const r = await result;
    const h: HistoryOp = {
      id,
      op,
      kind: level ? 'read' : 'transfer',
      items,
      client: name,
      requestId: r.requestId ?? '',
      invokedAt,
      completedAt: sim.scheduler.now(),
      type: r.status === 'committed' || r.status === 'ok' ? 'ok' : r.status === 'aborted' ? 'fail' : 'info',
      status: r.status,
    };
    if (r.reason) h.reason = r.reason;
    if (r.balance !== undefined) h.value = r.balance;
    if (level) noteRead(h, level, r);
    this.history.push(h);
  }

  private outcomes(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const h of this.history) {
      const key = h.reason ? `${h.status}: ${h.reason}` : h.status;
      out[key] = (out[key] ?? 0) + 1;
    }
    return out;
  }

  // ------------------------------------------------------------ faults

  private on(kind: FaultKind, perSecond: number): boolean {
    return this.faultsOn.includes(kind) && this.rng.next() < perSecond / 10;
  }

  private injectFaults(now: number): void {
    const { sim, rng } = this;
    const net = sim.network;
    if (now >= this.healAt && this.healAt > 0) {
      net.heal();
      this.healAt = 0;
    }
    for (const [node, at] of [...this.down]) {
      if (now >= at) {
        this.down.delete(node);
        void sim.restart(node);
      }
    }
    if (this.on('drop', 1)) {
      net.setDropRate(rng.next() * 0.15);
      this.faults.drop++;
    }
    if (this.on('duplicate', 1)) {
      net.setDuplicateRate(rng.next() * 0.15);
      this.faults.duplicate++;
    }
    if (this.on('delay', 1)) {
      net.setDelay(1, rng.int(2, 60));
      this.faults.delay++;
    }
    if (this.on('partition', 0.5) && this.healAt === 0) {
      const nodes = allNodes(this.topology);
      const kind = rng.int(0, 2);
      if (kind === 0) {
        net.isolate(nodes[rng.int(0, nodes.length - 1)]!);
      } else if (kind === 1) {
        // Split one cluster in two.
        const members = clusterNodes(this.topology, rng.int(1, this.topology.clusters));
        const cut = rng.int(1, members.length - 1);
        net.partition(members.slice(0, cut), members.slice(cut));
      } else {
        // Cut the link between two clusters' leaders.
        const leaders = Array.from({ length: this.topology.clusters }, (_, i) => sim.leaderOf(i + 1)).filter((n): n is NodeId => !!n);
        if (leaders.length >= 2) net.partition([leaders[0]!], [leaders[1]!]);
      }
      this.healAt = now + rng.int(300, 1500);
      this.faults.partition++;
    }
    if (this.on('crash', 0.4)) {
      const candidates = allNodes(this.topology).filter((n) => sim.isRunning(n));
      if (candidates.length > 0) this.kill(candidates[rng.int(0, candidates.length - 1)]!, now, 'crash');
    }
    if (this.on('leaderKill', 0.3)) {
      // A leader in the middle of 2PC if there is one, any leader otherwise.
      const leaders = Array.from({ length: this.topology.clusters }, (_, i) => sim.leaderOf(i + 1)).filter((n): n is NodeId => !!n);
      const busy = leaders.filter((n) => sim.host(n).state.wal.size > 0);
      const pick = busy.length > 0 ? busy : leaders;
      if (pick.length > 0) this.kill(pick[rng.int(0, pick.length - 1)]!, now, 'leaderKill');
    }
    if (this.on('powerLoss', 0.15)) {
      // Every node of one cluster dies at once: only what each had synced survives.
      const members = clusterNodes(this.topology, rng.int(1, this.topology.clusters)).filter((n) => sim.isRunning(n));
      const back = now + rng.int(200, 1500);
      for (const n of members) {
        sim.kill(n);
        this.down.set(n, back);
      }
      if (members.length > 0) this.faults.powerLoss++;
    }
    if (this.on('clockJump', 0.5)) {
      const nodes = allNodes(this.topology);
      const node = nodes[rng.int(0, nodes.length - 1)]!;
      sim.setSkew(node, 0.1 + rng.next() * 0.4);
      sim.scheduler.schedule(rng.int(100, 600), () => sim.setSkew(node, 1));
      this.faults.clockJump++;
    }
  }

  private kill(node: NodeId, now: number, kind: FaultKind, downMs = this.rng.int(200, 2000)): void {
    this.sim.kill(node);
    this.down.set(node, now + downMs);
    this.faults[kind]++;
  }

  /**
   * A fault aimed at a move just asked for, moments later, at its source or
   * its destination, of a kind this run has on: that cluster's leader killed,
   * the two leaders cut apart, or that cluster's power lost. Half the moves
   * get one.
   */
  private aimAtMove(rng: Rng, from: number, to: number): void {
    const { sim } = this;
    const kinds = (['leaderKill', 'partition', 'powerLoss'] as const).filter((k) => this.faultsOn.includes(k));
    if (kinds.length === 0 || rng.next() < 0.5) return;
    const kind = kinds[rng.int(0, kinds.length - 1)]!;
    const cluster = rng.next() < 0.5 ? from : to;
    const delayMs = rng.int(0, 80);
    const lastsMs = rng.int(300, 1500);
    sim.scheduler.schedule(delayMs, () => {
      const now = sim.scheduler.now();
      if (kind === 'leaderKill') {
        const leader = sim.leaderOf(cluster);
        if (leader) this.kill(leader, now, 'leaderKill', lastsMs);
      } else if (kind === 'partition') {
        const a = sim.leaderOf(from);
        const b = sim.leaderOf(to);
        if (!a || !b || this.healAt !== 0) return;
        sim.network.partition([a], [b]);
        this.healAt = now + lastsMs;
        this.faults.partition++;
      } else {
        const members = clusterNodes(this.topology, cluster).filter((n) => sim.isRunning(n));
        for (const n of members) {
          sim.kill(n);
          this.down.set(n, now + lastsMs);
        }
        if (members.length > 0) this.faults.powerLoss++;
      }
    });
  }

  private async healAll(): Promise<void> {
    const { sim } = this;
    sim.network.heal();
    sim.network.setDuplicateRate(0);
    sim.network.setDelay(1, 3);
    for (const n of allNodes(this.topology)) sim.setSkew(n, 1);
    for (const node of [...this.down.keys()]) {
      this.down.delete(node);
      await sim.restart(node);
    }
  }

  // ------------------------------------------------------------ checkers

  /**
   * The checks cheap enough to run at every fault decision, on every running
   * replica as it stands: balances only for owned items (or under a move-in),
   * and no version of an item with two owners.
   */
  private checkpoint(): void {
    const { sim, topology, config } = this;
    if (this.midRun.length > 20) return;
    for (const node of allNodes(topology)) {
      if (!sim.isRunning(node)) continue;
      const state = sim.host(node).state;
      this.midRun.push(...checkReplicaBalances(topology, node, state, config.seed), ...this.versions.note(node, state));
    }
  }

  /** Ownership at the end: one owner per item, balances only there, every replica's log applied by owners, money conserved. */
  private checkOwnership(v: (msg: string) => void): void {
    const { sim, topology, config } = this;
    const seed = config.seed;
    const replicas = new Map(allNodes(topology).map((n) => [n, sim.host(n).state] as const));
    const first = firstReplicas(topology, (n) => sim.host(n).state);
    const { violations, owners } = checkOwners(topology, first, seed);
    for (const msg of [
      ...this.midRun,
      ...violations,
      ...checkBalancesAtOwners(topology, replicas, owners, seed),
      ...checkMoney(topology, first, owners, seed),
      ...[...replicas.entries()].flatMap(([node, state]) => [...checkReplicaBalances(topology, node, state, seed), ...this.versions.note(node, state)]),
      ...allNodes(topology).flatMap((node) => checkAppliedByOwner(topology, node, sim.journal(node), seed)),
    ]) {
      v(msg);
    }
  }

  private async check(): Promise<string[]> {
    const violations: string[] = [];
    const { sim, topology } = this;
    // Commits and executions are written without a sync; with no power cut at the end, they reach the disk.
    await sim.settleDisks();
    const v = (msg: string) => violations.push(msg);
    for (let c = 1; c <= topology.clusters; c++) {
      const nodes = clusterNodes(topology, c);
      const states = nodes.map((n) => sim.host(n).state);
      const first = states[0]!;
      // Replicas end identical.
      for (const [i, s] of states.entries()) {
        if (s.executedThrough !== first.executedThrough) v(`C${c}: n${nodes[i]} executed through ${s.executedThrough}, n${nodes[0]} through ${first.executedThrough}`);
        const a = JSON.stringify([...s.balances].sort((x, y) => x[0] - y[0]));
        const b = JSON.stringify([...first.balances].sort((x, y) => x[0] - y[0]));
        if (a !== b) v(`C${c}: n${nodes[i]} balances differ from n${nodes[0]}`);
        const oa = JSON.stringify([...s.owners].sort((x, y) => x[0] - y[0]));
        const ob = JSON.stringify([...first.owners].sort((x, y) => x[0] - y[0]));
        if (oa !== ob) v(`seed ${this.config.seed}: C${c}: n${nodes[i]}'s ownership differs from n${nodes[0]}'s (${describeOwners(s.owners, first.owners)})`);
        if (s.wal.size > 0) v(`C${c}: n${nodes[i]} still holds ${s.wal.size} WAL entries (${[...s.wal.keys()].join(', ')})`);
        // A follower may keep a decision it never heard acknowledged; only a leader resends them.
        if (s.unacked.size > 0 && sim.host(nodes[i]!).view.role === 'leader') {
          v(`C${c}: leader n${nodes[i]} still has ${s.unacked.size} unacknowledged decisions (${[...s.unacked.keys()].join(", ")})`);
        }
        for (const [item, balance] of s.balances) if (balance < 0) v(`C${c}: n${nodes[i]} item ${item} is negative (${balance})`);
      }
      // At most one command chosen per (cluster, seq, phase).
      const chosen = new Map<number, string>();
      for (const [i, s] of states.entries()) {
        for (const [key, slot] of s.log) {
          if (!slot.committed) continue;
          const value = `${formatCommand(slot.command)} ${slot.command?.client ?? ''}:${slot.command?.timestamp ?? ''}`;
          const have = chosen.get(key);
          if (have === undefined) chosen.set(key, value);
          else if (have !== value) v(`C${c}: seq ${slot.seq} phase ${slot.phase} chose "${have}" and "${value}" (n${nodes[i]})`);
        }
      }
    }
    this.checkOwnership(v);
    await this.checkOutcomes(v);
    this.checkReads(v);
    return violations;
  }

  /** Every transfer acknowledged committed took effect; none acknowledged aborted did. */
  private async checkOutcomes(v: (msg: string) => void): Promise<void> {
    const applied = new Set<string>();
    for (const node of allNodes(this.topology)) {
      for (const ev of this.sim.journal(node)) {
        const x = ev.executed;
        if (!x?.command?.transfer) continue;
        // A transfer without a txid ran inside one cluster: in its own slot, or in the slot of a
        // prepare whose other item had moved into the cluster by the time it ran.
        const committed = x.status === shardbank.Status.COMMITTED && (x.txid ? x.phase === shardbank.Phase.PHASE_COMMIT : (x.writes?.length ?? 0) > 0);
        if (committed) applied.add(requestId(x.command));
      }
    }
    for (const h of this.history) {
      if (h.kind !== 'transfer') continue;
      if (h.type === 'ok' && !applied.has(h.requestId)) v(`${h.op} (${h.requestId}) was acknowledged committed but never applied`);
      if (h.type === 'fail' && applied.has(h.requestId)) v(`${h.op} (${h.requestId}) was acknowledged aborted (${h.reason}) but applied`);
    }
  }

  /** Each read level held to its promise (runtime/read-checks.ts). */
  private checkReads(v: (msg: string) => void): void {
    const timelines = new ItemTimelines(this.topology, (node) => this.sim.journal(node));
    for (const msg of checkReadLevels(this.history, timelines, this.config.seed)) v(msg);
  }

  private async digest(): Promise<string> {
    const hash = createHash('sha256');
    for (const node of allNodes(this.topology)) {
      for (const ev of this.sim.journal(node)) hash.update(shardbank.LogEvent.encode(ev).finish());
    }
    return hash.digest('hex');
  }
}

/** What a read's history entry says beyond a transfer's: its level, the point it waited for, who answered and how far it had executed. */
function noteRead(h: HistoryOp, level: Level, r: TxResult): void {
  h.level = level;
  if (r.level && r.level !== level) h.answeredAs = r.level;
  if (r.afterSeq) h.afterSeq = r.afterSeq;
  if (r.node) {
    h.node = r.node;
    h.executedThrough = r.executedThrough ?? 0;
  }
}

/** The items two replicas' ownership disagrees on, each side's view (a few of them). */
function describeOwners(a: ReadonlyMap<number, { cluster: number; version: number }>, b: ReadonlyMap<number, { cluster: number; version: number }>): string {
  const items = [...new Set([...a.keys(), ...b.keys()])].sort((x, y) => x - y);
  const show = (o: { cluster: number; version: number } | undefined) => (o ? `c${o.cluster} v${o.version}` : 'the shard map');
  const differ = items.filter((i) => show(a.get(i)) !== show(b.get(i)));
  return differ.slice(0, 5).map((i) => `item ${i}: ${show(a.get(i))} vs ${show(b.get(i))}`).join('; ');
}
