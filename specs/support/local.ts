/**
 * The end of a spec that ran a LocalCluster: the client gives up what it
 * still waits for, the node processes stop (by their pids), the connections
 * close, and the data directory goes (unless SHARDBANK_KEEP is set, to read
 * the nodes' logs after a failure).
 */
import { rmSync } from 'node:fs';
import type { BankClient } from '../../client/client.js';
import type { LocalCluster } from '../../cli/cluster.js';

export async function stopLocalCluster(parts: { client: Pick<BankClient, 'abandonAll'>; cluster: LocalCluster; transports: { close(): Promise<void> }[]; dataDir: string }): Promise<void> {
  parts.client.abandonAll();
  await parts.cluster.stop();
  for (const t of parts.transports) await t.close();
  if (process.env.SHARDBANK_KEEP) process.stderr.write(`kept ${parts.dataDir}\n`);
  else rmSync(parts.dataDir, { recursive: true, force: true });
}
