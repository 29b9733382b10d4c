/**
 * The client following MOVED answers on a fake network: it sends the same
 * request to the new owner's leader and routes later requests there; copies
 * of the MOVED answer that arrive late (from the broadcast to the old
 * cluster) do not teach it that the old cluster's leader leads the new one;
 * an item that keeps moving ends the request as failed, with a reason that
 * names no item (bench tables count outcomes by reason); and a MOVED answer
 * starts the request's give-up time afresh.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FakeTimers, RecordingNet } from './support/fakes.js';
import { BankClient } from '../client/client.js';
import { shardbank, type EnvelopeProps } from '../protocol/messages.js';
import { makeTopology } from '../protocol/topology.js';

// c1 = n1..n3 owns items 1..50, c2 = n4..n6 owns 51..100.
const topology = makeTopology({ clusters: 2, nodesPerCluster: 3, items: 100 });

class FakeNet extends RecordingNet {
  /** A reply from `from` (a node that believes `leader` leads its cluster) to the last request sent. */
  reply(from: number, leader: number, body: Partial<shardbank.IClientReply>): void {
    const c = this.sent.at(-1)!.request!.command!;
    this.handler({ from, reply: Object.assign({ client: c.client!, timestamp: c.timestamp!, leader }, body) });
  }
}

const moved = (item: number, cluster: number, version: number) => ({ status: shardbank.Status.MOVED, moved: { item, cluster, version } });

test('a MOVED answer: the request goes to the new owner, and later ones for the item too', async () => {
  const net = new FakeNet();
  const client = new BankClient({ topology, transport: net, name: 'c', slots: 4 });
  const p = client.transfer(7, 8, 1);
  await Promise.resolve();
  assert.is(net.sent.at(-1)!.to, 1, 'to the leader of the shard map owner');
  net.reply(1, 1, moved(7, 2, 1));
  assert.is(net.sent.at(-1)!.to, 4, 'the same request, to c2');
  assert.is(client.ownerOf(7), 2);
  net.reply(4, 4, { status: shardbank.Status.COMMITTED });
  assert.is((await p).status, 'committed');
  const q = client.transfer(7, 9, 1);
  await Promise.resolve();
  assert.is(net.sent.at(-1)!.to, 4, 'a later request for item 7 goes straight to c2');
  net.reply(4, 4, { status: shardbank.Status.COMMITTED });
  await q;
  client.learnOwner(7, 1, 0);
  assert.is(client.ownerOf(7), 2, 'an older version teaches nothing');
});

test("a late copy of a MOVED answer from the old cluster does not make the old cluster's leader the new one's", async () => {
  const net = new FakeNet();
  const client = new BankClient({ topology, transport: net, name: 'c', slots: 4 });
  const p = client.transfer(7, 8, 1);
  await Promise.resolve();
  net.reply(1, 1, moved(7, 2, 1));
  // n2 got the request too (a broadcast after a timeout) and answers the same, naming n1 as its leader.
  net.reply(2, 1, moved(7, 2, 1));
  assert.is(net.sent.at(-1)!.to, 4, 'still sent to c2, not to n1');
  assert.is(client.leaderOf(2), 4);
  assert.is(client.leaderOf(1), 1);
  net.reply(4, 4, { status: shardbank.Status.COMMITTED });
  assert.is((await p).status, 'committed');
});

test('an item that keeps moving: failed after a bounded number of hops, with a reason that names no item', async () => {
  const net = new FakeNet();
  const client = new BankClient({ topology, transport: net, name: 'c', slots: 4 });
  const p = client.transfer(7, 8, 1);
  await Promise.resolve();
  let hops = 0;
  for (let v = 1; v <= 20 && client.pending > 0; v++) {
    const to = net.sent.at(-1)!.to!;
    net.reply(to, to, moved(7, to <= 3 ? 2 : 1, v));
    hops++;
  }
  const r = await p;
  assert.is(r.status, 'failed');
  assert.match(r.reason ?? '', /^moved \d+ times$/);
  assert.ok(hops <= 10, `${hops} hops`);
});


test('a MOVED answer starts the give-up time afresh: the request may wait out the end of the move at the new owner', async () => {
  const net = new FakeNet();
  const timers = new FakeTimers();
  const { clientGiveUpMs } = topology.tuning;
  const client = new BankClient({ topology, transport: net, name: 'c', slots: 4, timers });
  const p = client.transfer(7, 8, 1);
  await Promise.resolve();
  timers.advance(clientGiveUpMs - 500);
  net.reply(1, 1, moved(7, 2, 1));
  timers.advance(clientGiveUpMs - 600);
  assert.is(client.pending, 1, `still waiting ${2 * clientGiveUpMs - 1100} ms after it was first sent`);
  timers.advance(1000);
  const r = await p;
  // Sent and never answered at the new owner: it may still apply there.
  assert.is(r.status, 'unknown');
  assert.is(r.reason, 'no reply');
  assert.ok(r.latencyMs > clientGiveUpMs && r.latencyMs <= 2 * clientGiveUpMs - 500, `its latency (${r.latencyMs} ms) counts from the first send`);
});

test.run();
