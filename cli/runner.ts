/**
 * Runs test sets against a cluster, as the spec's test driver: before each set
 * every node is flushed and the first node of each cluster leads; nodes not
 * in the live list are failed; F and R are barriers; the commands between
 * them run in file order, `concurrency` at a time. Then the utilities read
 * the nodes' local state: PrintBalance, PrintDB, PrintView, Performance.
 */
import type { AdminClient } from '../client/admin.js';
import type { BankClient, TxResult } from '../client/client.js';
import { planOffThread } from '../client/plan-thread.js';
import { executePlan, gatherHistory, type ItemMove, type MoveBatch, type ReshardPlan } from '../client/resharder.js';
import { nodeName, type NodeId, type NodeStatus, type ViewRecord } from '../protocol/messages.js';
import { allNodes, clusterNodes, clusterOfNode, initialLeader, type Topology } from '../protocol/topology.js';
import type { TestCommand, TestSet } from './csv.js';
import { printDbJson, viewsJson, type DbSnapshot, type ViewInfo, type ViewJson } from './format.js';
import { PerformanceMeter, type Performance } from './stats.js';

export interface CommandResult {
  command: string;
  status: 'committed' | 'aborted' | 'failed' | 'unknown' | 'ok' | 'done';
  reason?: string;
  balance?: number;
  latencyMs?: number;
  /** For `unknown`: what became of it by the end of the set, asked of its cluster. */
  resolved?: 'committed' | 'not applied' | 'pending';
  /** With `resolved` committed: the seq it ran at. */
  resolvedSeq?: number;
  /** The request's identity on the nodes (`client:timestamp`), kept to resolve an `unknown`. */
  requestId?: string;
  /** The cluster that owns the request (its sender's). */
  cluster?: number;
}

export interface SetReport {
  set: number;
  results: CommandResult[];
  db: Record<string, Record<string, number>>;
  views: ViewJson[];
  performance: Performance;
  audit: Audit;
}

/** The bank's invariants after a set, read from the replicas. */
export interface Audit {
  /** Sum of all balances on the most advanced live replica of each cluster (readable ones only). */
  total: number;
  expectedTotal: number;
  /**
   * Whether money was conserved; null when it cannot be told: a cluster
   * could not be read, or transactions in doubt hold tentative writes.
   */
  conserved: boolean | null;
  /** Live replicas of each cluster hold the same balances. */
  replicasAgree: boolean;
  /** Cross-shard transactions still prepared or unacknowledged when the audit gave up waiting. */
  inDoubt: number;
  /** Clusters with no live node, which the audit could not read. */
  unreadable: number[];
}

/** What PrintReshard did: the plan, each batch's outcome, and the items that moved. */
export interface ReshardOutcome {
  plan: ReshardPlan;
  batches: MoveBatch[];
  moved: ItemMove[];
  /** Clusters whose history no node could give. */
  unreachable: number[];
  /** Gathering the history and partitioning, in ms. */
  planMs: number;
  /** Carrying the moves out, from the first batch sent to the last answered and the owners learnt, in ms (0: none). */
  moveMs: number;
}

export interface RunnerOptions {
  topology: Topology;
  client: BankClient;
  admin: AdminClient;
  concurrency?: number;
  /** Called as each command finishes, in completion order. */
  onResult?: (index: number, cmd: TestCommand, result: CommandResult) => void;
  /** Waits (real or simulated time). */
  sleep?: (ms: number) => Promise<void>;
}

/**
 * A set number no earlier flush of a running cluster used (seconds since
 * 2025), for runs that are not a test file's set (bench). Nodes drop peer
 * messages of another set, so an election or an accept still in flight from
 * an earlier run on the same nodes cannot leak into this one; two runs that
 * both flushed set 1 would share it.
 */
export function freshSetNumber(now = Date.now()): number {
  return Math.max(1, Math.floor(now / 1000) - 1_735_689_600);
}

