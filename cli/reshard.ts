/**
 * `shardbank reshard`: PrintReshard against a running cluster, from an
 * operator's terminal. It reads every node's status (to find the leaders),
 * gathers each cluster's recent committed transfers, partitions the items so
 * that as few of them as possible cross clusters, moves the items whose
 * cluster changes, and prints the moves as triplets on one line, in item
 * order, then the plan's cut and imbalance. `--dry-run` plans and moves
 * nothing.
 *
 * It refuses to plan without every cluster's history: a cluster none of
 * whose nodes answers would be planned as if it had no load, and its items
 * could not be moved anyway.
 */
import type { AdminClient } from '../client/admin.js';
import { executePlan, formatMoves, gatherHistory, planReshard, type MoveBatch, type ReshardPlan } from '../client/resharder.js';
import { nodeName, type NodeId } from '../protocol/messages.js';
import { clusterNodes, type Topology } from '../protocol/topology.js';
import { tcpAdmin } from './cluster.js';
import { securityFromFlags, type SecurityFlags } from './credentials.js';
import { EXIT_CHECK_FAILED, EXIT_OK } from './exitCodes.js';
import { collectStatus, type StatusReport } from './status.js';

export interface ReshardCommandOptions extends SecurityFlags {
  dryRun?: boolean;
  json?: boolean;
  seed?: number;
  /** No cluster above (1 + imbalance) x its fair share of the items (default: the topology's reshardImbalance). */
  imbalance?: number;
}

/** What a reshard did, as `--json` prints it. */
export interface ReshardResult {
  dryRun: boolean;
  /** The moves: planned (dry run), or committed; `[item, from, to]` in item order. */
  moves: [number, number, number][];
  planned: number;
  cutBefore: number;
  cutAfter: number;
  transfers: number;
  imbalance: number;
  partitionMs: number;
  moveMs: number;
  batches: { from: number; to: number; items: number; status: MoveBatch['status']; reason: string }[];
}

/** The nodes of each cluster, its leader first (as the status reports it). */
function leaderFirst(topology: Topology, report: StatusReport): (cluster: number) => NodeId[] {
  return (c) => {
    const members = clusterNodes(topology, c);
    const leader = report.clusters[c - 1]?.leader;
    return leader ? [leader, ...members.filter((n) => n !== leader)] : members;
  };
}

/** Why a cluster cannot be planned for: none of its nodes answers. Null when all can be. */
function unreachable(report: StatusReport): string | null {
  const down = report.clusters.filter((c) => c.answered === 0);
  if (down.length === 0) return null;
  return down
    .map((c) => {
      const first = report.nodes.find((n) => n.cluster === c.cluster);
      return `cluster ${c.cluster}: no node answers (${first ? `${nodeName(first.node)}: ${first.error ?? 'no answer'}` : 'no nodes'})`;
    })
    .join('; ');
}

function summary(plan: ReshardPlan, limit: number): string {
  return `cut ${plan.cutBefore} -> ${plan.cutAfter} of ${plan.transfers} recent transfers, imbalance ${(plan.imbalance * 100).toFixed(1)}% (limit ${(limit * 100).toFixed(1)}%), partitioned in ${plan.partitionMs.toFixed(0)} ms`;
}

/** Plans, and unless a dry run moves; resolves with what was done. */
export async function reshard(admin: AdminClient, topology: Topology, report: StatusReport, opts: ReshardCommandOptions): Promise<ReshardResult> {
  const order = leaderFirst(topology, report);
  const history = await gatherHistory(admin, topology, order);
  const plan = planReshard(topology, history, { seed: opts.seed, imbalance: opts.imbalance });
  const base = { planned: plan.moves.length, cutBefore: plan.cutBefore, cutAfter: plan.cutAfter, transfers: plan.transfers, imbalance: plan.imbalance, partitionMs: Math.round(plan.partitionMs) };
  if (opts.dryRun || plan.moves.length === 0) {
    const moves = opts.dryRun ? plan.moves.map((m): [number, number, number] => [m.item, m.from, m.to]) : [];
    return Object.assign({ dryRun: opts.dryRun === true }, base, { moves, moveMs: 0, batches: [] });
  }
  const leaders = new Map<number, NodeId>();
  report.clusters.forEach((c) => c.leader && leaders.set(c.cluster, c.leader));
  const started = performance.now();
  const batches = await executePlan(admin, topology, plan.moves, { client: admin.name, leaders });
  const moveMs = Math.round(performance.now() - started);
  const done = new Set(batches.filter((b) => b.status === 'committed').flatMap((b) => b.items));
  const moves = plan.moves.filter((m) => done.has(m.item)).map((m): [number, number, number] => [m.item, m.from, m.to]);
  return Object.assign({ dryRun: false }, base, { moves, moveMs, batches: batches.map((b) => ({ from: b.from, to: b.to, items: b.items.length, status: b.status, reason: b.reason })) });
}

/**
 * The command: prints the triplets (or `no items moved`) and a line with the
 * cut and imbalance, or one JSON object. Exit code 0 when every batch
 * committed, 1 when one did not or a cluster could not be read.
 */
export async function reshardCommand(topology: Topology, opts: ReshardCommandOptions): Promise<number> {
  const security = securityFromFlags(opts, 'reshard');
  const { admin, transport } = tcpAdmin(topology, security, `reshard-${process.pid}`);
  try {
    const report = await collectStatus(admin, topology);
    const down = unreachable(report);
    if (down) {
      process.stderr.write(`shardbank reshard: ${down}; without every cluster's history nothing was planned or moved\n`);
      return EXIT_CHECK_FAILED;
    }
    const r = await reshard(admin, topology, report, opts);
    const failed = r.batches.filter((b) => b.status !== 'committed');
    if (opts.json) {
      process.stdout.write(`${JSON.stringify(r)}\n`);
    } else {
      const moves = r.moves.map(([item, from, to]) => ({ item, from, to }));
      const plan = { moves, cutBefore: r.cutBefore, cutAfter: r.cutAfter, transfers: r.transfers, imbalance: r.imbalance, partitionMs: r.partitionMs };
      const limit = opts.imbalance ?? topology.tuning.reshardImbalance;
      const head = r.dryRun ? (moves.length ? `plan: ${formatMoves(moves)}` : 'plan: nothing to move') : formatMoves(moves);
      const tail = r.dryRun ? '' : `; ${r.moves.length} of ${r.planned} items moved in ${r.batches.length} batch${r.batches.length === 1 ? '' : 'es'}, ${(r.moveMs / 1000).toFixed(2)} s`;
      process.stdout.write(`${head}\n  (${summary(plan, limit)}${tail})\n`);
    }
    for (const b of failed) process.stderr.write(`shardbank reshard: batch of ${b.items} items from c${b.from} to c${b.to} ${b.status}: ${b.reason}\n`);
    return failed.length === 0 ? EXIT_OK : EXIT_CHECK_FAILED;
  } finally {
    await transport.close();
  }
}
