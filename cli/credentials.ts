/**
 * How a command secures its connections, from its flags: `--tls DIR` (a
 * directory from `shardbank init`) or `--plaintext` (loopback only, with a
 * cluster id of its own). Reads PEM files only; issuing certificates is
 * `authority.ts`, loaded only by the commands that issue.
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { clusterOfCertificate, ownPrincipal, type Role, type Security } from '../protocol/tls.js';

/** Bad usage, input or config: one line for the user, exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** Where a command's connections get their security: an authority's directory, or plaintext with a cluster id. */
export type ClusterSecurity = { mode: 'tls'; dir: string; cluster: string } | { mode: 'plaintext'; cluster: string };

export interface SecurityFlags {
  tls?: string;
  plaintext?: boolean;
  clusterId?: string;
}

function readPem(dir: string, file: string): string {
  const path = join(dir, file);
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UsageError(`${path}: ${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : (code ?? (err as Error).message)} (certificates come from shardbank init --out ${dir})`);
  }
}

/** The cluster identity of the authority in `dir` (from `ca.crt`). */
export function clusterOfAuthority(dir: string): string {
  const pem = readPem(dir, 'ca.crt');
  let cluster: string | null;
  try {
    cluster = clusterOfCertificate(pem);
  } catch (err) {
    throw new UsageError(`${join(dir, 'ca.crt')}: not a certificate (${(err as Error).message})`);
  }
  if (!cluster) throw new UsageError(`${join(dir, 'ca.crt')}: not a shardbank authority (its subject names no "O=shardbank <cluster>")`);
  return cluster;
}

/** The security a command's flags ask for; exactly one of `--tls` and `--plaintext`. */
export function securityFromFlags(flags: SecurityFlags, what: string): ClusterSecurity {
  if (flags.tls && flags.plaintext) throw new UsageError(`${what}: give --tls DIR or --plaintext, not both`);
  if (flags.tls) {
    let isDir = false;
    try {
      isDir = statSync(flags.tls).isDirectory();
    } catch {
      throw new UsageError(`--tls ${flags.tls}: no such directory (create one with shardbank init --out ${flags.tls})`);
    }
    if (!isDir) throw new UsageError(`--tls ${flags.tls}: not a directory (it is where shardbank init put the certificates)`);
    if (flags.clusterId) throw new UsageError(`${what}: --cluster-id goes with --plaintext; over TLS the authority names the cluster`);
    return { mode: 'tls', dir: flags.tls, cluster: clusterOfAuthority(flags.tls) };
  }
  if (flags.plaintext) return { mode: 'plaintext', cluster: flags.clusterId ?? 'local' };
  throw new UsageError(`${what}: give --tls DIR (certificates from shardbank init) or --plaintext (unencrypted, loopback only)`);
}

/**
 * The transport security of one identity: its certificate and key from the
 * authority's directory (which must name it in the role expected), or
 * plaintext.
 */
export function securityOf(cs: ClusterSecurity, identity: string, role: Role): Security {
  if (cs.mode === 'plaintext') return { mode: 'plaintext', cluster: cs.cluster };
  const credentials = { ca: readPem(cs.dir, 'ca.crt'), cert: readPem(cs.dir, `${identity}.crt`), key: readPem(cs.dir, `${identity}.key`) };
  let p: ReturnType<typeof ownPrincipal>;
  try {
    p = ownPrincipal(credentials);
  } catch (err) {
    throw new UsageError(`${join(cs.dir, `${identity}.crt`)}: not a certificate (${(err as Error).message})`);
  }
  if (typeof p === 'string') throw new UsageError(`${join(cs.dir, `${identity}.crt`)}: ${p}`);
  if (p.role !== role || p.name !== identity) {
    throw new UsageError(`${join(cs.dir, `${identity}.crt`)} is a ${p.role} certificate for ${p.name}, not a ${role} certificate for ${identity}`);
  }
  return { mode: 'tls', cluster: cs.cluster, credentials };
}

/** The flags a node process needs to secure itself the same way. */
export function nodeSecurityArgs(cs: ClusterSecurity): string[] {
  return cs.mode === 'tls' ? ['--tls', cs.dir] : ['--plaintext', '--cluster-id', cs.cluster];
}
