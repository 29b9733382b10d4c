/**
 * `bench --reshard-at`'s accounting, on made-up results: operations fall
 * before, during or after the reshard by when they were sent; each phase's
 * rate is over its own span; the worst latency during the move is that of
 * any operation in flight while it ran, sent before it or not; cross-shard
 * is what the client's live owners say when the operation ends; a move that
 * outlasts the run leaves no "after".
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { liveKind } from '../cli/bench.js';
import { formatReshard, ReshardPhases } from '../cli/bench-reshard.js';
import type { ReshardOutcome } from '../cli/runner.js';
import type { TxResult } from '../client/client.js';
import type { Op } from '../cli/workload.js';

const ok = (latencyMs: number): TxResult => ({ status: 'committed', latencyMs });
const failed = (latencyMs: number): TxResult => ({ status: 'failed', reason: 'no reply', latencyMs });

const outcome: ReshardOutcome = {
  plan: { moves: [{ item: 1, from: 1, to: 2 }, { item: 2, from: 1, to: 2 }, { item: 3, from: 2, to: 1 }], cutBefore: 90, cutAfter: 3, imbalance: 0.01, transfers: 120, partitionMs: 40 },
  batches: [
    { from: 1, to: 2, items: [1, 2], status: 'committed', reason: '', ms: 900 },
    { from: 2, to: 1, items: [3], status: 'aborted', reason: 'coordinator changed', ms: 1200 },
  ],
  moved: [{ item: 1, from: 1, to: 2 }, { item: 2, from: 1, to: 2 }],
  unreachable: [],
  planMs: 300,
  moveMs: 1700,
};

test('phases by the time an operation was sent; rates over each phase; the worst latency while the reshard ran', () => {
  const phases = new ReshardPhases(0);
  // Before (0..10 s): 10 transfers, 6 cross, one failed.
  for (let i = 0; i < 10; i++) phases.record(i < 6 ? 'cross' : 'intra', i === 9 ? failed(2500) : ok(100), i * 900);
  phases.markStart(10_000);
  phases.record('intra', ok(800), 10_500);
  phases.record('cross', ok(700), 11_000);
  phases.markEnd(12_000);
  // Sent before the reshard began, answered after it ended: counts before, and as the worst during it.
  phases.record('cross', ok(3000), 9500);
  // After (12..30 s): 18 transfers, 1 cross, plus a read that does not count in the share.
  for (let i = 0; i < 18; i++) phases.record(i === 0 ? 'cross' : 'intra', ok(50), 12_000 + i * 1000);
  phases.record('read', ok(5), 29_000);
  const f = phases.figures(outcome, 30_000);
  assert.is(f.atS, 10);
  assert.is(f.moved, 2);
  assert.is(f.planned, 3);
  assert.equal(f.failedBatches, [{ from: 2, to: 1, items: 1, status: 'aborted', reason: 'coordinator changed' }]);
  assert.is(f.before.ops, 11);
  assert.is(f.before.failed, 1);
  assert.is(f.before.crossSharePct, 63.64, '7 of 11 transfers');
  assert.is(f.before.committedPerS, 1, '10 committed over 10 s');
  assert.is(f.during.ops, 2);
  assert.is(f.during.spanS, 2);
  assert.is(f.after!.ops, 19);
  assert.is(f.after!.crossSharePct, 5.56, '1 of 18 transfers; the read is not one');
  assert.is(f.after!.committedPerS, 1.06, '19 over 18 s');
  assert.is(f.maxLatencyDuringMs, 3000, 'sent before the reshard, answered during it');
  assert.is(f.timeline.length, 30);
  assert.is(f.timeline[12]!.maxMs, 3000, 'by the second it ended in');
  const text = formatReshard(f);
  assert.match(text, /^reshard {4}: at 10\.0 s, 2 of 3 planned items moved in 2 batches over 1\.70 s/);
  assert.match(text, /cut 90 -> 3 of 120 recent transfers\); worst latency during it 3000 ms/);
  assert.match(text, /batch of 1 items from c2 to c1 aborted: coordinator changed/);
  assert.ok(text.includes('after / before: 1.06x committed/s'), text);
});

test('a move still going when the run ends: no "after"', () => {
  const phases = new ReshardPhases(0);
  phases.record('intra', ok(10), 100);
  phases.markStart(5000);
  phases.record('intra', ok(10), 6000);
  const f = phases.figures(outcome, 8000);
  assert.is(f.after, null);
  assert.is(f.during.spanS, 3);
  assert.match(formatReshard(f), /the run ended before the move did/);
});

test("cross-shard by the client's owners: a transfer whose items the move brought together is intra", () => {
  const owners = new Map([[1, 1], [3001, 2]]);
  const client = { ownerOf: (item: number) => owners.get(item) ?? null };
  const op: Op = { kind: 'cross', label: 'cross', sender: 1, receiver: 3001, amount: 1 };
  assert.is(liveKind(client, op), 'cross');
  owners.set(3001, 1);
  assert.is(liveKind(client, op), 'intra');
  assert.is(liveKind(client, { kind: 'read', label: 'read', sender: 1, receiver: 0, amount: 0 }), 'read');
});

test.run();
