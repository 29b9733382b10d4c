/**
 * Answers to clients. Every reply names the leader as this node knows it, so
 * a client that asked the wrong node learns where to go next.
 */
import { shardbank, type ClientReply, type Command, type NodeId } from '../protocol/messages.js';
import { send, type SendEffect } from './effects.js';
import type { Ownership } from '../store/state.js';
import type { View } from './node-info.js';

/** The reply to a command's client, or none for a command without a client. */
export function replyTo(self: NodeId, view: View, command: Command, reply: Omit<ClientReply, 'client' | 'timestamp'>): SendEffect[] {
  const client = command.client ?? '';
  if (!client) return [];
  return [
    send({
      from: self,
      toClient: connectionOf(client),
      // (Object.assign: a spread followed by more properties takes V8's slow path.)
      reply: Object.assign({}, reply, {
        client,
        timestamp: command.timestamp ?? 0,
        leader: view.leader,
        ballot: view.ballot,
      }),
    }),
  ];
}

export function failReply(self: NodeId, view: View, command: Command, reason: string): SendEffect[] {
  return replyTo(self, view, command, { status: shardbank.Status.FAILED, reason });
}

/** The item is not this cluster's (any more): where it is, so the client goes there. */
export function movedReply(self: NodeId, view: View, command: Command, item: number, owner: Ownership): SendEffect[] {
  const reason = `item ${item} moved to c${owner.cluster} (version ${owner.version})`;
  return replyTo(self, view, command, { status: shardbank.Status.MOVED, reason, moved: { item, cluster: owner.cluster, version: owner.version } });
}

/**
 * A client process opens one connection under its name and runs many logical
 * clients `name/k` over it (one request in flight each); replies go to the
 * connection.
 */
export function connectionOf(client: string): string {
  const slash = client.indexOf('/');
  return slash < 0 ? client : client.slice(0, slash);
}
