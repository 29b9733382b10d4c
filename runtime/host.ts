/**
 * Hosts one node: its actor hierarchy, its event log and its transport.
 *
 * Work happens in turns. A turn feeds every envelope that arrived since the
 * last one to the actors, then ends the turn (the proposer cuts its batch,
 * the executor runs what is committed). The events the turn recorded go to
 * the log as one batch, and only when that batch is durable are the turn's
 * messages and replies released (persist, then send: DESIGN rule 2). While a
 * batch is being written the next turn already runs; its output waits for
 * its own batch. A turn that recorded only what follows from durable entries
 * (commits, executions, ACKs) sends at once and leaves its events to the next
 * batch (see `commit`). Timers enter the same way: a tick is a turn.
 */
import { mustSync, type Ready } from '../actors/ready.js';
import type { View } from '../actors/node-info.js';
import {
  requestId,
  shardbank,
  slotKeyOf,
  type AdminReply,
  type AdminRequest,
  type EnvelopeProps,
  type LogEventProps,
  type NodeId,
} from '../protocol/messages.js';
import type { Topology } from '../protocol/topology.js';
import type { Transport } from '../protocol/transport.js';
import type { NodeLog } from '../store/eventlog.js';
import { balanceOf, recentTransfers, replay, takeSnapshot, type ReplicaState } from '../store/state.js';
import type { Observable, Subscription } from 'rxjs';
import { NodeCore, type Clock, type CoreOptions } from './core.js';
import { inspectActors, type InspectRecord } from './inspect.js';

export type { Clock };

export interface HostOptions {
  topology: Topology;
  node: NodeId;
  transport: Transport;
  log: NodeLog;
  seed?: number;
  clock?: Clock;
  /** Runs fn soon, after the current work (setImmediate, or the simulator's queue). */
  defer?: (fn: () => void) => void;
  logger?: (line: string) => void;
  /** The process's CPU time and resident memory, when the node has a process of its own. */
  processStats?: () => { cpuMs: number; rssBytes: number; heapUsedBytes: number };
  /**
   * Called once if the node stops itself: an actor threw, or the log could
   * not be written. The node has already stopped taking and sending
   * messages; a process exits here. Without it the error is thrown from the
   * turn that found it.
   */
  onFatal?: (error: Error) => void;
  /**
   * How long one turn may spend on its inbox before the rest waits for the
   * next turn (real processes; the simulator leaves it unset, so that runs
   * depend on the seed alone).
   */
  turnBudgetMs?: number;
  /** XState inspection of every actor of the node (the inspection stream). */
  inspect?: CoreOptions['inspect'];
  /**
   * A test cluster obeys flush, fail and recover (the test driver's
   * commands: they reset or disconnect a replica); any other node refuses
   * them, whoever asks.
   */
  testCluster?: boolean;
  /** Told the turn count after each turn (the node process's JIT policy, cli/jit.ts). */
  onTurn?: (turns: number) => void;
  /** The simulator only: bugs planted on purpose, for its checkers to catch (actors/node-info.ts). */
  plantedBugs?: CoreOptions['plantedBugs'];
}

/**
 * What became of a request, as this replica knows: its stored outcome (the
 * last reply to its client), else an entry for it in the log not yet run
 * (pending), else not applied here.
 */
export function outcomeOf(state: ReplicaState, client: string, timestamp: number): shardbank.IOutcome {
  const stored = state.replies.get(client);
  if (stored && stored.timestamp === timestamp) {
    const s = stored.reply.status;
    const word = s === shardbank.Status.COMMITTED ? 'committed' : s === shardbank.Status.ABORTED ? 'aborted' : 'not applied';
    return { state: word, seq: stored.seq, reason: stored.reply.reason ?? '' };
  }
  const id = `${client}:${timestamp}`;
  for (const slot of state.log.values()) {
    if (slot.command && requestId(slot.command) === id && slotKeyOf(slot) > state.executedThrough) return { state: 'pending', seq: slot.seq };
  }
  return { state: 'not applied', seq: 0 };
}

/** How long events that need no fsync may wait for a write to ride along with, and how many. */
const HELD_MS = 10;
const HELD_MAX = 4096;

