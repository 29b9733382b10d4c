/**
 * Snapshots and compaction: a node's log stays bounded however long it runs;
 * replaying the snapshot and the events after it gives exactly the live
 * state; a follower that fell behind what the leader keeps is sent the
 * leader's state; a node restarts from a compacted log.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { NodeId } from '../protocol/messages.js';
import { makeTopology } from '../protocol/topology.js';
import { SimCluster } from '../runtime/sim.js';
import { replay, type ReplicaState } from '../store/state.js';

const tuning = { snapshotEvery: 150, retainEntries: 20 };
const C1: NodeId[] = [1, 2, 3];
const C2: NodeId[] = [4, 5, 6];

async function busy(sim: SimCluster, rounds: number): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    const jobs = [sim.client.transfer(1 + (i % 50), 51 + (i % 50), 1), sim.client.transfer(3001 + (i % 40), 1 + (i % 40), 1)];
    await sim.until(Promise.all(jobs));
  }
  await sim.runFor(500);
}

function summary(s: ReplicaState) {
  return {
    executedThrough: s.executedThrough,
    commitThrough: s.commitThrough,
    lowWater: s.lowWater,
    balances: [...s.balances].sort((a, b) => a[0] - b[0]),
    replies: [...s.replies].map(([c, r]) => [c, r.timestamp, r.reply.status, r.reply.reason]).sort(),
    wal: [...s.wal.keys()].sort(),
    decisions: [...s.decisions].sort(),
    unacked: [...s.unacked.keys()].sort(),
    log: [...s.log].map(([k, v]) => [k, v.seq, v.phase, v.committed, v.runsAt ?? 0]).sort((a, b) => (a[0] as number) - (b[0] as number)),
  };
}

test('logs stay bounded, and replaying the snapshot plus the events after it gives the live state', async () => {
  const sim = await SimCluster.start({ seed: 71, topology: makeTopology({ tuning }) });
  await sim.startSet();
  await busy(sim, 120);
  for (const n of [...C1, ...C2]) {
    const host = sim.host(n);
    assert.ok(host.stats.snapshots >= 1, `n${n} took snapshots`);
    const stored = await sim.logs.get(n)!.count();
    assert.ok(stored < tuning.snapshotEvery * 2, `n${n} keeps ${stored} events, not ${host.stats.events}`);
    assert.ok(host.state.log.size <= tuning.retainEntries + 60, `n${n} keeps ${host.state.log.size} log slots`);
    assert.equal(summary(replay(n, await sim.logs.get(n)!.readAll())), summary(host.state), `n${n}: replay equals the live state`);
  }
  for (const n of C1) assert.equal(sim.balances(1, [n]), sim.balances(1, [1]));
  await sim.stop();
});

test("a follower behind what its leader keeps receives the leader's state and carries on", async () => {
  const sim = await SimCluster.start({ seed: 72, topology: makeTopology({ tuning }) });
  await sim.startSet();
  await sim.fail(3);
  await busy(sim, 120);
  assert.ok(sim.host(1).state.lowWater > sim.host(3).state.executedThrough, "n3 is below the leader's low-water mark");
  await sim.recover(3);
  await sim.runFor(1000);
  await busy(sim, 5);
  assert.is(sim.host(3).state.executedThrough, sim.host(1).state.executedThrough);
  assert.equal(summary(sim.host(3).state).balances, summary(sim.host(1).state).balances);
  assert.equal(summary(replay(3, await sim.logs.get(3)!.readAll())), summary(sim.host(3).state), 'n3: replay equals the live state');
  await sim.stop();
});

test('a node restarts from its compacted log with the state it had', async () => {
  const sim = await SimCluster.start({ seed: 73, topology: makeTopology({ tuning }) });
  await sim.startSet();
  await busy(sim, 100);
  const before = summary(sim.host(2).state);
  await sim.crash(2);
  const host = await sim.restart(2);
  assert.equal(summary(host.state), before);
  await busy(sim, 10);
  assert.equal(sim.balances(51, [2]), sim.balances(51, [1]));
  await sim.stop();
});

test.run();
