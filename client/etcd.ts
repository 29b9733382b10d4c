/**
 * A bank client over etcd, so that `shardbank bench --etcd <endpoints>` can
 * run the same workload against a 3-member etcd cluster as against shardbank,
 * for a side-by-side comparison. It has the methods of `BankClient` the
 * benchmark uses (`transfer`, `read`, `abandonAll`) plus `load` and `total`
 * for setting up the accounts and for the money-conserved audit.
 *
 * It speaks etcd v3's JSON gRPC gateway (etcd 3.4: `POST /v3/kv/...`) over
 * plain HTTP with keep-alive connections, spreading requests over the
 * endpoints round-robin. In that JSON, keys and values are base64, int64
 * fields (revisions, counts) are decimal strings, and fields with their zero
 * value (false, 0, empty) are left out.
 *
 * Account `n` is the key `acct/00000n` (six digits, so keys sort by number),
 * its value the balance in decimal. A transfer is optimistic concurrency, as
 * etcd's own STM does it: one txn reads both accounts, a second txn puts both
 * new balances if neither account's mod_revision has moved since, and a
 * failed compare starts over, up to `maxRetries` times. All reads are
 * linearizable (etcd's default).
 */
import { Agent, request } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { TxResult } from './client.js';

export interface EtcdClientOptions {
  /** Client URLs, e.g. `http://127.0.0.1:2379`. */
  endpoints: string[];
  /** Times a transfer starts over after a failed compare before it aborts (default 10). */
  maxRetries?: number;
  /** Per HTTP request (default 5000). */
  timeoutMs?: number;
}

/** etcd's default `--max-txn-ops`. */
const MAX_TXN_OPS = 128;
const KEY_DIGITS = 6;
const MAX_ITEM = 10 ** KEY_DIGITS - 1;

/** The etcd key of account `item`. */
export function accountKey(item: number): string {
  return `acct/${String(item).padStart(KEY_DIGITS, '0')}`;
}

// The gateway's JSON, as far as this client reads it (absent means zero).
interface KeyValue {
  key: string;
  value?: string;
  mod_revision: string;
}
interface RangeResponse {
  kvs?: KeyValue[];
}
interface TxnResponse {
  succeeded?: boolean;
  responses?: { response_range?: RangeResponse }[];
}

const b64 = (s: string) => Buffer.from(s).toString('base64');
const balanceOf = (kv: KeyValue) => Number(Buffer.from(kv.value ?? '', 'base64').toString());
/** A txn op writing `balance` under `key` (already base64). */
const put = (key: string, balance: number) => ({ request_put: { key, value: b64(String(balance)) } });

function itemProblem(item: number): string | null {
  return Number.isInteger(item) && item >= 1 && item <= MAX_ITEM ? null : 'item out of range';
}

function checkItems(items: number): void {
  if (!Number.isInteger(items) || items < 0 || items > MAX_ITEM) throw new Error(`items must be an integer in 0..${MAX_ITEM}`);
}

/** An etcd client URL, checked: plain http, as the gateway is spoken here. */
export function endpointUrl(endpoint: string): URL {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new Error(`"${endpoint}" is not a URL like http://127.0.0.1:2379`);
  }
  if (url.protocol !== 'http:') throw new Error(`"${endpoint}": only http:// endpoints are supported`);
  return url;
}

export class EtcdBankClient {
  private readonly endpoints: URL[];
  private readonly maxRetries: number;
  private readonly timeoutMs: number;
  private readonly agent = new Agent({ keepAlive: true });
  /** Requests in flight, each with the function that fails it. */
  private readonly inflight = new Set<(reason: string) => void>();
  private next = 0;

  constructor(opts: EtcdClientOptions) {
    if (opts.endpoints.length === 0) throw new Error('no etcd endpoints');
    this.endpoints = opts.endpoints.map(endpointUrl);
    this.maxRetries = opts.maxRetries ?? 10;
    this.timeoutMs = opts.timeoutMs ?? 5000;
  }

  /** Writes accounts 1..items with `initialBalance` each, at most 128 puts per txn. */
  async load(items: number, initialBalance: number): Promise<void> {
    checkItems(items);
    for (let from = 1; from <= items; from += MAX_TXN_OPS) {
      const count = Math.min(MAX_TXN_OPS, items - from + 1);
      await this.post('/v3/kv/txn', { success: Array.from({ length: count }, (_, i) => put(b64(accountKey(from + i)), initialBalance)) });
    }
  }

