/**
 * The transport between real processes: length-prefixed protobuf frames over
 * TCP. Nodes listen; clients and admin tools only connect. Every connection
 * opens with a `hello` naming its opener, which is how a node knows which
 * socket leads back to a client.
 */
import net from 'node:net';
import { decodeFrame, encodeFrame, FRAME_HEADER_BYTES, FrameDecoder, FrameError } from './codec.js';
import type { EnvelopeProps } from './messages.js';
import { DEFAULT_TUNING } from './topology.js';
import type { EnvelopeHandler, Transport, TransportLogger } from './transport.js';

export interface HostPort {
  host: string;
  port: number;
}

export interface TcpTransportOptions {
  /** Who this transport speaks for: a node id, or a client name. */
  self: { node?: number; client?: string };
  /** Where a node listens; undefined for nodes reachable only over their own inbound connection. */
  addresses: (node: number) => HostPort | undefined;
  /** Set for nodes, which accept connections; clients leave it out. */
  listen?: HostPort;
  /** Largest frame payload accepted or sent, in bytes. */
  maxFrameBytes?: number;
  /** Problems worth a line in the log: garbled frames, dropped oversize envelopes. */
  log?: TransportLogger;
  /** Routine connection churn (refused, reset, reconnecting): quiet unless asked for. */
  debug?: TransportLogger;
  /** Envelopes kept per destination while it cannot be written to; the oldest go first. */
  maxQueuedPerDestination?: number;
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
  connectTimeoutMs?: number;
  /** An inbound connection that has not said hello by then is closed. */
  helloTimeoutMs?: number;
  maxInboundConnections?: number;
}

export interface TcpTransportStats {
  framesSent: number;
  envelopesSent: number;
  envelopesReceived: number;
  /** Envelopes given up: queue overflow, no route, too large for one frame. */
  dropped: number;
  frameErrors: number;
}

/** Keeps at most `max` items; pushing beyond that forgets the oldest. */
class BoundedQueue<T> {
  private items: (T | undefined)[] = [];
  private head = 0;

  constructor(private readonly max: number, private readonly onDrop: () => void) {}

  get size(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    this.items.push(item);
    if (this.size > this.max) {
      this.items[this.head++] = undefined;
      this.onDrop();
      if (this.head >= 1024 && this.head * 2 >= this.items.length) {
        this.items = this.items.slice(this.head);
        this.head = 0;
      }
    }
  }

  take(): T[] {
    const out = (this.head === 0 ? this.items : this.items.slice(this.head)) as T[];
    this.items = [];
    this.head = 0;
    return out;
  }

  clear(): number {
    const n = this.size;
    this.items = [];
    this.head = 0;
    return n;
  }
}

class Conn {
  readonly decoder: FrameDecoder;
  readonly closed: Promise<void>;
  helloSeen = false;
  dead = false;
  /** Route keys (`n:4`, `c:alice`) that currently lead to this socket. */
  readonly keys = new Set<string>();

  constructor(
    readonly socket: net.Socket,
    readonly inbound: boolean,
    public label: string,
    maxFrameBytes: number,
  ) {
    this.decoder = new FrameDecoder(maxFrameBytes);
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
  }
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
const clientKey = (client: string) => `c:${client}`;

function describe(err: unknown): string {
  if (err instanceof Error) return (err as NodeJS.ErrnoException).code ?? err.message;
  return String(err);
}

export class TcpTransport implements Transport {
  private readonly self: { node?: number; client?: string };
  private readonly addresses: (node: number) => HostPort | undefined;
  private readonly listenAt: HostPort | undefined;
  private readonly maxFrameBytes: number;
  private readonly log: TransportLogger;
  private readonly debug: TransportLogger;
  private readonly maxQueued: number;
  private readonly reconnectMinMs: number;
  private readonly reconnectMaxMs: number;
  private readonly connectTimeoutMs: number;
  private readonly helloTimeoutMs: number;
  private readonly maxInbound: number;

