/**
 * The studio's live side: what a running cluster is doing, gathered for the
 * page. Each node's status is polled (role, ballot, commit and execute
 * points, WAL); the nodes the page looks at stream their actors' steps
 * (the inspection stream, held by a lease renewed every second, as
 * `shardbank inspect` does). Steps become lit states, flashed transitions and
 * the messages seen arriving; they go to the page in one batch every
 * FLUSH_MS.
 *
 * Watching costs the watched node CPU (every actor step is recorded,
 * encoded and sent), and a loaded leader that slows down slows every client
 * that waits on it. So by default (`auto`) every node is streamed only while
 * the cluster is quiet: once a streamed node takes more than
 * BUSY_STEPS_PER_S protocol steps a second (steps on a tick or at the end of
 * a turn do not count: an idle node takes hundreds of those), the studio
 * samples instead: only the node whose charts are open, for SAMPLE_MS every
 * SAMPLE_EVERY_MS (a short lease, which the node lets run out), until the
 * load has passed for CALM_MS. Nothing is watched while no page looks at Live.
 */
import type { AdminClient } from '../client/admin.js';
import { activeIds, firedEdges } from '../charts/model.js';
import { formatBallot, nodeName, type NodeId } from '../protocol/messages.js';
import { allNodes, type Topology } from '../protocol/topology.js';
import type { InspectRecord } from '../runtime/inspect.js';
import type { DrawnChart } from './studio-charts.js';

const STATUS_EVERY_MS = 500;
const STATUS_TIMEOUT_MS = 2000;
const RENEW_EVERY_MS = 1000;
const LEASE_MS = 3000;
const FLUSH_MS = 150;
const BUSY_STEPS_PER_S = 300;
/** How long the cluster must stay below the busy rate before every node is streamed again. */
const CALM_MS = 10_000;
/** Under load: a lease this long on the open node… */
const SAMPLE_MS = 250;
/** …this often (a tenth of the time or so). */
const SAMPLE_EVERY_MS = 2500;
/** How often the page hears from the studio while the cluster is busy (sampling). */
const SAMPLING_FLUSH_MS = 500;
/** How long a 2PC actor that ended stays on the page. */
const ENDED_KEPT_MS = 5000;
/** Distinct steps flashed per batch at most (a busy node steps thousands of times a second). */
const FIRED_MAX = 60;
/** Parsed state values kept (a 2PC actor's states are few; this bounds a malformed stream). */
const STATES_MAX = 1000;
/** Events that fire every tick and say nothing about the protocol: not flashed, not counted as messages. */
const QUIET_EVENTS = new Set(['tick', 'endOfTurn', 'xstate.init', 'view']);

export type WatchMode = 'auto' | 'all' | 'one';

export interface ActorView {
  actor: string;
  machine: string;
  value: unknown;
  lit: string[];
  /** A 2PC actor that stopped (in its final state): kept a few seconds so that the page sees how it ended. */
  endedAt?: number;
}

export interface NodeLive {
  node: NodeId;
  reachable: boolean;
  error: string;
  status: Record<string, unknown> | null;
  watched: boolean;
  /** Fixed actors by machine id. */
  actors: Record<string, ActorView>;
  /** 2PC actors by actor id (c:… coordinator, p:… participant). */
  txs: Record<string, ActorView>;
  recordsPerS: number;
  /** Of those, steps for protocol events (not ticks, not ends of turns). */
  stepsPerS: number;
}

export interface Fired {
  node: NodeId;
  machine: string;
  actor: string;
  event: string;
  /** Edge ids of the chart, or none for a step inside a state (the page flashes that state's line for `event`). */
  edges: string[];
  /** The active states after the step. */
  lit: string[];
}

export interface LiveBatch {
  nodes: NodeLive[];
  fired: Fired[];
  messages: { from: NodeId; to: NodeId; kind: string; count: number }[];
  /** `watching`: the nodes streamed all the time; `sampled`: the node streamed in short bursts (under load). */
  watch: { mode: WatchMode; selected: NodeId; watching: NodeId[]; sampled: NodeId | null; busy: boolean };
}

