/**
 * A node's inbound side: who gets in, and what they may say once in.
 *
 * A raw connection takes one of `maxPendingConnections` places and has
 * `helloTimeoutMs` from its first byte to finish its handshake and send its
 * hello, however slowly it trickles. The hello must agree with the
 * certificate (TLS) and name this cluster; a peer must be a node of the
 * configuration. Admitted, a connection counts against its role's and its
 * identity's limits (the idlest or oldest goes to make room), is closed when
 * idle, and every envelope it sends is held to its role's rules (`auth.ts`)
 * before the node sees it. A client connection has a bounded number of
 * requests in flight; past it a request is answered `overloaded` here.
 * Replies find their way back only to connections of the identity that owns
 * the client they answer.
 */
import type net from 'node:net';
import { Admission } from './admission.js';
import { identityOf, owns, refusal } from './auth.js';
import { encodeFrame } from './codec.js';
import { addrKey, nodeKey, roleKey, type Conn, type Gate } from './conn.js';
import { InflightRequests } from './inflight.js';
import { shardbank, type EnvelopeProps } from './messages.js';
import { IDENTITY_PATTERN, type Principal, type Role, type Security } from './tls.js';
import type { Tuning } from './topology.js';
import type { TransportLogger } from './transport.js';

/** The transport's counters this side adds to. */
export interface GateCounters {
  envelopesReceived: number;
  dropped: number;
  refused: number;
  violations: number;
  evicted: number;
  overloaded: number;
}

/** What the gate needs of its transport. */
export interface GateHost {
  self: { node?: number };
  security: Security;
  tuning: Tuning;
  /** Largest frame a peer may send. */
  maxFrameBytes: number;
  helloTimeoutMs: number;
  isMember: (node: number) => boolean;
  counters: GateCounters;
  log: TransportLogger;
  debug: TransportLogger;
  onAnswered?: (ms: number) => void;
  closing: () => boolean;
  newConn: (socket: net.Socket, label: string) => Conn;
  /** Decoding, delivery and cleanup, as for every socket; `onClose` runs once it is gone. */
  wire: (conn: Conn, onClose: () => void) => void;
  deliver: (env: EnvelopeProps) => void;
  /** The socket can take writes again: write what waits for it (its own queue, and a peer's that uses it). */
  drained: (conn: Conn) => void;
  /** Writes the connection's queue soon. */
  schedule: (conn: Conn) => void;
  /** Closes a connection whose frames are not what they should be. */
  reject: (conn: Conn, what: string) => void;
}

export class InboundGate {
  private readonly admission: Admission<Conn>;
  /** The latest admitted connection of each node and client identity. */
  private readonly latest = new Map<string, Conn>();
  /** Client name -> the connection it last sent from, where its replies go. */
  private readonly owners = new Map<string, Conn>();
  private readonly gates = new Map<string, Gate>();
  private pendingCount = 0;

  constructor(private readonly host: GateHost) {
    const t = host.tuning;
    this.admission = new Admission<Conn>({
      perRole: { peer: t.maxPeerConnections, client: t.maxClientConnections, admin: t.maxAdminConnections },
      perIdentity: t.maxConnectionsPerIdentity,
    });
  }

  /** Connections waiting for their handshake or hello. */
  get pending(): number {
    return this.pendingCount;
  }

  /** Admitted connections of a role. */
  count(role: Role): number {
    return this.admission.count(role);
  }

  /** The latest admitted connection of a node, if it is open. */
  nodeConn(node: number): Conn | undefined {
    const c = this.latest.get(nodeKey(node));
    return c && !c.dead ? c : undefined;
  }

  /** Forgets a closed connection's routes. */
  unroute(conn: Conn): void {
    for (const key of conn.keys) if (this.latest.get(key) === conn) this.latest.delete(key);
    conn.keys.clear();
  }

  /** Ends every pending connection's wait (the transport is closing). */
  closeAll(): void {
    for (const gate of this.gates.values()) {
      clearTimeout(gate.timer);
      gate.raw.destroy();
    }
  }

