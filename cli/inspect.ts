/**
 * `shardbank inspect --node n4`: a running node's actors, step by step, as
 * they happen. Each line is one step that moved an actor's state (or, with
 * --all, every step), or an actor spawned or stopped; --json prints the
 * records as JSON lines. It asks the node for a lease and renews it until
 * stopped (Ctrl-C), so a node whose watcher went away stops streaming.
 */
import { formatRecord } from './inspect-format.js';
import { nodeName, type NodeId } from '../protocol/messages.js';
import type { Topology } from '../protocol/topology.js';
import { tcpAdmin } from './cluster.js';
import { securityFromFlags, type SecurityFlags } from './credentials.js';
import type { InspectRecord } from '../runtime/inspect.js';
import { EXIT_OK, EXIT_USAGE } from './exitCodes.js';

export interface InspectOptions extends SecurityFlags {
  topology: Topology;
  node: NodeId;
  json?: boolean;
  all?: boolean;
  /** Stop after this many seconds (default: until Ctrl-C). */
  seconds?: number;
}

const LEASE_MS = 3000;
const RENEW_MS = 1000;

export async function inspectCommand(opts: InspectOptions): Promise<number> {
  const { admin, transport } = tcpAdmin(opts.topology, securityFromFlags(opts, 'inspect'), `inspect-${process.pid}`);
  const print = (r: InspectRecord) => {
    if (opts.json) process.stdout.write(`${JSON.stringify(r)}\n`);
    else if (opts.all || r.changed || r.kind !== 'transition') process.stdout.write(`${formatRecord(r)}\n`);
  };
  admin.onInspection((records) => records.forEach(print));
  try {
    await admin.request(opts.node, { inspect: { leaseMs: LEASE_MS } });
  } catch (err) {
    process.stderr.write(`shardbank inspect: ${nodeName(opts.node)} does not answer: ${(err as Error).message}\n`);
    await transport.close();
    return EXIT_USAGE;
  }
  process.stderr.write(`watching ${nodeName(opts.node)}'s actors (Ctrl-C to stop)\n`);
  await new Promise<void>((resolve) => {
    const renew = setInterval(() => admin.request(opts.node, { inspect: { leaseMs: LEASE_MS } }).catch(() => undefined), RENEW_MS);
    const stop = () => {
      clearInterval(renew);
      resolve();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    if (opts.seconds) setTimeout(stop, opts.seconds * 1000);
  });
  await transport.close();
  return EXIT_OK;
}
