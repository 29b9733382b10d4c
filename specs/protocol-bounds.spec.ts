/**
 * The limits a node's transport keeps per connection, one rule at a time:
 * buffers grow with the bytes that arrive, frames hold a bounded number of
 * envelopes, requests in flight are bounded, connections are admitted per
 * role and identity.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Admission, type Admitted } from '../protocol/admission.js';
import { decodeFrame, encodeFrame, FRAME_HEADER_BYTES, FrameDecoder, FrameError } from '../protocol/codec.js';
import { InflightRequests } from '../protocol/inflight.js';
import type { Role } from '../protocol/tls.js';

function header(length: number): Uint8Array {
  return new Uint8Array([(length >>> 24) & 0xff, (length >>> 16) & 0xff, (length >>> 8) & 0xff, length & 0xff]);
}

test('a decoder holds only the bytes that arrived, not the size a header announces', () => {
  const dec = new FrameDecoder(16 * 1024 * 1024);
  const before = process.memoryUsage().arrayBuffers;
  const decoders = Array.from({ length: 200 }, () => new FrameDecoder(16 * 1024 * 1024));
  for (const d of decoders) {
    d.push(header(16 * 1024 * 1024 - 1));
    d.push(new Uint8Array(10));
  }
  const grown = process.memoryUsage().arrayBuffers - before;
  // 200 frames announcing 16 MiB each would be 3.2 GB; 10 bytes each is nothing.
  assert.ok(grown < 8 * 1024 * 1024, `200 announced 16 MiB frames grew buffers by ${grown} bytes`);
  assert.is(decoders[0]!.buffered, FRAME_HEADER_BYTES + 10);
  dec.push(header(3));
  assert.is(dec.buffered, FRAME_HEADER_BYTES);
});

test('a frame cut into many pieces decodes the same as whole', () => {
  const envs = Array.from({ length: 300 }, (_, i) => ({ from: 1, to: 2, heartbeat: { commitThrough: i } }));
  const bytes = encodeFrame(envs);
  const dec = new FrameDecoder(1 << 20);
  const out = [];
  for (let i = 0; i < bytes.length; i += 7) out.push(...dec.push(bytes.subarray(i, i + 7)));
  assert.equal(out.map((e) => e.heartbeat!.commitThrough ?? 0), envs.map((e) => e.heartbeat.commitThrough));
});

test('a frame with more envelopes than the limit is refused after the limit, as crowded', () => {
  const payload = new Uint8Array(2 * 2_000_000);
  // 2 million empty envelopes: tag 0x0a, length 0.
  for (let i = 0; i < payload.length; i += 2) payload[i] = 0x0a;
  const started = performance.now();
  assert.throws(
    () => decodeFrame(payload, 4096),
    (e: unknown) => e instanceof FrameError && e.kind === 'crowded' && /more than 4096 envelopes/.test(e.message),
  );
  const ms = performance.now() - started;
  assert.ok(ms < 200, `refusing took ${ms.toFixed(0)} ms`);
  assert.is(decodeFrame(payload.subarray(0, 2 * 4096), 4096).length, 4096);
});

test('a decoder refuses a crowded frame and nothing after it', () => {
  const dec = new FrameDecoder(1 << 20, 10);
  const ok = encodeFrame(Array.from({ length: 10 }, () => ({ from: 1, to: 2, heartbeat: {} })));
  const crowded = encodeFrame(Array.from({ length: 11 }, () => ({ from: 1, to: 2, heartbeat: {} })));
  assert.is(dec.push(ok).length, 10);
  assert.throws(() => dec.push(crowded), (e: unknown) => e instanceof FrameError && e.kind === 'crowded');
  assert.ok(dec.failed);
});

test('before its hello a connection may send only a small first frame', () => {
  const dec = new FrameDecoder(1 << 20, Infinity, 4096);
  assert.throws(() => dec.push(header(5000)), (e: unknown) => e instanceof FrameError && e.kind === 'oversized' && /first frame/.test(e.message));
  const ok = new FrameDecoder(1 << 20, Infinity, 4096);
  ok.push(encodeFrame([{ hello: { client: 'alice' } }]));
  // The first frame was small; later ones may be as large as the limit.
  ok.push(header(5000));
  assert.is(ok.buffered, FRAME_HEADER_BYTES);
});

test('a connection has at most max requests in flight; retries are not new ones; old ones expire', () => {
  const inflight = new InflightRequests(3, 1000);
  assert.ok(inflight.admit('a/1:1', 0));
  assert.ok(inflight.admit('a/2:1', 10));
  assert.ok(inflight.admit('a/3:1', 20));
  assert.ok(inflight.admit('a/3:1', 30), 'a retry of a waiting request');
  assert.not.ok(inflight.admit('a/4:1', 40), 'a fourth is overloaded');
  assert.is(inflight.answer('a/2:1', 50), 40);
  assert.ok(inflight.admit('a/4:1', 60), 'an answer makes room');
  assert.not.ok(inflight.admit('a/5:1', 70));
  // Never answered here (relayed, answered elsewhere): forgotten once old.
  assert.ok(inflight.admit('a/5:1', 1001));
  assert.is(inflight.size, 3);
  assert.is(inflight.answer('nobody:1', 2000), undefined);
});

interface C extends Admitted {
  label: string;
  lastActive: number;
}
const conn = (role: Role, identity: string, lastActive: number): C => ({ role, identity, lastActive, label: `${identity}@${lastActive}` });

test('past its role limit a new connection closes the idlest of its role; other roles are untouched', () => {
  const a = new Admission<C>({ perRole: { peer: 8, client: 3, admin: 1 }, perIdentity: 10 });
  const c1 = conn('client', 'm', 5);
  const c2 = conn('client', 'm', 1);
  const c3 = conn('client', 'x', 9);
  for (const c of [c1, c2, c3]) assert.equal(a.admit(c), []);
  assert.equal(a.admit(conn('admin', 'ops', 0)), []);
  const out = a.admit(conn('client', 'new', 10));
  assert.equal(out, [c2], 'the one idle the longest goes');
  assert.is(a.count('client'), 3);
  assert.is(a.count('admin'), 1);
});

test('past its identity limit a new connection closes that identity\'s oldest', () => {
  const a = new Admission<C>({ perRole: { peer: 8, client: 100, admin: 1 }, perIdentity: 2 });
  const first = conn('client', 'm', 100);
  a.admit(first);
  a.admit(conn('client', 'm', 50));
  assert.equal(a.admit(conn('client', 'm', 200)), [first]);
  assert.equal(a.admit(conn('client', 'other', 1)), [], 'another identity has its own places');
  assert.is(a.count('client'), 3);
});

test.run();