/** Flushes every node to the start of a set: initial balances, the first node of each cluster leading. */
export async function flushCluster(admin: AdminClient, topology: Topology, set: number): Promise<void> {
  await Promise.all(
    allNodes(topology).map((node) =>
      admin.request(node, { flush: { leader: initialLeader(topology, node), initialBalance: topology.initialBalance, set } }),
    ),
  );
}

/** How long a barrier (F, R, a set's live list) waits for the leaders to see it, and how often it looks. */
const SETTLE_MS = 3000;
const SETTLE_POLL_MS = 25;

export class SetRunner {
  private readonly meter = new PerformanceMeter();
  private readonly opts: RunnerOptions;
  /** Nodes failed in the current set. */
  private down = new Set<NodeId>();

  constructor(opts: RunnerOptions) {
    this.opts = opts;
  }

  private get topology(): Topology {
    return this.opts.topology;
  }

  /** Flushes every node; the first node of each cluster leads; absent nodes fail. */
  async startSet(set: TestSet): Promise<void> {
    const { admin } = this.opts;
    const topo = this.topology;
    const live = set.live.length > 0 ? new Set(set.live) : new Set(allNodes(topo));
    await flushCluster(admin, topo, set.set);
    await Promise.all(allNodes(topo).filter((n) => !live.has(n)).map((n) => admin.request(n, { fail: {} })));
    this.down = new Set(allNodes(topo).filter((n) => !live.has(n)));
    await Promise.all(Array.from({ length: topo.clusters }, (_, i) => this.settle(i + 1)));
    this.opts.client.resetLeaders();
    // A flush restores the shard map: whatever moved in the last set is back where it started.
    this.opts.client.resetOwners();
    this.opts.client.resetSession();
    this.meter.reset();
  }

  /**
   * PrintReshard: gathers every cluster's recent committed transfers,
   * partitions the items to cut as few of them as it can, moves the items
   * whose cluster changes, and returns what it moved (committed batches
   * only), in item order. The client learns the new owners. `dryRun` plans
   * and moves nothing.
   */
  async printReshard(opts: { dryRun?: boolean; seed?: number; imbalance?: number } = {}): Promise<ReshardOutcome> {
    const { admin, client } = this.opts;
    const topo = this.topology;
    const leaderFirst = (c: number) => {
      const members = clusterNodes(topo, c);
      const leader = client.leaderOf(c);
      return leader ? [leader, ...members.filter((n) => n !== leader)] : members;
    };
    const started = performance.now();
    const history = await gatherHistory(admin, topo, leaderFirst);
    // Off this thread: the clients that share this process keep going while it partitions.
    const plan = await planOffThread(topo, history, { seed: opts.seed, imbalance: opts.imbalance });
    const planMs = performance.now() - started;
    if (opts.dryRun || plan.moves.length === 0) return { plan, batches: [], moved: [], unreachable: history.unreachable, planMs, moveMs: 0 };
    const leaders = new Map(Array.from({ length: topo.clusters }, (_, i) => [i + 1, client.leaderOf(i + 1) ?? clusterNodes(topo, i + 1)[0]!] as [number, NodeId]));
    const moving = performance.now();
    const batches = await executePlan(admin, topo, plan.moves, { client: admin.name, leaders });
    const done = new Set(batches.filter((b) => b.status === 'committed').flatMap((b) => b.items));
    const moved = plan.moves.filter((m) => done.has(m.item));
    // Who owns what now, with versions, as the clusters say: the client routes there from now on.
    for (const [item, owner] of (await gatherHistory(admin, topo, leaderFirst)).owners) client.learnOwner(item, owner.cluster, owner.version);
    const moveMs = performance.now() - moving;
    // PrintBalance and PrintDB next read every replica: let the live ones run the moves first.
    await this.caughtUp([...new Set(batches.flatMap((b) => [b.from, b.to]))]);
    return { plan, batches, moved, unreachable: history.unreachable, planMs, moveMs };
  }

