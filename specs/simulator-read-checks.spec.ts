/**
 * The simulator's read checkers, rule by rule, on small hand-made runs: an
 * item's serial order rebuilt from the replicas' journals, and a history of
 * what the clients saw. A linearizable read must reflect every transfer that
 * completed before it began; a session read its own client's; any read a
 * value its item held.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { LogEventProps, NodeId } from '../protocol/messages.js';
import { shardbank } from '../protocol/messages.js';
import { makeTopology } from '../protocol/topology.js';
import { ItemTimelines } from '../runtime/item-timelines.js';
import { checkReadLevels } from '../runtime/read-checks.js';
import type { HistoryOp } from '../runtime/sim-history.js';

const topology = makeTopology({ clusters: 2, nodesPerCluster: 3, items: 200, initialBalance: 20 });
const SEED = 7;

/** An executed transfer: `client:timestamp` wrote these balances at this point of its cluster's log. */
function wrote(id: string, ranAt: number, writes: [number, number][]): LogEventProps {
  const [client, timestamp] = id.split(':');
  return {
    executed: {
      seq: ranAt,
      ranAt,
      command: { client, timestamp: Number(timestamp), transfer: { sender: writes[0]![0], receiver: writes[1]?.[0] ?? 0, amount: 1 } },
      status: shardbank.Status.COMMITTED,
      writes: writes.map(([item, balance]) => ({ item, balance })),
    },
  };
}

/** A move's commit at one cluster: the item's owner is now `cluster`, one version up. */
function moved(item: number, cluster: number, version: number, ranAt: number): LogEventProps {
  return { executed: { seq: ranAt, ranAt, command: { client: 'resharder/r1', timestamp: 1 }, status: shardbank.Status.COMMITTED, owners: [{ item, cluster, version }] } };
}

/** Journals by node; nodes not named have written nothing. */
function timelines(journals: Partial<Record<NodeId, LogEventProps[]>>): ItemTimelines {
  const flushed: LogEventProps = { flushed: { initialBalance: 20, leader: 1, set: 1 } };
  return new ItemTimelines(topology, (node) => [flushed, ...(journals[node] ?? [])]);
}

let nextId = 1;
function transfer(client: string, requestId: string, items: [number, number], completedAt: number): HistoryOp {
  return { id: nextId++, op: `(${items[0]}, ${items[1]}, 1)`, kind: 'transfer', items, client, requestId, invokedAt: completedAt - 5, completedAt, type: 'ok', status: 'committed' };
}
function read(client: string, level: HistoryOp['level'], item: number, invokedAt: number, value: number, node: NodeId = 1): HistoryOp {
  return { id: nextId++, op: `(${item}, ${level})`, kind: 'read', items: [item], client, requestId: `${client}/9:${nextId}`, invokedAt, completedAt: invokedAt + 3, type: 'ok', status: 'ok', value, level, node, executedThrough: 0 };
}

// Item 1 (cluster 1): 20, then 15 (client's transfer at seq 1), then 12 (client2's at seq 2).
const twoWrites = () =>
  timelines({
    1: [wrote('client/1:1', 1, [[1, 15], [2, 25]]), wrote('client2/1:1', 2, [[1, 12], [3, 23]])],
    // A replica that caught up by snapshot lacks the first write; the union of the journals has it.
    2: [wrote('client2/1:1', 2, [[1, 12], [3, 23]])],
  });
const t1 = transfer('client', 'client/1:1', [1, 2], 10);
const t2 = transfer('client2', 'client2/1:1', [1, 3], 20);

test('a linearizable read that returns the balance from before a transfer completed ahead of it is a violation, named with the node and the values', () => {
  const stale = read('client3', 'linearizable', 1, 25, 15, 2);
  const found = checkReadLevels([t1, t2, stale], twoWrites(), SEED);
  assert.is(found.length, 1);
  assert.match(found[0]!, `seed ${SEED}: linearizable read #${stale.id} (1, linearizable) by client3, answered by n2`);
  assert.match(found[0]!, 'returned 15');
  assert.match(found[0]!, `(1, 3, 1) #${t2.id} (client2/1:1)`);
  assert.match(found[0]!, 'left item 1 at 12 (c1 seq 2): expected one of 12');
});

test('a linearizable read that reflects the last completed transfer, or began before it completed, passes', () => {
  const fresh = read('client3', 'linearizable', 1, 25, 12);
  const early = read('client3', 'linearizable', 1, 15, 15);
  // Began while the second transfer was in flight: it may see either.
  const overlapping = read('client3', 'linearizable', 1, 18, 15);
  assert.equal(checkReadLevels([t1, t2, fresh, early, overlapping], twoWrites(), SEED), []);
});

