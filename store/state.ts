/**
 * A node's durable state and the fold that builds it from the event log.
 * The live node changes its state only by applying events through
 * `applyEvent`, the same function replay uses, so a node's state always
 * equals the fold of its log (DESIGN rule 3).
 */
import {
  ballotEquals,
  compareBallots,
  formatBallot,
  requestId,
  slotKeyOf,
  shardbank,
  type Ballot,
  type ClientReply,
  type Command,
  type Entry,
  type LogEventProps,
  type NodeId,
  type ViewRecord,
} from '../protocol/messages.js';
import { clusterOfItem, type Topology } from '../protocol/topology.js';
import { invariant } from './invariant.js';

export interface LogSlot {
  seq: number;
  phase: number;
  ballot: Ballot;
  /** null is a no-op. */
  command: Command | null;
  committed: boolean;
  /** Why an abort entry aborts. */
  reason?: string;
  /** For a 2PC decision at its prepare's seq: the seq it executes at. */
  runsAt?: number;
}

/** A prepared cross-shard transaction: its before-images hold the lock and allow the undo. */
export interface WalEntry {
  txid: string;
  seq: number;
  role: TxRole;
  command: Command;
  before: { item: number; balance: number }[];
}

export type TxRole = 'coordinator' | 'participant';

/** A coordinator's decision that the participant has not acknowledged yet. */
export interface Unacked {
  txid: string;
  commit: boolean;
  command: Command;
  reason: string;
}

export interface StoredReply {
  timestamp: number;
  reply: ClientReply;
  /** The seq the request ran at (0 when unknown). */
  seq: number;
}

export interface ReplicaState {
  node: NodeId;
  set: number;
  initialBalance: number;
  /** The leader the set started with. */
  initialLeader: NodeId;
  /** The highest ballot this acceptor promised. */
  promised: Ballot;
  /** The accept log: one Paxos instance per seq (see slotKeyOf). */
  log: Map<number, LogSlot>;
  /** Slots at or below this seq were dropped by a snapshot: all of them had executed. */
  lowWater: number;
  maxSeq: number;
  /** Every seq up to here has a committed entry. */
  commitThrough: number;
  executedThrough: number;
  /** Balances that differ from the initial one or were written. */
  balances: Map<number, number>;
  /** Items written since the set started (PrintDB). */
  modified: Set<number>;
  /** The last reply per client, for exactly-once. */
  replies: Map<string, StoredReply>;
  views: ViewRecord[];
  failed: boolean;
  /** The write-ahead log of prepared cross-shard transactions, by txid. */
  wal: Map<string, WalEntry>;
  /** Items locked by a prepared cross-shard transaction: item -> txid. */
  walLocks: Map<number, string>;
  /** Decided cross-shard transactions: txid -> commit? */
  decisions: Map<string, boolean>;
  unacked: Map<string, Unacked>;
  /** ACKs heard before their decision ran here (the decision then needs none). */
  earlyAcks: Set<string>;
  /** 2PC decision entries in the log: txid -> their instance keys. */
  decisionSlots: Map<string, number[]>;
  /** Resharding: items whose owner a move changed (into or out of this cluster), with the owner's version. */
  owners: Map<number, Ownership>;
  /**
   * Resharding: the committed transfers, oldest first; the last
   * `historyWindow` of them are the history (`recentTransfers`). The array
   * runs up to twice the window before its older half is dropped at once:
   * dropping one at a time moves the whole window on every commit.
   */
  recent: CommittedTransfer[];
  historyWindow: number;
}

export interface Ownership {
  cluster: number;
  version: number;
}

export interface CommittedTransfer {
  sender: number;
  receiver: number;
  /** A cross-shard transfer's txid (both its clusters keep it), or ''. */
  txid: string;
}

/** Committed transfers a replica keeps when its log does not say (a set flushed by an older node). */
export const DEFAULT_HISTORY_WINDOW = 10000;

