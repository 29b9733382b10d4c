/**
 * The resharding plan computed on a worker thread. Partitioning thousands of
 * items takes a few hundred milliseconds of CPU; on the caller's thread it
 * would stall every request the same process has in flight (a benchmark's
 * clients, a runner's), and the stall would pass for the cluster's latency.
 *
 * The module is both sides: imported, it offers `planOffThread`; run as a
 * worker, it plans what it is given and posts the plan back.
 */
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import type { Topology } from '../protocol/topology.js';
import { planReshard, type ReshardHistory, type ReshardPlan } from './resharder.js';

interface PlanJob {
  topology: Topology;
  transfers: [number, number][];
  owners: [number, { cluster: number; version: number }][];
  opts: { imbalance?: number; seed?: number };
}

/** `planReshard` on a worker thread: the same plan, without blocking this thread while it is computed. */
export function planOffThread(topology: Topology, history: ReshardHistory, opts: { imbalance?: number; seed?: number } = {}): Promise<ReshardPlan> {
  const job: PlanJob = { topology, transfers: history.transfers, owners: [...history.owners], opts };
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL(import.meta.url), { workerData: job });
    let plan: ReshardPlan | null = null;
    worker.once('message', (p: ReshardPlan) => (plan = p));
    worker.once('error', reject);
    worker.once('exit', (code) => (plan ? resolve(plan) : reject(new Error(`the planning thread exited with code ${code} and no plan`))));
  });
}

if (!isMainThread && parentPort) {
  const job = workerData as PlanJob;
  parentPort.postMessage(planReshard(job.topology, { transfers: job.transfers, owners: new Map(job.owners), unreachable: [] }, job.opts));
}
