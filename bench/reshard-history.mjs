#!/usr/bin/env node
// How much history resharding needs: for a bench workload, the cross-shard
// share of the transfers that follow a reshard, as a function of how many
// transfers the resharder saw. No cluster: the workload generator draws the
// transfers (the same seeded stream as `bench`), the history is the last
// `--window` of the first N of them (what the clusters keep), the planner is
// the product's (`planReshard`, from the shard map), and the share is
// counted over the next 20,000 transfers of the stream, before and after.
//
//   npm run build && node bench/reshard-history.mjs --affinity 90 --seeds 1,2,3
//
// Flags: --affinity PCT (90), --group-size N (10), --seeds a,b (1),
// --window W (10000, tuning.reshardWindow), --sizes n,n,... (history sizes),
// --clusters K (3), --items I (9000). Prints a Markdown table.
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    affinity: { type: 'string', default: '90' },
    'group-size': { type: 'string', default: '10' },
    seeds: { type: 'string', default: '1' },
    window: { type: 'string', default: '10000' },
    sizes: { type: 'string', default: '1000,2000,3000,5000,7500,10000,15000,20000,30000,50000' },
    clusters: { type: 'string', default: '3' },
    items: { type: 'string', default: '9000' },
  },
});
const num = (name) => {
  const v = Number(values[name]);
  if (!Number.isFinite(v) || v < 0) {
    process.stderr.write(`reshard-history: --${name} ${values[name]} is not a number >= 0\n`);
    process.exit(2);
  }
  return v;
};
const list = (name) => values[name].split(',').map((x) => {
  const v = Number(x);
  if (!Number.isInteger(v) || v < 0) {
    process.stderr.write(`reshard-history: --${name}: "${x}" is not a whole number\n`);
    process.exit(2);
  }
  return v;
});

const dist = new URL('../dist/', import.meta.url);
const { Workload } = await import(new URL('cli/workload.js', dist));
const { planReshard } = await import(new URL('client/resharder.js', dist));
const { makeTopology, clusterOfItem } = await import(new URL('protocol/topology.js', dist));

const topology = makeTopology({ clusters: num('clusters'), items: num('items') });
const window = num('window');
const FOLLOWING = 20_000;
const workloadOptions = (seed) => ({ seed, readOnlyPct: 0, crossShardPct: 20, distribution: 'uniform', skew: 0, affinityPct: num('affinity'), groupSize: num('group-size') });

/** Cross-shard percent of `n` transfers of `w` under `owner`. */
function share(w, n, owner) {
  let cross = 0;
  for (let i = 0; i < n; i++) {
    const op = w.next();
    if (owner(op.sender) !== owner(op.receiver)) cross++;
  }
  return (100 * cross) / n;
}

const rows = [];
for (const n of list('sizes')) {
  const per = [];
  for (const seed of list('seeds')) {
    const w = new Workload(topology, workloadOptions(seed));
    const drawn = Array.from({ length: n }, () => w.next());
    const history = { transfers: drawn.slice(-window).map((op) => [op.sender, op.receiver]), owners: new Map(), unreachable: [] };
    const started = performance.now();
    const plan = planReshard(topology, history, { seed: 1 });
    const ms = performance.now() - started;
    const moved = new Map(plan.moves.map((m) => [m.item, m.to]));
    // The same following transfers, counted under each map.
    const a = new Workload(topology, workloadOptions(seed));
    const b = new Workload(topology, workloadOptions(seed));
    for (let i = 0; i < n; i++) (a.next(), b.next());
    const before = share(a, FOLLOWING, (i) => clusterOfItem(topology, i));
    const after = share(b, FOLLOWING, (i) => moved.get(i) ?? clusterOfItem(topology, i));
    const touched = new Set(history.transfers.flat()).size;
    per.push({ moves: plan.moves.length, cutBefore: plan.cutBefore, cutAfter: plan.cutAfter, before, after, ms, touched, kept: history.transfers.length });
  }
  const range = (k, f = (v) => v.toFixed(1)) => {
    const vs = per.map((p) => p[k]);
    const lo = Math.min(...vs);
    const hi = Math.max(...vs);
    return lo === hi ? f(lo) : `${f(lo)} - ${f(hi)}`;
  };
  const int = (v) => String(Math.round(v));
  rows.push([String(n), range('kept', int), range('touched', int), range('moves', int), range('before'), range('after'), range('ms', int)]);
}
const head = ['transfers so far', 'history kept', 'items touched', 'items moved', 'cross-shard before %', 'cross-shard after %', 'plan ms'];
process.stdout.write(`| ${head.join(' | ')} |\n| ${head.map(() => '---:').join(' | ')} |\n`);
for (const r of rows) process.stdout.write(`| ${r.join(' | ')} |\n`);
