/**
 * Fail-stop: a node whose actor throws, or whose log cannot be written, stops
 * taking and sending messages at once and says why. XState stops a child that
 * throws without telling anyone; a node going on without its election or its
 * executor would answer status but never lead, vote or execute again.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createActor } from 'xstate';
import type { NodeEnv } from '../actors/env.js';
import { nodeMachine } from '../actors/node.js';
import { shardbank, type EnvelopeProps, type LogEventProps } from '../protocol/messages.js';
import { createRng } from '../protocol/rng.js';
import { makeTopology } from '../protocol/topology.js';
import type { Transport } from '../protocol/transport.js';
import { NodeHost } from '../runtime/host.js';
import { ControlledLog } from './support/log.js';
import { applyEvent, emptyState } from '../store/state.js';

test('an actor that throws stops the node: the root hears of it and reports which actor, with the error', () => {
  const topology = makeTopology({});
  const state = emptyState(1);
  const fatal: { error: unknown; actor: string }[] = [];
  const env: NodeEnv = {
    self: 1,
    cluster: 1,
    members: [1, 2, 3],
    peers: [2, 3],
    majority: 2,
    topology,
    tuning: topology.tuning,
    state,
    view: { role: 'follower', leader: 0, ballot: { round: 0, node: 0 } },
    rng: createRng(1),
    leaders: new Map(),
    ackedToShare: new Map(),
    record: (ev: LogEventProps) => {
      if (ev.promised) throw new Error('promise could not be recorded');
      applyEvent(state, ev);
    },
    send: () => undefined,
    sendNow: () => undefined,
    fatal: (error, actor) => fatal.push({ error, actor }),
  };
  const node = createActor(nodeMachine, { input: { env } }).start();
  // No leader is heard: past the election timeout the election actor campaigns, and its record throws.
  for (let i = 0; i <= topology.tuning.electionTicksMax && fatal.length === 0; i++) node.send({ type: 'tick' });
  node.stop();
  assert.is(fatal.length, 1);
  assert.is(fatal[0]!.actor, 'election');
  assert.is((fatal[0]!.error as Error).message, 'promise could not be recorded');
});

test('a log write that fails stops the node: onFatal gets the error, and nothing is sent or taken afterwards', async () => {
  const topology = makeTopology({});
  const log = new ControlledLog();
  const sent: EnvelopeProps[] = [];
  let handler: (env: EnvelopeProps) => void = () => undefined;
  // As off the wire: decoded, so the body's oneof is set.
  const deliver = (env: EnvelopeProps) => handler(shardbank.Envelope.decode(shardbank.Envelope.encode(env).finish()));
  const transport: Transport = {
    send: (env) => sent.push(env),
    flush: () => undefined,
    onEnvelope: (h) => (handler = h),
    close: async () => undefined,
  };
  const failures: Error[] = [];
  const lines: string[] = [];
  const host = new NodeHost({ topology, node: 1, transport, log, testCluster: true, onFatal: (e) => failures.push(e), logger: (l) => lines.push(l) });
  await host.start();
  await host.admin({ flush: { leader: 1, set: 1, initialBalance: 10 } }, '');
  // It leads: heartbeats go out while the log works.
  await new Promise((r) => setTimeout(r, topology.tuning.tickMs * 4));
  assert.ok(sent.some((e) => e.heartbeat), 'the leader heartbeats');

  log.broken = true;
  deliver({ from: 0, fromClient: 'c', request: { command: { client: 'c', timestamp: 1, transfer: { sender: 1, receiver: 2, amount: 1 } } } });
  await new Promise((r) => setTimeout(r, topology.tuning.tickMs * 4));
  assert.is(failures.length, 1);
  assert.is(failures[0]!.message, 'disk full');
  assert.ok(lines.some((l) => l.includes('the event log write failed') && l.includes('disk full')), lines.join('\n'));

  const before = sent.length;
  deliver({ from: 0, fromClient: 'c', request: { command: { client: 'c', timestamp: 2, transfer: { sender: 3, receiver: 4, amount: 1 } } } });
  await new Promise((r) => setTimeout(r, topology.tuning.tickMs * 4));
  assert.is(sent.length, before, 'a stopped node sends nothing: no heartbeat, no reply');
  assert.is((await log.readAll()).filter((e) => e.accepted).length, 0, 'the refused turn is not in the log');
  await host.stop();
});

test.run();
