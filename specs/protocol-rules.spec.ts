/**
 * The protocol's rules (../shared/SPEC.md sections 5 and 6), one spec each,
 * read like the paper: build one machine's snapshot, step it with XState's
 * pure `transition()`, and check the state it returns and the effects it
 * asks for. No simulator, no network, no log: nothing runs.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { acceptorMachine } from '../actors/acceptor.js';
import { electionMachine } from '../actors/election.js';
import { executorMachine } from '../actors/executor.js';
import { lockManagerMachine } from '../actors/lockManager.js';
import { participantMachine } from '../actors/participant.js';
import { proposerMachine } from '../actors/proposer.js';
import { requestId, shardbank, type Ballot, type Command, type Entry } from '../protocol/messages.js';
import { applyEvent } from '../store/state.js';
import { campaign, nodeInput, records, sends, start, step, steps } from './support/step.js';

const { Phase, Status } = shardbank;
const B = (round: number, node: number): Ballot => ({ round, node });
const transfer = (client: string, sender: number, receiver: number, amount = 1): Command => ({ client, timestamp: 1, transfer: { sender, receiver, amount } });
const entry = (seq: number, ballot: Ballot, command: Command | undefined, phase: number = Phase.PHASE_NONE): Entry => ({ seq, phase, ballot, command, committed: false, reason: '', runsAt: 0 });

test('an ACCEPT below the promise is refused: a NACK names the promise, and nothing is recorded', () => {
  const input = nodeInput();
  applyEvent(input.state, { promised: { ballot: B(3, 2) } });
  const s = start(acceptorMachine, input);

  const below = step(acceptorMachine, s.snapshot, { type: 'accept', from: 3, msg: { ballot: B(2, 3), entries: [entry(1, B(2, 3), transfer('a', 1, 2))] } });
  assert.equal(records(below.effects), []);
  assert.equal(sends(below.effects), [{ from: 1, to: 3, nack: { ballot: B(2, 3), promised: B(3, 2) } }]);

  const at = step(acceptorMachine, s.snapshot, { type: 'accept', from: 2, msg: { ballot: B(3, 2), entries: [entry(1, B(3, 2), transfer('a', 1, 2))] } });
  assert.equal(records(at.effects).map((r) => r.accepted?.entries?.map((e) => [e.seq, e.ballot])), [[[1, B(3, 2)]]]);
  assert.equal(sends(at.effects), [{ from: 1, to: 2, accepted: { ballot: B(3, 2), slots: [1] } }]);
});

test('a PREPARE is deferred while the leader is still heard, and granted once it has gone quiet', () => {
  const input = nodeInput();
  applyEvent(input.state, { flushed: { set: 1, leader: 2, initialBalance: 10, ballot: B(1, 2) } });
  const s = steps(electionMachine, start(electionMachine, input).snapshot, [{ type: 'flushed', leader: 2 }, { type: 'contact', from: 2, ballot: B(1, 2) }]);
  const prepare = { type: 'prepare', from: 3, msg: { ballot: B(2, 3), commitThrough: 0 } };

  const heard = step(electionMachine, s.snapshot, prepare);
  assert.equal(heard.tells, [], 'no promise is granted, and the view stays');
  assert.equal(records(heard.effects).map((r) => r.vote?.answer), ['deferred']);
  assert.equal(heard.snapshot.context.deferred, { from: 3, ballot: B(2, 3), commitThrough: 0 });
  assert.is(heard.snapshot.value, 'follower');

  // The leader goes quiet: at least electionTicksMin ticks without contact.
  const quiet = steps(electionMachine, s.snapshot, Array.from({ length: input.info.tuning.electionTicksMin }, () => ({ type: 'tick' })));
  assert.is(quiet.snapshot.value, 'follower');
  const granted = step(electionMachine, quiet.snapshot, prepare);
  assert.equal(granted.tells.filter((t) => t.type !== 'view'), [{ type: 'grantPromise', to: 3, ballot: B(2, 3), commitThrough: 0 }]);
  assert.equal(records(granted.effects).map((r) => r.vote?.answer ?? Object.keys(r)[0]), ['granted', 'role']);
});

test('NEW-VIEW takes the highest ballot per seq and fills gaps with no-ops', () => {
  const input = nodeInput();
  const a = transfer('a', 1, 2);
  const b = transfer('b', 3, 4);
  const c = transfer('c', 5, 6);
  const d = transfer('d', 7, 8);
  // n1 led with <1, n1> and accepted A at seq 1 and C at seq 3.
  applyEvent(input.state, { promised: { ballot: B(1, 1) } });
  applyEvent(input.state, { accepted: { entries: [entry(1, B(1, 1), a), entry(3, B(1, 1), c)] } });
  let s = start(electionMachine, input).snapshot;
  s = campaign(electionMachine, s);
  assert.is(s.value, 'candidate', 'a majority would promise: it campaigns');
  const ballot = s.context.view.ballot;
  assert.equal(ballot, B(2, 1), 'the campaign goes one round above the promise');

  // n2 promises with B at seq 1 under a higher ballot, and D at seq 4: seq 2 is nobody's.
  const won = step(electionMachine, s, { type: 'promise', from: 2, msg: { ballot, accepted: [entry(1, B(1, 2), b), entry(4, B(1, 2), d)], commitThrough: 0 } });
  assert.is(won.snapshot.value, 'leader');
  const log = records(won.effects).find((r) => r.accepted)!.accepted!.entries!;
  assert.equal(
    log.map((e) => [e.seq, e.command ? requestId(e.command) : 'no-op', e.ballot]),
    [
      [1, 'b:1', ballot],
      [2, 'no-op', ballot],
      [3, 'c:1', ballot],
      [4, 'd:1', ballot],
    ],
  );
  const newViews = sends(won.effects).filter((e) => e.newView);
  assert.equal(newViews.map((e) => e.to), [2, 3]);
  assert.equal(newViews[0]!.newView!.log, log);
  assert.ok(records(won.effects).some((r) => r.view?.view?.ballot && r.view.leader === 1), 'the NEW-VIEW is recorded (PrintView)');
  assert.equal(won.tells.find((t) => t.type === 'lead')?.['pending'], log, 'every entry awaits a majority under the new ballot');
});

test('a NEW-VIEW built on a promise that carried a snapshot offers nothing at or below its low-water mark (those seqs are chosen)', () => {
  const input = nodeInput();
  const s = campaign(electionMachine, start(electionMachine, input).snapshot);
  assert.is(s.value, 'candidate');
  const ballot = s.context.view.ballot;
  // n2 compacted through seq 71 and executed through 73; its log holds 72..74.
  const kept = [72, 73, 74].map((n) => Object.assign(entry(n, B(1, 2), transfer(`k${n}`, n, n + 100)), { committed: n <= 73 }));
  const snapshot = { set: 1, initialBalance: 10, lowWater: 71, executedThrough: 73, commitThrough: 73, maxSeq: 74, promised: B(1, 2), log: kept };
  const won = step(electionMachine, s, { type: 'promise', from: 2, msg: { ballot, accepted: kept, commitThrough: 73, snapshot } });
  assert.is(won.snapshot.value, 'leader');
  assert.ok(records(won.effects).some((r) => r.snapshot?.lowWater === 71), 'the promiser\'s state is taken');
  const log = records(won.effects).find((r) => r.accepted)!.accepted!.entries!;
  assert.equal(log.map((e) => e.seq), [72, 73, 74], 'no no-op offered for a seq the snapshot says executed');
});

test('a decision runs at its reserved seq: ordered at its prepare\'s seq, executed where the leader put it', () => {
  const input = nodeInput();
  const tx = transfer('t', 1, 4001, 5);
  // The prepare of tx at seq 3, executed; the log runs to seq 6.
  applyEvent(input.state, { accepted: { entries: [1, 2, 3, 4, 5, 6].map((n) => entry(n, B(1, 1), n === 3 ? tx : transfer(`x${n}`, 100 + n, 200 + n), n === 3 ? Phase.PHASE_PREPARE : Phase.PHASE_NONE)) } });
  const leading = step(proposerMachine, start(proposerMachine, input).snapshot, { type: 'lead', ballot: B(1, 1), pending: [] });
  const proposed = steps(proposerMachine, leading.snapshot, [
    { type: 'propose', proposals: [{ command: tx, phase: Phase.PHASE_COMMIT, seq: 3 }] },
    { type: 'endOfTurn' },
  ]);
  const accepted = records(proposed.effects).find((r) => r.accepted)!.accepted!.entries!;
  assert.equal(accepted.map((e) => ({ seq: e.seq, phase: e.phase, runsAt: e.runsAt })), [{ seq: 3, phase: Phase.PHASE_COMMIT, runsAt: 7 }]);
  assert.equal(sends(proposed.effects).map((e) => [e.to, e.accept?.entries?.[0]?.runsAt]), [[2, 7], [3, 7]]);

  // Committed through 7 and executed through 6, the executor runs the decision as seq 7.
  for (let n = 1; n <= 6; n++) applyEvent(input.state, { executed: n === 3 ? { seq: 3, phase: Phase.PHASE_PREPARE, command: tx, txid: 't:1', role: 'coordinator', status: Status.COMMITTED, before: [{ item: 1, balance: 10 }], writes: [{ item: 1, balance: 5 }] } : { seq: n } });
  applyEvent(input.state, { accepted: { entries: accepted } });
  applyEvent(input.state, { committed: { slots: [1, 2, 3, 4, 5, 6, 7] } });
  const ran = step(executorMachine, start(executorMachine, input).snapshot, { type: 'execute' });
  const executed = records(ran.effects).map((r) => r.executed!);
  assert.equal(executed.map((x) => [x.seq, x.phase, x.txid ?? '']), [[3, Phase.PHASE_COMMIT, 't:1'], [7, undefined, '']]);
});

test('a prepared participant never decides alone: it asks, and orders only the decision it hears', () => {
  const input = nodeInput({ node: 4 });
  const tx = transfer('t', 1, 4001);
  const s = start(participantMachine, Object.assign({ txid: 't:1', command: tx, coordinatorCluster: 1, coordinator: 1, mode: 'resume', seq: 3 }, input));
  assert.is(s.snapshot.value, 'prepared');
  const waited = steps(participantMachine, s.snapshot, Array.from({ length: 50 }, () => ({ type: 'tick' })));
  assert.is(waited.snapshot.value, 'prepared');
  let asked = 0;
  let snapshot = s.snapshot;
  for (let i = 0; i < 50; i++) {
    const r = step(participantMachine, snapshot, { type: 'tick' });
    snapshot = r.snapshot;
    assert.equal(r.tells, [], 'no entry is proposed while no decision is known');
    asked += r.parent.filter((p) => p.type === 'out' && (p['body'] as { txQuery?: unknown }).txQuery).length;
  }
  assert.is(asked, 50, 'it asks the coordinator\'s cluster every retry period');

  const decided = step(participantMachine, snapshot, { type: 'decision', commit: false, from: 2 });
  assert.is(decided.snapshot.value, 'deciding');
  assert.equal(decided.tells, [{ type: 'propose', proposals: [{ command: tx, phase: Phase.PHASE_ABORT, seq: 3, reason: 'coordinator aborted' }] }]);
});

test('an intra-shard transfer on a locked item is skipped: ordered as an abort, and the lock event names the holder', () => {
  const input = nodeInput();
  const first = transfer('a', 1, 2);
  const second = transfer('b', 2, 3);
  const leading = step(lockManagerMachine, start(lockManagerMachine, input).snapshot, { type: 'view', view: { role: 'leader', leader: 1, ballot: B(1, 1), live: [2, 3], quorum: true } });
  const r = step(lockManagerMachine, leading.snapshot, { type: 'admit', commands: [first, second] });
  assert.equal(r.tells, [
    {
      type: 'propose',
      proposals: [
        { command: first, phase: Phase.PHASE_NONE, reason: undefined },
        { command: second, phase: Phase.PHASE_ABORT, reason: 'lock conflict' },
      ],
    },
  ]);
  assert.equal(records(r.effects).map((e) => e.lock), [{ command: second, decision: 'skipped', item: 2, holder: 'a:1' }]);
  assert.is(step(lockManagerMachine, r.snapshot, { type: 'tick' }).snapshot.value, 'holding', 'at the next tick the chart shows the locks held');
});

test.run();
