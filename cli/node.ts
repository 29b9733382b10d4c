/**
 * `shardbank node --id n4`: one node as an OS process. Its event log lives in
 * `<data-dir>/n4` (LevelDB); on start it replays that log, listens on its
 * address from the topology, and rejoins its cluster.
 */
import { join } from 'node:path';
import { nodeName, type NodeId } from '../protocol/messages.js';
import { addressOf, type Topology } from '../protocol/topology.js';
import { TcpTransport } from '../protocol/tcp.js';
import { NodeHost } from '../runtime/host.js';
import { EventLog } from '../store/eventlog.js';

function processStats(): { cpuMs: number; rssBytes: number; heapUsedBytes: number } {
  const cpu = process.cpuUsage();
  const mem = process.memoryUsage();
  return { cpuMs: (cpu.user + cpu.system) / 1000, rssBytes: mem.rss, heapUsedBytes: mem.heapUsed };
}

export interface NodeProcessOptions {
  topology: Topology;
  node: NodeId;
  dataDir: string;
  seed?: number;
}

export async function runNodeProcess(opts: NodeProcessOptions): Promise<() => Promise<void>> {
  const { topology, node } = opts;
  const addr = addressOf(topology, node);
  if (!addr) throw new Error(`${nodeName(node)} is not in the topology (it has n1..n${topology.nodes.length})`);
  const logLine = (line: string) => process.stderr.write(`${new Date().toISOString()} ${nodeName(node)} ${line}\n`);
  const log = EventLog.onDisk(join(opts.dataDir, nodeName(node)));
  const transport = new TcpTransport({
    self: { node },
    addresses: (n) => addressOf(topology, n),
    listen: { host: addr.host, port: addr.port },
    maxFrameBytes: topology.tuning.maxFrameBytes,
    log: logLine,
  });
  const host = new NodeHost({
    topology, node, transport, log, seed: opts.seed ?? node, logger: logLine, processStats,
    // Fail-stop: the log holds everything synced; a restart replays it.
    onFatal: () => process.exit(70),
    turnBudgetMs: topology.tuning.turnBudgetMs,
  });
  await host.start();
  await transport.start();
  logLine(`listening on ${addr.host}:${addr.port}, replayed ${log.size} events, executed through seq ${host.state.executedThrough}`);
  let stopping: Promise<void> | null = null;
  return () =>
    (stopping ??= (async () => {
      await host.stop();
      await transport.close();
      await log.close();
    })());
}
