/**
 * The events each actor of a node takes: each union is that actor's
 * interface. A sibling's message is type-checked against the receiver's
 * union (`tell`), and carries the same name at both ends.
 *
 * Wire messages arrive wrapped with the sender's id. Requests that come one
 * per client (admits, reads, releases, proposals) travel as runs, one event
 * for all of a turn's: a turn with hundreds of requests costs the actors a
 * few dispatches, not hundreds.
 */
import type { shardbank } from '../protocol/messages.js';
import type { Ballot, Command, Entry, EnvelopeProps, NodeId } from '../protocol/messages.js';
import type { Body, Effect } from './effects.js';
import type { ActorName, View } from './node-info.js';

type Msg<T extends string, M> = { type: T; from: NodeId; msg: M };

export type PrepareEvent = Msg<'prepare', shardbank.Prepare.$Properties>;
export type PromiseEvent = Msg<'promise', shardbank.Promise.$Properties>;
export type NackEvent = Msg<'nack', shardbank.Nack.$Properties>;
export type AcceptEvent = Msg<'accept', shardbank.Accept.$Properties>;
export type AcceptedEvent = Msg<'accepted', shardbank.Accepted.$Properties>;
export type CommitEvent = Msg<'commit', shardbank.Commit.$Properties>;
export type NewViewEvent = Msg<'newView', shardbank.NewView.$Properties>;
export type HeartbeatEvent = Msg<'heartbeat', shardbank.Heartbeat.$Properties>;
export type HeartbeatAckEvent = Msg<'heartbeatAck', shardbank.HeartbeatAck.$Properties>;
export type PreVoteEvent = Msg<'preVote', shardbank.PreVote.$Properties>;
export type PreVoteReplyEvent = Msg<'preVoteReply', shardbank.PreVoteReply.$Properties>;
export type CatchupRequestEvent = Msg<'catchupRequest', shardbank.CatchupRequest.$Properties>;
export type CatchupReplyEvent = Msg<'catchupReply', shardbank.CatchupReply.$Properties>;

/**
 * Ticks of the node's logical clock (`tickMs` each): `n` of them at once (1
 * when absent). The node is woken only for a tick some actor acts on
 * (`ticksUntilDue`); the ticks before it, which change nothing but the
 * counters, come with it as one event.
 */
export type TickEvent = { type: 'tick'; n?: number };

/** How many ticks a tick event stands for. */
export function ticksOf(event: { n?: number }): number {
  return event.n ?? 1;
}

/** Election -> the actors that route, reply or catch up: who leads now. */
export type ViewEvent = { type: 'view'; view: View };
/** The set was flushed: forget everything volatile. */
export type ResetEvent = { type: 'reset' };

/** A transfer or 2PC entry for the proposer to order. */
export interface Proposal {
  command: Command;
  /** PHASE_NONE for a transfer, PHASE_ABORT for one the leader skipped, or a 2PC phase. */
  phase: number;
  /** A 2PC decision goes at the seq of its prepare (and runs at a seq reserved for it). */
  seq?: number;
  /** Why an abort entry aborts. */
  reason?: string;
}

// ---------------------------------------------------------------- node (root)

/** Events the node's root takes from its host, and from its own clock. */
export type NodeInput =
  /** A turn's envelopes, in arrival order. */
  | { type: 'messages'; envelopes: EnvelopeProps[] }
  /** The turn's inbox is done: the proposer cuts its batch, the executor runs what is committed. */
  | { type: 'endOfTurn' }
  | { type: 'fail' }
  | { type: 'recover' }
  | { type: 'flush'; leader: NodeId; initialBalance: number; set: number }
  /** An operator's move of items (resharding), for this cluster's leader. */
  | { type: 'move'; command: Command };
export type NodeEvent = NodeInput | TickEvent | ViewEvent;

// ---------------------------------------------------------------- election

/** Any message from the current (or a newer) leader: resets the election timer. A heartbeat also says in how many ticks the next one comes at the latest (`nextIn`). */
export type ContactEvent = { type: 'contact'; from: NodeId; ballot: Ballot; nextIn?: number };
/** The set starts: `leader` leads with ballot <1, leader>, no election. */
export type FlushedEvent = { type: 'flushed'; leader: NodeId };
/** Back from a disconnection. */
export type RecoveredEvent = { type: 'recovered' };
/** Transactions -> election: the participant acknowledged these decisions; tell the followers on the next heartbeats. */
export type ShareAcksEvent = { type: 'shareAcks'; txids: string[] };
/** Executor -> election: confirm with a majority that this node still leads (linearizable reads). */
export type ConfirmEvent = { type: 'confirm' };
/**
 * Node -> election: a client's request was relayed. A follower that relayed
 * it ends the patience its quiet leader's heartbeat granted (`grace`) a
 * normal timeout from now; the leader that got it counts it as work and
 * heartbeats at once, so the followers that relayed it hear from it.
 */
export type AskedEvent = { type: 'asked' };

export type ElectionEvent =
  | TickEvent
  | ContactEvent
  | PrepareEvent
  | PromiseEvent
  | NackEvent
  | FlushedEvent
  | RecoveredEvent
  | ShareAcksEvent
  | HeartbeatAckEvent
  | PreVoteEvent
  | PreVoteReplyEvent
  | ConfirmEvent
  | AskedEvent;

// ---------------------------------------------------------------- acceptor

/** Election -> acceptor: promise this ballot to this candidate. */
export type GrantPromiseEvent = { type: 'grantPromise'; to: NodeId; ballot: Ballot; commitThrough: number };

