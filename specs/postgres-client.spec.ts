/**
 * The PostgreSQL bench client's own logic, without a server: the statements
 * it sends, how it reads answers and errors, retries, timeouts. A stand-in
 * pool answers from a script. (postgres-real.spec.ts runs it against a real
 * PostgreSQL.)
 */
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PostgresBankClient, type Queryable } from '../client/postgres.js';
import { classifyError, postgresUrl, readQuery, schemaStatements, TRANSFER_FUNCTION_SQL, transferOutcome, transferQuery, type QueryConfig } from '../client/postgres-sql.js';

const MAIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'cli', 'main.js');
const URL = 'postgres://shardbank@127.0.0.1:5432/postgres';

/** A pool stand-in: records every statement and answers with `answer`'s result (a value, a thrown error, or a promise). */
class ScriptedPool implements Queryable {
  readonly sent: QueryConfig[] = [];
  inflight = 0;
  maxInflight = 0;
  ended = false;

  constructor(private readonly answer: (q: QueryConfig, n: number) => Promise<Record<string, unknown>[]> | Record<string, unknown>[]) {}

  async query(q: QueryConfig): Promise<{ rows: Record<string, unknown>[] }> {
    this.sent.push(q);
    this.inflight++;
    this.maxInflight = Math.max(this.maxInflight, this.inflight);
    try {
      return { rows: await this.answer(q, this.sent.length) };
    } finally {
      this.inflight--;
    }
  }

  async end(): Promise<void> {
    this.ended = true;
  }
}

const pgError = (code: string, message = `error ${code}`) => Object.assign(new Error(message), { code });

test('a transfer is one named statement calling the transfer function, values in order', () => {
  assert.equal(transferQuery(7, 3, 5), { name: 'shardbank-transfer', text: 'SELECT shardbank_transfer($1, $2, $3) AS outcome', values: [7, 3, 5] });
  assert.equal(readQuery(42), { name: 'shardbank-read', text: 'SELECT balance FROM shardbank_accounts WHERE id = $1', values: [42] });
});

test('the transfer function locks both rows in id order under row locks before it checks and writes', () => {
  const lock = TRANSFER_FUNCTION_SQL.indexOf('ORDER BY id FOR UPDATE');
  const check = TRANSFER_FUNCTION_SQL.indexOf('IF sender_balance < amount');
  const write = TRANSFER_FUNCTION_SQL.indexOf('UPDATE shardbank_accounts');
  assert.ok(lock > 0 && lock < check && check < write, 'lock, then check, then write');
  assert.not.match(TRANSFER_FUNCTION_SQL, /SERIALIZABLE|COMMIT/, 'the caller\'s READ COMMITTED transaction, committed by the statement');
});

test('the schema: a fresh table, its accounts, the function, then statistics', () => {
  const s = schemaStatements(9000, 1_000_000);
  assert.match(s[0]!.text, /^DROP TABLE IF EXISTS shardbank_accounts$/);
  assert.match(s[1]!.text, /CHECK \(balance >= 0\)/);
  assert.equal(s[2]!.values, [9000, 1_000_000]);
  assert.is(s[3]!.text, TRANSFER_FUNCTION_SQL);
  assert.match(s[4]!.text, /^VACUUM ANALYZE/);
});

test("the function's answers: committed, insufficient balance, unknown account, anything else", () => {
  assert.equal(transferOutcome('committed'), { status: 'committed' });
  assert.equal(transferOutcome('insufficient'), { status: 'aborted', reason: 'insufficient balance' });
  assert.equal(transferOutcome('missing'), { status: 'failed', reason: 'item out of range' });
  assert.equal(transferOutcome(null), { status: 'failed', reason: 'unexpected answer null' });
});

test('errors: rolled back (40001, 40P01) is retried, a check violation aborts, the rest is unknown', () => {
  assert.is(classifyError(pgError('40001')), 'retry');
  assert.is(classifyError(pgError('40P01')), 'retry');
  assert.is(classifyError(pgError('23514')), 'aborted');
  assert.is(classifyError(pgError('57P01')), 'failed', 'admin shutdown: the commit may have happened');
  assert.is(classifyError(pgError('08006')), 'failed');
  assert.is(classifyError(new Error('Connection terminated unexpectedly')), 'failed');
  assert.is(classifyError(undefined), 'failed');
});

test('a deadlock or serialization failure runs the transfer again; it commits, and the retries are counted', async () => {
  const pool = new ScriptedPool((_, n) => {
    if (n <= 2) throw pgError(n === 1 ? '40P01' : '40001');
    return [{ outcome: 'committed' }];
  });
  const client = new PostgresBankClient({ url: URL, pool });
  const r = await client.transfer(1, 2, 3);
  assert.is(r.status, 'committed');
  assert.is(pool.sent.length, 3);
  assert.ok(pool.sent.every((q) => q.name === 'shardbank-transfer' && (q.values as number[]).join() === '1,2,3'), 'the same statement each time');
  assert.is(client.retries, 2);
});

