/**
 * The node runtime around the actors: turns that finish while a write is in
 * flight share the next synced batch, a leader's heartbeats do not wait
 * behind its log, and a turn with a budget leaves a backlog for later turns.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { shardbank, type EnvelopeProps } from '../protocol/messages.js';
import { makeTopology } from '../protocol/topology.js';
import type { Transport } from '../protocol/transport.js';
import { NodeHost } from '../runtime/host.js';
import { ControlledLog } from './support/log.js';

function harness(turnBudgetMs?: number) {
  const topology = makeTopology({});
  const log = new ControlledLog();
  const sent: EnvelopeProps[] = [];
  let handler: (env: EnvelopeProps) => void = () => undefined;
  const transport: Transport = {
    send: (env) => sent.push(env),
    flush: () => undefined,
    onEnvelope: (h) => (handler = h),
    close: async () => undefined,
  };
  const host = new NodeHost({ topology, node: 1, transport, log, testCluster: true, turnBudgetMs, logger: () => undefined });
  // As off the wire: decoded, so the body's oneof is set.
  const deliver = (env: EnvelopeProps) => handler(shardbank.Envelope.decode(shardbank.Envelope.encode(env).finish()));
  const transfer = (ts: number, sender: number) => deliver({ from: 0, fromClient: 'c', request: { command: { client: 'c', timestamp: ts, transfer: { sender, receiver: sender + 1, amount: 1 } } } });
  const read = (ts: number, item: number) => deliver({ from: 0, fromClient: `r${ts}`, request: { command: { client: `r${ts}`, timestamp: ts, read: { item } } } });
  return { topology, log, sent, host, deliver, transfer, read };
}

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs a test body against a started leader, and stops it however the body ends. */
async function withLeader(turnBudgetMs: number | undefined, body: (h: ReturnType<typeof harness>) => Promise<void>): Promise<void> {
  const h = harness(turnBudgetMs);
  await h.host.start();
  try {
    await h.host.admin({ flush: { leader: 1, set: 1, initialBalance: 10 } }, '');
    await body(h);
  } finally {
    h.log.release();
    await h.host.stop();
  }
}

test('heartbeats and accept requests leave while the log write is stuck; replies wait for it', () =>
  withLeader(undefined, async (h) => {
    h.log.held = true;
    h.transfer(1, 10);
    await wait(5);
    assert.ok(h.sent.some((e) => e.accept), 'the accept goes out while its record is being written');
    h.read(2, 20);
    await wait(h.topology.tuning.tickMs * 3);
    const sentWhileHeld = h.sent.length;
    await wait(h.topology.tuning.tickMs * 6);
    const later = h.sent.slice(sentWhileHeld);
    assert.ok(later.some((e) => e.heartbeat), 'heartbeats go on while the write is stuck');
    assert.not.ok(h.sent.some((e) => e.reply), 'a reply waits for the writes before it');

    h.log.release();
    await wait(h.topology.tuning.tickMs * 2);
    assert.ok(h.sent.some((e) => e.reply), 'and leaves once they are durable');
  }));

test('turns that finish while a write is in flight are written together, as one synced batch', () =>
  withLeader(undefined, async (h) => {
    h.log.held = true;
    h.transfer(1, 10);
    await wait(5);
    // Three more turns while the first write waits.
    for (let i = 0; i < 3; i++) {
      h.transfer(2 + i, 20 + 2 * i);
      await wait(5);
    }
    const before = h.log.appends.length;
    h.log.release();
    await h.host.idle();
    const batches = h.log.appends.slice(before);
    assert.is(batches.length, 2, `the held write, then one batch for the turns behind it (got ${batches.join(', ')} events)`);
    const accepted = (await h.log.readAll()).filter((e) => e.accepted).flatMap((e) => e.accepted!.entries ?? []);
    assert.is(accepted.length, 4, 'every turn\'s entry is in the log');
  }));

test('a turn budget leaves a backlog to later turns, and every request is still answered', () =>
  withLeader(0, async (h) => {
    const turns = h.host.stats.turns;
    const n = 300;
    for (let i = 1; i <= n; i++) h.read(i, i);
    await wait(50);
    await h.host.idle();
    const replies = h.sent.filter((e) => e.reply);
    assert.is(replies.length, n);
    assert.ok(h.host.stats.turns - turns >= Math.ceil(n / 64), `${h.host.stats.turns - turns} turns for ${n} reads`);
  }));

