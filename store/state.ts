/**
 * A node's durable state and the fold that builds it from the event log.
 * The live node changes its state only by applying events through
 * `applyEvent`, the same function replay uses, so a node's state always
 * equals the fold of its log (DESIGN rule 3).
 */
import {
  ballotEquals,
  compareBallots,
  entryKey,
  shardbank,
  type Ballot,
  type ClientReply,
  type Command,
  type LogEventProps,
  type NodeId,
  type ViewRecord,
} from '../protocol/messages.js';

export interface LogSlot {
  seq: number;
  phase: number;
  ballot: Ballot;
  /** null is a no-op. */
  command: Command | null;
  committed: boolean;
}

export interface StoredReply {
  timestamp: number;
  reply: ClientReply;
}

export interface ReplicaState {
  node: NodeId;
  set: number;
  initialBalance: number;
  /** The leader the set started with. */
  initialLeader: NodeId;
  /** The highest ballot this acceptor promised. */
  promised: Ballot;
  /** The accept log, keyed by entryKey(seq, phase). */
  log: Map<number, LogSlot>;
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
}

export function emptyState(node: NodeId, initialBalance = 10): ReplicaState {
  return {
    node,
    set: 0,
    initialBalance,
    initialLeader: 0,
    promised: { round: 0, node: 0 },
    log: new Map(),
    maxSeq: 0,
    commitThrough: 0,
    executedThrough: 0,
    balances: new Map(),
    modified: new Set(),
    replies: new Map(),
    views: [],
    failed: false,
  };
}

export function balanceOf(state: ReplicaState, item: number): number {
  return state.balances.get(item) ?? state.initialBalance;
}

/** True when some entry at this seq (any phase) is committed. */
export function isSeqCommitted(state: ReplicaState, seq: number): boolean {
  for (let phase = 0; phase < 4; phase++) {
    const slot = state.log.get(entryKey(seq, phase));
    if (slot?.committed) return true;
  }
  return false;
}

/** The committed entries at one seq, in phase order. */
export function committedAt(state: ReplicaState, seq: number): LogSlot[] {
  const out: LogSlot[] = [];
  for (let phase = 0; phase < 4; phase++) {
    const slot = state.log.get(entryKey(seq, phase));
    if (slot?.committed) out.push(slot);
  }
  return out;
}

function advanceCommitThrough(state: ReplicaState): void {
  while (isSeqCommitted(state, state.commitThrough + 1)) state.commitThrough++;
}

function copyBallot(b: Ballot | null | undefined): Ballot {
  return { round: b?.round ?? 0, node: b?.node ?? 0 };
}

/** Applies one event to the state, in place. */
export function applyEvent(state: ReplicaState, ev: LogEventProps): void {
  if (ev.accepted) {
    for (const e of ev.accepted.entries ?? []) {
      const seq = e.seq ?? 0;
      const key = entryKey(seq, e.phase);
      const slot = state.log.get(key);
      // A committed value is chosen: no later ballot can carry another one.
      if (slot?.committed) {
        slot.ballot = copyBallot(e.ballot);
        continue;
      }
      state.log.set(key, {
        seq,
        phase: e.phase ?? 0,
        ballot: copyBallot(e.ballot),
        command: e.command ?? null,
        committed: false,
      });
      if (seq > state.maxSeq) state.maxSeq = seq;
    }
    return;
  }
  if (ev.committed) {
    for (const k of ev.committed.keys ?? []) {
      const slot = state.log.get(entryKey(k.seq ?? 0, k.phase));
      if (slot) slot.committed = true;
    }
    advanceCommitThrough(state);
    return;
  }
  if (ev.executed) {
    const x = ev.executed;
    const seq = x.seq ?? 0;
    if (seq > state.executedThrough) state.executedThrough = seq;
    for (const w of x.writes ?? []) {
      state.balances.set(w.item ?? 0, w.balance ?? 0);
      state.modified.add(w.item ?? 0);
    }
    const client = x.command?.client;
    if (client) {
      const timestamp = x.command?.timestamp ?? 0;
      const prev = state.replies.get(client);
      if (!prev || prev.timestamp <= timestamp) {
        state.replies.set(client, {
          timestamp,
          reply: { client, timestamp, status: x.status ?? 0, reason: x.reason ?? '' },
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
    });
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
export function slotHasBallot(slot: LogSlot | undefined, ballot: Ballot | null | undefined): boolean {
  return !!slot && ballotEquals(slot.ballot, ballot);
}
