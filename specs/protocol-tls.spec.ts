/**
 * The TCP transport over TLS, in one process: nodes and clients with
 * certificates from one authority talk; replies go back to the connection
 * their client sent from, even when two processes share an identity; an
 * opener that reaches a node of another authority or cluster is told why.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createAuthority } from '../cli/authority.js';
import { shardbank, type EnvelopeProps } from '../protocol/messages.js';
import { TcpTransport } from '../protocol/tcp.js';
import type { Security } from '../protocol/tls.js';
import { freePortRange } from './support/ports.js';

const HOST = '127.0.0.1';
const dir = mkdtempSync(join(tmpdir(), 'shardbank-tls-'));
const ours = join(dir, 'ours');
const theirs = join(dir, 'theirs');
const { cluster } = await createAuthority(ours, {
  certificates: [
    { role: 'peer', name: 'n1' },
    { role: 'peer', name: 'n2' },
    { role: 'client', name: 'client' },
  ],
  days: 1,
});
await createAuthority(theirs, { certificates: [{ role: 'client', name: 'client' }], days: 1 });
test.after(() => rmSync(dir, { recursive: true, force: true }));

function security(authority: string, name: string, clusterId = cluster): Security {
  const read = (f: string) => readFileSync(join(authority, f), 'utf8');
  return { mode: 'tls', cluster: clusterId, credentials: { ca: read('ca.crt'), cert: read(`${name}.crt`), key: read(`${name}.key`) } };
}

async function until(pred: () => boolean, what: string, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('two nodes and two processes of one client identity talk over TLS; each process gets only its own replies', async () => {
  const base = await freePortRange(2);
  const addresses = (n: number) => (n === 1 || n === 2 ? { host: HOST, port: base + n - 1 } : undefined);
  const logs: string[] = [];
  const node = (id: number) => new TcpTransport({ self: { node: id }, addresses, listen: addresses(id), security: security(ours, `n${id}`), log: (l) => logs.push(l) });
  const [n1, n2] = [node(1), node(2)];
  const got = new Map<string, EnvelopeProps[]>();
  const client = (name: string) => {
    const t = new TcpTransport({ self: { client: 'client' }, addresses, security: security(ours, 'client'), log: (l) => logs.push(l) });
    got.set(name, []);
    t.onEnvelope((e) => got.get(name)!.push(e));
    return t;
  };
  const [a, b] = [client('a'), client('b')];
  const heard: EnvelopeProps[] = [];
  n2.onEnvelope((e) => heard.push(e));
  n1.onEnvelope((e) => {
    const cmd = e.request?.command;
    if (!cmd) return;
    n1.send({ from: 1, toClient: 'client', reply: { client: cmd.client!, timestamp: cmd.timestamp!, status: shardbank.Status.OK, leader: 1 } });
  });
  try {
    await n1.start();
    await n2.start();
    n1.send({ from: 1, to: 2, heartbeat: { commitThrough: 7 } });
    await until(() => heard.length === 1, 'the heartbeat at n2');
    a.send({ from: 0, to: 1, fromClient: 'client/a/1', request: { command: { client: 'client/a/1', timestamp: 1, read: { item: 1 } } } });
    b.send({ from: 0, to: 1, fromClient: 'client/b/1', request: { command: { client: 'client/b/1', timestamp: 1, read: { item: 1 } } } });
    await until(() => got.get('a')!.length === 1 && got.get('b')!.length === 1, 'both replies');
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(got.get('a')!.map((e) => e.reply!.client), ['client/a/1']);
    assert.equal(got.get('b')!.map((e) => e.reply!.client), ['client/b/1']);
    assert.equal(logs, []);
    assert.is(n1.stats.connections.client, 2);
    assert.is(n1.stats.inflight, 0, 'both requests answered');
  } finally {
    await Promise.all([a.close(), b.close(), n1.close(), n2.close()]);
  }
});

test('an opener reaching a node of another authority, or of another cluster id, is told why', async () => {
  const base = await freePortRange(1);
  const addresses = (n: number) => (n === 1 ? { host: HOST, port: base } : undefined);
  const n1 = new TcpTransport({ self: { node: 1 }, addresses, listen: addresses(1), security: security(ours, 'n1') });
  const foreign = new TcpTransport({ self: { client: 'client' }, addresses, security: security(theirs, 'client', cluster) });
  const plain = new TcpTransport({ self: { client: 'client' }, addresses, security: { mode: 'plaintext', cluster } });
  try {
    await n1.start();
    foreign.send({ from: 0, to: 1, fromClient: 'client/1', request: { command: { client: 'client/1', timestamp: 1, read: { item: 1 } } } });
    plain.send({ from: 0, to: 1, fromClient: 'client/1', request: { command: { client: 'client/1', timestamp: 1, read: { item: 1 } } } });
    await until(() => foreign.problem(1) !== undefined && plain.problem(1) !== undefined, 'both problems');
    assert.match(foreign.problem(1)!, /n1 \(127\.0\.0\.1:\d+\): .*(CERT|certificate|SIGNATURE|VERIFY)/i);
    assert.match(plain.problem(1)!, /n1 \(127\.0\.0\.1:\d+\): /);
    assert.is(n1.stats.envelopesReceived, 0, 'nothing got through');
  } finally {
    await Promise.all([foreign.close(), plain.close(), n1.close()]);
  }
});

test('plaintext refuses to listen off loopback', async () => {
  const t = new TcpTransport({ self: { node: 1 }, addresses: () => ({ host: '0.0.0.0', port: 1 }), listen: { host: '0.0.0.0', port: 0 }, security: { mode: 'plaintext', cluster: 'x' } });
  try {
    await t.start().then(
      () => assert.unreachable('it listened'),
      (e: Error) => assert.match(e.message, /plaintext is only allowed on loopback, and 0\.0\.0\.0 is not/),
    );
  } finally {
    await t.close();
  }
});

test.run();
