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

/** Size on the wire of the frame `encodeFrame(envelopes)` would produce. */
export function frameSize(envelopes: EnvelopeProps[]): number {
  return FRAME_HEADER_BYTES + shardbank.Frame.encode({ envelopes }).len;
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

function concat(parts: Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * Turns a stream of chunks into envelopes. Frames may be split across chunks
 * and a chunk may hold many frames. After a `FrameError` the stream position
 * is lost, so the decoder refuses any further input and the caller closes the
 * connection.
 */
export class FrameDecoder {
  /** Bytes of an incomplete frame, kept as received until the frame is whole. */
  private parts: Uint8Array[] = [];
  private partsBytes = 0;
  private failure: FrameError | null = null;
  /** Envelopes decoded so far in the current push, for `FrameError.decodedBefore`. */
  private out: EnvelopeProps[] = [];

  constructor(readonly maxFrameBytes: number) {
    if (!(maxFrameBytes >= 0)) throw new RangeError(`maxFrameBytes must be a non-negative number, got ${maxFrameBytes}`);
  }

  /** Bytes held back waiting for the rest of a frame. */
  get buffered(): number {
    return this.partsBytes;
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
      this.parts = [];
      this.partsBytes = 0;
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
    let buf = chunk;
    if (this.partsBytes > 0) {
      // Chunks of a large frame are only collected, and joined once the frame
      // is complete: joining on every chunk would copy the frame over and over.
      this.parts.push(chunk);
      this.partsBytes += chunk.length;
      if (this.partsBytes < FRAME_HEADER_BYTES) return;
      const len = this.heldLength();
      this.checkLength(len);
      if (this.partsBytes < FRAME_HEADER_BYTES + len) return;
      buf = concat(this.parts, this.partsBytes);
      this.parts = [];
      this.partsBytes = 0;
    }

    let at = 0;
    while (buf.length - at >= FRAME_HEADER_BYTES) {
      const len = readLength(buf, at);
      this.checkLength(len);
      const end = at + FRAME_HEADER_BYTES + len;
      if (end > buf.length) break;
      const envs = decodeFrame(buf.subarray(at + FRAME_HEADER_BYTES, end));
      if (this.out.length === 0) this.out = envs;
      else for (const e of envs) this.out.push(e);
      at = end;
    }
    if (at < buf.length) {
      // Copied so that a caller may reuse its chunk buffer after push returns.
      const rest = buf.slice(at);
      this.parts.push(rest);
      this.partsBytes = rest.length;
      if (rest.length >= FRAME_HEADER_BYTES) this.checkLength(readLength(rest, 0));
    }
  }

  /** The declared length of the held frame, whose header may span parts. */
  private heldLength(): number {
    const head = this.parts[0]!;
    if (head.length >= FRAME_HEADER_BYTES) return readLength(head, 0);
    const bytes = new Uint8Array(FRAME_HEADER_BYTES);
    let n = 0;
    for (const p of this.parts) {
      for (let i = 0; i < p.length && n < FRAME_HEADER_BYTES; i++) bytes[n++] = p[i]!;
      if (n === FRAME_HEADER_BYTES) break;
    }
    return readLength(bytes, 0);
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
