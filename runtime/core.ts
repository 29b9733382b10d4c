/**
 * A node as a step function: its actor hierarchy and its replica state, with
 * nothing attached. Feed it inputs (a turn's messages, the end of a turn, an
 * admin command; its own clock ticks on the clock it was given), then `take`
 * the turn's output as one value, a `Ready` (actors/ready.ts): the events to
 * append, whether they must be fsynced, what may leave at once and what
 * leaves after the write. The host does the I/O.
 *
 * The actors never write the replica state: they emit `record` effects, and
 * the core folds each into the state (`applyEvent`, the same fold replay
 * uses) as it takes it, so the state is always the fold of what was
 * recorded.
 */
import { createActor, type Actor, type AnyActorRef, type InspectionEvent, type Observer } from 'xstate';
import type { Effect, Emitted } from '../actors/effects.js';
import type { NodeInput } from '../actors/events.js';
import { ACTOR, nodeInfo, NO_VIEW, type NodeInfo, type PlantedBug, type View } from '../actors/node-info.js';
import { nodeMachine, ticksUntilDue } from '../actors/node.js';
import { ReadyBuilder, type Ready } from '../actors/ready.js';
import { formatBallot, nodeName, type LogEventProps, type NodeId } from '../protocol/messages.js';
import type { Topology } from '../protocol/topology.js';
import { applyEvent, type ReplicaState } from '../store/state.js';

/** The node's clock: its time in ms, and timers on it (real or simulated). */
export interface Clock {
  now(): number;
  setTimeout(fn: (...args: unknown[]) => void, ms: number): unknown;
  clearTimeout(id: unknown): void;
}

export interface CoreOptions {
  topology: Topology;
  node: NodeId;
  /** The state replayed from the node's log. */
  state: ReplicaState;
  seed?: number;
  clock: Clock;
  /** Called once when an actor throws or an invariant breaks: the core takes nothing more. */
  onFault: (error: Error) => void;
  /** Where role changes are told (the node's log file). */
  logger?: (line: string) => void;
  /** XState inspection of every actor of the node (the inspection stream). */
  inspect?: Observer<InspectionEvent> | ((event: InspectionEvent) => void);
  /** The simulator only: bugs planted on purpose (actors/node-info.ts). */
  plantedBugs?: readonly PlantedBug[];
}

/** The fixed children of the root, whose effects the core carries out. */
const CHILDREN = [ACTOR.election, ACTOR.acceptor, ACTOR.proposer, ACTOR.executor, ACTOR.lockManager, ACTOR.transactions] as const;

export class NodeCore {
  readonly state: ReplicaState;
  readonly info: NodeInfo;
  private readonly opts: CoreOptions;
  private readonly actor: Actor<typeof nodeMachine>;
  private readonly out = new ReadyBuilder();
  private faulted = false;
  /**
   * The logical clock. Ticks fall every `tickMs` from the start, but the
   * node wakes only for a tick some actor acts on (`ticksUntilDue`). The
   * ticks in between reach the actors as a count, with that tick or before
   * the next input, whichever comes first: every input finds the counters
   * where ticking every `tickMs` would have left them.
   */
  private tickAt = 0;
  /** Ticks from `tickAt` to the next one an actor acts on (Infinity: none). */
  private dueIn = Infinity;
  private timer: unknown = null;
  private timerAt = Infinity;

  constructor(opts: CoreOptions) {
    this.opts = opts;
    this.state = opts.state;
    this.info = nodeInfo(opts.topology, opts.node, opts.seed ?? 1, opts.plantedBugs);
    this.actor = createActor(nodeMachine, {
      input: { info: this.info, state: this.state },
      clock: opts.clock,
      id: nodeName(opts.node),
      systemId: ACTOR.node,
      inspect: opts.inspect,
    });
  }

  start(): void {
    this.actor.subscribe({ error: (err) => this.fault(err) });
    this.actor.start();
    const carryOut = (e: Emitted) => {
      if (e.type === 'effects') for (const effect of e.effects) this.carryOut(effect);
      else this.carryOut(e);
    };
    this.actor.on('*', carryOut);
    for (const id of CHILDREN) (this.actor.system.get(id) as AnyActorRef).on('*', carryOut);
    this.tickAt = this.opts.clock.now();
    this.arm();
  }

  /**
   * One input to the root actor; its effects collect until `take`. The
   * timer is set again after each input but a turn's messages, which the
   * end of the turn always follows.
   */
  send(input: NodeInput): void {
    if (this.faulted) return;
    this.catchUp(false);
    this.actor.send(input);
    if (input.type !== 'messages') this.arm();
  }

