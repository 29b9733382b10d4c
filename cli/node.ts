/**
 * `shardbank node --id n4`: one node as an OS process. Its event log lives in
 * `<data-dir>/n4` (LevelDB); on start it replays that log, listens on its
 * address from the topology (TLS with its certificate from the cluster's
 * authority, or plaintext on loopback), and rejoins its cluster. With
 * `--metrics` it serves Prometheus metrics on an admin HTTP port.
 */
import { mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Server } from 'node:http';
import { nodeName, type NodeId } from '../protocol/messages.js';
import { addressOf, type Topology } from '../protocol/topology.js';
import { TcpTransport } from '../protocol/tcp.js';
import { isLoopback } from '../protocol/tls.js';
import { NodeHost } from '../runtime/host.js';
import { EventLog } from '../store/eventlog.js';
import { securityOf, UsageError, type ClusterSecurity } from './credentials.js';
import type { JitBudget } from './jit.js';
import { NodeMetrics, serveMetrics } from './metrics.js';

function processStats(): { cpuMs: number; rssBytes: number; heapUsedBytes: number } {
  const cpu = process.cpuUsage();
  const mem = process.memoryUsage();
  return { cpuMs: (cpu.user + cpu.system) / 1000, rssBytes: mem.rss, heapUsedBytes: mem.heapUsed };
}

export interface NodeProcessOptions {
  topology: Topology;
  node: NodeId;
  dataDir: string;
  security: ClusterSecurity;
  seed?: number;
  /** Obey flush, fail and recover (the test driver's commands). */
  testCluster?: boolean;
  /** Where to serve Prometheus metrics, if anywhere. */
  metrics?: { host: string; port: number };
  /** V8's interrupt budget, to follow the node's load (cli/jit.ts); absent when the operator set one. */
  jit?: JitBudget;
}

/** The data directory exists (or can be made) and is a directory we can write in. */
export function checkDataDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UsageError(`--data-dir ${dir}: cannot create it (${code === 'EEXIST' || code === 'ENOTDIR' ? 'a file is in the way' : (code ?? (err as Error).message)})`);
  }
  if (!statSync(dir).isDirectory()) throw new UsageError(`--data-dir ${dir}: not a directory`);
}

export async function runNodeProcess(opts: NodeProcessOptions): Promise<() => Promise<void>> {
  const { topology, node } = opts;
  const addr = addressOf(topology, node);
  if (!addr) throw new UsageError(`--id ${nodeName(node)}: not a node of this configuration (it has n1..n${topology.nodes.length})`);
  checkDataDir(opts.dataDir);
  const security = securityOf(opts.security, nodeName(node), 'peer');
  if (security.mode === 'plaintext' && !isLoopback(addr.host)) {
    throw new UsageError(`${nodeName(node)} listens on ${addr.host}: plaintext is only allowed on loopback; use --tls with certificates from shardbank init`);
  }
  const logLine = (line: string) => process.stderr.write(`${new Date().toISOString()} ${nodeName(node)} ${line}\n`);
  let host: NodeHost | null = null;
  let transport: TcpTransport | null = null;
  const metrics = opts.metrics ? new NodeMetrics(node, { status: () => host!.status(), transport: () => transport!.stats }) : null;
  const diskLog = EventLog.onDisk(join(opts.dataDir, nodeName(node)));
  const log = metrics ? metrics.timedLog(diskLog) : diskLog;
  transport = new TcpTransport({
    self: { node },
    addresses: (n) => addressOf(topology, n),
    listen: { host: addr.host, port: addr.port },
    security,
    tuning: topology.tuning,
    log: logLine,
    onAnswered: metrics ? (ms) => metrics.answered(ms) : undefined,
  });
  host = new NodeHost({
    topology, node, transport, log, seed: opts.seed ?? node, logger: logLine, processStats,
    // Fail-stop: the log holds everything synced; a restart replays it.
    onFatal: () => process.exit(70),
    turnBudgetMs: topology.tuning.turnBudgetMs,
    testCluster: opts.testCluster === true,
    onTurn: opts.jit ? (turns) => opts.jit!.turned(performance.now(), turns) : undefined,
  });
  await openLog(host, join(opts.dataDir, nodeName(node)));
  try {
    await transport.start();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') throw new UsageError(`${nodeName(node)}: ${addr.host}:${addr.port} is in use (another node or program holds it)`);
    if (code === 'EADDRNOTAVAIL') throw new UsageError(`${nodeName(node)}: ${addr.host} is not an address of this machine`);
    throw err;
  }
  let server: Server | null = null;
  if (metrics && opts.metrics) server = await serveMetrics(metrics, opts.metrics, security);
  const how = security.mode === 'tls' ? 'TLS' : 'plaintext';
  logLine(`listening on ${addr.host}:${addr.port} (${how}, cluster ${security.cluster}${opts.testCluster ? ', test cluster' : ''}), replayed ${log.size} events, executed through seq ${host.state.executedThrough}`);
  let stopping: Promise<void> | null = null;
  return () =>
    (stopping ??= (async () => {
      server?.close();
      await host.stop();
      await transport.close();
      await log.close();
    })());
}

/** Opens the node's log; one held by another process is an operator's mistake, said in one line. */
async function openLog(host: NodeHost, dir: string): Promise<void> {
  try {
    await host.start();
  } catch (err) {
    const text = `${(err as Error).message} ${((err as Error).cause as Error | undefined)?.message ?? ''}`;
    if (/lock/i.test(text)) throw new UsageError(`${dir}: the event log is locked (is this node already running?)`);
    throw err;
  }
}
