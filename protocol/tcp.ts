/**
 * The transport between real processes: length-prefixed protobuf frames over
 * TLS (or, by explicit choice and on loopback only, plain TCP). Nodes listen;
 * clients and admin tools only connect.
 *
 * Every connection is mutually authenticated: its certificate says who is on
 * the other end and in which role (peer, client, admin), and the hello the
 * opener sends first must agree with it and name the same cluster. A node
 * answers with a hello of its own, so an opener that reached another
 * cluster's node knows at once. From then on every envelope is held to the
 * rules of its sender's role (`auth.ts`) before the node sees it.
 *
 * A node bounds what each connection can cost it: bytes buffered (only what
 * arrived), envelopes per frame, connections per role and per identity,
 * a deadline for the handshake and hello that trickled bytes do not extend,
 * idle connections closed, and client requests in flight per connection
 * (past it: `overloaded` at once, without the node seeing the request).
 * That inbound side is `gate.ts`; this file keeps the queues, the outbound
 * connections to peers, and the writing and reading of frames.
 */
import net from 'node:net';
import tls from 'node:tls';
import { refusalFromDialed } from './auth.js';
import { BoundedQueue } from './boundedQueue.js';
import { decodeFrame, encodeFrame, FRAME_HEADER_BYTES, FrameError } from './codec.js';
import { Conn, describe } from './conn.js';
import { InboundGate } from './gate.js';
import type { EnvelopeProps } from './messages.js';
import { clientOptions, isLoopback, principalOf, serverOptions, type Role, type Security } from './tls.js';
import { DEFAULT_TUNING, type Tuning } from './topology.js';
import type { EnvelopeHandler, Transport, TransportLogger } from './transport.js';

export interface HostPort {
  host: string;
  port: number;
}

export interface TcpTransportOptions {
  /** Who this transport speaks for: a node id, or a client name (with its role, `client` unless said). */
  self: { node?: number; client?: string; role?: Role };
  /** Where a node listens; undefined for nodes reachable only over their own inbound connection. */
  addresses: (node: number) => HostPort | undefined;
  /** Set for nodes, which accept connections; clients leave it out. */
  listen?: HostPort;
  /** TLS with the cluster's certificates, or plaintext on loopback; plaintext of cluster "" when left out. */
  security?: Security;
  /** The nodes of the configuration: the only peers a node takes. Default: the nodes with an address. */
  isMember?: (node: number) => boolean;
  /** The limits (frames, connections, deadlines, requests in flight); defaults for the rest. */
  tuning?: Partial<Tuning>;
  /** Largest frame payload accepted or sent, in bytes (default `tuning.maxFrameBytes`). */
  maxFrameBytes?: number;
  /** Problems worth a line in the log: garbled frames, refused connections, broken rules. */
  log?: TransportLogger;
  /** Routine connection churn (refused, reset, reconnecting): quiet unless asked for. */
  debug?: TransportLogger;
  /** Envelopes kept per destination while it cannot be written to; the oldest go first. */
  maxQueuedPerDestination?: number;
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
  connectTimeoutMs?: number;
  /** A connection that has not finished its handshake and hello by then is closed (default `tuning.helloTimeoutMs`). */
  helloTimeoutMs?: number;
  /** Called with how long each answered client request waited at this node (ms). */
  onAnswered?: (ms: number) => void;
}

export interface TcpTransportStats {
  framesSent: number;
  envelopesSent: number;
  envelopesReceived: number;
  /** Envelopes given up: queue overflow, no route, too large for one frame. */
  dropped: number;
  frameErrors: number;
  /** Connections refused or closed before they were admitted: limits, deadlines, handshakes, hellos. */
  refused: number;
  /** Connections closed because an envelope broke its role's rules. */
  violations: number;
  /** Admitted connections closed to make room for newer ones, or for being idle. */
  evicted: number;
  /** Client requests answered `overloaded` by the transport. */
  overloaded: number;
  /** Connections open now, by role (`pending`: not admitted yet). */
  connections: Record<Role | 'pending', number>;
  /** Client requests waiting for a reply, over every connection. */
  inflight: number;
}

