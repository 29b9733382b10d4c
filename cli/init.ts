/**
 * `shardbank init --out DIR`: a cluster's own certificate authority and a
 * certificate for every node of the topology, for each client name and for
 * each operator, each naming its role and identity (see `authority.ts`).
 */
import { join } from 'node:path';
import { nodeName } from '../protocol/messages.js';
import { allNodes, type Topology } from '../protocol/topology.js';
import { createAuthority, type Certificate } from './authority.js';
import { EXIT_OK } from './exitCodes.js';

export interface InitOptions {
  out: string;
  client?: string[];
  admin?: string[];
  clusterId?: string;
}

/** Creates the authority and its certificates in `opts.out`, and says what it made. */
export async function initCommand(topology: Topology, opts: InitOptions): Promise<number> {
  const clients = opts.client?.map((c) => c.trim()).filter(Boolean) ?? ['client'];
  const admins = opts.admin?.map((c) => c.trim()).filter(Boolean) ?? ['admin'];
  const certificates: Certificate[] = [
    ...allNodes(topology).map((n) => ({ role: 'peer' as const, name: nodeName(n) })),
    ...clients.map((name) => ({ role: 'client' as const, name })),
    ...admins.map((name) => ({ role: 'admin' as const, name })),
  ];
  const { cluster } = await createAuthority(opts.out, { cluster: opts.clusterId, certificates });
  const say = (l: string) => process.stdout.write(`${l}\n`);
  say(`cluster ${cluster}: authority in ${join(opts.out, 'ca.crt')} (its key, ca.key, issues more: shardbank issue)`);
  say(`  nodes   : ${allNodes(topology).map(nodeName).join(', ')} (peer certificates, one per node)`);
  say(`  clients : ${clients.join(', ')}`);
  say(`  admins  : ${admins.join(', ')}`);
  say(`start a node with: shardbank node --id n1 --tls ${opts.out} --data-dir DATA [--config FILE]`);
  return EXIT_OK;
}
