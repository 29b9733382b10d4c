/**
 * Real node processes killed with SIGKILL again and again while a client
 * keeps sending intra- and cross-shard transfers, with snapshots and
 * compaction frequent enough to happen many times on disk. At the end money
 * is conserved, the replicas of each cluster agree, nothing is in doubt.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { LocalCluster } from '../cli/cluster.js';
import { flushCluster, SetRunner } from '../cli/runner.js';
import type { NodeId } from '../protocol/messages.js';
import { createRng } from '../protocol/rng.js';
import { allNodes, clusterOfNode, makeTopology } from '../protocol/topology.js';
import { freePortRange } from './support/ports.js';
import { stopLocalCluster } from './support/local.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('nodes SIGKILLed repeatedly under load come back from their (compacted) logs; invariants hold at the end', async () => {
  const topology = makeTopology({ basePort: await freePortRange(9), tuning: { snapshotEvery: Number(process.env.SHARDBANK_SNAP ?? 300), retainEntries: 40 } });
  const dataDir = mkdtempSync(join(tmpdir(), 'shardbank-kill-'));
  const cluster = await LocalCluster.create(topology, dataDir);
  const { admin, transport: adminTransport } = cluster.admin('kill-admin');
  const { client, transport } = cluster.client('kill', 8);
  const rng = createRng(535);
  // Restarts still under way when an assertion fails are waited for before the cluster and its files go.
  const restarts: Promise<void>[] = [];
  try {
    await cluster.start(admin);
    await flushCluster(admin, topology, 1);
    const hot = [1, 3001, 6001].map((base) => Array.from({ length: 20 }, (_, i) => base + i));
    let stop = false;
    const outcomes: Record<string, number> = {};
    const worker = async () => {
      while (!stop) {
        const c = rng.int(0, 2);
        const s = hot[c]![rng.int(0, 19)]!;
        const rc = rng.next() < 0.4 ? (c + rng.int(1, 2)) % 3 : c;
        let r = hot[rc]![rng.int(0, 19)]!;
        if (r === s) r = hot[rc]![(hot[rc]!.indexOf(s) + 1) % 20]!;
        const res = await client.transfer(s, r, rng.int(1, 3));
        outcomes[res.status] = (outcomes[res.status] ?? 0) + 1;
      }
    };
    const workers = Array.from({ length: 8 }, worker);
    // Kill a node every 700 ms (at most one per cluster down), restart it 500 ms later.
    const down = new Set<number>();
    let kills = 0;
    for (let round = 0; round < 10; round++) {
      await sleep(700);
      const candidates = allNodes(topology).filter((n) => !down.has(clusterOfNode(topology, n)));
      // Every cluster already has a node down (restarts run late on a busy machine): wait for one.
      if (candidates.length === 0) {
        await Promise.race(restarts);
        continue;
      }
      const victim: NodeId = candidates[rng.int(0, candidates.length - 1)]!;
      down.add(clusterOfNode(topology, victim));
      await cluster.kill(victim);
      kills++;
      restarts.push(
        sleep(500).then(async () => {
          cluster.spawn(victim);
          await cluster.waitReady(admin, victim);
          down.delete(clusterOfNode(topology, victim));
        }),
      );
    }
    stop = true;
    await Promise.all(workers);
    // Every restart finishes before the test ends (and before stop() counts the processes).
    await Promise.all(restarts);
    assert.is(down.size, 0, 'every killed node is back');
    const runner = new SetRunner({ topology, client, admin });
    // Settling can take a new election and a catch-up after the last restart: wait up to 30 s (it returns once settled).
    const audit = await runner.audit(30_000);
    assert.ok((outcomes['committed'] ?? 0) > 50, `work got done: ${JSON.stringify(outcomes)}`);
    assert.ok(kills >= 5, `${kills} nodes killed`);
    assert.ok(audit.conserved, `total ${audit.total}, expected ${audit.expectedTotal}: ${JSON.stringify(audit)} ${JSON.stringify(outcomes)}`);
    assert.ok(audit.replicasAgree, 'replicas of each cluster agree');
    assert.is(audit.inDoubt, 0, `no cross-shard transaction in doubt: ${JSON.stringify(audit)}`);
  } finally {
    await Promise.allSettled(restarts);
    await stopLocalCluster({ client, cluster, transports: [transport, adminTransport], dataDir });
  }
});

test.run();