/**
 * The replica state as the actors see it: they read it and never write it.
 * It changes only when the host folds a recorded event into it (`applyEvent`).
 */
export type ReplicaView = {
  readonly [K in keyof ReplicaState]: ReplicaState[K] extends Map<infer A, infer B>
    ? ReadonlyMap<A, Readonly<B>>
    : ReplicaState[K] extends Set<infer A>
      ? ReadonlySet<A>
      : ReplicaState[K] extends (infer A)[]
        ? readonly A[]
        : Readonly<ReplicaState[K]>;
};

export function emptyState(node: NodeId, initialBalance = 10): ReplicaState {
  return {
    node,
    set: 0,
    initialBalance,
    initialLeader: 0,
    promised: { round: 0, node: 0 },
    log: new Map(),
    lowWater: 0,
    maxSeq: 0,
    commitThrough: 0,
    executedThrough: 0,
    balances: new Map(),
    modified: new Set(),
    replies: new Map(),
    views: [],
    failed: false,
    wal: new Map(),
    walLocks: new Map(),
    decisions: new Map(),
    unacked: new Map(),
    earlyAcks: new Set(),
    decisionSlots: new Map(),
    owners: new Map(),
    recent: [],
    historyWindow: DEFAULT_HISTORY_WINDOW,
  };
}

export function balanceOf(state: ReplicaView, item: number): number {
  return state.balances.get(item) ?? state.initialBalance;
}

/**
 * Who owns an item as this replica knows it: a move into or out of its
 * cluster says so; otherwise the configured shard map (version 0). Null for
 * an item out of range.
 */
export function ownerOf(topology: Topology, state: ReplicaView, item: number): Ownership | null {
  const moved = state.owners.get(item);
  if (moved) return moved;
  const cluster = clusterOfItem(topology, item);
  return cluster === null ? null : { cluster, version: 0 };
}

/** True when an entry that runs at this seq is committed. */
export function isSeqCommitted(state: ReplicaView, seq: number): boolean {
  return committedAt(state, seq).length > 0;
}

/** The committed entry that runs at one seq (a 2PC decision runs at a seq of its own), if any. */
export function committedAt(state: ReplicaView, seq: number): readonly Readonly<LogSlot>[] {
  const slot = state.log.get(seq);
  return slot?.committed ? [slot] : [];
}

/** True when the log holds a decision entry (committed or not) for this transaction. */
export function hasDecisionEntry(state: ReplicaView, txid: string): boolean {
  return state.decisionSlots.has(txid);
}

function advanceCommitThrough(state: ReplicaState): void {
  while (isSeqCommitted(state, state.commitThrough + 1)) state.commitThrough++;
}

function copyBallot(b: Ballot | null | undefined): Ballot {
  return { round: b?.round ?? 0, node: b?.node ?? 0 };
}

/** A log entry (as it travels and as snapshots keep it) as a slot of the log. */
export function slotFromEntry(e: Entry, committed: boolean): LogSlot {
  return {
    seq: e.seq ?? 0,
    phase: e.phase ?? 0,
    ballot: copyBallot(e.ballot),
    command: e.command ?? null,
    committed,
    reason: e.reason ?? '',
    runsAt: e.runsAt ?? 0,
  };
}

/** A slot of the log as an entry, under `ballot` when given (a leader re-proposing it). */
export function entryFromSlot(slot: Readonly<LogSlot>, ballot: Ballot = slot.ballot): Entry {
  return {
    seq: slot.seq,
    phase: slot.phase,
    ballot: copyBallot(ballot),
    command: slot.command ?? undefined,
    committed: slot.committed,
    reason: slot.reason ?? '',
    runsAt: slot.runsAt ?? 0,
  };
}

/** The same value (command and phase) in two slots: what Paxos promises of a chosen slot. */
function sameValue(a: Readonly<LogSlot>, b: Readonly<LogSlot>): boolean {
  return a.phase === b.phase && (a.command ? requestId(a.command) : null) === (b.command ? requestId(b.command) : null);
}

