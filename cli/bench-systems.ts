/**
 * `shardbank bench --etcd URLS` and `--postgres URL`: the same workload, from
 * the same generator, against another system already running (bench/etcd.sh
 * and bench/postgres.sh start one), so that the tables line up with
 * shardbank's. The accounts are written first, the run is timed the same
 * way, and the audit checks that the total is unchanged. Kinds keep
 * shardbank's names (intra, cross): the other systems have one keyspace.
 */
import { writeFileSync } from 'node:fs';
import type { BankClient } from '../client/client.js';
import { EtcdBankClient } from '../client/etcd.js';
import { PostgresBankClient } from '../client/postgres.js';
import type { Topology } from '../protocol/topology.js';
import { formatBenchTable, formatNodeUsage, makeReport, progress, runWorkload, warmUp, warmupLine, workloadFor, type BenchOptions, type BenchSystem } from './bench.js';
import { cpuMeter } from './proc-cpu.js';
import { progressSpinner } from './spinner.js';

/** What the benchmark needs of another system's client. */
export interface SystemClient extends Pick<BankClient, 'transfer' | 'read'> {
  load(items: number, initialBalance: number): Promise<void>;
  total(items: number): Promise<number>;
  abandonAll(reason?: string): void;
  close(): void | Promise<void>;
}

export interface OtherSystem {
  system: Exclude<BenchSystem, 'shardbank'>;
  client: SystemClient;
  /** One line for the table: where it runs and how. */
  describe(): Promise<{ line: string; details: Record<string, unknown> }>;
}

/** The server processes' CPU over the run, beside the committed transfers. */
export function formatServerCpu(serverPids: number[], cpuMs: number, committed: number): string {
  const each = committed > 0 ? `, ${((cpuMs * 1000) / committed).toFixed(0)} µs of server CPU per commit` : '';
  return `servers    : ${(cpuMs / 1000).toFixed(2)} CPU-s in all (pids ${serverPids.join(', ')} and their children)${each}`;
}

/**
 * Runs the workload against `other`; exit code 0 when the money adds up.
 * With `serverPids`, the CPU of those processes and their children over the
 * run is reported too (Linux).
 */
export async function otherSystemBenchCommand(topology: Topology, opts: BenchOptions & { json?: string; serverPids?: number[] }, other: OtherSystem): Promise<number> {
  const spinner = progressSpinner();
  const { client, system } = other;
  try {
    spinner.start(`writing ${topology.items} accounts to ${system}`);
    await client.load(topology.items, topology.initialBalance);
    const about = await other.describe();
    const workload = workloadFor(topology, opts);
    const warmed = await warmUp(client, workload, opts, spinner);
    const servers = opts.serverPids?.length ? cpuMeter(opts.serverPids) : null;
    spinner.start('running');
    const run = await runWorkload(client, workload, opts, progress(spinner));
    const serverCpuMs = servers?.since();
    spinner.text = 'auditing';
    const total = await client.total(topology.items);
    spinner.stop();
    const expectedTotal = topology.items * topology.initialBalance;
    const report = Object.assign(makeReport(system, opts, run, null, [], warmed), serverCpuMs === undefined ? {} : { serverCpuMs });
    const money = total === expectedTotal ? `money conserved (total ${total})` : `MONEY NOT CONSERVED: total ${total}, expected ${expectedTotal}`;
    const serverLine = serverCpuMs === undefined ? '' : `${formatServerCpu(opts.serverPids!, serverCpuMs, report.committed)}\n`;
    process.stdout.write(`${formatBenchTable(report)}\n${warmupLine(report)}${system.padEnd(11)}: ${about.line}\n${serverLine}${formatNodeUsage([], 0, report.clientCpuMs)}\naudit: ${money}\n`);
    if (opts.json) writeFileSync(opts.json, `${JSON.stringify({ ...report, [system]: { ...about.details, total, expectedTotal } }, null, 1)}\n`);
    return total === expectedTotal ? 0 : 1;
  } catch (err) {
    spinner.fail((err as Error).message);
    return 1;
  } finally {
    client.abandonAll();
    await client.close();
  }
}

/**
 * Against a running etcd cluster: each transfer is one optimistic etcd
 * transaction (see client/etcd.ts).
 */
export function etcdSystem(endpoints: string[]): OtherSystem {
  return {
    system: 'etcd',
    client: new EtcdBankClient({ endpoints }),
    describe: async () => ({ line: endpoints.join(', '), details: { endpoints } }),
  };
}

/**
 * Against a running PostgreSQL primary: each transfer is one transaction
 * through a stored function (see client/postgres.ts), with one pooled
 * connection per client. The table says which standbys the primary's
 * commits wait for, as PostgreSQL reports them.
 */
export function postgresSystem(url: string, clients: number): OtherSystem {
  const client = new PostgresBankClient({ url, connections: clients });
  return {
    system: 'postgres',
    client,
    describe: async () => {
      const d = await client.describe();
      const standbys = d.syncStandbys.length ? `${d.syncStandbys.length} synchronous standbys streaming (${d.syncStandbys.join(', ')})` : 'no synchronous standby streaming';
      const names = d.synchronousStandbyNames ? `synchronous_standby_names = '${d.synchronousStandbyNames}'` : 'synchronous_standby_names unset';
      return { line: `PostgreSQL ${d.version} at ${new URL(url).host}, ${names}, ${standbys}`, details: { url, ...d } };
    },
  };
}
