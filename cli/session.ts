/**
 * What `run` and `bench` share: a cluster to talk to and the clients to talk
 * with. Either a local cluster of their own (a temporary directory, a
 * throwaway authority, its ports checked free, its nodes started), or, with
 * `--connect`, nodes already running, reached with the credentials given and
 * checked to be of the cluster those name. However the command ends
 * (normally, Ctrl-C, a closed pipe), its nodes are stopped and its temporary
 * directory removed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Ora } from 'ora';
import type { AdminClient } from '../client/admin.js';
import type { BankClient } from '../client/client.js';
import { nodeName } from '../protocol/messages.js';
import { allNodes, type Topology } from '../protocol/topology.js';
import type { TcpTransport } from '../protocol/tcp.js';
import { LocalCluster, tcpAdmin, tcpClient, throwawaySecurity } from './cluster.js';
import { securityFromFlags, UsageError, type ClusterSecurity, type SecurityFlags } from './credentials.js';
import { checkDataDir } from './node.js';
import { installExitHandlers, onExit } from './lifecycle.js';

export interface SessionOptions extends SecurityFlags {
  topology: Topology;
  /** `run` or `bench`: names the temporary directory and the clients. */
  command: string;
  connect?: boolean;
  dataDir?: string;
  keepData?: boolean;
  /** Requests a bank client may have in flight. */
  clientSlots: number;
  metricsBasePort?: number;
}

export class Session {
  private keepDir: boolean;
  private unregister: () => void = () => {};
  private closed: Promise<void> | null = null;

  private constructor(
    readonly topology: Topology,
    readonly dataDir: string | null,
    readonly cluster: LocalCluster | null,
    readonly security: ClusterSecurity,
    readonly admin: AdminClient,
    readonly client: BankClient,
    private readonly transports: TcpTransport[],
    /** A directory this session made, and removes at the end. */
    private readonly ownDir: string | null,
  ) {
    this.keepDir = false;
  }

  /** Sets up (does not start) the cluster and clients; bad flags and directories are UsageErrors. */
  static async open(opts: SessionOptions): Promise<Session> {
    installExitHandlers();
    const { topology } = opts;
    const name = `${opts.command}-${process.pid}`;
    if (opts.connect) {
      const security = securityFromFlags(opts, '--connect');
      const { admin, transport: a } = tcpAdmin(topology, security, name);
      const { client, transport: c } = tcpClient(topology, security, name, opts.clientSlots);
      const s = new Session(topology, null, null, security, admin, client, [c, a], null);
      s.unregister = onExit(() => s.close(), () => {});
      return s;
    }
    let dataDir: string;
    let ownDir: string | null = null;
    if (opts.dataDir) {
      dataDir = resolve(opts.dataDir);
      checkDataDir(dataDir);
    } else {
      dataDir = ownDir = mkdtempSync(join(tmpdir(), `shardbank-${opts.command}-`));
    }
    // From here on the directory goes however the command ends.
    const removeDir = () => {
      if (ownDir && !opts.keepData) rmSync(ownDir, { recursive: true, force: true });
    };
    const early = onExit(async () => removeDir(), removeDir);
    let security: ClusterSecurity;
    try {
      if (opts.tls || opts.clusterId) {
        security = securityFromFlags(opts, opts.command);
      } else {
        const tlsDir = join(dataDir, 'tls');
        rmSync(tlsDir, { recursive: true, force: true });
        security = await throwawaySecurity(topology, tlsDir, opts.plaintext);
      }
    } catch (err) {
      early();
      removeDir();
      throw err;
    }
    const cluster = new LocalCluster(topology, dataDir, security, { metricsBasePort: opts.metricsBasePort });
    const { admin, transport: a } = tcpAdmin(topology, security, name);
    const { client, transport: c } = tcpClient(topology, security, name, opts.clientSlots);
    const s = new Session(topology, dataDir, cluster, security, admin, client, [c, a], ownDir);
    s.keepDir = opts.keepData === true;
    early();
    s.unregister = onExit(
      () => s.close(),
      () => {
        for (const pid of cluster.pids()) {
          try {
            process.kill(pid, 'SIGKILL');
          } catch {
            // Already gone.
          }
        }
        s.removeDir();
      },
    );
    return s;
  }

  /** Starts the local cluster, or checks that every node to connect to answers and is of this cluster. */
  async start(spinner: Ora): Promise<void> {
    const topo = this.topology;
    if (this.cluster) {
      const how = this.security.mode === 'tls' ? 'TLS' : 'plaintext';
      spinner.start(`starting ${topo.nodes.length} node processes (${topo.clusters} clusters x ${topo.nodesPerCluster}, ${how}) in ${this.dataDir}`);
      await this.cluster.start(this.admin);
      spinner.succeed(`${topo.nodes.length} nodes running (${topo.clusters} clusters x ${topo.nodesPerCluster}, ${how}, cluster ${this.security.cluster}), logs in ${this.dataDir}`);
      return;
    }
    spinner.start(`connecting to ${topo.nodes.length} nodes of cluster ${this.security.cluster}`);
    await Promise.all(
      allNodes(topo).map((n) =>
        this.admin.request(n, { status: {} }).catch((err: Error) => {
          throw new UsageError(`--connect: ${nodeName(n)} does not answer as a node of cluster ${this.security.cluster}: ${err.message}`);
        }),
      ),
    );
    spinner.stop();
  }

  /** Keeps the temporary directory (a node died: its log says why). */
  keep(): void {
    this.keepDir = true;
  }

  private removeDir(): void {
    if (this.ownDir && !this.keepDir) rmSync(this.ownDir, { recursive: true, force: true });
  }

  /** Stops the nodes, closes the clients, removes the temporary directory; once. */
  close(): Promise<void> {
    return (this.closed ??= (async () => {
      this.client.abandonAll();
      if (this.cluster) await this.cluster.stop();
      await Promise.all(this.transports.map((t) => t.close()));
      this.removeDir();
      this.unregister();
    })());
  }
}