/** Inspection streaming (see `watch`): the default and longest lease, how often records go out, how many wait at most, how many a frame carries. */
const WATCH_LEASE_MS = 3000;
const WATCH_LEASE_MAX_MS = 60_000;
const WATCH_FLUSH_MS = 50;
const WATCH_BUFFER = 20_000;
const WATCH_BATCH = 500;

/** Envelopes handed to the actors at once when a turn has a budget. */
const TURN_SLICE = 64;

const realClock: Clock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (id) => clearTimeout(id as NodeJS.Timeout),
};

interface Group {
  events: LogEventProps[];
  sends: EnvelopeProps[];
  snapshot?: LogEventProps;
}

export class NodeHost {
  readonly node: NodeId;
  private readonly opts: HostOptions;
  private core!: NodeCore;
  private inbox: EnvelopeProps[] = [];
  private turnScheduled = false;
  private chain: Promise<void> = Promise.resolve();
  /** Turns waiting for the write in flight; they go to the log together. */
  private openGroup: Group | null = null;
  /** Groups chained and not yet written. */
  private writing = 0;
  /** Events that need no fsync, recorded while no write was in flight: they go with the next write. */
  private held: LogEventProps[] = [];
  private heldTimer: unknown = null;
  private stopped = false;
  private failure: Error | null = null;
  /** Batches written (and how many were fsynced), and events in them (for tests and stats). */
  readonly stats = { batches: 0, syncs: 0, events: 0, turns: 0, snapshots: 0 };
  private sinceSnapshot = 0;
  private readonly startedAt = performance.now();
  private inspection: Observable<InspectRecord> | null = null;
  /** Admin clients watching this node's actors: client -> when its lease ends (ms, performance.now). */
  private readonly watchers = new Map<string, number>();
  private watching: Subscription | null = null;
  private watched: InspectRecord[] = [];
  private watchTimer: ReturnType<typeof setInterval> | null = null;

  constructor(opts: HostOptions) {
    this.opts = opts;
    this.node = opts.node;
  }

  get state(): ReplicaState {
    return this.core.state;
  }

  get view(): View {
    return this.core.view;
  }

  /**
   * Every step of every actor of this node (runtime/inspect.ts). XState's
   * inspection is attached only while someone subscribes.
   */
  get inspection$(): Observable<InspectRecord> {
    return (this.inspection ??= inspectActors(this.core.root, this.node, () => performance.now() - this.startedAt));
  }

  /** The node's root actor (inspection, the studio). */
  get actor(): NodeCore['root'] {
    return this.core.root;
  }

  /** Opens the log, rebuilds the state by replay, starts the actors. */
  async start(): Promise<void> {
    const { topology, node, log } = this.opts;
    await log.open();
    const state = replay(node, await log.readAll());
    if (state.set === 0) state.initialBalance = topology.initialBalance;
    this.core = new NodeCore({
      topology,
      node,
      state,
      seed: this.opts.seed,
      clock: this.wrapClock(this.opts.clock ?? realClock),
      onFault: (err) => this.fail(err, err.name === 'ActorFault' || err.name === 'InvariantError' ? err.message : 'the node actor threw'),
      logger: (line) => this.log(line),
      inspect: this.opts.inspect,
      plantedBugs: this.opts.plantedBugs,
    });
    this.core.start();
    this.opts.transport.onEnvelope((env) => this.receive(env));
  }

  /** Timer callbacks run the actors outside a turn; their output must be committed too. */
  private wrapClock(clock: Clock): Clock {
    return {
      now: () => clock.now(),
      setTimeout: (fn, ms) =>
        clock.setTimeout(() => {
          if (this.stopped) return;
          fn();
          this.surfaceFailure();
          // What vouches for nothing (a leader's heartbeat) leaves now, not after the next turn's
          // inbox: behind a flood of requests it would come late, and the followers would depose
          // a leader that is working.
          const now = this.core.takeNow();
          if (now.length > 0 && !this.stopped) this.release(now);
          // A tick that changed nothing at a node that leads nothing needs no turn after it.
          if (this.core.view.role === 'leader' || this.core.hasOutput || this.inbox.length > 0) this.scheduleTurn();
        }, ms),
      clearTimeout: (id) => clock.clearTimeout(id),
    };
  }

