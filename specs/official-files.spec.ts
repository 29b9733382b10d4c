/**
 * Every set of the three official files through the runner, on the simulated
 * cluster, against the expected outcomes in testcases/expected/ (commands'
 * statuses and reasons, read results, and every node's balances of the items
 * the set modified). Set 15 runs on 5 clusters x 5 nodes, as it asks.
 *
 * SHARDBANK_REWRITE=1 rewrites the expected files from a run; review the diff
 * against the spec's reading (SPEC.md section 11) before committing it.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseTestSets, validateSets, type TestSet } from '../cli/csv.js';
import { printDbJson } from '../cli/format.js';
import { simRunner } from './support/runner.js';
import { allNodes } from '../protocol/topology.js';
import { SimCluster } from '../runtime/sim.js';

const FILES = [
  'gayathrigaddam00-CSE535-F25-Project-3-Testcases',
  'gayathrigaddam00-CSE535-F25-Project-3-Demo-Tests',
  'huixu11-CSE535-F25-Project-3-New-Testcases',
];
const root = new URL('../../testcases/', import.meta.url);
const rewrite = process.env.SHARDBANK_REWRITE === '1';

interface Outcome {
  set: number;
  results: string[];
  db: Record<string, Record<string, number>>;
}

async function runSet(set: TestSet): Promise<Outcome> {
  const big = set.live.some((n) => n > 9);
  const sim = await SimCluster.start({ seed: 100 + set.set, clusters: big ? 5 : 3, nodesPerCluster: big ? 5 : 3 });
  const runner = simRunner(sim);
  const checked = validateSets([set], sim.topology);
  assert.equal(checked.errors, [], `set ${set.set} is valid for its topology`);
  await sim.until(runner.startSet(set));
  const results = await sim.until(runner.runCommands(set));
  // Let every follower apply what was committed before reading the replicas.
  await sim.runFor(1000);
  const db = printDbJson(await sim.until(runner.printDb()), allNodes(sim.topology));
  await sim.stop();
  return {
    set: set.set,
    results: results.map((r) => [r.command, r.status, r.reason ?? (r.balance !== undefined ? String(r.balance) : '')].join(' ').trim()),
    db,
  };
}

for (const name of FILES) {
  test(`${name}.csv: every set gives its expected outcome`, async () => {
    const { sets, errors } = parseTestSets(readFileSync(new URL(`${name}.csv`, root), 'utf8'));
    assert.equal(errors, []);
    const outcomes: Outcome[] = [];
    for (const set of sets) outcomes.push(await runSet(set));
    const expectedPath = new URL(`expected/${name}.json`, root);
    if (rewrite) writeFileSync(expectedPath, `${JSON.stringify(outcomes, null, 1)}\n`);
    const expected = JSON.parse(readFileSync(expectedPath, 'utf8')) as Outcome[];
    for (const want of expected) {
      const got = outcomes.find((o) => o.set === want.set);
      assert.ok(got, `set ${want.set} ran`);
      assert.equal(got!.results, want.results, `set ${want.set}: command outcomes`);
      assert.equal(got!.db, want.db, `set ${want.set}: balances on every node`);
    }
    assert.is(outcomes.length, expected.length);
  });
}

test.run();
