/**
 * Bad input is answered, never fatal (DESIGN rule 5): the frame decoder, the
 * test-set CSV parser and a running node are fed random and mutated inputs.
 * Decoders and parsers must answer with their own errors and never throw
 * anything else; a node fed nonsense envelopes must neither stop nor change
 * its balances, and must still commit the next real transfer.
 *
 * The counts keep this file within a few seconds for CI; set
 * SHARDBANK_FUZZ_ITERATIONS=<multiplier> (and SHARDBANK_FUZZ_SEED to move
 * off the default inputs) for a long soak; see specs/support/fuzz.ts.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { test } from 'uvu';
import { parseScenario } from '../cli/scenario.js';
import * as assert from 'uvu/assert';
import { parseTestSets, validateSets, type ParseError, type ParseResult } from '../cli/csv.js';
import { decodeFrame, encodeFrame, FRAME_HEADER_BYTES, FrameDecoder, FrameError } from '../protocol/codec.js';
import { shardbank, type Ballot, type Command, type Entry, type EnvelopeProps, type NodeId } from '../protocol/messages.js';
import { createRng, type Rng } from '../protocol/rng.js';
import { makeTopology } from '../protocol/topology.js';
import { SimCluster } from '../runtime/sim.js';
import { escapeText, fuzz, fuzzCases, fuzzText, mutate, scaled, tokens, toHex } from './support/fuzz.js';

const { Phase, Status } = shardbank;

// ---------------------------------------------------------------- wire samples

const B = (round: number, node: number) => ({ round, node });
const transfer = (client: string, timestamp: number, sender: number, receiver: number, amount: number) => ({
  client,
  timestamp,
  transfer: { sender, receiver, amount },
});

/** One envelope of every body kind, with the fields a real run fills in. */
function wireSamples(): EnvelopeProps[] {
  const cmd = transfer('alice/3', 17, 1001, 3001, 2);
  const entry = { seq: 4, phase: Phase.PHASE_PREPARE, ballot: B(2, 1), command: cmd, committed: true, reason: 'x', runsAt: 9 };
  return [
    { from: 0, to: 1, hello: { node: 0, client: 'alice' } },
    { from: 0, to: 1, fromClient: 'alice', request: { command: transfer('alice/1', 5, 1001, 1002, 3) } },
    { from: 2, to: 1, epoch: 3, request: { command: { client: 'bob', timestamp: 2, read: { item: 7 } }, relayedBy: 2 } },
    { from: 1, toClient: 'alice', reply: { client: 'alice/1', timestamp: 5, status: Status.OK, balance: 12.5, hasBalance: true, leader: 1, ballot: B(2, 1) } },
    { from: 2, to: 1, epoch: 3, prepare: { ballot: B(3, 2), commitThrough: 4 } },
    { from: 1, to: 2, epoch: 3, promise: { ballot: B(3, 2), accepted: [entry], commitThrough: 2 } },
    { from: 3, to: 2, epoch: 3, nack: { ballot: B(1, 2), promised: B(3, 3) } },
    { from: 1, to: 2, epoch: 3, accept: { ballot: B(2, 1), entries: [entry, { seq: 5, ballot: B(2, 1) }] } },
    { from: 2, to: 1, epoch: 3, accepted: { ballot: B(2, 1), slots: [4, 5] } },
    { from: 1, to: 3, epoch: 3, commit: { ballot: B(2, 1), slots: [4] } },
    { from: 1, to: 3, epoch: 3, newView: { ballot: B(2, 1), log: [entry, { seq: 1 }] } },
    { from: 1, to: 3, epoch: 3, heartbeat: { ballot: B(2, 1), commitThrough: 5, acked: ['alice/3:17'] } },
    { from: 3, to: 1, epoch: 3, catchupRequest: { fromSeq: 3, maxEntries: 100 } },
    { from: 1, to: 3, epoch: 3, catchupReply: { ballot: B(2, 1), entries: [entry], commitThrough: 5, acked: ['alice/3:17'] } },
    { from: 0, to: 4, fromClient: 'admin', admin: { id: 9, flush: { initialBalance: 10, leader: 4, set: 2 } } },
    { from: 0, to: 4, fromClient: 'admin', admin: { id: 10, printBalance: { item: 3001 } } },
    {
      from: 4,
      toClient: 'admin',
      adminReply: {
        id: 10,
        balance: 8,
        items: [{ item: 3001, balance: 8 }],
        views: [{ view: { ballot: B(2, 1), log: [entry] }, leader: 1 }],
        status: { node: 4, leader: 4, ballot: B(1, 4), role: 'leader', commitThrough: 3, executedThrough: 3 },
      },
    },
    { from: 1, to: 4, epoch: 3, txPrepare: { txid: 'alice/3:17', command: cmd, coordinatorCluster: 1 } },
    { from: 4, to: 1, epoch: 3, txVote: { txid: 'alice/3:17', prepared: true } },
    { from: 1, to: 4, epoch: 3, txDecision: { txid: 'alice/3:17', commit: false, command: cmd, coordinatorCluster: 1, reason: 'timeout' } },
    { from: 4, to: 1, epoch: 3, txAck: { txid: 'alice/3:17' } },
    { from: 4, to: 1, epoch: 3, txQuery: { txid: 'alice/3:17', command: cmd, participantCluster: 2 } },
  ];
}

const encodeEnvelope = (e: EnvelopeProps) => shardbank.Envelope.encode(shardbank.Envelope.fromObject(e)).finish();

/** Frame payloads (no length prefix) of one to four envelopes each. */
function payloadSamples(): Uint8Array[] {
  const envs = wireSamples();
  const out: Uint8Array[] = envs.map((e) => encodeFrame([e]).subarray(FRAME_HEADER_BYTES));
  for (let i = 0; i + 3 < envs.length; i += 3) out.push(encodeFrame(envs.slice(i, i + 4)).subarray(FRAME_HEADER_BYTES));
  return out;
}

/** Streams of two to five whole frames, length prefixes included, as a socket delivers them. */
function streamSamples(): Uint8Array[] {
  const envs = wireSamples();
  const frames = envs.map((e, i) => encodeFrame(i % 5 === 0 ? [e, envs[(i + 7) % envs.length]!] : [e]));
  const out: Uint8Array[] = [];
  for (let i = 0; i < frames.length; i += 3) {
    const parts = frames.slice(i, i + 2 + (i % 4));
    const len = parts.reduce((n, p) => n + p.length, 0);
    const s = new Uint8Array(len);
    let at = 0;
    for (const p of parts) {
      s.set(p, at);
      at += p.length;
    }
    out.push(s);
  }
  out.push(encodeFrame([])); // an empty frame is legal: a length of zero
  return out;
}

