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
import { requestId, shardbank, slotKeyOf, type Command, type LogEventProps } from '../protocol/messages.js';
import { clusterOfItem, type Topology } from '../protocol/topology.js';
import { balanceOf, ownerOf, type LogSlot, type ReplicaView, type TxRole } from '../store/state.js';
import type { PlantedBug } from './node-info.js';

const { Status, Phase } = shardbank;

/** What executing or admitting a command reads: this cluster, the topology, and the replica's state (its ownership). Every machine's context is one. */
export interface ExecContext {
  info: { topology: Topology; cluster: number; bugs?: ReadonlySet<PlantedBug> };
  state: ReplicaView;
}

/** The clusters that own a transfer's sender and receiver, as this replica knows (null: out of range, or not a transfer). */
export function transferClusters(ctx: ExecContext, command: Command): { sender: number | null; receiver: number | null } {
  const t = command.transfer;
  if (!t) return { sender: null, receiver: null };
  return { sender: ownerOf(ctx.info.topology, ctx.state, t.sender ?? 0)?.cluster ?? null, receiver: ownerOf(ctx.info.topology, ctx.state, t.receiver ?? 0)?.cluster ?? null };
}

/**
 * This cluster's part in a command: `intra` (a transfer between two items it
 * owns), the coordinator or participant of a cross-shard transfer (it owns
 * the sender, or the receiver), the source (coordinator) or destination
 * (participant) of a move, or null (none of its business).
 */
export function roleOf(ctx: ExecContext, command: Command): TxRole | 'intra' | null {
  const m = command.move;
  if (m) return m.fromCluster === ctx.info.cluster ? 'coordinator' : m.toCluster === ctx.info.cluster ? 'participant' : null;
  const c = transferClusters(ctx, command);
  if (!command.transfer) return null;
  const { cluster } = ctx.info;
  if (c.sender === cluster) return c.receiver === cluster ? 'intra' : 'coordinator';
  return c.receiver === cluster ? 'participant' : null;
}

/** The role of a cluster in a cross-shard transaction (a transfer or a move), or null for anything else. */
export function txRole(ctx: ExecContext, command: Command): TxRole | null {
  const role = roleOf(ctx, command);
  return role === 'intra' ? null : role;
}

/**
 * One side of a cross-shard transaction: the other cluster, and the items
 * this side writes and locks (the sender at the coordinator, the receiver at
 * the participant; every item of a move on both sides).
 */
export function txSide(ctx: ExecContext, command: Command, role: TxRole): { theirs: number | null; items: number[] } {
  const m = command.move;
  if (m) return { theirs: role === 'coordinator' ? m.toCluster ?? null : m.fromCluster ?? null, items: m.items ?? [] };
  const c = transferClusters(ctx, command);
  const t = command.transfer;
  return role === 'coordinator' ? { theirs: c.receiver, items: [t?.sender ?? 0] } : { theirs: c.sender, items: [t?.receiver ?? 0] };
}

/**
 * The role a decision on a participant's copy of a transfer names: the
 * coordinator, when it names this cluster; else this cluster's part was the
 * participant's, whatever has moved since. (An abort a participant ordered
 * when it refused a PREPARE must never answer the client as if this cluster
 * ran the transfer: the coordinator answers it.)
 */
function namedRole(ctx: ExecContext, cmd: Command, phase: number): TxRole | null {
  const coordinator = cmd.transfer?.coordinatorCluster;
  if (phase < Phase.PHASE_COMMIT || !coordinator) return null;
  return coordinator === ctx.info.cluster ? 'coordinator' : 'participant';
}

/**
 * The Executed event for one committed slot (reads state, changes nothing).
 * (`Object.assign(base, {...})`, not `{ ...base, ... }`: V8 takes a slow
 * path for a spread followed by more properties, microseconds per call.)
 */
export function executeSlot(ctx: ExecContext, slot: Readonly<LogSlot>): LogEventProps {
  const ev = executeAt(ctx, slot);
  if (ev.executed && ev.executed.command) ev.executed.ranAt = slotKeyOf(slot);
  return ev;
}

