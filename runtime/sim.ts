/**
 * A whole cluster in one process: the seeded in-memory network, in-memory
 * event logs, and one simulated clock that every node, the client and the
 * network share. Nothing here reads real time, so one seed gives one run.
 */
import { AdminClient } from '../client/admin.js';
import { BankClient, type TxResult } from '../client/client.js';
import { executePlan, gatherHistory, planReshard, type ItemMove, type MoveBatch, type ReshardPlan } from '../client/resharder.js';
import type { Timers } from '../client/timers.js';
import { MemoryNetwork, type Scheduler } from '../protocol/memory.js';
import { compareBallots, type AdminReply, type AdminRequest, type LogEventProps, type NodeId } from '../protocol/messages.js';
import { createRng, mixSeed } from '../protocol/rng.js';
import { allNodes, clusterNodes, clusterOfNode, initialLeader, makeTopology, type Topology } from '../protocol/topology.js';
import { EventLog, type NodeLog } from '../store/eventlog.js';
import { ownerOf, type Ownership } from '../store/state.js';
import type { PlantedBug } from '../actors/node-info.js';
import { NodeHost, type Clock } from './host.js';
import { SimDisk } from './simdisk.js';

interface Timer {
  at: number;
  order: number;
  fn: () => void;
  cancelled: boolean;
}

/** Discrete-event time: events run in (time, scheduling order). */
export class SimScheduler implements Scheduler {
  private time = 0;
  private order = 0;
  private queue: Timer[] = [];

  now(): number {
    return this.time;
  }

  schedule(delayMs: number, fn: () => void): Timer {
    const t: Timer = { at: this.time + Math.max(0, delayMs), order: this.order++, fn, cancelled: false };
    // Binary insertion keeps the queue sorted by (at, order).
    let lo = 0;
    let hi = this.queue.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      const q = this.queue[mid]!;
      if (q.at < t.at || (q.at === t.at && q.order < t.order)) lo = mid + 1;
      else hi = mid;
    }
    this.queue.splice(lo, 0, t);
    return t;
  }

  cancel(t: unknown): void {
    if (t) (t as Timer).cancelled = true;
  }

  /** Runs the next event; false when none is due by `limit`. */
  step(limit = Infinity): boolean {
    while (this.queue.length > 0) {
      const t = this.queue[0]!;
      if (t.at > limit) return false;
      this.queue.shift();
      if (t.cancelled) continue;
      this.time = t.at;
      t.fn();
      return true;
    }
    return false;
  }

  advanceTo(ms: number): void {
    if (ms > this.time) this.time = ms;
  }

  get size(): number {
    return this.queue.length;
  }
}

export interface SimOptions {
  seed?: number;
  /**
   * Writes become durable this long after they are issued (simulated ms,
   * drawn per write), and a `kill` loses those not yet durable. Without it
   * every write is durable at once.
   */
  syncDelayMs?: [number, number];
  topology?: Topology;
  clusters?: number;
  nodesPerCluster?: number;
  items?: number;
  initialBalance?: number;
  /** Bugs planted in every node, for the checkers to catch (actors/node-info.ts). */
  plantedBugs?: readonly PlantedBug[];
}

/** A node stopped itself (fail-stop: an actor threw, an invariant broke, a write failed). */
export class NodeStoppedError extends Error {}

/** How long the resharder waits for an admin answer (a move's own answer: four times as long). */
const RESHARDER_TIMEOUT_MS = 1000;

