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
import { levelToWire, type Level } from '../protocol/consistency.js';
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
  /** `client:timestamp`, the request's identity on the nodes. */
  requestId?: string;
}

interface InFlight {
  command: Command;
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
   */
  read(item: number, level: Level = 'leader'): Promise<TxResult> {
    const c = this.ownerOf(item);
    if (c === null) return Promise.resolve({ status: 'failed', reason: 'item out of range', latencyMs: 0 });
    const read = { item, consistency: levelToWire(level), afterSeq: level === 'session' ? this.session.get(c) ?? 0 : 0 };
    const replica = level === 'session' || level === 'any' ? this.anyReplica(c) : undefined;
    return this.submit(c, { read }, replica);
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
      const req: InFlight = { command, cluster, startedAt: now, budgetFrom: now, timer: null, slot, resolve, moves: 0 };
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
    if (reply.status === shardbank.Status.COMMITTED) this.noteWrite(req.command, reply);
    this.finish(id, toResult(reply, env.from ?? 0));
  }

  /** A committed write: a session read in its cluster (and its receiver's) must see it. */
  private noteWrite(command: Command, reply: ClientReply): void {
    const t = command.transfer;
    if (!t) return;
    const advance = (cluster: number | null, seq: number | null | undefined) => {
      if (cluster !== null && seq) this.session.set(cluster, Math.max(this.session.get(cluster) ?? 0, seq));
    };
    advance(this.ownerOf(t.sender ?? 0), reply.seq);
    advance(this.ownerOf(t.receiver ?? 0), reply.peerSeq || (this.ownerOf(t.receiver ?? 0) === this.ownerOf(t.sender ?? 0) ? reply.seq : 0));
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
    req.resolve(Object.assign({}, r, { latencyMs, requestId: id }));
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