/** A decoded envelope compared as the bytes it encodes to. */
const wire = (e: EnvelopeProps) => toHex(shardbank.Envelope.encode(e as shardbank.Envelope).finish());

function assertFrameError(err: unknown, kinds: string[], what: string): asserts err is FrameError {
  if (!(err instanceof FrameError)) throw new Error(`${what} threw ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}, not a FrameError`);
  assert.ok(kinds.includes(err.kind), `${what}: FrameError kind ${err.kind}, expected ${kinds.join(' or ')}`);
  assert.ok(err.message.length > 0, `${what}: FrameError without a message`);
}

/**
 * What a decoded envelope must survive: a node re-encodes what it relays and
 * answers, so anything the decoder lets through must encode again.
 */
function assertReencodes(envs: EnvelopeProps[], what: string): void {
  for (const e of envs) {
    let bytes: Uint8Array;
    try {
      bytes = shardbank.Envelope.encode(e as shardbank.Envelope).finish();
    } catch (err) {
      throw new Error(`${what}: a decoded envelope does not encode again: ${(err as Error).message}`);
    }
    assert.is(wire(shardbank.Envelope.decode(bytes)), toHex(bytes), `${what}: a decoded envelope round-trips`);
  }
}

/** Limit used by the stream fuzz: small enough that random length prefixes often exceed it. */
const MAX_FRAME = 4096;

test('decodeFrame: mutated and random payloads decode or give an undecodable FrameError', async () => {
  await fuzz('decodeFrame', payloadSamples(), scaled(3000), (payload) => {
    let envs: EnvelopeProps[];
    try {
      envs = decodeFrame(payload);
    } catch (err) {
      assertFrameError(err, ['undecodable'], 'decodeFrame');
      assert.ok(err.message.includes(`${payload.length} bytes`), 'the message gives the payload size');
      return;
    }
    assert.ok(Array.isArray(envs), 'decodeFrame returns an array');
    assertReencodes(envs, 'decodeFrame');
  });
});

test('decodeFrame: pathological payloads (deep groups, huge lengths, endless varints) are undecodable, not fatal', () => {
  const cases: [string, Uint8Array][] = [
    // Field 15, wire type 3 (start group), repeated: protobufjs skips groups recursively.
    ['100k nested unknown groups', new Uint8Array(100_000).fill(0x7b)],
    ['envelope claiming 2^32-1 bytes', Uint8Array.of(0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f)],
    ['varint that never ends', Uint8Array.of(0x08, ...new Array(64).fill(0xff))],
    ['end-group tag with no group', Uint8Array.of(0x0c)],
    ['wire type 7', Uint8Array.of(0x0f, 0x00)],
    ['field number 0', Uint8Array.of(0x00, 0x01)],
    ['envelope with a string of 2^31 bytes', Uint8Array.of(0x0a, 0x06, 0x1a, 0x80, 0x80, 0x80, 0x80, 0x08)],
  ];
  for (const [what, payload] of cases) {
    try {
      assertReencodes(decodeFrame(payload), what);
    } catch (err) {
      assertFrameError(err, ['undecodable'], what);
    }
  }
});

interface StreamOutcome {
  envelopes: string[];
  error?: string;
  buffered: number;
}

/** Feeds a stream in the given chunks; every push returns or throws a FrameError, and after one nothing else is taken. */
function feed(stream: Uint8Array, cuts: number[]): StreamOutcome {
  const dec = new FrameDecoder(MAX_FRAME);
  const envelopes: string[] = [];
  let error: string | undefined;
  let from = 0;
  for (const to of [...cuts, stream.length]) {
    const chunk = stream.slice(from, to);
    from = to;
    if (error !== undefined) {
      try {
        dec.push(chunk);
      } catch (err) {
        assertFrameError(err, ['closed'], 'push after a FrameError');
        continue;
      }
      throw new Error('a failed decoder took more input');
    }
    try {
      const out = dec.push(chunk);
      assertReencodes(out, 'FrameDecoder.push');
      envelopes.push(...out.map(wire));
    } catch (err) {
      assertFrameError(err, ['oversized', 'undecodable'], 'FrameDecoder.push');
      if (err.kind === 'oversized') assert.ok((err.declaredBytes ?? 0) > MAX_FRAME, 'an oversized frame declares more than the limit');
      assert.ok(dec.failed, 'the decoder knows it failed');
      envelopes.push(...err.decodedBefore.map(wire));
      error = err.kind;
    }
  }
  return { envelopes, error, buffered: error === undefined ? dec.buffered : -1 };
}

test('FrameDecoder: mutated streams in random chunks give the same envelopes and errors as in one piece', async () => {
  await fuzz(
    'FrameDecoder',
    streamSamples(),
    scaled(1500),
    (stream, { rng }) => {
      const whole = feed(stream, []);
      // Cut points include 1- to 3-byte chunks, which split length prefixes.
      const cuts: number[] = [];
      for (let at = 0; at < stream.length; ) {
        at += rng.next() < 0.3 ? rng.int(1, 3) : rng.int(1, Math.max(1, stream.length >> 1));
        if (at < stream.length) cuts.push(at);
      }
      const split = feed(stream, cuts);
      assert.equal(split, whole, `chunks cut at ${cuts.join(',')} change the outcome`);
    },
    { maxBytes: 2 * MAX_FRAME },
  );
});

// ---------------------------------------------------------------- CSV

const dir = new URL('../../testcases/', import.meta.url);
const csvFile = (name: string) => readFileSync(new URL(name, dir), 'utf8');

const OFFICIAL = [
  'gayathrigaddam00-CSE535-F25-Project-3-Testcases.csv',
  'huixu11-CSE535-F25-Project-3-New-Testcases.csv',
  'gayathrigaddam00-CSE535-F25-Project-3-Demo-Tests.csv',
  'stress-hot-mixed.csv',
];

/**
 * Short windows of the official files, header kept: a mutation is local, and
 * csv-parse runs once per line, so whole 2,000-line files would only slow
 * each iteration down.
 */
function csvSamples(): string[] {
  const out: string[] = [];
  for (const name of OFFICIAL) {
    const text = csvFile(name);
    const eol = text.includes('\r\n') ? '\r\n' : '\n';
    const lines = text.split(/\r?\n/);
    const [header, ...rows] = lines;
    for (let at = 0; at < Math.min(rows.length, 420); at += 37) out.push([header, ...rows.slice(at, at + 20)].join(eol));
  }
  return out;
}

const CSV_TOKENS = tokens(
  '"', '""', ',', ',,', '[', ']', '(', ')', '\r\n', '\n', '\r', '\t', ' ', "'", '-', '+', '.',
  '4294967296', '99999999999999999999999', '1e309', '-0', '0', 'NaN', 'Infinity', '0x10',
  'n', 'n0', 'n99999999999', 'F(n', 'R(', 'LF', '"[n1, n2]"', '"(1, 2, 3)"',
  '\u00e9', '\u2028', '\u{1F600}', '\u0000', '\ufeff', '\ud800', '\uff08\uff11\uff09',
);

