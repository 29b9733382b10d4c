import net from 'node:net';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { encodeFrame } from '../protocol/codec.js';
import { shardbank, type EnvelopeProps } from '../protocol/messages.js';
import { TcpTransport, type HostPort } from '../protocol/tcp.js';

const HOST = '127.0.0.1';

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, HOST, () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Collects delivered envelopes and lets a test wait for a condition on them. */
class Inbox {
  readonly got: EnvelopeProps[] = [];
  private waiters: (() => void)[] = [];

  readonly handler = (env: EnvelopeProps) => {
    this.got.push(env);
    for (const w of this.waiters) w();
  };

  async until(pred: (got: EnvelopeProps[]) => boolean, what: string, ms = 2000): Promise<void> {
    if (pred(this.got)) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}; got ${this.got.length} envelopes`)), ms);
      const check = () => {
        if (!pred(this.got)) return;
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== check);
        resolve();
      };
      this.waiters.push(check);
    });
  }
}

interface Cluster {
  ports: Map<number, number>;
  addresses: (node: number) => HostPort | undefined;
  logs: string[];
  nodes: Map<number, TcpTransport>;
  inboxes: Map<number, Inbox>;
  closeAll: () => Promise<void>;
}

async function cluster(ids: number[], members: number[] = ids): Promise<Cluster> {
  const ports = new Map<number, number>();
  for (const id of ids) ports.set(id, await freePort());
  const addresses = (node: number) => (ports.has(node) ? { host: HOST, port: ports.get(node)! } : undefined);
  const logs: string[] = [];
  const nodes = new Map<number, TcpTransport>();
  const inboxes = new Map<number, Inbox>();
  for (const id of ids) {
    const t = new TcpTransport({
      self: { node: id },
      addresses,
      isMember: (n) => members.includes(n),
      listen: { host: HOST, port: ports.get(id)! },
      maxFrameBytes: 64 * 1024,
      log: (m) => logs.push(`n${id}: ${m}`),
    });
    const inbox = new Inbox();
    t.onEnvelope(inbox.handler);
    await t.start();
    nodes.set(id, t);
    inboxes.set(id, inbox);
  }
  return {
    ports,
    addresses,
    logs,
    nodes,
    inboxes,
    closeAll: async () => {
      await Promise.all([...nodes.values()].map((t) => t.close()));
    },
  };
}

const heartbeat = (from: number, to: number, n: number): EnvelopeProps => ({
  from,
  to,
  heartbeat: { ballot: { round: 1, node: from }, commitThrough: n },
});

test('two nodes exchange envelopes both ways, batched into frames', async () => {
  const c = await cluster([1, 2]);
  try {
    const [a, b] = [c.nodes.get(1)!, c.nodes.get(2)!];
    for (let i = 1; i <= 50; i++) a.send(heartbeat(1, 2, i));
    a.flush();
    for (let i = 1; i <= 30; i++) b.send(heartbeat(2, 1, i));
    // No flush: the automatic one must still send these.
    await c.inboxes.get(2)!.until((g) => g.length === 50, '50 envelopes at n2');
    await c.inboxes.get(1)!.until((g) => g.length === 30, '30 envelopes at n1');
    assert.equal(
      c.inboxes.get(2)!.got.map((e) => e.heartbeat!.commitThrough),
      Array.from({ length: 50 }, (_, i) => i + 1),
      'order is kept',
    );
    assert.ok(a.stats.framesSent <= 2, `50 envelopes went in ${a.stats.framesSent} frames`);
    assert.equal(c.logs, []);
  } finally {
    await c.closeAll();
  }
});

test('envelopes sent before the peer is up arrive once it listens', async () => {
  const port = await freePort();
  const logs: string[] = [];
  const a = new TcpTransport({
    self: { node: 1 },
    addresses: (n) => (n === 2 ? { host: HOST, port } : undefined),
    maxFrameBytes: 64 * 1024,
    log: (m) => logs.push(m),
    reconnectMinMs: 10,
    reconnectMaxMs: 40,
  });
  const b = new TcpTransport({ self: { node: 2 }, addresses: () => undefined, isMember: (n) => n === 1, listen: { host: HOST, port }, maxFrameBytes: 64 * 1024 });
  const inbox = new Inbox();
  b.onEnvelope(inbox.handler);
  try {
    await a.start();
    a.send(heartbeat(1, 2, 1));
    a.flush();
    await new Promise((r) => setTimeout(r, 60));
    await b.start();
    await inbox.until((g) => g.length === 1, 'the queued envelope');
    // A refused connection to a down peer is routine: nothing in the log.
    assert.equal(logs, []);
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
});

test('a client request gets its reply routed back by toClient', async () => {
  const c = await cluster([1]);
  const client = new TcpTransport({ self: { client: 'alice' }, addresses: c.addresses, maxFrameBytes: 64 * 1024 });
  const clientInbox = new Inbox();
  client.onEnvelope(clientInbox.handler);
  const node = c.nodes.get(1)!;
  node.onEnvelope((env) => {
    const cmd = env.request?.command;
    if (!cmd) return;
    node.send({
      from: 1,
      toClient: cmd.client!,
      reply: { client: cmd.client!, timestamp: cmd.timestamp!, status: shardbank.Status.OK, balance: 10, hasBalance: true, leader: 1 },
    });
    node.flush();
  });
  try {
    await client.start();
    client.send({ from: 0, to: 1, request: { command: { client: 'alice', timestamp: 5, read: { item: 7 } } } });
    client.flush();
    await clientInbox.until((g) => g.length === 1, 'the reply');
    const reply = clientInbox.got[0]!.reply!;
    assert.is(reply.client, 'alice');
    assert.is(reply.timestamp, 5);
    assert.is(reply.status, shardbank.Status.OK);
    assert.is(reply.balance, 10);
    // A reply for a client that never connected is dropped quietly.
    node.send({ from: 1, toClient: 'nobody', reply: { client: 'nobody', timestamp: 1 } });
    node.flush();
    assert.equal(c.logs, []);
  } finally {
    await client.close();
    await c.closeAll();
  }
});

async function garbage(port: number, bytes: Uint8Array): Promise<void> {
  const raw = net.connect({ host: HOST, port });
  raw.on('error', () => {});
  // Read what the node says (its hello), so that its closing is seen.
  raw.resume();
  await new Promise<void>((resolve) => raw.once('connect', () => resolve()));
  const closed = new Promise<void>((resolve) => raw.once('close', () => resolve()));
  raw.write(bytes);
  await Promise.race([
    closed,
    new Promise((_, reject) => setTimeout(() => reject(new Error('the node did not close the garbled connection')), 2000)),
  ]);
}

test('a garbled or oversized frame closes only that connection', async () => {
  const c = await cluster([1, 2]);
  try {
    const [a, b] = [c.nodes.get(1)!, c.nodes.get(2)!];
    // Connections between the good peers are up before the garbage arrives.
    a.send(heartbeat(1, 2, 1));
    b.send(heartbeat(2, 1, 1));
    await c.inboxes.get(2)!.until((g) => g.length === 1, 'first envelope at n2');
    await c.inboxes.get(1)!.until((g) => g.length === 1, 'first envelope at n1');

    const hello = encodeFrame([{ hello: { client: 'mallory' } }]);
    const junk = new Uint8Array([0, 0, 0, 6, 0x0a, 0x7f, 0xff, 0xff, 0xff, 0xff]);
    const both = new Uint8Array(hello.length + junk.length);
    both.set(hello);
    both.set(junk, hello.length);
    await garbage(c.ports.get(1)!, both);
    await garbage(c.ports.get(1)!, new Uint8Array([0x7f, 0xff, 0xff, 0xff]));
    await garbage(c.ports.get(1)!, encodeFrame([{ from: 3, to: 1, heartbeat: {} }]));

    const errors = c.logs.filter((l) => l.includes('frame error from'));
    assert.is(errors.length, 3, c.logs.join('\n'));
    assert.match(errors[0]!, /client mallory .*undecodable frame of 6 bytes/);
    // Before its hello a connection may send only a small frame.
    assert.match(errors[1]!, /oversized first frame: declared length 2147483647 bytes exceeds the limit of 4096 bytes/);
    assert.match(errors[2]!, /did not open with a hello/);

    for (let i = 2; i <= 5; i++) {
      a.send(heartbeat(1, 2, i));
      b.send(heartbeat(2, 1, i));
    }
    a.flush();
    b.flush();
    await c.inboxes.get(2)!.until((g) => g.length === 5, 'more envelopes at n2');
    await c.inboxes.get(1)!.until((g) => g.length === 5, 'more envelopes at n1');
    assert.is(a.stats.frameErrors, 3);
  } finally {
    await c.closeAll();
  }
});

test('a restarted peer is reconnected to', async () => {
  const c = await cluster([1, 2]);
  const port2 = c.ports.get(2)!;
  let b2: TcpTransport | null = null;
  try {
    const a = c.nodes.get(1)!;
    a.send(heartbeat(1, 2, 1));
    await c.inboxes.get(2)!.until((g) => g.length === 1, 'first envelope');
    await c.nodes.get(2)!.close();
    c.nodes.delete(2);
    b2 = new TcpTransport({ self: { node: 2 }, addresses: c.addresses, listen: { host: HOST, port: port2 }, maxFrameBytes: 64 * 1024 });
    const inbox = new Inbox();
    b2.onEnvelope(inbox.handler);
    await b2.start();
    // The protocol retransmits; keep sending until one gets through.
    const timer = setInterval(() => a.send(heartbeat(1, 2, 2)), 20);
    try {
      await inbox.until((g) => g.length > 0, 'an envelope after restart');
    } finally {
      clearInterval(timer);
    }
    assert.is(inbox.got[0]!.heartbeat!.commitThrough, 2);
  } finally {
    await b2?.close();
    await c.closeAll();
  }
});

test('a batch larger than one frame is split, and a node without an address is answered over its own connection', async () => {
  const c = await cluster([1], [1, 9]);
  // n9 is not in the address book: n1 can reach it only over the connection n9 opened.
  const n9 = new TcpTransport({ self: { node: 9 }, addresses: c.addresses, maxFrameBytes: 64 * 1024 });
  const inbox9 = new Inbox();
  n9.onEnvelope(inbox9.handler);
  const n1 = c.nodes.get(1)!;
  n1.onEnvelope((env) => {
    if (env.from !== 9) return;
    const entries = Array.from({ length: 40 }, (_, i) => ({
      seq: i + 1,
      command: { client: 'x'.repeat(100), timestamp: i, transfer: { sender: 1, receiver: 2, amount: 1 } },
    }));
    // 60 accepts of ~6 KB each: far more than one 64 KB frame.
    for (let i = 0; i < 60; i++) n1.send({ from: 1, to: 9, accept: { ballot: { round: i, node: 1 }, entries } });
    n1.flush();
  });
  try {
    n9.send(heartbeat(9, 1, 1));
    await inbox9.until((g) => g.length === 60, '60 accepts at n9');
    assert.equal(
      inbox9.got.map((e) => e.accept!.ballot!.round),
      Array.from({ length: 60 }, (_, i) => i),
    );
    assert.ok(n1.stats.framesSent > 1, `sent in ${n1.stats.framesSent} frames`);
    assert.equal(c.logs, []);
  } finally {
    await n9.close();
    await c.closeAll();
  }
});

test('a node sending to itself gets its own envelope, as a copy', async () => {
  const c = await cluster([1]);
  try {
    const a = c.nodes.get(1)!;
    const env = heartbeat(1, 1, 9);
    a.send(env);
    a.flush();
    await c.inboxes.get(1)!.until((g) => g.length === 1, 'the loopback envelope');
    assert.is(c.inboxes.get(1)!.got[0]!.heartbeat!.commitThrough, 9);
    assert.is.not(c.inboxes.get(1)!.got[0], env);
  } finally {
    await c.closeAll();
  }
});

test.run();
