/**
 * What a client is told is true: a write a cluster without a majority
 * refuses is `failed: no majority` and never applies, however the cluster
 * comes back; a coordinator without a majority refuses before any PREPARE,
 * so the participant locks nothing; a write nobody answered is `unknown`, and
 * the runner finds out at the end of the set what became of it; a read at
 * level `any` answers from a live replica with no leader at all.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseTestSets, validateSets } from '../cli/csv.js';
import { SetRunner, type CommandResult } from '../cli/runner.js';
import { simRunner } from './support/runner.js';
import { SimCluster } from '../runtime/sim.js';

interface SetRun {
  results: CommandResult[];
  sim: SimCluster;
  runner: SetRunner;
}

/** Runs one CSV set on a simulated 3 x 3 cluster through the runner; the caller stops the cluster. */
async function runCsv(csv: string, seed: number): Promise<SetRun> {
  const sim = await SimCluster.start({ seed });
  const runner = simRunner(sim);
  const parsed = parseTestSets(`Set Number,Transactions,Live Nodes\n${csv}`);
  const { sets, errors } = validateSets(parsed.sets, sim.topology);
  assert.equal([...parsed.errors, ...errors], [], 'the set parses');
  await sim.until(runner.startSet(sets[0]!));
  const results = await sim.until(runner.runCommands(sets[0]!));
  return { results, sim, runner };
}

const line = (r: CommandResult) => [r.command, r.status, r.reason ?? (r.balance !== undefined ? String(r.balance) : '')].join(' ').trim();

test('n7 alone (F(n8), F(n9)): both transfers are refused "no majority", and they never apply, not even after R(n8)', async () => {
  const { results, sim } = await runCsv(
    ['1,"(6001, 6002, 1)","[n1, n2, n3, n4, n5, n6, n7, n8, n9]"', ',F(n8),', ',F(n9),', ',"(6003, 6004, 2)",', ',"(6005, 6006, 3)",', ',R(n8),', ',(6003),'].join('\n'),
    31,
  );
  assert.equal(results.map(line), [
    '(6001, 6002, 1) committed',
    'F(n8) done',
    'F(n9) done',
    '(6003, 6004, 2) failed no majority',
    '(6005, 6006, 3) failed no majority',
    'R(n8) done',
    '(6003) ok 10',
  ]);
  await sim.runFor(2000);
  for (const item of [6003, 6004, 6005, 6006]) assert.equal(sim.balances(item, [7, 8]), [10, 10], `item ${item} never changed`);
  for (const n of [7, 8]) assert.is(sim.host(n).state.log.size, 1, `n${n}: only the first transfer was ever logged`);
  await sim.stop();
});

test('the coordinator\'s cluster without a majority: refused before any PREPARE, and the participant locks nothing', async () => {
  const { results, sim } = await runCsv(
    ['1,F(n2),"[n1, n2, n3, n4, n5, n6, n7, n8, n9]"', ',F(n3),', ',"(1001, 4001, 5)",', ',"(4001, 4002, 1)",', ',R(n2),', ',"(1001, 4001, 5)",'].join('\n'),
    32,
  );
  assert.equal(results.map(line), [
    'F(n2) done',
    'F(n3) done',
    '(1001, 4001, 5) failed no majority',
    '(4001, 4002, 1) committed',
    'R(n2) done',
    '(1001, 4001, 5) committed',
  ]);
  for (const n of [4, 5, 6]) assert.equal([...sim.host(n).state.walLocks.keys()], [], `n${n} holds no lock`);
  await sim.stop();
});

test('original set 7 with (6002, any): C3 has no leader (n7 failed, n9 not live), and n8 answers 10', async () => {
  const { results, sim } = await runCsv(
    [
      '7,"(3001, 3002, 1)","[n1, n2, n3, n4, n5, n7, n8]"',
      ',F(n4),',
      ',"(3, 3003, 1)",',
      ',"(4, 6001, 1)",',
      ',F(n7),',
      ',"(5, 6002, 1)",',
      ',(4),',
      ',"(6002, any)",',
    ].join('\n'),
    33,
  );
  const any = results.find((r) => r.command === '(6002, any)')!;
  assert.equal({ status: any.status, balance: any.balance }, { status: 'ok', balance: 10 });
  // C2 has no leader at all (n4 failed, n6 not live): nobody refuses the PREPARE, and the coordinator times out.
  assert.equal(line(results.find((r) => r.command === '(3, 3003, 1)')!), '(3, 3003, 1) aborted timeout');
  await sim.stop();
});

test('a write nobody answered is unknown; at the end of the set the runner asks its cluster, and says what became of it', async () => {
  const sim = await SimCluster.start({ seed: 34 });
  await sim.startSet();
  const runner = simRunner(sim);
  // The client and n1 are cut off from n2 and n3 before n1 notices: n1 proposes, and nobody answers.
  sim.network.partition([1, 'client'], [2, 3, 'runner']);
  const r = await sim.until(sim.client.transfer(1001, 1002, 1));
  assert.equal({ status: r.status, reason: r.reason }, { status: 'unknown', reason: 'no reply' });
  const result: CommandResult = { command: '(1001, 1002, 1)', status: 'unknown', requestId: r.requestId, cluster: 1 };

  // Only n2 and n3 answer the runner: neither has it, so it never applied there.
  await sim.until(runner.resolveUnknowns([result]));
  assert.is(result.resolved, 'not applied');

  // n1 does have it, undecided: with n1 reachable the runner says so.
  sim.network.heal();
  sim.network.partition([1, 'runner'], [2, 3, 'client']);
  const pending: CommandResult = { command: '(1001, 1002, 1)', status: 'unknown', requestId: r.requestId, cluster: 1 };
  await sim.until(runner.resolveUnknowns([pending]));
  assert.is(pending.resolved, 'pending');
  await sim.stop();
});

test.run();
