/**
 * Resharding real node processes under load, with leaders SIGKILLed in the
 * middle of the moves: a planned set of moves (each cluster the source of
 * one pair and the destination of another, in small batches) runs while
 * clients keep transferring among the moving items and a few that stay; the
 * leader of c1, then of c2, is killed by its pid while batches are in flight
 * and restarted. Afterwards every item has exactly one owner, by every
 * replica of every cluster (admin history), and its balance is on that
 * cluster's replicas only (PrintDB); money is conserved and replicas agree;
 * and each item's balance is its starting balance plus the transfers the
 * client saw committed, so none was lost or applied twice.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { LocalCluster } from '../cli/cluster.js';
import { flushCluster, SetRunner } from '../cli/runner.js';
import { executePlan, type ItemMove, type MoveBatch } from '../client/resharder.js';
import type { NodeId } from '../protocol/messages.js';
import { createRng } from '../protocol/rng.js';
import { allNodes, clusterNodes, clusterOfItem, clusterOfNode, makeTopology, type Topology } from '../protocol/topology.js';
import type { AdminClient } from '../client/admin.js';
import { freePortRange } from './support/ports.js';
import { stopLocalCluster } from './support/local.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);

interface Sent {
  sender: number;
  receiver: number;
  amount: number;
  status: string;
}

/** The leader of a cluster, as its nodes' status says (polled until one answers as leader). */
async function leaderOf(admin: AdminClient, topology: Topology, cluster: number): Promise<NodeId> {
  for (let i = 0; i < 100; i++) {
    for (const n of clusterNodes(topology, cluster)) {
      const s = await admin.request(n, { status: {} }).catch(() => null);
      if (s?.status?.role === 'leader' && !s.status.failed) return n;
    }
    await sleep(100);
  }
  throw new Error(`cluster ${cluster} elected no leader`);
}

/** Each node's view of who owns `items`: its replica's overrides (admin history), else the shard map. */
async function ownersByNode(admin: AdminClient, topology: Topology, items: number[]): Promise<Map<NodeId, Map<number, number>>> {
  const out = new Map<NodeId, Map<number, number>>();
  for (const n of allNodes(topology)) {
    const reply = await admin.request(n, { history: {} });
    const overrides = new Map((reply.owners ?? []).map((o) => [o.item ?? 0, o.cluster ?? 0]));
    out.set(n, new Map(items.map((i) => [i, overrides.get(i) ?? clusterOfItem(topology, i)!])));
  }
  return out;
}

/**
 * Whether each item's balance minus what the committed transfers explain is
 * what some subset of the unanswered (failed) transfers would add: those may
 * or may not have run, and nothing else may have.
 */
function explainedBy(diff: Map<number, number>, failed: Sent[]): boolean {
  if (failed.length > 16) return false;
  for (let mask = 0; mask < 1 << failed.length; mask++) {
    const d = new Map<number, number>();
    failed.forEach((t, k) => {
      if (!(mask & (1 << k))) return;
      d.set(t.sender, (d.get(t.sender) ?? 0) - t.amount);
      d.set(t.receiver, (d.get(t.receiver) ?? 0) + t.amount);
    });
    if ([...diff].every(([item, v]) => (d.get(item) ?? 0) === v)) return true;
  }
  return false;
}

