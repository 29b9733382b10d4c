/**
 * The acceptor (Multi-Paxos phases 1b and 2b) and the learner side of commit.
 *
 * It promises ballots the election actor grants, accepts entries whose ballot
 * is at least the promised one (NACKing the rest so a stale leader learns it
 * was deposed), records commits, and keeps a replica current: a follower that
 * sees a commit point beyond its own, or a commit for an entry it lacks, asks
 * the leader for the committed entries it missed.
 */
import { setup } from 'xstate';
import { compareBallots, entryKey, slotKeyOf, wireKeyOf, type Ballot, type Entry, type EntryKey, type NodeId } from '../protocol/messages.js';
import { committedAt, slotHasBallot, snapshotOf } from '../store/state.js';
import { sendToNode, type NodeEnv } from './env.js';
import { requestId } from './replies.js';
import { txRole } from './transfer.js';
import type {
  AcceptEvent,
  CatchupReplyEvent,
  CatchupRequestEvent,
  CommitEvent,
  GrantPromiseEvent,
  HeartbeatEvent,
  NewViewEvent,
  RecoveredEvent,
  TickEvent,
} from './events.js';
import { slotToEntry } from './newView.js';

export interface AcceptorContext {
  env: NodeEnv;
  /** Ticks to wait before asking for catch-up again (one request in flight). */
  catchupWait: number;
}

export type AcceptorEvent =
  | AcceptEvent
  | NewViewEvent
  | CommitEvent
  | HeartbeatEvent
  | CatchupRequestEvent
  | CatchupReplyEvent
  | GrantPromiseEvent
  | TickEvent
  | RecoveredEvent;

function keysOf(entries: Entry[]): EntryKey[] {
  return entries.map(wireKeyOf);
}

/** Raises the promise if needed; false when the ballot is below it. */
function admitBallot(env: NodeEnv, from: NodeId, ballot: Ballot | null | undefined): boolean {
  const cmp = compareBallots(ballot, env.state.promised);
  if (cmp < 0) {
    sendToNode(env, from, { nack: { ballot, promised: env.state.promised } });
    return false;
  }
  if (cmp > 0) env.record({ promised: { ballot } });
  return true;
}

/**
 * Accepts entries and acknowledges them. An entry already accepted under this
 * very ballot (a retransmission: one leader proposes one value per instance
 * and ballot), or below the low-water mark, is acknowledged again without
 * being written again.
 */
function acceptEntries(env: NodeEnv, from: NodeId, ballot: Ballot, entries: Entry[]): void {
  const { state } = env;
  const fresh = entries.filter((e) => {
    const key = slotKeyOf(e);
    return key > state.lowWater && !slotHasBallot(state.log.get(key), ballot);
  });
  if (fresh.length > 0) {
    const stamped = fresh.map((e) => ({ seq: e.seq, phase: e.phase, ballot, command: e.command, committed: false, reason: e.reason, runsAt: e.runsAt }));
    env.record({ accepted: { entries: stamped } });
  }
  sendToNode(env, from, { accepted: { ballot, keys: keysOf(entries) } });
}

function requestCatchup(ctx: AcceptorContext, leader: NodeId): void {
  if (ctx.catchupWait > 0 || leader === ctx.env.self || leader === 0) return;
  ctx.catchupWait = ctx.env.tuning.retransmitTicks;
  const { env } = ctx;
  sendToNode(env, leader, {
    catchupRequest: { fromSeq: env.state.commitThrough + 1, maxEntries: env.tuning.maxCatchupEntries },
  });
}

/**
 * A follower hears that the participant acknowledged a decision. The ACK may
 * arrive before the decision has run here (the fold keeps it for then); one
 * for a decision already acknowledged changes nothing.
 */
function learnAck(env: NodeEnv, txid: string): void {
  if (env.state.unacked.has(txid) || !env.state.decisions.has(txid)) env.record({ acked: { txid } });
}

/** Committed entries from `fromSeq` up to the commit point, at most `max`. */
export function committedEntries(env: NodeEnv, fromSeq: number, max: number): Entry[] {
  const out: Entry[] = [];
  const { state } = env;
  for (let seq = Math.max(1, fromSeq); seq <= state.commitThrough && out.length < max; seq++) {
    for (const slot of committedAt(state, seq)) out.push(slotToEntry(slot));
  }
  return out;
}