function linesIn(text: string): number {
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  return body.split(/\r\n|\n|\r/).length;
}

function checkErrors(errors: ParseError[], lineCount: number, what: string): void {
  for (const e of errors) {
    assert.ok(Number.isInteger(e.line) && e.line >= 1 && e.line <= lineCount, `${what}: error line ${e.line} outside 1..${lineCount}: ${e.message}`);
    assert.type(e.message, 'string');
    assert.ok(e.message.trim().length > 0, `${what}: error at line ${e.line} without a message`);
    assert.type(e.raw, 'string');
  }
}

/** Everything parseTestSets and validateSets promise about any text at all. */
function checkCsv(text: string): ParseResult {
  const lineCount = linesIn(text);
  const parsed = parseTestSets(text);
  checkErrors(parsed.errors, lineCount, 'parseTestSets');
  const seen = new Set<number>();
  for (const s of parsed.sets) {
    assert.ok(Number.isSafeInteger(s.set) && s.set >= 1, `set number ${s.set}`);
    assert.not.ok(seen.has(s.set), `set ${s.set} listed twice`);
    seen.add(s.set);
    assert.ok(s.line >= 1 && s.line <= lineCount, `set ${s.set} at line ${s.line}`);
    for (const c of s.commands) {
      assert.ok(c.line >= s.line && c.line <= lineCount, `set ${s.set}: command at line ${c.line}`);
      if (c.kind === 'transfer') assert.ok(c.amount >= 1 && Number.isSafeInteger(c.amount) && c.sender !== c.receiver, `transfer ${c.text}`);
    }
  }
  for (const topo of [makeTopology(), makeTopology({ clusters: 2, nodesPerCluster: 5, items: 100 })]) {
    const v = validateSets(parsed.sets, topo);
    checkErrors(v.errors, lineCount, 'validateSets');
    const nodes = new Set(topo.nodes.map((n) => n.id));
    for (const s of v.sets) {
      for (const n of s.live) assert.ok(nodes.has(n), `validated live list keeps n${n}`);
      for (const c of s.commands) {
        if (c.kind === 'transfer') assert.ok(c.sender <= topo.items && c.receiver <= topo.items, `validated ${c.text}`);
        if (c.kind === 'read') assert.ok(c.item >= 1 && c.item <= topo.items, `validated ${c.text}`);
        if (c.kind === 'fail' || c.kind === 'recover') assert.ok(nodes.has(c.node), `validated ${c.text}`);
      }
    }
  }
  return parsed;
}

test('found by fuzzing: a set number beyond uint32 (the flush epoch on the wire) is refused', () => {
  const r = parseTestSets('99999999999999999999999,"(1, 2, 3)",[n1]\n,"(4, 5, 6)",\n4294967296,(7),\n4294967295,(8),');
  assert.equal(r.sets.map((s) => s.set), [4294967295]);
  assert.equal(r.errors.map((e) => e.line), [1, 2, 3]);
  assert.match(r.errors[0]!.message, 'too large');
});

test('parseTestSets / validateSets: mutated official files and random bytes never throw; every error has a line in the file and a message', async () => {
  await fuzzText('test-set CSV', csvSamples(), scaled(1000), (text) => void checkCsv(text), { dictionary: CSV_TOKENS, maxMutations: 6 });
});

test('parseTestSets: valid rows around a broken one still parse', async () => {
  const text = csvFile(OFFICIAL[0]!).split('\r\n').slice(0, 40).join('\r\n');
  const rows = text.split('\r\n');
  const clean = parseTestSets(text);
  assert.equal(clean.errors, []);
  const commandAt = (r: ParseResult) => new Map(r.sets.flatMap((s) => s.commands.map((c) => [c.line, c.text] as const)));
  const before = commandAt(clean);
  // Rows 2.. that belong to a set already started: a broken one must not take the set with it.
  const targets = rows.map((r, i) => i + 1).filter((line) => line > 2 && rows[line - 1]!.startsWith(','));
  await fuzzText(
    'one broken CSV row',
    rows,
    scaled(400),
    (broken, { rng }) => {
      const line = targets[rng.int(0, targets.length - 1)]!;
      // The broken row stays one physical line, so every other row keeps its number.
      const row = broken.replace(/[\r\n]/g, ' ');
      const mutated = [...rows.slice(0, line - 1), row, ...rows.slice(line)].join('\r\n');
      const r = checkCsv(mutated);
      const after = commandAt(r);
      // A row that still opens with an empty set field cannot start a set: it costs itself alone.
      // One that opens a set (or a rejected one) takes the rows below it along, as a set start does.
      const staysInSet = row.startsWith(',');
      // Otherwise it may start a set, or reject one, and the rows that follow go with that set;
      // every such error says which line it is about.
      const blamed = new Set([line]);
      for (let grew = true; grew && !staysInSet; ) {
        grew = false;
        for (const e of r.errors) {
          if (blamed.has(e.line) || ![...blamed].some((b) => new RegExp(`\\bline ${b}\\b`).test(e.message))) continue;
          blamed.add(e.line);
          grew = true;
        }
      }
      const where = `after line ${line} became ${escapeText(row)}`;
      for (const [l, cmd] of before) {
        if (l === line || after.get(l) === cmd) continue;
        assert.ok(l > line && blamed.has(l), `line ${l} ${cmd} lost ${where}: ${after.get(l) ?? 'missing'}`);
      }
      for (const e of r.errors) assert.ok(blamed.has(e.line), `error at line ${e.line} (${e.message}) ${where}`);
    },
    { dictionary: CSV_TOKENS },
  );
});

// ---------------------------------------------------------------- a running node

const ALL: NodeId[] = [1, 2, 3, 4, 5, 6, 7, 8, 9];

const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[rng.int(0, xs.length - 1)]!;

