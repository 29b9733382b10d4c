/**
 * Framing on a byte stream: every frame is a 4-byte big-endian payload length
 * followed by one encoded `Frame` (many envelopes). The decoder is fed
 * whatever chunks the socket hands over and yields whole envelopes.
 */
import protobuf from 'protobufjs/minimal.js';
import { shardbank, type EnvelopeProps } from './messages.js';

/** Bytes of the length prefix in front of every frame. */
export const FRAME_HEADER_BYTES = 4;

export type FrameErrorKind = 'oversized' | 'undecodable' | 'crowded' | 'closed';

/**
 * Bad bytes on a connection. The message says what was wrong so that the log
 * line alone is enough to understand why a connection was dropped.
 */
export class FrameError extends Error {
  override readonly name = 'FrameError';
  constructor(
    message: string,
    readonly kind: FrameErrorKind,
    /** The payload length the frame declared, when known. */
    readonly declaredBytes?: number,
    /** The limit in force, for oversized frames. */
    readonly limitBytes?: number,
  ) {
    super(message);
  }

  /**
   * Envelopes of the whole frames that came before the bad one in the same
   * push: they were well formed, so a caller may still act on them.
   */
  decodedBefore: EnvelopeProps[] = [];
}

/** One frame, length prefix included, ready to write to a socket. */
export function encodeFrame(envelopes: EnvelopeProps[]): Uint8Array {
  // Reserve the prefix inside the same writer so the payload is never copied
  // into a second buffer just to put four bytes in front of it.
  const writer = protobuf.Writer.create();
  writer.fixed32(0);
  shardbank.Frame.encode({ envelopes }, writer);
  const bytes = writer.finish();
  const payload = bytes.length - FRAME_HEADER_BYTES;
  bytes[0] = (payload >>> 24) & 0xff;
  bytes[1] = (payload >>> 16) & 0xff;
  bytes[2] = (payload >>> 8) & 0xff;
  bytes[3] = payload & 0xff;
  return bytes;
}

/** Field 1 (`envelopes`), length-delimited: the only field a Frame has. */
const ENVELOPES_TAG = (1 << 3) | 2;

/**
 * Decodes one whole payload (the bytes after the length prefix), envelope by
 * envelope, so that a frame holding more than `maxEnvelopes` is refused after
 * that many, not after decoding millions of them.
 */
export function decodeFrame(payload: Uint8Array, maxEnvelopes = Infinity): EnvelopeProps[] {
  const out: EnvelopeProps[] = [];
  try {
    const reader = protobuf.Reader.create(payload);
    while (reader.pos < reader.len) {
      const tag = reader.uint32();
      if (tag !== ENVELOPES_TAG) {
        reader.skipType(tag & 7);
        continue;
      }
      if (out.length >= maxEnvelopes) {
        throw new FrameError(`crowded frame: more than ${maxEnvelopes} envelopes in one frame`, 'crowded', payload.length, maxEnvelopes);
      }
      out.push(shardbank.Envelope.decode(reader, reader.uint32()));
    }
    return out;
  } catch (err) {
    if (err instanceof FrameError) throw err;
    const what = err instanceof Error ? err.message : String(err);
    throw new FrameError(`undecodable frame of ${payload.length} bytes: ${what}`, 'undecodable', payload.length);
  }
}

function readLength(buf: Uint8Array, at: number): number {
  return ((buf[at]! << 24) >>> 0) + (buf[at + 1]! << 16) + (buf[at + 2]! << 8) + buf[at + 3]!;
}

/**
 * Turns a stream of chunks into envelopes. Frames may be split across chunks
 * and a chunk may hold many frames. Whole frames inside a chunk are decoded in
 * place; a frame cut by a chunk boundary is kept as copies of the pieces that
 * arrived, joined once it is whole. Memory grows with the bytes that actually
 * arrive, never with the size a header announces: a peer that announces 16
 * MiB and sends 10 bytes costs 10 bytes. After a `FrameError` the stream
 * position is lost, so the decoder refuses any further input and the caller
 * closes the connection.
 */
export class FrameDecoder {
  /** Bytes of a length prefix cut by a chunk boundary. */
  private readonly header = new Uint8Array(FRAME_HEADER_BYTES);
  private headerFilled = 0;
  /** The declared payload length of a frame cut by a chunk boundary, or -1 when none is open. */
  private payloadLength = -1;
  /** The pieces of that payload received so far. */
  private parts: Uint8Array[] = [];
  private payloadFilled = 0;
  private failure: FrameError | null = null;
  private framesStarted = 0;
  /** Envelopes decoded so far in the current push, for `FrameError.decodedBefore`. */
  private out: EnvelopeProps[] = [];

