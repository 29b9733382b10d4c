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
 */
import net from 'node:net';
import tls from 'node:tls';
import { Admission } from './admission.js';
import { identityOf, owns, refusal, refusalFromDialed } from './auth.js';
import { BoundedQueue } from './boundedQueue.js';
import { decodeFrame, encodeFrame, FRAME_HEADER_BYTES, FrameDecoder, FrameError } from './codec.js';
import { InflightRequests } from './inflight.js';
import { shardbank, type EnvelopeProps } from './messages.js';
import { clientOptions, IDENTITY_PATTERN, isLoopback, principalOf, serverOptions, type Principal, type Role, type Security } from './tls.js';
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

/** What a connection may send before it is admitted: its hello, nothing large. */
const FIRST_FRAME_BYTES = 4096;

let nextConnId = 1;

class Conn {
  readonly id = nextConnId++;
  readonly decoder: FrameDecoder;
  readonly closed: Promise<void>;
  readonly out: BoundedQueue<EnvelopeProps>;
  /** Inbound over TLS: who the certificate says is on the other end. */
  certified: Principal | null = null;
  /** Inbound: who the connection was admitted as (after its hello). */
  principal: Principal | null = null;
  /** Outbound: the node this connection was opened to. */
  dialed = 0;
  /** Outbound: the node answered our hello as the node we meant, of our cluster. */
  answered = false;
  /** Outbound: why this connection failed, once known. */
  failedBecause: string | null = null;
  helloSeen = false;
  dead = false;
  lastActive = Date.now();
  /** Route keys (`n:4`, `client:alice`) that currently lead to this socket. */
  readonly keys = new Set<string>();
  /** Client names whose replies go here (they last sent from here). */
  readonly clients = new Set<string>();
  inflight: InflightRequests | null = null;
  /** Inbound: the deadline timer and pending count that end with the hello. */
  gate: Gate | null = null;

  constructor(
    readonly socket: net.Socket,
    readonly inbound: boolean,
    public label: string,
    maxFrameBytes: number,
    maxEnvelopes: number,
    maxQueued: number,
    onDrop: () => void,
  ) {
    this.decoder = new FrameDecoder(maxFrameBytes, maxEnvelopes, inbound ? FIRST_FRAME_BYTES : undefined);
    this.out = new BoundedQueue(maxQueued, onDrop);
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
  }

  get role(): Role {
    return this.principal?.role ?? 'client';
  }

  get identity(): string {
    return this.principal?.name ?? '';
  }
}