  receive(envelope: EnvelopeProps): void {
    if (this.stopped) return;
    if (envelope.admin) {
      void this.admin(envelope.admin, envelope.fromClient ?? '');
      return;
    }
    // A peer still in another set (a flush in flight) must not touch this one.
    if (envelope.from && (envelope.epoch ?? 0) !== this.core.state.set) return;
    this.inbox.push(envelope);
    this.scheduleTurn();
  }

  private scheduleTurn(): void {
    if (this.turnScheduled || this.stopped) return;
    this.turnScheduled = true;
    (this.opts.defer ?? setImmediate)(() => this.turn());
  }

  private turn(): void {
    this.turnScheduled = false;
    if (this.stopped) return;
    this.stats.turns++;
    this.takeInbox();
    this.core.send({ type: 'endOfTurn' });
    this.surfaceFailure();
    if (this.failure) return;
    this.commit();
    this.opts.onTurn?.(this.stats.turns);
    // What the budget left for later: the next turn, after the timers have had their go.
    if (this.inbox.length > 0) this.scheduleTurn();
  }

  /**
   * Hands the inbox to the actors. Under `turnBudgetMs`, in slices, and only
   * until the budget is spent: a backlog of thousands of requests would
   * otherwise hold the event loop long enough for the node's own timers (its
   * heartbeats) to miss their time, and its followers would depose it.
   */
  private takeInbox(): void {
    const budget = this.opts.turnBudgetMs;
    const inbox = this.inbox;
    if (inbox.length === 0) return;
    if (budget === undefined) {
      this.inbox = [];
      this.core.send({ type: 'messages', envelopes: inbox });
      return;
    }
    const started = performance.now();
    let i = 0;
    while (i < inbox.length && (i === 0 || performance.now() - started < budget)) {
      const slice = inbox.slice(i, i + TURN_SLICE);
      i += slice.length;
      this.core.send({ type: 'messages', envelopes: slice });
    }
    this.inbox = i < inbox.length ? inbox.slice(i) : [];
  }

  private release(sends: EnvelopeProps[]): void {
    const { transport } = this.opts;
    for (const s of sends) transport.send(s);
    transport.flush();
  }

  private surfaceFailure(): void {
    if (this.failure && !this.opts.onFatal) throw this.failure;
  }

  /**
   * Fail-stop: the turn that found the error is dropped unwritten and unsent
   * (as if the process had died before its write), nothing more is taken or
   * sent, and the log stays as the last synced batch left it.
   */
  private fail(error: unknown, what: string): void {
    if (this.failure) return;
    this.failure = error instanceof Error ? error : new Error(String(error));
    this.stopped = true;
    this.held = [];
    this.log(`stopping: ${what}: ${this.failure.stack ?? this.failure.message}`);
    this.opts.onFatal?.(this.failure);
  }

  /**
   * Carries out the output of the turn (actors/ready.ts has the rule it
   * follows). What may leave at once leaves now. The events go to the log,
   * and what waits for them leaves once they are written. While a write is
   * in flight, the turns that finish meanwhile join one group, written as one
   * batch when that write is done (group commit): at most one fsync for all
   * of them, not one each in a row.
   *
   * A turn that records nothing this node gives its word on (`mustSync`
   * false), with no write in flight, needs no write of its own before its
   * output: everything before it is durable already. Its output leaves now,
   * and its events are held to ride along with the next write (or a write of
   * their own after `HELD_MS`): one LevelDB batch fewer per such turn.
   */
  private commit(): Promise<void> {
    const ready: Ready = this.core.take();
    if (ready.now.length > 0) this.release(ready.now);
    const { events, afterWrite: sends } = ready;
    if (events.length === 0 && sends.length === 0) return this.chain;
    // Now the state is exactly the fold of every event recorded, this turn's included.
    this.sinceSnapshot += events.length;
    let snapshot: LogEventProps | null = null;
    if (this.sinceSnapshot >= this.opts.topology.tuning.snapshotEvery) {
      snapshot = { snapshot: takeSnapshot(this.core.state, this.opts.topology.tuning.retainEntries) };
      this.sinceSnapshot = 0;
    }
    if (!snapshot && this.writing === 0 && !ready.mustSync) {
      for (const e of events) this.held.push(e);
      if (this.held.length >= HELD_MAX) this.writeHeld();
      else if (this.held.length > 0) this.holdFor(HELD_MS);
      if (sends.length > 0) this.release(sends);
      return this.chain;
    }
    const group = this.groupToJoin();
    for (const e of events) group.events.push(e);
    for (const s of sends) group.sends.push(s);
    if (snapshot) {
      // The snapshot is the state after exactly these events: nothing later may join the group.
      group.snapshot = snapshot;
      this.openGroup = null;
    }
    return this.chain;
  }

