/**
 * The benchmark's workload generator honours the mix and the skew it is
 * asked for (counted over many draws, within sampling error).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Ora } from 'ora';
import { runWorkload, warmUp } from '../cli/bench.js';
import { affinityGroups, PRESETS, Workload, ZipfSampler } from '../cli/workload.js';
import { workloadGraph } from '../cli/txgraph.js';
import { clusterOfItem, makeTopology } from '../protocol/topology.js';

const topology = makeTopology();
const N = 40_000;

function draw(opts: ConstructorParameters<typeof Workload>[1], n = N) {
  const w = new Workload(topology, opts);
  return Array.from({ length: n }, () => w.next());
}

const near = (got: number, want: number, tol: number, what: string) => assert.ok(Math.abs(got - want) <= tol, `${what}: ${got.toFixed(4)} vs ${want} (tolerance ${tol})`);

test('the read-only and cross-shard shares are honoured', () => {
  const ops = draw({ seed: 1, readOnlyPct: 20, crossShardPct: 30, distribution: 'uniform', skew: 0 });
  const reads = ops.filter((o) => o.kind === 'read').length / N;
  const rw = ops.filter((o) => o.kind !== 'read');
  const cross = rw.filter((o) => o.kind === 'cross').length / rw.length;
  near(reads, 0.2, 0.01, 'read share');
  near(cross, 0.3, 0.01, 'cross-shard share of read-write');
  for (const o of rw) {
    assert.is.not(o.sender, o.receiver);
    const same = clusterOfItem(topology, o.sender) === clusterOfItem(topology, o.receiver);
    assert.is(same, o.kind === 'intra', `${o.kind} (${o.sender}, ${o.receiver})`);
  }
});

test("uniform draws spread evenly over a cluster's items", () => {
  const ops = draw({ seed: 2, readOnlyPct: 100, crossShardPct: 0, distribution: 'uniform', skew: 0 });
  const firstTenth = ops.filter((o) => (o.sender - 1) % 3000 < 300).length / N;
  near(firstTenth, 0.1, 0.01, 'share of the first 10% of items');
});

test('Zipf: the probability of rank k falls as 1/k^theta', () => {
  const theta = 0.99;
  const z = new ZipfSampler(3000, theta);
  const counts = new Map<number, number>();
  for (let i = 0; i < N * 5; i++) {
    const k = z.sample((i + 0.5) / (N * 5));
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  const h = Array.from({ length: 3000 }, (_, i) => 1 / Math.pow(i + 1, theta)).reduce((a, b) => a + b, 0);
  for (const rank of [0, 1, 9, 99]) near((counts.get(rank) ?? 0) / (N * 5), 1 / Math.pow(rank + 1, theta) / h, 0.002, `rank ${rank + 1}`);
  // And through the workload: the hottest item of a cluster draws about 1/H of that cluster's draws.
  const ops = draw({ seed: 3, readOnlyPct: 100, crossShardPct: 0, distribution: 'zipf', skew: theta });
  const hottest = ops.filter((o) => (o.sender - 1) % 3000 === 0).length / N;
  near(hottest, 1 / h, 0.01, 'hottest item share');
});

test('hotspot: a share `skew` of draws lands on the hottest 1% of items', () => {
  const ops = draw({ seed: 4, readOnlyPct: 100, crossShardPct: 0, distribution: 'hotspot', skew: 0.8 });
  const hot = ops.filter((o) => (o.sender - 1) % 3000 < 30).length / N;
  near(hot, 0.8 + 0.2 * 0.01, 0.01, 'hot share');
});

test('the SmallBank mix draws its kinds in SmallBank proportions', () => {
  const ops = draw({ seed: 5, readOnlyPct: 0, crossShardPct: 20, distribution: 'uniform', skew: 0, smallbank: true });
  const share = (label: string) => ops.filter((o) => o.label === label).length / N;
  near(share('Balance'), 0.15, 0.01, 'Balance');
  near(share('SendPayment'), 0.25, 0.01, 'SendPayment');
  assert.ok(ops.filter((o) => o.label === 'Balance').every((o) => o.kind === 'read'));
});

test('the same seed gives the same workload; bad shares are refused', () => {
  const a = draw({ seed: 9, readOnlyPct: 10, crossShardPct: 50, distribution: 'zipf', skew: 0.5 }, 500);
  const b = draw({ seed: 9, readOnlyPct: 10, crossShardPct: 50, distribution: 'zipf', skew: 0.5 }, 500);
  assert.equal(a, b);
  assert.throws(() => new Workload(topology, { seed: 1, readOnlyPct: 120, crossShardPct: 0, distribution: 'uniform', skew: 0 }), /read-only/);
  assert.throws(() => new Workload(topology, { seed: 1, readOnlyPct: 0, crossShardPct: 0, distribution: 'zipf', skew: 2 }), /skew/);
});

test('a warm-up runs the same workload for its seconds, and the counted run goes on from there', async () => {
  const seen: number[] = [];
  const client = {
    transfer: async (sender: number) => {
      seen.push(sender);
      await new Promise((r) => setTimeout(r, 1));
      return { status: 'committed', reason: '', latencyMs: 1 } as const;
    },
    read: async (item: number) => {
      seen.push(item);
      return { status: 'ok', reason: '', latencyMs: 1 } as const;
    },
  };
  const opts = { seed: 3, readOnlyPct: 0, crossShardPct: 20, distribution: 'uniform' as const, skew: 0, clients: 4, warmupS: 1 };
  const workload = new Workload(topology, opts);
  const spinner = { start: () => spinner } as unknown as Ora;
  const started = performance.now();
  const warmed = await warmUp(client, workload, opts, spinner);
  assert.ok(performance.now() - started >= 1000, 'it ran for its second');
  assert.ok(warmed > 0 && warmed === seen.length, `${warmed} operations in the warm-up`);
  const run = await runWorkload(client, workload, Object.assign({}, opts, { count: 50 }));
  assert.is(run.done, 50, 'the counted run has only its own operations');
  assert.is(run.stats.get('overall')?.latency.count, 50);
  const fresh = new Workload(topology, opts);
  const expected = Array.from({ length: warmed + 50 }, () => fresh.next().sender);
  assert.equal(seen, expected, 'one stream of draws: the run continues where the warm-up stopped');
});

test('affinity: groups of N drawn over the whole item range, so that most groups straddle clusters', () => {
  const { groupOf, members } = affinityGroups(9000, 10, 1);
  assert.is(members.length, 900);
  assert.ok(members.every((m) => m.length === 10));
  const all = members.flatMap((m) => [...m]).sort((a, b) => a - b);
  assert.equal(all, Array.from({ length: 9000 }, (_, i) => i + 1), 'every item in exactly one group');
  members.forEach((m, g) => m.forEach((item) => assert.is(groupOf[item], g)));
  const straddling = members.filter((m) => new Set([...m].map((i) => clusterOfItem(topology, i))).size > 1).length;
  assert.ok(straddling > 850, `${straddling} of 900 groups straddle clusters`);
  assert.equal(affinityGroups(9000, 10, 1).members.map((m) => [...m]), members.map((m) => [...m]), 'the same seed gives the same groups');
  assert.not.equal(affinityGroups(9000, 10, 2).members[0], members[0]);
  const ragged = affinityGroups(23, 10, 1).members;
  assert.equal(ragged.map((m) => m.length), [10, 13], 'the remainder joins the last group');
  assert.throws(() => affinityGroups(100, 1, 1), /group size/);
});

test('affinity: PCT% of transfers stay in one group, the rest are uniform; about two thirds cross clusters', () => {
  const ops = draw({ seed: 6, readOnlyPct: 10, crossShardPct: 0, distribution: 'zipf', skew: 0.99, affinityPct: 90, groupSize: 10 });
  const { groupOf } = affinityGroups(topology.items, 10, 6);
  const rw = ops.filter((o) => o.kind !== 'read');
  near(rw.length / N, 0.9, 0.01, 'read-write share');
  const inGroup = rw.filter((o) => groupOf[o.sender] === groupOf[o.receiver]).length / rw.length;
  // Uniform pairs land in one group by chance 9 times in 8999.
  near(inGroup, 0.9 + 0.1 * (9 / 8999), 0.01, 'share within one group');
  const cross = rw.filter((o) => o.kind === 'cross').length / rw.length;
  near(cross, 2 / 3, 0.02, 'cross-shard share');
  for (const o of rw) {
    assert.is.not(o.sender, o.receiver);
    assert.is(o.kind === 'cross', clusterOfItem(topology, o.sender) !== clusterOfItem(topology, o.receiver));
  }
  const senders = rw.map((o) => o.sender);
  near(senders.filter((s) => s <= 900).length / senders.length, 0.1, 0.01, 'senders uniform over all items');
  assert.throws(() => new Workload(topology, { seed: 1, readOnlyPct: 0, crossShardPct: 0, distribution: 'uniform', skew: 0, affinityPct: 101 }), /affinity/);
  assert.ok(Object.values(PRESETS).every((p) => !('affinityPct' in p)), 'the presets are as they were');
});

test('the transaction graph of a workload: one vertex per item, repeated pairs add weight', () => {
  const { graph, owners, items } = workloadGraph(topology, { seed: 1, readOnlyPct: 0, crossShardPct: 0, distribution: 'zipf', skew: 0.99 }, 10_000);
  assert.is(graph.vertexCount, 9000);
  assert.is(graph.edgeWeight.reduce((a, b) => a + b, 0), 10_000);
  assert.ok(graph.edgeCount < 10_000, 'hot pairs repeat');
  assert.is(owners[0], 0);
  assert.is(owners[8999], 2);
  assert.is(items[4500], 4501);
  const touched = workloadGraph(topology, { seed: 1, readOnlyPct: 0, crossShardPct: 0, distribution: 'zipf', skew: 0.99 }, 10_000, true);
  assert.ok(touched.graph.vertexCount < 9000 && touched.graph.edgeCount === graph.edgeCount);
  touched.items.forEach((item, v) => assert.is(touched.owners[v], clusterOfItem(topology, item)! - 1));
});

test.run();