/** Numbers at the edges of uint32 and of the default topology (items 1..9000, nodes n1..n9). */
function u32(rng: Rng): number {
  return rng.next() < 0.2 ? rng.int(0, 0xffffffff) : pick(rng, [0, 1, 2, 3, 9, 10, 3000, 3001, 6000, 9000, 9001, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff, -1]);
}
function item(rng: Rng): number {
  return rng.next() < 0.5 ? rng.int(1, 9000) : u32(rng);
}
function str(rng: Rng): string {
  const r = rng.next();
  // Whole code points only: a lone surrogate encodes to bytes the wire decoder rejects, so it never reaches a node.
  if (r < 0.15) return String.fromCodePoint(...Array.from({ length: rng.int(1, 12) }, () => (rng.next() < 0.5 ? rng.int(0, 0xd7ff) : rng.int(0xe000, 0x10ffff))));
  return pick(rng, ['', ':', '::', 'x', 'zed', 'zed:1', 'zed/1:4294967295', '\u0000', '\u{1F600}', 'c:zed', '#_parent', 'zed'.repeat(2000), '.', 'a.b#c']);
}
/** A client name that no real client uses, so nothing forges a live client's identity. */
function stranger(rng: Rng): string {
  const s = str(rng);
  return /^client\//.test(s) ? `x${s}` : s;
}
/**
 * A transfer that would run if the cluster ordered it: both items in one
 * cluster, or a cross-shard pair, with an amount every item can pay.
 */
function plausible(rng: Rng, cluster = rng.int(1, 3)): Command {
  const inCluster = (c: number) => (c - 1) * 3000 + rng.int(1, 3000);
  const sender = inCluster(cluster);
  let receiver = inCluster(rng.next() < 0.6 ? cluster : rng.int(1, 3));
  if (receiver === sender) receiver = sender === (cluster - 1) * 3000 + 1 ? sender + 1 : sender - 1;
  return { client: stranger(rng), timestamp: rng.int(1, 1000), transfer: { sender, receiver, amount: rng.int(1, 10) } };
}
function command(rng: Rng, cluster?: number): Command | undefined {
  if (cluster !== undefined && rng.next() < 0.5) return plausible(rng, rng.next() < 0.8 ? cluster : undefined);
  const r = rng.next();
  if (r < 0.1) return undefined;
  if (r < 0.2) return {};
  const base: Command = { client: stranger(rng), timestamp: u32(rng) };
  if (r < 0.3) return base;
  if (r < 0.5) return { ...base, read: { item: item(rng) } };
  return { ...base, transfer: { sender: item(rng), receiver: item(rng), amount: rng.next() < 0.5 ? u32(rng) : rng.int(1, 5) } };
}
function ballot(rng: Rng, promised: Ballot, mode: 'stale' | 'any'): Ballot | undefined {
  const stale = [undefined, {}, B(0, 0), B(0, rng.int(0, 20)), B(Math.max(0, (promised.round ?? 0) - 1), rng.int(0, 20))];
  if (mode === 'stale') return pick(rng, stale);
  // Mostly above the promise: the ballots an acceptor takes.
  if (rng.next() < 0.5) return B((promised.round ?? 0) + rng.int(1, 3), rng.int(0, 20));
  return pick(rng, [
    ...stale,
    { ...promised },
    B(promised.round ?? 0, 0xffffffff),
    B(0xffffffff, 0xffffffff),
    B(u32(rng), u32(rng)),
  ]);
}
/** Mostly the next free slot, where an entry would run at once. */
function seq(rng: Rng, near: number): number {
  const r = rng.next();
  return r < 0.45 ? near : r < 0.7 ? Math.max(0, near + rng.int(-2, 3)) : u32(rng);
}
function phase(rng: Rng): number {
  return rng.next() < 0.7 ? rng.int(0, 3) : pick(rng, [4, 7, -1, 0x7fffffff]);
}
function entry(rng: Rng, near: number, b: Ballot | undefined, cluster: number): Entry {
  return {
    seq: seq(rng, near),
    phase: phase(rng),
    ballot: rng.next() < 0.7 ? b : ballot(rng, b ?? B(0, 0), 'any'),
    command: command(rng, cluster),
    committed: rng.next() < 0.5,
    reason: rng.next() < 0.8 ? '' : str(rng),
    runsAt: rng.next() < 0.7 ? 0 : seq(rng, near),
  };
}
const list = <T>(rng: Rng, max: number, f: () => T): T[] => Array.from({ length: rng.int(0, max) }, f);

type PaxosBody = 'prepare' | 'promise' | 'nack' | 'accept' | 'accepted' | 'commit' | 'newView' | 'heartbeat' | 'catchupRequest' | 'catchupReply';
const PAXOS: PaxosBody[] = ['prepare', 'promise', 'nack', 'accept', 'accepted', 'commit', 'newView', 'heartbeat', 'catchupRequest', 'catchupReply'];

/** A Paxos message body with every field drawn from the edges. */
function paxosBody(rng: Rng, kind: PaxosBody, promised: Ballot, near: number, mode: 'stale' | 'any', cluster: number): EnvelopeProps {
  const b = ballot(rng, promised, mode);
  const slots = () => list(rng, 4, () => seq(rng, near));
  const entries = () => list(rng, 4, () => entry(rng, near, b, cluster));
  switch (kind) {
    case 'prepare':
      return { prepare: { ballot: b, commitThrough: seq(rng, near) } };
    case 'promise':
      return { promise: { ballot: b, accepted: entries(), commitThrough: seq(rng, near) } };
    case 'nack':
      return { nack: { ballot: b, promised: ballot(rng, promised, mode) } };
    case 'accept':
      return { accept: { ballot: b, entries: entries() } };
    case 'accepted':
      return { accepted: { ballot: b, slots: slots() } };
    case 'commit':
      return { commit: { ballot: b, slots: slots() } };
    case 'newView':
      return { newView: { ballot: b, log: entries() } };
    case 'heartbeat':
      return { heartbeat: { ballot: b, commitThrough: seq(rng, near), acked: list(rng, 3, () => str(rng)) } };
    case 'catchupRequest':
      return { catchupRequest: { fromSeq: seq(rng, near), maxEntries: u32(rng) } };
    case 'catchupReply':
      return { catchupReply: { ballot: b, entries: entries(), commitThrough: seq(rng, near), acked: list(rng, 3, () => str(rng)) } };
  }
}

type TxBody = 'txPrepare' | 'txVote' | 'txDecision' | 'txAck' | 'txQuery';
const TX: TxBody[] = ['txPrepare', 'txVote', 'txDecision', 'txAck', 'txQuery'];

/** A 2PC body whose txid names no transaction of a real client (or mismatches its command). */
function txBody(rng: Rng, kind: TxBody, cluster: number): EnvelopeProps {
  const cmd = command(rng, cluster);
  const txid = rng.next() < 0.5 ? str(rng) : `${cmd?.client ?? ''}:${cmd?.timestamp ?? 0}`;
  const senderCluster = Math.ceil((cmd?.transfer?.sender ?? 0) / 3000);
  const claimed = rng.next() < 0.4 ? senderCluster : rng.next() < 0.6 ? rng.int(1, 3) : u32(rng);
  switch (kind) {
    case 'txPrepare':
      return { txPrepare: { txid, command: cmd, coordinatorCluster: claimed } };
    case 'txVote':
      return { txVote: { txid, prepared: rng.next() < 0.5, reason: str(rng) } };
    case 'txDecision':
      return { txDecision: { txid, commit: rng.next() < 0.5, command: cmd, coordinatorCluster: claimed, reason: str(rng) } };
    case 'txAck':
      return { txAck: { txid } };
    case 'txQuery':
      return { txQuery: { txid, command: cmd, participantCluster: claimed } };
  }
}

