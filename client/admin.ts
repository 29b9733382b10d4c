/**
 * Talks to nodes' admin side: flush, fail, recover and the print utilities.
 * A failed node still answers admin requests (PrintBalance shows it too).
 */
import { requestId, shardbank, type AdminReply, type AdminRequest, type EnvelopeProps, type NodeId } from '../protocol/messages.js';
import type { Transport } from '../protocol/transport.js';
import { realTimers, type Timers } from './timers.js';

export class AdminError extends Error {}

export class AdminClient {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (r: AdminReply) => void; reject: (e: Error) => void; timer: unknown }>();
  private inspection: ((records: shardbank.InspectRecord.$Properties[]) => void) | null = null;
  /** Moves asked for and not answered yet, by request id. */
  private readonly moves = new Map<string, { resolve: (r: shardbank.IClientReply) => void; timer: unknown }>();

  constructor(
    private readonly transport: Transport,
    /** The connection's name (its client id, for the moves it asks for). */
    readonly name: string,
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

  /** Where the inspection records a node streams to this client go (after `request(node, { inspect })`). */
  onInspection(handler: (records: shardbank.InspectRecord.$Properties[]) => void): void {
    this.inspection = handler;
  }

  /**
   * Asks `node` to move items (resharding); resolves with the move's own
   * answer (committed, aborted, or failed: `not the leader`, with the leader
   * it knows), or a failed one after `timeoutMs`.
   */
  move(node: NodeId, command: shardbank.ICommand, timeoutMs = this.timeoutMs * 4): Promise<shardbank.IClientReply> {
    const id = requestId(command);
    return new Promise((resolve, reject) => {
      const timer = this.timers.setTimeout(() => {
        this.moves.delete(id);
        resolve({ status: shardbank.Status.FAILED, reason: `n${node} did not answer the move within ${timeoutMs} ms` });
      }, timeoutMs);
      this.moves.set(id, { resolve, timer });
      this.request(node, { move: { command } }).catch((err: Error) => {
        this.timers.clearTimeout(timer);
        this.moves.delete(id);
        reject(err);
      });
    });
  }

  private onEnvelope(env: EnvelopeProps): void {
    if (env.reply) {
      const id = requestId(env.reply);
      const m = this.moves.get(id);
      if (m) {
        this.moves.delete(id);
        this.timers.clearTimeout(m.timer);
        m.resolve(env.reply);
      }
      return;
    }
    if (env.inspection) {
      this.inspection?.(env.inspection.records ?? []);
      return;
    }
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
