/**
 * What the simulator's clients saw: one operation per request, as Jepsen
 * records them (invoke, then ok / fail / info), with what the checkers need
 * to hold each read level to its promise: who sent it, the level, which
 * node answered and how far that node had executed.
 */
import type { Level } from '../protocol/consistency.js';
import type { NodeId } from '../protocol/messages.js';

/** One operation as a client saw it (Jepsen's invoke / ok / fail / info). */
export interface HistoryOp {
  id: number;
  /** As a CSV row writes it: `(3, 305, 2)` for a transfer, `(3, session)` for a read. */
  op: string;
  kind: 'transfer' | 'read';
  /** A transfer's sender and receiver; a read's item. */
  items: number[];
  /** The client connection that sent it: a session is one client's. */
  client: string;
  requestId: string;
  invokedAt: number;
  completedAt: number;
  /** ok: committed (or a read's value); fail: definitely not applied; info: outcome unknown. */
  type: 'ok' | 'fail' | 'info';
  status: string;
  reason?: string;
  value?: number;
  /** A read's consistency level, as asked for. */
  level?: Level;
  /** A session read the client sent as linearizable (it could not place its last write to the item, or MOVED sent it on). */
  answeredAs?: Level;
  /** A session read: the seq the replica had to have executed through (the client's last write in that cluster). */
  afterSeq?: number;
  /** A read: the node that answered, and how far it had executed when it did. */
  node?: NodeId;
  executedThrough?: number;
}

/** Whether an operation is a read answered with a value. */
export function isAnsweredRead(h: HistoryOp): h is HistoryOp & { value: number } {
  return h.kind === 'read' && h.type === 'ok' && h.value !== undefined;
}

/**
 * A read as violations name it:
 * `read #12 (3, session) by client2 after its write at seq 15, answered by n2 (executed through 13)`.
 */
export function describeRead(h: HistoryOp): string {
  const after = h.answeredAs ? ` (sent as ${h.answeredAs})` : h.afterSeq ? ` after its write at seq ${h.afterSeq}` : '';
  const where = h.node ? `, answered by n${h.node}${h.executedThrough !== undefined ? ` (executed through ${h.executedThrough})` : ''}` : '';
  return `read #${h.id} ${h.op} by ${h.client}${after}${where}`;
}
