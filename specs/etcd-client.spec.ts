import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { accountKey, EtcdBankClient } from '../client/etcd.js';

/**
 * An in-memory stand-in for etcd's JSON gateway: range (one key, or
 * [key, range_end)), put, and txn with compares on MOD revision and
 * request_range / request_put ops, over one global revision counter. Replies
 * in the gateway's JSON: base64 keys and values, int64 as strings, zero
 * fields left out.
 */
interface Entry {
  value: string;
  create: number;
  mod: number;
  version: number;
}
interface Op {
  request_range?: { key: string; range_end?: string };
  request_put?: { key: string; value: string };
}
interface TxnBody {
  compare?: { key: string; target?: string; result?: string; mod_revision?: string }[];
  success?: Op[];
  failure?: Op[];
}

class FakeEtcd {
  readonly data = new Map<string, Entry>();
  revision = 1;
  requests = 0;
  /** Runs before each txn that has compares, e.g. to write in between a transfer's read and its commit. */
  beforeCompare: (() => void) | null = null;

  put(key: string, value: string): void {
    const old = this.data.get(key);
    this.data.set(key, { value, create: old?.create ?? this.revision, mod: this.revision, version: (old?.version ?? 0) + 1 });
  }

  range(key: string, rangeEnd?: string) {
    const keys = rangeEnd ? [...this.data.keys()].filter((k) => k >= key && k < rangeEnd).sort() : this.data.has(key) ? [key] : [];
    const kvs = keys.map((k) => {
      const e = this.data.get(k)!;
      return { key: b64(k), create_revision: String(e.create), mod_revision: String(e.mod), version: String(e.version), value: e.value };
    });
    return kvs.length ? { header: this.header(), kvs, count: String(kvs.length) } : { header: this.header() };
  }

  txn(body: TxnBody) {
    if (body.compare?.length) this.beforeCompare?.();
    const succeeded = (body.compare ?? []).every((c) => {
      if (c.target !== 'MOD' || (c.result ?? 'EQUAL') !== 'EQUAL') throw new Error('the fake only compares MOD for EQUAL');
      return (this.data.get(unb64(c.key))?.mod ?? 0) === Number(c.mod_revision ?? 0);
    });
    const ops = (succeeded ? body.success : body.failure) ?? [];
    if (ops.length > 128) throw new Error('etcdserver: too many operations in txn request');
    if (ops.some((o) => o.request_put)) this.revision++;
    const responses = ops.map((o) => {
      if (o.request_range) return { response_range: this.range(unb64(o.request_range.key), o.request_range.range_end && unb64(o.request_range.range_end)) };
      this.put(unb64(o.request_put!.key), o.request_put!.value);
      return { response_put: { header: { revision: String(this.revision) } } };
    });
    return succeeded ? { header: this.header(), succeeded, responses } : { header: this.header(), responses };
  }

  handle(path: string, body: any): object {
    if (path === '/v3/kv/range') return this.range(unb64(body.key), body.range_end && unb64(body.range_end));
    if (path === '/v3/kv/put') {
      this.revision++;
      this.put(unb64(body.key), body.value);
      return { header: this.header() };
    }
    if (path === '/v3/kv/txn') return this.txn(body);
    throw new Error(`no route ${path}`);
  }

  /** Serves the store on a fresh port of 127.0.0.1; returns the server and its URL. */
  async serve(): Promise<{ server: Server; url: string }> {
    const server = createServer((req: IncomingMessage, res: ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        this.requests++;
        try {
          reply(res, 200, this.handle(req.url ?? '', JSON.parse(Buffer.concat(chunks).toString('utf8'))));
        } catch (err) {
          const message = (err as Error).message;
          reply(res, 400, { error: message, message, code: 3 });
        }
      });
    });
    return { server, url: await listen(server) };
  }

  private header() {
    return { cluster_id: '1', member_id: '1', revision: String(this.revision), raft_term: '2' };
  }
}

const b64 = (s: string) => Buffer.from(s).toString('base64');
const unb64 = (s: string) => Buffer.from(s, 'base64').toString();