export type AcceptorEvent =
  | AcceptEvent
  | NewViewEvent
  | CommitEvent
  | HeartbeatEvent
  | CatchupRequestEvent
  | CatchupReplyEvent
  | GrantPromiseEvent
  | TickEvent
  | RecoveredEvent
  | ViewEvent;

// ---------------------------------------------------------------- proposer

/** Election -> proposer: lead with this ballot; these entries (from the NEW-VIEW) await a majority. */
export type LeadEvent = { type: 'lead'; ballot: Ballot; pending: Entry[] };
export type StepDownEvent = { type: 'stepDown' };
/** Lock manager, coordinators, participants -> proposer: entries to order. */
export type ProposeEvent = { type: 'propose'; proposals: Proposal[] };
export type EndOfTurnEvent = { type: 'endOfTurn' };

export type ProposerEvent = LeadEvent | StepDownEvent | ProposeEvent | AcceptedEvent | EndOfTurnEvent | TickEvent | ResetEvent;

// ---------------------------------------------------------------- executor

/** Root -> executor: run what is committed. */
export type ExecuteEvent = { type: 'execute' };
/** Executor -> itself: more is committed than one step ran. */
export type ContinueEvent = { type: 'continue' };
/** Root -> executor: balance reads at the leader. */
export type ReadEvent = { type: 'read'; commands: Command[] };

/** Election -> executor: a majority acknowledged heartbeat `probe`, sent after the confirmation was asked for: this node led then. */
export type ConfirmedEvent = { type: 'confirmed'; probe: number };

export type ExecutorEvent = ExecuteEvent | ContinueEvent | ReadEvent | ConfirmedEvent | TickEvent | ViewEvent;

// ---------------------------------------------------------------- lock manager

/** Root -> lock manager: client transfers at the leader. */
export type AdmitEvent = { type: 'admit'; commands: Command[] };
/** Executor, proposer -> lock manager: these transfers ran (or were refused); free their items. */
export type ReleaseEvent = { type: 'release'; commands: Command[] };
/** Root -> lock manager: a coordinator's PREPARE at this (the participant's) leader. */
export type TxPrepareEvent = { type: 'txPrepare'; command: Command; from: NodeId; coordinatorCluster: number };
/** Election -> lock manager: this node now leads; lock what its log still has to run. */
export type AdoptEvent = { type: 'adopt' };
/** Root -> lock manager: an operator's move of items from this cluster (resharding). */
export type MoveEvent = { type: 'move'; command: Command };

export type LockManagerEvent = AdmitEvent | ReleaseEvent | TxPrepareEvent | MoveEvent | AdoptEvent | TickEvent | ResetEvent | ViewEvent;

// ---------------------------------------------------------------- transactions

/** Start: prepare; locked: the receiver is locked, abort; resume: prepared before (a new leader); fence: abort an unknown one. */
export type ParticipantMode = 'start' | 'locked' | 'resume' | 'fence';
export type CoordinatorMode = 'start' | 'resolve' | 'notify' | 'fence';

/** Executor -> transactions (-> the transaction's actor): a 2PC entry of this transaction ran. */
export type TxExecutedEvent = { type: 'txExecuted'; txid: string; phase: number; seq: number; ranAt: number; status: number; reason: string };
/** A 2PC actor's message for another cluster: to its leader, or to all its nodes (a retry; the leader may have changed). */
export type TxOutEvent = { type: 'out'; cluster: number; body: Body; everyone: boolean };

export type TransactionsEvent =
  | { type: 'coordinate'; command: Command; txid: string }
  | { type: 'participate'; command: Command; txid: string; from: NodeId; coordinatorCluster: number; mode: ParticipantMode }
  /** A 2PC message from another cluster's leader (vote, decision, ack, query). */
  | { type: 'message'; envelope: EnvelopeProps }
  | TxExecutedEvent
  | TxOutEvent
  /** A 2PC actor's effects (records, messages to a known node), carried out by the node. */
  | { type: 'effects'; effects: Effect[] }
  /** The participant acknowledged this coordinator's decision. */
  | { type: 'acked'; txid: string }
  /** A coordinator answers its client: the decision that ran, or `unknown` (its own cluster never prepared). */
  | { type: 'reply'; command: Command; reply: Omit<shardbank.ClientReply.$Properties, 'client' | 'timestamp'> }
  | { type: 'txDone'; txid: string; role: 'coordinator' | 'participant' }
  | TickEvent
  | ResetEvent
  | ViewEvent;

export type CoordinatorEvent =
  | TxExecutedEvent
  /** The participant's vote (PREPARED with the seq its prepare ran at); `moved`: the receiver is elsewhere now, ask there. */
  | { type: 'vote'; prepared: boolean; reason: string; seq?: number; moved?: { item: number; cluster: number; version: number } }
  | { type: 'ack' }
  | { type: 'queried' }
  /** One retry period (`txRetryTicks`) has passed since the last one; the first comes one period after the start. */
  | TickEvent
  /** The leader stepped down or the set was flushed: stop here, quietly. */
  | { type: 'drop' };

export type ParticipantEvent =
  | TxExecutedEvent
  | { type: 'prepareAgain'; from: NodeId }
  | { type: 'decision'; commit: boolean; from: NodeId }
  | TickEvent
  | { type: 'drop' };

/** Each actor's events, by its id: what `tell` checks a sibling's message against. */
export interface Inboxes {
  node: NodeEvent;
  election: ElectionEvent;
  acceptor: AcceptorEvent;
  proposer: ProposerEvent;
  executor: ExecutorEvent;
  lockManager: LockManagerEvent;
  transactions: TransactionsEvent;
}

/** A message to a sibling, checked against its inbox. */
export type Tell = { [K in ActorName]: { to: K; event: Inboxes[K] } }[ActorName];
