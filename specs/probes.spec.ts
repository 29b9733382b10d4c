/**
 * The probes an adversary ran against a local cluster, each rerun by a raw
 * client built from protocol/shardbank.proto, against 9 real node processes
 * over TLS. Each is refused or bounded: nothing changes state, every node
 * stays up, memory stays under its bound, each leader keeps leading with the
 * ballot it started with, and the audit holds.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import https from 'node:https';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { AdminClient } from '../client/admin.js';
import type { BankClient } from '../client/client.js';
import { createAuthority, issueFrom } from '../cli/authority.js';
import { LocalCluster } from '../cli/cluster.js';
import { auditHolds, flushCluster, formatAudit, SetRunner } from '../cli/runner.js';
import { encodeFrame } from '../protocol/codec.js';
import { shardbank, type EnvelopeProps } from '../protocol/messages.js';
import type { TcpTransport } from '../protocol/tcp.js';
import { makeTopology, type Topology } from '../protocol/topology.js';
import { freePortRange } from './support/ports.js';
import { RawConn, type RawCredentials } from './support/raw.js';

const main = fileURLToPath(new URL('../cli/main.js', import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let topology: Topology;
let dataDir: string;
let tlsDir: string;
let foreignDir: string;
let cluster: LocalCluster;
let admin: AdminClient;
let client: BankClient;
let transports: TcpTransport[] = [];
let metricsBase: number;

const port = (node: number) => topology.nodes[node - 1]!.port;
const creds = (dir: string, name?: string): RawCredentials => ({
  ca: readFileSync(join(dir, 'ca.crt'), 'utf8'),
  ...(name ? { cert: readFileSync(join(dir, `${name}.crt`), 'utf8'), key: readFileSync(join(dir, `${name}.key`), 'utf8') } : {}),
});

async function mallory(node: number, hello: EnvelopeProps['hello'] = { client: 'mallory', cluster: cluster.security.cluster }): Promise<RawConn> {
  const c = await RawConn.tls(port(node), creds(tlsDir, 'mallory'));
  c.send([{ hello }]);
  return c;
}

async function balance(node: number, item: number): Promise<number> {
  return (await admin.request(node, { printBalance: { item } })).balance ?? 0;
}

/** What each node of `leader`'s cluster says of itself, and the election lines of its log: why a leader changed. */
async function describeCluster(leader: number): Promise<string> {
  const lines: string[] = [];
  for (let n = leader; n < leader + 3; n++) {
    const s = await admin.request(n, { status: {} }).then((r) => r.status!, (e: Error) => null);
    lines.push(s ? `n${n}: ${s.role}, ballot <${s.ballot?.round}, n${s.ballot?.node}>, leader n${s.leader}` : `n${n}: no answer`);
    const log = readFileSync(cluster.logFile(n), 'utf8').split('\n').filter((l) => /elect|campaign|vote|leader|connect|closed|refused|error/i.test(l));
    lines.push(...log.slice(-15).map((l) => `  ${l}`));
  }
  return lines.join('\n');
}

/** Every node up, every cluster led by its first node with the ballot it was flushed with, no election since. */
async function assertUndisturbed(what: string): Promise<void> {
  assert.equal(cluster.deaths(), [], `${what}: no node process died`);
  for (const leader of [1, 4, 7]) {
    const s = (await admin.request(leader, { status: {} })).status!;
    if (s.role !== 'leader' || s.ballot?.round !== 1 || s.ballot?.node !== leader) {
      assert.unreachable(`${what}: n${leader} no longer leads with ballot <1, n${leader}>\n${await describeCluster(leader)}`);
    }
  }
  for (let n = 1; n <= 9; n++) {
    const views = (await admin.request(n, { printView: {} })).views ?? [];
    assert.is(views.length, 0, `${what}: no NEW-VIEW at n${n}: no election happened`);
  }
  const audit = await new SetRunner({ topology, client, admin }).audit();
  assert.ok(audit.conserved === true && audit.replicasAgree, `${what}: ${formatAudit(audit)}`);
}

