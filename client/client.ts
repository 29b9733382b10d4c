/**
 * The bank client. Each request carries (client, timestamp) so that the
 * cluster executes it exactly once however often it is sent. A request goes
 * to the believed leader of the owning cluster; past `clientTimeoutMs` (or
 * longer, when replies have lately been slow) without a reply it is broadcast
 * to every node of that cluster (followers relay it to their leader), again
 * every timeout, until `clientGiveUpMs`,
 * when it ends as `failed: no reply`. Replies name the leader, which the
 * client then follows.
 *
 * Resharding: a cluster that no longer owns an item answers MOVED with its
 * owner and version; the client remembers the newest owner it heard of per
 * item, sends the same request there (the old owner executed nothing), and
 * routes later requests there too, at most `MAX_MOVES` hops a request. A
 * MOVED answer starts the request's give-up time afresh: the old owner is
 * alive, and at the new owner the request may wait out the end of the move.
 *
 * Concurrency: the client runs `slots` logical clients (`name/k`), each with
 * one request in flight, so per-client exactly-once bookkeeping on the nodes
 * stays one reply per logical client.
 */
import { levelOf, levelToWire, type Level } from '../protocol/consistency.js';
import { requestId, shardbank, type ClientReply, type Command, type EnvelopeProps, type NodeId } from '../protocol/messages.js';
import { clusterNodes, clusterOfItem, clusterOfNode, type Topology } from '../protocol/topology.js';
import type { Transport } from '../protocol/transport.js';
import { realTimers, type Timers } from './timers.js';

/**
 * `failed`: definitely not applied (refused, or a read not answered);
 * `unknown`: a write with no answer in time, or one its coordinator could
 * not decide: it may still apply (Jepsen's `info`).
 */
export type ResultStatus = 'committed' | 'aborted' | 'failed' | 'unknown' | 'ok';

export interface TxResult {
  status: ResultStatus;
  reason?: string;
  balance?: number;
  /** For a read: how far the replica that answered had executed. */
  executedThrough?: number;
  /** For a transfer its cluster ordered: the seq it executed at there (for a commit, what a session read there waits for). */
  seq?: number;
  latencyMs: number;
  /** The node that answered. */
  node?: NodeId;
  /** A read: the level it was answered at (a session read may be answered as linearizable, see `read`). */
  level?: Level;
  /** A session read: the seq the replica had to have executed through (this client's last write in that cluster). */
  afterSeq?: number;
  /** `client:timestamp`, the request's identity on the nodes. */
  requestId?: string;
}

interface InFlight {
  command: Command;
  /** This client's event count when it was sent (see `events`). */
  sentAt: number;
  cluster: number;
  startedAt: number;
  timer: unknown;
  resolve: (r: TxResult) => void;
  slot: Slot;
  /** When its give-up time counts from: the first send, or the last MOVED answer. */
  budgetFrom: number;
  /** Broadcast at least once, or sent on after a MOVED answer: its latency says nothing about the cluster's. */
  retried?: boolean;
  /** MOVED answers followed so far. */
  moves: number;
}

/** MOVED answers a request follows before it ends as failed (an item moving back and forth). */
const MAX_MOVES = 8;

interface Slot {
  name: string;
  timestamp: number;
}

/** Where this client's last committed write to an item ran: a session read of the item goes there. */
interface WriteMark {
  /** null: not known (an answer repeated from a stored reply, or two writes in two clusters at once). */
  cluster: number | null;
  /** This client's event count when the write was answered. */
  at: number;
}

const STATUS: Record<number, ResultStatus> = {
  [shardbank.Status.COMMITTED]: 'committed',
  [shardbank.Status.ABORTED]: 'aborted',
  [shardbank.Status.FAILED]: 'failed',
  [shardbank.Status.OK]: 'ok',
  [shardbank.Status.MOVED]: 'failed',
  [shardbank.Status.UNKNOWN]: 'unknown',
};

export interface ClientOptions {
  topology: Topology;
  transport: Transport;
  /** The connection's name; logical clients are `name/k`. */
  name: string;
  slots?: number;
  timers?: Timers;
}