/** Before-images as the WAL keeps them. */
function beforeImages(list: shardbank.IItemBalance[] | null | undefined): { item: number; balance: number }[] {
  return (list ?? []).map((b) => ({ item: b.item ?? 0, balance: b.balance ?? 0 }));
}

/**
 * Stores a slot, keeping the index of 2PC decisions by transaction up to
 * date: a value from a higher ballot can replace a decision in its slot, and
 * then that transaction has no decision entry there any more (were it still
 * indexed, no leader would ever decide it again, and its WAL would hold its
 * lock for good).
 */
function putSlot(state: ReplicaState, key: number, slot: LogSlot): void {
  const before = decidedBy(state.log.get(key));
  const after = decidedBy(slot);
  if (before !== null && before !== after) keepDecisionSlots(state, before, (k) => k !== key);
  state.log.set(key, slot);
  if (after === null) return;
  const keys = state.decisionSlots.get(after) ?? [];
  if (!keys.includes(key)) state.decisionSlots.set(after, [...keys, key]);
}

/**
 * Why this replica's log aborted a transaction, while the abort entry is
 * still in it (a lookup for the rare PREPARE sent again after the decision:
 * it scans the log when the decision is not indexed at a prepare's seq).
 */
export function abortReasonOf(state: ReplicaView, txid: string): string | undefined {
  for (const key of state.decisionSlots.get(txid) ?? []) {
    const slot = state.log.get(key);
    if (slot?.phase === shardbank.Phase.PHASE_ABORT && slot.reason) return slot.reason;
  }
  for (const slot of state.log.values()) {
    if (slot.phase === shardbank.Phase.PHASE_ABORT && slot.reason && slot.command && requestId(slot.command) === txid) return slot.reason;
  }
  return undefined;
}

/** The transaction a slot holds a 2PC decision of, or null. */
function decidedBy(slot: LogSlot | undefined): string | null {
  return slot && (slot.runsAt ?? 0) > 0 && slot.command ? requestId(slot.command) : null;
}

/** Keeps the instance keys of a transaction's decision entries that pass; none left, it has none. */
function keepDecisionSlots(state: ReplicaState, txid: string, keep: (key: number) => boolean): void {
  const kept = (state.decisionSlots.get(txid) ?? []).filter(keep);
  if (kept.length === 0) state.decisionSlots.delete(txid);
  else state.decisionSlots.set(txid, kept);
}