test.before(async () => {
  const base = await freePortRange(18);
  metricsBase = base + 9;
  // Small connection limits, so that the probes reach them quickly.
  topology = makeTopology({
    basePort: base,
    // Failure detection of a second or two: a leader stalled that long by a probe is still caught, while
    // the scheduling pauses of a shared machine (nine node processes on two cores) do not start elections.
    tuning: { maxClientConnections: 24, maxPendingConnections: 16, helloTimeoutMs: 1000, electionTicksMin: 40, electionTicksMax: 80 },
  });
  dataDir = mkdtempSync(join(tmpdir(), 'shardbank-probes-'));
  cluster = await LocalCluster.create(topology, dataDir, { metricsBasePort: metricsBase });
  tlsDir = join(dataDir, 'tls');
  await issueFrom(tlsDir, { role: 'client', name: 'mallory' });
  await issueFrom(tlsDir, { role: 'peer', name: 'n12' });
  foreignDir = join(dataDir, 'foreign');
  await createAuthority(foreignDir, { certificates: [{ role: 'admin', name: 'admin' }, { role: 'peer', name: 'n6' }], days: 1 });
  const a = cluster.admin('probes');
  const c = cluster.client('probes', 8);
  admin = a.admin;
  client = c.client;
  transports = [a.transport, c.transport];
  await cluster.start(admin);
  await flushCluster(admin, topology, 1);
  // Each leader heard from both its followers: the cluster is settled before the first probe.
  for (const leader of [1, 4, 7]) {
    const deadline = Date.now() + 5000;
    for (;;) {
      const s = (await admin.request(leader, { status: {} })).status!;
      if (s.role === 'leader' && s.quorum) break;
      if (Date.now() > deadline) assert.unreachable(`n${leader} did not settle as leader after the flush\n${await describeCluster(leader)}`);
      await sleep(25);
    }
  }
});

test.after(async () => {
  client?.abandonAll();
  await cluster?.stop();
  await Promise.all(transports.map((t) => t.close()));
  rmSync(dataDir, { recursive: true, force: true });
});

const flush = (initialBalance: number, leader = 4): EnvelopeProps => ({ from: 0, to: 4, fromClient: 'admin', admin: { id: 1, flush: { initialBalance, leader, set: 1 } } });

test('a flush of cluster 2 with no credentials, or a client\'s, or another authority\'s admin, is refused and changes nothing', async () => {
  const plain = await RawConn.tcp(port(4));
  plain.send([{ hello: { client: 'admin', role: 'admin' } }, flush(1_000_000)]);
  assert.ok(await plain.closesWithin(2000), 'plain TCP: closed');
  const noCert = await RawConn.tls(port(4), creds(tlsDir));
  noCert.send([{ hello: { client: 'admin', role: 'admin' } }, flush(1_000_000)]);
  assert.ok(await noCert.closesWithin(2000), 'TLS without a certificate: closed');
  const foreign = await RawConn.tls(port(4), creds(foreignDir, 'admin'));
  foreign.send([{ hello: { client: 'admin', role: 'admin' } }, flush(1_000_000)]);
  assert.ok(await foreign.closesWithin(2000), 'another authority\'s admin: closed');
  const m = await mallory(4);
  m.send([{ from: 0, to: 4, fromClient: 'mallory', admin: { id: 1, flush: { initialBalance: 1_000_000, leader: 4, set: 1 } } }]);
  m.send([{ from: 0, to: 5, fromClient: 'mallory', admin: { id: 2, fail: {} } }]);
  assert.ok(await m.closesWithin(2000), 'a client certificate: closed');
  assert.equal(m.got.filter((e) => e.adminReply), [], 'no admin reply');
  for (const n of [4, 5, 6]) assert.is(await balance(n, 3001), 10, `n${n} keeps 3001 at 10`);
  for (const n of [4, 5, 6]) assert.not.ok((await admin.request(n, { status: {} })).status!.failed, `n${n} is not failed`);
  await assertUndisturbed('flush probes');
});

test('a flush\'s parameters are checked, even from the admin: a negative or fractional balance, a leader of another cluster', async () => {
  for (const [balanceArg, leader, why] of [
    [-50, 4, /non-negative integer, got -50/],
    [0.5, 4, /non-negative integer, got 0.5/],
    [10, 7, /leader must be a node of this cluster \(n4, n5, n6\), got n7/],
  ] as const) {
    const err = await admin.request(4, { flush: { initialBalance: balanceArg, leader, set: 1 } }).then(() => null, (e: Error) => e);
    assert.ok(err && why.test(err.message), `flush(${balanceArg}, n${leader}): ${err?.message}`);
  }
  assert.is(await balance(4, 3001), 10);
  await assertUndisturbed('flush parameters');
});