export class BankClient {
  private readonly topology: Topology;
  private readonly transport: Transport;
  private readonly timers: Timers;
  private readonly leaders = new Map<number, NodeId>();
  private readonly inflight = new Map<string, InFlight>();
  /** Session (read-your-writes): per cluster, the seq this client's last write there ran at. */
  private readonly session = new Map<number, number>();
  /** Session: per item written, the cluster its last write ran in (at most one entry per item). */
  private readonly written = new Map<number, WriteMark>();
  /** Requests sent and writes answered, counted: orders this client's own requests among themselves. */
  private events = 0;
  /** Round robin over a cluster's nodes for reads any replica may answer. */
  private nextReplica = 0;
  /** Items other clusters said moved (MOVED answers): item -> newest owner heard of. */
  private readonly owners = new Map<number, { cluster: number; version: number }>();
  private readonly free: Slot[] = [];
  private readonly waiting: ((s: Slot) => void)[] = [];
  private readonly name: string;
  /** Logical clients made so far (a slot whose request ended unknown is replaced by a new one). */
  private slotCount: number;
  /** Smoothed reply latency and its mean deviation, in ms (null before the first reply). */
  private srtt: number | null = null;
  private rttvar = 0;

  constructor(opts: ClientOptions) {
    this.topology = opts.topology;
    this.transport = opts.transport;
    this.timers = opts.timers ?? realTimers;
    this.name = opts.name;
    this.slotCount = opts.slots ?? 64;
    for (let k = 1; k <= this.slotCount; k++) this.free.push({ name: `${opts.name}/${k}`, timestamp: 0 });
    this.transport.onEnvelope((env) => this.onEnvelope(env));
    this.resetLeaders();
  }

  /** Believes the first node of every cluster leads (as at the start of a set). */
  resetLeaders(): void {
    for (let c = 1; c <= this.topology.clusters; c++) this.leaders.set(c, clusterNodes(this.topology, c)[0]!);
  }

  leaderOf(cluster: number): NodeId | undefined {
    return this.leaders.get(cluster);
  }

  /** The cluster that owns an item, as this client last heard (the shard map, then MOVED answers). */
  ownerOf(item: number): number | null {
    return this.owners.get(item)?.cluster ?? clusterOfItem(this.topology, item);
  }

  /** Learns an item's owner (as resharding reports it); an older version than one known changes nothing. */
  learnOwner(item: number, cluster: number, version: number): void {
    if ((this.owners.get(item)?.version ?? -1) < version) this.owners.set(item, { cluster, version });
  }

  /** Forgets every owner MOVED answers taught (a new test set restores the shard map). */
  resetOwners(): void {
    this.owners.clear();
  }

  /**
   * Forgets this client's session: the points its writes ran at and where.
   * A flush starts every log again at seq 1, so a point from the last set
   * would make a session read wait for a seq the new set may never reach.
   */
  resetSession(): void {
    this.session.clear();
    this.written.clear();
  }

  transfer(sender: number, receiver: number, amount: number): Promise<TxResult> {
    const cs = this.ownerOf(sender);
    const cr = this.ownerOf(receiver);
    if (cs === null || cr === null) return Promise.resolve({ status: 'failed', reason: 'item out of range', latencyMs: 0 });
    if (!Number.isInteger(amount) || amount <= 0) {
      return Promise.resolve({ status: 'failed', reason: 'amount must be a positive integer', latencyMs: 0 });
    }
    // A cross-shard transfer goes to the sender's cluster, whose leader coordinates it.
    return this.submit(cs, { transfer: { sender, receiver, amount } });
  }

  /**
   * A balance read at a consistency level: `leader` (the leader's state, the
   * default), `linearizable` (the leader confirms it still leads first),
   * `session` (any replica that has executed this client's last write in the
   * cluster), `any` (any live replica, at once).
   *
   * A session read of an item this client wrote goes to the cluster its last
   * write ran in, wherever the client believes the item lives now: a replica
   * there that has executed through the client's point either still owns the
   * item, and holds the write, or answers MOVED from a state that knows where
   * it went. When the client cannot say where that write ran, and when a
   * MOVED sends the read on, it reads as `linearizable` instead: the client's
   * point in another cluster says nothing of a write it made elsewhere.
   */
  read(item: number, level: Level = 'leader'): Promise<TxResult> {
    const owner = this.ownerOf(item);
    if (owner === null) return Promise.resolve({ status: 'failed', reason: 'item out of range', latencyMs: 0 });
    if (level === 'session') return this.readOwnWrites(item, owner);
    const replica = level === 'any' ? this.anyReplica(owner) : undefined;
    return this.submit(owner, { read: { item, consistency: levelToWire(level), afterSeq: 0 } }, replica);
  }

  private readOwnWrites(item: number, owner: number): Promise<TxResult> {
    const mark = this.written.get(item);
    if (mark && mark.cluster === null) return this.submit(owner, { read: { item, consistency: levelToWire('linearizable'), afterSeq: 0 } });
    const cluster = mark?.cluster ?? owner;
    const read = { item, consistency: levelToWire('session'), afterSeq: this.session.get(cluster) ?? 0 };
    return this.submit(cluster, { read }, this.anyReplica(cluster));
  }