test('one that keeps being rolled back aborts as a conflict after maxRetries', async () => {
  const pool = new ScriptedPool(() => {
    throw pgError('40001');
  });
  const client = new PostgresBankClient({ url: URL, pool, maxRetries: 3 });
  const r = await client.transfer(1, 2, 3);
  assert.equal([r.status, r.reason], ['aborted', 'conflict']);
  assert.is(pool.sent.length, 4, 'the first run and three more');
});

test('a lost connection is failed (unknown), not retried; a check violation is an abort', async () => {
  const lost = new ScriptedPool(() => {
    throw new Error('Connection terminated unexpectedly');
  });
  const r = await new PostgresBankClient({ url: URL, pool: lost }).transfer(1, 2, 3);
  assert.equal([r.status, r.reason, lost.sent.length], ['failed', 'Connection terminated unexpectedly', 1]);
  const check = new ScriptedPool(() => {
    throw pgError('23514');
  });
  const c = await new PostgresBankClient({ url: URL, pool: check }).transfer(1, 2, 3);
  assert.equal([c.status, c.reason], ['aborted', 'insufficient balance']);
});

test('bad arguments fail without a statement', async () => {
  const pool = new ScriptedPool(() => [{ outcome: 'committed' }]);
  const client = new PostgresBankClient({ url: URL, pool });
  const results = await Promise.all([client.transfer(1, 1, 3), client.transfer(0, 2, 3), client.transfer(1, 2, 0), client.transfer(1, 2, 1.5), client.read(-1)]);
  assert.equal(
    results.map((r) => r.reason),
    ['sender and receiver are the same item', 'item out of range', 'amount must be a positive integer', 'amount must be a positive integer', 'item out of range'],
  );
  assert.ok(results.every((r) => r.status === 'failed'));
  assert.is(pool.sent.length, 0);
});

test('a read returns the balance as a number (bigint comes as text); no row is an unknown account', async () => {
  const pool = new ScriptedPool((q) => ((q.values as number[])[0] === 1 ? [{ balance: '9007199254740' }] : []));
  const client = new PostgresBankClient({ url: URL, pool });
  const one = await client.read(1);
  assert.equal([one.status, one.balance], ['ok', 9007199254740]);
  const none = await client.read(2);
  assert.equal([none.status, none.reason], ['failed', 'item out of range']);
});

test('load runs the schema in order, then opens every pooled connection at once; total reads the sum', async () => {
  const pool = new ScriptedPool(async (q) => {
    if (q.text.startsWith('SELECT pg_sleep')) await new Promise((r) => setTimeout(r, 20));
    if (q.text.includes('sum(balance)')) return [{ total: '9000000000' }];
    return [];
  });
  const client = new PostgresBankClient({ url: URL, pool, connections: 8 });
  await client.load(9000, 1_000_000);
  const schema = schemaStatements(9000, 1_000_000);
  assert.equal(pool.sent.slice(0, schema.length), schema);
  assert.is(pool.sent.length, schema.length + 8);
  assert.is(pool.maxInflight, 8, 'all eight at once, so the pool opens eight connections');
  assert.is(await client.total(9000), 9_000_000_000);
  await client.close();
  assert.ok(pool.ended);
});

test('no answer within timeoutMs is failed; so is a statement abandoned', async () => {
  const pool = new ScriptedPool(() => new Promise(() => {}));
  const client = new PostgresBankClient({ url: 'postgres://u@10.1.2.3:7/db', pool, timeoutMs: 50 });
  const slow = await client.transfer(1, 2, 3);
  assert.equal([slow.status, slow.reason], ['failed', '10.1.2.3:7: no answer in 50 ms']);
  const long = new PostgresBankClient({ url: URL, pool, timeoutMs: 60_000 });
  const pending = long.read(1);
  long.abandonAll('bench stopped');
  const r = await pending;
  assert.equal([r.status, r.reason], ['failed', 'bench stopped']);
});

test('a URL that is not PostgreSQL\'s is refused in one line', () => {
  assert.is(postgresUrl('postgresql://a@h:1/d').host, 'h:1');
  assert.throws(() => postgresUrl('localhost:5432'), /a PostgreSQL URL starts with postgres:\/\//);
  assert.throws(() => postgresUrl('not a url'), /is not a URL like postgres:\/\/user@127.0.0.1:5432\/postgres/);
  assert.throws(() => postgresUrl('http://h:1/d'), /starts with postgres:\/\//);
});

test('shardbank bench --postgres with a bad URL, or with --etcd too, is a one-line usage error', () => {
  const bad = spawnSync(process.execPath, [MAIN, 'bench', '--postgres', 'http://x'], { encoding: 'utf8' });
  assert.is(bad.status, 2);
  assert.match(bad.stderr, /option '--postgres <url>' argument 'http:\/\/x' is invalid\. "http:\/\/x": a PostgreSQL URL starts with postgres:\/\//);
  assert.not.match(bad.stderr, /\n\s+at /, 'no stack trace');
  const both = spawnSync(process.execPath, [MAIN, 'bench', '--postgres', URL, '--etcd', 'http://127.0.0.1:2379'], { encoding: 'utf8' });
  assert.is(both.status, 2);
  assert.match(both.stderr, /cannot be used with/);
});

test.run();
