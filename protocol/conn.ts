/**
 * One TCP or TLS connection as the transport keeps it: its decoder, its
 * queue of envelopes to write, who is on the other end, and the keys that
 * route to it. Shared by the transport (`tcp.ts`) and its inbound side
 * (`gate.ts`).
 */
import type net from 'node:net';
import { BoundedQueue } from './boundedQueue.js';
import { FrameDecoder } from './codec.js';
import type { InflightRequests } from './inflight.js';
import type { EnvelopeProps } from './messages.js';
import type { Principal, Role } from './tls.js';

/** What a connection may send before it is admitted: its hello, nothing large. */
export const FIRST_FRAME_BYTES = 4096;

let nextConnId = 1;

export class Conn {
  readonly id = nextConnId++;
  readonly decoder: FrameDecoder;
  readonly closed: Promise<void>;
  readonly out: BoundedQueue<EnvelopeProps>;
  /** Inbound over TLS: who the certificate says is on the other end. */
  certified: Principal | null = null;
  /** Inbound: who the connection was admitted as (after its hello). */
  principal: Principal | null = null;
  /** Outbound: the node this connection was opened to. */
  dialed = 0;
  /** Outbound: the node answered our hello as the node we meant, of our cluster. */
  answered = false;
  /** Outbound: why this connection failed, once known. */
  failedBecause: string | null = null;
  helloSeen = false;
  dead = false;
  lastActive = Date.now();
  /** Route keys (`n:4`, `client:alice`) that currently lead to this socket. */
  readonly keys = new Set<string>();
  /** Client names whose replies go here (they last sent from here). */
  readonly clients = new Set<string>();
  inflight: InflightRequests | null = null;
  /** Inbound: the deadline timer and pending count that end with the hello. */
  gate: Gate | null = null;

  constructor(
    readonly socket: net.Socket,
    readonly inbound: boolean,
    public label: string,
    maxFrameBytes: number,
    maxEnvelopes: number,
    maxQueued: number,
    onDrop: () => void,
  ) {
    this.decoder = new FrameDecoder(maxFrameBytes, maxEnvelopes, inbound ? FIRST_FRAME_BYTES : undefined);
    this.out = new BoundedQueue(maxQueued, onDrop);
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
  }

  get role(): Role {
    return this.principal?.role ?? 'client';
  }

  get identity(): string {
    return this.principal?.name ?? '';
  }
}

/** A raw inbound connection until its hello: it holds a place among the pending ones and has a hard deadline. */
export interface Gate {
  raw: net.Socket;
  timer: NodeJS.Timeout;
  conn: Conn | null;
  open: boolean;
}

export const nodeKey = (node: number) => `n:${node}`;
export const roleKey = (role: Role, name: string) => `${role}:${name}`;
export const addrKey = (s: net.Socket) => `${s.remoteAddress}:${s.remotePort}`;

/** An error in one line; TLS errors with what went wrong. */
export function describe(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as NodeJS.ErrnoException).code;
  // TLS failures say what went wrong only in their message.
  if (code && (code.startsWith('ERR_TLS') || code.startsWith('ERR_SSL') || /CERT|SIGNATURE|VERIFY/.test(code))) {
    return `${code}: ${err.message.split('\n')[0]!.replace(/^[0-9A-F]+:error:[0-9A-F]+:SSL routines:/, '').trim()}`;
  }
  return code ?? err.message;
}