  /**
   * Delivers the ticks that have fallen since the last. Before an input,
   * only those short of the next due one: that one is the timer's, so an
   * input that comes as it falls is taken first. From the timer, the due
   * tick and those before it; ticks past it that a late timer (a busy or
   * stalled process) finds are dropped, as a periodic tick that fires late
   * would have dropped them, so that a node that was not running does not
   * count its leader silent for that time.
   */
  private catchUp(fromTimer: boolean): void {
    const { tickMs } = this.info.tuning;
    const fallen = Math.max(0, Math.floor((this.opts.clock.now() - this.tickAt) / tickMs));
    const n = fromTimer ? this.dueIn : Math.min(fallen, this.dueIn - 1);
    if (n <= 0) return;
    this.tickAt += (fromTimer ? Math.max(n, fallen) : n) * tickMs;
    // Counted from the new tickAt (a turn's messages are not followed by arm, its end is).
    this.dueIn -= n;
    this.actor.send({ type: 'tick', n });
  }

  /** Sets the timer for the next due tick (if it moved). */
  private arm(): void {
    if (this.faulted) return;
    const { clock } = this.opts;
    this.dueIn = ticksUntilDue(this.actor);
    const at = this.tickAt + this.dueIn * this.info.tuning.tickMs;
    if (at === this.timerAt) return;
    if (this.timer !== null) clock.clearTimeout(this.timer);
    this.timer = null;
    this.timerAt = at;
    if (at === Infinity) return;
    this.timer = clock.setTimeout(() => {
      this.timer = null;
      this.timerAt = Infinity;
      if (this.faulted) return;
      this.catchUp(true);
      this.arm();
    }, Math.max(0, at - clock.now()));
  }

  /** The output collected since the last take. */
  take(): Ready {
    return this.out.take();
  }

  /** The messages collected since the last take that may leave at once (see ReadyBuilder.takeNow). */
  takeNow(): Ready['now'] {
    return this.out.takeNow();
  }

  /** Whether output is waiting to be taken. */
  get hasOutput(): boolean {
    return !this.out.isEmpty;
  }

  /** Who leads, as this node's election actor last decided. */
  get view(): View {
    const election = this.actor.system.get(ACTOR.election) as AnyActorRef | undefined;
    return (election?.getSnapshot()?.context?.view as View | undefined) ?? NO_VIEW;
  }

  /** The root actor (for inspection and the studio). */
  get root(): Actor<typeof nodeMachine> {
    return this.actor;
  }

  stop(): void {
    this.faulted = true;
    this.out.clear();
    if (this.timer !== null) this.opts.clock.clearTimeout(this.timer);
    this.timer = null;
    this.actor.stop();
  }

  private carryOut(effect: Effect): void {
    if (this.faulted) return;
    try {
      if (effect.type === 'record') this.record(effect.event);
      else if (effect.type === 'send') this.sendOut(effect.envelope);
    } catch (err) {
      // (An emit listener's throw would otherwise escape XState as an uncaught error.)
      this.fault(err);
    }
  }

  private record(ev: LogEventProps): void {
    applyEvent(this.state, ev);
    this.out.record(ev);
    if (ev.role) this.tellRole(ev.role);
  }

  private sendOut(envelope: Ready['now'][number]): void {
    // A failed node is disconnected: nothing leaves it. Peer messages carry the set they belong to.
    if (this.state.failed) return;
    this.out.send(envelope.to ? Object.assign({}, envelope, { epoch: this.state.set }) : envelope);
  }

  /** Role and ballot changes go to the node's log file: when a cluster changes leader, and who started it. */
  private tellRole(r: NonNullable<LogEventProps['role']>): void {
    const b = formatBallot(r.ballot);
    const line =
      r.role === 'leader'
        ? `leading with ballot ${b}`
        : r.role === 'candidate'
          ? `campaigning with ballot ${b}`
          : r.role === 'precandidate'
            ? `asking for pre-votes (ballot ${b})`
          : `following ${r.leader ? nodeName(r.leader) : 'n?'} (ballot ${b})`;
    this.opts.logger?.(`${line}: ${r.why ?? ''}`);
  }

  private fault(err: unknown): void {
    if (this.faulted) return;
    this.faulted = true;
    this.out.clear();
    this.opts.onFault(err instanceof Error ? err : new Error(String(err)));
  }
}