/** A client request the leader must refuse: no command, no operation, or a bad transfer or read. */
function badRequest(rng: Rng, cluster: number): Command | undefined {
  const client = stranger(rng);
  const timestamp = u32(rng);
  const own = (cluster - 1) * 3000 + rng.int(1, 3000);
  const other = ((cluster % 3) * 3000) + rng.int(1, 3000);
  return pick(rng, [
    undefined,
    {},
    { client, timestamp },
    { client: '', timestamp, transfer: { sender: own, receiver: own + 1 > cluster * 3000 ? own - 1 : own + 1, amount: 1 } },
    { client, timestamp, transfer: { sender: own, receiver: own, amount: 1 } },
    { client, timestamp, transfer: { sender: own, receiver: other, amount: 0 } },
    { client, timestamp, transfer: { sender: own, receiver: pick(rng, [0, 9001, 0xffffffff]), amount: 1 } },
    { client, timestamp, transfer: { sender: pick(rng, [0, 9001, 0xffffffff]), receiver: own, amount: 1 } },
    { client, timestamp, transfer: { sender: other, receiver: own, amount: 1 } },
    { client, timestamp, transfer: { sender: own, receiver: other, amount: rng.int(11, 0xffffffff) } },
    { client, timestamp, read: { item: pick(rng, [0, 9001, 0xffffffff]) } },
  ]);
}

interface Shot {
  to: NodeId;
  kind: string;
  /** Without `epoch`: the set the nodes are in when it is delivered (the flush before each case moves it on). */
  env: EnvelopeProps;
  /** Sets ahead of the current one, for traffic from another set. */
  setShift?: number;
}

/**
 * Nonsense a correct node can recognise and must shrug off: Paxos traffic
 * from a node outside its cluster (or none at all), stale or missing ballots
 * from its peers, traffic stamped with another set, 2PC messages about no
 * real transaction, requests it must refuse, bodies a node never takes, and
 * read-only admin queries with odd arguments. A lie told by a peer in good
 * standing (an ACCEPT with the current ballot) is not in here: Paxos trusts
 * its members, and no check at the boundary could tell it apart.
 *
 * Shots are aimed at a cluster just flushed: ballot <1, first node>, nothing
 * committed yet.
 */
function nonsense(rng: Rng): Shot {
  const to = pick(rng, ALL);
  const cluster = Math.ceil(to / 3);
  const members = ALL.filter((n) => Math.ceil(n / 3) === cluster);
  const strangers = [0, 10, 11, 99, 0x7fffffff, 0xffffffff, ...ALL.filter((n) => !members.includes(n))];
  const promised = B(1, members[0]!);
  const near = 1;
  const r = rng.next();
  if (r < 0.25) {
    const kind = pick(rng, [...PAXOS, 'accept', 'newView', 'catchupReply', 'prepare'] as const);
    return { to, kind: `${kind} from outside the cluster`, env: { from: pick(rng, strangers), to, ...paxosBody(rng, kind, promised, near, 'any', cluster) } };
  }
  if (r < 0.45) {
    const kind = pick(rng, PAXOS.filter((k) => k !== 'catchupReply'));
    return { to, kind: `${kind} with a stale ballot`, env: { from: pick(rng, members), to, ...paxosBody(rng, kind, promised, near, 'stale', cluster) } };
  }
  if (r < 0.52) {
    const kind = pick(rng, PAXOS);
    const body = paxosBody(rng, kind, promised, near, 'any', cluster);
    const from = pick(rng, members);
    if (rng.next() < 0.5) return { to, kind: `${kind} from the next set`, env: { from, to, ...body }, setShift: pick(rng, [1, 2, 1000]) };
    const epoch = pick(rng, [0, 0xffffffff]);
    return { to, kind: `${kind} from set ${epoch}`, env: { from, to, epoch, ...body } };
  }
  if (r < 0.77) {
    const kind = pick(rng, TX);
    // 2PC goes leader to leader: aim most of it at the leaders.
    const target = rng.next() < 0.8 ? members[0]! : to;
    const from = pick(rng, [...strangers, ...ALL]);
    return { to: target, kind: `${kind} about no transaction`, env: { from, to: target, ...txBody(rng, kind, cluster) } };
  }
  if (r < 0.88) {
    const from = rng.next() < 0.8 ? 0 : pick(rng, members);
    const relayedBy = rng.next() < 0.3 ? pick(rng, [...members, 0xffffffff]) : 0;
    return { to, kind: 'refusable request', env: { from, to, fromClient: stranger(rng), request: { command: badRequest(rng, cluster), relayedBy } } };
  }
  if (r < 0.95) {
    const from = pick(rng, [0, ...members, ...strangers]);
    const body: EnvelopeProps = pick(rng, [
      {},
      { hello: { node: u32(rng), client: str(rng) } },
      { reply: { client: str(rng), timestamp: u32(rng), status: phase(rng), balance: -1, hasBalance: true, leader: u32(rng) } },
      { adminReply: { id: u32(rng), error: str(rng), balance: 1e300 } },
    ]);
    return { to, kind: 'a body nodes never take', env: { from, to, ...body } };
  }
  const admin: shardbank.AdminRequest.$Properties = pick(rng, [
    { id: u32(rng) },
    { id: u32(rng), printBalance: { item: item(rng) } },
    { id: u32(rng), printBalance: {} },
    { id: u32(rng), printDb: {} },
    { id: u32(rng), printView: {} },
    { id: u32(rng), status: {} },
  ]);
  return { to, kind: 'read-only admin query', env: { from: pick(rng, [0, ...strangers]), to, fromClient: str(rng), admin } };
}

/** The envelope as delivered in set `set`. */
function stamped(shot: Shot, set: number): EnvelopeProps {
  return shot.env.epoch === undefined ? { ...shot.env, epoch: set + (shot.setShift ?? 0) } : shot.env;
}

/** What the node gets: the envelope as the wire decodes it (oneof getters and all). */
function onTheWire(env: EnvelopeProps): shardbank.Envelope {
  return shardbank.Envelope.decode(shardbank.Envelope.encode(shardbank.Envelope.fromObject(env)).finish());
}

