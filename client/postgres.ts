/**
 * A bank client over PostgreSQL, so that `shardbank bench --postgres URL` can
 * run the same workload against PostgreSQL (with synchronous standbys, see
 * bench/postgres.sh) as against shardbank and etcd. It has the methods of
 * `BankClient` the benchmark uses (`transfer`, `read`, `abandonAll`) plus
 * `load` and `total` for setting up the accounts and for the audit.
 *
 * Accounts live in one table, `shardbank_accounts (id, balance)`. A transfer
 * is one transaction, the way a bank writes it: a stored function locks both
 * rows with `SELECT ... ORDER BY id FOR UPDATE` under READ COMMITTED, checks
 * the sender's balance on the locked row, then updates both rows, and the
 * statement's own commit ends it. Locking in id order means two transfers
 * over the same pair wait for each other instead of deadlocking, and the
 * check on a locked row cannot be overtaken, so no retry loop is needed and
 * contention costs a wait, not an abort. SERIALIZABLE would add predicate-lock
 * bookkeeping and retries for the same result on this workload. The function
 * makes a transfer one round trip and one commit (BEGIN, SELECT, UPDATE,
 * COMMIT from the client would be four round trips): the strongest
 * PostgreSQL to compare with. A balance read is a plain SELECT on the primary.
 *
 * Statements are named, so each connection parses and plans them once. The
 * pool holds one connection per request in flight, opened before the run.
 */
import pg from 'pg';
import { performance } from 'node:perf_hooks';
import type { TxResult } from './client.js';

/** What the client needs of a `pg.Pool`; a spec hands in a stand-in. */
export interface Queryable {
  query(config: QueryConfig): Promise<{ rows: Record<string, unknown>[] }>;
  end(): Promise<void>;
}

export interface QueryConfig {
  /** Set for statements run often: prepared once per connection under this name. */
  name?: string;
  text: string;
  values?: unknown[];
}

export interface PostgresClientOptions {
  /** `postgres://user@host:port/database`. */
  url: string;
  /** Connections in the pool: one per request in flight (default 1). */
  connections?: number;
  /** Times a transfer is run again after a serialization failure or a deadlock (default 10). */
  maxRetries?: number;
  /** Per statement, at the client (default 5000). */
  timeoutMs?: number;
  /** A pool stand-in, for specs; by default a `pg.Pool` on `url`. */
  pool?: Queryable;
}

/** The accounts table: `(id integer primary key, balance bigint)`. */
export const TABLE = 'shardbank_accounts';
/** The stored function a transfer calls. */
export const TRANSFER_FUNCTION = 'shardbank_transfer';
/** Accounts are `integer` keys. */
const MAX_ITEM = 2 ** 31 - 1;

/** A PostgreSQL connection URL, checked: postgres:// or postgresql://, with a host. */
export function postgresUrl(value: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new Error(`"${value}" is not a URL like postgres://user@127.0.0.1:5432/postgres`);
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') throw new Error(`"${value}": a PostgreSQL URL starts with postgres:// or postgresql://`);
  if (!url.hostname) throw new Error(`"${value}": the URL names no host`);
  return url;
}

/**
 * The schema, in the order it is run: a fresh accounts table, its rows, and
 * the transfer function. The balance may not go below zero (the function
 * checks first; the constraint is the database's own word on it).
 */
export function schemaStatements(items: number, initialBalance: number): QueryConfig[] {
  return [
    { text: `DROP TABLE IF EXISTS ${TABLE}` },
    { text: `CREATE TABLE ${TABLE} (id integer PRIMARY KEY, balance bigint NOT NULL CHECK (balance >= 0))` },
    { text: `INSERT INTO ${TABLE} (id, balance) SELECT g, $2 FROM generate_series(1, $1::integer) AS g`, values: [items, initialBalance] },
    { text: TRANSFER_FUNCTION_SQL },
    // Planner statistics for the fresh table; VACUUM cannot run inside a function or transaction, so it goes alone.
    { text: `VACUUM ANALYZE ${TABLE}` },
  ];
}

/**
 * The transfer as a stored function: returns 'committed', 'insufficient' or
 * 'missing'. Under READ COMMITTED each statement in it sees the latest
 * committed rows, so the balance read after the lock is the current one.
 */