test('moves under load, with the leaders of a source and a destination SIGKILLed mid-move: one owner per item, money conserved, no transfer lost or doubled', async () => {
  const topology = makeTopology({
    basePort: await freePortRange(9),
    initialBalance: 100,
    // Small batches, so that a kill finds a batch in flight; clients that wait out an election rather than give up.
    tuning: { maxMoveBatch: 6, clientGiveUpMs: 20_000 },
  });
  const dataDir = mkdtempSync(join(tmpdir(), 'shardbank-reshard-kill-'));
  const cluster = await LocalCluster.create(topology, dataDir, { plaintext: true });
  const { admin, transport: adminTransport } = cluster.admin('reshard-admin');
  const { client, transport } = cluster.client('reshard', 8);
  const rng = createRng(1212);
  // c1 -> c2, c2 -> c3, c3 -> c1: every cluster is the source of one pair and the destination of another.
  const moves: ItemMove[] = [
    ...range(1, 30).map((item) => ({ item, from: 1, to: 2 })),
    ...range(3001, 30).map((item) => ({ item, from: 2, to: 3 })),
    ...range(6001, 30).map((item) => ({ item, from: 3, to: 1 })),
  ];
  const staying = [...range(101, 6), ...range(3101, 6), ...range(6101, 6)];
  const hot = [...moves.map((m) => m.item), ...staying];
  const sent: Sent[] = [];
  const restarts: Promise<void>[] = [];
  const killed: NodeId[] = [];
  try {
    await cluster.start(admin);
    await flushCluster(admin, topology, 1);
    let stop = false;
    const worker = async () => {
      while (!stop) {
        const sender = hot[rng.int(0, hot.length - 1)]!;
        let receiver = hot[rng.int(0, hot.length - 1)]!;
        if (receiver === sender) receiver = staying[rng.int(0, staying.length - 1)]!;
        if (receiver === sender) continue;
        const amount = rng.int(1, 3);
        const r = await client.transfer(sender, receiver, amount);
        sent.push({ sender, receiver, amount, status: r.status });
      }
    };
    const workers = Array.from({ length: 8 }, worker);
    await sleep(1500);
    // The leader of `c` dies by its pid once `after` batches have answered; restarted 800 ms later.
    const killAt = new Map([[1, 1], [4, 2]]);
    let answered = 0;
    const kill = (c: number) => {
      const victim = leaderOf(admin, topology, c).then(async (n) => {
        killed.push(n);
        await cluster.kill(n);
        await sleep(800);
        cluster.spawn(n);
        await cluster.waitReady(admin, n);
      });
      restarts.push(victim);
    };
    const batches: MoveBatch[] = await executePlan(admin, topology, moves, {
      client: admin.name,
      onBatch: () => {
        answered++;
        if (answered === killAt.get(1)) kill(1);
        if (answered === killAt.get(4)) kill(2);
      },
    });
    const T = (m: string) => process.env.SHARDBANK_DEBUG && process.stderr.write(`${(performance.now() / 1000).toFixed(1)} ${m}\n`);
    T(`plan done: ${JSON.stringify(batches.map((b) => [b.from, b.to, b.status, b.reason]))}`);
    await Promise.all(restarts);
    T(`restarts done; outcomes so far ${JSON.stringify(sent.reduce<Record<string, number>>((c, t) => Object.assign(c, { [t.status]: (c[t.status] ?? 0) + 1 }), {}))}`);
    await sleep(1000);
    stop = true;
    await Promise.all(workers);

    assert.equal(killed.map((n) => clusterOfNode(topology, n)).sort(), [1, 2], `the leaders of c1 and c2 were killed: ${killed}`);
    const committedBatches = batches.filter((b) => b.status === 'committed');
    assert.ok(committedBatches.length >= 5, `moves went on around the kills: ${JSON.stringify(batches.map((b) => [b.from, b.to, b.status, b.reason]))}`);

    const audit = await new SetRunner({ topology, client, admin }).audit(30_000);
    assert.ok(audit.conserved, `money conserved: ${JSON.stringify(audit)}`);
    assert.ok(audit.replicasAgree, 'the replicas of each cluster agree');
    assert.is(audit.inDoubt, 0, 'nothing in doubt');

    // One owner per item: the replicas of each cluster agree on it, and exactly one cluster's
    // replicas name themselves (a cluster that took no part in an item's move still names the
    // shard map's owner, which no longer claims it).
    const items = moves.map((m) => m.item);
    const views = await ownersByNode(admin, topology, items);
    const owner = new Map<number, number>();
    for (const item of items) {
      const claims = new Set<number>();
      for (let c = 1; c <= topology.clusters; c++) {
        const named = new Set(clusterNodes(topology, c).map((n) => views.get(n)!.get(item)));
        assert.is(named.size, 1, `item ${item}: the replicas of c${c} name one owner (${[...named]})`);
        if (named.has(c)) claims.add(c);
      }
      assert.is(claims.size, 1, `item ${item}: exactly one cluster owns it (${[...claims]})`);
      owner.set(item, [...claims][0]!);
    }
    const moved = new Set(committedBatches.flatMap((b) => b.items));
    for (const m of moves) assert.is(owner.get(m.item), moved.has(m.item) ? m.to : m.from, `item ${m.item} is where its batch's outcome says`);
    // Its balance is on the owner's replicas (a move-in writes it) and on no other cluster's.
    const dbs = new Map<NodeId, Set<number>>();
    for (const n of allNodes(topology)) dbs.set(n, new Set(((await admin.request(n, { printDb: {} })).items ?? []).map((x) => x.item ?? 0)));
    for (const item of items) {
      for (const n of allNodes(topology)) {
        const here = clusterOfNode(topology, n) === owner.get(item);
        if (!here) assert.not.ok(dbs.get(n)!.has(item), `item ${item} has no balance on ${n}, of a cluster that does not own it`);
        else if (moved.has(item)) assert.ok(dbs.get(n)!.has(item), `item ${item} moved in: its balance is on n${n}`);
      }
    }

    // Every balance is the start plus the committed transfers (and possibly some unanswered ones).
    const failed = sent.filter((t) => t.status === 'failed');
    const expected = new Map(hot.map((i) => [i, topology.initialBalance]));
    for (const t of sent.filter((t) => t.status === 'committed')) {
      expected.set(t.sender, expected.get(t.sender)! - t.amount);
      expected.set(t.receiver, expected.get(t.receiver)! + t.amount);
    }
    const diff = new Map<number, number>();
    for (const item of hot) {
      const c = owner.get(item) ?? clusterOfItem(topology, item)!;
      const balances = await Promise.all(clusterNodes(topology, c).map(async (n) => (await admin.request(n, { printBalance: { item } })).balance ?? 0));
      assert.ok(balances.every((b) => b === balances[0]), `item ${item}: the replicas of c${c} agree (${balances})`);
      if (balances[0] !== expected.get(item)) diff.set(item, balances[0]! - expected.get(item)!);
    }
    const counts = sent.reduce<Record<string, number>>((c, t) => Object.assign(c, { [t.status]: (c[t.status] ?? 0) + 1 }), {});
    assert.ok((counts['committed'] ?? 0) > 100, `work got done: ${JSON.stringify(counts)}`);
    assert.ok(diff.size === 0 || explainedBy(diff, failed), `balances match the committed transfers (${JSON.stringify(counts)}): off by ${JSON.stringify([...diff])}`);
  } finally {
    client.abandonAll();
    await Promise.allSettled(restarts);
    await stopLocalCluster({ client, cluster, transports: [transport, adminTransport], dataDir });
  }
});

test.run();
