/**
 * What the studio page can do to a cluster: a transfer or a read through a
 * bank client, fail and recover a node through the admin side, PrintReshard
 * (gather the clusters' histories, partition, move). Each answers with one
 * line saying the outcome; a node that is down rejects with why.
 */
import type { AdminClient } from '../client/admin.js';
import type { BankClient, TxResult } from '../client/client.js';
import { nodeName, type NodeId } from '../protocol/messages.js';
import { allNodes, type Topology } from '../protocol/topology.js';
import { SetRunner } from './runner.js';
import { reshardLines } from './utilities.js';

export class LiveOps {
  private readonly nodes: Set<NodeId>;

  constructor(
    private readonly topology: Topology,
    private readonly admin: AdminClient,
    private readonly client: BankClient,
  ) {
    this.nodes = new Set(allNodes(topology));
  }

  async transfer(sender: number, receiver: number, amount: number): Promise<string> {
    return outcomeText(`transfer (${sender}, ${receiver}, ${amount})`, await this.client.transfer(sender, receiver, amount));
  }

  async read(item: number): Promise<string> {
    return outcomeText(`read (${item})`, await this.client.read(item));
  }

  async fail(node: NodeId): Promise<string> {
    this.checkNode(node);
    await this.admin.request(node, { fail: {} });
    return `${nodeName(node)} failed: it takes and sends no messages until recovered`;
  }

  /** PrintReshard: the moved items as triplets `(4001, c2, c1)`, or that nothing moved. */
  async reshard(): Promise<string> {
    const runner = new SetRunner({ topology: this.topology, client: this.client, admin: this.admin });
    return `PrintReshard: ${reshardLines(await runner.printReshard()).text.replace(/\s*\n\s*/g, ' ')}`;
  }

  async recover(node: NodeId): Promise<string> {
    this.checkNode(node);
    await this.admin.request(node, { recover: {} });
    return `${nodeName(node)} recovered`;
  }

  private checkNode(node: NodeId): void {
    if (!this.nodes.has(node)) throw new Error(`${nodeName(node)} is not a node of this cluster`);
  }
}

function outcomeText(what: string, r: TxResult): string {
  const reason = r.reason ? ` (${r.reason})` : '';
  const balance = r.balance !== undefined ? ` balance ${r.balance}` : '';
  const by = r.node ? ` by ${nodeName(r.node)}` : '';
  return `${what}: ${r.status}${reason}${balance}${by} in ${r.latencyMs.toFixed(1)} ms`;
}