  /** The group the next write will carry, opened (and chained) if there is none; held events go first. */
  private groupToJoin(): Group {
    let group = this.openGroup;
    if (!group) {
      const g: Group = { events: [], sends: [] };
      this.openGroup = group = g;
      this.writing++;
      this.chain = this.chain.then(() => this.write(g)).finally(() => this.writing--);
      this.chain.catch((err) => this.fail(err, 'the event log write failed'));
    }
    if (this.held.length > 0) {
      for (const e of this.held) group.events.push(e);
      this.held = [];
    }
    return group;
  }

  /** Writes the held events now, as a batch of their own (or in the group already waiting). */
  private writeHeld(): void {
    if (this.held.length > 0 && !this.stopped) this.groupToJoin();
  }

  private holdFor(ms: number): void {
    if (this.heldTimer !== null) return;
    const clock = this.opts.clock ?? realClock;
    this.heldTimer = clock.setTimeout(() => {
      this.heldTimer = null;
      this.writeHeld();
    }, ms);
  }

  private async write(group: Group): Promise<void> {
    if (this.openGroup === group) this.openGroup = null;
    const { log } = this.opts;
    if (group.events.length > 0) {
      const sync = group.events.some(mustSync);
      await log.append(group.events, { sync });
      if (sync) this.stats.syncs++;
      this.stats.batches++;
      this.stats.events += group.events.length;
    }
    if (group.snapshot) {
      await log.compact(group.snapshot);
      this.stats.snapshots++;
    }
    if (!this.stopped) this.release(group.sends);
  }

  /** Resolves once everything recorded so far is written (fsynced where it must be) and sent. */
  async idle(): Promise<void> {
    let seen: Promise<void> | undefined;
    for (;;) {
      this.writeHeld();
      if (seen === this.chain && !this.turnScheduled) return;
      seen = this.chain;
      await seen;
      if (this.turnScheduled) await new Promise<void>((r) => (this.opts.defer ?? setImmediate)(r));
    }
  }

  /** Runs an admin command; the reply leaves after the events it caused are durable. */
  async admin(req: AdminRequest, client: string): Promise<AdminReply> {
    const reply: AdminReply = { id: req.id ?? 0 };
    const state = this.core.state;
    try {
      const refused = this.refuseAdmin(req);
      if (refused) {
        reply.error = refused;
      } else if (req.flush) {
        await this.idle();
        await this.opts.log.clear();
        this.core.send({
          type: 'flush',
          leader: req.flush.leader ?? 0,
          initialBalance: req.flush.initialBalance ?? this.opts.topology.initialBalance,
          set: req.flush.set ?? 0,
        });
      } else if (req.fail) {
        this.core.send({ type: 'fail' });
      } else if (req.recover) {
        this.core.send({ type: 'recover' });
      } else if (req.printBalance) {
        reply.balance = balanceOf(state, req.printBalance.item ?? 0);
      } else if (req.printDb) {
        reply.items = [...state.modified].sort((a, b) => a - b).map((item) => ({ item, balance: balanceOf(state, item) }));
      } else if (req.printView) {
        reply.views = state.views;
      } else if (req.status) {
        reply.status = this.status();
      } else if (req.history) {
        reply.history = recentTransfers(state).map((r) => ({ sender: r.sender, receiver: r.receiver, txid: r.txid }));
        reply.owners = [...state.owners].map(([item, o]) => ({ item, cluster: o.cluster, version: o.version }));
      } else if (req.move) {
        const command = req.move.command;
        if (!command?.move || !command.client) throw new Error('a move needs a command with a client id and a move');
        // Its answer is the move's own reply, to the command's client (the admin connection).
        this.core.send({ type: 'move', command });
      } else if (req.outcome) {
        reply.outcome = outcomeOf(state, req.outcome.client ?? '', req.outcome.timestamp ?? 0);
      } else if (req.inspect) {
        if (!client) throw new Error('inspect needs an admin client to stream to');
        this.watch(client, req.inspect.leaseMs || WATCH_LEASE_MS);
      } else {
        reply.error = 'unknown admin command';
      }
      await this.commit();
      await this.idle();
    } catch (err) {
      reply.error = (err as Error).message;
    }
    if (client) {
      this.release([{ from: this.node, toClient: client, adminReply: reply }]);
    }
    return reply;
  }

