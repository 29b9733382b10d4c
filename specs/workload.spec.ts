/**
 * The benchmark's workload generator honours the mix and the skew it is
 * asked for (counted over many draws, within sampling error).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Ora } from 'ora';
import { runWorkload, warmUp } from '../cli/bench.js';
import { Workload, ZipfSampler } from '../cli/workload.js';
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

test.run();