function reply(res: ServerResponse, status: number, body: object): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function close(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

/** A fake with `items` accounts loaded, one client on it, and its teardown. */
async function setup(items = 10, balance = 10, opts: { maxRetries?: number } = {}) {
  const fake = new FakeEtcd();
  const { server, url } = await fake.serve();
  const client = new EtcdBankClient({ endpoints: [url], ...opts });
  await client.load(items, balance);
  const balanceOf = (item: number) => Number(unb64(fake.data.get(accountKey(item))!.value));
  return {
    fake,
    client,
    balanceOf,
    async teardown() {
      client.close();
      await close(server);
    },
  };
}

test('load writes every account in txns of at most 128 puts; total sums them in one range', async () => {
  const { fake, client, balanceOf, teardown } = await setup(300, 10);
  try {
    assert.is(fake.data.size, 300);
    assert.is(fake.requests, 3, '128 + 128 + 44');
    assert.ok(fake.data.has('acct/000001') && fake.data.has('acct/000300'));
    assert.is(balanceOf(300), 10);
    fake.put('acct/000301', b64('1000'));
    assert.is(await client.total(300), 3000, 'accounts past items are not counted');
    assert.is(fake.requests, 4);
    assert.is(await client.total(0), 0);
  } finally {
    await teardown();
  }
});

test('a committed transfer moves the money; a read returns the balance', async () => {
  const { client, balanceOf, teardown } = await setup();
  try {
    const r = await client.transfer(1, 2, 4);
    assert.is(r.status, 'committed');
    assert.ok(r.latencyMs >= 0);
    assert.is(balanceOf(1), 6);
    assert.is(balanceOf(2), 14);
    const read = await client.read(2);
    assert.is(read.status, 'ok');
    assert.is(read.balance, 14);
    assert.is(await client.total(10), 100);
  } finally {
    await teardown();
  }
});

test('insufficient balance aborts and writes nothing', async () => {
  const { fake, client, balanceOf, teardown } = await setup();
  try {
    const revision = fake.revision;
    const r = await client.transfer(3, 4, 11);
    assert.equal([r.status, r.reason], ['aborted', 'insufficient balance']);
    assert.is(fake.revision, revision);
    assert.is(balanceOf(3), 10);
    assert.is(balanceOf(4), 10);
  } finally {
    await teardown();
  }
});

test('a write between the read and the commit fails the compare; the transfer re-reads and ends right', async () => {
  const { fake, client, balanceOf, teardown } = await setup();
  try {
    let interfered = false;
    fake.beforeCompare = () => {
      if (interfered) return;
      interfered = true;
      // Another client deposits 5 into the receiver.
      fake.revision++;
      fake.put(accountKey(2), b64('15'));
    };
    const r = await client.transfer(1, 2, 3);
    assert.is(r.status, 'committed');
    assert.is(balanceOf(1), 7);
    assert.is(balanceOf(2), 18, 'the deposit is kept');
    assert.is(fake.requests, 1 + 4, 'load, then read, failed commit, read, commit');
  } finally {
    await teardown();
  }
});

test('a transfer that keeps losing the race aborts as a conflict after maxRetries', async () => {
  const { fake, client, balanceOf, teardown } = await setup(10, 10, { maxRetries: 2 });
  try {
    fake.beforeCompare = () => {
      fake.revision++;
      fake.put(accountKey(1), b64('10'));
    };
    const r = await client.transfer(1, 2, 3);
    assert.equal([r.status, r.reason], ['aborted', 'conflict']);
    assert.is(fake.requests, 1 + 2 * 3, 'load, then three rounds of read and commit');
    assert.is(balanceOf(1), 10);
    assert.is(balanceOf(2), 10);
  } finally {
    await teardown();
  }
});

test('bad arguments and unknown accounts fail without a write', async () => {
  const { fake, client, teardown } = await setup();
  try {
    const revision = fake.revision;
    const reasons = async (p: Promise<{ status: string; reason?: string }>) => {
      const r = await p;
      return `${r.status}: ${r.reason}`;
    };
    assert.is(await reasons(client.transfer(1, 2, 0)), 'failed: amount must be a positive integer');
    assert.is(await reasons(client.transfer(1, 2, 1.5)), 'failed: amount must be a positive integer');
    assert.is(await reasons(client.transfer(0, 2, 1)), 'failed: item out of range');
    assert.is(await reasons(client.transfer(1, 1, 1)), 'failed: sender and receiver are the same item');
    assert.is(await reasons(client.transfer(1, 11, 1)), 'failed: item out of range');
    assert.is(await reasons(client.read(0)), 'failed: item out of range');
    assert.is(await reasons(client.read(11)), 'failed: item out of range');
    assert.is(fake.revision, revision);
  } finally {
    await teardown();
  }
});

test('requests go round-robin over the endpoints', async () => {
  const fake = new FakeEtcd();
  const a = await fake.serve();
  const b = await fake.serve();
  const counts = [0, 0];
  a.server.on('request', () => counts[0]!++);
  b.server.on('request', () => counts[1]!++);
  const client = new EtcdBankClient({ endpoints: [a.url, b.url] });
  try {
    await client.load(10, 10);
    for (let i = 0; i < 4; i++) assert.is((await client.read(1)).status, 'ok');
    assert.equal(counts, [3, 2]);
  } finally {
    client.close();
    await close(a.server);
    await close(b.server);
  }
});

test('a dead endpoint gives failed; so do a silent one (timeout) and abandonAll', async () => {
  const dead = createServer();
  const deadUrl = await listen(dead);
  await close(dead);
  const silent = createServer(() => {});
  const silentUrl = await listen(silent);
  const toDead = new EtcdBankClient({ endpoints: [deadUrl] });
  const toSilent = new EtcdBankClient({ endpoints: [silentUrl], timeoutMs: 100 });
  const abandoned = new EtcdBankClient({ endpoints: [silentUrl] });
  try {
    const r = await toDead.transfer(1, 2, 1);
    assert.is(r.status, 'failed');
    assert.match(r.reason ?? '', /ECONNREFUSED/);
    assert.is((await toDead.read(1)).status, 'failed');
    try {
      await toDead.load(10, 10);
      assert.unreachable('load rejects');
    } catch (err) {
      assert.match((err as Error).message, /ECONNREFUSED/);
    }

    const t = await toSilent.read(1);
    assert.equal([t.status, t.reason], ['failed', `${new URL(silentUrl).host}: no answer in 100 ms`]);

    const pending = [abandoned.read(1), abandoned.transfer(1, 2, 1)];
    await new Promise((resolve) => setTimeout(resolve, 20));
    abandoned.abandonAll('bench stopped');
    assert.equal(
      (await Promise.all(pending)).map((x) => `${x.status}: ${x.reason}`),
      ['failed: bench stopped', 'failed: bench stopped'],
    );
  } finally {
    for (const c of [toDead, toSilent, abandoned]) c.close();
    await close(silent);
  }
});

test.run();
