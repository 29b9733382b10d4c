/**
 * A small seeded fuzzer for the parsers and decoders (DESIGN rule 5: bad
 * input is answered, never fatal).
 *
 * Every input is a valid sample bent by a few random mutations. All the
 * randomness comes from one base seed, and each iteration draws from its own
 * stream `mixSeed(seed, iteration)`, so a failure report (name, seed,
 * iteration) is enough to replay it exactly, whatever ran before it.
 *
 * Environment, for a soak away from CI:
 *   SHARDBANK_FUZZ_ITERATIONS=<k>  runs every target k times its CI count
 *                                  (default 1; e.g. 200 for a long soak);
 *   SHARDBANK_FUZZ_SEED=<n>        a different base seed (decimal or 0x hex),
 *                                  to explore new inputs or replay a report.
 *
 * A new target is one call: samples, a count, and a check that throws when
 * the target misbehaves on an input, e.g.
 *
 *   await fuzzText('scenario parser', [read('a.scn')], scaled(300), (text) => {
 *     const r = parseScenario(text);   // must not throw
 *     for (const e of r.errors) assert.ok(e.line >= 1 && e.message);
 *   }, { dictionary: tokens('(', ')', '\n', 'n99') });
 *
 * Inputs that are not bytes (envelopes, command sequences) go through
 * `fuzzCases` with a generator, a printer and optionally a shrinker.
 */
import { createRng, mixSeed, type Rng } from '../../protocol/rng.js';

const DEFAULT_SEED = 0x5eed_f022;

