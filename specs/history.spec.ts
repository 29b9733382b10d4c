/**
 * Resharding's history at a replica: the last `historyWindow` committed
 * transfers, oldest first, however many have committed; a snapshot keeps
 * exactly those.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { shardbank } from '../protocol/messages.js';
import { applyEvent, emptyState, recentTransfers, takeSnapshot } from '../store/state.js';

const { Status } = shardbank;

function committed(state: ReturnType<typeof emptyState>, seq: number): void {
  applyEvent(state, { executed: { seq, command: { client: 'c', timestamp: seq, transfer: { sender: seq, receiver: seq + 1, amount: 1 } }, status: Status.COMMITTED, writes: [] } });
}

test('the history is the last window of committed transfers, in order, and the array stays under twice the window', () => {
  const state = emptyState(1, 10);
  applyEvent(state, { flushed: { initialBalance: 10, leader: 1, set: 1, ballot: { round: 1, node: 1 }, historyWindow: 5 } });
  for (let seq = 1; seq <= 23; seq++) {
    committed(state, seq);
    const want = Array.from({ length: Math.min(seq, 5) }, (_, i) => seq - Math.min(seq, 5) + 1 + i);
    assert.equal(recentTransfers(state).map((t) => t.sender), want, `after ${seq} commits`);
    assert.ok(state.recent.length < 10, `after ${seq} commits the array holds ${state.recent.length}`);
  }
});

test('a snapshot carries the window alone, and installs to the same history', () => {
  const state = emptyState(1, 10);
  applyEvent(state, { flushed: { initialBalance: 10, leader: 1, set: 1, ballot: { round: 1, node: 1 }, historyWindow: 4 } });
  for (let seq = 1; seq <= 7; seq++) committed(state, seq);
  const snap = takeSnapshot(state, 100);
  assert.equal(snap.recent?.map((t) => t.sender), [4, 5, 6, 7]);
  const copy = emptyState(1, 10);
  applyEvent(copy, { snapshot: snap });
  assert.equal(recentTransfers(copy).map((t) => t.sender), [4, 5, 6, 7]);
});

test.run();
