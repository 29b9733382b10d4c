/**
 * A local cluster of real node processes, one per node, as `shardbank run`
 * and `bench` and the specs start it. It is the run's own: its ports are
 * checked free before anything starts, its nodes carry a throwaway
 * authority's certificates (or, with plaintext, a cluster id of the run's
 * own), and they are test-cluster nodes, which obey flush, fail and recover.
 * Every process is started and stopped by its own pid.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import net from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AdminClient } from '../client/admin.js';
import { BankClient } from '../client/client.js';
import { nodeName, type NodeId } from '../protocol/messages.js';
import { addressOf, allNodes, type Topology } from '../protocol/topology.js';
import { TcpTransport } from '../protocol/tcp.js';
import { saveTopology } from './config.js';
import { nodeSecurityArgs, securityOf, UsageError, type ClusterSecurity } from './credentials.js';

const MAIN = join(dirname(fileURLToPath(import.meta.url)), 'main.js');

/** The client and operator identities a throwaway authority issues. */
export const CLIENT_IDENTITY = 'client';
export const ADMIN_IDENTITY = 'admin';

export interface LocalClusterOptions {
  /** Plaintext on loopback instead of TLS with a throwaway authority. */
  plaintext?: boolean;
  /** Node k serves Prometheus metrics on 127.0.0.1:(metricsBasePort + k - 1). */
  metricsBasePort?: number;
}

/**
 * Security for a local cluster: a throwaway authority in `dir` (certificates
 * for every node, `client` and `admin`), or plaintext with a fresh cluster id.
 */
export async function throwawaySecurity(topology: Topology, dir: string, plaintext = false): Promise<ClusterSecurity> {
  // Loaded only here: node processes and plaintext runs never pay for the certificate library.
  const { createAuthority, newClusterId } = await import('./authority.js');
  if (plaintext) return { mode: 'plaintext', cluster: newClusterId() };
  const certificates = [
    ...allNodes(topology).map((n) => ({ role: 'peer' as const, name: nodeName(n) })),
    { role: 'client' as const, name: CLIENT_IDENTITY },
    { role: 'admin' as const, name: ADMIN_IDENTITY },
  ];
  const { cluster } = await createAuthority(dir, { certificates, days: 7 });
  return { mode: 'tls', dir, cluster };
}

export class LocalCluster {
  private readonly procs = new Map<NodeId, ChildProcess>();
  readonly configPath: string;

  constructor(
    readonly topology: Topology,
    readonly dataDir: string,
    readonly security: ClusterSecurity,
    private readonly opts: LocalClusterOptions = {},
  ) {
    this.configPath = join(dataDir, 'config.json');
  }

  /** A cluster in `dataDir` with a throwaway authority in `dataDir/tls` (or plaintext). */
  static async create(topology: Topology, dataDir: string, opts: LocalClusterOptions = {}): Promise<LocalCluster> {
    mkdirSync(dataDir, { recursive: true });
    const security = await throwawaySecurity(topology, join(dataDir, 'tls'), opts.plaintext);
    return new LocalCluster(topology, dataDir, security, opts);
  }

  /** An admin client of this cluster (the `admin` identity). */
  admin(name: string): { admin: AdminClient; transport: TcpTransport } {
    return tcpAdmin(this.topology, this.security, name);
  }

  /** A bank client of this cluster (the `client` identity) with `slots` requests in flight at most. */
  client(name: string, slots: number): { client: BankClient; transport: TcpTransport } {
    return tcpClient(this.topology, this.security, name, slots);
  }

  /**
   * Refuses to start when a port the nodes need is taken: a cluster must
   * never find another run's nodes where it expected its own.
   */
  async checkPorts(): Promise<void> {
    for (const { id, host, port } of this.topology.nodes) {
      const taken = await portTaken(host, port);
      if (taken) {
        throw new UsageError(
          `port ${port} on ${host} (for ${nodeName(id)}) is in use (${taken}): another cluster or program holds it; ` +
            `move this cluster's ports with --base-port (node k listens on base + k - 1)`,
        );
      }
    }
  }

