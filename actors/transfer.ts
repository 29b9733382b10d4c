/**
 * Applying one committed entry to the balances: pure functions from the
 * replica state and the entry to the Executed event that records it.
 *
 * Intra-shard: debit and credit at once, or abort for insufficient balance.
 * Cross-shard (2PC): the prepare entry (P) applies this cluster's half
 * tentatively and keeps the before-image in the WAL; the decision at the same
 * seq either keeps it (C) or restores the before-image (A).
 *
 * Restoring a before-image is only right if nothing else wrote the item in
 * between, and the leader's locks cannot promise that on their own: an entry
 * a deposed leader proposed can be chosen later by a NEW-VIEW, after a newer
 * leader that never saw it admitted a conflicting transfer. So the log order
 * decides, the same way on every replica: an entry that would write an item
 * a prepared transaction holds (its WAL lock) executes as `aborted: lock
 * conflict` and writes nothing.
 */
import { requestId, shardbank, type Command, type LogEventProps } from '../protocol/messages.js';
import { clusterOfItem, type Topology } from '../protocol/topology.js';
import { balanceOf, type LogSlot, type ReplicaView, type TxRole } from '../store/state.js';

const { Status, Phase } = shardbank;

/** The clusters that own a transfer's sender and receiver (null: out of range, or not a transfer). */
export function transferClusters(topology: Topology, command: Command): { sender: number | null; receiver: number | null } {
  const t = command.transfer;
  if (!t) return { sender: null, receiver: null };
  return { sender: clusterOfItem(topology, t.sender ?? 0), receiver: clusterOfItem(topology, t.receiver ?? 0) };
}

/** The role of a cluster in a cross-shard transfer, or null for an intra-shard one. */
export function txRole(topology: Topology, cluster: number, command: Command): TxRole | null {
  const c = transferClusters(topology, command);
  if (!command.transfer || c.sender === c.receiver) return null;
  return c.sender === cluster ? 'coordinator' : 'participant';
}

/**
 * One side of a cross-shard transfer: the cluster playing `role`, the other
 * cluster, and the item this side writes (the sender's at the coordinator,
 * the receiver's at the participant).
 */
export function txSide(topology: Topology, command: Command, role: TxRole): { mine: number | null; theirs: number | null; item: number } {
  const c = transferClusters(topology, command);
  const t = command.transfer;
  return role === 'coordinator'
    ? { mine: c.sender, theirs: c.receiver, item: t?.sender ?? 0 }
    : { mine: c.receiver, theirs: c.sender, item: t?.receiver ?? 0 };
}

export interface ExecContext {
  topology: Topology;
  cluster: number;
  state: ReplicaView;
}

/**
 * The Executed event for one committed slot (reads state, changes nothing).
 * (`Object.assign(base, {...})`, not `{ ...base, ... }`: V8 takes a slow
 * path for a spread followed by more properties, microseconds per call.)
 */
export function executeSlot(ctx: ExecContext, slot: Readonly<LogSlot>): LogEventProps {
  const base = { seq: slot.seq, phase: slot.phase };
  const cmd = slot.command;
  const t = cmd?.transfer;
  if (!cmd || !t) return { executed: Object.assign(base, { command: cmd ?? undefined, status: Status.OK }) };
  const role = txRole(ctx.topology, ctx.cluster, cmd);
  if (role) return executeTransaction(ctx, slot, cmd, role);
  const stored = ctx.state.replies.get(cmd.client ?? '');
  if (stored && stored.timestamp >= (cmd.timestamp ?? 0)) {
    return { executed: Object.assign(base, { command: cmd, status: stored.reply.status, reason: stored.reply.reason }) };
  }
  // An abort entry with no prepare before it: the leader skipped the transfer.
  if (slot.phase === Phase.PHASE_ABORT) {
    return { executed: Object.assign(base, { command: cmd, status: Status.ABORTED, reason: slot.reason || 'lock conflict' }) };
  }
  const sender = t.sender ?? 0;
  const receiver = t.receiver ?? 0;
  const amount = t.amount ?? 0;
  if (clusterOfItem(ctx.topology, sender) !== ctx.cluster) {
    return { executed: Object.assign(base, { command: cmd, status: Status.ABORTED, reason: 'wrong shard' }) };
  }
  if (ctx.state.walLocks.has(sender) || ctx.state.walLocks.has(receiver)) {
    return { executed: Object.assign(base, { command: cmd, status: Status.ABORTED, reason: 'lock conflict' }) };
  }
  const from = balanceOf(ctx.state, sender);
  if (from < amount) {
    return { executed: Object.assign(base, { command: cmd, status: Status.ABORTED, reason: 'insufficient balance' }) };
  }
  const to = balanceOf(ctx.state, receiver);
  return {
    executed: {
      seq: slot.seq,
      phase: slot.phase,
      command: cmd,
      status: Status.COMMITTED,
      writes: [
        { item: sender, balance: from - amount },
        { item: receiver, balance: to + amount },
      ],
    },
  };
}

function executeTransaction(ctx: ExecContext, slot: Readonly<LogSlot>, cmd: Command, role: TxRole): LogEventProps {
  const { state } = ctx;
  const txid = requestId(cmd);
  const base = { seq: slot.seq, phase: slot.phase, command: cmd, txid, role };
  const t = cmd.transfer!;
  const amount = t.amount ?? 0;
  // A transaction is prepared and decided once; a second entry for it (a
  // retry ordered again, a decision resent) changes nothing.
  const decided = state.decisions.has(txid);
  if (slot.phase === Phase.PHASE_PREPARE) {
    if (decided || state.wal.has(txid)) return { executed: { seq: slot.seq, phase: slot.phase } };
    const { item } = txSide(ctx.topology, cmd, role);
    const holder = state.walLocks.get(item);
    if (holder !== undefined && holder !== txid) {
      return { executed: Object.assign(base, { status: Status.ABORTED, reason: 'lock conflict' }) };
    }
    const balance = balanceOf(state, item);
    if (role === 'coordinator' && balance < amount) {
      return { executed: Object.assign(base, { status: Status.ABORTED, reason: 'insufficient balance' }) };
    }
    const after = role === 'coordinator' ? balance - amount : balance + amount;
    return {
      executed: Object.assign(base, { status: Status.COMMITTED, before: [{ item, balance }], writes: [{ item, balance: after }] }),
    };
  }
  if (decided) return { executed: { seq: slot.seq, phase: slot.phase } };
  const wal = state.wal.get(txid);
  if (slot.phase === Phase.PHASE_COMMIT) {
    return { executed: Object.assign(base, { status: Status.COMMITTED }) };
  }
  return {
    executed: Object.assign(base, { status: Status.ABORTED, reason: slot.reason || 'aborted', writes: wal ? wal.before : [] }),
  };
}