function envNumber(name: string): number | undefined {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return undefined;
  const n = Number(raw.trim());
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name} must be a non-negative number, got "${raw}"`);
  return n;
}

/** The multiplier that SHARDBANK_FUZZ_ITERATIONS puts on every iteration count. */
export function iterationScale(): number {
  return envNumber('SHARDBANK_FUZZ_ITERATIONS') ?? 1;
}

/** A CI iteration count, scaled for a soak. */
export function scaled(iterations: number): number {
  return Math.max(1, Math.round(iterations * iterationScale()));
}

export function baseSeed(): number {
  return (envNumber('SHARDBANK_FUZZ_SEED') ?? DEFAULT_SEED) >>> 0;
}

// ---------------------------------------------------------------- mutator

export type MutationKind = 'flip' | 'insert' | 'delete' | 'duplicate' | 'splice' | 'truncate' | 'token';

export interface MutatorOptions {
  /** Byte strings worth inserting whole (quotes, separators, huge numbers...). */
  dictionary?: Uint8Array[];
  /** Inputs never grow past this. */
  maxBytes?: number;
  /** At most this many mutations stacked on one input (at least one is applied). */
  maxMutations?: number;
}

export interface Mutated {
  bytes: Uint8Array;
  /** What was done, in order, e.g. `flip@12^0x40`, for the failure report. */
  steps: string[];
}

function concat(...parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A range [from, to) inside a buffer of `len` bytes, biased to short ones. */
function range(rng: Rng, len: number): [number, number] {
  const from = rng.int(0, Math.max(0, len - 1));
  const max = Math.max(1, len - from);
  const n = rng.next() < 0.8 ? rng.int(1, Math.min(max, 16)) : rng.int(1, max);
  return [from, Math.min(len, from + n)];
}

/** Applies one random mutation. `others` are the samples a splice may take from. */
export function mutateOnce(rng: Rng, input: Uint8Array, others: Uint8Array[], opts: MutatorOptions = {}): Mutated {
  const kinds: MutationKind[] = ['flip', 'insert', 'delete', 'duplicate', 'splice', 'truncate'];
  if (opts.dictionary && opts.dictionary.length > 0) kinds.push('token', 'token');
  const kind = kinds[rng.int(0, kinds.length - 1)]!;
  const len = input.length;
  switch (kind) {
    case 'flip': {
      if (len === 0) break;
      const at = rng.int(0, len - 1);
      const out = input.slice();
      // Half single-bit flips (near misses), half arbitrary bytes.
      const mask = rng.next() < 0.5 ? 1 << rng.int(0, 7) : rng.int(1, 255);
      out[at] = out[at]! ^ mask;
      return { bytes: out, steps: [`flip@${at}^0x${mask.toString(16)}`] };
    }
    case 'insert': {
      const at = rng.int(0, len);
      const extra = new Uint8Array(rng.int(1, 8));
      for (let i = 0; i < extra.length; i++) extra[i] = rng.int(0, 255);
      return { bytes: concat(input.subarray(0, at), extra, input.subarray(at)), steps: [`insert@${at}+${extra.length}`] };
    }
    case 'delete': {
      if (len === 0) break;
      const [from, to] = range(rng, len);
      return { bytes: concat(input.subarray(0, from), input.subarray(to)), steps: [`delete@${from}..${to}`] };
    }
    case 'duplicate': {
      if (len === 0) break;
      const [from, to] = range(rng, len);
      const at = rng.int(0, len);
      return { bytes: concat(input.subarray(0, at), input.subarray(from, to), input.subarray(at)), steps: [`duplicate ${from}..${to}@${at}`] };
    }
    case 'splice': {
      const donor = others.length > 0 ? others[rng.int(0, others.length - 1)]! : input;
      if (donor.length === 0) break;
      const [from, to] = range(rng, donor.length);
      const at = rng.int(0, len);
      // Either insert the donor's bytes or overwrite ours with them.
      const cut = rng.next() < 0.5 ? at : Math.min(len, at + (to - from));
      return { bytes: concat(input.subarray(0, at), donor.subarray(from, to), input.subarray(cut)), steps: [`splice ${from}..${to}@${at}`] };
    }
    case 'truncate': {
      const at = rng.int(0, len);
      return { bytes: input.slice(0, at), steps: [`truncate@${at}`] };
    }
    case 'token': {
      const dict = opts.dictionary!;
      const tok = dict[rng.int(0, dict.length - 1)]!;
      const at = rng.int(0, len);
      const replace = rng.next() < 0.3 ? Math.min(len, at + rng.int(1, 4)) : at;
      return { bytes: concat(input.subarray(0, at), tok, input.subarray(replace)), steps: [`token@${at} ${escapeText(decodeText(tok))}`] };
    }
  }
  // Nothing to cut from an empty input: grow it instead.
  const extra = new Uint8Array(rng.int(1, 8));
  for (let i = 0; i < extra.length; i++) extra[i] = rng.int(0, 255);
  return { bytes: concat(input, extra), steps: [`append+${extra.length}`] };
}

/** One to `maxMutations` mutations stacked on a sample. */
export function mutate(rng: Rng, input: Uint8Array, others: Uint8Array[], opts: MutatorOptions = {}): Mutated {
  const rounds = rng.int(1, Math.max(1, opts.maxMutations ?? 4));
  let bytes = input;
  const steps: string[] = [];
  for (let i = 0; i < rounds; i++) {
    const m = mutateOnce(rng, bytes, others, opts);
    bytes = m.bytes;
    steps.push(...m.steps);
    if (opts.maxBytes !== undefined && bytes.length > opts.maxBytes) bytes = bytes.slice(0, opts.maxBytes);
  }
  return { bytes, steps };
}

/** Bytes with no sample behind them at all. */
export function randomBytes(rng: Rng, maxLength: number): Uint8Array {
  const out = new Uint8Array(rng.int(0, maxLength));
  for (let i = 0; i < out.length; i++) out[i] = rng.int(0, 255);
  return out;
}

// ---------------------------------------------------------------- reports

const encoder = new TextEncoder();
/** Lenient, as `readFileSync(path, 'utf8')` is: invalid UTF-8 becomes U+FFFD. */
const decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });

export const encodeText = (text: string): Uint8Array => encoder.encode(text);
export const decodeText = (bytes: Uint8Array): string => decoder.decode(bytes);

export function toHex(bytes: Uint8Array, max = 4096): string {
  const shown = Array.from(bytes.subarray(0, max), (b) => b.toString(16).padStart(2, '0')).join('');
  return bytes.length > max ? `${shown}... (${bytes.length - max} more bytes)` : shown;
}

/** A JS string literal that shows every control and non-ASCII character. */
export function escapeText(text: string, max = 4096): string {
  const shown = text.length > max ? text.slice(0, max) : text;
  const body = shown.replace(/[\u0000-\u001f\u007f-\uffff"\\]/g, (c) => {
    if (c === '"') return '\\"';
    if (c === '\\') return '\\\\';
    if (c === '\n') return '\\n';
    if (c === '\r') return '\\r';
    if (c === '\t') return '\\t';
    return `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`;
  });
  return `"${body}"${text.length > max ? `... (${text.length - max} more chars)` : ''}`;
}

export type InputFormat = 'hex' | 'text';

export function showInput(bytes: Uint8Array, format: InputFormat): string {
  return format === 'text' ? `${escapeText(decodeText(bytes))} (${bytes.length} bytes)` : `${toHex(bytes)} (${bytes.length} bytes, hex)`;
}

/** A target misbehaved on an input; the message alone is enough to replay it. */
export class FuzzFailure extends Error {
  override readonly name = 'FuzzFailure';
  constructor(
    message: string,
    readonly seed: number,
    readonly iteration: number,
    override readonly cause: unknown,
  ) {
    super(message);
    // The target's own stack is the one worth reading.
    const inner = cause instanceof Error ? cause.stack : undefined;
    if (inner) this.stack = `${this.name}: ${message.split('\n')[0]}\n--- caused by ---\n${inner}`;
  }
}

// ---------------------------------------------------------------- driver

export interface FuzzContext {
  /** The iteration's own stream, for checks that need more random choices. */
  rng: Rng;
  iteration: number;
}

export interface CaseOptions<T> {
  /** One line (or a few) that shows a case well enough to rebuild it by hand. */
  show: (value: T) => string;
  /** Smaller cases to try when one fails, best first; the report shows the smallest that still fails. */
  shrink?: (value: T) => Iterable<T>;
  /** Checks allowed while shrinking. */
  shrinkBudget?: number;
  /** Overrides the base seed (SHARDBANK_FUZZ_SEED, or the default). */
  seed?: number;
}

function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  // uvu's assertions carry their diff apart from the message.
  const details = (err as { details?: unknown }).details;
  const diff = typeof details === 'string' ? `\n${details.replace(/\x1b\[[0-9;]*m/g, '').replace(/\n\s*$/, '')}` : '';
  return `${err.name}: ${err.message}${diff}`;
}

async function failure<T>(check: (value: T, ctx: FuzzContext) => void | Promise<void>, value: T, ctx: FuzzContext): Promise<unknown> {
  try {
    await check(value, ctx);
    return undefined;
  } catch (err) {
    return err ?? new Error('check threw a nullish value');
  }
}

/**
 * The driver under every target: `generate` builds iteration i's case from
 * its own seeded stream, `check` throws when the target misbehaves on it. On
 * the first failure it shrinks the case and throws a FuzzFailure naming the
 * target, seed, iteration, case and error. Returns the number of cases run.
 */
export async function fuzzCases<T>(
  name: string,
  iterations: number,
  generate: (rng: Rng, iteration: number) => T,
  check: (value: T, ctx: FuzzContext) => void | Promise<void>,
  opts: CaseOptions<T>,
): Promise<number> {
  const seed = (opts.seed ?? baseSeed()) >>> 0;
  for (let i = 0; i < iterations; i++) {
    const iterSeed = mixSeed(seed, i);
    const rng = createRng(iterSeed);
    const value = generate(rng, i);
    // The check's stream starts where the generator stopped, the same on every replay.
    const checkState = rng.state();
    const ctx = (): FuzzContext => ({ rng: createRng(checkState), iteration: i });
    const err = await failure(check, value, ctx());
    if (err === undefined) continue;

    let small = value;
    let smallErr: unknown;
    let budget = opts.shrinkBudget ?? 100;
    for (let progress = true; progress && budget > 0 && opts.shrink; ) {
      progress = false;
      for (const candidate of opts.shrink(small)) {
        if (budget-- <= 0) break;
        const e = await failure(check, candidate, ctx());
        if (e === undefined) continue;
        small = candidate;
        smallErr = e;
        progress = true;
        break;
      }
    }
    const lines = [
      `fuzz "${name}" failed at iteration ${i} of ${iterations} (base seed 0x${seed.toString(16)}, iteration seed 0x${iterSeed.toString(16)}; replay: SHARDBANK_FUZZ_SEED=0x${seed.toString(16)} SHARDBANK_FUZZ_ITERATIONS=${iterationScale()})`,
      `  input:  ${opts.show(value)}`,
      `  error:  ${describe(err)}`,
      ...(smallErr !== undefined ? [`  shrunk: ${opts.show(small)}`, `  error:  ${describe(smallErr)}`] : []),
    ];
    throw new FuzzFailure(lines.join('\n'), seed, i, smallErr ?? err);
  }
  return iterations;
}

export interface FuzzOptions extends MutatorOptions {
  /** How to print a failing input; text for CSV and scripts, hex for wire bytes. */
  format?: InputFormat;
  /** Share of iterations that get random bytes instead of a mutated sample. */
  randomShare?: number;
  seed?: number;
  shrinkBudget?: number;
}

interface ByteCase {
  bytes: Uint8Array;
  /** The mutations that made it, e.g. `flip@12^0x40`; empty for a sample as it is. */
  steps: string[];
}

/** The input with one chunk cut out, big chunks first. */
function* cutChunks(c: ByteCase): Iterable<ByteCase> {
  const b = c.bytes;
  for (let chunk = Math.max(1, b.length >> 1); chunk >= 1; chunk >>= 1) {
    for (let at = 0; at < b.length; at += chunk) yield { bytes: concat(b.subarray(0, at), b.subarray(at + chunk)), steps: [...c.steps, `cut ${at}..${at + chunk}`] };
  }
}

/**
 * A byte target: every sample as it is, then `iterations` mutated samples
 * (and some random bytes). Returns the number of inputs checked.
 */
export function fuzz(
  name: string,
  samples: (Uint8Array | string)[],
  iterations: number,
  check: (input: Uint8Array, ctx: FuzzContext) => void | Promise<void>,
  opts: FuzzOptions = {},
): Promise<number> {
  const format = opts.format ?? (samples.every((s) => typeof s === 'string') ? 'text' : 'hex');
  const pool = samples.map((s) => (typeof s === 'string' ? encodeText(s) : s));
  const maxRandom = Math.min(4096, Math.max(64, opts.maxBytes ?? Math.max(64, ...pool.map((s) => s.length))));
  const generate = (rng: Rng, i: number): ByteCase => {
    if (i < pool.length) return { bytes: pool[i]!, steps: [] };
    if (pool.length === 0 || rng.next() < (opts.randomShare ?? 0.1)) return { bytes: randomBytes(rng, maxRandom), steps: ['random bytes'] };
    return mutate(rng, pool[rng.int(0, pool.length - 1)]!, pool, opts);
  };
  const show = (c: ByteCase) =>
    `${showInput(c.bytes, format)}\n          made by: ${c.steps.length > 0 ? c.steps.join(', ') : 'nothing (a sample as it is)'}`;
  return fuzzCases(name, pool.length + iterations, generate, (c, ctx) => check(c.bytes, ctx), {
    show,
    shrink: cutChunks,
    shrinkBudget: opts.shrinkBudget ?? 200,
    seed: opts.seed,
  });
}

/** `fuzz` for text targets: the check gets the input decoded as a file read would decode it. */
export function fuzzText(
  name: string,
  samples: string[],
  iterations: number,
  check: (text: string, ctx: FuzzContext) => void | Promise<void>,
  opts: FuzzOptions = {},
): Promise<number> {
  return fuzz(name, samples, iterations, (bytes, ctx) => check(decodeText(bytes), ctx), { format: 'text', ...opts });
}

/** Byte strings from text, for a mutator dictionary. */
export function tokens(...texts: string[]): Uint8Array[] {
  return texts.map(encodeText);
}
