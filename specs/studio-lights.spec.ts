/**
 * The replay's lit states, derived from a node's log: the election from the
 * last role event, the acceptor catching up between a request and what it
 * received, the proposer replicating while its own entries wait to commit,
 * the lock manager contended while a transfer waits, and each 2PC actor's
 * state from its phase events. And the same on a simulated run's real log.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { initialLights, inFlightTxs, stepLights, type Lights } from '../charts/lights.js';
import { shardbank, type LogEventProps } from '../protocol/messages.js';
import { SimCluster } from '../runtime/sim.js';
import { applyEvent, emptyState, type ReplicaState } from '../store/state.js';

const { Phase, Status } = shardbank;

/** Folds events into a state and the lights, as the replay does; returns the lights after each event. */
function fold(self: number, events: LogEventProps[]): { lights: Lights; state: ReplicaState; seen: Record<string, unknown>[] } {
  const state = emptyState(self);
  const lights = initialLights();
  const seen: Record<string, unknown>[] = [];
  events.forEach((ev, i) => {
    applyEvent(state, ev);
    stepLights(lights, self, i, ev, state);
    seen.push({ ...lights.values });
  });
  return { lights, state, seen };
}

const ballot = (round: number, node: number) => ({ round, node });
const transfer = (client: string, ts: number, sender: number, receiver: number) => ({ client, timestamp: ts, transfer: { sender, receiver, amount: 1 } });

test('a flush makes the set\'s first node leader and the rest followers; role events move the election from then on', () => {
  const flushed = { flushed: { set: 1, leader: 1, initialBalance: 10, ballot: ballot(1, 1) } };
  assert.is(fold(1, [flushed]).seen[0]!['election'], 'leader');
  assert.equal(fold(1, [flushed]).seen[0]!['proposer'], { leading: 'quiet' });
  const { seen } = fold(2, [
    flushed,
    { role: { role: 'candidate', ballot: ballot(2, 2), why: 'leader silent past the election timeout' } },
    { role: { role: 'leader', ballot: ballot(2, 2), voters: [2, 3] } },
    { role: { role: 'follower', leader: 3, ballot: ballot(3, 3) } },
  ]);
  assert.equal(
    seen.map((s) => s['election']),
    ['follower', 'candidate', 'leader', 'follower'],
  );
  assert.equal(seen.map((s) => s['proposer']), ['idle', 'idle', { leading: 'quiet' }, 'idle']);
});

test('the proposer replicates while entries accepted at its ballot are not committed; the executor waits while committed ones have not run', () => {
  const cmd = transfer('c/1', 1, 1, 2);
  const { seen } = fold(1, [
    { flushed: { set: 1, leader: 1, initialBalance: 10, ballot: ballot(1, 1) } },
    { accepted: { entries: [{ seq: 1, ballot: ballot(1, 1), command: cmd }] } },
    { committed: { slots: [1] } },
    { executed: { seq: 1, command: cmd, status: Status.COMMITTED, writes: [{ item: 1, balance: 9 }, { item: 2, balance: 11 }] } },
  ]);
  assert.equal(seen.map((s) => s['proposer']), [{ leading: 'quiet' }, { leading: 'replicating' }, { leading: 'quiet' }, { leading: 'quiet' }]);
  assert.equal(seen.map((s) => s['executor']), ['idle', 'idle', 'waiting', 'idle']);
  assert.equal(seen.map((s) => s['lockManager']), ['free', 'holding', 'free', 'free']);
});

test('an acceptor catches up from its request to what it receives; a failed node is lit failed until it recovers', () => {
  const { seen } = fold(3, [
    { flushed: { set: 1, leader: 1, initialBalance: 10 } },
    { failed: {} },
    { recovered: {} },
    { catchup: { what: 'requested', from: 1, fromSeq: 4 } },
    { catchup: { what: 'received', from: 1, entries: 3, through: 6 } },
  ]);
  assert.equal(seen.map((s) => s['node']), ['live', 'failed', 'live', 'live', 'live']);
  assert.equal(seen.map((s) => s['acceptor']), ['current', 'current', 'current', 'catchingUp', 'current']);
});

test('a transfer parked behind a prepared transaction makes the lock manager contended until it runs; 2PC actors follow their phases', () => {
  const waiting = transfer('c/2', 1, 1, 2);
  const cross = transfer('c/3', 1, 1, 4001);
  const { seen, lights } = fold(1, [
    { flushed: { set: 1, leader: 1, initialBalance: 10, ballot: ballot(1, 1) } },
    { phase: { txid: 'c/3:1', role: 'coordinator', phase: 'preparing', command: cross } },
    { executed: { seq: 1, phase: Phase.PHASE_PREPARE, command: cross, status: Status.COMMITTED, txid: 'c/3:1', role: 'coordinator', writes: [{ item: 1, balance: 9 }], before: [{ item: 1, balance: 10 }] } },
    { lock: { command: waiting, decision: 'waiting', item: 1, holder: 'c/3:1' } },
    { phase: { txid: 'c/3:1', role: 'coordinator', phase: 'deciding commit', command: cross } },
    { executed: { seq: 2, command: waiting, status: Status.COMMITTED, writes: [{ item: 1, balance: 8 }, { item: 2, balance: 11 }] } },
    { phase: { txid: 'c/3:1', role: 'coordinator', phase: 'done', why: 'participant acknowledged', command: cross } },
  ]);
  assert.equal(seen.map((s) => s['lockManager']), ['free', 'free', 'holding', 'contended', 'contended', 'holding', 'holding']);
  assert.is(lights.txs.get('c/3:1')!.state, 'done');
  assert.is(lights.txs.get('c/3:1')!.phase, 'done');
  assert.equal(inFlightTxs(lights), [], 'a done coordinator is no longer in flight');
});

test('on a simulated cluster\'s own log: the leader\'s lights say leader and a cross-shard coordinator that finished', async () => {
  const sim = await SimCluster.start({ seed: 5 });
  try {
    await sim.startSet();
    const r = await sim.transfer(1, 4001, 1);
    assert.is(r.status, 'committed');
    await sim.runFor(500);
    const events = await sim.logs.get(1)!.readAll();
    const { lights } = fold(1, events);
    assert.is(lights.values['election'], 'leader');
    const coordinators = [...lights.txs.values()].filter((t) => t.role === 'coordinator');
    assert.is(coordinators.length, 1);
    assert.is(coordinators[0]!.state, 'done');
    const participant = fold(4, await sim.logs.get(4)!.readAll()).lights;
    assert.equal([...participant.txs.values()].map((t) => `${t.role} ${t.state}`), ['participant done']);
  } finally {
    await sim.stop();
  }
});

test.run();