  /** The seqs this client's writes ran at, per cluster (what its session reads wait for). */
  sessionPoints(): ReadonlyMap<number, number> {
    return this.session;
  }

  private anyReplica(cluster: number): NodeId {
    const members = clusterNodes(this.topology, cluster);
    return members[this.nextReplica++ % members.length]!;
  }

  private async submit(cluster: number, op: Omit<Command, 'client' | 'timestamp'>, node?: NodeId): Promise<TxResult> {
    const slot = await this.takeSlot();
    slot.timestamp++;
    // (Object.assign, not a spread with more properties after it: V8's slow path for those costs microseconds.)
    const command: Command = Object.assign({}, op, { client: slot.name, timestamp: slot.timestamp });
    const id = requestId(command);
    return new Promise<TxResult>((resolve) => {
      const now = this.timers.now();
      const req: InFlight = { command, sentAt: ++this.events, cluster, startedAt: now, budgetFrom: now, timer: null, slot, resolve, moves: 0 };
      this.inflight.set(id, req);
      this.sendTo(node ?? this.leaders.get(cluster)!, command);
      this.arm(id, req);
    });
  }

  /**
   * How long to wait before broadcasting: `clientTimeoutMs`, or more when
   * replies have been slower (a loaded cluster), estimated as TCP does its
   * retransmission timeout (RFC 6298: smoothed latency plus four deviations),
   * so that a busy cluster is not handed three more copies of every request.
   * It learns only from replies that beat the timer (Karn's rule) and does
   * not back off, so that a failed leader is still noticed after
   * `clientTimeoutMs`: a cluster slower than that on every request is still
   * broadcast to at `clientTimeoutMs`.
   */
  private retryAfterMs(): number {
    const { clientTimeoutMs, clientGiveUpMs } = this.topology.tuning;
    if (this.srtt === null) return clientTimeoutMs;
    return Math.min(Math.max(clientTimeoutMs, this.srtt + 4 * this.rttvar), Math.max(clientTimeoutMs, clientGiveUpMs / 2));
  }

  /** One latency sample, from a request answered without a retry (Karn's rule). */
  private sampleLatency(ms: number): void {
    if (this.srtt === null) {
      this.srtt = ms;
      this.rttvar = ms / 2;
      return;
    }
    this.rttvar = 0.75 * this.rttvar + 0.25 * Math.abs(this.srtt - ms);
    this.srtt = 0.875 * this.srtt + 0.125 * ms;
  }

  private arm(id: string, req: InFlight): void {
    const { clientGiveUpMs } = this.topology.tuning;
    const wait = this.retryAfterMs();
    req.timer = this.timers.setTimeout(() => {
      if (!this.inflight.has(id)) return;
      if (this.timers.now() - req.budgetFrom + wait > clientGiveUpMs) {
        this.finish(id, { status: req.command.read ? 'failed' : 'unknown', reason: 'no reply' });
        return;
      }
      req.retried = true;
      for (const node of clusterNodes(this.topology, req.cluster)) this.sendTo(node, req.command);
      this.arm(id, req);
    }, wait);
  }

  /** Requests sent in the same turn of the event loop leave together, as one frame per node. */
  private sendTo(node: NodeId, command: Command): void {
    this.transport.send({ from: 0, to: node, fromClient: command.client, request: { command } });
  }

  private onEnvelope(env: EnvelopeProps): void {
    const reply = env.reply;
    if (!reply) return;
    const id = requestId(reply);
    const req = this.inflight.get(id);
    if (!req) return;
    // The leader of the answering node's cluster: after a MOVED answer the request's cluster is another one.
    if (reply.leader) this.leaders.set(clusterOfNode(this.topology, reply.leader), reply.leader);
    if (reply.status === shardbank.Status.MOVED && reply.moved) {
      if (!this.follow(id, req, reply.moved)) this.finish(id, { status: 'failed', reason: `moved ${MAX_MOVES} times`, node: env.from ?? 0 });
      return;
    }
    if (reply.status === shardbank.Status.COMMITTED) this.noteWrite(req, reply, env.from ?? 0);
    this.finish(id, toResult(reply, env.from ?? 0));
  }

