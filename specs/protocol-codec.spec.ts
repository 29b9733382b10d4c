import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { decodeFrame, encodeFrame, FRAME_HEADER_BYTES, FrameDecoder, FrameError } from '../protocol/codec.js';
import { bodyOf, shardbank, type EnvelopeProps } from '../protocol/messages.js';
import { createRng } from '../protocol/rng.js';

const sample = (): EnvelopeProps[] => [
  { from: 0, to: 1, hello: { client: 'alice' } },
  {
    from: 0,
    to: 1,
    request: { command: { client: 'alice', timestamp: 7, transfer: { sender: 1001, receiver: 4002, amount: 3 } } },
  },
  { from: 1, toClient: 'alice', reply: { client: 'alice', timestamp: 7, status: shardbank.Status.OK, balance: 12.5, hasBalance: true, leader: 1 } },
  {
    from: 1,
    to: 2,
    accept: {
      ballot: { round: 3, node: 1 },
      entries: [
        { seq: 1, phase: shardbank.Phase.PHASE_NONE, ballot: { round: 3, node: 1 }, command: { client: 'bob', timestamp: 1, read: { item: 5 } } },
        { seq: 2, phase: shardbank.Phase.PHASE_PREPARE, ballot: { round: 3, node: 1 } },
      ],
    },
  },
  { from: 2, to: 1, accepted: { ballot: { round: 3, node: 1 }, slots: [1, 2] } },
  { from: 1, to: 3, heartbeat: { ballot: { round: 3, node: 1 }, commitThrough: 2 } },
  { from: 0, to: 4, admin: { id: 9, flush: { initialBalance: 10, leader: 4, set: 2 } } },
];

/** Plain-object view of decoded envelopes, so they compare with deep equality. */
const plain = (envs: EnvelopeProps[]) => envs.map((e) => shardbank.Envelope.toObject(e as shardbank.Envelope, { oneofs: true }));

test('a frame with many kinds of envelope round-trips', () => {
  const envs = sample();
  const bytes = encodeFrame(envs);
  const payload = bytes.length - FRAME_HEADER_BYTES;
  assert.is((bytes[0]! << 24) | (bytes[1]! << 16) | (bytes[2]! << 8) | bytes[3]!, payload);
  const out = new FrameDecoder(1 << 20).push(bytes);
  assert.is(out.length, envs.length);
  assert.equal(
    out.map((e) => bodyOf(e)),
    ['hello', 'request', 'reply', 'accept', 'accepted', 'heartbeat', 'admin'],
  );
  assert.equal(plain(out), plain(envs.map((e) => shardbank.Envelope.fromObject(e))));
  assert.is(out[1]!.request!.command!.transfer!.receiver, 4002);
  assert.is(out[2]!.reply!.balance, 12.5);
  assert.is(out[3]!.accept!.entries!.length, 2);
  assert.equal(plain(decodeFrame(bytes.subarray(FRAME_HEADER_BYTES))), plain(out));
});

test('an empty frame decodes to no envelopes', () => {
  const bytes = encodeFrame([]);
  assert.is(bytes.length, FRAME_HEADER_BYTES);
  assert.equal(new FrameDecoder(100).push(bytes), []);
});

test('a frame fed one byte at a time decodes once whole', () => {
  const bytes = encodeFrame(sample());
  const dec = new FrameDecoder(1 << 20);
  let got: EnvelopeProps[] = [];
  for (let i = 0; i < bytes.length; i++) {
    const out = dec.push(bytes.subarray(i, i + 1));
    if (i < bytes.length - 1) assert.is(out.length, 0, `nothing before the last byte (at ${i})`);
    got = got.concat(out);
  }
  assert.equal(plain(got), plain(new FrameDecoder(1 << 20).push(bytes)));
  assert.is(dec.buffered, 0);
});

test('two frames in one chunk, and a third split across chunks', () => {
  const a = encodeFrame(sample().slice(0, 2));
  const b = encodeFrame(sample().slice(2, 5));
  const c = encodeFrame(sample().slice(5));
  const all = new Uint8Array(a.length + b.length + c.length);
  all.set(a, 0);
  all.set(b, a.length);
  all.set(c, a.length + b.length);
  const cutAt = a.length + b.length + 3;
  const dec = new FrameDecoder(1 << 20);
  const first = dec.push(all.subarray(0, cutAt));
  assert.equal(first.map((e) => bodyOf(e)), ['hello', 'request', 'reply', 'accept', 'accepted']);
  const second = dec.push(all.subarray(cutAt));
  assert.equal(second.map((e) => bodyOf(e)), ['heartbeat', 'admin']);
});