  /** A raw inbound connection takes a pending place, or is refused; its deadline starts now. */
  admitRaw(raw: net.Socket): boolean {
    const { host } = this;
    if (host.closing() || this.pendingCount >= host.tuning.maxPendingConnections) {
      host.counters.refused++;
      host.debug(`refusing ${addrKey(raw)}: ${this.pendingCount} connections are already waiting for their hello`);
      raw.destroy();
      return false;
    }
    this.pendingCount++;
    const key = addrKey(raw);
    const gate: Gate = {
      raw,
      conn: null,
      open: true,
      timer: setTimeout(() => {
        if (!gate.open) return;
        host.counters.refused++;
        host.log(`closing ${gate.conn?.label ?? key}: no handshake and hello within ${host.helloTimeoutMs} ms`);
        gate.conn?.socket.destroy();
        raw.destroy();
      }, host.helloTimeoutMs),
    };
    this.gates.set(key, gate);
    raw.once('close', () => this.closeGate(gate, key));
    raw.on('error', () => {});
    return true;
  }

  private closeGate(gate: Gate, key: string): void {
    if (!gate.open) return;
    gate.open = false;
    this.pendingCount--;
    clearTimeout(gate.timer);
    if (this.gates.get(key) === gate) this.gates.delete(key);
  }

  /** A connection whose handshake is done (TLS: `certified` from its certificate, or why it has none). */
  accept(socket: net.Socket, certified: Principal | string | null): void {
    const { host } = this;
    if (host.closing()) {
      socket.destroy();
      return;
    }
    const key = addrKey(socket);
    const conn = host.newConn(socket, key);
    const gate = this.gates.get(key);
    if (gate) {
      conn.gate = gate;
      gate.conn = conn;
    }
    socket.setKeepAlive(true, 10000);
    socket.on('drain', () => host.drained(conn));
    host.wire(conn, () => this.forget(conn));
    if (typeof certified === 'string') {
      this.refuse(conn, certified);
      return;
    }
    if (certified) {
      conn.certified = certified;
      conn.label = `${certified.role} ${certified.name} (${key})`;
      // What a role may send, in bytes, is known from the certificate before the first frame.
      conn.decoder.limit(certified.role === 'peer' ? host.maxFrameBytes : host.tuning.maxClientFrameBytes);
    }
  }

  /** Everything an inbound connection held, released when it closes. */
  private forget(conn: Conn): void {
    this.admission.remove(conn);
    for (const name of conn.clients) if (this.owners.get(name) === conn) this.owners.delete(name);
    conn.clients.clear();
    this.host.counters.dropped += conn.out.clear();
  }