type PeerState = 'idle' | 'connecting' | 'open' | 'waiting';

/** An outbound connection to a node, opened on first use and kept up while there is traffic. */
interface Peer {
  node: number;
  state: PeerState;
  conn: Conn | null;
  queue: BoundedQueue<EnvelopeProps>;
  backoffMs: number;
  timer: NodeJS.Timeout | null;
}

export class TcpTransport implements Transport {
  private readonly self: { node?: number; client?: string; role: Role };
  private readonly addresses: (node: number) => HostPort | undefined;
  private readonly isMember: (node: number) => boolean;
  private readonly listenAt: HostPort | undefined;
  private readonly security: Security;
  private readonly tuning: Tuning;
  private readonly maxFrameBytes: number;
  /** Largest frame this end writes: a client keeps to what nodes take from clients. */
  private readonly maxSendBytes: number;
  private readonly log: TransportLogger;
  private readonly debug: TransportLogger;
  private readonly maxQueued: number;
  private readonly reconnectMinMs: number;
  private readonly reconnectMaxMs: number;
  private readonly connectTimeoutMs: number;
  private readonly helloTimeoutMs: number;
  private readonly gate: InboundGate;

  private handler: EnvelopeHandler | null = null;
  private server: net.Server | null = null;
  private readonly conns = new Set<Conn>();
  private readonly peers = new Map<number, Peer>();
  /** Why the last connection to each node failed or was refused (for an operator's error message). */
  private readonly problems = new Map<number, string>();
  private readonly dirtyPeers = new Set<Peer>();
  private readonly dirtyConns = new Set<Conn>();
  private loopback: EnvelopeProps[] = [];
  private flushTimer: NodeJS.Immediate | null = null;
  private loopbackTimer: NodeJS.Immediate | null = null;
  private closing: Promise<void> | null = null;
  private readonly counters = {
    framesSent: 0,
    envelopesSent: 0,
    envelopesReceived: 0,
    dropped: 0,
    frameErrors: 0,
    refused: 0,
    violations: 0,
    evicted: 0,
    overloaded: 0,
  };

  constructor(opts: TcpTransportOptions) {
    if (!opts.self.node && !opts.self.client) throw new Error('TcpTransport needs self.node or self.client');
    this.self = { node: opts.self.node, client: opts.self.client, role: opts.self.role ?? (opts.self.node ? 'peer' : 'client') };
    this.addresses = opts.addresses;
    this.isMember = opts.isMember ?? ((n) => this.addresses(n) !== undefined);
    this.listenAt = opts.listen;
    this.security = opts.security ?? { mode: 'plaintext', cluster: '' };
    this.tuning = { ...DEFAULT_TUNING, ...opts.tuning };
    this.maxFrameBytes = opts.maxFrameBytes ?? this.tuning.maxFrameBytes;
    this.maxSendBytes = this.self.node ? this.maxFrameBytes : Math.min(this.maxFrameBytes, this.tuning.maxClientFrameBytes);
    this.log = opts.log ?? (() => {});
    this.debug = opts.debug ?? (() => {});
    this.maxQueued = opts.maxQueuedPerDestination ?? 10000;
    this.reconnectMinMs = opts.reconnectMinMs ?? 50;
    this.reconnectMaxMs = opts.reconnectMaxMs ?? 1000;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 3000;
    this.helloTimeoutMs = opts.helloTimeoutMs ?? this.tuning.helloTimeoutMs;
    this.gate = new InboundGate({
      self: this.self,
      security: this.security,
      tuning: this.tuning,
      maxFrameBytes: this.maxFrameBytes,
      helloTimeoutMs: this.helloTimeoutMs,
      isMember: this.isMember,
      counters: this.counters,
      log: this.log,
      debug: this.debug,
      onAnswered: opts.onAnswered,
      closing: () => this.closing !== null,
      newConn: (socket, label) => this.newConn(socket, true, label),
      wire: (conn, onClose) => this.wire(conn, onClose),
      deliver: (env) => this.deliver(env),
      drained: (conn) => {
        this.flushConn(conn);
        for (const k of conn.keys) {
          const peer = k.startsWith('n:') ? this.peers.get(Number(k.slice(2))) : undefined;
          if (peer) this.flushPeer(peer);
        }
      },
      schedule: (conn) => {
        this.dirtyConns.add(conn);
        if (!this.flushTimer) this.flushTimer = setImmediate(() => this.flush());
      },
      reject: (conn, what) => this.reject(conn, what),
    });
  }

