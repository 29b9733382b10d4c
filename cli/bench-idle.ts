/**
 * `shardbank bench --idle S`: what a cluster with nothing to do costs. It
 * starts the node processes (or uses running ones with `--connect`), flushes
 * them as a set would, lets them settle for `--warmup` seconds (start-up
 * compiling is not idling), then reads each node's CPU time before and after
 * S seconds without a request. Ticks, heartbeats and timers are all that
 * runs, so the figure is their price. The CPU time is the whole process's
 * (every thread: V8's, libuv's pool, LevelDB's).
 */
import { writeFileSync } from 'node:fs';
import type { Topology } from '../protocol/topology.js';
import { nodeUsage, statuses, type NodeUsage } from './bench.js';
import type { SecurityFlags } from './credentials.js';
import { EXIT_CHECK_FAILED, EXIT_OK } from './exitCodes.js';
import { flushCluster, freshSetNumber } from './runner.js';
import { Session } from './session.js';
import { progressSpinner } from './spinner.js';

export interface IdleReport {
  system: 'shardbank';
  idle: {
    seconds: number;
    settleS: number;
    /** CPU time of all nodes together over the window. */
    cpuMs: number;
    /** Of one core: cpuMs / (seconds * 1000) * 100. */
    percentOfCore: number;
    nodes: NodeUsage[];
  };
  deaths: string[];
}

/** The idle window's figures, from two status readings `seconds` apart. */
export function idleFigures(nodes: NodeUsage[], seconds: number): { cpuMs: number; percentOfCore: number } {
  const cpuMs = nodes.reduce((t, u) => t + u.cpuMs, 0);
  return { cpuMs, percentOfCore: seconds > 0 ? (cpuMs / (seconds * 1000)) * 100 : 0 };
}

/** The idle window in lines: all nodes together, then each node. */
export function formatIdle(report: IdleReport): string {
  const { idle } = report;
  const rows = idle.nodes.map((u) => `  n${u.node} ${u.role.padEnd(8)} cpu ${u.cpuMs.toFixed(0).padStart(6)} ms  ${((u.cpuMs / (idle.seconds * 1000)) * 100).toFixed(2).padStart(6)}% of a core  ${String(u.turns).padStart(6)} turns`);
  return [
    `idle       : ${idle.nodes.length} nodes over ${idle.seconds} s (after ${idle.settleS} s to settle), ${idle.cpuMs.toFixed(0)} ms of CPU: ${idle.percentOfCore.toFixed(2)}% of one core together`,
    ...rows,
  ].join('\n');
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs the idle measurement (see the file's header); exit code 0 when every node answered and none died. */
export async function idleCommand(topology: Topology, opts: { idleS: number; settleS: number; connect?: boolean; json?: string; dataDir?: string } & SecurityFlags): Promise<number> {
  const spinner = progressSpinner();
  const session = await Session.open({ ...opts, topology, command: 'idle', clientSlots: 1 });
  const { admin } = session;
  try {
    await session.start(spinner);
    // A set of its own: with --connect, nothing in flight from an earlier run on these nodes leaks in.
    await flushCluster(admin, topology, freshSetNumber());
    spinner.start(`settling for ${opts.settleS} s`);
    await sleep(opts.settleS * 1000);
    const before = await statuses(admin, topology);
    spinner.start(`idle for ${opts.idleS} s`);
    await sleep(opts.idleS * 1000);
    const after = await statuses(admin, topology);
    spinner.stop();
    const nodes = nodeUsage(before, after);
    const deaths = session.cluster?.deaths() ?? [];
    const report: IdleReport = { system: 'shardbank', idle: { seconds: opts.idleS, settleS: opts.settleS, ...idleFigures(nodes, opts.idleS), nodes }, deaths };
    process.stdout.write(`${formatIdle(report)}\n`);
    for (const line of deaths) process.stdout.write(`${line}\n`);
    if (opts.json) writeFileSync(opts.json, `${JSON.stringify(report, null, 1)}\n`);
    if (deaths.length > 0) session.keep();
    const missing = topology.nodes.length - nodes.length;
    if (missing > 0) process.stdout.write(`${missing} node(s) did not answer the status request\n`);
    return deaths.length === 0 && missing === 0 ? EXIT_OK : EXIT_CHECK_FAILED;
  } finally {
    spinner.stop();
    await session.close();
  }
}
