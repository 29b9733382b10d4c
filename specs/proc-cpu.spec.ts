/**
 * Other processes' CPU from /proc, as `bench --server-pids` reads it for
 * PostgreSQL and etcd: a pid counts with all its descendants.
 */
import { spawn } from 'node:child_process';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cpuMeter, parseProcStat, readProcStats, treeCpuMs } from '../cli/proc-cpu.js';

test('a stat line is read after the last parenthesis: command names may hold spaces and parentheses', () => {
  const line = '4242 (postgres: a (b) c) S 4200 4200 4200 0 -1 4194560 1085 0 0 0 250 130 0 0 20 0 1 0 1234 2318000 1380 18446744073709551615';
  assert.equal(parseProcStat(line), { pid: 4242, ppid: 4200, cpuMs: 3800 });
  assert.is(parseProcStat('garbage'), null);
});

test('a tree counts the root and every descendant, nothing else', () => {
  const stats = [
    { pid: 1, ppid: 0, cpuMs: 1000 },
    { pid: 10, ppid: 1, cpuMs: 5 },
    { pid: 11, ppid: 10, cpuMs: 7 },
    { pid: 12, ppid: 11, cpuMs: 11 },
    { pid: 20, ppid: 1, cpuMs: 13 },
  ];
  assert.is(treeCpuMs(stats, [10]), 23);
  assert.is(treeCpuMs(stats, [10, 20]), 36);
  assert.is(treeCpuMs(stats, [11, 12]), 18, 'a pid given twice (as root and as child) counts once');
  assert.is(treeCpuMs(stats, [99]), 0, 'a pid that is gone counts nothing');
});

test("a live process's busy grandchild shows up in its tree's CPU", async () => {
  // The child starts a grandchild that spins until it has used 400 ms of CPU (however long a
  // busy machine makes that take), then both sleep until stopped.
  const grandchild = 'while (process.cpuUsage().user < 400000); setInterval(() => {}, 1000);';
  const child = spawn(process.execPath, ['-e', `require('node:child_process').spawn(process.execPath, ['-e', ${JSON.stringify(grandchild)}], { stdio: 'inherit' }); setInterval(() => {}, 1000);`], { stdio: 'ignore' });
  try {
    const meter = cpuMeter([child.pid!]);
    let spent = 0;
    for (const deadline = Date.now() + 15_000; spent < 250 && Date.now() < deadline; ) {
      await new Promise((r) => setTimeout(r, 100));
      spent = meter.since();
    }
    assert.ok(spent >= 250, `the tree spent ${spent} ms`);
  } finally {
    // Both are ours: the grandchild by the pid /proc gives as the child's, then the child.
    const kids = readProcStats().filter((s) => s.ppid === child.pid).map((s) => s.pid);
    for (const pid of kids) process.kill(pid, 'SIGKILL');
    process.kill(child.pid!, 'SIGKILL');
  }
});

test.run();