  private handler: EnvelopeHandler | null = null;
  private server: net.Server | null = null;
  private readonly conns = new Set<Conn>();
  private readonly peers = new Map<number, Peer>();
  /** Destinations reached over their inbound connection: clients, and nodes without an address. */
  private readonly routes = new Map<string, BoundedQueue<EnvelopeProps>>();
  private readonly inbound = new Map<string, Conn>();
  private readonly dirtyPeers = new Set<Peer>();
  private readonly dirtyRoutes = new Set<string>();
  private loopback: EnvelopeProps[] = [];
  private flushTimer: NodeJS.Immediate | null = null;
  private loopbackTimer: NodeJS.Immediate | null = null;
  private closing: Promise<void> | null = null;
  private readonly counters: TcpTransportStats = {
    framesSent: 0,
    envelopesSent: 0,
    envelopesReceived: 0,
    dropped: 0,
    frameErrors: 0,
  };

  constructor(opts: TcpTransportOptions) {
    if (!opts.self.node && !opts.self.client) throw new Error('TcpTransport needs self.node or self.client');
    this.self = { ...opts.self };
    this.addresses = opts.addresses;
    this.listenAt = opts.listen;
    this.maxFrameBytes = opts.maxFrameBytes ?? DEFAULT_TUNING.maxFrameBytes;
    this.log = opts.log ?? (() => {});
    this.debug = opts.debug ?? (() => {});
    this.maxQueued = opts.maxQueuedPerDestination ?? 10000;
    this.reconnectMinMs = opts.reconnectMinMs ?? 50;
    this.reconnectMaxMs = opts.reconnectMaxMs ?? 1000;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 3000;
    this.helloTimeoutMs = opts.helloTimeoutMs ?? 10000;
    this.maxInbound = opts.maxInboundConnections ?? 4096;
  }

