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
import { classifyError, itemProblem, MAX_ITEM, postgresUrl, readQuery, schemaStatements, totalQuery, transferOutcome, transferProblem, transferQuery, type QueryConfig } from './postgres-sql.js';

/** What the client needs of a `pg.Pool`; a spec hands in a stand-in. */
export interface Queryable {
  query(config: QueryConfig): Promise<{ rows: Record<string, unknown>[] }>;
  end(): Promise<void>;
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