export const TRANSFER_FUNCTION_SQL = `CREATE OR REPLACE FUNCTION ${TRANSFER_FUNCTION}(sender integer, receiver integer, amount bigint) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
  locked integer;
  sender_balance bigint;
BEGIN
  -- Both rows, locked in id order: transfers over one pair queue instead of deadlocking.
  PERFORM 1 FROM ${TABLE} WHERE id IN (sender, receiver) ORDER BY id FOR UPDATE;
  GET DIAGNOSTICS locked = ROW_COUNT;
  IF locked < 2 THEN
    RETURN 'missing';
  END IF;
  SELECT balance INTO sender_balance FROM ${TABLE} WHERE id = sender;
  IF sender_balance < amount THEN
    RETURN 'insufficient';
  END IF;
  UPDATE ${TABLE} SET balance = balance + CASE WHEN id = sender THEN -amount ELSE amount END
    WHERE id IN (sender, receiver);
  RETURN 'committed';
END
$$`;

/** One transfer: one statement, one transaction (autocommit), prepared per connection. */
export function transferQuery(sender: number, receiver: number, amount: number): QueryConfig {
  return { name: 'shardbank-transfer', text: `SELECT ${TRANSFER_FUNCTION}($1, $2, $3) AS outcome`, values: [sender, receiver, amount] };
}

/** One balance read. */
export function readQuery(item: number): QueryConfig {
  return { name: 'shardbank-read', text: `SELECT balance FROM ${TABLE} WHERE id = $1`, values: [item] };
}

/** The sum of accounts 1..items (as text: it may pass 2^53 in principle). */
export function totalQuery(items: number): QueryConfig {
  return { text: `SELECT coalesce(sum(balance), 0)::text AS total FROM ${TABLE} WHERE id BETWEEN 1 AND $1`, values: [items] };
}

/** What the transfer function's answer means for the client. */
export function transferOutcome(outcome: unknown): Omit<TxResult, 'latencyMs'> {
  if (outcome === 'committed') return { status: 'committed' };
  if (outcome === 'insufficient') return { status: 'aborted', reason: 'insufficient balance' };
  if (outcome === 'missing') return { status: 'failed', reason: 'item out of range' };
  return { status: 'failed', reason: `unexpected answer ${JSON.stringify(outcome)}` };
}

/**
 * What an error from a transfer means. `retry`: PostgreSQL rolled the whole
 * transaction back (serialization failure 40001, deadlock 40P01), so running
 * it again is safe. `aborted`: the database refused the change itself (check
 * violation 23514: the balance would go negative). `failed`: anything else,
 * including a lost connection, after which the commit may or may not have
 * happened: `failed` means "unknown", as with BankClient.
 */
export function classifyError(err: unknown): 'retry' | 'aborted' | 'failed' {
  const code = (err as { code?: unknown } | null)?.code;
  if (code === '40001' || code === '40P01') return 'retry';
  if (code === '23514') return 'aborted';
  return 'failed';
}

function itemProblem(item: number): string | null {
  return Number.isInteger(item) && item >= 1 && item <= MAX_ITEM ? null : 'item out of range';
}

/** Why a transfer cannot be sent at all, or null. */
export function transferProblem(sender: number, receiver: number, amount: number): string | null {
  return (
    itemProblem(sender) ??
    itemProblem(receiver) ??
    (sender === receiver ? 'sender and receiver are the same item' : null) ??
    (Number.isSafeInteger(amount) && amount > 0 ? null : 'amount must be a positive integer')
  );
}

function checkItems(items: number): void {
  if (!Number.isInteger(items) || items < 0 || items > MAX_ITEM) throw new Error(`items must be an integer in 0..${MAX_ITEM}`);
}

/** The bench's bank client over PostgreSQL (see the file's header). */
export class PostgresBankClient {
  private readonly pool: Queryable;
  private readonly connections: number;
  private readonly maxRetries: number;
  private readonly timeoutMs: number;
  /** Statements in flight, each with the function that fails it. */
  private readonly inflight = new Set<(reason: string) => void>();
  private readonly where: string;
  /** Transfers run again after PostgreSQL rolled them back (serialization failure or deadlock). */
  retries = 0;

  constructor(opts: PostgresClientOptions) {
    const url = postgresUrl(opts.url);
    this.where = url.host;
    this.connections = Math.max(1, opts.connections ?? 1);
    this.maxRetries = opts.maxRetries ?? 10;
    this.timeoutMs = opts.timeoutMs ?? 5000;
    this.pool = opts.pool ?? new pg.Pool({ connectionString: opts.url, max: this.connections, idleTimeoutMillis: 0 });
    // An idle pooled connection that breaks emits on the pool; without a listener that would end the process.
    (this.pool as { on?: (event: string, f: (err: Error) => void) => void }).on?.('error', () => {});
  }