  /**
   * Waits (at most `waitMs`) until every live node of `clusters` (or only
   * those in `only`) has executed what its cluster had committed when the
   * wait began; a node that is down or failed is not waited for.
   */
  private async caughtUp(clusters: number[], waitMs = 3000, only?: NodeId[]): Promise<void> {
    const { admin } = this.opts;
    const sleepFor = this.opts.sleep ?? sleep;
    const members = clusters.flatMap((c) => clusterNodes(this.topology, c));
    const waitFor = (n: NodeId) => !only || only.includes(n);
    const read = () => Promise.all(members.map((n) => admin.request(n, { status: {} }).then((r) => r.status ?? null, () => null)));
    const first = await read();
    const target = new Map<number, number>();
    members.forEach((n, i) => {
      const c = clusterOfNode(this.topology, n);
      target.set(c, Math.max(target.get(c) ?? 0, first[i]?.commitThrough ?? 0));
    });
    for (let waited = 0; waited < waitMs; waited += SETTLE_POLL_MS) {
      const now = waited === 0 ? first : await read();
      const behind = members.filter((n, i) => {
        const s = now[i];
        return waitFor(n) && s && !s.failed && (s.executedThrough ?? 0) < target.get(clusterOfNode(this.topology, n))!;
      });
      if (behind.length === 0) return;
      await sleepFor(SETTLE_POLL_MS);
    }
  }

  /** Runs one set's commands; F and R wait for everything before them. */
  async runCommands(set: TestSet): Promise<CommandResult[]> {
    const results: CommandResult[] = new Array(set.commands.length);
    const limit = Math.max(1, this.opts.concurrency ?? 1);
    this.meter.start();
    let i = 0;
    while (i < set.commands.length) {
      const cmd = set.commands[i]!;
      if (cmd.kind === 'fail' || cmd.kind === 'recover') {
        results[i] = await this.barrier(cmd);
        this.opts.onResult?.(i, cmd, results[i]!);
        i++;
        continue;
      }
      let end = i;
      while (end < set.commands.length && set.commands[end]!.kind !== 'fail' && set.commands[end]!.kind !== 'recover') end++;
      await this.runSegment(set.commands, i, end, limit, results);
      i = end;
    }
    this.meter.stop();
    // Followers apply a commit a moment after the leader answers; let it land before printing.
    await (this.opts.sleep ?? sleep)(this.topology.tuning.tickMs * this.topology.tuning.heartbeatTicks * 2);
    await this.resolveUnknowns(results);
    return results;
  }

  private async runSegment(cmds: TestCommand[], from: number, to: number, limit: number, results: CommandResult[]): Promise<void> {
    let next = from;
    const worker = async () => {
      while (next < to) {
        const index = next++;
        const cmd = cmds[index]!;
        results[index] = await this.execute(cmd);
        this.opts.onResult?.(index, cmd, results[index]!);
      }
    };
    await Promise.all(Array.from({ length: Math.min(limit, to - from) }, worker));
  }

  private async barrier(cmd: Extract<TestCommand, { kind: 'fail' | 'recover' }>): Promise<CommandResult> {
    const op = cmd.kind === 'fail' ? { fail: {} } : { recover: {} };
    try {
      // What was committed before F(nX) reaches nX first: its COMMITs come from its leader, the F from
      // here, and a node that fails before they land keeps entries it voted for unexecuted.
      if (cmd.kind === 'fail') await this.caughtUp([clusterOfNode(this.topology, cmd.node)], 1000, [cmd.node]);
      await this.opts.admin.request(cmd.node, op);
      if (cmd.kind === 'fail') this.down.add(cmd.node);
      else this.down.delete(cmd.node);
      await this.settle(clusterOfNode(this.topology, cmd.node));
      return { command: cmd.text, status: 'done' };
    } catch (err) {
      return { command: cmd.text, status: 'failed', reason: (err as Error).message };
    }
  }

