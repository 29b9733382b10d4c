/**
 * What the PostgreSQL bench client sends and how it reads the answers, with
 * no connection: the schema, the transfer as a stored function, the
 * statements, what the function's answer and PostgreSQL's errors mean, and
 * the checks on arguments. client/postgres.ts runs them through a pool.
 */
import type { TxResult } from './client.js';

export interface QueryConfig {
  /** Set for statements run often: prepared once per connection under this name. */
  name?: string;
  text: string;
  values?: unknown[];
}

/** The accounts table: `(id integer primary key, balance bigint)`. */
export const TABLE = 'shardbank_accounts';
/** The stored function a transfer calls. */
export const TRANSFER_FUNCTION = 'shardbank_transfer';
/** Accounts are `integer` keys. */
export const MAX_ITEM = 2 ** 31 - 1;

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

/** Why `item` cannot be an account, or null. */
export function itemProblem(item: number): string | null {
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