  /** Why an admin command is refused: a test command on a node that is not a test cluster's, or a flush with bad parameters. */
  private refuseAdmin(req: AdminRequest): string | null {
    if (!(req.flush || req.fail || req.recover)) return null;
    const what = req.flush ? 'flush' : req.fail ? 'fail' : 'recover';
    if (!this.opts.testCluster) return `${what} is a test command, and this node is not started as a test cluster`;
    const f = req.flush;
    if (!f) return null;
    const balance = f.initialBalance ?? this.opts.topology.initialBalance;
    if (!Number.isSafeInteger(balance) || balance < 0) return `flush: the initial balance must be a non-negative integer, got ${balance}`;
    if (!this.core.info.members.includes(f.leader ?? 0)) return `flush: the leader must be a node of this cluster (${this.core.info.members.map((n) => `n${n}`).join(', ')}), got n${f.leader ?? 0}`;
    return null;
  }

  status(): shardbank.NodeStatus.$Properties {
    const { state, view } = this.core;
    return {
      node: this.node,
      failed: state.failed,
      leader: view.leader,
      ballot: view.ballot,
      role: view.role,
      livePeers: [...view.live],
      quorum: view.quorum,
      lockPolicy: this.opts.topology.tuning.lockPolicy,
      commitThrough: state.commitThrough,
      executedThrough: state.executedThrough,
      walEntries: state.wal.size,
      unacked: state.unacked.size,
      turns: this.stats.turns,
      batches: this.stats.batches,
      syncs: this.stats.syncs,
      events: this.stats.events,
      snapshots: this.stats.snapshots,
      logSize: this.opts.log.size,
      ...this.opts.processStats?.(),
    };
  }

  private log(line: string): void {
    (this.opts.logger ?? ((l: string) => process.stderr.write(`${l}\n`)))(`n${this.node}: ${line}`);
  }

  /**
   * Streams the inspection records to `client` until its lease runs out (it
   * renews it by asking again). Records go out every WATCH_FLUSH_MS; a
   * reader that cannot keep up loses the oldest (a gap in `seq` says so).
   */
  private watch(client: string, leaseMs: number): void {
    this.watchers.set(client, performance.now() + Math.min(leaseMs, WATCH_LEASE_MAX_MS));
    this.watching ??= this.inspection$.subscribe((r) => {
      this.watched.push(r);
      if (this.watched.length > WATCH_BUFFER) this.watched.splice(0, this.watched.length - WATCH_BUFFER);
    });
    this.watchTimer ??= setInterval(() => this.sendWatched(), WATCH_FLUSH_MS);
  }

  private sendWatched(): void {
    const now = performance.now();
    for (const [client, until] of this.watchers) if (until < now || this.stopped) this.watchers.delete(client);
    const records = this.watched;
    this.watched = [];
    if (records.length > 0) {
      for (const client of this.watchers.keys()) {
        for (let i = 0; i < records.length; i += WATCH_BATCH) {
          this.release([{ from: this.node, toClient: client, inspection: { records: records.slice(i, i + WATCH_BATCH) } }]);
        }
      }
    }
    if (this.watchers.size === 0) this.unwatch();
  }

  private unwatch(): void {
    this.watching?.unsubscribe();
    this.watching = null;
    this.watched = [];
    if (this.watchTimer) clearInterval(this.watchTimer);
    this.watchTimer = null;
  }

  /** Dies on the spot, as a killed process: nothing pending is written or sent. */
  kill(): void {
    this.stopped = true;
    this.unwatch();
    this.held = [];
    this.core.stop();
  }

  /** Stops the actors and waits for pending writes; the transport and log are the caller's. */
  async stop(): Promise<void> {
    this.writeHeld();
    await this.chain.catch(() => undefined);
    this.stopped = true;
    this.unwatch();
    this.core.stop();
  }
}