  /**
   * Waits (at most SETTLE_MS) until a cluster's leader sees what the runner
   * did: a leader among its live nodes whose failure detector hears exactly
   * the other live ones (it refuses writes when they are not a majority), or,
   * when the live nodes cannot elect one, no leader that believes it has a
   * majority. Then the set's next commands meet the same cluster on every run.
   */
  private async settle(cluster: number): Promise<void> {
    const { admin } = this.opts;
    const members = clusterNodes(this.topology, cluster);
    const up = members.filter((n) => !this.down.has(n));
    const majority = Math.floor(members.length / 2) + 1;
    const sleepFor = this.opts.sleep ?? sleep;
    for (let waited = 0; waited < SETTLE_MS; waited += SETTLE_POLL_MS) {
      const statuses = await Promise.all(up.map((n) => admin.request(n, { status: {} }).then((r) => r.status ?? null, () => null)));
      const leaders = statuses.filter((s) => s?.role === 'leader');
      const agrees = (s: NodeStatus) => {
        const live = new Set(s.livePeers ?? []);
        return up.every((n) => n === s.node || live.has(n)) && [...live].every((n) => up.includes(n));
      };
      const settled = up.length >= majority ? leaders.length === 1 && agrees(leaders[0]!) : leaders.every((s) => !s!.quorum && agrees(s!));
      if (settled) return;
      await sleepFor(SETTLE_POLL_MS);
    }
  }

  private async execute(cmd: TestCommand): Promise<CommandResult> {
    const { client } = this.opts;
    let r: TxResult;
    if (cmd.kind === 'transfer') r = await client.transfer(cmd.sender, cmd.receiver, cmd.amount);
    else if (cmd.kind === 'read') r = await client.read(cmd.item, cmd.consistency);
    else return { command: cmd.text, status: 'failed', reason: 'not a transaction' };
    this.meter.recordResult(r.latencyMs, r.status, cmd.kind);
    const out: CommandResult = { command: cmd.text, status: r.status, latencyMs: round(r.latencyMs) };
    if (r.reason) out.reason = r.reason;
    if (r.balance !== undefined) out.balance = r.balance;
    if (r.status === 'unknown' && cmd.kind === 'transfer') {
      out.requestId = r.requestId;
      out.cluster = client.ownerOf(cmd.sender) ?? undefined;
    }
    return out;
  }

  /**
   * What became of each `unknown`: asks every node of its cluster (failed
   * ones too: their logs are as good) and takes the most that any knows: a
   * stored outcome, else an undecided entry in a log, else not applied.
   */
  async resolveUnknowns(results: CommandResult[]): Promise<void> {
    const { admin } = this.opts;
    await Promise.all(
      results.map(async (r) => {
        if (r.status !== 'unknown' || !r.requestId || !r.cluster) return;
        const colon = r.requestId.lastIndexOf(':');
        const query = { outcome: { client: r.requestId.slice(0, colon), timestamp: Number(r.requestId.slice(colon + 1)) } };
        const answers = await Promise.all(clusterNodes(this.topology, r.cluster).map((n) => admin.request(n, query).then((a) => a.outcome ?? null, () => null)));
        const decided = answers.find((a) => a?.state === 'committed' || a?.state === 'aborted');
        const pending = answers.find((a) => a?.state === 'pending');
        const best = decided ?? pending ?? (answers.some((a) => a) ? { state: 'not applied', seq: 0 } : null);
        if (!best) return;
        // An abort is an answer too: the transfer was not applied.
        r.resolved = best.state === 'aborted' ? 'not applied' : (best.state as CommandResult['resolved']);
        if (best.seq && best.state === 'committed') r.resolvedSeq = best.seq;
      }),
    );
  }

