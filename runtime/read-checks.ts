/**
 * The simulator's read checkers: each consistency level held to its
 * promise, over the run's history and every item's serial order of
 * balances (runtime/item-timelines.ts).
 *
 * - every level (`any` and `leader` promise no more): a read returns a value
 *   its item held at some point;
 * - `linearizable`: a read never returns a value older than a transfer that
 *   committed (its completion observed, `ok` in the history) before the read
 *   was invoked: it returns a balance the item held at that transfer's write
 *   or later in the item's serial order;
 * - `session`: the same, for the transfers of the read's own client.
 *
 * A value can recur (10, then 8, then 10 again), so "held at that write or
 * later" means: some state from that write on has the value read. Each
 * violation names the read (its level, client, the node that answered and
 * how far it had executed), the transfer it missed, and the values it could
 * have returned.
 */
import type { Level } from '../protocol/consistency.js';
import type { ItemState, ItemTimelines } from './item-timelines.js';
import { describeRead, isAnsweredRead, type HistoryOp } from './sim-history.js';

/** At most this many violations per check, so that a broken run stays readable. */
const MAX_PER_CHECK = 5;

/** Values shown of what a read could have returned. */
const SHOWN_VALUES = 8;

/** Every violation of a read level's promise in the history. */
export function checkReadLevels(history: readonly HistoryOp[], timelines: ItemTimelines, seed: number): string[] {
  const reads = history.filter(isAnsweredRead);
  const writes = history.filter((h) => h.kind === 'transfer' && h.type === 'ok');
  const found: Record<'held' | Level, string[]> = { held: [], linearizable: [], leader: [], session: [], any: [] };
  const say = (list: string[], msg: string) => {
    if (list.length < MAX_PER_CHECK) list.push(`seed ${seed}: ${msg}`);
  };
  for (const r of reads) {
    const item = r.items[0]!;
    const held = timelines.heldBalances(item);
    if (!held.has(r.value)) say(found.held, `${r.level ?? 'leader'} ${describeRead(r)} returned ${r.value}, a value item ${item} never held: expected one of ${some([...held])}`);
    if (r.level !== 'linearizable' && r.level !== 'session') continue;
    const before = writes.filter((w) => w.items.includes(item) && w.completedAt < r.invokedAt && (r.level === 'linearizable' || w.client === r.client));
    const stale = staleness(r, before, timelines);
    if (stale) say(found[r.level], stale);
  }
  return [...found.held, ...found.linearizable, ...found.session];
}

/**
 * Why a read is stale: of the transfers that completed before it began
 * (`before`, all on its item), the one latest in the item's order, and the
 * balances from its write on, none of which the read returned. Null when the
 * read returned one of them.
 */
function staleness(r: HistoryOp & { value: number }, before: readonly HistoryOp[], timelines: ItemTimelines): string | null {
  const item = r.items[0]!;
  let latest: { write: HistoryOp; index: number } | null = null;
  for (const w of before) {
    const index = timelines.lastWriteBy(item, w.requestId);
    if (index !== null && (!latest || index > latest.index)) latest = { write: w, index };
  }
  if (!latest) return null;
  const states = timelines.statesOf(item);
  const since = states.slice(latest.index);
  if (since.some((s) => s.balance === r.value)) return null;
  const w = latest.write;
  const whose = r.level === 'session' ? `its own client's ${w.op}` : w.op;
  const at = since[0]!;
  const earlier = states.slice(0, latest.index).filter((s) => s.balance === r.value).at(-1);
  const observed = earlier ? ` (item ${item}'s balance as of ${where(earlier)})` : r.value === timelines.initialBalance ? ` (item ${item}'s initial balance)` : '';
  const shown = some([...new Set(since.map((s) => s.balance))]);
  return (
    `${r.level} ${describeRead(r)} returned ${r.value}${observed}; ` +
    `${whose} #${w.id} (${w.requestId}) completed at ${Math.round(w.completedAt)} ms, before the read began at ${Math.round(r.invokedAt)} ms, ` +
    `and left item ${item} at ${at.balance} (${where(at)}): expected one of ${shown}`
  );
}

/** The first few values, for a message. */
function some(values: readonly number[]): string {
  return values.slice(0, SHOWN_VALUES).join(', ') + (values.length > SHOWN_VALUES ? ', …' : '');
}

function where(s: ItemState): string {
  return `c${s.cluster} seq ${s.ranAt}`;
}
