/**
 * Building the NEW-VIEW log from a quorum of promises: for every slot the
 * value accepted with the highest ballot, gaps up to the highest seq filled
 * with no-ops, everything re-stamped with the new ballot.
 */
import { compareBallots, entryKey, slotKeyOf, type Ballot, type Entry } from '../protocol/messages.js';
import type { LogSlot } from '../store/state.js';

export function slotToEntry(slot: LogSlot): Entry {
  return {
    seq: slot.seq,
    phase: slot.phase,
    ballot: slot.ballot,
    command: slot.command ?? undefined,
    committed: slot.committed,
    reason: slot.reason,
    runsAt: slot.runsAt,
  };
}

/**
 * Merges the candidate's own log with the logs in its promises.
 * A committed entry wins outright (its value is chosen); otherwise the
 * highest ballot wins.
 */
export function buildNewView(ballot: Ballot, own: Iterable<LogSlot>, promised: Iterable<Entry>, lowWater = 0): Entry[] {
  const merged = new Map<number, Entry>();
  const offer = (e: Entry) => {
    const key = slotKeyOf(e);
    const have = merged.get(key);
    if (!have || (!have.committed && (e.committed || compareBallots(e.ballot, have.ballot) > 0))) merged.set(key, e);
  };
  // At or below the candidate's low-water mark everything executed: nothing to decide there.
  for (const slot of own) if (slotKeyOf(slot) > lowWater) offer(slotToEntry(slot));
  for (const e of promised) if (slotKeyOf(e) > lowWater) offer(e);

  let maxSeq = 0;
  const filled = new Set<number>();
  for (const e of merged.values()) {
    const seq = slotKeyOf(e);
    filled.add(seq);
    if (seq > maxSeq) maxSeq = seq;
  }
  for (let seq = lowWater + 1; seq <= maxSeq; seq++) {
    if (!filled.has(seq)) merged.set(entryKey(seq, 0), { seq, phase: 0, committed: false });
  }
  return [...merged.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([, e]) => ({
      seq: e.seq,
      phase: e.phase ?? 0,
      ballot: { ...ballot },
      command: e.command ?? undefined,
      committed: !!e.committed,
      reason: e.reason ?? '',
      runsAt: e.runsAt ?? 0,
    }));
}