export class SimCluster {
  readonly scheduler = new SimScheduler();
  readonly topology: Topology;
  readonly network: MemoryNetwork;
  readonly hosts = new Map<NodeId, NodeHost>();
  readonly logs = new Map<NodeId, EventLog>();
  private readonly disks = new Map<NodeId, SimDisk>();
  /** Each skewed node's factor, and where its clock stood when the factor last changed. */
  private readonly localClocks = new Map<NodeId, { at: number; local: number; factor: number }>();
  /** Nodes that stopped themselves (an actor threw, a write failed): the run fails with the first. */
  private readonly fatal: Error[] = [];
  private readonly syncDelayMs?: [number, number];
  private readonly plantedBugs: readonly PlantedBug[];
  private readonly diskRng;
  readonly client: BankClient;
  /** Clients added with addClient. */
  private readonly moreClients: BankClient[] = [];
  private readonly admin: AdminClient;
  /**
   * The resharder's own admin connection, as an operator's would be: its
   * moves are answered on it. Short timeouts, so that a move whose leader
   * died is asked again elsewhere within the run.
   */
  private readonly resharder: AdminClient;
  /** Who the resharder believes leads each cluster (executePlan follows `not the leader` answers). */
  private readonly moveLeaders = new Map<number, NodeId>();
  private moveRuns = 0;
  readonly seed: number;
  private set = 0;

  private constructor(opts: SimOptions) {
    this.seed = opts.seed ?? 1;
    this.syncDelayMs = opts.syncDelayMs;
    this.plantedBugs = opts.plantedBugs ?? [];
    this.diskRng = createRng(mixSeed(this.seed, 0xd15c));
    this.topology =
      opts.topology ??
      makeTopology({
        clusters: opts.clusters ?? 3,
        nodesPerCluster: opts.nodesPerCluster ?? 3,
        items: opts.items ?? 9000,
        initialBalance: opts.initialBalance ?? 10,
      });
    this.network = new MemoryNetwork({ seed: mixSeed(this.seed, 0xbeef), scheduler: this.scheduler });
    this.client = new BankClient({ topology: this.topology, transport: this.network.endpoint('client'), name: 'client', timers: this.timers() });
    this.admin = new AdminClient(this.network.endpoint('admin'), 'admin', this.timers());
    this.resharder = new AdminClient(this.network.endpoint('resharder'), 'resharder', this.timers(), RESHARDER_TIMEOUT_MS);
  }

  static async start(opts: SimOptions = {}): Promise<SimCluster> {
    const sim = new SimCluster(opts);
    for (const node of allNodes(sim.topology)) await sim.startNode(node);
    return sim;
  }

  /**
   * Another client connection, `name` (no `/`), with a session of its own:
   * its session reads wait for its own writes, not for `client`'s.
   */
  addClient(name: string): BankClient {
    const client = new BankClient({ topology: this.topology, transport: this.network.endpoint(name), name, timers: this.timers() });
    this.moreClients.push(client);
    return client;
  }

  timers(): Timers {
    return {
      now: () => this.scheduler.now(),
      setTimeout: (fn, ms) => this.scheduler.schedule(ms, fn),
      clearTimeout: (id) => this.scheduler.cancel(id),
    };
  }

  /** A node's clock, through its skew (a clock running fast reads ahead and fires its timers early). */
  private clock(node: NodeId): Clock {
    return {
      now: () => this.localTime(node),
      setTimeout: (fn, ms) => this.scheduler.schedule(ms * (this.localClocks.get(node)?.factor ?? 1), () => fn()),
      clearTimeout: (id) => this.scheduler.cancel(id),
    };
  }

  /** A node's own time: simulated time, run through each skew it has had since. */
  private localTime(node: NodeId): number {
    const now = this.scheduler.now();
    const c = this.localClocks.get(node);
    return c ? c.local + (now - c.at) / c.factor : now;
  }

  /** Makes a node's clock run `factor` times as slow (below 1: its timers fire early). */
  setSkew(node: NodeId, factor: number): void {
    this.localClocks.set(node, { at: this.scheduler.now(), local: this.localTime(node), factor });
  }

  private openLog(node: NodeId): NodeLog {
    if (!this.syncDelayMs) {
      let log = this.logs.get(node);
      if (!log) this.logs.set(node, (log = EventLog.inMemory()));
      return log;
    }
    let disk = this.disks.get(node);
    if (!disk) {
      const [min, max] = this.syncDelayMs;
      disk = new SimDisk(this.scheduler, () => this.diskRng.int(min, max));
      this.disks.set(node, disk);
      this.logs.set(node, disk.durable);
    }
    return disk.open();
  }