  /** Starts listening when configured; resolves once the port is bound. */
  async start(): Promise<void> {
    if (!this.listenAt || this.server || this.closing) return;
    const server = net.createServer((socket) => this.accept(socket));
    server.maxConnections = this.maxInbound;
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

  /** Where the server listens (the real port when 0 was asked for). */
  address(): HostPort | undefined {
    const a = this.server?.address();
    if (!a || typeof a === 'string') return undefined;
    return { host: a.address, port: a.port };
  }

  get stats(): Readonly<TcpTransportStats> {
    return { ...this.counters };
  }

  onEnvelope(handler: EnvelopeHandler): void {
    this.handler = handler;
  }

  send(env: EnvelopeProps): void {
    if (this.closing) return;
    if (env.toClient) {
      this.routeQueue(clientKey(env.toClient)).push(env);
      this.dirtyRoutes.add(clientKey(env.toClient));
    } else if (env.to) {
      if (env.to === this.self.node) {
        this.loopback.push(env);
      } else if (this.peers.has(env.to) || this.addresses(env.to)) {
        const peer = this.peer(env.to);
        peer.queue.push(env);
        this.dirtyPeers.add(peer);
      } else {
        this.routeQueue(nodeKey(env.to)).push(env);
        this.dirtyRoutes.add(nodeKey(env.to));
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
    for (const key of this.dirtyRoutes) this.flushRoute(key);
    this.dirtyRoutes.clear();
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
    this.routes.clear();
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

  private routeQueue(key: string): BoundedQueue<EnvelopeProps> {
    let q = this.routes.get(key);
    if (!q) {
      q = new BoundedQueue(this.maxQueued, () => this.counters.dropped++);
      this.routes.set(key, q);
    }
    return q;
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

  private flushRoute(key: string): void {
    const q = this.routes.get(key);
    if (!q || q.size === 0) return;
    const conn = this.inbound.get(key);
    if (!conn || conn.dead) {
      // Nobody to answer: clients retry, so the reply is simply lost.
      this.counters.dropped += q.clear();
      this.routes.delete(key);
      return;
    }
    if (conn.socket.writableNeedDrain) return;
    this.write(conn, q.take());
    this.routes.delete(key);
  }

  /** Writes envelopes as few frames as the frame limit allows. */
  private write(conn: Conn, envs: EnvelopeProps[]): void {
    if (envs.length === 0 || conn.dead) return;
    const frames: Uint8Array[] = [];
    this.encodeInto(conn, envs, frames);
    if (frames.length === 0) return;
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
    if (bytes.length - FRAME_HEADER_BYTES <= this.maxFrameBytes) {
      out.push(bytes);
      this.counters.framesSent++;
      this.counters.envelopesSent += envs.length;
      return;
    }
    if (envs.length === 1) {
      this.counters.dropped++;
      this.log(
        `dropping an envelope to ${conn.label}: ${bytes.length - FRAME_HEADER_BYTES} bytes exceeds the frame limit of ${this.maxFrameBytes} bytes`,
      );
      return;
    }
    const half = envs.length >> 1;
    this.encodeInto(conn, envs.slice(0, half), out);
    this.encodeInto(conn, envs.slice(half), out);
  }

  private connect(peer: Peer): void {
    const addr = this.addresses(peer.node);
    if (!addr) {
      this.counters.dropped += peer.queue.clear();
      this.debug(`no address for n${peer.node}`);
      return;
    }
    const socket = net.connect({ host: addr.host, port: addr.port });
    const conn = new Conn(socket, false, `n${peer.node} (${addr.host}:${addr.port})`, this.maxFrameBytes);
    peer.state = 'connecting';
    peer.conn = conn;
    socket.setTimeout(this.connectTimeoutMs, () => socket.destroy(new Error(`connect timed out after ${this.connectTimeoutMs} ms`)));
    socket.once('connect', () => {
      socket.setTimeout(0);
      socket.setKeepAlive(true, 10000);
      if (this.closing || peer.conn !== conn) return;
      peer.state = 'open';
      peer.backoffMs = this.reconnectMinMs;
      socket.write(encodeFrame([{ from: this.self.node ?? 0, hello: { node: this.self.node ?? 0, client: this.self.client ?? '' } }]));
      this.flushPeer(peer);
    });
    socket.on('drain', () => this.flushPeer(peer));
    this.wire(conn, () => {
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

  private accept(socket: net.Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    const conn = new Conn(socket, true, `${socket.remoteAddress}:${socket.remotePort}`, this.maxFrameBytes);
    socket.setKeepAlive(true, 10000);
    socket.setTimeout(this.helloTimeoutMs, () => {
      if (!conn.helloSeen) {
        this.debug(`${conn.label}: no hello within ${this.helloTimeoutMs} ms`);
        socket.destroy();
      }
    });
    socket.on('drain', () => {
      for (const key of conn.keys) {
        this.flushRoute(key);
        const peer = key.startsWith('n:') ? this.peers.get(Number(key.slice(2))) : undefined;
        if (peer) this.flushPeer(peer);
      }
    });
    this.wire(conn, () => {});
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
    this.dispatch(conn, envs);
    if (failure !== null && !conn.dead) this.reject(conn, failure);
  }

  private dispatch(conn: Conn, envs: EnvelopeProps[]): void {
    for (const env of envs) {
      if (conn.dead) return;
      const hello = env.hello;
      if (hello) {
        if (!this.register(conn, hello)) return;
        continue;
      }
      if (conn.inbound && !conn.helloSeen) {
        this.reject(conn, 'connection did not open with a hello');
        return;
      }
      this.counters.envelopesReceived++;
      this.deliver(env);
    }
  }

  private register(conn: Conn, hello: NonNullable<EnvelopeProps['hello']>): boolean {
    // A hello on a connection we opened says nothing we act on.
    if (!conn.inbound) return true;
    const node = hello.node ?? 0;
    const client = hello.client ?? '';
    if (!node && !client) {
      this.reject(conn, 'hello names neither a node nor a client');
      return false;
    }
    const addr = `${conn.socket.remoteAddress}:${conn.socket.remotePort}`;
    conn.helloSeen = true;
    conn.socket.setTimeout(0);
    const key = node ? nodeKey(node) : clientKey(client);
    conn.label = node ? `n${node} (${addr})` : `client ${client} (${addr})`;
    // The latest connection from a peer wins: an older one is from before a restart.
    const previous = this.inbound.get(key);
    if (previous && previous !== conn) previous.keys.delete(key);
    this.inbound.set(key, conn);
    conn.keys.add(key);
    return true;
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