  /** The sum of the balances of accounts 1..items, read in one range request. */
  async total(items: number): Promise<number> {
    checkItems(items);
    if (items === 0) return 0;
    // Keys have one width, so [first, last + "\0") holds exactly accounts 1..items.
    const r = await this.post<RangeResponse>('/v3/kv/range', { key: b64(accountKey(1)), range_end: b64(`${accountKey(items)}\0`) });
    return (r.kvs ?? []).reduce((sum, kv) => sum + balanceOf(kv), 0);
  }

  async transfer(sender: number, receiver: number, amount: number): Promise<TxResult> {
    const started = performance.now();
    const done = (r: Omit<TxResult, 'latencyMs'>): TxResult => Object.assign({}, r, { latencyMs: performance.now() - started });
    const problem =
      itemProblem(sender) ??
      itemProblem(receiver) ??
      (sender === receiver ? 'sender and receiver are the same item' : null) ??
      (Number.isInteger(amount) && amount > 0 ? null : 'amount must be a positive integer');
    if (problem) return done({ status: 'failed', reason: problem });
    const keys = [b64(accountKey(sender)), b64(accountKey(receiver))];
    try {
      for (let attempt = 0; attempt <= this.maxRetries; attempt++) {
        const read = await this.post<TxnResponse>('/v3/kv/txn', { success: keys.map((key) => ({ request_range: { key } })) });
        const [from, to] = keys.map((_, i) => read.responses?.[i]?.response_range?.kvs?.[0]);
        if (!from || !to) return done({ status: 'failed', reason: 'item out of range' });
        // Deciding on what was read is a valid answer: the read is linearizable.
        if (balanceOf(from) < amount) return done({ status: 'aborted', reason: 'insufficient balance' });
        const write = await this.post<TxnResponse>('/v3/kv/txn', {
          compare: [from, to].map((kv) => ({ key: kv.key, target: 'MOD', result: 'EQUAL', mod_revision: kv.mod_revision })),
          success: [put(from.key, balanceOf(from) - amount), put(to.key, balanceOf(to) + amount)],
        });
        if (write.succeeded) return done({ status: 'committed' });
      }
      return done({ status: 'aborted', reason: 'conflict' });
    } catch (err) {
      // A failed write txn may still have been applied: `failed` means "unknown", as with BankClient.
      return done({ status: 'failed', reason: (err as Error).message });
    }
  }

  async read(item: number): Promise<TxResult> {
    const started = performance.now();
    const done = (r: Omit<TxResult, 'latencyMs'>): TxResult => Object.assign({}, r, { latencyMs: performance.now() - started });
    const problem = itemProblem(item);
    if (problem) return done({ status: 'failed', reason: problem });
    try {
      const kv = (await this.post<RangeResponse>('/v3/kv/range', { key: b64(accountKey(item)) })).kvs?.[0];
      return kv ? done({ status: 'ok', balance: balanceOf(kv) }) : done({ status: 'failed', reason: 'item out of range' });
    } catch (err) {
      return done({ status: 'failed', reason: (err as Error).message });
    }
  }

  /** Gives up every request in flight: its operation ends `failed` with `reason`. */
  abandonAll(reason = 'client stopped'): void {
    for (const fail of [...this.inflight]) fail(reason);
  }

  /** Closes the kept-alive connections. */
  close(): void {
    this.agent.destroy();
  }

  /**
   * POSTs `body` as JSON to the next endpoint. Rejects on a network error, on
   * no answer within `timeoutMs`, on a gateway error (its message), and when
   * abandoned; errors other than abandoning name the endpoint.
   */
  private post<T = unknown>(path: string, body: object): Promise<T> {
    const endpoint = this.endpoints[this.next]!;
    this.next = (this.next + 1) % this.endpoints.length;
    return new Promise<T>((resolve, reject) => {
      const req = request(new URL(path, endpoint), { method: 'POST', agent: this.agent, headers: { 'content-type': 'application/json' } });
      const settle = (err: Error | null, value?: T) => {
        if (!this.inflight.delete(fail)) return;
        clearTimeout(timer);
        if (err) reject(err);
        else resolve(value as T);
      };
      const fail = (reason: string) => {
        settle(new Error(reason));
        req.destroy();
      };
      const timer = setTimeout(() => fail(`${endpoint.host}: no answer in ${this.timeoutMs} ms`), this.timeoutMs);
      this.inflight.add(fail);
      req.on('error', (err) => settle(new Error(`${endpoint.host}: ${err.message}`)));
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', (err) => settle(new Error(`${endpoint.host}: ${err.message}`)));
        res.on('end', () => {
          let json: { message?: string } | null = null;
          try {
            json = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          } catch {
            // Reported below.
          }
          if (res.statusCode === 200 && json) settle(null, json as T);
          else settle(new Error(`${endpoint.host}: ${json?.message ?? `HTTP ${res.statusCode}`}`));
        });
      });
      req.end(JSON.stringify(body));
    });
  }
}
