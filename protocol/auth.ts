/**
 * Who may say what. A node's transport asks this of every envelope before
 * the node sees it: a peer speaks only as itself and only the protocol's
 * words; a client only sends requests, and only under names it owns; only an
 * operator (the admin role) sends admin commands. Pure: no I/O.
 */
import { bodyOf, type EnvelopeProps } from './messages.js';
import type { Principal } from './tls.js';

/** What nodes say to one another (a relayed client request among them). */
const PEER_BODIES: ReadonlySet<string> = new Set([
  'request',
  'prepare',
  'promise',
  'nack',
  'accept',
  'accepted',
  'commit',
  'newView',
  'heartbeat',
  'heartbeatAck',
  'catchupRequest',
  'catchupReply',
  'txPrepare',
  'txVote',
  'txDecision',
  'txAck',
  'txQuery',
]);

/** Every body an envelope may carry. */
const BODIES = ['hello', 'reply', 'admin', 'adminReply', 'inspection', ...PEER_BODIES] as const;

/** The body of a decoded envelope (its oneof), or of a plain object built by hand. */
function bodyName(env: EnvelopeProps): string | undefined {
  return bodyOf(env) ?? BODIES.find((k) => (env as Record<string, unknown>)[k] != null);
}

/**
 * The identity a client name belongs to: `alice/3` and `alice/run-7/3` are
 * alice's, as is `alice`. A client process runs many logical clients over
 * one identity; replies are routed by it.
 */
export function identityOf(client: string): string {
  const slash = client.indexOf('/');
  return slash < 0 ? client : client.slice(0, slash);
}

/** Whether an identity owns a client name (itself, or `identity/...`). */
export function owns(identity: string, client: string): boolean {
  return client === identity || (client.length > identity.length && client.startsWith(identity) && client[identity.length] === '/');
}

/**
 * Why a node refuses an envelope that arrived over an inbound connection of
 * this principal, or null when it may pass.
 */
export function refusal(p: Principal, env: EnvelopeProps): string | null {
  const body = bodyName(env);
  if (!body) return 'an envelope with no body';
  const from = env.from ?? 0;
  if (p.role === 'peer') {
    if (from !== p.node) return `${p.name} sent an envelope claiming to come from n${from}`;
    if (!PEER_BODIES.has(body)) return `a peer may not send ${body}`;
    if (body === 'request' && (env.request?.relayedBy ?? 0) !== p.node) return `${p.name} relayed a request naming n${env.request?.relayedBy ?? 0} as its relay`;
    return null;
  }
  if (from !== 0) return `${p.role} ${p.name} sent an envelope claiming to come from n${from}`;
  if (env.fromClient && !owns(p.name, env.fromClient)) return `${p.role} ${p.name} sent as "${env.fromClient}"`;
  if (p.role === 'admin') {
    if (body !== 'admin') return `the admin role sends admin requests only, not ${body}`;
    if (!env.fromClient) return 'an admin request that names no one to answer';
    // A move is answered like a request, to its command's client: one the operator owns.
    const mover = env.admin?.move?.command?.client;
    if (mover !== undefined && mover !== null && !owns(p.name, mover)) return `admin ${p.name} asked for a move as "${mover}"`;
    return null;
  }
  if (body !== 'request') return `the client role may not send ${body}`;
  if (env.request?.relayedBy) return `client ${p.name} sent a request marked as relayed`;
  const client = env.request?.command?.client ?? '';
  if (!owns(p.name, client)) return `client ${p.name} sent a request as "${client}"`;
  return null;
}

/**
 * Why an opener refuses an envelope that arrived over its connection to
 * `node`, or null: whatever comes back must come from that node, and be
 * what a node sends (replies, or the protocol's words to a peer).
 */
export function refusalFromDialed(node: number, env: EnvelopeProps): string | null {
  const body = bodyName(env);
  if (!body) return 'an envelope with no body';
  if ((env.from ?? 0) !== node) return `the connection to n${node} carried an envelope claiming to come from n${env.from ?? 0}`;
  if (body === 'reply' || body === 'adminReply' || body === 'inspection') return null;
  if (!PEER_BODIES.has(body)) return `n${node} sent ${body}`;
  if (body === 'request' && (env.request?.relayedBy ?? 0) !== node) return `n${node} relayed a request naming n${env.request?.relayedBy ?? 0} as its relay`;
  return null;
}
