/**
 * Message types, generated from `shardbank.proto` by protobufjs, with the few
 * helpers every layer needs: ballot order, entry keys, node names.
 */
import { shardbank } from './generated/shardbank.js';

export { shardbank };
export const { Frame, Envelope, LogEvent, Phase, Status } = shardbank;

export type Ballot = shardbank.Ballot.$Properties;
export type Command = shardbank.Command.$Properties;
export type Entry = shardbank.Entry.$Properties;
export type EnvelopeProps = shardbank.Envelope.$Properties;
export type ClientRequest = shardbank.ClientRequest.$Properties;
export type ClientReply = shardbank.ClientReply.$Properties;
export type AdminRequest = shardbank.AdminRequest.$Properties;
export type AdminReply = shardbank.AdminReply.$Properties;
export type LogEventProps = shardbank.LogEvent.$Properties;
export type ViewRecord = shardbank.ViewRecord.$Properties;
export type NodeStatus = shardbank.NodeStatus.$Properties;

/**
 * A move's source refuses it with this reason when its items were never all
 * free at once within its wait; the resharder splits such a batch and tries
 * the halves.
 */
export const MOVE_ITEMS_BUSY = 'its items stayed busy';

/** A node id: n4 is 4. */
export type NodeId = number;

/** Orders ballots by round, then node: negative, zero or positive like a comparator. */
export function compareBallots(a: Ballot | null | undefined, b: Ballot | null | undefined): number {
  const ar = a?.round ?? 0;
  const br = b?.round ?? 0;
  if (ar !== br) return ar - br;
  return (a?.node ?? 0) - (b?.node ?? 0);
}

export function ballotEquals(a: Ballot | null | undefined, b: Ballot | null | undefined): boolean {
  return compareBallots(a, b) === 0;
}

/** `<2, n8>`, the way the spec writes ballots. */
export function formatBallot(b: Ballot | null | undefined): string {
  return `<${b?.round ?? 0}, n${b?.node ?? 0}>`;
}

/**
 * The Paxos instance (slot) an entry is the value of: its seq. A 2PC decision
 * is named after its prepare's seq (PrintView shows `seq 2 C`) but is the
 * value of the instance at the seq it runs at. One instance per seq: two
 * leaders can never get two different entries chosen for one seq.
 */
export function slotKeyOf(e: { seq?: number | null; runsAt?: number | null }): number {
  return (e.runsAt ?? 0) > 0 ? e.runsAt! : e.seq ?? 0;
}

export function nodeName(id: NodeId): string {
  return `n${id}`;
}

/** Parses `n4` (or `4`) into 4; returns null for anything else. */
export function parseNodeName(text: string): NodeId | null {
  const m = /^\s*n?(\d+)\s*$/i.exec(text);
  if (!m) return null;
  const id = Number(m[1]);
  return id >= 1 ? id : null;
}

/** The body kind of an envelope (`request`, `accept`, ...), or undefined. */
export type BodyKind = NonNullable<shardbank.Envelope['body']>;

export function bodyOf(env: EnvelopeProps): BodyKind | undefined {
  return (env as shardbank.Envelope).body ?? undefined;
}

/** The identity of a client request (`client:timestamp`): exactly-once, lock ownership, the txid of a 2PC transaction. */
export function requestId(command: Command): string {
  return `${command.client ?? ''}:${command.timestamp ?? 0}`;
}

/** Formats a command as the CSV writes it: `(1001, 1002, 1)` or `(1002)`. */
export function formatCommand(cmd: Command | null | undefined): string {
  if (!cmd) return 'no-op';
  if (cmd.transfer) return `(${cmd.transfer.sender}, ${cmd.transfer.receiver}, ${cmd.transfer.amount})`;
  if (cmd.read) return `(${cmd.read.item})`;
  return 'no-op';
}
