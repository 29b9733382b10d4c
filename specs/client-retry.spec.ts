/**
 * The client's retry timer on a fake clock and a fake network: a request
 * without a reply is broadcast after `clientTimeoutMs` while the cluster
 * answers fast, later once replies have been slow and uneven (so a loaded
 * cluster is not sent three more copies of everything), never later than half
 * the give-up time, and given up as `failed: no reply` at `clientGiveUpMs`.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FakeTimers } from './support/fakes.js';
import { BankClient, type TxResult } from '../client/client.js';
import { shardbank, type EnvelopeProps } from '../protocol/messages.js';
import { makeTopology } from '../protocol/topology.js';
import type { EnvelopeHandler, Transport } from '../protocol/transport.js';

const topology = makeTopology({ clusters: 1, nodesPerCluster: 3, items: 100 });
const { clientTimeoutMs, clientGiveUpMs } = topology.tuning;


/** Records what the client sends, with the time; the test plays the cluster. */
class FakeNet implements Transport {
  sent: { at: number; env: EnvelopeProps }[] = [];
  handler: EnvelopeHandler = () => {};
  constructor(private readonly timers: FakeTimers) {}
  send(env: EnvelopeProps): void {
    this.sent.push({ at: this.timers.t, env });
  }
  flush(): void {}
  onEnvelope(h: EnvelopeHandler): void {
    this.handler = h;
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
  answer(env: EnvelopeProps): void {
    const c = env.request!.command!;
    this.handler({ from: env.to!, reply: { client: c.client!, timestamp: c.timestamp!, status: shardbank.Status.COMMITTED, leader: 1 } });
  }
}

function setup(tuning = topology.tuning) {
  const timers = new FakeTimers();
  const net = new FakeNet(timers);
  const client = new BankClient({ topology: { ...topology, tuning }, transport: net, name: 'c', slots: 1, timers });
  return { timers, net, client };
}

/** Sends one transfer and lets it be answered after `latencyMs`. */
async function answered(s: ReturnType<typeof setup>, latencyMs: number): Promise<TxResult> {
  const p = s.client.transfer(1, 2, 1);
  await Promise.resolve();
  const req = s.net.sent.at(-1)!.env;
  s.timers.advance(latencyMs);
  s.net.answer(req);
  return p;
}

/** Sends a transfer nobody answers; returns when each copy left, relative to the first. */
async function unanswered(s: ReturnType<typeof setup>, giveUpMs = clientGiveUpMs): Promise<{ result: TxResult; copies: number[] }> {
  const from = s.net.sent.length;
  const p = s.client.transfer(1, 2, 1);
  await Promise.resolve();
  const start = s.timers.t;
  s.timers.advance(giveUpMs + 1000);
  const result = await p;
  return { result, copies: s.net.sent.slice(from).map((x) => x.at - start) };
}

test('a fast cluster: the broadcast comes after clientTimeoutMs, the give-up at clientGiveUpMs', async () => {
  const s = setup();
  for (let i = 0; i < 5; i++) assert.is((await answered(s, 5)).status, 'committed');
  const { result, copies } = await unanswered(s);
  // A transfer sent and never answered may still apply: unknown, not failed.
  assert.is(result.status, 'unknown');
  assert.is(result.reason, 'no reply');
  assert.is(copies[0], 0, 'first copy to the leader at once');
  assert.is(copies[1], clientTimeoutMs, 'then to every node of the cluster');
  // A broadcast every timeout while another timeout still fits before the give-up.
  assert.is(copies.length, 1 + 3 * (Math.floor(clientGiveUpMs / clientTimeoutMs) - 1), 'a broadcast every timeout until give-up');
  assert.ok(result.latencyMs <= clientGiveUpMs, `gave up after ${result.latencyMs} ms`);
});

test('a slow cluster: the broadcast waits for the smoothed latency plus four deviations, at most half the give-up', async () => {
  const s = setup();
  // Replies that beat the current timeout teach the client; these vary a lot.
  for (let i = 0; i < 20; i++) await answered(s, i % 2 === 0 ? 200 : 390);
  const { copies } = await unanswered(s);
  assert.ok(copies[1]! > clientTimeoutMs + 100 && copies[1]! <= clientGiveUpMs / 2, `first broadcast at ${copies[1]} ms`);

  const giveUp = 1000;
  const capped = setup({ ...topology.tuning, clientGiveUpMs: giveUp });
  for (let i = 0; i < 20; i++) await answered(capped, i % 2 === 0 ? 10 : 390);
  const late = await unanswered(capped, giveUp);
  assert.is(late.copies[1], giveUp / 2, 'capped so that one broadcast still happens before giving up');
  assert.is(late.result.reason, 'no reply');
});

test("a retried request's latency does not teach the client (Karn's rule)", async () => {
  const s = setup();
  for (let i = 0; i < 5; i++) await answered(s, 5);
  // Answered only after a broadcast: its 1500 ms says nothing about one round trip.
  const p = s.client.transfer(1, 2, 1);
  await Promise.resolve();
  const req = s.net.sent.at(-1)!.env;
  s.timers.advance(1500);
  s.net.answer(req);
  assert.is((await p).status, 'committed');
  const { copies } = await unanswered(s);
  assert.is(copies[1], clientTimeoutMs);
});

test.run();