  /** PrintBalance: the local value on every node of the owning cluster (after resharding, the new owner), failed ones too. */
  async printBalance(item: number): Promise<{ node: NodeId; balance: number | null }[]> {
    const cluster = this.opts.client.ownerOf(item);
    if (cluster === null) throw new RangeError(`item ${item} is out of range (1..${this.topology.items})`);
    return Promise.all(
      clusterNodes(this.topology, cluster).map(async (node) => {
        try {
          const r = await this.opts.admin.request(node, { printBalance: { item } });
          return { node, balance: r.balance ?? 0 };
        } catch {
          return { node, balance: null };
        }
      }),
    );
  }

  /** PrintDB: every node's local balance of every item modified in this set. */
  async printDb(): Promise<DbSnapshot> {
    const db: DbSnapshot = new Map();
    await Promise.all(
      allNodes(this.topology).map(async (node) => {
        const items = new Map<number, number>();
        try {
          const r = await this.opts.admin.request(node, { printDb: {} });
          for (const x of r.items ?? []) items.set(x.item ?? 0, x.balance ?? 0);
        } catch {
          // An unreachable node shows no items.
        }
        db.set(node, items);
      }),
    );
    return db;
  }

  /** PrintView: every NEW-VIEW sent in this set, once each, by cluster and ballot. */
  async printView(): Promise<ViewInfo[]> {
    const perNode = await Promise.all(
      allNodes(this.topology).map(async (node): Promise<[NodeId, ViewRecord[]]> => {
        try {
          return [node, (await this.opts.admin.request(node, { printView: {} })).views ?? []];
        } catch {
          return [node, []];
        }
      }),
    );
    return collectViews(this.topology, perNode);
  }

  performance(): Performance {
    return this.meter.snapshot();
  }

  /**
   * Checks that money was neither created nor lost and that live replicas
   * agree, once in-flight cross-shard work has settled (at most `waitMs`).
   */
  async audit(waitMs = 5000): Promise<Audit> {
    return (await this.settledAudit(waitMs)).audit;
  }

  /** The audit once it holds (or `waitMs` ran out), with the PrintDB it was made from. */
  private async settledAudit(waitMs: number): Promise<{ audit: Audit; db: DbSnapshot }> {
    const sleepFor = this.opts.sleep ?? sleep;
    for (let waited = 0; ; waited += 100) {
      const once = await this.auditOnce();
      if ((once.audit.inDoubt === 0 && once.audit.replicasAgree) || waited >= waitMs) return once;
      await sleepFor(100);
    }
  }

  private async auditOnce(): Promise<{ audit: Audit; db: DbSnapshot }> {
    const topo = this.topology;
    const { admin } = this.opts;
    const nodes = allNodes(topo);
    const statuses = await Promise.all(nodes.map((n) => admin.request(n, { status: {} }).then((r) => r.status ?? {}, () => null)));
    const db = await this.printDb();
    let total = topo.items * topo.initialBalance;
    let replicasAgree = true;
    let inDoubt = 0;
    const unreadable: number[] = [];
    for (let c = 1; c <= topo.clusters; c++) {
      const live = clusterNodes(topo, c).filter((n) => {
        const s = statuses[nodes.indexOf(n)];
        return s && !s.failed;
      });
      if (live.length === 0) {
        unreadable.push(c);
        continue;
      }
      const status = (n: NodeId) => statuses[nodes.indexOf(n)]!;
      // A follower may keep a decision whose ACK it never heard (it was down); only a leader resends them.
      for (const n of live) inDoubt += (status(n).walEntries ?? 0) + (status(n).role === 'leader' ? status(n).unacked ?? 0 : 0);
      const best = live.reduce((a, b) => ((status(b).executedThrough ?? 0) > (status(a).executedThrough ?? 0) ? b : a));
      const rows = live.map((n) => JSON.stringify([...(db.get(n) ?? new Map()).entries()].sort((x, y) => x[0] - y[0])));
      if (rows.some((r) => r !== rows[0])) replicasAgree = false;
      for (const balance of db.get(best)?.values() ?? []) total += balance - topo.initialBalance;
    }
    const expectedTotal = topo.items * topo.initialBalance;
    // An unreadable cluster is not money lost: it is money not seen. Nor is a
    // total off while transactions are in doubt: their prepares hold
    // tentative writes (a credit here, a debit there) until they are decided.
    const conserved = unreadable.length > 0 || (inDoubt > 0 && total !== expectedTotal) ? null : total === expectedTotal;
    return { audit: { total, expectedTotal, conserved, replicasAgree, inDoubt, unreadable }, db };
  }

