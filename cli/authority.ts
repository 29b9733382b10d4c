/**
 * A cluster's own certificate authority, as `shardbank init --out DIR`
 * creates it (and `run`, `bench` make a throwaway one for the local cluster
 * they start). ECDSA P-256 keys from the platform's WebCrypto, certificates
 * built by @peculiar/x509. The directory holds:
 *
 * - `ca.crt`, `ca.key`: the authority (keep `ca.key` away from the nodes);
 * - `n1.crt`, `n1.key`, ...: one peer certificate per node, `CN=n4, OU=peer`;
 * - `client.crt`, `client.key` and any other client names: `OU=client`;
 * - `admin.crt`, `admin.key` and any other operators: `OU=admin`.
 *
 * Every subject carries `O=shardbank <cluster>`, the cluster's identity.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { randomBytes, webcrypto } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { IDENTITY_PATTERN, subjectFor, type Role } from '../protocol/tls.js';
import { clusterOfAuthority, UsageError } from './credentials.js';

x509.cryptoProvider.set(webcrypto as unknown as Crypto);

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;

export interface Certificate {
  role: Role;
  name: string;
}

function serial(): string {
  // Positive, 16 bytes: unique per certificate without a counter to keep.
  const b = randomBytes(16);
  b[0]! &= 0x7f;
  return b.toString('hex');
}

function validity(days: number): { notBefore: Date; notAfter: Date } {
  // An hour of slack for clocks a little behind.
  return { notBefore: new Date(Date.now() - 3_600_000), notAfter: new Date(Date.now() + days * DAY_MS) };
}

async function pemKey(key: CryptoKey): Promise<string> {
  return x509.PemConverter.encode(await webcrypto.subtle.exportKey('pkcs8', key as webcrypto.CryptoKey), 'PRIVATE KEY');
}

function writePrivate(path: string, text: string): void {
  writeFileSync(path, text, { mode: 0o600 });
}

/** A new cluster identity: 12 random hex digits. */
export function newClusterId(): string {
  return randomBytes(6).toString('hex');
}

/**
 * Creates an authority in `dir` and issues the given certificates. Refuses
 * to overwrite an authority already there.
 */
export async function createAuthority(dir: string, opts: { cluster?: string; certificates: Certificate[]; days?: number }): Promise<{ cluster: string }> {
  if (existsSync(join(dir, 'ca.key'))) throw new UsageError(`${dir} already holds an authority (ca.key); choose another directory`);
  const cluster = opts.cluster ?? newClusterId();
  if (!IDENTITY_PATTERN.test(cluster)) throw new UsageError(`cluster id "${cluster}" may hold only letters, digits and ._-`);
  mkdirSync(dir, { recursive: true });
  const days = opts.days ?? 3650;
  const keys = (await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as CryptoKeyPair;
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=shardbank authority ${cluster}, O=shardbank ${cluster}`,
    ...validity(days),
    keys,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  writeFileSync(join(dir, 'ca.crt'), ca.toString('pem'));
  writePrivate(join(dir, 'ca.key'), await pemKey(keys.privateKey));
  for (const c of opts.certificates) await issue(dir, c, { ca, key: keys.privateKey, cluster, days });
  return { cluster };
}

/** Issues one more certificate from the authority in `dir` (it needs `ca.key`). */
export async function issueFrom(dir: string, cert: Certificate, days = 3650): Promise<void> {
  const cluster = clusterOfAuthority(dir);
  let keyPem: string;
  try {
    keyPem = readFileSync(join(dir, 'ca.key'), 'utf8');
  } catch {
    throw new UsageError(`${dir}/ca.key cannot be read: certificates are issued where the authority's key is`);
  }
  const ca = new x509.X509Certificate(readFileSync(join(dir, 'ca.crt'), 'utf8'));
  const key = await webcrypto.subtle.importKey('pkcs8', x509.PemConverter.decodeFirst(keyPem), ALGORITHM, false, ['sign']);
  await issue(dir, cert, { ca, key: key as unknown as CryptoKey, cluster, days });
}

async function issue(dir: string, c: Certificate, by: { ca: x509.X509Certificate; key: CryptoKey; cluster: string; days: number }): Promise<void> {
  if (!IDENTITY_PATTERN.test(c.name)) throw new UsageError(`"${c.name}" is not a valid ${c.role} name (letters, digits and ._- only)`);
  if (c.role === 'peer' && !/^n[1-9]\d*$/.test(c.name)) throw new UsageError(`"${c.name}" is not a node name like n4 (a peer certificate names a node)`);
  const keys = (await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: subjectFor(c.role, c.name, by.cluster),
    issuer: by.ca.subject,
    ...validity(by.days),
    signingKey: by.key,
    publicKey: keys.publicKey,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      // Nodes both accept and open connections; clients only open them.
      new x509.ExtendedKeyUsageExtension(c.role === 'peer' ? [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth] : [x509.ExtendedKeyUsage.clientAuth]),
      await x509.AuthorityKeyIdentifierExtension.create(by.ca),
    ],
  });
  writeFileSync(join(dir, `${c.name}.crt`), cert.toString('pem'));
  writePrivate(join(dir, `${c.name}.key`), await pemKey(keys.privateKey));
}