  /** Starts every node and waits until each answers. */
  async start(admin: AdminClient): Promise<void> {
    mkdirSync(this.dataDir, { recursive: true });
    await this.checkPorts();
    saveTopology(this.topology, this.configPath);
    for (const node of allNodes(this.topology)) this.spawn(node);
    await Promise.all(allNodes(this.topology).map((n) => this.waitReady(admin, n)));
  }

  logFile(node: NodeId): string {
    return join(this.dataDir, `${nodeName(node)}.log`);
  }

  spawn(node: NodeId): ChildProcess {
    const out = createWriteStream(this.logFile(node), { flags: 'a' });
    // A log that cannot be written (its directory removed under it) loses the node's output, not the caller's process.
    out.on('error', (err) => process.stderr.write(`shardbank: ${nodeName(node)}'s log ${this.logFile(node)}: ${err.message}\n`));
    // SHARDBANK_NODE_ARGS passes Node flags to every node process, e.g. "--cpu-prof --cpu-prof-dir=prof".
    const nodeArgs = (process.env.SHARDBANK_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
    const metrics = this.opts.metricsBasePort ? ['--metrics', `127.0.0.1:${this.opts.metricsBasePort + node - 1}`] : [];
    const child = spawn(
      process.execPath,
      [
        ...nodeArgs, MAIN, 'node', '--id', nodeName(node), '--config', this.configPath, '--data-dir', this.dataDir,
        '--test-cluster', ...nodeSecurityArgs(this.security), ...metrics,
      ],
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

  /** The pids of the node processes still running (for a last-resort kill on exit). */
  pids(): number[] {
    return [...this.procs.values()].filter((c) => c.exitCode === null && c.signalCode === null).map((c) => c.pid!);
  }

  /** Polls a node's status until it answers (a fresh process needs a moment). */
  async waitReady(admin: AdminClient, node: NodeId, timeoutMs = 15_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const child = this.procs.get(node);
      if (child && child.exitCode !== null) {
        throw new Error(`${nodeName(node)} exited with code ${child.exitCode}: ${await lastLine(this.logFile(node))}`);
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
      out.push(`${nodeName(node)} stopped by itself (${how}); see ${this.logFile(node)}`);
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
        if (child.exitCode !== null || child.signalCode !== null) {
          this.procs.delete(node);
          return;
        }
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

/** Why a port cannot be bound (`EADDRINUSE`, ...), or null when it is free. */
function portTaken(host: string, port: number): Promise<string | null> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(null)));
  });
}

async function lastLine(file: string): Promise<string> {
  const { readFile } = await import('node:fs/promises');
  const text = await readFile(file, 'utf8').catch(() => '');
  const lines = text.trim().split('\n');
  return lines[lines.length - 1] || `no output; see ${file}`;
}

function clientTransport(topology: Topology, cs: ClusterSecurity, identity: string, role: 'client' | 'admin'): TcpTransport {
  return new TcpTransport({
    self: { client: identity, role },
    addresses: (n) => addressOf(topology, n),
    security: securityOf(cs, identity, role),
    tuning: topology.tuning,
    log: (line) => process.stderr.write(`${line}\n`),
  });
}

/** An admin client over TCP to every node of a topology; it speaks as `admin/<name>`. */
export function tcpAdmin(topology: Topology, cs: ClusterSecurity, name: string, identity = ADMIN_IDENTITY): { admin: AdminClient; transport: TcpTransport } {
  const transport = clientTransport(topology, cs, identity, 'admin');
  return { admin: new AdminClient(transport, `${identity}/${name}`, undefined, undefined, (n) => transport.problem(n)), transport };
}

/** A bank client over TCP with `slots` requests in flight at most; its logical clients are `client/<name>/k`. */
export function tcpClient(
  topology: Topology,
  cs: ClusterSecurity,
  name: string,
  slots: number,
  identity = CLIENT_IDENTITY,
): { client: BankClient; transport: TcpTransport } {
  const transport = clientTransport(topology, cs, identity, 'client');
  return { client: new BankClient({ topology, transport, name: `${identity}/${name}`, slots }), transport };
}