  /** Starts listening when configured; resolves once the port is bound. */
  async start(): Promise<void> {
    if (!this.listenAt || this.server || this.closing) return;
    if (this.security.mode === 'plaintext' && !isLoopback(this.listenAt.host)) {
      throw new Error(`plaintext is only allowed on loopback, and ${this.listenAt.host} is not: use TLS (certificates from shardbank init)`);
    }
    const server = this.security.mode === 'tls' ? this.tlsServer(this.security.credentials) : net.createServer((raw) => this.gate.admitRaw(raw) && this.gate.accept(raw, null));
    const t = this.tuning;
    server.maxConnections = t.maxPeerConnections + t.maxClientConnections + t.maxAdminConnections + t.maxPendingConnections;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.listenAt!.port, this.listenAt!.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.log(`listener error on ${this.where()}: ${describe(err)}`));
    this.server = server;
  }

  private tlsServer(credentials: Extract<Security, { mode: 'tls' }>['credentials']): net.Server {
    const server = tls.createServer(serverOptions(credentials));
    // 'connection' sees the raw socket first: it takes a pending place and starts the deadline.
    server.on('connection', (raw: net.Socket) => this.gate.admitRaw(raw));
    server.on('secureConnection', (socket: tls.TLSSocket) => {
      const p = principalOf(socket.getPeerCertificate().subject, this.security.cluster);
      this.gate.accept(socket, p);
    });
    server.on('tlsClientError', (err, socket) => {
      this.counters.refused++;
      this.debug(`TLS handshake with ${socket.remoteAddress}:${socket.remotePort} failed: ${describe(err)}`);
    });
    return server;
  }

  /** Where the server listens (the real port when 0 was asked for). */
  address(): HostPort | undefined {
    const a = this.server?.address();
    if (!a || typeof a === 'string') return undefined;
    return { host: a.address, port: a.port };
  }

  get stats(): Readonly<TcpTransportStats> {
    let inflight = 0;
    for (const c of this.conns) inflight += c.inflight?.size ?? 0;
    return {
      ...this.counters,
      connections: {
        pending: this.gate.pending,
        peer: this.gate.count('peer'),
        client: this.gate.count('client'),
        admin: this.gate.count('admin'),
      },
      inflight,
    };
  }

  /** Why the last connection to a node failed or was refused, if it did. */
  problem(node: number): string | undefined {
    return this.problems.get(node);
  }

  onEnvelope(handler: EnvelopeHandler): void {
    this.handler = handler;
  }

  send(env: EnvelopeProps): void {
    if (this.closing) return;
    if (env.toClient) {
      const conn = this.gate.replyConn(env);
      if (!conn) {
        // Nobody to answer: clients retry, so the reply is simply lost.
        this.counters.dropped++;
        return;
      }
      this.gate.answered(conn, env);
      conn.out.push(env);
      this.dirtyConns.add(conn);
    } else if (env.to) {
      if (env.to === this.self.node) {
        this.loopback.push(env);
      } else if (this.peers.has(env.to) || this.addresses(env.to)) {
        const peer = this.peer(env.to);
        peer.queue.push(env);
        this.dirtyPeers.add(peer);
      } else {
        const conn = this.gate.nodeConn(env.to);
        if (!conn) {
          this.counters.dropped++;
          return;
        }
        conn.out.push(env);
        this.dirtyConns.add(conn);
      }
    } else {
      this.counters.dropped++;
      this.debug('dropping an envelope with neither to nor toClient');
      return;
    }
    if (!this.flushTimer) {
      this.flushTimer = setImmediate(() => {
        this.flushTimer = null;
        this.flush();
      });
    }
  }

  flush(): void {
    if (this.closing) return;
    if (this.flushTimer) {
      clearImmediate(this.flushTimer);
      this.flushTimer = null;
    }
    for (const peer of this.dirtyPeers) this.flushPeer(peer);
    this.dirtyPeers.clear();
    for (const conn of this.dirtyConns) this.flushConn(conn);
    this.dirtyConns.clear();
    if (this.loopback.length > 0 && !this.loopbackTimer) {
      // Delivered on a later turn so a handler that sends to its own node is
      // never re-entered from inside its own flush().
      this.loopbackTimer = setImmediate(() => {
        this.loopbackTimer = null;
        const envs = this.loopback;
        this.loopback = [];
        // A copy through the codec, so sender and receiver never share objects,
        // exactly as over the wire.
        let copies: EnvelopeProps[];
        try {
          copies = decodeFrame(encodeFrame(envs).subarray(FRAME_HEADER_BYTES));
        } catch (err) {
          this.counters.dropped += envs.length;
          this.log(`dropping ${envs.length} unencodable envelope(s) to self: ${err instanceof Error ? err.message : String(err)}`);
          return;
        }
        for (const env of copies) this.deliver(env);
      });
    }
  }

  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.flush();
    this.closing = this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    if (this.flushTimer) clearImmediate(this.flushTimer);
    if (this.loopbackTimer) clearImmediate(this.loopbackTimer);
    this.flushTimer = null;
    this.loopbackTimer = null;
    for (const peer of this.peers.values()) {
      if (peer.timer) clearTimeout(peer.timer);
      peer.timer = null;
      peer.queue.clear();
    }
    this.gate.closeAll();
    this.loopback = [];
    const server = this.server;
    const serverClosed = server ? new Promise<void>((resolve) => server.close(() => resolve())) : Promise.resolve();
    const waits: Promise<void>[] = [];
    for (const conn of this.conns) {
      waits.push(conn.closed);
      if (conn.socket.connecting || conn.dead) conn.socket.destroy();
      else conn.socket.end();
    }
    // A peer that never answers our FIN must not hold close() up.
    const force = setTimeout(() => {
      for (const conn of this.conns) conn.socket.destroy();
    }, 250);
    await Promise.all([serverClosed, ...waits]);
    clearTimeout(force);
  }

  private where(): string {
    return this.listenAt ? `${this.listenAt.host}:${this.listenAt.port}` : 'client';
  }

  private newConn(socket: net.Socket, inbound: boolean, label: string): Conn {
    return new Conn(socket, inbound, label, this.maxFrameBytes, this.tuning.maxEnvelopesPerFrame, this.maxQueued, () => this.counters.dropped++);
  }

  private peer(node: number): Peer {
    let peer = this.peers.get(node);
    if (!peer) {
      peer = {
        node,
        state: 'idle',
        conn: null,
        queue: new BoundedQueue(this.maxQueued, () => this.counters.dropped++),
        backoffMs: this.reconnectMinMs,
        timer: null,
      };
      this.peers.set(node, peer);
    }
    return peer;
  }

  private flushPeer(peer: Peer): void {
    if (this.closing || peer.queue.size === 0) return;
    if (peer.state === 'open' && peer.conn) {
      // While the socket is backed up, envelopes wait in the bounded queue
      // and 'drain' flushes them.
      if (!peer.conn.socket.writableNeedDrain) this.write(peer.conn, peer.queue.take());
      return;
    }
    // No outbound connection yet: the peer's own connection to us, if it has
    // one, is a working path too (it reads every socket it holds).
    const back = this.gate.nodeConn(peer.node);
    if (back && !back.socket.writableNeedDrain) this.write(back, peer.queue.take());
    // Otherwise they wait for 'connect'.
    if (peer.state === 'idle') this.connect(peer);
  }

  private flushConn(conn: Conn): void {
    if (conn.dead) {
      this.counters.dropped += conn.out.clear();
      return;
    }
    if (conn.out.size === 0 || conn.socket.writableNeedDrain) return;
    this.write(conn, conn.out.take());
    this.gate.throttle(conn);
  }

  /** Writes envelopes as few frames as the frame limits (bytes and envelopes) allow. */
  private write(conn: Conn, envs: EnvelopeProps[]): void {
    if (envs.length === 0 || conn.dead) return;
    const frames: Uint8Array[] = [];
    const per = this.tuning.maxEnvelopesPerFrame;
    for (let i = 0; i < envs.length; i += per) this.encodeInto(conn, envs.length <= per ? envs : envs.slice(i, i + per), frames);
    if (frames.length === 0) return;
    conn.lastActive = Date.now();
    if (frames.length > 1) conn.socket.cork();
    for (const f of frames) conn.socket.write(f);
    if (frames.length > 1) conn.socket.uncork();
  }

  private encodeInto(conn: Conn, envs: EnvelopeProps[], out: Uint8Array[]): void {
    let bytes: Uint8Array;
    try {
      bytes = encodeFrame(envs);
    } catch (err) {
      // One malformed envelope must not sink the rest of the batch: halve
      // until it is found, and drop only that one.
      if (envs.length === 1) {
        this.counters.dropped++;
        this.log(`dropping an unencodable envelope to ${conn.label}: ${err instanceof Error ? err.message : String(err)}`);
        return;
      }
      const half = envs.length >> 1;
      this.encodeInto(conn, envs.slice(0, half), out);
      this.encodeInto(conn, envs.slice(half), out);
      return;
    }
    if (bytes.length - FRAME_HEADER_BYTES <= this.maxSendBytes) {
      out.push(bytes);
      this.counters.framesSent++;
      this.counters.envelopesSent += envs.length;
      return;
    }
    if (envs.length === 1) {
      this.counters.dropped++;
      this.log(
        `dropping an envelope to ${conn.label}: ${bytes.length - FRAME_HEADER_BYTES} bytes exceeds the frame limit of ${this.maxSendBytes} bytes`,
      );
      return;
    }
    const half = envs.length >> 1;
    this.encodeInto(conn, envs.slice(0, half), out);
    this.encodeInto(conn, envs.slice(half), out);
  }

  // ------------------------------------------------------------ outbound

  private connect(peer: Peer): void {
    const addr = this.addresses(peer.node);
    if (!addr) {
      this.counters.dropped += peer.queue.clear();
      this.debug(`no address for n${peer.node}`);
      return;
    }
    if (this.security.mode === 'plaintext' && !isLoopback(addr.host)) {
      this.counters.dropped += peer.queue.clear();
      this.problems.set(peer.node, `plaintext is only allowed on loopback, and n${peer.node} is at ${addr.host}`);
      this.log(this.problems.get(peer.node)!);
      return;
    }
    const security = this.security;
    const socket =
      security.mode === 'tls'
        ? tls.connect({ host: addr.host, port: addr.port, ...clientOptions(security.credentials, security.cluster, peer.node) })
        : net.connect({ host: addr.host, port: addr.port });
    const conn = this.newConn(socket, false, `n${peer.node} (${addr.host}:${addr.port})`);
    conn.dialed = peer.node;
    peer.state = 'connecting';
    peer.conn = conn;
    socket.setTimeout(this.connectTimeoutMs, () => socket.destroy(new Error(`connect timed out after ${this.connectTimeoutMs} ms`)));
    socket.once(security.mode === 'tls' ? 'secureConnect' : 'connect', () => {
      socket.setTimeout(0);
      socket.setKeepAlive(true, 10000);
      if (this.closing || peer.conn !== conn) return;
      peer.state = 'open';
      peer.backoffMs = this.reconnectMinMs;
      const hello = { node: this.self.node ?? 0, client: this.self.client ?? '', cluster: security.cluster, role: this.self.role };
      socket.write(encodeFrame([{ from: this.self.node ?? 0, hello }]));
      this.flushPeer(peer);
    });
    socket.on('drain', () => this.flushPeer(peer));
    socket.on('error', (err) => {
      conn.failedBecause = `${conn.label}: ${describe(err)}`;
      this.problems.set(peer.node, conn.failedBecause);
    });
    this.wire(conn, () => {
      if (!conn.answered && !conn.failedBecause && !this.closing) {
        this.problems.set(peer.node, `${conn.label}: closed before the node answered our hello (a node of another cluster or authority, or TLS on one side only?)`);
      }
      if (peer.conn !== conn) return;
      peer.conn = null;
      peer.state = 'idle';
      this.retryLater(peer);
    });
  }

  private retryLater(peer: Peer): void {
    if (this.closing || peer.timer) return;
    const delay = peer.backoffMs;
    peer.backoffMs = Math.min(peer.backoffMs * 2, this.reconnectMaxMs);
    peer.state = 'waiting';
    this.debug(`n${peer.node}: reconnecting in ${delay} ms`);
    peer.timer = setTimeout(() => {
      peer.timer = null;
      peer.state = 'idle';
      // Only reconnect when there is something to say; otherwise the next send does it.
      if (peer.queue.size > 0) this.connect(peer);
    }, delay);
  }

  /** The node's answering hello: it must be the node dialed, of this cluster. */
  private checkAnswer(conn: Conn, hello: NonNullable<EnvelopeProps['hello']>): boolean {
    const cluster = hello.cluster ?? '';
    if (cluster !== this.security.cluster) {
      this.refuseDialed(conn, `${conn.label} belongs to cluster "${cluster}", not to this one ("${this.security.cluster}")`);
      return false;
    }
    if ((hello.node ?? 0) !== conn.dialed) {
      this.refuseDialed(conn, `${conn.label} answers as n${hello.node ?? 0}`);
      return false;
    }
    conn.answered = true;
    this.problems.delete(conn.dialed);
    return true;
  }

  private refuseDialed(conn: Conn, why: string): void {
    conn.failedBecause = why;
    this.problems.set(conn.dialed, why);
    this.counters.violations++;
    this.log(`closing the connection to ${conn.label}: ${why}`);
    conn.dead = true;
    conn.socket.destroy();
  }

  /** What every socket shares: decoding, delivery, error handling, cleanup. */
  private wire(conn: Conn, onClose: () => void): void {
    const { socket } = conn;
    socket.setNoDelay(true);
    this.conns.add(conn);
    socket.on('data', (chunk: Buffer) => this.onData(conn, chunk));
    socket.on('error', (err) => this.debug(`connection ${conn.label}: ${describe(err)}`));
    socket.on('close', () => {
      conn.dead = true;
      this.conns.delete(conn);
      this.gate.unroute(conn);
      onClose();
    });
  }

  private onData(conn: Conn, chunk: Buffer): void {
    if (conn.dead || this.closing) return;
    conn.lastActive = Date.now();
    let envs: EnvelopeProps[];
    let failure: string | null = null;
    try {
      envs = conn.decoder.push(chunk);
    } catch (err) {
      // The frames before the bad one were sound: act on them (a hello among
      // them names the peer in the log line) and only then drop the connection.
      envs = err instanceof FrameError ? err.decodedBefore : [];
      failure = err instanceof Error ? err.message : String(err);
    }
    if (conn.inbound) this.gate.dispatch(conn, envs);
    else this.dispatchOutbound(conn, envs);
    if (failure !== null && !conn.dead) this.reject(conn, failure);
    // Answers the transport gave itself (overloaded) leave with each chunk, not after the whole burst.
    if (conn.inbound && conn.out.size > 0 && !conn.dead) {
      this.flushConn(conn);
      this.dirtyConns.delete(conn);
    }
  }

  private dispatchOutbound(conn: Conn, envs: EnvelopeProps[]): void {
    for (const env of envs) {
      if (conn.dead) return;
      if (env.hello) {
        if (!this.checkAnswer(conn, env.hello)) return;
        continue;
      }
      const why = refusalFromDialed(conn.dialed, env);
      if (why) {
        this.refuseDialed(conn, why);
        return;
      }
      this.counters.envelopesReceived++;
      this.deliver(env);
    }
  }

  private reject(conn: Conn, what: string): void {
    this.counters.frameErrors++;
    this.log(`frame error from ${conn.label}: ${what}`);
    conn.dead = true;
    conn.socket.destroy();
  }

  private deliver(env: EnvelopeProps): void {
    const handler = this.handler;
    if (!handler) {
      this.counters.dropped++;
      return;
    }
    try {
      handler(env);
    } catch (err) {
      this.log(`envelope handler failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    }
  }
}
