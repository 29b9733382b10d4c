/**
 * Where the client sends a session read, on a fake network where the test
 * plays the cluster: to the cluster its last write to the item ran in, with
 * its point there, whatever its map says of the item's owner; as
 * linearizable when it cannot place that write, and when a MOVED sends the
 * read on.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Timers } from '../client/timers.js';
import { RecordingNet } from './support/fakes.js';
import { BankClient, type TxResult } from '../client/client.js';
import { levelOf } from '../protocol/consistency.js';
import { shardbank, type ClientReply, type EnvelopeProps, type NodeId } from '../protocol/messages.js';
import { clusterOfNode, makeTopology } from '../protocol/topology.js';

// Items 1..100 live in c1 (n1..n3), 101..200 in c2 (n4..n6).
const topology = makeTopology({ clusters: 2, nodesPerCluster: 3, items: 200, initialBalance: 20 });

/** Records what the client sends; the test answers as the node it was sent to. */
class FakeNet extends RecordingNet {
  /** The last request sent: where to and what. */
  get last(): { to: NodeId; command: shardbank.ICommand } {
    const env = this.sent.at(-1)!;
    return { to: env.to ?? 0, command: env.request!.command! };
  }
  reply(from: NodeId, reply: Partial<ClientReply>): void {
    const c = this.last.command;
    this.handler({ from, toClient: 'alice', reply: Object.assign({ client: c.client, timestamp: c.timestamp, leader: from }, reply) });
  }
}

/** Timers that never fire: no request is retried or given up here. */
const still: Timers = { now: () => 0, setTimeout: () => 0, clearTimeout: () => {} };

/** Lets the client's asynchronous send go out. */
const sent = () => new Promise<void>((r) => setImmediate(r));

function setup(): { client: BankClient; net: FakeNet } {
  const net = new FakeNet();
  return { client: new BankClient({ topology, transport: net, name: 'alice', timers: still }), net };
}

/** A transfer from 5 (c1) to 150, which the client's map places in c2, answered committed by n1. */
async function commitTransfer(client: BankClient, net: FakeNet, reply: Partial<ClientReply>): Promise<TxResult> {
  const done = client.transfer(5, 150, 3);
  await sent();
  net.reply(1, Object.assign({ status: shardbank.Status.COMMITTED }, reply));
  return done;
}

/** Sends a session read and hands back where it went. */
async function sessionRead(client: BankClient, net: FakeNet, item: number): Promise<{ to: NodeId; level: string; afterSeq: number }> {
  void client.read(item, 'session');
  await sent();
  const { to, command } = net.last;
  return { to, level: levelOf(command.read?.consistency), afterSeq: command.read?.afterSeq ?? 0 };
}

test("a session read of the receiver goes where the reply says its credit ran, with the client's point there: here c1, though the map says c2", async () => {
  const { client, net } = setup();
  // Item 150 had moved into c1: the transfer ran in c1 alone, at seq 12.
  assert.is((await commitTransfer(client, net, { seq: 12, receiverCluster: 1 })).status, 'committed');
  assert.is(client.ownerOf(150), 2, "the client's map still says c2");
  const r = await sessionRead(client, net, 150);
  assert.is(clusterOfNode(topology, r.to), 1);
  assert.is(r.level, 'session');
  assert.is(r.afterSeq, 12);
});

test("a cross-shard credit: the session read of the receiver waits for the seq it was prepared at in the participant's cluster", async () => {
  const { client, net } = setup();
  await commitTransfer(client, net, { seq: 12, peerSeq: 40, receiverCluster: 2 });
  const receiver = await sessionRead(client, net, 150);
  assert.is(clusterOfNode(topology, receiver.to), 2);
  assert.is(receiver.afterSeq, 40);
  const sender = await sessionRead(client, net, 5);
  assert.is(clusterOfNode(topology, sender.to), 1);
  assert.is(sender.afterSeq, 12);
});

test('an answer repeated from a stored reply does not say where the credit ran: the receiver is read linearizable at its owner\'s leader', async () => {
  const { client, net } = setup();
  await commitTransfer(client, net, { seq: 12 });
  const r = await sessionRead(client, net, 150);
  assert.is(r.level, 'linearizable');
  assert.is(r.to, 4, "c2's believed leader");
  // The sender's debit ran at the node that answered: its session read stays a session read.
  assert.is((await sessionRead(client, net, 5)).level, 'session');
});

test('a MOVED sends a session read on as linearizable, to the new owner', async () => {
  const { client, net } = setup();
  await commitTransfer(client, net, { seq: 12, receiverCluster: 1 });
  const done = client.read(5, 'session');
  await sent();
  const first = net.last.to;
  net.reply(first, { status: shardbank.Status.MOVED, moved: { item: 5, cluster: 2, version: 1 } });
  const { to, command } = net.last;
  assert.is(clusterOfNode(topology, to), 2);
  assert.is(levelOf(command.read?.consistency), 'linearizable');
  net.reply(to, { status: shardbank.Status.OK, balance: 17, hasBalance: true });
  const r = await done;
  assert.is(r.balance, 17);
  assert.is(r.level, 'linearizable', 'the result says how it was read');
});

test('an item the client never wrote is read at its owner with the point the client has there', async () => {
  const { client, net } = setup();
  await commitTransfer(client, net, { seq: 12, receiverCluster: 1 });
  const r = await sessionRead(client, net, 7);
  assert.is(clusterOfNode(topology, r.to), 1);
  assert.is(r.level, 'session');
  assert.is(r.afterSeq, 12);
});

test.run();