test('empty frames mixed with full ones, and a large frame in many chunks', () => {
  const empty = encodeFrame([]);
  const full = encodeFrame(sample());
  const big = encodeFrame(
    Array.from({ length: 2000 }, (_, i) => ({ from: 1, to: 2, heartbeat: { ballot: { round: i, node: 1 }, commitThrough: i } })),
  );
  const stream = new Uint8Array(empty.length * 2 + full.length + big.length);
  let at = 0;
  for (const part of [empty, full, empty, big]) {
    stream.set(part, at);
    at += part.length;
  }
  const dec = new FrameDecoder(1 << 20);
  let got: EnvelopeProps[] = [];
  for (let i = 0; i < stream.length; i += 1000) got = got.concat(dec.push(stream.subarray(i, i + 1000)));
  assert.is(got.length, sample().length + 2000);
  assert.is(got[got.length - 1]!.heartbeat!.commitThrough, 1999);
  assert.is(dec.buffered, 0);
});

test('a partial frame survives the caller reusing its chunk buffer', () => {
  const bytes = encodeFrame(sample());
  const dec = new FrameDecoder(1 << 20);
  const chunk = new Uint8Array(bytes.length);
  const half = bytes.length >> 1;
  chunk.set(bytes.subarray(0, half));
  assert.equal(dec.push(chunk.subarray(0, half)), []);
  chunk.fill(0xee);
  chunk.set(bytes.subarray(half));
  assert.is(dec.push(chunk.subarray(0, bytes.length - half)).length, sample().length);
});

test('an oversized declared length is a FrameError naming size and limit', () => {
  const dec = new FrameDecoder(1000);
  const header = new Uint8Array([0x00, 0x01, 0x00, 0x00]); // 65536
  try {
    dec.push(header);
    assert.unreachable('should throw');
  } catch (err) {
    assert.instance(err, FrameError);
    const fe = err as FrameError;
    assert.is(fe.kind, 'oversized');
    assert.is(fe.declaredBytes, 65536);
    assert.ok(fe.message.includes('65536'), fe.message);
    assert.ok(fe.message.includes('1000'), fe.message);
  }
  // Unusable afterwards: the stream position is lost.
  assert.throws(() => dec.push(encodeFrame([])), (e: unknown) => e instanceof FrameError && e.kind === 'closed');
});

test('an oversized length split across chunks is caught from the header alone', () => {
  const dec = new FrameDecoder(10);
  assert.equal(dec.push(new Uint8Array([0xff, 0xff])), []);
  assert.throws(() => dec.push(new Uint8Array([0xff, 0xff])), (e: unknown) => e instanceof FrameError && e.declaredBytes === 0xffffffff);
});

test('undecodable protobuf is a FrameError carrying the decoder message', () => {
  const payload = new Uint8Array([0x0a, 0x20, 0x01]); // field 1, length 32, but one byte follows
  const framed = new Uint8Array([0, 0, 0, payload.length, ...payload]);
  try {
    new FrameDecoder(1 << 20).push(framed);
    assert.unreachable('should throw');
  } catch (err) {
    assert.instance(err, FrameError);
    assert.is((err as FrameError).kind, 'undecodable');
    assert.match((err as FrameError).message, /undecodable frame of 3 bytes: .+/);
  }
  assert.throws(() => decodeFrame(payload), (e: unknown) => e instanceof FrameError);
});

test('random and mutated input either decodes or fails with FrameError', () => {
  const rng = createRng(0xc0dec);
  const good = encodeFrame(sample());
  let errors = 0;
  let decoded = 0;
  for (let i = 0; i < 2000; i++) {
    let bytes: Uint8Array;
    if (i % 2 === 0) {
      bytes = good.slice();
      const flips = rng.int(1, 8);
      for (let f = 0; f < flips; f++) bytes[rng.int(0, bytes.length - 1)] = rng.int(0, 255);
      // Keep the length prefix believable half of the time, so the payload decoder gets exercised.
      if (rng.next() < 0.5) bytes.set(good.subarray(0, FRAME_HEADER_BYTES));
    } else {
      const n = rng.int(0, 64);
      bytes = new Uint8Array(n + FRAME_HEADER_BYTES);
      for (let k = FRAME_HEADER_BYTES; k < bytes.length; k++) bytes[k] = rng.int(0, 255);
      if (rng.next() < 0.8) bytes.set([0, 0, 0, n]);
      else for (let k = 0; k < FRAME_HEADER_BYTES; k++) bytes[k] = rng.int(0, 255);
    }
    const dec = new FrameDecoder(4096);
    try {
      // Fed in random pieces, as a socket would.
      let at = 0;
      while (at < bytes.length) {
        const end = Math.min(bytes.length, at + rng.int(1, 40));
        dec.push(bytes.subarray(at, end));
        at = end;
      }
      decoded++;
    } catch (err) {
      if (!(err instanceof FrameError)) throw new Error(`input ${i} threw ${String(err)}, not a FrameError`);
      errors++;
    }
  }
  assert.ok(errors > 0, 'some inputs are rejected');
  assert.ok(decoded > 0, 'some inputs still decode');
});

test.run();
