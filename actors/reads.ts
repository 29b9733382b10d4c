/**
 * Balance reads at their consistency level (the executor answers them, as
 * it is the one that knows how far the replica has executed):
 *
 * - `leader`: the leader's state, at once, no round.
 * - `linearizable`: read-index. The read notes the commit point when it
 *   arrives; the leader confirms it still leads with a heartbeat a majority
 *   acknowledges (one round for every read waiting at that moment), and
 *   answers once it has executed through the noted point. A leader deposed
 *   meanwhile never gets its confirmation, and answers nothing.
 * - `session`: any replica, once it has executed through the seq of the
 *   client's own last write in the cluster (`afterSeq`).
 * - `any`: any live replica, from its state at once; the reply says how far
 *   it had executed.
 *
 * Waiting reads are bounded in number (`maxQueue`) and in time
 * (`readWaitTicks`); past either they are answered `failed` and the client
 * asks again.
 */
import { shardbank, type Command } from '../protocol/messages.js';
import { levelOf, type Level } from '../protocol/consistency.js';
import { balanceOf, ownerOf } from '../store/state.js';
import type { Effect } from './effects.js';
import type { ActorInput, View } from './node-info.js';
import { failReply, movedReply, replyTo } from './replies.js';

const { Status } = shardbank;

interface Waiting {
  command: Command;
  /** linearizable: the commit point when it came; session: the client's last write. */
  through: number;
  /** The tick it gives up at. */
  until: number;
}

/**
 * The reads waiting at a replica. Changed in place by the executor's steps:
 * a busy leader may hold hundreds, and a copy per step would cost more than
 * the reads.
 */
export interface ReadQueue {
  /** linearizable reads not yet covered by a confirmation round. */
  unconfirmed: Waiting[];
  /** linearizable reads the round in flight covers. */
  inRound: Waiting[];
  /** linearizable reads confirmed, waiting to have executed far enough. */
  confirmed: Waiting[];
  /** session reads waiting to have executed far enough. */
  session: Waiting[];
  roundInFlight: boolean;
  ticks: number;
}

export function emptyReadQueue(): ReadQueue {
  return { unconfirmed: [], inRound: [], confirmed: [], session: [], roundInFlight: false, ticks: 0 };
}

export interface ReadContext extends ActorInput {
  view: View;
  reads: ReadQueue;
}

/** The answer to a read from this replica's state now. */
export function answer(ctx: ReadContext, command: Command): Effect[] {
  const item = command.read?.item ?? 0;
  const { info, view, state } = ctx;
  const owner = ownerOf(info.topology, state, item);
  if (owner === null) return failReply(info.self, view, command, 'item out of range');
  if (owner.cluster !== info.cluster) return movedReply(info.self, view, command, item, owner);
  return replyTo(info.self, view, command, { status: Status.OK, balance: balanceOf(state, item), hasBalance: true, executedThrough: state.executedThrough });
}

function waits(ctx: ReadContext): number {
  const r = ctx.reads;
  return r.unconfirmed.length + r.inRound.length + r.confirmed.length + r.session.length;
}

/**
 * Takes a run of reads: answers what may be answered now, queues the rest.
 * Returns whether a confirmation round must be asked for.
 */
export function takeReads(ctx: ReadContext, commands: Command[], out: Effect[]): boolean {
  const { info, view, state, reads } = ctx;
  const until = reads.ticks + info.tuning.readWaitTicks;
  for (const command of commands) {
    const level = levelOf(command.read?.consistency);
    if (level === 'any' || level === 'leader' || skipsRound(ctx, level)) {
      out.push(...answer(ctx, command));
      continue;
    }
    if (waits(ctx) >= info.tuning.maxQueue) {
      out.push(...failReply(info.self, view, command, 'overloaded'));
      continue;
    }
    if (level === 'session') {
      const through = command.read?.afterSeq ?? 0;
      if (state.executedThrough >= through || info.bugs.has('session-before-caught-up')) out.push(...answer(ctx, command));
      else reads.session.push({ command, through, until });
      continue;
    }
    if (view.role !== 'leader') {
      out.push(...failReply(info.self, view, command, 'not the leader'));
      continue;
    }
    // Through the leader's whole log, not only its commit point: a new leader's NEW-VIEW holds
    // entries chosen under earlier ballots (a transfer acknowledged, a move decided) that are not
    // under its commit point yet, and a read answered before they execute would miss them.
    reads.unconfirmed.push({ command, through: Math.max(state.commitThrough, state.maxSeq), until });
  }
  return startRound(reads);
}

/** The planted bug `linearizable-without-round`: a leader, deposed or not, answers at once. */
function skipsRound(ctx: ReadContext, level: Level): boolean {
  return level === 'linearizable' && ctx.view.role === 'leader' && ctx.info.bugs.has('linearizable-without-round');
}

/** A round for the reads not yet covered, if none is in flight; true when one must be asked for. */
function startRound(reads: ReadQueue): boolean {
  if (reads.roundInFlight || reads.unconfirmed.length === 0) return false;
  reads.inRound = reads.unconfirmed;
  reads.unconfirmed = [];
  reads.roundInFlight = true;
  return true;
}

/** The round in flight is confirmed: its reads wait only for execution now. Returns whether another round must start. */
export function roundConfirmed(reads: ReadQueue): boolean {
  for (const w of reads.inRound) reads.confirmed.push(w);
  reads.inRound = [];
  reads.roundInFlight = false;
  return startRound(reads);
}

/** Answers the waiting reads this replica has now executed far enough for. */
export function answerReady(ctx: ReadContext, out: Effect[]): void {
  const { reads, state } = ctx;
  const ready = (w: Waiting) => state.executedThrough >= w.through;
  for (const list of [reads.confirmed, reads.session]) {
    if (!list.some(ready)) continue;
    const keep = list.filter((w) => !ready(w));
    for (const w of list) if (ready(w)) out.push(...answer(ctx, w.command));
    list.length = 0;
    list.push(...keep);
  }
}

/** Whether any read waits for execution to advance. */
export function waitingForExecution(reads: ReadQueue): boolean {
  return reads.confirmed.length > 0 || reads.session.length > 0;
}

/** `n` ticks: reads past their wait are answered `failed` (the client asks again). */
export function expire(ctx: ReadContext, out: Effect[], n: number): void {
  const { reads, info, view } = ctx;
  reads.ticks += n;
  for (const list of [reads.unconfirmed, reads.inRound, reads.confirmed, reads.session]) {
    if (!list.some((w) => w.until <= reads.ticks)) continue;
    const keep = list.filter((w) => w.until > reads.ticks);
    for (const w of list) if (w.until <= reads.ticks) out.push(...failReply(info.self, view, w.command, 'read timed out waiting'));
    list.length = 0;
    list.push(...keep);
  }
}

/** Ticks until a waiting read gives up (Infinity: none waits). */
export function readsDue(reads: ReadQueue): number {
  let until = Infinity;
  for (const list of [reads.unconfirmed, reads.inRound, reads.confirmed, reads.session]) for (const w of list) until = Math.min(until, w.until);
  return Math.max(1, until - reads.ticks);
}

/** This node no longer leads: its linearizable reads cannot be confirmed here. */
export function dropLinearizable(ctx: ReadContext, out: Effect[]): void {
  const { reads, info, view } = ctx;
  for (const w of [...reads.unconfirmed, ...reads.inRound, ...reads.confirmed]) out.push(...failReply(info.self, view, w.command, 'not the leader'));
  reads.unconfirmed = [];
  reads.inRound = [];
  reads.confirmed = [];
  reads.roundInFlight = false;
}