function executeAt(ctx: ExecContext, slot: Readonly<LogSlot>): LogEventProps {
  const base = { seq: slot.seq, phase: slot.phase };
  const cmd = slot.command;
  const t = cmd?.transfer;
  if (!cmd || (!t && !cmd.move)) return { executed: Object.assign(base, { command: cmd ?? undefined, status: Status.OK }) };
  // A transaction's decision keeps the role its prepare had, whatever moved since; an abort
  // fenced at a participant's question is the coordinator's that the question names.
  const role = slot.phase === Phase.PHASE_NONE ? null : ctx.state.wal.get(requestId(cmd))?.role ?? namedRole(ctx, cmd, slot.phase) ?? txRole(ctx, cmd);
  if (role) return cmd.move ? executeMove(ctx, slot, cmd, role) : executeTransaction(ctx, slot, cmd, role);
  if (!t) return { executed: Object.assign(base, { command: cmd, status: Status.ABORTED, reason: 'not this cluster\'s move' }) };
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
  if (roleOf(ctx, cmd) !== 'intra' && !staleOwnerBug(ctx, sender, receiver)) {
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
    const item = txSide(ctx, cmd, role).items[0]!;
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

/** The planted bug `stale-owner-applies`: both items in this cluster by the initial ranges is enough. */
function staleOwnerBug(ctx: ExecContext, sender: number, receiver: number): boolean {
  const { topology, cluster, bugs } = ctx.info;
  return !!bugs?.has('stale-owner-applies') && clusterOfItem(topology, sender) === cluster && clusterOfItem(topology, receiver) === cluster;
}

/**
 * A move of items between clusters, 2PC over Paxos like a cross-shard
 * transfer. The source's prepare (move-out) locks the items and keeps their
 * balances as before-images; the destination's prepare (move-in) writes the
 * balances its PREPARE carried and locks them. The commit hands ownership to
 * the destination in both (each item one version up) and the source forgets
 * the balances; an abort changes nothing at the source and takes the
 * balances back out at the destination.
 */
function executeMove(ctx: ExecContext, slot: Readonly<LogSlot>, cmd: Command, role: TxRole): LogEventProps {
  const { state } = ctx;
  const { topology, cluster } = ctx.info;
  const m = cmd.move!;
  const txid = requestId(cmd);
  const items = m.items ?? [];
  const base = { seq: slot.seq, phase: slot.phase, command: cmd, txid, role };
  const decided = state.decisions.has(txid);
  if (slot.phase === Phase.PHASE_PREPARE) {
    if (decided || state.wal.has(txid)) return { executed: { seq: slot.seq, phase: slot.phase } };
    const held = items.find((i) => (state.walLocks.get(i) ?? txid) !== txid);
    if (held !== undefined) return { executed: Object.assign(base, { status: Status.ABORTED, reason: `lock conflict on item ${held}` }) };
    const before = items.map((item) => ({ item, balance: balanceOf(state, item) }));
    if (role === 'coordinator') {
      const stray = items.find((i) => ownerOf(topology, state, i)?.cluster !== cluster);
      if (stray !== undefined) return { executed: Object.assign(base, { status: Status.ABORTED, reason: `item ${stray} is not this cluster's` }) };
      return { executed: Object.assign(base, { status: Status.COMMITTED, before }) };
    }
    return { executed: Object.assign(base, { status: Status.COMMITTED, before, writes: m.balances ?? [] }) };
  }
  if (decided) return { executed: { seq: slot.seq, phase: slot.phase } };
  const prepared = state.wal.has(txid);
  if (slot.phase === Phase.PHASE_COMMIT) {
    const owners = role === 'coordinator' ? items.map((item) => ({ item, cluster: m.toCluster ?? 0, version: (ownerOf(topology, state, item)?.version ?? 0) + 1 })) : m.owners ?? [];
    return { executed: Object.assign(base, { status: Status.COMMITTED, owners, removes: role === 'coordinator' ? items : [] }) };
  }
  return {
    executed: Object.assign(base, { status: Status.ABORTED, reason: slot.reason || 'aborted', removes: role === 'participant' && prepared ? items : [] }),
  };
}