export interface LiveOptions {
  topology: Topology;
  admin: AdminClient;
  charts: DrawnChart[];
  /** Sends a batch to every page. */
  emit: (batch: LiveBatch) => void;
}

interface NodeState extends NodeLive {
  statusInFlight: boolean;
  records: number;
  steps: number;
}

/** `"from":4` in an event's JSON: the node a message came from. */
const FROM = /"from":(\d+)/;
/** A 2PC message's kind inside a `message` event's envelope. */
const TX_KIND = /"(txPrepare|txVote|txDecision|txAck|txQuery)"/;

export class LiveCluster {
  private readonly nodes = new Map<NodeId, NodeState>();
  private readonly charts: Map<string, DrawnChart>;
  private fired: Fired[] = [];
  private firedKeys = new Set<string>();
  private readonly states = new Map<string, { value: unknown; lit: string[] }>();
  private messages = new Map<string, number>();
  private timers: ReturnType<typeof setInterval>[] = [];
  private mode: WatchMode = 'auto';
  private selected: NodeId;
  private looking = false;
  /** When a streamed node last took more than BUSY_STEPS_PER_S protocol steps a second (0: not busy). */
  private busyAt = 0;
  private dirty = true;

  constructor(private readonly opts: LiveOptions) {
    this.charts = new Map(opts.charts.map((c) => [c.id, c]));
    const nodes = allNodes(opts.topology);
    this.selected = nodes[0]!;
    for (const node of nodes) {
      this.nodes.set(node, { node, reachable: false, error: 'not asked yet', status: null, watched: false, actors: {}, txs: {}, recordsPerS: 0, stepsPerS: 0, statusInFlight: false, records: 0, steps: 0 });
    }
  }

  start(): void {
    this.opts.admin.onInspection((records) => this.onRecords(records));
    this.timers.push(setInterval(() => this.pollStatus(), STATUS_EVERY_MS));
    this.timers.push(setInterval(() => this.renewLeases(), RENEW_EVERY_MS));
    this.timers.push(setInterval(() => this.sample(), SAMPLE_EVERY_MS));
    this.timers.push(setInterval(() => this.flush(), FLUSH_MS));
    this.pollStatus();
  }

  stop(): void {
    this.timers.forEach((t) => clearInterval(t));
    this.timers = [];
  }

  /** What the page asks to see: whether it looks at Live, which node's charts are open, how many nodes to watch. */
  setWatch(w: { looking?: boolean; mode?: WatchMode; selected?: NodeId }): void {
    if (w.looking !== undefined) this.looking = w.looking;
    if (w.mode !== undefined) this.mode = w.mode;
    if (w.selected !== undefined && this.nodes.has(w.selected)) this.selected = w.selected;
    this.renewLeases();
    this.dirty = true;
  }

  /** The nodes to stream from all the time now. */
  watching(): NodeId[] {
    if (!this.looking || this.sampling()) return [];
    if (this.mode === 'one') return [this.selected];
    return [...this.nodes.keys()];
  }

  /** Under load in auto mode: the open node is sampled instead of streamed. */
  private sampling(): boolean {
    return this.looking && this.mode === 'auto' && this.busyAt > 0;
  }

  /** A short lease on the open node (see the file header). */
  private sample(): void {
    if (!this.sampling()) return;
    const n = this.nodes.get(this.selected);
    if (!n) return;
    n.watched = true;
    this.opts.admin.request(n.node, { inspect: { leaseMs: SAMPLE_MS } }).catch(() => undefined);
  }

  /** Everything known now (for a page that just connected). */
  snapshot(): LiveBatch {
    return { nodes: this.nodeViews(), fired: [], messages: [], watch: this.watchInfo() };
  }

