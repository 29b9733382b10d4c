/**
 * How envelopes move between nodes and clients. Two implementations share
 * this interface: TCP between real processes (`tcp.ts`) and a seeded,
 * deterministic in-memory network for tests and simulation (`memory.ts`).
 */
import type { EnvelopeProps, NodeId } from './messages.js';

export type EnvelopeHandler = (env: EnvelopeProps) => void;

export interface Transport {
  /** Queues an envelope for `env.to` (a node) or `env.toClient` (a client). */
  send(env: EnvelopeProps): void;
  /** Writes out everything queued, batching many envelopes per frame. */
  flush(): void;
  /** Registers the one handler for inbound envelopes. */
  onEnvelope(handler: EnvelopeHandler): void;
  close(): Promise<void>;
}

/** Where a transport logs problems (garbled frames, lost connections). */
export type TransportLogger = (message: string) => void;

export type { NodeId };
