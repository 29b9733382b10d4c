/**
 * The events a node's actors exchange. Wire messages arrive wrapped with the
 * sender's id; the rest are notices between siblings.
 */
import type { shardbank } from '../protocol/messages.js';
import type { Ballot, Command, Entry, EnvelopeProps, NodeId } from '../protocol/messages.js';

type Msg<T extends string, M> = { type: T; from: NodeId; msg: M };

export type PrepareEvent = Msg<'prepare', shardbank.Prepare.$Properties>;
export type PromiseEvent = Msg<'promise', shardbank.Promise.$Properties>;
export type NackEvent = Msg<'nack', shardbank.Nack.$Properties>;
export type AcceptEvent = Msg<'accept', shardbank.Accept.$Properties>;
export type AcceptedEvent = Msg<'accepted', shardbank.Accepted.$Properties>;
export type CommitEvent = Msg<'commit', shardbank.Commit.$Properties>;
export type NewViewEvent = Msg<'newView', shardbank.NewView.$Properties>;
export type HeartbeatEvent = Msg<'heartbeat', shardbank.Heartbeat.$Properties>;
export type CatchupRequestEvent = Msg<'catchupRequest', shardbank.CatchupRequest.$Properties>;
export type CatchupReplyEvent = Msg<'catchupReply', shardbank.CatchupReply.$Properties>;

export type TickEvent = { type: 'tick' };
export type EndOfTurnEvent = { type: 'endOfTurn' };
/** The set starts: state was flushed, `leader` leads with ballot <1, leader>. */
export type FlushedEvent = { type: 'flushed'; leader: NodeId };
export type RecoveredEvent = { type: 'recovered' };

/** Any message from the current (or a newer) leader: resets the election timer. */
export type ContactEvent = { type: 'contact'; from: NodeId; ballot: Ballot };
/** Election -> acceptor: promise this ballot to this candidate. */
export type GrantPromiseEvent = { type: 'grantPromise'; to: NodeId; ballot: Ballot; commitThrough: number };
/** Election -> proposer: lead with this ballot; these entries await a majority. */
export type LeadEvent = { type: 'lead'; ballot: Ballot; pending: Entry[] };
export type StepDownEvent = { type: 'stepDown' };
/**
 * Lock manager -> proposer: a transfer to order. Normally its locks are held;
 * `skipped` means an item was locked, and what gets ordered is its abort, so
 * the answer `aborted: lock conflict` is as final as any other outcome.
 */
export type ProposeEvent = {
  type: 'propose';
  command: Command;
  skipped?: boolean;
  /** A 2PC entry: its phase, and for a decision the seq of its prepare. */
  phase?: number;
  seq?: number;
  reason?: string;
};

/** Executor -> transactions: a 2PC entry of this transaction ran. */
export type TxExecutedEvent = { type: 'txExecuted'; txid: string; phase: number; seq: number; status: number; reason: string };
/** Root -> lock manager: a client transfer at the leader. */
export type AdmitEvent = { type: 'admit'; command: Command };
/** Executor -> lock manager: the transfer ran; free its items. */
export type ReleaseEvent = { type: 'release'; command: Command };
/** Root -> executor: a balance read at the leader. */
export type ReadEvent = { type: 'read'; command: Command };
/**
 * A run of admits, releases, proposals or reads for one actor, from one turn:
 * `deliverNotices` sends them only this way, so a turn with hundreds of
 * requests costs the actors a few dispatches, not hundreds.
 */
export type AdmitAllEvent = { type: 'admitAll'; events: AdmitEvent[] };
export type ReleaseAllEvent = { type: 'releaseAll'; events: ReleaseEvent[] };
export type ProposeAllEvent = { type: 'proposeAll'; events: ProposeEvent[] };
export type ReadAllEvent = { type: 'readAll'; events: ReadEvent[] };
export type ExecuteEvent = { type: 'execute' };
export type ResetEvent = { type: 'reset' };

/** Events the node's root machine takes from its runtime. */
export type NodeInput =
  /** A turn's envelopes, in arrival order. */
  | { type: 'messages'; envelopes: EnvelopeProps[] }
  | EndOfTurnEvent
  | { type: 'fail' }
  | { type: 'recover' }
  | { type: 'flush'; leader: NodeId; initialBalance: number; set: number };