/** Applies one event to the state, in place. */
export function applyEvent(state: ReplicaState, ev: LogEventProps): void {
  if (ev.accepted) {
    for (const e of ev.accepted.entries ?? []) {
      const seq = e.seq ?? 0;
      const key = slotKeyOf(e);
      // Below the low-water mark every slot has executed and been dropped; a late copy changes nothing.
      if (key <= state.lowWater) continue;
      const slot = state.log.get(key);
      const fresh = slotFromEntry(e, false);
      // A committed value is chosen: no later ballot can carry another one.
      if (slot?.committed) {
        invariant(sameValue(slot, fresh), () => `slot ${key} is chosen, yet ballot ${formatBallot(e.ballot)} carries another value`);
        slot.ballot = copyBallot(e.ballot);
        continue;
      }
      putSlot(state, key, fresh);
      if (seq > state.maxSeq) state.maxSeq = seq;
      if (key > state.maxSeq) state.maxSeq = key;
    }
    return;
  }
  if (ev.committed) {
    for (const key of ev.committed.slots ?? []) {
      const slot = state.log.get(key);
      if (slot) slot.committed = true;
    }
    advanceCommitThrough(state);
    return;
  }
  if (ev.executed) {
    const x = ev.executed;
    const seq = x.seq ?? 0;
    invariant(seq <= state.executedThrough + 1, () => `execution skips from seq ${state.executedThrough} to ${seq}`);
    if (seq > state.executedThrough) state.executedThrough = seq;
    for (const w of x.writes ?? []) {
      invariant((w.balance ?? 0) >= 0, () => `seq ${seq} writes a negative balance to item ${w.item}`);
      state.balances.set(w.item ?? 0, w.balance ?? 0);
      state.modified.add(w.item ?? 0);
    }
    for (const item of x.removes ?? []) {
      state.balances.delete(item);
      state.modified.delete(item);
    }
    for (const o of x.owners ?? []) state.owners.set(o.item ?? 0, { cluster: o.cluster ?? 0, version: o.version ?? 0 });
    noteCommitted(state, x);
    if (x.txid && !applyTransaction(state, x)) return;
    const client = x.command?.client;
    if (client) {
      const timestamp = x.command?.timestamp ?? 0;
      const prev = state.replies.get(client);
      if (!prev || prev.timestamp <= timestamp) {
        const seq = x.ranAt || seq0(x);
        state.replies.set(client, {
          timestamp,
          reply: { client, timestamp, status: x.status ?? 0, reason: x.reason ?? '', seq },
          seq,
        });
      }
    }
    return;
  }
  if (ev.promised) {
    if (compareBallots(ev.promised.ballot, state.promised) > 0) state.promised = copyBallot(ev.promised.ballot);
    return;
  }
  if (ev.view) {
    state.views.push(ev.view);
    return;
  }
  if (ev.flushed) {
    const f = ev.flushed;
    const fresh = emptyState(state.node, f.initialBalance ?? 10);
    Object.assign(state, fresh, {
      set: f.set ?? 0,
      initialLeader: f.leader ?? 0,
      promised: copyBallot(f.ballot),
      historyWindow: f.historyWindow || DEFAULT_HISTORY_WINDOW,
    });
    return;
  }
  if (ev.snapshot) {
    installSnapshot(state, ev.snapshot);
    return;
  }
  if (ev.acked) {
    const txid = ev.acked.txid ?? '';
    if (!state.unacked.delete(txid) && !state.decisions.has(txid)) state.earlyAcks.add(txid);
    return;
  }
  if (ev.failed) {
    state.failed = true;
    return;
  }
  if (ev.recovered) {
    state.failed = false;
  }
}

/** The seq an executed event names (older logs carry no ran_at). */
function seq0(x: shardbank.Executed.$Properties): number {
  return x.seq ?? 0;
}

/**
 * Resharding's history: a transfer that committed here (an intra-shard one
 * when it executes, a cross-shard one when its commit decision does, in both
 * clusters), the oldest dropped past the window.
 */
function noteCommitted(state: ReplicaState, x: shardbank.Executed.$Properties): void {
  const t = x.command?.transfer;
  if (!t || x.status !== shardbank.Status.COMMITTED) return;
  if (x.txid && x.phase !== shardbank.Phase.PHASE_COMMIT) return;
  state.recent.push({ sender: t.sender ?? 0, receiver: t.receiver ?? 0, txid: x.txid ?? '' });
  if (state.recent.length >= 2 * state.historyWindow) state.recent.splice(0, state.recent.length - state.historyWindow);
}

/** Resharding's history: the last `historyWindow` committed transfers, oldest first. */
export function recentTransfers(state: { readonly recent: readonly CommittedTransfer[]; readonly historyWindow: number }): readonly CommittedTransfer[] {
  const r = state.recent;
  return r.length > state.historyWindow ? r.slice(r.length - state.historyWindow) : r;
}

/**
 * The 2PC part of an Executed event: a prepare opens a WAL entry (and its
 * lock), a decision closes it. Returns whether the outcome is the client's
 * answer here (the coordinator's decision), to be kept for exactly-once.
 */