  /**
   * @param maxFrameBytes largest payload accepted; a transport lowers or
   *   raises it once it knows who is on the other end (`limit`).
   * @param maxEnvelopes most envelopes in one frame.
   * @param firstFrameBytes a lower limit for the first frame only: what a
   *   connection may send before it has said who it is.
   */
  constructor(
    public maxFrameBytes: number,
    public maxEnvelopes = Infinity,
    private readonly firstFrameBytes?: number,
  ) {
    if (!(maxFrameBytes >= 0)) throw new RangeError(`maxFrameBytes must be a non-negative number, got ${maxFrameBytes}`);
  }

  /** Changes the limits for the frames that start from now on. */
  limit(maxFrameBytes: number, maxEnvelopes = this.maxEnvelopes): void {
    this.maxFrameBytes = maxFrameBytes;
    this.maxEnvelopes = maxEnvelopes;
  }

  /** Bytes held back waiting for the rest of a frame. */
  get buffered(): number {
    return this.payloadLength >= 0 ? FRAME_HEADER_BYTES + this.payloadFilled : this.headerFilled;
  }

  get failed(): boolean {
    return this.failure !== null;
  }

  push(chunk: Uint8Array): EnvelopeProps[] {
    if (this.failure) {
      throw new FrameError(`decoder unusable after an earlier error (${this.failure.message})`, 'closed');
    }
    this.out = [];
    try {
      this.consume(chunk);
      return this.out;
    } catch (err) {
      this.header.fill(0);
      this.headerFilled = 0;
      this.payloadLength = -1;
      this.parts = [];
      this.payloadFilled = 0;
      const failure =
        err instanceof FrameError
          ? err
          : new FrameError(`undecodable input: ${err instanceof Error ? err.message : String(err)}`, 'undecodable');
      failure.decodedBefore = this.out;
      this.failure = failure;
      throw failure;
    } finally {
      this.out = [];
    }
  }

  private consume(chunk: Uint8Array): void {
    let at = 0;
    if (this.headerFilled > 0) {
      const n = Math.min(FRAME_HEADER_BYTES - this.headerFilled, chunk.length);
      this.header.set(chunk.subarray(0, n), this.headerFilled);
      this.headerFilled += n;
      at = n;
      if (this.headerFilled < FRAME_HEADER_BYTES) return;
      this.headerFilled = 0;
      this.startPayload(readLength(this.header, 0));
    }
    if (this.payloadLength >= 0) {
      const n = Math.min(this.payloadLength - this.payloadFilled, chunk.length - at);
      // Copied so that a caller may reuse its chunk buffer after push returns.
      if (n > 0) this.parts.push(chunk.slice(at, at + n));
      this.payloadFilled += n;
      at += n;
      if (this.payloadFilled < this.payloadLength) return;
      const whole = this.parts.length === 1 ? this.parts[0]! : joinParts(this.parts, this.payloadLength);
      this.payloadLength = -1;
      this.parts = [];
      this.payloadFilled = 0;
      this.emit(decodeFrame(whole, this.maxEnvelopes));
    }

    while (chunk.length - at >= FRAME_HEADER_BYTES) {
      const len = readLength(chunk, at);
      this.checkLength(len);
      const end = at + FRAME_HEADER_BYTES + len;
      if (end > chunk.length) {
        this.startPayload(len);
        const rest = chunk.subarray(at + FRAME_HEADER_BYTES);
        if (rest.length > 0) this.parts.push(rest.slice());
        this.payloadFilled = rest.length;
        return;
      }
      this.emit(decodeFrame(chunk.subarray(at + FRAME_HEADER_BYTES, end), this.maxEnvelopes));
      at = end;
    }
    if (at < chunk.length) {
      this.header.set(chunk.subarray(at));
      this.headerFilled = chunk.length - at;
    }
  }

  private startPayload(len: number): void {
    this.checkLength(len);
    if (len === 0) {
      this.emit([]);
      return;
    }
    this.payloadLength = len;
    this.parts = [];
    this.payloadFilled = 0;
  }

  private emit(envs: EnvelopeProps[]): void {
    if (envs.length === 0) return;
    if (this.out.length === 0) this.out = envs;
    else for (const e of envs) this.out.push(e);
  }

  private checkLength(len: number): void {
    const first = this.framesStarted++ === 0 && this.firstFrameBytes !== undefined;
    const limit = first ? Math.min(this.firstFrameBytes!, this.maxFrameBytes) : this.maxFrameBytes;
    if (len > limit) {
      throw new FrameError(
        `oversized ${first ? 'first ' : ''}frame: declared length ${len} bytes exceeds the limit of ${limit} bytes`,
        'oversized',
        len,
        limit,
      );
    }
  }
}

function joinParts(parts: Uint8Array[], length: number): Uint8Array {
  const whole = typeof Buffer !== 'undefined' ? Buffer.allocUnsafe(length) : new Uint8Array(length);
  let at = 0;
  for (const p of parts) {
    whole.set(p, at);
    at += p.length;
  }
  return whole;
}
