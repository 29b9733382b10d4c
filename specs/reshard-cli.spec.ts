/**
 * `shardbank reshard` against a running cluster of node processes, as an
 * operator runs it: `--dry-run` prints the plan and its cut and moves
 * nothing; the real run moves the same items (same seed) and prints them as
 * triplets on one line, in item order; a second run has nothing to move;
 * the new owners answer for the moved items; a cluster no node of which
 * answers is one line and exit code 1; a bad flag is exit code 2.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { LocalCluster } from '../cli/cluster.js';
import { flushCluster } from '../cli/runner.js';
import type { ReshardResult } from '../cli/reshard.js';
import { clusterNodes, makeTopology } from '../protocol/topology.js';
import { shardbank } from './support/cli.js';
import { freePortRange } from './support/ports.js';
import { stopLocalCluster } from './support/local.js';

test('reshard: --dry-run plans, the real run moves the same items and prints them, a second run moves nothing', async () => {
  const topology = makeTopology({ basePort: await freePortRange(9) });
  const dataDir = mkdtempSync(join(tmpdir(), 'shardbank-reshard-cli-'));
  const cluster = await LocalCluster.create(topology, dataDir, { plaintext: true });
  const { admin, transport: adminTransport } = cluster.admin('reshard-cli-admin');
  const { client, transport } = cluster.client('reshard-cli', 4);
  const security = cluster.security.mode === 'plaintext' ? cluster.security.cluster : '';
  const connect = ['--config', cluster.configPath, '--plaintext', '--cluster-id', security];
  try {
    await cluster.start(admin);
    await flushCluster(admin, topology, 1);
    // Three pairs that trade across clusters, again and again: each pair belongs in one cluster.
    const pairs: [number, number][] = [[11, 3011], [3022, 6022], [6033, 33]];
    for (let round = 0; round < 4; round++) {
      const results = await Promise.all(pairs.map(([s, r]) => client.transfer(s, r, 1)));
      assert.ok(results.every((r) => r.status === 'committed'), JSON.stringify(results));
    }

    const dry = await shardbank(['reshard', ...connect, '--dry-run', '--json']);
    assert.is(dry.code, 0, dry.err);
    const plan = JSON.parse(dry.out) as ReshardResult;
    assert.is(plan.dryRun, true);
    assert.is(plan.transfers, 12);
    assert.is(plan.cutBefore, 12, 'every transfer crossed clusters');
    assert.is(plan.cutAfter, 0);
    assert.is(plan.moves.length, 3, `one item of each pair moves: ${JSON.stringify(plan.moves)}`);
    for (const [s, r] of pairs) assert.is(plan.moves.filter(([item]) => item === s || item === r).length, 1);
    const text = await shardbank(['reshard', ...connect, '--dry-run']);
    assert.is(text.code, 0);
    const triplets = plan.moves.map(([item, from, to]) => `(${item}, c${from}, c${to})`).join(' ');
    assert.is(text.out.split('\n')[0], `plan: ${triplets}`);
    assert.match(text.out.split('\n')[1]!, /cut 12 -> 0 of 12 recent transfers, imbalance/);

    const real = await shardbank(['reshard', ...connect]);
    assert.is(real.code, 0, real.err);
    assert.is(real.out.split('\n')[0], triplets, 'the moves, one line, in item order');
    assert.match(real.out.split('\n')[1]!, /3 of 3 items moved in 3 batches/);

    // The new owners hold the moved items: a transfer on each pair is now intra-shard there.
    for (const [item, , to] of plan.moves) {
      const balances = await Promise.all(clusterNodes(topology, to).map(async (n) => (await admin.request(n, { printDb: {} })).items?.find((x) => x.item === item)));
      assert.ok(balances.every((b) => b !== undefined), `item ${item} is on every replica of c${to}`);
    }
    const again = await shardbank(['reshard', ...connect]);
    assert.is(again.code, 0);
    assert.is(again.out.split('\n')[0], 'no items moved');
    assert.match(again.out, /cut 0 -> 0 of 12 recent transfers/);

    const nowhere = await shardbank(['reshard', ...connect, '--base-port', String(await freePortRange(9))]);
    assert.is(nowhere.code, 1);
    assert.is(nowhere.err.trim().split('\n').length, 1, nowhere.err);
    assert.match(nowhere.err, /^shardbank reshard: cluster 1: no node answers \(n1: .*ECONNREFUSED/);
    assert.match(nowhere.err, /nothing was planned or moved/);

    const bad = await shardbank(['reshard', ...connect, '--imbalance', '1.5']);
    assert.is(bad.code, 2);
    assert.match(bad.err, /--imbalance.*"1.5" is not a number in 0..1/);
  } finally {
    await stopLocalCluster({ client, cluster, transports: [transport, adminTransport], dataDir });
  }
});

test.run();
