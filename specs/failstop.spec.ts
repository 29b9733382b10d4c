/**
 * Fail-stop: a node whose actor throws, or whose log cannot be written, stops
 * taking and sending messages at once and says why. XState stops a child that
 * throws without telling anyone; a node going on without its election or its
 * executor would answer status but never lead, vote or execute again.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createActor } from 'xstate';
import { ActorFault } from '../actors/fault.js';
import { nodeInfo } from '../actors/node-info.js';
import { nodeMachine } from '../actors/node.js';
import { shardbank, type EnvelopeProps } from '../protocol/messages.js';
import { makeTopology } from '../protocol/topology.js';
import type { Transport } from '../protocol/transport.js';
import { NodeCore } from '../runtime/core.js';
import { NodeHost } from '../runtime/host.js';
import { ControlledLog } from './support/log.js';
import { emptyState } from '../store/state.js';

test('an actor that throws stops the node: the root hears of it and reports which actor, with the error', () => {
  const topology = makeTopology({});
  // A commit point with nothing committed under it: the executor's invariant breaks on its first step.
  const state = emptyState(1);
  state.commitThrough = 3;
  const node = createActor(nodeMachine, { input: { info: nodeInfo(topology, 1), state } });
  const errors: unknown[] = [];
  node.subscribe({ error: (e) => errors.push(e) });
  node.start();
  node.send({ type: 'endOfTurn' });
  node.stop();
  assert.is(errors.length, 1);
  const fault = errors[0] as ActorFault;
  assert.instance(fault, ActorFault);
  assert.is(fault.actor, 'executor');
  assert.match(fault.message, 'seq 1 is below the commit point 3 but not committed');
});

test('an event that breaks an invariant of the fold stops the node: a chosen slot offered another value', () => {
  const topology = makeTopology({});
  const faults: Error[] = [];
  const core = new NodeCore({
    topology,
    node: 1,
    state: emptyState(1),
    clock: { now: () => 0, setTimeout: () => 0, clearTimeout: () => undefined },
    onFault: (e) => faults.push(e),
  });
  core.start();
  core.send({ type: 'flush', leader: 2, initialBalance: 10, set: 1 });
  // As off the wire: decoded, so the body's oneof is set.
  const wire = (env: EnvelopeProps) => shardbank.Envelope.decode(shardbank.Envelope.encode(env).finish());
  const transfer = (timestamp: number) => ({ client: 'c', timestamp, transfer: { sender: 1, receiver: 2, amount: 1 } });
  const b1 = { round: 1, node: 2 };
  core.send({ type: 'messages', envelopes: [wire({ from: 2, to: 1, epoch: 1, accept: { ballot: b1, entries: [{ seq: 1, phase: 0, ballot: b1, command: transfer(1) }] } })] });
  core.send({ type: 'messages', envelopes: [wire({ from: 2, to: 1, epoch: 1, commit: { ballot: b1, slots: [1] } })] });
  assert.ok(core.state.log.get(1)?.committed, 'seq 1 is chosen here');
  assert.is(faults.length, 0);
  core.take();
  // A later leader's NEW-VIEW with another transfer in the chosen slot: no correct leader sends this.
  const b2 = { round: 2, node: 3 };
  core.send({ type: 'messages', envelopes: [wire({ from: 3, to: 1, epoch: 1, newView: { ballot: b2, log: [{ seq: 1, phase: 0, ballot: b2, command: transfer(2) }] } })] });
  assert.is(faults.length, 1);
  assert.match(faults[0]!.message, 'slot 1 is chosen, yet ballot <2, n3> carries another value');
  assert.equal(core.take(), { events: [], mustSync: false, now: [], afterWrite: [] }, 'the turn that broke it outputs nothing');
  assert.is(core.state.log.get(1)?.command?.timestamp, 1, 'the chosen value stands');
  core.stop();
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