test('what a node promises is fsynced before it is sent; commits and executions are written without an fsync', () =>
  withLeader(undefined, async (h) => {
    h.transfer(1, 10);
    await wait(10);
    const accept = h.sent.find((e) => e.accept)?.accept;
    assert.ok(accept, 'the leader proposed');
    // n2 accepts: with the leader's own vote, a majority of three.
    h.deliver({ from: 2, to: 1, epoch: 1, accepted: { ballot: accept!.ballot, slots: accept!.entries!.map((e) => e.seq ?? 0) } });
    await wait(10);
    await h.host.idle();
    assert.ok(h.sent.some((e) => e.reply?.status === shardbank.Status.COMMITTED), 'the client heard committed');
    const kinds = h.log.writes.map((w) => ({ sync: w.sync, kinds: [...new Set(w.events.flatMap((e) => Object.keys(e).filter((k) => (e as Record<string, unknown>)[k] != null)))] }));
    const acceptedWrite = kinds.find((w) => w.kinds.includes('accepted'));
    const executedWrite = kinds.find((w) => w.kinds.includes('executed'));
    assert.ok(acceptedWrite?.sync, `the accepted entry was fsynced: ${JSON.stringify(kinds)}`);
    assert.is(executedWrite?.sync, false, `the commit and execution were not: ${JSON.stringify(kinds)}`);
    assert.equal(executedWrite?.kinds.sort(), ['committed', 'executed'], 'and nothing else rode along');
  }));

test('a turn of only commits and executions, with no write in flight, answers at once; its events ride with the next write', () =>
  withLeader(undefined, async (h) => {
    const kindsOf = (events: { [k: string]: unknown }[]) => new Set(events.flatMap((e) => Object.keys(e).filter((k) => e[k] != null)));
    h.transfer(1, 10);
    await wait(10);
    const accept = h.sent.find((e) => e.accept)?.accept;
    assert.ok(accept, 'the leader proposed');
    await h.host.idle();
    const writesBefore = h.log.writes.length;
    h.deliver({ from: 2, to: 1, epoch: 1, accepted: { ballot: accept!.ballot, slots: accept!.entries!.map((e) => e.seq ?? 0) } });
    // The next turn's write is stuck: whatever the commit turn recorded is not on the log yet.
    h.log.held = true;
    await wait(2);
    assert.ok(h.sent.some((e) => e.reply?.status === shardbank.Status.COMMITTED), 'the client heard committed before any write of the commit');
    assert.is(h.log.writes.length, writesBefore, 'nothing was written for the commit turn');
    h.transfer(2, 20);
    await wait(20);
    h.log.release();
    await h.host.idle();
    const next = h.log.writes.slice(writesBefore);
    assert.ok(next.length >= 1);
    const first = next[0]!;
    assert.ok(first.sync, 'the next write is the second transfer\'s accepted entry, fsynced');
    const kinds = kindsOf(first.events as { [k: string]: unknown }[]);
    assert.ok(kinds.has('accepted') && kinds.has('committed') && kinds.has('executed'), `the first transfer's commit rode along: ${[...kinds].join(', ')}`);
    const log = await h.log.readAll();
    const ix = (pred: (e: shardbank.LogEvent) => boolean) => log.findIndex(pred);
    assert.ok(ix((e) => !!e.executed) < ix((e) => !!e.accepted?.entries?.some((x) => x.command?.timestamp === 2)), 'in the order they were recorded');
  }));

test('events held for a later write reach the log on their own when no write comes', () =>
  withLeader(undefined, async (h) => {
    h.transfer(1, 10);
    await wait(10);
    const accept = h.sent.find((e) => e.accept)?.accept;
    await h.host.idle();
    h.deliver({ from: 2, to: 1, epoch: 1, accepted: { ballot: accept!.ballot, slots: accept!.entries!.map((e) => e.seq ?? 0) } });
    await wait(2);
    assert.not.ok((await h.log.readAll()).some((e) => e.executed), 'held at first');
    await wait(40);
    const w = h.log.writes.find((x) => x.events.some((e) => e.executed));
    assert.ok(w, 'written after a short wait');
    assert.is(w!.sync, false, 'without an fsync');
  }));

test.run();