function describeShot(s: Shot): string {
  const json = JSON.stringify(shardbank.Envelope.toObject(onTheWire(s.env), { oneofs: true }), (k, v) =>
    typeof v === 'string' && v.length > 80 ? `${v.slice(0, 40)}...(${v.length} chars)` : v,
  );
  const set = s.env.epoch !== undefined ? '' : s.setShift ? ` (epoch: the current set + ${s.setShift})` : ' (epoch: the current set)';
  return `to n${s.to}, ${s.kind}${set}: ${json}`;
}

type AnyRef = {
  id: string;
  getSnapshot(): { status: string; error?: unknown; children?: Record<string, AnyRef>; context?: { actors?: Map<string, AnyRef> } };
};

/** An actor's children, and the transaction actors the transactions actor keeps outside XState's children. */
function childrenOf(snap: ReturnType<AnyRef['getSnapshot']>): [string, AnyRef][] {
  const actors = snap.context?.actors instanceof Map ? [...snap.context.actors] : [];
  return [...Object.entries(snap.children ?? {}), ...actors];
}

/** Actors of a node that died of an error: XState drops a child's error on the floor unless someone listens. */
function deadActors(sim: SimCluster): string[] {
  const out: string[] = [];
  const walk = (ref: AnyRef, path: string) => {
    const snap = ref.getSnapshot();
    if (snap.status === 'error') out.push(`${path}: ${snap.error instanceof Error ? snap.error.stack : String(snap.error)}`);
    for (const [id, child] of childrenOf(snap)) walk(child, `${path}/${id}`);
  };
  for (const [n, host] of sim.hosts) walk((host as unknown as { actor: AnyRef }).actor, `n${n}`);
  return out;
}

/** 2PC actors still alive: after things settle, none should be. */
function txActors(sim: SimCluster): string[] {
  const out: string[] = [];
  for (const [n, host] of sim.hosts) {
    const root = (host as unknown as { actor: AnyRef }).actor.getSnapshot();
    const tx = root.children?.transactions?.getSnapshot();
    for (const [id] of tx ? childrenOf(tx) : []) out.push(`n${n}/${id}`);
  }
  return out;
}

/** Errors thrown outside any call we make (XState reports an unhandled actor error from a timer). */
async function catchingStrays<T>(fn: () => Promise<T>): Promise<T> {
  const strays: unknown[] = [];
  const onError = (err: unknown) => strays.push(err);
  process.on('uncaughtException', onError);
  process.on('unhandledRejection', onError);
  try {
    const out = await fn();
    await new Promise((r) => setTimeout(r, 0));
    if (strays.length > 0) throw strays[0];
    return out;
  } finally {
    process.off('uncaughtException', onError);
    process.off('unhandledRejection', onError);
  }
}

/**
 * The balances that differ from the initial one. An aborted 2PC writes its
 * before-image back, so an item can be written and still hold what it held.
 */
function effective(sim: SimCluster, n: NodeId): [number, number][] {
  const s = sim.host(n).state;
  return [...s.balances].filter(([, v]) => v !== s.initialBalance).sort((a, b) => a[0] - b[0]);
}

interface Ledger {
  balances: Map<NodeId, [number, number][]>;
}

function ledger(sim: SimCluster): Ledger {
  const balances = new Map<NodeId, [number, number][]>();
  for (const n of ALL) balances.set(n, effective(sim, n));
  return { balances };
}

function quiet(sim: SimCluster): boolean {
  return ALL.every((n) => {
    const s = sim.host(n).state;
    return s.wal.size === 0 && s.unacked.size === 0 && s.executedThrough === s.commitThrough;
  });
}

/** No WAL, lock or unacknowledged decision anywhere, all committed executed, replicas equal. */
function assertSettled(sim: SimCluster, what: string): void {
  for (const n of ALL) {
    const s = sim.host(n).state;
    assert.equal([...s.wal.keys()], [], `${what}: n${n} WAL`);
    assert.equal([...s.walLocks.keys()], [], `${what}: n${n} WAL locks`);
    assert.equal([...s.unacked.keys()], [], `${what}: n${n} unacknowledged decisions`);
    assert.is(s.executedThrough, s.commitThrough, `${what}: n${n} executed what it committed`);
  }
  for (const c of [1, 2, 3]) {
    const [a, ...rest] = [1, 2, 3].map((k) => (c - 1) * 3 + k);
    const shape = (n: NodeId) => ({ balances: effective(sim, n), executedThrough: sim.host(n).state.executedThrough });
    for (const b of rest) assert.equal(shape(b), shape(a!), `${what}: n${b} equals n${a}`);
  }
}

function assertAlive(sim: SimCluster, what: string): void {
  const dead = deadActors(sim);
  if (dead.length > 0) throw new Error(`${what}: actors died:\n${dead.join('\n')}`);
}

/** One transfer that must commit; returns the sender and receiver it moved one unit between. */
async function realTransfer(sim: SimCluster, rng: Rng, what: string): Promise<[number, number]> {
  const sender = rng.int(1, 9000);
  let receiver = rng.int(1, 9000);
  if (receiver === sender) receiver = (sender % 9000) + 1;
  const r = await sim.transfer(sender, receiver, 1);
  assert.is(r.status, 'committed', `${what}: a real transfer (${sender} -> ${receiver}, 1) afterwards: ${r.status} ${r.reason ?? ''}`);
  return [sender, receiver];
}

let shared: SimCluster | null = null;
test.after(async () => {
  await shared?.stop();
});
/** One cluster for every iteration: a flush before each gives it a clean set, as the runner does. */
async function cluster(): Promise<SimCluster> {
  shared ??= await SimCluster.start({ seed: 0xf022 });
  return shared;
}

/**
 * Delivers shots straight into the nodes a few ms apart, lets everything
 * settle, and checks that nothing changed and the cluster still commits.
 */
async function shrugsOff(sim: SimCluster, shots: Shot[], rng: Rng): Promise<void> {
  await sim.startSet();
  await sim.runFor(60);
  const before = ledger(sim);
  const what = () => `after ${shots.length} shot(s)`;
  await catchingStrays(async () => {
    for (const shot of shots) {
      try {
        const host = sim.host(shot.to);
        host.receive(onTheWire(stamped(shot, host.state.set)));
      } catch (err) {
        throw new Error(`receive threw ${what()}: ${(err as Error).stack}`);
      }
      await sim.runFor(rng.int(0, 5));
    }
    await sim.runUntil(() => quiet(sim) && txActors(sim).length === 0, 3000);
    await sim.runFor(300);
  });
  assertAlive(sim, what());
  assert.equal(txActors(sim), [], `${what()}: 2PC actors left behind`);
  assertSettled(sim, what());
  assert.equal(ledger(sim), before, `${what()}: balances changed`);
  const [s, r] = await realTransfer(sim, rng, what());
  await sim.runUntil(() => quiet(sim), 3000);
  await sim.runFor(200);
  assertAlive(sim, what());
  assertSettled(sim, `${what()}, then a real transfer`);
  for (const n of ALL) {
    const initial = sim.host(n).state.initialBalance;
    const expected = new Map(before.balances.get(n));
    for (const [item, delta] of [[s, -1], [r, 1]] as const) {
      if (Math.ceil(item / 3000) === Math.ceil(n / 3)) expected.set(item, (expected.get(item) ?? initial) + delta);
    }
    const want = [...expected].filter(([, v]) => v !== initial).sort((a, b) => a[0] - b[0]);
    assert.equal(effective(sim, n), want, `n${n} holds exactly the real transfer ${what()}`);
  }
}

