/**
 * Answers to clients. Every reply names the leader as this node knows it, so
 * a client that asked the wrong node learns where to go next.
 */
import { shardbank, type ClientReply, type Command } from '../protocol/messages.js';
import type { NodeEnv } from './env.js';

export function replyTo(env: NodeEnv, command: Command, reply: Omit<ClientReply, 'client' | 'timestamp'>): void {
  const client = command.client ?? '';
  if (!client) return;
  env.send({
    from: env.self,
    toClient: connectionOf(client),
    // (Object.assign: a spread followed by more properties takes V8's slow path.)
    reply: Object.assign({}, reply, {
      client,
      timestamp: command.timestamp ?? 0,
      leader: env.view.leader,
      ballot: env.view.ballot,
    }),
  });
}

export function failReply(env: NodeEnv, command: Command, reason: string): void {
  replyTo(env, command, { status: shardbank.Status.FAILED, reason });
}

export { requestId } from '../protocol/messages.js';

/**
 * A client process opens one connection under its name and runs many logical
 * clients `name/k` over it (one request in flight each); replies go to the
 * connection.
 */
export function connectionOf(client: string): string {
  const slash = client.indexOf('/');
  return slash < 0 ? client : client.slice(0, slash);
}
