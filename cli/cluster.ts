/**
 * A local cluster of real node processes, one per node, as `shardbank run`
 * and the specs start it. Every process is started and stopped by its own pid.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AdminClient } from '../client/admin.js';
import { BankClient } from '../client/client.js';
import { nodeName, type NodeId } from '../protocol/messages.js';
import { addressOf, allNodes, type Topology } from '../protocol/topology.js';
import { TcpTransport } from '../protocol/tcp.js';
import { saveTopology } from './config.js';

const MAIN = join(dirname(fileURLToPath(import.meta.url)), 'main.js');

export class LocalCluster {
  private readonly procs = new Map<NodeId, ChildProcess>();
  readonly configPath: string;

  constructor(
    readonly topology: Topology,
    readonly dataDir: string,
  ) {
    this.configPath = join(dataDir, 'config.json');
  }

  /** Starts every node and waits until each answers. */
  async start(admin: AdminClient): Promise<void> {
    mkdirSync(this.dataDir, { recursive: true });
    saveTopology(this.topology, this.configPath);
    for (const node of allNodes(this.topology)) this.spawn(node);
    await Promise.all(allNodes(this.topology).map((n) => this.waitReady(admin, n)));
  }

  spawn(node: NodeId): ChildProcess {
    const out = createWriteStream(join(this.dataDir, `${nodeName(node)}.log`), { flags: 'a' });
    // SHARDBANK_NODE_ARGS passes Node flags to every node process, e.g. "--cpu-prof --cpu-prof-dir=prof".
    const nodeArgs = (process.env.SHARDBANK_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
    const child = spawn(
      process.execPath,
      [...nodeArgs, MAIN, 'node', '--id', nodeName(node), '--config', this.configPath, '--data-dir', this.dataDir],
      // The IPC channel carries nothing; its closing tells the node its parent is gone.
      { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] },
    );
    child.stdout!.pipe(out);
    child.stderr!.pipe(out);
    (child.channel as { unref?: () => void } | undefined)?.unref?.();
    this.procs.set(node, child);
    return child;
  }

  pid(node: NodeId): number | undefined {
    return this.procs.get(node)?.pid;
  }

  /** Polls a node's status until it answers (a fresh process needs a moment). */
  async waitReady(admin: AdminClient, node: NodeId, timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const child = this.procs.get(node);
      if (child && child.exitCode !== null) {
        throw new Error(`${nodeName(node)} exited with code ${child.exitCode}; see ${join(this.dataDir, `${nodeName(node)}.log`)}`);
      }
      try {
        await admin.request(node, { status: {} });
        return;
      } catch (err) {
        if (Date.now() > deadline) throw new Error(`${nodeName(node)} did not start: ${(err as Error).message}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  /** Nodes whose process ended without being told to (a fail-stop or a crash), with where to read why. */
  deaths(): string[] {
    const out: string[] = [];
    for (const [node, child] of this.procs) {
      if (child.exitCode === null && child.signalCode === null) continue;
      const how = child.signalCode ? `signal ${child.signalCode}` : `exit code ${child.exitCode}`;
      out.push(`${nodeName(node)} stopped by itself (${how}); see ${join(this.dataDir, `${nodeName(node)}.log`)}`);
    }
    return out;
  }

  /** Kills a node process outright (no clean shutdown), by its pid. */
  async kill(node: NodeId, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.procs.get(node);
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    process.kill(child.pid!, signal);
    await exited;
    this.procs.delete(node);
  }

  async restart(admin: AdminClient, node: NodeId): Promise<void> {
    await this.kill(node);
    this.spawn(node);
    await this.waitReady(admin, node);
  }

  /** Stops every node: SIGTERM, then SIGKILL for any still running after a grace period. */
  async stop(graceMs = 3000): Promise<void> {
    await Promise.all(
      [...this.procs.entries()].map(async ([node, child]) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise((r) => child.once('exit', r));
        process.kill(child.pid!, 'SIGTERM');
        const timer = setTimeout(() => child.exitCode === null && process.kill(child.pid!, 'SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
        this.procs.delete(node);
      }),
    );
  }
}

function clientTransport(topology: Topology, name: string): TcpTransport {
  return new TcpTransport({
    self: { client: name },
    addresses: (n) => addressOf(topology, n),
    maxFrameBytes: topology.tuning.maxFrameBytes,
    log: (line) => process.stderr.write(`${line}\n`),
  });
}

/** An admin client over TCP to every node of a topology. */
export function tcpAdmin(topology: Topology, name: string): { admin: AdminClient; transport: TcpTransport } {
  const transport = clientTransport(topology, name);
  return { admin: new AdminClient(transport, name), transport };
}

/** A bank client over TCP with `slots` requests in flight at most. */
export function tcpClient(topology: Topology, name: string, slots: number): { client: BankClient; transport: TcpTransport } {
  const transport = clientTransport(topology, name);
  return { client: new BankClient({ topology, transport, name, slots }), transport };
}