  /**
   * Creates the accounts table with accounts 1..items at `initialBalance`
   * and the transfer function, replacing what a previous run left; then
   * opens every pooled connection, so the run does not pay for connecting.
   */
  async load(items: number, initialBalance: number): Promise<void> {
    checkItems(items);
    for (const statement of schemaStatements(items, initialBalance)) await this.query(statement, 60_000);
    await Promise.all(Array.from({ length: this.connections }, () => this.query({ text: 'SELECT pg_sleep(0.05)' })));
  }

  /** The sum of the balances of accounts 1..items. */
  async total(items: number): Promise<number> {
    checkItems(items);
    const { rows } = await this.query(totalQuery(items), 60_000);
    return Number(rows[0]?.['total'] ?? 0);
  }

  /** `PostgreSQL 15.x` and the standbys the primary waits for, for the report. */
  async describe(): Promise<{ version: string; synchronousStandbyNames: string; syncStandbys: string[] }> {
    const version = String((await this.query({ text: 'SHOW server_version' })).rows[0]?.['server_version'] ?? '');
    const names = String((await this.query({ text: 'SHOW synchronous_standby_names' })).rows[0]?.['synchronous_standby_names'] ?? '');
    const { rows } = await this.query({
      text: "SELECT application_name FROM pg_stat_replication WHERE state = 'streaming' AND sync_state IN ('sync', 'quorum') ORDER BY application_name",
    });
    return { version, synchronousStandbyNames: names, syncStandbys: rows.map((r) => String(r['application_name'])) };
  }

  async transfer(sender: number, receiver: number, amount: number): Promise<TxResult> {
    const started = performance.now();
    const done = (r: Omit<TxResult, 'latencyMs'>): TxResult => Object.assign({}, r, { latencyMs: performance.now() - started });
    const problem = transferProblem(sender, receiver, amount);
    if (problem) return done({ status: 'failed', reason: problem });
    for (let attempt = 0; ; attempt++) {
      try {
        const { rows } = await this.query(transferQuery(sender, receiver, amount));
        return done(transferOutcome(rows[0]?.['outcome']));
      } catch (err) {
        const kind = classifyError(err);
        if (kind === 'retry' && attempt < this.maxRetries) {
          this.retries++;
          continue;
        }
        if (kind === 'retry') return done({ status: 'aborted', reason: 'conflict' });
        if (kind === 'aborted') return done({ status: 'aborted', reason: 'insufficient balance' });
        return done({ status: 'failed', reason: (err as Error).message });
      }
    }
  }

  async read(item: number): Promise<TxResult> {
    const started = performance.now();
    const done = (r: Omit<TxResult, 'latencyMs'>): TxResult => Object.assign({}, r, { latencyMs: performance.now() - started });
    const problem = itemProblem(item);
    if (problem) return done({ status: 'failed', reason: problem });
    try {
      const { rows } = await this.query(readQuery(item));
      return rows[0] ? done({ status: 'ok', balance: Number(rows[0]['balance']) }) : done({ status: 'failed', reason: 'item out of range' });
    } catch (err) {
      return done({ status: 'failed', reason: (err as Error).message });
    }
  }

  /** Gives up every statement in flight: its operation ends `failed` with `reason`. */
  abandonAll(reason = 'client stopped'): void {
    for (const fail of [...this.inflight]) fail(reason);
  }

  /** Closes the pool's connections. */
  async close(): Promise<void> {
    await this.pool.end();
  }

  /**
   * Runs one statement on a pooled connection. Rejects with the database's
   * error (its SQLSTATE in `code`), on no answer within `timeoutMs`, or when
   * abandoned; the statement itself may still complete on the server.
   */
  private query(config: QueryConfig, timeoutMs = this.timeoutMs): Promise<{ rows: Record<string, unknown>[] }> {
    return new Promise((resolve, reject) => {
      const settle = (err: Error | null, value?: { rows: Record<string, unknown>[] }) => {
        if (!this.inflight.delete(fail)) return;
        clearTimeout(timer);
        if (err) reject(err);
        else resolve(value!);
      };
      const fail = (reason: string) => settle(new Error(reason));
      const timer = setTimeout(() => fail(`${this.where}: no answer in ${timeoutMs} ms`), timeoutMs);
      this.inflight.add(fail);
      this.pool.query(config).then(
        (r) => settle(null, r),
        (err: Error) => settle(err),
      );
    });
  }
}