const plainCmd = { client: 'zed', timestamp: 1, transfer: { sender: 10, receiver: 20, amount: 7 } };

test('found by fuzzing: Paxos traffic from outside the cluster commits nothing', async () => {
  const sim = await cluster();
  const rng = createRng(1);
  const cases: Shot[][] = [
    // A NEW-VIEW with a committed entry from a node that does not exist: n2 ran the transfer, then led with it.
    [{ to: 2, kind: 'newView from n99', env: { from: 99, to: 2, newView: { ballot: B(3, 99), log: [{ seq: 1, command: plainCmd, committed: true }] } } }],
    // A catch-up reply from another cluster's node: n2 committed it at seq 1, then never ran the real seq 1.
    [{ to: 2, kind: 'catchupReply from n5', env: { from: 5, to: 2, catchupReply: { entries: [{ seq: 1, command: plainCmd }] } } }],
    // ACCEPT then COMMIT under a ballot nobody in the cluster holds.
    [
      { to: 2, kind: 'accept from n99', env: { from: 99, to: 2, accept: { ballot: B(5, 99), entries: [{ seq: 1, ballot: B(5, 99), command: plainCmd }] } } },
      { to: 2, kind: 'commit from n99', env: { from: 99, to: 2, commit: { ballot: B(5, 99), slots: [1] } } },
    ],
    // From "node 0", which skips the set check: the same accept and commit.
    [
      { to: 3, kind: 'accept from 0', env: { from: 0, to: 3, accept: { ballot: B(5, 2), entries: [{ seq: 1, ballot: B(5, 2), command: plainCmd }] } } },
      { to: 3, kind: 'commit from 0', env: { from: 0, to: 3, commit: { ballot: B(5, 2), slots: [1] } } },
    ],
  ];
  for (const shots of cases) await shrugsOff(sim, shots, rng);
});

test('found by fuzzing: a 2PC message about a transfer it does not describe starts nothing', async () => {
  const sim = await cluster();
  const rng = createRng(2);
  const intra = { client: 'zed:1', timestamp: 747, transfer: { sender: 4618, receiver: 4620, amount: 9 } };
  const cross = { client: 'zed', timestamp: 5, transfer: { sender: 1001, receiver: 3001, amount: 2 } };
  const cases: Shot[][] = [
    // A query about an intra-shard transfer: n4 ordered a fence abort that ran as a plain abort, and its coordinator waited forever.
    [{ to: 4, kind: 'txQuery, intra-shard command', env: { from: 9, to: 4, txQuery: { txid: 'zed:1:747', command: intra, participantCluster: 3 } } }],
    // A txid that is not the command's request id: the fence ran under the command's id, not the one its actor waited for.
    [{ to: 1, kind: 'txQuery, txid not the command\'s', env: { from: 4, to: 1, txQuery: { txid: 'x', command: cross, participantCluster: 2 } } }],
    [{ to: 4, kind: 'txDecision, txid not the command\'s', env: { from: 1, to: 4, txDecision: { txid: 'x', commit: false, command: cross, coordinatorCluster: 1 } } }],
    // A prepare naming a coordinator cluster that does not exist: the participant asked it for the decision forever.
    [{ to: 4, kind: 'txPrepare, coordinator cluster 99', env: { from: 1, to: 4, txPrepare: { txid: 'zed:5', command: cross, coordinatorCluster: 99 } } }],
  ];
  for (const shots of cases) await shrugsOff(sim, shots, rng);
});

/** The shots with one left out, for the shrinker. */
function* fewerShots(shots: Shot[]): Iterable<Shot[]> {
  if (shots.length > 1) for (let i = 0; i < shots.length; i++) yield [...shots.slice(0, i), ...shots.slice(i + 1)];
}

test('a node shrugs off nonsense envelopes: nothing thrown, no balance changed, the next real transfer commits', async () => {
  const sim = await cluster();
  await fuzzCases(
    'nonsense envelopes into a node',
    scaled(40),
    (rng) => Array.from({ length: rng.int(1, 6) }, () => nonsense(rng)),
    (shots, { rng }) => shrugsOff(sim, shots, rng),
    { show: (shots) => shots.map(describeShot).join('\n          '), shrink: fewerShots },
  );
});

/** Slots beyond this are cut down in the crash hunt below: see the skipped test on huge sequence numbers. */
const SEQ_LIMIT = 1000;

function tame(env: EnvelopeProps): EnvelopeProps {
  const cut = (n: number | null | undefined) => (n && n > SEQ_LIMIT ? n % SEQ_LIMIT : n);
  const entries = (list: Entry[] | null | undefined) => list?.forEach((e) => ((e.seq = cut(e.seq)), (e.runsAt = cut(e.runsAt))));
  const slots = (list: number[] | null | undefined) => list?.forEach((k, i) => (list[i] = cut(k) ?? 0));
  entries(env.accept?.entries);
  entries(env.newView?.log);
  entries(env.promise?.accepted);
  entries(env.catchupReply?.entries);
  slots(env.accepted?.slots);
  slots(env.commit?.slots);
  return env;
}

const WIRE = wireSamples().filter((e) => !e.admin || e.admin.printBalance).map(encodeEnvelope);

/**
 * Anything a node could be handed, lies from its own peers included: wire
 * samples with their bytes mutated, and envelopes with every field drawn
 * from the edges and sent in a peer's name. Only the admin commands that
 * change state (flush, fail, recover) are left out: they are orders, not input.
 */
