// What the inspection stream costs a node, measured as CPU time in one
// process: a simulated cluster (every node, the network and the client in
// this process, one seed) runs the same transfers three ways, alternating,
// ROUNDS times (run after `npm run build`):
//   never    nobody ever subscribed to any node's inspection;
//   after    every node was subscribed to and unsubscribed again before the run;
//   watched  every node's inspection is subscribed to during the run.
//   node bench/inspection-cost.mjs [ROUNDS] [TRANSFERS]
// CPU time, not wall time: other load on a shared machine sways it far less
// than throughput.
import { SimCluster } from '../dist/runtime/sim.js';

const ROUNDS = Number(process.argv[2] ?? 5);
const TRANSFERS = Number(process.argv[3] ?? 3000);
const IN_FLIGHT = 32;

async function runOnce(way, seed) {
  const sim = await SimCluster.start({ seed });
  await sim.startSet();
  let records = 0;
  const subs = [];
  if (way !== 'never') for (const host of sim.hosts.values()) subs.push(host.inspection$.subscribe(() => records++));
  if (way === 'after') for (const s of subs.splice(0)) s.unsubscribe();
  const items = sim.topology.items / sim.topology.clusters;
  const cpu = process.cpuUsage();
  let done = 0;
  let committed = 0;
  while (done < TRANSFERS) {
    const batch = [];
    for (let i = 0; i < IN_FLIGHT && done + i < TRANSFERS; i++) {
      // Intra-shard, each pair of items its own, so that no lock is contended.
      const k = (done + i) % (items / 2);
      const cluster = (done + i) % sim.topology.clusters;
      batch.push(sim.client.transfer(cluster * items + 1 + k, cluster * items + 1 + items / 2 + k, 1));
    }
    const results = await sim.until(Promise.all(batch));
    committed += results.filter((r) => r.status === 'committed').length;
    done += batch.length;
  }
  const used = process.cpuUsage(cpu);
  for (const s of subs) s.unsubscribe();
  await sim.stop();
  return { cpuMs: (used.user + used.system) / 1000, committed, records };
}

const ways = ['never', 'after', 'watched'];
const results = Object.fromEntries(ways.map((w) => [w, []]));
await runOnce('never', 99); // warm the JIT before anything is counted
for (let round = 1; round <= ROUNDS; round++) {
  const order = ways.map((_, i) => ways[(i + round - 1) % ways.length]);
  for (const way of order) {
    const r = await runOnce(way, round);
    results[way].push(r);
    process.stderr.write(`round ${round} ${way.padEnd(8)} ${r.cpuMs.toFixed(0)} ms CPU, ${r.committed} committed, ${((r.cpuMs * 1000) / r.committed).toFixed(1)} µs per commit, ${r.records} inspection records\n`);
  }
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const per = (way) => median(results[way].map((r) => (r.cpuMs * 1000) / r.committed));
for (const way of ways) {
  const us = per(way);
  console.log(`${way.padEnd(8)} median ${us.toFixed(1)} µs CPU per commit (${((100 * (us - per('never'))) / per('never')).toFixed(1)}% vs never)`);
}