  /**
   * A committed write: a session read of its items must see it. The sender's
   * debit ran in the cluster of the node that answered; the receiver's
   * credit where the reply says (the same cluster, or the participant's).
   */
  private noteWrite(req: InFlight, reply: ClientReply, from: NodeId): void {
    const t = req.command.transfer;
    if (!t || !from) return;
    const here = clusterOfNode(this.topology, from);
    const there = reply.receiverCluster || null;
    this.advance(here, reply.seq ?? 0);
    if (there !== null) this.advance(there, there === here ? reply.seq ?? 0 : reply.peerSeq ?? 0);
    const at = ++this.events;
    this.markWrite(t.sender ?? 0, here, req.sentAt, at);
    this.markWrite(t.receiver ?? 0, there, req.sentAt, at);
  }

  private advance(cluster: number, seq: number): void {
    if (seq) this.session.set(cluster, Math.max(this.session.get(cluster) ?? 0, seq));
  }

  /**
   * Notes where a write to an item ran. A write sent after the item's last
   * one was answered comes after it in every order; one that overlapped it
   * may come before, so two such writes in two clusters leave the item's
   * place unknown (and its session reads linearizable) until the next write.
   */
  private markWrite(item: number, cluster: number | null, sentAt: number, at: number): void {
    const prev = this.written.get(item);
    const later = !prev || sentAt > prev.at || prev.cluster === cluster;
    this.written.set(item, { cluster: later ? cluster : null, at });
  }

  /** A MOVED answer: note the owner, and send the request there; false when it has moved too often. */
  private follow(id: string, req: InFlight, moved: shardbank.IOwner): boolean {
    const item = moved.item ?? 0;
    this.learnOwner(item, moved.cluster ?? 0, moved.version ?? 0);
    if (++req.moves > MAX_MOVES) return false;
    const cluster = this.ownerOf(req.command.transfer?.sender ?? req.command.read?.item ?? item);
    if (cluster === null) return false;
    req.cluster = cluster;
    // The old owner answered: the cluster is alive, and the request starts afresh at the new owner.
    req.budgetFrom = this.timers.now();
    req.retried = true;
    // A session read sent on reads as linearizable: this client's point in the new cluster says nothing of its writes here.
    const read = req.command.read;
    if (read && levelOf(read.consistency) === 'session') {
      req.command = Object.assign({}, req.command, { read: { item: read.item, consistency: levelToWire('linearizable'), afterSeq: 0 } });
    }
    this.timers.clearTimeout(req.timer);
    this.sendTo(this.leaders.get(cluster)!, req.command);
    this.arm(id, req);
    return true;
  }

  private finish(id: string, r: Omit<TxResult, 'latencyMs'>): void {
    const req = this.inflight.get(id);
    if (!req) return;
    this.inflight.delete(id);
    this.timers.clearTimeout(req.timer);
    const latencyMs = this.timers.now() - req.startedAt;
    if (!req.retried && r.node) this.sampleLatency(latencyMs);
    const result: TxResult = Object.assign({}, r, { latencyMs, requestId: id });
    const read = req.command.read;
    if (read) {
      result.level = levelOf(read.consistency);
      if (read.afterSeq) result.afterSeq = read.afterSeq;
    }
    req.resolve(result);
    // A logical client whose request's outcome is unknown sends nothing more: its request
    // stays the last one the cluster knows of it, so what became of it can still be asked.
    this.releaseSlot(r.status === 'unknown' ? { name: `${this.name}/${++this.slotCount}`, timestamp: 0 } : req.slot);
  }

  private takeSlot(): Promise<Slot> {
    const s = this.free.pop();
    if (s) return Promise.resolve(s);
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  private releaseSlot(s: Slot): void {
    const next = this.waiting.shift();
    if (next) next(s);
    else this.free.push(s);
  }

  /** Requests still waiting for an answer. */
  get pending(): number {
    return this.inflight.size;
  }

  /** Gives up every request in flight (as `failed`), e.g. when a run is stopped. */
  abandonAll(reason = 'client stopped'): void {
    for (const [id, req] of [...this.inflight]) this.finish(id, { status: req.command.read ? 'failed' : 'unknown', reason });
  }
}

function toResult(reply: ClientReply, node: NodeId): Omit<TxResult, 'latencyMs'> {
  const status = STATUS[reply.status ?? 0] ?? 'failed';
  const r: Omit<TxResult, 'latencyMs'> = { status, node };
  if (reply.reason) r.reason = reply.reason;
  if (reply.hasBalance) r.balance = reply.balance ?? 0;
  if (reply.executedThrough) r.executedThrough = reply.executedThrough;
  if (reply.seq) r.seq = reply.seq;
  return r;
}