function applyTransaction(state: ReplicaState, x: shardbank.Executed.$Properties): boolean {
  const txid = x.txid!;
  const role: TxRole = x.role === 'participant' ? 'participant' : 'coordinator';
  const phase = x.phase ?? 0;
  if (phase === shardbank.Phase.PHASE_PREPARE) {
    if (x.status === shardbank.Status.COMMITTED) {
      const before = beforeImages(x.before);
      for (const b of before) {
        const holder = state.walLocks.get(b.item);
        invariant(holder === undefined || holder === txid, () => `${txid} prepares item ${b.item}, which ${holder} holds prepared`);
        state.walLocks.set(b.item, txid);
      }
      state.wal.set(txid, { txid, seq: x.seq ?? 0, role, command: x.command ?? {}, before });
    }
    return false;
  }
  const commit = phase === shardbank.Phase.PHASE_COMMIT;
  state.decisions.set(txid, commit);
  const w = state.wal.get(txid);
  if (w) {
    for (const b of w.before) if (state.walLocks.get(b.item) === txid) state.walLocks.delete(b.item);
    state.wal.delete(txid);
  }
  if (role !== 'coordinator') return false;
  // Only a transaction that was prepared here can have a participant waiting for its decision.
  if (w && !state.earlyAcks.delete(txid)) state.unacked.set(txid, { txid, commit, command: x.command ?? {}, reason: x.reason ?? '' });
  return true;
}

/**
 * The state as one Snapshot record, after dropping the log slots that
 * executed more than `retain` seqs ago (they live on in the balances).
 */
export function takeSnapshot(state: ReplicaState, retain: number): shardbank.Snapshot.$Properties {
  const lowWater = Math.max(state.lowWater, state.executedThrough - retain);
  for (const key of state.log.keys()) if (key <= lowWater) state.log.delete(key);
  for (const txid of [...state.decisionSlots.keys()]) keepDecisionSlots(state, txid, (k) => k > lowWater);
  state.lowWater = lowWater;
  return snapshotOf(state);
}

/** The state as a Snapshot record, as it is (nothing dropped). */
export function snapshotOf(state: ReplicaView): shardbank.Snapshot.$Properties {
  return {
    set: state.set,
    initialBalance: state.initialBalance,
    initialLeader: state.initialLeader,
    promised: state.promised,
    log: [...state.log.values()].sort((a, b) => slotKeyOf(a) - slotKeyOf(b)).map((s) => entryFromSlot(s)),
    lowWater: state.lowWater,
    maxSeq: state.maxSeq,
    commitThrough: state.commitThrough,
    executedThrough: state.executedThrough,
    balances: [...state.balances].sort((a, b) => a[0] - b[0]).map(([item, balance]) => ({ item, balance })),
    modified: [...state.modified].sort((a, b) => a - b),
    replies: [...state.replies].map(([client, r]) => ({ client, timestamp: r.timestamp, status: r.reply.status ?? 0, reason: r.reply.reason ?? '', seq: r.seq })),
    wal: [...state.wal.values()].map((w) => ({ txid: w.txid, seq: w.seq, role: w.role, command: w.command, before: w.before })),
    decisions: [...state.decisions].map(([txid, commit]) => ({ txid, commit })),
    unacked: [...state.unacked.values()].map((u) => ({ txid: u.txid, commit: u.commit, command: u.command, reason: u.reason })),
    earlyAcks: [...state.earlyAcks],
    views: [...state.views],
    failed: state.failed,
    owners: [...state.owners].sort((a, b) => a[0] - b[0]).map(([item, o]) => ({ item, cluster: o.cluster, version: o.version })),
    recent: recentTransfers(state).map((r) => ({ sender: r.sender, receiver: r.receiver, txid: r.txid })),
    historyWindow: state.historyWindow,
  };
}

/**
 * Replaces the state with a snapshot's (replay from a snapshot, or a leader's
 * sent to a lagging follower). An acceptor never forgets what it accepted:
 * its own entries above the snapshot's executed point stay, unless the
 * snapshot holds a committed or newer value there; a value chosen with this
 * node's vote must survive it.
 */
