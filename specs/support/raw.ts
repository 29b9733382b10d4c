/**
 * A raw client for the probes: frames built straight from
 * protocol/shardbank.proto (encodeFrame), over plain TCP or TLS with
 * whatever certificate an attacker has (or none), and nothing of the real
 * client's manners.
 */
import net from 'node:net';
import tls from 'node:tls';
import { encodeFrame, FrameDecoder } from '../../protocol/codec.js';
import type { EnvelopeProps } from '../../protocol/messages.js';

export interface RawCredentials {
  ca?: string;
  cert?: string;
  key?: string;
}

export class RawConn {
  readonly got: EnvelopeProps[] = [];
  closed = false;
  readonly whenClosed: Promise<void>;
  private readonly decoder = new FrameDecoder(64 * 1024 * 1024);

  private constructor(readonly socket: net.Socket) {
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => {
      try {
        for (const e of this.decoder.push(chunk)) this.got.push(e);
      } catch {
        socket.destroy();
      }
    });
    this.whenClosed = new Promise((resolve) =>
      socket.once('close', () => {
        this.closed = true;
        resolve();
      }),
    );
  }

  /** Plain TCP to a port. */
  static tcp(port: number): Promise<RawConn> {
    const socket = net.connect({ host: '127.0.0.1', port });
    const c = new RawConn(socket);
    return new Promise((resolve, reject) => {
      socket.once('connect', () => resolve(c));
      socket.once('error', reject);
    });
  }

  /** TLS with these credentials (any may be missing); resolves once this side's handshake is done, or the connection closed. */
  static tls(port: number, creds: RawCredentials): Promise<RawConn> {
    const socket = tls.connect({ host: '127.0.0.1', port, ca: creds.ca, cert: creds.cert, key: creds.key, rejectUnauthorized: false });
    const c = new RawConn(socket);
    return new Promise((resolve) => {
      socket.once('secureConnect', () => resolve(c));
      void c.whenClosed.then(() => resolve(c));
    });
  }

  send(envs: EnvelopeProps[]): void {
    if (!this.closed) this.socket.write(encodeFrame(envs));
  }

  write(bytes: Uint8Array): void {
    if (!this.closed) this.socket.write(bytes);
  }

  /** Resolves true once closed, false if still open after `ms`. */
  async closesWithin(ms: number): Promise<boolean> {
    return Promise.race([this.whenClosed.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(this.closed), ms))]);
  }

  /** Waits until `pred` holds of what arrived (or the time is up); returns whether it held. */
  async until(pred: (got: EnvelopeProps[]) => boolean, ms: number): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (!pred(this.got)) {
      if (Date.now() > deadline) return false;
      await new Promise((r) => setTimeout(r, 20));
    }
    return true;
  }

  destroy(): void {
    this.socket.destroy();
  }
}
