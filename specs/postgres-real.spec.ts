/**
 * The PostgreSQL bench client and bench/postgres.sh against real PostgreSQL
 * 15 servers. CI installs PostgreSQL (.ci/run), so there these run: a
 * missing install is a failure under CI=true. On a developer's machine
 * without it they are skipped, and say so in the summary.
 */
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PostgresBankClient } from '../client/postgres.js';
import { freePortRange } from './support/ports.js';
import { PG_BIN, postgresInstalled, startPostgres } from './support/postgres.js';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const installed = postgresInstalled();
const inCi = Boolean(process.env.CI);
const pgTest = installed || inCi ? test : test.skip;
if (!installed && !inCi) process.stderr.write(`postgres-real: PostgreSQL 15 is not installed (${PG_BIN}); skipping. apt-get install postgresql-15 to run it.\n`);

function requireInstalled(): void {
  assert.ok(installed, `PostgreSQL 15 is not installed in ${PG_BIN}; .ci/run installs postgresql-15`);
}

pgTest('transfers lock in id order: opposite transfers on one pair all commit, with no deadlock and the money in place', async () => {
  requireInstalled();
  const server = await startPostgres(await freePortRange(1));
  const client = new PostgresBankClient({ url: server.url, connections: 16 });
  const admin = new pg.Client({ connectionString: server.url });
  let closed = false;
  try {
    await client.load(20, 100);
    // 16 connections hammer accounts 1 and 2 in both directions at once; unordered locks would deadlock here.
    const ops = Array.from({ length: 400 }, (_, i) => (i % 2 === 0 ? client.transfer(1, 2, 1) : client.transfer(2, 1, 1)));
    const results = await Promise.all([...ops, client.transfer(3, 4, 5)]);
    const bad = results.filter((r) => r.status !== 'committed');
    assert.is(bad.length, 0, `every transfer commits: ${JSON.stringify(bad.slice(0, 3))}`);
    assert.equal(
      await Promise.all([1, 2, 3, 4].map(async (i) => (await client.read(i)).balance)),
      [100, 100, 95, 105],
      'each account holds what its transfers leave',
    );
    assert.is(client.retries, 0, 'no transfer was rolled back and run again');
    assert.is(await client.total(20), 2000, 'the total is unchanged');
    // A backend sends its statistics when it exits: close the pool, then ask.
    await client.close();
    closed = true;
    await admin.connect();
    await new Promise((r) => setTimeout(r, 300));
    const { rows } = await admin.query("SELECT deadlocks::int AS n FROM pg_stat_database WHERE datname = 'postgres'");
    assert.is(rows[0].n, 0, 'PostgreSQL detected no deadlock');
  } finally {
    await admin.end().catch(() => {});
    client.abandonAll();
    if (!closed) await client.close();
    await server.stop();
  }
});

pgTest('an overdraft aborts and changes nothing; unknown accounts fail; describe names the server', async () => {
  requireInstalled();
  const server = await startPostgres(await freePortRange(1));
  const client = new PostgresBankClient({ url: server.url, connections: 2 });
  try {
    await client.load(10, 50);
    const over = await client.transfer(5, 6, 51);
    assert.is(over.status, 'aborted');
    assert.is(over.reason, 'insufficient balance');
    assert.is((await client.transfer(5, 6, 50)).status, 'committed', 'the whole balance may go');
    assert.equal([(await client.read(5)).balance, (await client.read(6)).balance], [0, 100]);
    const missing = await client.transfer(1, 11, 1);
    assert.equal([missing.status, missing.reason], ['failed', 'item out of range']);
    assert.is((await client.read(1)).balance, 50, 'the known side of a transfer to an unknown account is untouched');
    assert.equal([(await client.read(11)).status, (await client.read(11)).reason], ['failed', 'item out of range']);
    const about = await client.describe();
    assert.match(about.version, /^15\./);
    assert.equal(about.syncStandbys, [], 'a lone server has no standby');
    assert.is(await client.total(10), 500);
  } finally {
    client.abandonAll();
    await client.close();
    await server.stop();
  }
});

/** Runs bench/postgres.sh with `args`; resolves with its exit code and stderr. Killed by pid if it overruns. */
function runScript(args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn('bash', [join(ROOT, 'bench', 'postgres.sh'), ...args], { cwd: ROOT, env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    // SIGTERM lets the script's trap stop its servers by their pids.
    const timer = setTimeout(() => process.kill(child.pid!, 'SIGTERM'), timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

pgTest('bench/postgres.sh: a primary whose commits wait for ANY 1 (r1, r2), the bench through it, every server stopped by its pid', async () => {
  requireInstalled();
  const out = mkdtempSync(join(tmpdir(), 'shardbank-pg-script-'));
  // The servers run as the postgres user when this is root: it must reach the script's temp dir inside this one.
  chmodSync(out, 0o711);
  try {
    const json = join(out, 'report.json');
    const port = await freePortRange(3);
    const env = Object.assign({}, process.env, { PG_BASE_PORT: String(port), TMPDIR: out });
    const { code, stderr } = await runScript(['--count', '300', '--clients', '8', '--items', '600', '--json', json], env, 120_000);
    assert.is(code, 0, `the script succeeds:\n${stderr}`);
    const report = JSON.parse(readFileSync(json, 'utf8'));
    assert.is(report.system, 'postgres');
    assert.is(report.committed, 300, 'every transfer committed');
    assert.is(report.postgres.synchronousStandbyNames, 'ANY 1 (r1, r2)');
    assert.equal(report.postgres.syncStandbys, ['r1', 'r2'], 'both standbys stream as synchronous candidates');
    assert.is(report.postgres.total, report.postgres.expectedTotal, 'money conserved');
    const started = /primary on port (\d+) \(pid (\d+)\), standbys r1 on (\d+) \(pid (\d+)\) and r2 on (\d+) \(pid (\d+)\)/.exec(stderr);
    assert.ok(started, `the script names its servers:\n${stderr}`);
    assert.equal([started![1], started![3], started![5]].map(Number), [port, port + 1, port + 2]);
    const pids = [started![2], started![4], started![6]].map(Number);
    assert.equal(pids.filter(alive), [], 'no server outlives the script');
    const dataDir = /initdb in (\S+)\/pg\/primary/.exec(stderr)?.[1];
    assert.ok(dataDir && !existsSync(dataDir), `the temp dir ${dataDir} is removed`);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test.run();