function installSnapshot(state: ReplicaState, s: shardbank.Snapshot.$Properties): void {
  const above = [...state.log.entries()].filter(([key]) => key > (s.executedThrough ?? 0));
  const ownPromise = state.promised;
  const fresh = emptyState(state.node, s.initialBalance ?? 10);
  Object.assign(state, fresh, {
    set: s.set ?? 0,
    initialLeader: s.initialLeader ?? 0,
    lowWater: s.lowWater ?? 0,
    maxSeq: s.maxSeq ?? 0,
    commitThrough: s.commitThrough ?? 0,
    executedThrough: s.executedThrough ?? 0,
    failed: !!s.failed,
    views: s.views ?? [],
    historyWindow: s.historyWindow || DEFAULT_HISTORY_WINDOW,
  });
  for (const o of s.owners ?? []) state.owners.set(o.item ?? 0, { cluster: o.cluster ?? 0, version: o.version ?? 0 });
  for (const r of s.recent ?? []) state.recent.push({ sender: r.sender ?? 0, receiver: r.receiver ?? 0, txid: r.txid ?? '' });
  // A promise is never taken back, even by a leader's older snapshot.
  const promised = copyBallot(s.promised);
  state.promised = compareBallots(promised, ownPromise) > 0 ? promised : copyBallot(ownPromise);
  for (const e of s.log ?? []) putSlot(state, slotKeyOf(e), slotFromEntry(e, !!e.committed));
  for (const [key, own] of above) {
    const theirs = state.log.get(key);
    if (theirs && (theirs.committed || compareBallots(theirs.ballot, own.ballot) >= 0)) continue;
    putSlot(state, key, own);
    if (key > state.maxSeq) state.maxSeq = key;
  }
  advanceCommitThrough(state);
  for (const b of s.balances ?? []) state.balances.set(b.item ?? 0, b.balance ?? 0);
  for (const item of s.modified ?? []) state.modified.add(item);
  for (const r of s.replies ?? []) {
    state.replies.set(r.client ?? '', {
      timestamp: r.timestamp ?? 0,
      reply: { client: r.client ?? '', timestamp: r.timestamp ?? 0, status: r.status ?? 0, reason: r.reason ?? '', seq: r.seq ?? 0 },
      seq: r.seq ?? 0,
    });
  }
  for (const w of s.wal ?? []) {
    const before = beforeImages(w.before);
    state.wal.set(w.txid ?? '', { txid: w.txid ?? '', seq: w.seq ?? 0, role: w.role === 'participant' ? 'participant' : 'coordinator', command: w.command ?? {}, before });
    for (const b of before) state.walLocks.set(b.item, w.txid ?? '');
  }
  for (const d of s.decisions ?? []) state.decisions.set(d.txid ?? '', !!d.commit);
  for (const u of s.unacked ?? []) state.unacked.set(u.txid ?? '', { txid: u.txid ?? '', commit: !!u.commit, command: u.command ?? {}, reason: u.reason ?? '' });
  for (const t of s.earlyAcks ?? []) state.earlyAcks.add(t);
}

/** Folds a whole log into a fresh state. */
export function replay(node: NodeId, events: Iterable<LogEventProps>): ReplicaState {
  const state = emptyState(node);
  for (const ev of events) applyEvent(state, ev);
  return state;
}

/** A short name for an event's kind (`accepted`, `executed`, ...). */
export function eventKind(ev: LogEventProps): string {
  return (ev as shardbank.LogEvent).kind ?? 'unknown';
}

/** True when the slot in the log holds exactly this ballot. */
export function slotHasBallot(slot: Readonly<LogSlot> | undefined, ballot: Ballot | null | undefined): boolean {
  return !!slot && ballotEquals(slot.ballot, ballot);
}