  private watchInfo(): LiveBatch['watch'] {
    return { mode: this.mode, selected: this.selected, watching: this.watching(), sampled: this.sampling() ? this.selected : null, busy: this.busyAt > 0 };
  }

  private nodeViews(): NodeLive[] {
    const watched = new Set(this.watching());
    if (this.sampling()) watched.add(this.selected);
    return [...this.nodes.values()].map((n) => ({
      node: n.node,
      reachable: n.reachable,
      error: n.error,
      status: n.status,
      watched: watched.has(n.node),
      actors: n.actors,
      txs: n.txs,
      recordsPerS: n.recordsPerS,
      stepsPerS: n.stepsPerS,
    }));
  }

  private pollStatus(): void {
    for (const n of this.nodes.values()) {
      if (n.statusInFlight) continue;
      n.statusInFlight = true;
      let settled = false;
      const late = setTimeout(() => {
        if (settled) return;
        if (n.reachable) this.dirty = true;
        n.reachable = false;
        n.error = `${nodeName(n.node)} does not answer`;
      }, STATUS_TIMEOUT_MS);
      this.opts.admin
        .request(n.node, { status: {} })
        .then((r) => {
          const s = r.status ?? {};
          n.status = {
            role: s.role ?? '',
            leader: s.leader ?? 0,
            ballot: formatBallot(s.ballot),
            failed: !!s.failed,
            commitThrough: s.commitThrough ?? 0,
            executedThrough: s.executedThrough ?? 0,
            walEntries: s.walEntries ?? 0,
            unacked: s.unacked ?? 0,
            cpuMs: s.cpuMs ?? 0,
            rssMb: Math.round(Number(s.rssBytes ?? 0) / 2 ** 20),
          };
          n.reachable = true;
          n.error = '';
          this.dirty = true;
        })
        .catch((err: Error) => {
          n.reachable = false;
          n.error = err.message;
          this.dirty = true;
        })
        .finally(() => {
          settled = true;
          clearTimeout(late);
          n.statusInFlight = false;
        });
    }
  }

  private renewLeases(): void {
    const watch = new Set(this.watching());
    for (const n of this.nodes.values()) {
      n.watched = watch.has(n.node) || (this.sampling() && n.node === this.selected);
      if (!watch.has(n.node)) continue;
      // A node that is down does not answer; the lease is asked again on the next round.
      this.opts.admin.request(n.node, { inspect: { leaseMs: LEASE_MS } }).catch(() => undefined);
    }
  }

  private onRecords(records: InspectRecord[]): void {
    for (const r of records) {
      const n = this.nodes.get(r.node ?? 0);
      if (!n || !n.watched) continue;
      n.records++;
      this.onRecord(n, r);
    }
    this.dirty = true;
  }

  private onRecord(n: NodeState, r: InspectRecord): void {
    const machine = r.machine ?? '';
    const actor = r.actor ?? '';
    const chart = this.charts.get(machine);
    if (!chart) return;
    const perTx = chart.perTransaction;
    const views = perTx ? n.txs : n.actors;
    const key = perTx ? actor : machine;
    if (r.kind === 'spawned') {
      views[key] = { actor, machine, value: null, lit: [] };
      return;
    }
    const state = this.stateOf(machine, r.stateJson || 'null');
    if (!state) return;
    const { value, lit } = state;
    const before = views[key]?.lit ?? [];
    views[key] = r.kind === 'stopped' ? { actor, machine, value, lit, endedAt: Date.now() } : { actor, machine, value, lit };
    const event = r.event ?? '';
    if (!QUIET_EVENTS.has(event)) n.steps++;
    // A state change always counts; a step inside a state only for events that are not every tick's.
    if (r.changed || !QUIET_EVENTS.has(event)) this.noteFired(n.node, machine, actor, event, r.changed ? firedEdges(chart.chart, before, event, lit) : [], lit);
    this.noteMessage(n.node, event, r.eventJson ?? '');
  }

