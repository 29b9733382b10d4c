/**
 * Framing on a byte stream: every frame is a 4-byte big-endian payload length
 * followed by one encoded `Frame` (many envelopes). The decoder is fed
 * whatever chunks the socket hands over and yields whole envelopes.
 */
import protobuf from 'protobufjs/minimal.js';
import { shardbank, type EnvelopeProps } from './messages.js';

/** Bytes of the length prefix in front of every frame. */
export const FRAME_HEADER_BYTES = 4;

export type FrameErrorKind = 'oversized' | 'undecodable' | 'closed';

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

/** Decodes one whole payload (the bytes after the length prefix). */
export function decodeFrame(payload: Uint8Array): EnvelopeProps[] {
  try {
    return shardbank.Frame.decode(payload).envelopes;
  } catch (err) {
    const what = err instanceof Error ? err.message : String(err);
    throw new FrameError(`undecodable frame of ${payload.length} bytes: ${what}`, 'undecodable', payload.length);
  }
}

function readLength(buf: Uint8Array, at: number): number {
  return ((buf[at]! << 24) >>> 0) + (buf[at + 1]! << 16) + (buf[at + 2]! << 8) + buf[at + 3]!;
}

/** A buffer the decoder fills completely before reading it, so it need not be zeroed. */
function allocate(n: number): Uint8Array {
  return typeof Buffer !== 'undefined' ? Buffer.allocUnsafe(n) : new Uint8Array(n);
}

/**
 * Turns a stream of chunks into envelopes. Frames may be split across chunks
 * and a chunk may hold many frames. Whole frames inside a chunk are decoded in
 * place; only a frame cut by a chunk boundary is copied, once, into a buffer
 * of its declared size. After a `FrameError` the stream position is lost, so
 * the decoder refuses any further input and the caller closes the connection.
 */
export class FrameDecoder {
  /** Bytes of a length prefix cut by a chunk boundary. */
  private readonly header = new Uint8Array(FRAME_HEADER_BYTES);
  private headerFilled = 0;
  /** The payload of a frame cut by a chunk boundary, filled as chunks arrive. */
  private payload: Uint8Array | null = null;
  private payloadFilled = 0;
  private failure: FrameError | null = null;
  /** Envelopes decoded so far in the current push, for `FrameError.decodedBefore`. */
  private out: EnvelopeProps[] = [];

  constructor(readonly maxFrameBytes: number) {
    if (!(maxFrameBytes >= 0)) throw new RangeError(`maxFrameBytes must be a non-negative number, got ${maxFrameBytes}`);
  }

  /** Bytes held back waiting for the rest of a frame. */
  get buffered(): number {
    return this.payload ? FRAME_HEADER_BYTES + this.payloadFilled : this.headerFilled;
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
      this.payload = null;
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
    if (this.payload) {
      const n = Math.min(this.payload.length - this.payloadFilled, chunk.length - at);
      this.payload.set(chunk.subarray(at, at + n), this.payloadFilled);
      this.payloadFilled += n;
      at += n;
      if (this.payloadFilled < this.payload.length) return;
      const whole = this.payload;
      this.payload = null;
      this.payloadFilled = 0;
      this.emit(decodeFrame(whole));
    }

    while (chunk.length - at >= FRAME_HEADER_BYTES) {
      const len = readLength(chunk, at);
      this.checkLength(len);
      const end = at + FRAME_HEADER_BYTES + len;
      if (end > chunk.length) {
        // Copied so that a caller may reuse its chunk buffer after push returns.
        this.startPayload(len);
        const rest = chunk.subarray(at + FRAME_HEADER_BYTES);
        this.payload!.set(rest);
        this.payloadFilled = rest.length;
        return;
      }
      this.emit(decodeFrame(chunk.subarray(at + FRAME_HEADER_BYTES, end)));
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
    this.payload = allocate(len);
    this.payloadFilled = 0;
  }

  private emit(envs: EnvelopeProps[]): void {
    if (envs.length === 0) return;
    if (this.out.length === 0) this.out = envs;
    else for (const e of envs) this.out.push(e);
  }

  private checkLength(len: number): void {
    if (len > this.maxFrameBytes) {
      throw new FrameError(
        `oversized frame: declared length ${len} bytes exceeds the limit of ${this.maxFrameBytes} bytes`,
        'oversized',
        len,
        this.maxFrameBytes,
      );
    }
  }
}