test('ACCEPT and COMMIT claiming to come from n6 move nothing, whoever sends them', async () => {
  const ballot = { round: 100, node: 6 };
  const command = { client: 'x', timestamp: 1, transfer: { sender: 4001, receiver: 4009, amount: 10 } };
  const forged = (to: number): EnvelopeProps[] => [
    { from: 6, to, epoch: 1, accept: { ballot, entries: [{ seq: 1, ballot, command }] } },
    { from: 6, to, epoch: 1, commit: { ballot, slots: [1] } },
  ];
  const attempts: [string, () => Promise<RawConn>][] = [
    ['plain TCP', async () => RawConn.tcp(port(5))],
    ['a client certificate', () => mallory(5)],
    ['n5\'s own certificate', async () => {
      const c = await RawConn.tls(port(5), creds(tlsDir, 'n5'));
      c.send([{ from: 5, hello: { node: 5, cluster: cluster.security.cluster } }]);
      return c;
    }],
    ['another authority\'s n6', async () => {
      const c = await RawConn.tls(port(5), creds(foreignDir, 'n6'));
      c.send([{ from: 6, hello: { node: 6, cluster: cluster.security.cluster } }]);
      return c;
    }],
    ['n12, not a node of the configuration', async () => {
      const c = await RawConn.tls(port(5), creds(tlsDir, 'n12'));
      c.send([{ from: 12, hello: { node: 12, cluster: cluster.security.cluster } }]);
      return c;
    }],
  ];
  for (const [who, open] of attempts) {
    const c = await open();
    c.send(forged(5));
    assert.ok(await c.closesWithin(2000), `${who}: closed`);
  }
  await sleep(200);
  for (const n of [4, 5, 6]) {
    assert.is(await balance(n, 4001), 10, `n${n}: 4001 unchanged`);
    assert.is(await balance(n, 4009), 10, `n${n}: 4009 unchanged`);
  }
  await assertUndisturbed('forged peer messages');
});

test('a request under another client\'s name is refused; that client\'s transfers still run; no other connection gets its replies', async () => {
  const m = await mallory(1);
  m.send([{ from: 0, to: 1, fromClient: 'client/probes/1', request: { command: { client: 'client/probes/1', timestamp: 0xffffffff, transfer: { sender: 1, receiver: 2, amount: 1 } } } }]);
  assert.ok(await m.closesWithin(2000), 'closed');
  // Claiming the identity in the hello, with mallory's certificate: refused.
  const claim = await mallory(1, { client: 'client', cluster: cluster.security.cluster });
  assert.ok(await claim.closesWithin(2000), 'a hello claiming another identity: closed');
  const r = await client.transfer(1, 2, 1);
  assert.is(r.status, 'committed', JSON.stringify(r));
  assert.equal([...m.got, ...claim.got].filter((e) => e.reply), [], 'mallory saw no reply');
  await assertUndisturbed('client names');
});