  /** A state value and its active ids, parsed once per distinct state (a machine has a handful). */
  private stateOf(machine: string, json: string): { value: unknown; lit: string[] } | null {
    const key = `${machine} ${json}`;
    let s = this.states.get(key);
    if (!s) {
      try {
        const value = JSON.parse(json) as unknown;
        s = { value, lit: activeIds(machine, value) };
      } catch {
        return null;
      }
      if (this.states.size < STATES_MAX) this.states.set(key, s);
    }
    return s;
  }

  /**
   * A step to flash on the page. Steps that say the same (same node, chart,
   * arrows and event, and for a state change the same state after it) are
   * sent once per batch: a busy leader takes the same few arrows thousands
   * of times a second.
   */
  private noteFired(node: NodeId, machine: string, actor: string, event: string, edges: string[], lit: string[]): void {
    const key = `${node}|${machine}|${event}|${edges.join(',')}|${edges.length > 0 ? lit.join(',') : ''}`;
    if (this.firedKeys.has(key) || this.fired.length >= FIRED_MAX) return;
    this.firedKeys.add(key);
    this.fired.push({ node, machine, actor, event, edges, lit });
  }

  /** A step caused by a message from another node: an arrow from it to this one. */
  private noteMessage(to: NodeId, event: string, json: string): void {
    if (QUIET_EVENTS.has(event)) return;
    const m = FROM.exec(json);
    if (!m) return;
    const from = Number(m[1]);
    if (from === 0 || from === to || !this.nodes.has(from)) return;
    const kind = event === 'message' ? (TX_KIND.exec(json)?.[1] ?? 'message') : event;
    const key = `${from}>${to}>${kind}`;
    this.messages.set(key, (this.messages.get(key) ?? 0) + 1);
  }

  /** Load shedding (see the file header), from the record rates of the last batch. */
  private adjustWatch(elapsedMs: number): void {
    let busiest = 0;
    for (const n of this.nodes.values()) {
      n.recordsPerS = Math.round((n.records * 1000) / elapsedMs);
      n.stepsPerS = Math.round((n.steps * 1000) / elapsedMs);
      n.records = 0;
      n.steps = 0;
      if (n.watched) busiest = Math.max(busiest, n.stepsPerS);
    }
    const now = Date.now();
    const wasSampling = this.sampling();
    if (busiest > BUSY_STEPS_PER_S) this.busyAt = now;
    else if (this.busyAt > 0 && now - this.busyAt > CALM_MS) this.busyAt = 0;
    if (this.sampling() !== wasSampling) {
      // Streaming gives way to sampling (the leases run out), or comes back.
      this.renewLeases();
      this.sample();
      this.dirty = true;
    }
  }

  private lastFlush = Date.now();
  private lastEmit = 0;

  /** Drops 2PC actors that ended more than ENDED_KEPT_MS ago. */
  private forgetEnded(now: number): void {
    for (const n of this.nodes.values()) {
      for (const [key, v] of Object.entries(n.txs)) {
        if (v.endedAt !== undefined && now - v.endedAt > ENDED_KEPT_MS) {
          delete n.txs[key];
          this.dirty = true;
        }
      }
    }
  }

  private flush(): void {
    const now = Date.now();
    const elapsed = Math.max(1, now - this.lastFlush);
    this.lastFlush = now;
    this.adjustWatch(elapsed);
    this.forgetEnded(now);
    // Under load the page is told less often too: its own rendering costs the machine CPU.
    if (!this.dirty || (this.sampling() && now - this.lastEmit < SAMPLING_FLUSH_MS)) return;
    this.dirty = false;
    this.lastEmit = now;
    const messages = [...this.messages].map(([key, count]) => {
      const [from, to, kind] = key.split('>');
      return { from: Number(from), to: Number(to), kind: kind!, count };
    });
    this.messages = new Map();
    const fired = this.fired;
    this.fired = [];
    this.firedKeys.clear();
    this.opts.emit({ nodes: this.nodeViews(), fired, messages, watch: this.watchInfo() });
  }
}