  /** Starts (or restarts) a node from its log. */
  async startNode(node: NodeId): Promise<NodeHost> {
    const log = this.openLog(node);
    const host = new NodeHost({
      topology: this.topology,
      node,
      transport: this.network.endpoint(node),
      log,
      seed: this.seed,
      clock: this.clock(node),
      defer: (fn) => this.scheduler.schedule(0, fn),
      logger: () => undefined,
      // The simulator is the test driver: it flushes, fails and recovers nodes.
      testCluster: true,
      plantedBugs: this.plantedBugs,
      // A node that stops itself fails the run at once, with the node's own account of why.
      onFatal: (error) => this.fatal.push(new NodeStoppedError(`n${node} stopped itself: ${error.stack ?? error.message}`)),
    });
    await host.start();
    this.hosts.set(node, host);
    return host;
  }

  /** Stops a node process (its log stays), as a crash after its last synced batch. */
  async crash(node: NodeId): Promise<void> {
    const host = this.host(node);
    await this.until(host.idle());
    await host.stop();
    this.hosts.delete(node);
    this.network.isolate(node);
  }

  /** Kills a node process on the spot: writes not yet durable are lost (with `syncDelayMs`). */
  kill(node: NodeId): void {
    this.host(node).kill();
    this.hosts.delete(node);
    this.disks.get(node)?.crash();
    this.network.isolate(node);
  }

  /** Every running node's appends made without a sync reach its disk (no power cut came). */
  async settleDisks(): Promise<void> {
    for (const [node, disk] of this.disks) {
      const host = this.hosts.get(node);
      if (!host) continue;
      // Events a node holds for its next write go to the disk first.
      await this.until(host.idle());
      await this.until(disk.settle());
    }
  }

  /** Every event a node ever synced (with `syncDelayMs`), whatever compaction later deleted. */
  journal(node: NodeId): LogEventProps[] {
    return this.disks.get(node)?.journal ?? [];
  }

  isRunning(node: NodeId): boolean {
    return this.hosts.has(node);
  }

  async restart(node: NodeId): Promise<NodeHost> {
    this.network.unisolate(node);
    return this.startNode(node);
  }

  host(node: NodeId): NodeHost {
    const h = this.hosts.get(node);
    if (!h) throw new Error(`n${node} is not running`);
    return h;
  }

  /** Runs simulated time until `done()` or until `maxMs` more have passed. */
  async runUntil(done: () => boolean, maxMs = 60_000): Promise<boolean> {
    const limit = this.scheduler.now() + maxMs;
    while (!done()) {
      if (this.fatal.length > 0) throw this.fatal[0];
      if (!this.scheduler.step(limit)) {
        await this.settle();
        if (done()) return true;
        if (!this.scheduler.step(limit)) {
          this.scheduler.advanceTo(limit);
          return done();
        }
      }
      await this.settle();
    }
    return true;
  }

  async runFor(ms: number): Promise<void> {
    await this.runUntil(() => false, ms);
  }

  /** Lets pending log writes finish (they are promises, outside simulated time). */
  private async settle(): Promise<void> {
    for (let i = 0; i < 4; i++) await Promise.resolve();
    await new Promise<void>((r) => setImmediate(r));
  }

  /** Runs the simulation until the promise settles. */
  async until<T>(p: Promise<T>, maxMs = 60_000): Promise<T> {
    let done = false;
    const tracked = p.finally(() => {
      done = true;
    });
    await this.runUntil(() => done, maxMs);
    if (!done) throw new Error(`simulation: not settled after ${maxMs} ms of simulated time`);
    return tracked;
  }

  adminTo(node: NodeId, op: Omit<AdminRequest, 'id'>): Promise<AdminReply> {
    return this.until(this.admin.request(node, op));
  }

