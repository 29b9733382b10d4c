/**
 * Real node processes over TCP with LevelDB logs: a node killed with SIGKILL
 * in the middle of a run comes back from its log, catches up, and ends with
 * the same balances as its peers.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { LocalCluster } from '../cli/cluster.js';
import { flushCluster } from '../cli/runner.js';
import { makeTopology } from '../protocol/topology.js';
import { freePortRange } from './support/ports.js';
import { stopLocalCluster } from './support/local.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('a node SIGKILLed mid-run restarts from its log and ends equal to its peers', async () => {
  const topology = makeTopology({ basePort: await freePortRange(9) });
  const dataDir = mkdtempSync(join(tmpdir(), 'shardbank-spec-'));
  const cluster = await LocalCluster.create(topology, dataDir);
  const { admin, transport: adminTransport } = cluster.admin('spec-admin');
  const { client, transport } = cluster.client('spec', 8);
  try {
    await cluster.start(admin);
    await flushCluster(admin, topology, 1);
    const pidBefore = cluster.pid(2);
    // 200 transfers from items 1..40 to 41..80, 8 in flight (never sharing an item,
    // so no lock conflicts); n2 dies a third of the way in.
    const jobs: Promise<unknown>[] = [];
    for (let i = 0; i < 200; i++) {
      const s = 1 + (i % 40);
      const r = 41 + (i % 40);
      jobs.push(client.transfer(s, r, 1));
      if (i === 70) {
        await sleep(20);
        await cluster.kill(2);
      }
    }
    const results = (await Promise.all(jobs)) as { status: string }[];
    const committed = results.filter((r) => r.status === 'committed').length;
    assert.is(committed, 200, `n1 and n3 keep a majority: ${JSON.stringify(results.filter((r) => r.status !== 'committed'))}`);
    cluster.spawn(2);
    await cluster.waitReady(admin, 2);
    assert.is.not(cluster.pid(2), pidBefore);
    // Catch-up is driven by the leader's heartbeats; give it a moment.
    let same = false;
    for (let i = 0; i < 50 && !same; i++) {
      await sleep(100);
      const dbs = await Promise.all([1, 2, 3].map((n) => admin.request(n, { printDb: {} })));
      const rows = dbs.map((d) => JSON.stringify(d.items));
      same = rows[0] === rows[1] && rows[1] === rows[2] && (dbs[0]!.items?.length ?? 0) > 0;
    }
    assert.ok(same, 'n2 has the same balances as n1 and n3');
    const status = await admin.request(2, { status: {} });
    const leader = await admin.request(1, { status: {} });
    assert.is(status.status?.executedThrough, leader.status?.executedThrough);
    const total = (await admin.request(2, { printDb: {} })).items!.reduce((sum, x) => sum + (x.balance ?? 0), 0);
    assert.is(total, 80 * 10, 'money is conserved on the restarted node');
  } finally {
    await stopLocalCluster({ client, cluster, transports: [transport, adminTransport], dataDir });
  }
});

test.run();