/** A raw inbound connection until its hello: it holds a place among the pending ones and has a hard deadline. */
interface Gate {
  raw: net.Socket;
  timer: NodeJS.Timeout;
  conn: Conn | null;
  open: boolean;
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

const nodeKey = (node: number) => `n:${node}`;
const roleKey = (role: Role, name: string) => `${role}:${name}`;
const addrKey = (s: net.Socket) => `${s.remoteAddress}:${s.remotePort}`;

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as NodeJS.ErrnoException).code;
  // TLS failures say what went wrong only in their message.
  if (code && (code.startsWith('ERR_TLS') || code.startsWith('ERR_SSL') || /CERT|SIGNATURE|VERIFY/.test(code))) {
    return `${code}: ${err.message.split('\n')[0]!.replace(/^[0-9A-F]+:error:[0-9A-F]+:SSL routines:/, '').trim()}`;
  }
  return code ?? err.message;
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
  private readonly onAnswered: ((ms: number) => void) | undefined;
  private readonly admission: Admission<Conn>;

  private handler: EnvelopeHandler | null = null;
  private server: net.Server | null = null;
  private readonly conns = new Set<Conn>();
  private readonly peers = new Map<number, Peer>();
  /** The latest admitted inbound connection of each node and client identity. */
  private readonly inbound = new Map<string, Conn>();
  /** Client name -> the connection it last sent from, where its replies go. */
  private readonly owners = new Map<string, Conn>();
  private readonly gates = new Map<string, Gate>();
  private pending = 0;
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
    this.onAnswered = opts.onAnswered;
    const t = this.tuning;
    this.admission = new Admission<Conn>({
      perRole: { peer: t.maxPeerConnections, client: t.maxClientConnections, admin: t.maxAdminConnections },
      perIdentity: t.maxConnectionsPerIdentity,
    });
  }

  /** Starts listening when configured; resolves once the port is bound. */
  async start(): Promise<void> {
    if (!this.listenAt || this.server || this.closing) return;
    if (this.security.mode === 'plaintext' && !isLoopback(this.listenAt.host)) {
      throw new Error(`plaintext is only allowed on loopback, and ${this.listenAt.host} is not: use TLS (certificates from shardbank init)`);
    }
    const server = this.security.mode === 'tls' ? this.tlsServer(this.security.credentials) : net.createServer((raw) => this.admitRaw(raw) && this.accept(raw, null));
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
    server.on('connection', (raw: net.Socket) => this.admitRaw(raw));
    server.on('secureConnection', (socket: tls.TLSSocket) => {
      const p = principalOf(socket.getPeerCertificate().subject, this.security.cluster);
      this.accept(socket, p);
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
        pending: this.pending,
        peer: this.admission.count('peer'),
        client: this.admission.count('client'),
        admin: this.admission.count('admin'),
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
      const conn = this.replyConn(env);
      if (!conn) {
        // Nobody to answer: clients retry, so the reply is simply lost.
        this.counters.dropped++;
        return;
      }
      this.answered(conn, env);
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
        const conn = this.inbound.get(nodeKey(env.to));
        if (!conn || conn.dead) {
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

  /**
   * Where a reply goes: the connection its client last sent from, if that
   * connection's identity owns the client; else the latest connection of the
   * identity the reply is addressed to. Never to anyone else.
   */
  private replyConn(env: EnvelopeProps): Conn | undefined {
    const to = env.toClient!;
    const role: Role = env.adminReply ? 'admin' : 'client';
    const name = env.reply?.client || to;
    const owner = this.owners.get(name);
    if (owner && !owner.dead && owner.principal?.role === role && owns(owner.principal.name, name) && owner.principal.name === identityOf(to)) return owner;
    const conn = this.inbound.get(roleKey(role, identityOf(to)));
    return conn && !conn.dead ? conn : undefined;
  }

  private answered(conn: Conn, env: EnvelopeProps): void {
    const r = env.reply;
    if (!r || !conn.inflight) return;
    const waited = conn.inflight.answer(`${r.client ?? ''}:${r.timestamp ?? 0}`, Date.now());
    if (waited !== undefined) this.onAnswered?.(waited);
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
    for (const gate of this.gates.values()) {
      clearTimeout(gate.timer);
      gate.raw.destroy();
    }
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
    const back = this.inbound.get(nodeKey(peer.node));
    if (back && !back.dead && !back.socket.writableNeedDrain) this.write(back, peer.queue.take());
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
    this.throttle(conn);
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

  // ------------------------------------------------------------- inbound

  /** A raw inbound connection takes a pending place, or is refused; its deadline starts now. */
  private admitRaw(raw: net.Socket): boolean {
    if (this.closing || this.pending >= this.tuning.maxPendingConnections) {
      this.counters.refused++;
      this.debug(`refusing ${addrKey(raw)}: ${this.pending} connections are already waiting for their hello`);
      raw.destroy();
      return false;
    }
    this.pending++;
    const key = addrKey(raw);
    const gate: Gate = {
      raw,
      conn: null,
      open: true,
      timer: setTimeout(() => {
        if (!gate.open) return;
        this.counters.refused++;
        this.log(`closing ${gate.conn?.label ?? key}: no handshake and hello within ${this.helloTimeoutMs} ms`);
        gate.conn?.socket.destroy();
        raw.destroy();
      }, this.helloTimeoutMs),
    };
    this.gates.set(key, gate);
    raw.once('close', () => this.closeGate(gate, key));
    raw.on('error', () => {});
    return true;
  }

  private closeGate(gate: Gate, key: string): void {
    if (!gate.open) return;
    gate.open = false;
    this.pending--;
    clearTimeout(gate.timer);
    if (this.gates.get(key) === gate) this.gates.delete(key);
  }

  /** A connection whose handshake is done (TLS: `certified` from its certificate, or why it has none). */
  private accept(socket: net.Socket, certified: Principal | string | null): boolean {
    if (this.closing) {
      socket.destroy();
      return false;
    }
    const key = addrKey(socket);
    const conn = this.newConn(socket, true, key);
    const gate = this.gates.get(key);
    if (gate) {
      conn.gate = gate;
      gate.conn = conn;
    }
    socket.setKeepAlive(true, 10000);
    socket.on('drain', () => {
      this.flushConn(conn);
      for (const k of conn.keys) {
        const peer = k.startsWith('n:') ? this.peers.get(Number(k.slice(2))) : undefined;
        if (peer) this.flushPeer(peer);
      }
    });
    this.wire(conn, () => this.forget(conn));
    if (typeof certified === 'string') {
      this.refuse(conn, certified);
      return false;
    }
    if (certified) {
      conn.certified = certified;
      conn.label = `${certified.role} ${certified.name} (${key})`;
      // What a role may send, in bytes, is known from the certificate before the first frame.
      conn.decoder.limit(certified.role === 'peer' ? this.maxFrameBytes : this.tuning.maxClientFrameBytes);
    }
    return true;
  }

  /** Everything an inbound connection held, released when it closes. */
  private forget(conn: Conn): void {
    this.admission.remove(conn);
    for (const name of conn.clients) if (this.owners.get(name) === conn) this.owners.delete(name);
    conn.clients.clear();
    this.counters.dropped += conn.out.clear();
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
      for (const key of conn.keys) if (this.inbound.get(key) === conn) this.inbound.delete(key);
      conn.keys.clear();
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
    if (conn.inbound) this.dispatchInbound(conn, envs);
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

  private dispatchInbound(conn: Conn, envs: EnvelopeProps[]): void {
    for (const env of envs) {
      if (conn.dead) return;
      if (!conn.helloSeen) {
        if (!env.hello) {
          this.reject(conn, 'connection did not open with a hello');
          return;
        }
        if (!this.register(conn, env.hello)) return;
        continue;
      }
      const why = env.hello ? 'a second hello' : this.ruleBroken(conn.principal!, env);
      if (why) {
        this.violation(conn, why);
        return;
      }
      if (env.request && conn.inflight && !this.admitRequest(conn, env)) continue;
      if (env.admin) this.own(conn, env.fromClient!);
      this.counters.envelopesReceived++;
      this.deliver(env);
    }
  }

  private ruleBroken(p: Principal, env: EnvelopeProps): string | null {
    const why = refusal(p, env);
    if (why) return why;
    const to = env.to ?? 0;
    if (this.self.node && to !== this.self.node) return `an envelope for n${to} sent to n${this.self.node}`;
    return null;
  }

  /** A client request takes a place among the connection's requests in flight, or is answered `overloaded` now. */
  private admitRequest(conn: Conn, env: EnvelopeProps): boolean {
    const command = env.request!.command!;
    const client = command.client ?? '';
    this.own(conn, client);
    if (conn.inflight!.admit(`${client}:${command.timestamp ?? 0}`, Date.now())) return true;
    this.counters.overloaded++;
    conn.out.push({
      from: this.self.node ?? 0,
      toClient: identityOf(client),
      reply: { client, timestamp: command.timestamp ?? 0, status: shardbank.Status.FAILED, reason: 'overloaded' },
    });
    this.dirtyConns.add(conn);
    if (!this.flushTimer) this.flushTimer = setImmediate(() => this.flush());
    return false;
  }

  /**
   * A client connection whose replies are not being read stops being read
   * too: a flood slows the one who floods. (Peers are never paused: two
   * nodes each waiting for the other to read would wait for ever.)
   */
  private throttle(conn: Conn): void {
    if (!conn.inbound || conn.role === 'peer' || conn.dead) return;
    if (conn.socket.writableNeedDrain && !conn.socket.isPaused()) {
      conn.socket.pause();
      conn.socket.once('drain', () => conn.socket.resume());
    }
  }

  /** Replies for this client name go to this connection from now on (bounded: the oldest names are forgotten). */
  private own(conn: Conn, client: string): void {
    if (this.owners.get(client) === conn) return;
    const before = this.owners.get(client);
    if (before) before.clients.delete(client);
    this.owners.set(client, conn);
    conn.clients.add(client);
    if (conn.clients.size > this.tuning.maxInflightPerConnection) {
      const oldest = conn.clients.values().next().value as string;
      conn.clients.delete(oldest);
      if (this.owners.get(oldest) === conn) this.owners.delete(oldest);
    }
  }

  /** Who the hello says is there, checked against the certificate (TLS) or believed (plaintext). */
  private claimed(conn: Conn, hello: NonNullable<EnvelopeProps['hello']>): Principal | string {
    const node = hello.node ?? 0;
    const client = hello.client ?? '';
    if (!node && !client) return 'hello names neither a node nor a client';
    if (node && client) return 'hello names both a node and a client';
    if (conn.certified) {
      const p = conn.certified;
      if (p.role === 'peer' ? node !== p.node : client !== p.name) return `hello says ${node ? `n${node}` : client}, the certificate ${p.role} ${p.name}`;
      if (hello.role && hello.role !== p.role) return `hello claims the ${hello.role} role, the certificate ${p.role}`;
      return p;
    }
    if (this.security.mode === 'tls') return 'no certificate';
    if (node) return { role: 'peer', name: `n${node}`, node };
    if (!IDENTITY_PATTERN.test(client)) return `"${client}" is not a valid client name`;
    const role = hello.role === 'admin' ? 'admin' : hello.role === '' || hello.role === undefined || hello.role === 'client' ? 'client' : null;
    if (!role) return `hello claims the ${hello.role} role`;
    return { role, name: client, node: 0 };
  }

  private register(conn: Conn, hello: NonNullable<EnvelopeProps['hello']>): boolean {
    const cluster = hello.cluster ?? '';
    if (cluster !== this.security.cluster) {
      // Say who we are before closing, so the opener can tell its user where it went wrong.
      conn.socket.write(encodeFrame([{ from: this.self.node ?? 0, hello: { node: this.self.node ?? 0, cluster: this.security.cluster } }]));
      this.refuse(conn, `hello from cluster "${cluster}", and this is cluster "${this.security.cluster}"`);
      return false;
    }
    const p = this.claimed(conn, hello);
    if (typeof p === 'string') {
      this.refuse(conn, p);
      return false;
    }
    if (p.role === 'peer' && !this.isMember(p.node)) {
      this.refuse(conn, `${p.name} is not a node of this configuration`);
      return false;
    }
    conn.principal = p;
    conn.helloSeen = true;
    if (conn.gate) this.closeGate(conn.gate, addrKey(conn.gate.raw));
    for (const old of this.admission.admit(conn)) {
      this.counters.evicted++;
      this.debug(`closing ${old.label} to make room for ${p.role} ${p.name}`);
      old.socket.destroy();
    }
    conn.label = `${p.role} ${p.name} (${addrKey(conn.socket)})`;
    conn.decoder.limit(p.role === 'peer' ? this.maxFrameBytes : this.tuning.maxClientFrameBytes);
    conn.socket.setTimeout(this.tuning.idleTimeoutMs, () => {
      this.counters.evicted++;
      this.debug(`closing ${conn.label}: idle for ${this.tuning.idleTimeoutMs} ms`);
      conn.socket.destroy();
    });
    if (p.role === 'client') conn.inflight = new InflightRequests(this.tuning.maxInflightPerConnection, 2 * this.tuning.clientGiveUpMs);
    // The latest connection of an identity wins: an older one is from before a restart.
    const key = p.role === 'peer' ? nodeKey(p.node) : roleKey(p.role, p.name);
    const previous = this.inbound.get(key);
    if (previous && previous !== conn) previous.keys.delete(key);
    this.inbound.set(key, conn);
    conn.keys.add(key);
    conn.socket.write(encodeFrame([{ from: this.self.node ?? 0, hello: { node: this.self.node ?? 0, cluster: this.security.cluster, role: 'peer' } }]));
    return true;
  }

  /** A connection that never got in: refused before or at its hello. */
  private refuse(conn: Conn, what: string): void {
    this.counters.refused++;
    this.log(`refusing ${conn.label}: ${what}`);
    conn.dead = true;
    conn.socket.destroy();
  }

  /** An admitted connection that broke its role's rules: closed, the envelope unseen. */
  private violation(conn: Conn, what: string): void {
    this.counters.violations++;
    this.log(`closing ${conn.label}: ${what}`);
    conn.dead = true;
    conn.socket.destroy();
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
