/**
 * The lock policy a benchmark runs under (`bench --lock-policy skip|wait`).
 * A local cluster is the bench's own: the policy goes into the tuning of the
 * config its nodes are started with. A running cluster (`--connect`) read
 * its config when its nodes started, and nothing changes it while they run:
 * the bench asks the nodes which policy they have and refuses to run when
 * it is not the one asked for, rather than report figures for the other.
 */
import { nodeName, type NodeId } from '../protocol/messages.js';
import type { Topology, Tuning } from '../protocol/topology.js';
import { UsageError } from './credentials.js';

type LockPolicy = Tuning['lockPolicy'];

/** The topology a local cluster is started with under `policy` (unchanged without one). */
export function withLockPolicy(topology: Topology, policy: LockPolicy | undefined): Topology {
  if (policy === undefined || topology.tuning.lockPolicy === policy) return topology;
  return Object.assign({}, topology, { tuning: Object.assign({}, topology.tuning, { lockPolicy: policy }) });
}

/**
 * The policy every node reports, `mixed (n1 skip, n2 wait, ...)` when they
 * disagree, or `not reported` when none says.
 */
export function reportedLockPolicy(statuses: Map<NodeId, { lockPolicy?: string | null }>): string {
  const byNode = [...statuses].sort((a, b) => a[0] - b[0]).map(([n, s]) => [n, s.lockPolicy || 'not reported'] as const);
  const kinds = new Set(byNode.map(([, p]) => p));
  if (kinds.size === 0) return 'not reported';
  if (kinds.size === 1) return byNode[0]![1];
  return `mixed (${byNode.map(([n, p]) => `${nodeName(n)} ${p}`).join(', ')})`;
}

/**
 * With --connect: throws a UsageError naming the flag when the running
 * nodes do not all report the policy asked for.
 */
export function checkRunningLockPolicy(wanted: LockPolicy | undefined, statuses: Map<NodeId, { lockPolicy?: string | null }>): void {
  if (wanted === undefined) return;
  const others = [...statuses].filter(([, s]) => s.lockPolicy !== wanted).sort((a, b) => a[0] - b[0]);
  if (others.length === 0) return;
  const what = others.map(([n, s]) => `${nodeName(n)} ${s.lockPolicy ? `runs "${s.lockPolicy}"` : 'does not report one'}`).join(', ');
  throw new UsageError(
    `--lock-policy ${wanted}: a running cluster's lock policy cannot be changed from bench (${what}); ` +
      `start its nodes with "tuning": {"lockPolicy": "${wanted}"} in their --config, or leave --lock-policy out`,
  );
}
