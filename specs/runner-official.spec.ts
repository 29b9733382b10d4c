/**
 * The official test file through the real runner, on the simulated cluster:
 * the intra-shard sets give the balances a careful reading of the spec gives.
 */
import { readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { AdminClient } from '../client/admin.js';
import { parseTestSets, validateSets, type TestSet } from '../cli/csv.js';
import { formatPrintBalance } from '../cli/format.js';
import { SetRunner, type CommandResult } from '../cli/runner.js';
import { SimCluster } from '../runtime/sim.js';

const file = new URL('../../testcases/gayathrigaddam00-CSE535-F25-Project-3-Testcases.csv', import.meta.url);

async function setup(seed: number) {
  const sim = await SimCluster.start({ seed });
  const admin = new AdminClient(sim.network.endpoint('runner-admin'), 'runner-admin', sim.timers());
  const timers = sim.timers();
  const runner = new SetRunner({
    topology: sim.topology,
    client: sim.client,
    admin,
    sleep: (ms) => new Promise((r) => timers.setTimeout(r, ms)),
  });
  const { sets } = validateSets(parseTestSets(readFileSync(file, 'utf8')).sets, sim.topology);
  const run = async (n: number): Promise<CommandResult[]> => {
    const set = sets.find((s) => s.set === n) as TestSet;
    await sim.until(runner.startSet(set));
    return sim.until(runner.runCommands(set));
  };
  const balance = (item: number) => sim.until(runner.printBalance(item)).then(formatPrintBalance);
  return { sim, runner, run, balance };
}

const statuses = (rs: CommandResult[]) => rs.map((r) => `${r.command} ${r.status}${r.balance !== undefined ? ` ${r.balance}` : ''}`);

test('set 1: three intra-shard transfers commit everywhere; reads return 11', async () => {
  const { sim, run, balance } = await setup(1);
  const rs = await run(1);
  assert.equal(statuses(rs), [
    '(1001, 1002, 1) committed',
    '(3001, 3002, 1) committed',
    '(6001, 6002, 1) committed',
    '(1002) ok 11',
    '(3002) ok 11',
  ]);
  assert.is(await balance(1001), 'n1 : 9, n2 : 9, n3 : 9');
  assert.is(await balance(1002), 'n1 : 11, n2 : 11, n3 : 11');
  assert.is(await balance(6002), 'n7 : 11, n8 : 11, n9 : 11');
  await sim.stop();
});

test('set 2: no majority after F(n2) and F(n5): those transfers fail, lone leaders still read 10', async () => {
  const { sim, run, balance } = await setup(2);
  const rs = await run(2);
  assert.equal(statuses(rs), [
    '(1001, 1002, 1) committed',
    '(1003, 1004, 1) committed',
    'F(n2) done',
    '(1005, 1006, 1) failed',
    '(3001, 3002, 1) committed',
    'F(n5) done',
    '(3003, 3004, 1) failed',
    '(3004) ok 10',
    '(1005) ok 10',
  ]);
  assert.is(await balance(1005), 'n1 : 10, n2 : 10, n3 : 10');
  assert.is(await balance(1004), 'n1 : 11, n2 : 11, n3 : 10');
  await sim.stop();
});

test('set 3: n9 catches up after R(n9); after F(n7) n8 or n9 leads and PrintView shows its NEW-VIEW', async () => {
  const { sim, runner, run, balance } = await setup(3);
  const rs = await run(3);
  assert.ok(rs.every((r) => r.status !== 'failed' && r.status !== 'aborted'), statuses(rs).join('\n'));
  assert.is(rs.find((r) => r.command === '(6005)')?.balance, 9);
  assert.is(rs.find((r) => r.command === '(6011)')?.balance, 9);
  assert.is(await balance(6005), 'n7 : 9, n8 : 9, n9 : 9');
  assert.is(await balance(6013), 'n7 : 10, n8 : 9, n9 : 9');
  const views = await sim.until(runner.printView());
  assert.is(views.length, 1);
  assert.is(views[0]!.cluster, 3);
  assert.ok([8, 9].includes(views[0]!.leader));
  assert.ok((views[0]!.view.ballot?.round ?? 0) >= 2);
  await sim.stop();
});

test('set 4: insufficient balance aborts; reads see the committed state', async () => {
  const { sim, run, balance } = await setup(4);
  const rs = await run(4);
  assert.equal(statuses(rs), [
    '(3001, 3002, 1) committed',
    '(3004, 3005, 1) committed',
    '(3004, 3006, 9) committed',
    '(3001, 3003, 10) aborted',
    '(3001) ok 9',
    '(3002) ok 11',
    '(3003) ok 10',
  ]);
  assert.is(rs[3]!.reason, 'insufficient balance');
  assert.is(await balance(3004), 'n4 : 0, n5 : 0, n6 : 0');
  assert.is(await balance(3006), 'n4 : 19, n5 : 19, n6 : 19');
  await sim.stop();
});

test('set 10: 300 disjoint transfers all commit, and every replica agrees', async () => {
  const { sim, runner, run } = await setup(10);
  const rs = await run(10);
  assert.is(rs.length, 300);
  assert.ok(rs.every((r) => r.status === 'committed'));
  const db = await sim.until(runner.printDb());
  for (const [c, nodes] of [[1, [1, 2, 3]], [2, [4, 5, 6]], [3, [7, 8, 9]]] as const) {
    const first = JSON.stringify([...db.get(nodes[0])!.entries()]);
    assert.is(db.get(nodes[0])!.size, 200, `cluster ${c} modified 200 items`);
    for (const n of nodes) assert.is(JSON.stringify([...db.get(n)!.entries()]), first);
  }
  assert.is(runner.performance().committed, 300);
  await sim.stop();
});

test.run();