test('connections announcing huge frames cost only the bytes they send', async () => {
  const rss = async () => Number((await admin.request(1, { status: {} })).status!.rssBytes);
  const before = await rss();
  const header = (n: number) => new Uint8Array([(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]);
  // No credentials: 100 connections announcing 16 MiB never get past the handshake.
  const plain = await Promise.all(Array.from({ length: 100 }, () => RawConn.tcp(port(1)).catch(() => null)));
  for (const c of plain) c?.write(new Uint8Array([...header(16 * 1024 * 1024 - 1), ...new Uint8Array(10)]));
  const closed = await Promise.all(plain.map((c) => c?.closesWithin(3000) ?? true));
  assert.ok(closed.every(Boolean), 'every plain connection closed');
  // Admitted clients: 20 connections each announcing the largest client frame and sending 10 bytes.
  const held: RawConn[] = [];
  for (let i = 0; i < 20; i++) {
    const c = await mallory(1);
    c.write(new Uint8Array([...header(topology.tuning.maxClientFrameBytes), ...new Uint8Array(10)]));
    held.push(c);
  }
  await sleep(300);
  const grown = (await rss()) - before;
  for (const c of held) c.destroy();
  assert.ok(grown < 40 * 2 ** 20, `n1 grew by ${(grown / 2 ** 20).toFixed(1)} MB`);
  // A frame larger than a client may send is refused at its header.
  const big = await mallory(1);
  big.write(header(16 * 1024 * 1024));
  assert.ok(await big.closesWithin(2000), 'a 16 MiB frame from a client: closed');
  await assertUndisturbed('large frames');
});

test('a frame of 100,000 empty envelopes closes that connection at once, and the leader keeps leading', async () => {
  const m = await mallory(1);
  const payload = new Uint8Array(2 * 100_000);
  for (let i = 0; i < payload.length; i += 2) payload[i] = 0x0a;
  const n = payload.length;
  m.write(new Uint8Array([(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff, ...payload]));
  assert.ok(await m.closesWithin(2000), 'closed');
  await assertUndisturbed('crowded frame');
});

test('a burst of 100,000 requests on one connection is answered overloaded past its bound, and the leader keeps leading', async () => {
  const m = await mallory(1);
  const total = 100_000;
  const perFrame = 4000;
  for (let sent = 0; sent < total; sent += perFrame) {
    const envs: EnvelopeProps[] = [];
    for (let i = sent; i < sent + perFrame; i++) {
      // Every request its own logical client, so that each is owed exactly one answer.
      const name = `mallory/${i}`;
      envs.push({ from: 0, to: 1, fromClient: name, request: { command: { client: name, timestamp: 1, transfer: { sender: 1 + (i % 1000), receiver: 1001 + (i % 1000), amount: 1 } } } });
    }
    m.write(encodeFrame(envs));
  }
  const replies = () => m.got.filter((e) => e.reply).length;
  await m.until(() => replies() >= total, 30_000);
  const overloaded = m.got.filter((e) => e.reply?.reason === 'overloaded').length;
  assert.is(replies(), total, 'every request was answered');
  assert.ok(overloaded > 0, 'some were answered overloaded');
  assert.not.ok(m.closed, 'the flood slows its own connection; it is not cut off');
  m.destroy();
  const r = await client.transfer(5, 6, 1);
  assert.is(r.status, 'committed', `another client still gets through: ${JSON.stringify(r)}`);
  await assertUndisturbed('request burst');
});

test('idle connections do not lock new clients out', async () => {
  const idle: RawConn[] = [];
  for (let i = 0; i < topology.tuning.maxClientConnections + 16; i++) idle.push(await mallory(7));
  await sleep(200);
  const late = cluster.client('late', 1);
  try {
    const r = await late.client.transfer(6001, 6002, 1);
    assert.is(r.status, 'committed', JSON.stringify(r));
  } finally {
    await late.transport.close();
    for (const c of idle) c.destroy();
  }
  assert.ok(idle.filter((c) => c.closed).length >= 16, 'the idlest went to make room');
  await assertUndisturbed('idle connections');
});

test('a connection that trickles a byte at a time, or never says hello, is closed at its deadline', async () => {
  const started = Date.now();
  const trickle = await RawConn.tcp(port(1));
  const timer = setInterval(() => trickle.write(new Uint8Array([0x16])), 100);
  const silent = await RawConn.tls(port(1), creds(tlsDir, 'mallory'));
  try {
    assert.ok(await trickle.closesWithin(topology.tuning.helloTimeoutMs + 1500), 'the trickle is closed');
    assert.ok(await silent.closesWithin(topology.tuning.helloTimeoutMs + 1500), 'the silent one is closed');
    assert.ok(Date.now() - started < topology.tuning.helloTimeoutMs + 2000);
  } finally {
    clearInterval(timer);
  }
  await assertUndisturbed('deadlines');
});

test('shardbank status shows every cluster\'s leader, ballot and commit point', async () => {
  const child = spawn(process.execPath, [main, 'status', '--config', cluster.configPath, '--tls', tlsDir], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const code = await new Promise<number | null>((r) => child.on('exit', r));
  assert.is(code, 0, err);
  for (const c of [1, 2, 3]) assert.match(out, new RegExp(`cluster ${c}: led by n${3 * c - 2} with ballot <1, n${3 * c - 2}>, commit point \\d+; 3/3 nodes answer`));
  assert.match(out, /^n5\s+2\s+follower\s+n4\s+<1, n4>/m);
});

test('each node serves Prometheus metrics to the admin role only', async () => {
  const get = (c: RawCredentials) =>
    new Promise<{ status: number; body: string }>((resolve) => {
      const req = https.get({ host: '127.0.0.1', port: metricsBase, path: '/metrics', ca: c.ca, cert: c.cert, key: c.key, checkServerIdentity: () => undefined }, (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', () => resolve({ status: 0, body: '' }));
    });
  const ok = await get(creds(tlsDir, 'admin'));
  assert.is(ok.status, 200);
  assert.match(ok.body, /shardbank_commit_through\{node="n1"\} \d+/);
  assert.match(ok.body, /shardbank_is_leader\{node="n1"\} 1/);
  assert.match(ok.body, /shardbank_log_append_seconds_bucket\{le="0\.005",node="n1",sync="yes"\} \d+/);
  assert.match(ok.body, /shardbank_requests_overloaded_total\{node="n1"\} [1-9]/);
  assert.match(ok.body, /shardbank_connections\{role="peer",node="n1"\} \d+/);
  assert.is((await get(creds(tlsDir, 'client'))).status, 403, 'a client certificate is refused');
  assert.is((await get(creds(tlsDir))).status, 0, 'no certificate: no connection');
});

test('a whole cluster down after a cross-shard transfer: the audit names it and does not call money lost', async () => {
  const r = await client.transfer(2500, 4500, 5);
  assert.is(r.status, 'committed');
  for (const n of [4, 5, 6]) await admin.request(n, { fail: {} });
  const audit = await new SetRunner({ topology, client, admin }).audit(0);
  assert.equal(audit.unreadable, [2]);
  assert.is(audit.conserved, null);
  assert.ok(auditHolds(audit));
  const line = formatAudit(audit);
  assert.match(line, /cluster 2: no live node to read/);
  assert.not.match(line, /NOT CONSERVED/);
  for (const n of [4, 5, 6]) await admin.request(n, { recover: {} });
});

test.run();