function anything(rng: Rng): Shot {
  const to = pick(rng, ALL);
  const cluster = Math.ceil(to / 3);
  const members = ALL.filter((n) => Math.ceil(n / 3) === cluster);
  const others = ALL.filter((n) => !members.includes(n));
  const inPlace = (env: EnvelopeProps): EnvelopeProps => {
    const body = (env as shardbank.Envelope).body ?? '';
    const from = PAXOS.includes(body as PaxosBody) ? pick(rng, members.filter((n) => n !== to)) : TX.includes(body as TxBody) ? pick(rng, others) : env.from;
    return { ...env, from, to, epoch: undefined };
  };
  if (rng.next() < 0.5) {
    for (let tries = 0; tries < 20; tries++) {
      const m = mutate(rng, pick(rng, WIRE), WIRE, { maxMutations: 3 });
      let env: shardbank.Envelope;
      try {
        env = shardbank.Envelope.decode(m.bytes);
      } catch {
        continue;
      }
      if (env.admin && (env.admin.flush || env.admin.fail || env.admin.recover)) continue;
      // Mostly in a peer's name and this set's, or the node would just drop it.
      const sent = rng.next() < 0.7 ? inPlace(env.toJSON() as EnvelopeProps) : (env.toJSON() as EnvelopeProps);
      return { to, kind: `mutated wire bytes (${m.steps.join(', ')})`, env: tame(shardbank.Envelope.fromObject(sent).toJSON() as EnvelopeProps) };
    }
  }
  const promised = B(1, members[0]!);
  const r = rng.next();
  if (r < 0.6) {
    const kind = pick(rng, PAXOS);
    return { to, kind: `${kind} in a peer's name`, env: tame(inPlace(paxosBody(rng, kind, promised, 1, 'any', cluster))) };
  }
  if (r < 0.9) {
    const kind = pick(rng, TX);
    return { to: members[0]!, kind: `${kind} in a leader's name`, env: inPlace({ ...txBody(rng, kind, cluster), to: members[0]! }) };
  }
  return { to, kind: 'any request', env: { from: 0, to, fromClient: stranger(rng), request: { command: command(rng, cluster) } } };
}

test('a node fed anything decodable, lies from its peers included, never throws or loses an actor, and a flush brings it back', async () => {
  const sim = await cluster();
  await fuzzCases(
    'anything decodable into a node',
    scaled(20),
    (rng) => Array.from({ length: rng.int(1, 8) }, () => anything(rng)),
    async (shots, { rng }) => {
      await sim.startSet();
      await sim.runFor(60);
      await catchingStrays(async () => {
        for (const shot of shots) {
          const host = sim.host(shot.to);
          host.receive(onTheWire(stamped(shot, host.state.set)));
          await sim.runFor(rng.int(0, 5));
        }
        await sim.runFor(600);
      });
      assertAlive(sim, `after ${shots.length} shot(s)`);
      // Lies from peers may have changed the set; a flush must still start a clean one.
      await sim.startSet();
      await realTransfer(sim, rng, 'after a flush');
      await sim.runUntil(() => quiet(sim), 3000);
      await sim.runFor(100);
      assertAlive(sim, 'after a flush');
      assertSettled(sim, 'after a flush');
    },
    { show: (shots) => shots.map(describeShot).join('\n          '), shrink: fewerShots },
  );
});

// Found by fuzzing, not fixed: lies in a peer's name that no check at the
// boundary can tell from the truth, and that the protocol does not bound.
// Un-skip each once the protocol bounds what it takes.

test.skip('open: an ACCEPT at a huge seq from a peer makes the next NEW-VIEW fill every gap below it', async () => {
  const sim = await SimCluster.start({ seed: 5 });
  await sim.startSet();
  await sim.runFor(60);
  // 100,000 here takes ~10 s of CPU; 2^32-1 never ends (buildNewView fills seq 1..maxSeq with no-ops).
  const seq = 100_000;
  const b = B(1, 1);
  sim.host(2).receive(onTheWire({ from: 1, to: 2, epoch: 1, accept: { ballot: b, entries: [{ seq, ballot: b }] } }));
  await sim.runFor(10);
  // A NACK in n2's name deposes n1; the next leader merges n2's log.
  sim.host(1).receive(onTheWire({ from: 2, to: 1, epoch: 1, nack: { ballot: b, promised: B(2, 2) } }));
  await sim.runFor(2000);
  const r = await sim.transfer(100, 200, 1);
  assert.is(r.status, 'committed');
  for (const n of [1, 2, 3]) assert.ok(sim.host(n).state.log.size < 10_000, `n${n} holds ${sim.host(n).state.log.size} log slots`);
});

test.skip('open: a PREPARE with ballot round 2^32-1 in a peer\'s name wedges the cluster (the next round overflows uint32)', async () => {
  const sim = await SimCluster.start({ seed: 5 });
  await sim.startSet();
  await sim.runFor(60);
  // Depose n1, then, while n2 and n3 hear no leader, offer them the last round there is.
  sim.host(1).receive(onTheWire({ from: 2, to: 1, epoch: 1, nack: { ballot: B(1, 1), promised: B(2, 2) } }));
  await sim.runFor(150);
  sim.host(2).receive(onTheWire({ from: 3, to: 2, epoch: 1, prepare: { ballot: B(0xffffffff, 9) } }));
  sim.host(3).receive(onTheWire({ from: 2, to: 3, epoch: 1, prepare: { ballot: B(0xffffffff, 9) } }));
  await sim.runFor(3000);
  // Today: n2 and n3 campaign with round 2^32 + k, which goes out as k and is refused, forever.
  const r = await sim.transfer(100, 200, 1);
  assert.is(r.status, 'committed', `${r.status} ${r.reason ?? ''}`);
  for (const n of [1, 2, 3]) assert.ok((sim.host(n).state.promised.round ?? 0) <= 0xffffffff, `n${n} promised ${JSON.stringify(sim.host(n).state.promised)}`);
});

test('found by fuzzing: a heartbeat under a stale ballot has no ACKs recorded', async () => {
  const sim = await cluster();
  await sim.startSet();
  await sim.runFor(60);
  // No ballot at all, so below n3's promise: every other field of such a heartbeat is ignored.
  const acked = Array.from({ length: 1000 }, (_, i) => `junk${i}`);
  sim.host(3).receive(onTheWire({ from: 2, to: 3, epoch: sim.host(3).state.set, heartbeat: { acked } }));
  await sim.runFor(100);
  assert.is(sim.host(3).state.earlyAcks.size, 0, 'made-up ACKs written to the log');
});

test('parseScenario: any text gets line-numbered errors or steps, never an exception, and never runs a step it rejected', async () => {
  const dir = new URL('../../testcases/scenarios/', import.meta.url);
  const samples = readdirSync(dir).filter((f) => f.endsWith('.txt')).map((f) => readFileSync(new URL(f, dir), 'utf8'));
  await fuzzText('scenario script', samples, scaled(1500), (text) => {
    const lines = text.split(/\r?\n/).length;
    const { steps, errors } = parseScenario(text);
    for (const e of errors) assert.match(e, /^line \d+: /);
    for (const e of errors) assert.ok(Number(/^line (\d+)/.exec(e)![1]) <= lines, `error line within the script: ${e}`);
    for (const s of steps) assert.ok(s.line >= 1 && s.line <= lines && s.words.length > 0);
  }, { maxMutations: 6 });
});

test.run();