  /** Everything `--json` prints after a set. */
  async report(set: TestSet, results: CommandResult[]): Promise<SetReport> {
    const nodes = allNodes(this.topology);
    // The audit waits (bounded) until the live replicas agree, so that its PrintDB does not catch a
    // follower a moment before it runs the set's last COMMIT; the report prints that same PrintDB.
    const [{ audit, db }, views] = await Promise.all([this.settledAudit(5000), this.printView()]);
    return {
      set: set.set,
      results: results.map(({ latencyMs: _l, cluster: _c, resolvedSeq: _s, ...r }) => r),
      db: printDbJson(db, nodes),
      views: viewsJson(views),
      performance: this.performance(),
      audit,
    };
  }
}

/**
 * The NEW-VIEWs the nodes recorded, once each (by cluster and ballot), in
 * cluster then ballot order. The leader's own record is the whole message it
 * sent, so it wins over a receiver's copy.
 */
export function collectViews(topology: Topology, perNode: Iterable<[NodeId, ViewRecord[]]>): ViewInfo[] {
  const seen = new Map<string, ViewInfo>();
  for (const [node, views] of perNode) {
    const cluster = clusterOfNode(topology, node);
    for (const v of views) {
      const b = v.view?.ballot;
      const key = `${cluster}:${b?.round ?? 0}:${b?.node ?? 0}`;
      if (!seen.has(key) || v.leader === node) seen.set(key, { cluster, leader: v.leader ?? 0, view: v.view ?? {} });
    }
  }
  return [...seen.values()].sort(
    (a, b) =>
      a.cluster - b.cluster ||
      (a.view.ballot?.round ?? 0) - (b.view.ballot?.round ?? 0) ||
      (a.view.ballot?.node ?? 0) - (b.view.ballot?.node ?? 0),
  );
}

/**
 * The audit in one line. A cluster with no live node is named ("cluster 1:
 * no live node to read") and the money is then not checked, never called
 * lost: the unread cluster's balances are unknown, not wrong.
 */
export function formatAudit(a: Audit): string {
  const unread = a.unreadable.map((c) => `cluster ${c}: no live node to read`);
  if (a.unreadable.length === 0 && a.inDoubt > 0) unread.push(`the total ${a.total} of ${a.expectedTotal} counts the tentative writes of transactions in doubt`);
  const money =
    a.conserved === null
      ? `money not checked (${unread.join('; ')})`
      : a.conserved
        ? `money conserved (total ${a.total})`
        : `MONEY NOT CONSERVED: total ${a.total}, expected ${a.expectedTotal}`;
  const replicas = a.replicasAgree ? `live replicas of each ${a.unreadable.length > 0 ? 'readable ' : ''}cluster agree` : 'LIVE REPLICAS DISAGREE';
  const doubt = a.inDoubt > 0 ? `; ${a.inDoubt} cross-shard transactions still in doubt` : '';
  return `audit: ${money}; ${replicas}${doubt}`;
}

/** Whether an audit found nothing wrong (a cluster it could not read is not something wrong). */
export function auditHolds(a: Audit): boolean {
  return a.conserved !== false && a.replicasAgree;
}

export function describeNodes(nodes: NodeId[]): string {
  return nodes.map(nodeName).join(', ');
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
