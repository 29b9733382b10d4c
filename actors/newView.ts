/**
 * Building the NEW-VIEW log from a quorum of promises: for every slot the
 * value accepted with the highest ballot, gaps up to the highest seq filled
 * with no-ops, everything re-stamped with the new ballot.
 */
import { compareBallots, slotKeyOf, type Ballot, type Entry } from '../protocol/messages.js';
import { entryFromSlot, slotFromEntry, type LogSlot } from '../store/state.js';

/**
 * Merges the candidate's own log with the logs in its promises.
 * A committed entry wins outright (its value is chosen); otherwise the
 * highest ballot wins.
 */
export function buildNewView(ballot: Ballot, own: Iterable<Readonly<LogSlot>>, promised: Iterable<Entry>, lowWater = 0): Entry[] {
  const merged = new Map<number, Readonly<LogSlot>>();
  const offer = (s: Readonly<LogSlot>) => {
    const key = slotKeyOf(s);
    // At or below the candidate's low-water mark everything executed: nothing to decide there.
    if (key <= lowWater) return;
    const have = merged.get(key);
    if (!have || (!have.committed && (s.committed || compareBallots(s.ballot, have.ballot) > 0))) merged.set(key, s);
  };
  for (const slot of own) offer(slot);
  for (const e of promised) offer(slotFromEntry(e, !!e.committed));

  let maxSeq = lowWater;
  for (const key of merged.keys()) if (key > maxSeq) maxSeq = key;
  for (let seq = lowWater + 1; seq <= maxSeq; seq++) {
    if (!merged.has(seq)) merged.set(seq, { seq, phase: 0, ballot: ballot, command: null, committed: false });
  }
  return [...merged.entries()].sort((a, b) => a[0] - b[0]).map(([, s]) => entryFromSlot(s, ballot));
}