  /** As the runner does before a set: flush everything, first nodes lead, the rest of `live` only. */
  async startSet(live: NodeId[] = allNodes(this.topology)): Promise<void> {
    this.set++;
    for (const node of this.hosts.keys()) {
      await this.adminTo(node, { flush: { leader: initialLeader(this.topology, node), initialBalance: this.topology.initialBalance, set: this.set } });
    }
    for (const node of this.hosts.keys()) if (!live.includes(node)) await this.fail(node);
    for (const client of [this.client, ...this.moreClients]) {
      client.resetLeaders();
      // A flush restores the initial shard map, and starts the logs again at seq 1.
      client.resetOwners();
      client.resetSession();
    }
    this.moveLeaders.clear();
  }

  async fail(node: NodeId): Promise<void> {
    await this.adminTo(node, { fail: {} });
  }

  async recover(node: NodeId): Promise<void> {
    await this.adminTo(node, { recover: {} });
  }

  transfer(sender: number, receiver: number, amount: number): Promise<TxResult> {
    return this.until(this.client.transfer(sender, receiver, amount));
  }

  read(item: number): Promise<TxResult> {
    return this.until(this.client.read(item));
  }

  /**
   * Moves items as PrintReshard does: batches by (source, destination), each
   * one move at its source's leader through the admin path (executePlan).
   * Resolves with every batch's outcome once simulated time has run far
   * enough; wrap it in `until` to wait here.
   */
  moveItems(moves: readonly ItemMove[]): Promise<MoveBatch[]> {
    // Each call its own client name: a move's txid is its client and timestamp.
    return executePlan(this.resharder, this.topology, moves, { client: `resharder/r${++this.moveRuns}`, plan: '', leaders: this.moveLeaders });
  }

  /**
   * The partitioner's plan over the clusters' recent transfers, gathered
   * through admin history (each cluster's believed leader first), as
   * PrintReshard makes it.
   */
  async planReshard(): Promise<ReshardPlan> {
    const order = (c: number) => {
      const members = clusterNodes(this.topology, c);
      const leader = this.moveLeaders.get(c);
      return leader ? [leader, ...members.filter((n) => n !== leader)] : members;
    };
    const history = await gatherHistory(this.resharder, this.topology, order);
    return planReshard(this.topology, history, { seed: this.seed });
  }

  /** PrintReshard: the plan, and its moves carried out. */
  async reshard(): Promise<{ plan: ReshardPlan; batches: MoveBatch[] }> {
    const plan = await this.planReshard();
    const batches = plan.moves.length > 0 ? await this.moveItems(plan.moves) : [];
    return { plan, batches };
  }

  /**
   * Who owns an item, as the running replicas say: the cluster that claims
   * it with the newest version (null: no running replica claims it).
   */
  ownerOf(item: number): (Ownership & { claimedBy: NodeId[] }) | null {
    let best: (Ownership & { claimedBy: NodeId[] }) | null = null;
    for (const [node, host] of [...this.hosts].sort((a, b) => a[0] - b[0])) {
      const o = ownerOf(this.topology, host.state, item);
      if (!o || o.cluster !== clusterOfNode(this.topology, node)) continue;
      if (!best || o.version > best.version) best = { cluster: o.cluster, version: o.version, claimedBy: [node] };
      else if (o.version === best.version && o.cluster === best.cluster) best.claimedBy.push(node);
    }
    return best;
  }

  /** The balance of an item on every node of a cluster, from local state. */
  balances(item: number, nodes: NodeId[]): number[] {
    return nodes.map((n) => {
      const s = this.host(n).state;
      return s.balances.get(item) ?? s.initialBalance;
    });
  }

  /** The cluster's leader: of the nodes that believe they lead (a cut-off one may still), the one with the highest ballot. */
  leaderOf(cluster: number): NodeId | undefined {
    const leaders = clusterNodes(this.topology, cluster).filter((n) => {
      const h = this.hosts.get(n);
      return h && !h.state.failed && h.view.role === 'leader';
    });
    return leaders.sort((a, b) => compareBallots(this.host(b).view.ballot, this.host(a).view.ballot))[0];
  }

  /** Ends the simulation: every node dies where it stands (no simulated time is left to finish writes). */
  async stop(): Promise<void> {
    for (const h of this.hosts.values()) h.kill();
    this.hosts.clear();
  }
}
