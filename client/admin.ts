/**
 * Talks to nodes' admin side: flush, fail, recover and the print utilities.
 * A failed node still answers admin requests (PrintBalance shows it too).
 */
import type { AdminReply, AdminRequest, EnvelopeProps, NodeId } from '../protocol/messages.js';
import type { Transport } from '../protocol/transport.js';
import { realTimers, type Timers } from './timers.js';

export class AdminError extends Error {}

export class AdminClient {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (r: AdminReply) => void; reject: (e: Error) => void; timer: unknown }>();

  constructor(
    private readonly transport: Transport,
    private readonly name: string,
    private readonly timers: Timers = realTimers,
    private readonly timeoutMs = 5000,
    /** Why the connection to a node is failing, if the transport knows: said with a timeout. */
    private readonly explain: (node: NodeId) => string | undefined = () => undefined,
  ) {
    transport.onEnvelope((env) => this.onEnvelope(env));
  }

  /** Sends one admin request to a node; rejects with AdminError on timeout or error. */
  request(node: NodeId, op: Omit<AdminRequest, 'id'>): Promise<AdminReply> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = this.timers.setTimeout(() => {
        this.waiting.delete(id);
        const why = this.explain(node);
        reject(new AdminError(`n${node} did not answer ${Object.keys(op).join(',')} within ${this.timeoutMs} ms${why ? ` (${why})` : ''}`));
      }, this.timeoutMs);
      this.waiting.set(id, { resolve, reject, timer });
      this.transport.send({ from: 0, to: node, fromClient: this.name, admin: { ...op, id } });
      this.transport.flush();
    });
  }

  private onEnvelope(env: EnvelopeProps): void {
    const reply = env.adminReply;
    if (!reply) return;
    const w = this.waiting.get(reply.id ?? 0);
    if (!w) return;
    this.waiting.delete(reply.id ?? 0);
    this.timers.clearTimeout(w.timer);
    if (reply.error) w.reject(new AdminError(`n${env.from}: ${reply.error}`));
    else w.resolve(reply);
  }
}
