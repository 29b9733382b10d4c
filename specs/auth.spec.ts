/**
 * Who may say what at a node, one rule at a time (protocol/auth.ts), and
 * how a certificate's subject becomes a role and an identity (protocol/tls.ts).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { identityOf, owns, refusal, refusalFromDialed } from '../protocol/auth.js';
import type { EnvelopeProps } from '../protocol/messages.js';
import { isLoopback, principalOf, type Principal } from '../protocol/tls.js';

const peer = (node: number): Principal => ({ role: 'peer', name: `n${node}`, node });
const client = (name: string): Principal => ({ role: 'client', name, node: 0 });
const admin = (name: string): Principal => ({ role: 'admin', name, node: 0 });
const transfer = (name: string, timestamp = 1): EnvelopeProps => ({
  from: 0,
  to: 4,
  fromClient: name,
  request: { command: { client: name, timestamp, transfer: { sender: 4001, receiver: 4009, amount: 10 } } },
});

test('an identity owns its own name and name/anything, nothing else', () => {
  assert.ok(owns('alice', 'alice'));
  assert.ok(owns('alice', 'alice/3'));
  assert.ok(owns('alice', 'alice/run-7/3'));
  assert.not.ok(owns('alice', 'alicex'));
  assert.not.ok(owns('alice', 'bob/alice'));
  assert.not.ok(owns('alice', ''));
  assert.is(identityOf('alice/run-7/3'), 'alice');
});

test('a peer speaks only as itself', () => {
  const forged: EnvelopeProps = { from: 6, to: 4, accept: { ballot: { round: 9, node: 6 }, entries: [] } };
  assert.match(refusal(peer(5), forged)!, /claiming to come from n6/);
  assert.is(refusal(peer(6), forged), null);
});

test('a peer may relay a request only as the relay it is', () => {
  const relayed = (by: number): EnvelopeProps => ({ from: 5, to: 4, request: { command: { client: 'c/1', timestamp: 1 }, relayedBy: by } });
  assert.is(refusal(peer(5), relayed(5)), null);
  assert.match(refusal(peer(5), relayed(6))!, /naming n6 as its relay/);
});

test('a peer may not send admin commands', () => {
  assert.match(refusal(peer(5), { from: 5, to: 4, fromClient: 'x', admin: { id: 1, fail: {} } })!, /may not send admin/);
});

test('a client sends only requests, under names it owns', () => {
  assert.is(refusal(client('alice'), transfer('alice/3')), null);
  assert.match(refusal(client('alice'), transfer('bob/3'))!, /as "bob\/3"/);
  assert.match(refusal(client('alice'), { from: 0, to: 4, fromClient: 'alice', admin: { id: 1, flush: { initialBalance: 1_000_000 } } })!, /client role may not send admin/);
  assert.match(refusal(client('alice'), { from: 6, to: 4, commit: { slots: [] } })!, /claiming to come from n6/);
  assert.match(refusal(client('alice'), { from: 0, to: 4, commit: { slots: [] } })!, /may not send commit/);
  const relayed = transfer('alice/1');
  relayed.request!.relayedBy = 5;
  assert.match(refusal(client('alice'), relayed)!, /marked as relayed/);
});

test('only the admin role sends admin commands, and its answers come back to it', () => {
  const flush: EnvelopeProps = { from: 0, to: 4, fromClient: 'ops/1', admin: { id: 1, flush: { initialBalance: 10, leader: 4 } } };
  assert.is(refusal(admin('ops'), flush), null);
  assert.match(refusal(admin('ops'), { ...flush, fromClient: 'other' })!, /sent as "other"/);
  assert.match(refusal(admin('ops'), { ...flush, fromClient: '' })!, /names no one to answer/);
  assert.match(refusal(admin('ops'), transfer('ops/1'))!, /admin requests only/);
});

test('what comes back over a connection to n4 must come from n4', () => {
  assert.is(refusalFromDialed(4, { from: 4, toClient: 'alice', reply: { client: 'alice/1', timestamp: 1 } }), null);
  assert.match(refusalFromDialed(4, { from: 5, toClient: 'alice', reply: { client: 'alice/1', timestamp: 1 } })!, /claiming to come from n5/);
  assert.match(refusalFromDialed(4, { from: 4, to: 1, admin: { id: 1, fail: {} } })!, /n4 sent admin/);
});

test('a certificate subject names a role and an identity of this cluster, or why not', () => {
  const s = (o: Record<string, string>) => o as never;
  assert.equal(principalOf(s({ CN: 'n4', OU: 'peer', O: 'shardbank abc' }), 'abc'), peer(4));
  assert.equal(principalOf(s({ CN: 'alice', OU: 'client', O: 'shardbank abc' }), 'abc'), client('alice'));
  assert.match(principalOf(s({ CN: 'n4', OU: 'peer', O: 'shardbank other' }), 'abc') as string, /another cluster/);
  assert.match(principalOf(s({ CN: 'n4', OU: 'root', O: 'shardbank abc' }), 'abc') as string, /no known role/);
  assert.match(principalOf(s({ CN: 'alice', OU: 'peer', O: 'shardbank abc' }), 'abc') as string, /not a node/);
  assert.match(principalOf(s({ CN: 'a/b', OU: 'client', O: 'shardbank abc' }), 'abc') as string, /not a valid client name/);
});

test('plaintext is for loopback only', () => {
  for (const h of ['127.0.0.1', '127.3.2.1', 'localhost', '::1']) assert.ok(isLoopback(h), h);
  for (const h of ['0.0.0.0', '10.0.0.1', '192.168.1.2', 'example.org', '::']) assert.not.ok(isLoopback(h), h);
});

test.run();
