/**
 * `shardbank status`: what an operator sees of a running cluster, from each
 * node's admin `status`: who leads each cluster and with which ballot, each
 * node's commit and execute points and how far it lags its leader, the
 * cross-shard transactions in doubt (prepared, not decided) and the
 * decisions not yet acknowledged; nodes that do not answer, with why.
 */
import { AdminClient } from '../client/admin.js';
import { formatBallot, nodeName, type NodeId, type NodeStatus } from '../protocol/messages.js';
import { allNodes, clusterNodes, type Topology } from '../protocol/topology.js';
import { tcpAdmin } from './cluster.js';
import { securityFromFlags, type SecurityFlags } from './credentials.js';
import { EXIT_CHECK_FAILED, EXIT_OK } from './exitCodes.js';

export interface NodeRow {
  node: NodeId;
  cluster: number;
  status: NodeStatus | null;
  /** Why the node did not answer. */
  error?: string;
  /** Executed entries behind its cluster's leader (null without a known leader). */
  lag: number | null;
}

export interface ClusterRow {
  cluster: number;
  leader: NodeId | null;
  ballot: string | null;
  commitThrough: number | null;
  inDoubt: number;
  unacked: number;
  answered: number;
  nodes: number;
}

export interface StatusReport {
  clusters: ClusterRow[];
  nodes: NodeRow[];
}

/** Reads every node's status; a node that does not answer is a row with its error. */
export async function collectStatus(admin: AdminClient, topology: Topology): Promise<StatusReport> {
  const replies = await Promise.all(
    allNodes(topology).map((n) =>
      admin.request(n, { status: {} }).then(
        (r) => ({ node: n, status: r.status ?? null }),
        (err: Error) => ({ node: n, status: null, error: err.message }),
      ),
    ),
  );
  const byNode = new Map(replies.map((r) => [r.node, r]));
  const clusters: ClusterRow[] = [];
  const nodes: NodeRow[] = [];
  for (let c = 1; c <= topology.clusters; c++) {
    const members = clusterNodes(topology, c);
    const up = members.map((n) => byNode.get(n)!).filter((r) => r.status && !r.status.failed);
    const leading = up.find((r) => r.status!.role === 'leader');
    const leaderStatus = leading?.status ?? null;
    clusters.push({
      cluster: c,
      leader: leading ? leading.node : null,
      ballot: leaderStatus ? formatBallot(leaderStatus.ballot) : null,
      commitThrough: leaderStatus ? Number(leaderStatus.commitThrough ?? 0) : null,
      inDoubt: up.reduce((t, r) => t + Number(r.status!.walEntries ?? 0), 0),
      unacked: leaderStatus ? Number(leaderStatus.unacked ?? 0) : 0,
      answered: members.filter((n) => byNode.get(n)!.status).length,
      nodes: members.length,
    });
    for (const n of members) {
      const r = byNode.get(n)!;
      const lag = r.status && leaderStatus ? Math.max(0, Number(leaderStatus.executedThrough ?? 0) - Number(r.status.executedThrough ?? 0)) : null;
      nodes.push({ node: n, cluster: c, status: r.status, lag, ...('error' in r ? { error: r.error } : {}) });
    }
  }
  return { clusters, nodes };
}

/** Whether everything an operator would want is so: every node answered, every cluster has a leader. */
export function healthy(report: StatusReport): boolean {
  return report.nodes.every((n) => n.status && !n.status.failed) && report.clusters.every((c) => c.leader !== null);
}

/** The report as an operator reads it: a line per cluster, then a table of nodes. */
export function formatStatus(report: StatusReport): string {
  const lines: string[] = [];
  for (const c of report.clusters) {
    const led = c.leader ? `led by ${nodeName(c.leader)} with ballot ${c.ballot}, commit point ${c.commitThrough}` : 'NO LEADER';
    const doubt = c.inDoubt > 0 || c.unacked > 0 ? `; ${c.inDoubt} in doubt, ${c.unacked} decisions unacknowledged` : '; nothing in doubt';
    lines.push(`cluster ${c.cluster}: ${led}; ${c.answered}/${c.nodes} nodes answer${doubt}`);
  }
  const header = ['node', 'cluster', 'role', 'leader', 'ballot', 'commit', 'executed', 'lag', 'in-doubt', 'unacked', 'rss MB'];
  const rows = report.nodes.map((n) => {
    const s = n.status;
    if (!s) return [nodeName(n.node), String(n.cluster), `DOWN: ${n.error ?? 'no answer'}`];
    return [
      nodeName(n.node),
      String(n.cluster),
      s.failed ? 'failed' : (s.role ?? ''),
      s.leader ? nodeName(s.leader) : '-',
      formatBallot(s.ballot),
      String(s.commitThrough ?? 0),
      String(s.executedThrough ?? 0),
      n.lag === null ? '-' : String(n.lag),
      String(s.walEntries ?? 0),
      String(s.unacked ?? 0),
      (Number(s.rssBytes ?? 0) / 2 ** 20).toFixed(0),
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.filter((r) => r.length > 3).map((r) => r[i]?.length ?? 0)));
  const line = (r: string[]) => (r.length > 3 ? r.map((v, i) => v.padEnd(widths[i]!)).join('  ') : r.map((v, i) => (i < 2 ? v.padEnd(widths[i]!) : v)).join('  ')).trimEnd();
  lines.push('', line(header), ...rows.map(line));
  return lines.join('\n');
}

export interface StatusCommandOptions extends SecurityFlags {
  json?: boolean;
}

/** Prints the status; exit code 0 when healthy, 1 when a node is down or failed or a cluster has no leader. */
export async function statusCommand(topology: Topology, opts: StatusCommandOptions): Promise<number> {
  const security = securityFromFlags(opts, 'status');
  const { admin, transport } = tcpAdmin(topology, security, `status-${process.pid}`);
  try {
    const report = await collectStatus(admin, topology);
    process.stdout.write(opts.json ? `${JSON.stringify(report)}\n` : `${formatStatus(report)}\n`);
    return healthy(report) ? EXIT_OK : EXIT_CHECK_FAILED;
  } finally {
    await transport.close();
  }
}