test('a value the item held again later is not stale: 15, then 12, then 15 once more', () => {
  const j = timelines({ 1: [wrote('client/1:1', 1, [[1, 15], [2, 25]]), wrote('client2/1:1', 2, [[1, 12], [3, 23]]), wrote('client/1:2', 3, [[4, 17], [1, 15]])] });
  const t3 = transfer('client', 'client/1:2', [4, 1], 30);
  assert.equal(checkReadLevels([t1, t2, read('client3', 'linearizable', 1, 25, 15)], j, SEED), []);
  assert.equal(checkReadLevels([t1, t2, t3, read('client3', 'linearizable', 1, 35, 15)], j, SEED), []);
  assert.is(checkReadLevels([t1, t2, t3, read('client3', 'linearizable', 1, 35, 12)], j, SEED).length, 1);
});

test("a session read must reflect its own client's completed writes, not another client's", () => {
  // client wrote 15 (t1); client2 then wrote 12 (t2). A session read of client's that returns 15 keeps its promise.
  assert.equal(checkReadLevels([t1, t2, read('client', 'session', 1, 25, 15, 3)], twoWrites(), SEED), []);
  // client2's session read returning 15 missed client2's own write.
  const missed = read('client2', 'session', 1, 25, 15, 3);
  const found = checkReadLevels([t1, t2, missed], twoWrites(), SEED);
  assert.is(found.length, 1);
  assert.match(found[0]!, `session read #${missed.id} (1, session) by client2, answered by n3`);
  assert.match(found[0]!, "its own client's (1, 3, 1)");
  // And a session read from before the client's first write may return the initial balance.
  assert.equal(checkReadLevels([t1, t2, read('client', 'session', 1, 5, 20)], twoWrites(), SEED), []);
});

test('any and leader reads may be old, but only values the item held', () => {
  const old = [read('client', 'any', 1, 25, 20, 3), read('client', 'leader', 1, 25, 15, 1)];
  assert.equal(checkReadLevels([t1, t2, ...old], twoWrites(), SEED), []);
  const found = checkReadLevels([t1, t2, read('client', 'any', 1, 25, 17, 3)], twoWrites(), SEED);
  assert.is(found.length, 1);
  assert.match(found[0]!, 'any read');
  assert.match(found[0]!, 'returned 17, a value item 1 never held');
});

test("an item's order follows its moves: a write at the new owner comes after every write at the old one, whatever their seqs", () => {
  // Item 1 is written at c1 seq 9 (15), moves to c2 (version 1), and c2 writes it at its seq 2 (11).
  const j = timelines({
    1: [wrote('client/1:1', 9, [[1, 15], [2, 25]]), moved(1, 2, 1, 10)],
    4: [moved(1, 2, 1, 1), wrote('client2/1:1', 2, [[1, 11], [102, 29]])],
  });
  const early = transfer('client', 'client/1:1', [1, 2], 10);
  const late = transfer('client2', 'client2/1:1', [1, 102], 20);
  assert.equal(checkReadLevels([early, late, read('client3', 'linearizable', 1, 25, 11, 4)], j, SEED), []);
  const found = checkReadLevels([early, late, read('client3', 'linearizable', 1, 25, 15, 4)], j, SEED);
  assert.is(found.length, 1);
  assert.match(found[0]!, "returned 15 (item 1's balance as of c1 seq 9)");
  assert.match(found[0]!, 'left item 1 at 11 (c2 seq 2)');
});

test('a move-in written at a cluster before it owns the item is not part of the order', () => {
  // c2's move-in writes 15 while c1 still owns the item, and the move aborts; c1 then writes 13.
  const j = timelines({
    1: [wrote('client/1:1', 1, [[1, 15], [2, 25]]), wrote('client2/1:1', 3, [[1, 13], [3, 22]])],
    4: [wrote('resharder/r1:1', 1, [[1, 15]])],
  });
  const t = transfer('client2', 'client2/1:1', [1, 3], 20);
  const timeline = j.statesOf(1).map((s) => `c${s.cluster}:${s.balance}`);
  assert.equal(timeline, ['c1:15', 'c1:13']);
  assert.is(checkReadLevels([t, read('client3', 'linearizable', 1, 25, 15)], j, SEED).length, 1);
});

test.run();