export const acceptorMachine = setup({
  types: {
    context: {} as AcceptorContext,
    events: {} as AcceptorEvent,
    input: {} as { env: NodeEnv },
  },
  actions: {
    onAccept: ({ context, event }) => {
      const { env } = context;
      const e = event as AcceptEvent;
      if (!admitBallot(env, e.from, e.msg.ballot)) return;
      acceptEntries(env, e.from, e.msg.ballot!, e.msg.entries ?? []);
    },
    onNewView: ({ context, event }) => {
      const { env } = context;
      const e = event as NewViewEvent;
      if (!admitBallot(env, e.from, e.msg.ballot)) return;
      const log = e.msg.log ?? [];
      env.record({ view: { view: e.msg, leader: e.from } });
      acceptEntries(env, e.from, e.msg.ballot!, log);
      const chosen = log.filter((x) => x.committed);
      if (chosen.length > 0) env.record({ committed: { keys: keysOf(chosen) } });
    },
    onCommit: ({ context, event }) => {
      const { env } = context;
      const e = event as CommitEvent;
      const ready: EntryKey[] = [];
      let missing = false;
      for (const k of e.msg.keys ?? []) {
        const slot = env.state.log.get(entryKey(k.seq ?? 0, k.phase));
        if (slot?.committed) continue;
        if (slotHasBallot(slot, e.msg.ballot)) ready.push(k);
        else missing = true;
      }
      if (ready.length > 0) env.record({ committed: { keys: ready } });
      if (missing) requestCatchup(context, e.from);
    },
    onHeartbeat: ({ context, event }) => {
      const e = event as HeartbeatEvent;
      const { state } = context.env;
      // Only the current leader's ACKs count: a stale heartbeat is not the word of anyone in charge.
      if (compareBallots(e.msg.ballot, state.promised) < 0) return;
      for (const txid of e.msg.acked ?? []) learnAck(context.env, txid);
      if ((e.msg.commitThrough ?? 0) > context.env.state.commitThrough) requestCatchup(context, e.from);
    },
    onCatchupRequest: ({ context, event }) => {
      const { env } = context;
      const e = event as CatchupRequestEvent;
      // Behind what this node still keeps: the entries are gone, send the state instead.
      if ((e.msg.fromSeq ?? 1) <= env.state.lowWater) {
        sendToNode(env, e.from, { catchupReply: { ballot: env.view.ballot, commitThrough: env.state.commitThrough, snapshot: snapshotOf(env.state) } });
        return;
      }
      const max = Math.min(e.msg.maxEntries || env.tuning.maxCatchupEntries, env.tuning.maxCatchupEntries);
      const entries = committedEntries(env, e.msg.fromSeq ?? 1, max);
      const acked = entries
        .filter((x) => (x.runsAt ?? 0) > 0 && x.command && txRole(env.topology, env.cluster, x.command) === 'coordinator')
        .filter((x) => !env.state.unacked.has(requestId(x.command!)))
        .map((x) => requestId(x.command!));
      sendToNode(env, e.from, {
        catchupReply: { ballot: env.view.ballot, entries, commitThrough: env.state.commitThrough, acked },
      });
    },
    onCatchupReply: ({ context, event }) => {
      const { env } = context;
      const e = event as CatchupReplyEvent;
      context.catchupWait = 0;
      const snap = e.msg.snapshot;
      if (snap) {
        // Installed only if it is ahead; this node's own connection state stays its own.
        if ((snap.executedThrough ?? 0) > env.state.executedThrough) env.record({ snapshot: { ...snap, failed: env.state.failed } });
        return;
      }
      const entries = (e.msg.entries ?? []).filter((x) => !env.state.log.get(slotKeyOf(x))?.committed);
      if (entries.length > 0) {
        env.record({ accepted: { entries } });
        env.record({ committed: { keys: keysOf(entries) } });
      }
      for (const txid of e.msg.acked ?? []) learnAck(env, txid);
      // Still behind and the reply was full: ask for the next chunk now.
      if ((e.msg.commitThrough ?? 0) > env.state.commitThrough && entries.length > 0) requestCatchup(context, e.from);
    },
    onGrantPromise: ({ context, event }) => {
      const { env } = context;
      const e = event as GrantPromiseEvent;
      if (compareBallots(e.ballot, env.state.promised) <= 0) return;
      env.record({ promised: { ballot: e.ballot } });
      const accepted: Entry[] = [];
      // A 2PC decision counts at the seq it runs at, which may be above the candidate's commit point when its own is not.
      for (const slot of env.state.log.values()) {
        if (Math.max(slot.seq, slot.runsAt ?? 0) > e.commitThrough) accepted.push(slotToEntry(slot));
      }
      // Entries at or below our low-water mark are gone: if the candidate still needs them, it gets our state.
      const snapshot = e.commitThrough < env.state.lowWater ? snapshotOf(env.state) : undefined;
      sendToNode(env, e.to, { promise: { ballot: e.ballot, accepted, commitThrough: env.state.commitThrough, snapshot } });
    },
    onTick: ({ context }) => {
      if (context.catchupWait > 0) context.catchupWait--;
    },
    /** Back from a disconnection: ask the leader we knew for what we missed, before any heartbeat. */
    onRecovered: ({ context }) => {
      context.catchupWait = 0;
      requestCatchup(context, context.env.view.leader);
    },
  },
}).createMachine({
  id: 'acceptor',
  context: ({ input }) => ({ env: input.env, catchupWait: 0 }),
  on: {
    accept: { actions: 'onAccept' },
    newView: { actions: 'onNewView' },
    commit: { actions: 'onCommit' },
    heartbeat: { actions: 'onHeartbeat' },
    catchupRequest: { actions: 'onCatchupRequest' },
    catchupReply: { actions: 'onCatchupReply' },
    grantPromise: { actions: 'onGrantPromise' },
    tick: { actions: 'onTick' },
    recovered: { actions: 'onRecovered' },
  },
});
