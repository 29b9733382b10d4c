/**
 * Which state of each chart a node was in at a point of its event log: the
 * replay view lights these. The log records the protocol's decisions, not
 * every actor step, so each chart's state is derived from the events that
 * say it:
 *
 * - node: `failed` until `recovered`, live after a `flushed`;
 * - election: the last `role` event (at a `flushed`, the set's first leader
 *   leads and the rest follow);
 * - acceptor: catchingUp from a `catchup requested` to the next `received`
 *   or `snapshot`;
 * - proposer: idle unless leading; while leading, replicating when entries it
 *   accepted at its own ballot are not committed yet, else quiet;
 * - executor: waiting while committed entries have not executed yet;
 * - lockManager: contended while a transfer waits behind a prepared one
 *   (a `lock … waiting` whose command has not run), holding while a prepared
 *   transaction holds items or the leader has transfers in flight, else free;
 * - coordinator and participant: per transaction, the last `phase` event
 *   (its first word is the chart's state: `deciding commit` is deciding).
 *
 * A pure fold: `step(lights, event, state)` with the replica state already
 * folded through that event (store/state.ts); nothing else is read.
 */
import { ballotEquals, requestId, slotKeyOf, type Ballot, type LogEventProps, type NodeId } from '../protocol/messages.js';
import type { ReplicaView } from '../store/state.js';

export interface TxLight {
  txid: string;
  role: 'coordinator' | 'participant';
  /** The chart state (`deciding`) and the phase as logged (`deciding commit`). */
  state: string;
  phase: string;
  why: string;
  /** The index of the event that moved it last. */
  at: number;
}

export interface Lights {
  /** Machine id -> its state value, as XState writes it (`{ leading: 'quiet' }`). */
  values: Record<string, unknown>;
  /** Cross-shard transactions since the set started, by txid. */
  txs: Map<string, TxLight>;
  /** The ballot this node leads with, when it leads. */
  ballot: Ballot | null;
  /** Slots this leader accepted at its own ballot and has not seen committed. */
  inFlight: Set<number>;
  /** Transfers parked behind a prepared transaction (request ids). */
  waiting: Set<string>;
}

/** States that end a 2PC actor. */
export const FINAL_TX_STATES: ReadonlySet<string> = new Set(['done', 'abandoned', 'dropped']);

/** The lights of a node that has not started a set yet. */
export function initialLights(): Lights {
  return {
    values: { node: 'booting', election: 'follower', acceptor: 'current', proposer: 'idle', executor: 'idle', lockManager: 'free', transactions: {} },
    txs: new Map(),
    ballot: null,
    inFlight: new Set(),
    waiting: new Set(),
  };
}

/** A copy that later steps do not change (for checkpoints). */
export function cloneLights(l: Lights): Lights {
  return { values: { ...l.values }, txs: new Map(l.txs), ballot: l.ballot, inFlight: new Set(l.inFlight), waiting: new Set(l.waiting) };
}

function lead(l: Lights, ballot: Ballot | null | undefined): void {
  l.values.election = 'leader';
  l.ballot = { round: ballot?.round ?? 0, node: ballot?.node ?? 0 };
  l.inFlight.clear();
}

function follow(l: Lights, role: string): void {
  l.values.election = role;
  l.ballot = null;
  l.inFlight.clear();
}

/**
 * The lights after one more event of node `self`'s log; `state` is the
 * replica state with that event folded in. Changes `l` in place.
 */
export function stepLights(l: Lights, self: NodeId, index: number, ev: LogEventProps, state: ReplicaView): void {
  if (ev.flushed) {
    const fresh = initialLights();
    Object.assign(l, fresh);
    l.values.node = 'live';
    if (self !== 0 && ev.flushed.leader === self) lead(l, ev.flushed.ballot);
  } else if (ev.role) {
    const role = ev.role.role ?? 'follower';
    if (role === 'leader') lead(l, ev.role.ballot);
    else follow(l, role);
  } else if (ev.failed) {
    l.values.node = 'failed';
  } else if (ev.recovered) {
    l.values.node = 'live';
  } else if (ev.catchup) {
    l.values.acceptor = ev.catchup.what === 'requested' ? 'catchingUp' : 'current';
  } else if (ev.accepted && l.ballot) {
    for (const e of ev.accepted.entries ?? []) if (ballotEquals(e.ballot, l.ballot)) l.inFlight.add(slotKeyOf(e));
  } else if (ev.committed) {
    for (const key of ev.committed.slots ?? []) l.inFlight.delete(key);
  } else if (ev.snapshot) {
    l.inFlight.clear();
  } else if (ev.lock) {
    const id = ev.lock.command ? requestId(ev.lock.command) : '';
    if (ev.lock.decision === 'waiting') l.waiting.add(id);
    else l.waiting.delete(id);
  } else if (ev.executed?.command) {
    l.waiting.delete(requestId(ev.executed.command));
  } else if (ev.phase) {
    const p = ev.phase;
    const txid = p.txid ?? '';
    const phase = p.phase ?? '';
    l.txs.set(txid, { txid, role: p.role === 'participant' ? 'participant' : 'coordinator', state: phase.split(' ')[0] ?? phase, phase, why: p.why ?? '', at: index });
  }
  l.values.proposer = l.values.election === 'leader' ? { leading: l.inFlight.size > 0 ? 'replicating' : 'quiet' } : 'idle';
  l.values.executor = state.commitThrough > state.executedThrough ? 'waiting' : 'idle';
  l.values.lockManager = l.waiting.size > 0 ? 'contended' : state.walLocks.size > 0 || l.inFlight.size > 0 ? 'holding' : 'free';
}

/** The transactions still running (not done, abandoned or dropped), oldest first. */
export function inFlightTxs(l: Lights): TxLight[] {
  return [...l.txs.values()].filter((t) => !FINAL_TX_STATES.has(t.state)).sort((a, b) => a.at - b.at);
}
