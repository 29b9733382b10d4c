/**
 * The command a user runs, on 9 real node processes: 2,000 mixed intra- and
 * cross-shard transfers among 12 hot items, 8 at a time, so that locks
 * conflict constantly. Every transfer ends committed or aborted, money is
 * conserved, and the replicas of each cluster agree.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { SetReport } from '../cli/runner.js';
import { freePortRange } from './support/ports.js';

const main = fileURLToPath(new URL('../cli/main.js', import.meta.url));
const csv = fileURLToPath(new URL('../../testcases/stress-hot-mixed.csv', import.meta.url));

test('shardbank run --concurrency 8 on the hot-item stress file conserves money and keeps replicas equal', async () => {
  const basePort = await freePortRange(9);
  const child = spawn(process.execPath, [main, 'run', csv, '--yes', '--json', '--concurrency', '8', '--base-port', String(basePort)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const timer = setTimeout(() => child.kill('SIGTERM'), 180_000);
  const code = await new Promise<number | null>((r) => child.on('exit', r));
  clearTimeout(timer);
  assert.is(code, 0, err.slice(-2000));
  const report = JSON.parse(out.trim().split('\n').at(-1)!) as SetReport;
  assert.is(report.results.length, 2000);
  const failed = report.results.filter((r) => r.status === 'failed');
  assert.equal(failed, [], 'nothing fails with every node up');
  assert.ok(report.results.filter((r) => r.status === 'committed').length > 300, 'a good share commits');
  assert.ok(report.results.some((r) => r.reason?.includes('lock conflict')), 'the hot items do conflict');
  assert.ok(report.audit.conserved, `total ${report.audit.total}, expected ${report.audit.expectedTotal}`);
  assert.ok(report.audit.replicasAgree, 'replicas of each cluster agree');
  assert.is(report.audit.inDoubt, 0, 'no cross-shard transaction left in doubt');
});

test.run();
