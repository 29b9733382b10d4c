/**
 * A turn's output, as one value, and the durability rule that shapes it
 * (DESIGN rule 2: durable before visible). etcd/raft calls this `Ready`:
 * "Entries specifies entries to be saved to stable storage BEFORE Messages
 * are sent". The host executes it in order: append `events` (fsynced when
 * `mustSync`), send `now` without waiting, send `afterWrite` once every event
 * that must be synced and was recorded up to this turn is durable. Nothing
 * else decides what waits for the disk.
 *
 * What must be fsynced: what this node gives its word on to others: a
 * promise, an accepted entry, a NEW-VIEW, a flush, a failure or a recovery.
 *
 * What is written without an fsync: a commit, an execution, an ACK, and the
 * protocol decisions kept for replay (role changes, answers to PREPAREs,
 * lock skips, 2PC phases, catch-up notes). A commit or an execution follows
 * from entries already chosen (durable on a majority) and is learned again
 * from the leader after a crash or a power cut, with the same result, since
 * execution is a function of the chosen log; the notes vouch for nothing.
 * Such events never hold a message back, and a later synced batch carries
 * them to disk (LevelDB's log is one file, written in order).
 *
 * What leaves at once, beside the write: messages that vouch for nothing in
 * this node's log.
 * - A leader's heartbeat: held behind a slow fsync or a compaction it would
 *   look like a dead leader, and the followers would depose it. Its commit
 *   point is a hint (a follower asks for what it lacks, and that answer is
 *   durable first); the ACKs it repeats are the participant's, durable there.
 * - A leader's ACCEPT: a proposal is not a vote, so the followers write
 *   theirs while the leader writes its own, one fsync off a transfer's
 *   critical path. The leader's own vote counts at once, but what it leads
 *   to (a COMMIT, a reply) is an `afterWrite` message, so it never counts
 *   before it is durable. A restarted node never proposes again under its
 *   old ballot, so a proposal it sent and then lost cannot meet a different
 *   value in the same slot.
 * - A follower's acknowledgement of a heartbeat: it says the follower is
 *   live and still follows, nothing about its log.
 * - A coordinator's PREPARE: it asks, and vouches for nothing. Should the
 *   coordinator's prepare entry then be lost, the participant's query for
 *   the decision meets a fence (an abort ordered first).
 * Everything else (votes, promises, NEW-VIEWs, COMMITs, 2PC votes and
 * decisions, client replies) is `afterWrite`.
 */
import type { EnvelopeProps, LogEventProps } from '../protocol/messages.js';

export interface Ready {
  /** Events to append to the log, in order, as one batch. */
  events: LogEventProps[];
  /** Whether the batch must be fsynced before `afterWrite` may leave. */
  mustSync: boolean;
  /** Messages that vouch for nothing in this node's log: they leave at once. */
  now: EnvelopeProps[];
  /** Messages and replies that leave once every synced event before them is durable. */
  afterWrite: EnvelopeProps[];
}

/** Whether an event is this node's word to others, to be fsynced before what depends on it leaves. */
export function mustSync(ev: LogEventProps): boolean {
  return !!(ev.promised || ev.accepted || ev.view || ev.flushed || ev.failed || ev.recovered || ev.snapshot);
}

/** Whether a message may leave without waiting for the log (see the header). */
export function leavesAtOnce(envelope: EnvelopeProps): boolean {
  return envelope.heartbeat != null || envelope.heartbeatAck != null || envelope.accept != null || envelope.txPrepare != null;
}

/** Collects one turn's effects into a Ready. */
export class ReadyBuilder {
  private ready: Ready = ReadyBuilder.empty();

  private static empty(): Ready {
    return { events: [], mustSync: false, now: [], afterWrite: [] };
  }

  record(ev: LogEventProps): void {
    this.ready.events.push(ev);
    if (!this.ready.mustSync && mustSync(ev)) this.ready.mustSync = true;
  }

  send(envelope: EnvelopeProps): void {
    if (leavesAtOnce(envelope)) this.ready.now.push(envelope);
    else this.ready.afterWrite.push(envelope);
  }

  get isEmpty(): boolean {
    const r = this.ready;
    return r.events.length === 0 && r.now.length === 0 && r.afterWrite.length === 0;
  }

  /** Only the messages that may leave at once (the rest stays for `take`): a timer's heartbeat leaves without waiting for a turn. */
  takeNow(): EnvelopeProps[] {
    const now = this.ready.now;
    this.ready.now = [];
    return now;
  }

  /** The output so far; the builder starts a new one. */
  take(): Ready {
    const r = this.ready;
    this.ready = ReadyBuilder.empty();
    return r;
  }

  /** Drops everything collected (a node that stops mid-turn sends and writes nothing of it). */
  clear(): void {
    this.ready = ReadyBuilder.empty();
  }
}
