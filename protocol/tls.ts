/**
 * Who is on the other end of a connection, and how the transport knows it.
 *
 * Every certificate of a cluster's authority names a role and an identity in
 * its subject: `CN=n4, OU=peer, O=shardbank <cluster>` for a node,
 * `CN=alice, OU=client, ...` for a client, `CN=admin, OU=admin, ...` for an
 * operator. Mutual TLS proves the other end holds the key of such a
 * certificate; this file turns the certificate into a `Principal`. Plaintext
 * (an explicit choice, loopback only) believes what the hello claims.
 */
import { X509Certificate } from 'node:crypto';
import type { ConnectionOptions, PeerCertificate, TlsOptions } from 'node:tls';
import { parseNodeName } from './messages.js';

export type Role = 'peer' | 'client' | 'admin';
export const ROLES: readonly Role[] = ['peer', 'client', 'admin'];

/** An authenticated (or, in plaintext, claimed) identity with its role. */
export interface Principal {
  role: Role;
  /** `n4` for a peer; the client's or operator's name otherwise. */
  name: string;
  /** A peer's node id; 0 for clients and admins. */
  node: number;
}

/** PEM text of the authority's certificate, and of this end's certificate and key. */
export interface TlsCredentials {
  ca: string;
  cert: string;
  key: string;
}

/**
 * How a transport secures its connections. `cluster` is the cluster's
 * identity: every hello carries it, and a node refuses any other.
 */
export type Security = { mode: 'tls'; cluster: string; credentials: TlsCredentials } | { mode: 'plaintext'; cluster: string };

/** The organisation every certificate of a cluster's authority names. */
export function organisationOf(cluster: string): string {
  return `shardbank ${cluster}`;
}

/** The subject a certificate for this role and identity carries. */
export function subjectFor(role: Role, name: string, cluster: string): string {
  return `CN=${name}, OU=${role}, O=${organisationOf(cluster)}`;
}

/** Client and operator names: letters, digits and `._-`, so that `name/k` always splits back at the first slash. */
export const IDENTITY_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;

function field(subject: PeerCertificate['subject'] | undefined, key: string): string | undefined {
  const v = (subject as unknown as Record<string, string | string[] | undefined> | undefined)?.[key];
  return typeof v === 'string' ? v : undefined;
}

/**
 * The principal a certificate subject names, or why it names none: a role
 * that is not one of ours, a peer whose name is not a node, another
 * cluster's organisation.
 */
export function principalOf(subject: PeerCertificate['subject'] | undefined, cluster: string): Principal | string {
  const role = field(subject, 'OU');
  const name = field(subject, 'CN');
  const org = field(subject, 'O');
  if (org !== organisationOf(cluster)) return `certificate of another cluster (${org ?? 'no organisation'})`;
  if (!role || !(ROLES as readonly string[]).includes(role)) return `certificate names no known role (OU=${role ?? ''})`;
  if (!name) return 'certificate names no identity (CN)';
  if (role === 'peer') {
    const node = parseNodeName(name);
    if (node === null || name !== `n${node}`) return `peer certificate names "${name}", not a node like n4`;
    return { role, name, node };
  }
  if (!IDENTITY_PATTERN.test(name)) return `certificate names "${name}", not a valid ${role} name`;
  return { role: role as Role, name, node: 0 };
}

/** The cluster identity in a certificate (its organisation, `shardbank <cluster>`), or null. */
export function clusterOfCertificate(pem: string): string | null {
  const subject = new X509Certificate(pem).subject;
  const m = /^O=shardbank (.+)$/m.exec(subject);
  return m ? m[1]! : null;
}

/** The principal this end's own certificate names. */
export function ownPrincipal(credentials: TlsCredentials): Principal | string {
  const cert = new X509Certificate(credentials.cert);
  const cluster = clusterOfCertificate(credentials.cert) ?? '';
  const subject: Record<string, string> = {};
  for (const line of cert.subject.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) subject[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return principalOf(subject as unknown as PeerCertificate['subject'], cluster);
}

/** A node's listening side: its certificate, and every connection must present one of the authority's. */
export function serverOptions(c: TlsCredentials): TlsOptions {
  return { ca: c.ca, cert: c.cert, key: c.key, requestCert: true, rejectUnauthorized: true, minVersion: 'TLSv1.3' };
}

/**
 * An opener's side: its own certificate, and the node it reaches must present
 * the authority's certificate for exactly the node it meant to reach.
 */
export function clientOptions(c: TlsCredentials, cluster: string, node: number): ConnectionOptions {
  return {
    ca: c.ca,
    cert: c.cert,
    key: c.key,
    minVersion: 'TLSv1.3',
    checkServerIdentity: (_host, cert) => {
      const p = principalOf(cert.subject, cluster);
      if (typeof p === 'string') return new Error(`n${node}: ${p}`);
      if (p.role !== 'peer' || p.node !== node) return new Error(`expected n${node}, but the certificate is ${p.role} ${p.name}`);
      return undefined;
    },
  };
}

/** Whether a host is on this machine's loopback, the only place plaintext may go. */
export function isLoopback(host: string): boolean {
  const h = host.trim().toLowerCase();
  return h === 'localhost' || h === '::1' || h === '[::1]' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}