  /** The envelopes an inbound connection sent: its hello first, then what its role may say. */
  dispatch(conn: Conn, envs: EnvelopeProps[]): void {
    for (const env of envs) {
      if (conn.dead) return;
      if (!conn.helloSeen) {
        if (!env.hello) {
          this.host.reject(conn, 'connection did not open with a hello');
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
      if (env.admin) {
        this.own(conn, env.fromClient!);
        const mover = env.admin.move?.command?.client;
        if (mover) this.own(conn, mover);
      }
      this.host.counters.envelopesReceived++;
      this.host.deliver(env);
    }
  }

  private ruleBroken(p: Principal, env: EnvelopeProps): string | null {
    const why = refusal(p, env);
    if (why) return why;
    const to = env.to ?? 0;
    const self = this.host.self.node;
    if (self && to !== self) return `an envelope for n${to} sent to n${self}`;
    return null;
  }

  /**
   * Where a reply goes: the connection its client last sent from, if that
   * connection's identity owns the client; else the latest connection of the
   * identity the reply is addressed to. Never to anyone else.
   */
  replyConn(env: EnvelopeProps): Conn | undefined {
    const to = env.toClient!;
    // An operator hears admin replies and the inspection stream it asked for.
    const role: Role = env.adminReply || env.inspection ? 'admin' : 'client';
    const name = env.reply?.client || to;
    const owner = this.owners.get(name);
    // A move's answer is a reply to the operator whose move it was.
    const roleFits = owner?.principal?.role === role || (!!env.reply && owner?.principal?.role === 'admin');
    if (owner && !owner.dead && roleFits && owns(owner.principal!.name, name) && owner.principal!.name === identityOf(to)) return owner;
    const conn = this.latest.get(roleKey(role, identityOf(to)));
    return conn && !conn.dead ? conn : undefined;
  }

  /** A reply leaves on `conn`: the request it answers no longer waits there. */
  answered(conn: Conn, env: EnvelopeProps): void {
    const r = env.reply;
    if (!r || !conn.inflight) return;
    const waited = conn.inflight.answer(`${r.client ?? ''}:${r.timestamp ?? 0}`, Date.now());
    if (waited !== undefined) this.host.onAnswered?.(waited);
  }

  /** A client request takes a place among the connection's requests in flight, or is answered `overloaded` now. */
  private admitRequest(conn: Conn, env: EnvelopeProps): boolean {
    const command = env.request!.command!;
    const client = command.client ?? '';
    this.own(conn, client);
    if (conn.inflight!.admit(`${client}:${command.timestamp ?? 0}`, Date.now())) return true;
    this.host.counters.overloaded++;
    conn.out.push({
      from: this.host.self.node ?? 0,
      toClient: identityOf(client),
      reply: { client, timestamp: command.timestamp ?? 0, status: shardbank.Status.FAILED, reason: 'overloaded' },
    });
    this.host.schedule(conn);
    return false;
  }

  /**
   * A client connection whose replies are not being read stops being read
   * too: a flood slows the one who floods. (Peers are never paused: two
   * nodes each waiting for the other to read would wait for ever.)
   */
  throttle(conn: Conn): void {
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
    if (conn.clients.size > this.host.tuning.maxInflightPerConnection) {
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
    if (this.host.security.mode === 'tls') return 'no certificate';
    if (node) return { role: 'peer', name: `n${node}`, node };
    if (!IDENTITY_PATTERN.test(client)) return `"${client}" is not a valid client name`;
    const role = hello.role === 'admin' ? 'admin' : hello.role === '' || hello.role === undefined || hello.role === 'client' ? 'client' : null;
    if (!role) return `hello claims the ${hello.role} role`;
    return { role, name: client, node: 0 };
  }

  private register(conn: Conn, hello: NonNullable<EnvelopeProps['hello']>): boolean {
    const { host } = this;
    const cluster = hello.cluster ?? '';
    const self = host.self.node ?? 0;
    if (cluster !== host.security.cluster) {
      // Say who we are before closing, so the opener can tell its user where it went wrong.
      conn.socket.write(encodeFrame([{ from: self, hello: { node: self, cluster: host.security.cluster } }]));
      this.refuse(conn, `hello from cluster "${cluster}", and this is cluster "${host.security.cluster}"`);
      return false;
    }
    const p = this.claimed(conn, hello);
    if (typeof p === 'string') {
      this.refuse(conn, p);
      return false;
    }
    if (p.role === 'peer' && !host.isMember(p.node)) {
      this.refuse(conn, `${p.name} is not a node of this configuration`);
      return false;
    }
    conn.principal = p;
    conn.helloSeen = true;
    if (conn.gate) this.closeGate(conn.gate, addrKey(conn.gate.raw));
    for (const old of this.admission.admit(conn)) {
      host.counters.evicted++;
      host.debug(`closing ${old.label} to make room for ${p.role} ${p.name}`);
      old.socket.destroy();
    }
    conn.label = `${p.role} ${p.name} (${addrKey(conn.socket)})`;
    conn.decoder.limit(p.role === 'peer' ? host.maxFrameBytes : host.tuning.maxClientFrameBytes);
    conn.socket.setTimeout(host.tuning.idleTimeoutMs, () => {
      host.counters.evicted++;
      host.debug(`closing ${conn.label}: idle for ${host.tuning.idleTimeoutMs} ms`);
      conn.socket.destroy();
    });
    if (p.role === 'client') conn.inflight = new InflightRequests(host.tuning.maxInflightPerConnection, 2 * host.tuning.clientGiveUpMs);
    // The latest connection of an identity wins: an older one is from before a restart.
    const key = p.role === 'peer' ? nodeKey(p.node) : roleKey(p.role, p.name);
    const previous = this.latest.get(key);
    if (previous && previous !== conn) previous.keys.delete(key);
    this.latest.set(key, conn);
    conn.keys.add(key);
    conn.socket.write(encodeFrame([{ from: self, hello: { node: self, cluster: host.security.cluster, role: 'peer' } }]));
    return true;
  }

  /** A connection that never got in: refused before or at its hello. */
  private refuse(conn: Conn, what: string): void {
    this.host.counters.refused++;
    this.host.log(`refusing ${conn.label}: ${what}`);
    conn.dead = true;
    conn.socket.destroy();
  }

  /** An admitted connection that broke its role's rules: closed, the envelope unseen. */
  private violation(conn: Conn, what: string): void {
    this.host.counters.violations++;
    this.host.log(`closing ${conn.label}: ${what}`);
    conn.dead = true;
    conn.socket.destroy();
  }

}
