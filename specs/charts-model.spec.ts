/**
 * Model-based checks: xstate/graph walks the election and 2PC charts (the
 * shortest path to every reachable state, over every event the machine can
 * meet), and each path is stepped again with the pure `transition()` to
 * check what its steps ask for against the protocol's rules.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { AnyStateMachine, SnapshotFrom } from 'xstate';
import { getShortestPaths } from 'xstate/graph';
import { coordinatorMachine } from '../actors/coordinator.js';
import { electionMachine } from '../actors/election.js';
import { participantMachine } from '../actors/participant.js';
import { compareBallots, shardbank, type Ballot } from '../protocol/messages.js';
import { nodeInput, start, step, type Stepped } from './support/step.js';

const { Phase, Status } = shardbank;
type Ev = { type: string } & Record<string, unknown>;

/** Each path from the initial snapshot, stepped again, with what every step returned. */
function walk<M extends AnyStateMachine>(machine: M, input: unknown, paths: { steps: { event: Ev }[] }[]): { events: Ev[]; results: Stepped<M>[] }[] {
  return paths.map((p) => {
    let snapshot = start(machine, input).snapshot;
    const results: Stepped<M>[] = [];
    for (const { event } of p.steps) {
      const r = step(machine, snapshot, event);
      results.push(r);
      snapshot = r.snapshot;
    }
    return { events: p.steps.map((s) => s.event), results };
  });
}

function valueOf(s: SnapshotFrom<AnyStateMachine>): string {
  return JSON.stringify(s.value);
}

test('election chart: every reachable state, and a leader only with a majority of promises for its ballot, announcing a NEW-VIEW', () => {
  const input = nodeInput();
  type S = SnapshotFrom<typeof electionMachine>;
  const events = (s: S): Ev[] => {
    const b = s.context.view.ballot;
    const above = (node: number): Ballot => ({ round: (b.round ?? 0) + 1, node });
    const wouldCampaignWith: Ballot = { round: Math.max(b.round ?? 0, s.context.state.promised.round ?? 0, s.context.seenRound) + 1, node: 1 };
    return [
      { type: 'tick' },
      { type: 'preVoteReply', from: 2, msg: { ballot: wouldCampaignWith, granted: true } },
      { type: 'preVoteReply', from: 3, msg: { ballot: wouldCampaignWith, granted: false } },
      { type: 'contact', from: 2, ballot: above(2) },
      { type: 'promise', from: 2, msg: { ballot: b, accepted: [], commitThrough: 0 } },
      { type: 'promise', from: 3, msg: { ballot: b, accepted: [], commitThrough: 0 } },
      { type: 'nack', from: 3, msg: { ballot: b, promised: above(3) } },
      { type: 'prepare', from: 3, msg: { ballot: above(3), commitThrough: 0 } },
    ];
  };
  const paths = getShortestPaths(electionMachine, {
    input,
    events: events as never,
    serializeState: (s) => `${valueOf(s)}|${s.context.elapsed}|${s.context.promises.size}|${s.context.preVotes.size}|${s.context.view.leader}|${s.context.deferred ? 1 : 0}`,
  });
  const reached = new Set(paths.map((p) => valueOf(p.state)));
  assert.equal([...reached].sort(), ['"candidate"', '"follower"', '"leader"', '"precandidate"']);

  for (const { events: evs, results } of walk(electionMachine, input, paths)) {
    let prev = start(electionMachine, input).snapshot;
    let highest: Ballot = { round: 0, node: 0 };
    for (const [i, r] of results.entries()) {
      const from = prev.value;
      const to = r.snapshot.value;
      if (to === 'candidate' && (from !== 'candidate' || r.effects.length > 0)) {
        const promised = r.effects.flatMap((e) => (e.type === 'record' && e.event.promised ? [e.event.promised.ballot!] : []));
        if (promised.length > 0) {
          assert.ok(compareBallots(promised[0], highest) > 0, 'each campaign goes above every ballot before it');
          highest = promised[0]!;
        }
      }
      if (to === 'candidate' && from !== 'candidate') {
        assert.is(from, 'precandidate', 'a campaign starts only after pre-votes');
        const granted = evs.slice(0, i + 1).filter((e) => e.type === 'preVoteReply' && (e['msg'] as { granted: boolean }).granted);
        assert.ok(granted.length + 1 >= input.info.majority, 'a majority would promise');
      }
      if (to === 'leader' && from !== 'leader') {
        assert.is(from, 'candidate', 'only a candidate becomes leader');
        const ballot = prev.context.view.ballot;
        const voters = new Set<number>([1]);
        for (const e of evs.slice(0, i + 1)) if (e.type === 'promise' && compareBallots((e['msg'] as { ballot: Ballot }).ballot, ballot) === 0) voters.add(e['from'] as number);
        assert.ok(voters.size >= input.info.majority, `a majority promised ${JSON.stringify(ballot)}`);
        const to = r.effects.flatMap((e) => (e.type === 'send' && e.envelope.newView ? [e.envelope.to] : []));
        assert.equal(to, [2, 3], 'the NEW-VIEW goes to every peer');
      }
      prev = r.snapshot;
    }
  }
});

test('coordinator chart: it commits only when both sides prepared, answers the participant only with a decision that ran, and is done only when acknowledged', () => {
  const input = Object.assign({ txid: 't:1', command: { client: 't', timestamp: 1, transfer: { sender: 1, receiver: 4001, amount: 1 } }, participantCluster: 2, mode: 'start' as const }, nodeInput());
  type S = SnapshotFrom<typeof coordinatorMachine>;
  const ran = (phase: number, status: number, reason = '') => ({ type: 'txExecuted', txid: 't:1', phase, seq: 5, status, reason });
  const events: Ev[] = [
    ran(Phase.PHASE_PREPARE, Status.COMMITTED),
    ran(Phase.PHASE_PREPARE, Status.ABORTED, 'insufficient balance'),
    { type: 'vote', prepared: true, reason: '' },
    { type: 'vote', prepared: false, reason: 'lock conflict' },
    { type: 'tick' },
    ran(Phase.PHASE_COMMIT, Status.COMMITTED),
    ran(Phase.PHASE_ABORT, Status.ABORTED, 'aborted'),
    { type: 'ack' },
    { type: 'queried' },
  ];
  const c = (s: S) => s.context;
  const paths = getShortestPaths(coordinatorMachine, {
    input,
    events: events as never,
    serializeState: (s) =>
      [valueOf(s), c(s).localPrepared, c(s).remotePrepared, c(s).abortReason !== '', c(s).commit, Math.min(c(s).elapsed, 6), Math.min(c(s).retries, 2)].join('|'),
  });
  const reached = new Set(paths.map((p) => valueOf(p.state)));
  for (const state of ['preparing', 'deciding', 'notifying', 'done', 'abandoned']) assert.ok(reached.has(JSON.stringify(state)), `${state} is reachable`);

  for (const { events: evs, results } of walk(coordinatorMachine, input, paths)) {
    for (const [i, r] of results.entries()) {
      const before = evs.slice(0, i + 1);
      const proposals = r.tells.flatMap((t) => (t.type === 'propose' ? (t['proposals'] as { phase: number }[]) : []));
      if (proposals.some((p) => p.phase === Phase.PHASE_COMMIT)) {
        assert.ok(before.some((e) => e.type === 'txExecuted' && e['phase'] === Phase.PHASE_PREPARE && e['status'] === Status.COMMITTED), 'our prepare ran');
        assert.ok(before.some((e) => e.type === 'vote' && e['prepared'] === true), 'the participant prepared');
        assert.not.ok(before.some((e) => e.type === 'vote' && e['prepared'] === false), 'and never voted abort');
      }
      const decisions = r.parent.flatMap((p) => (p.type === 'out' && (p['body'] as { txDecision?: { commit: boolean } }).txDecision ? [(p['body'] as { txDecision: { commit: boolean } }).txDecision] : []));
      for (const d of decisions) {
        const phase = d.commit ? Phase.PHASE_COMMIT : Phase.PHASE_ABORT;
        assert.ok(before.some((e) => e.type === 'txExecuted' && e['phase'] === phase), 'the decision sent is the one that ran here');
      }
      if (r.snapshot.value === 'done') assert.is(before.at(-1)!.type, 'ack', 'done only when acknowledged');
      if (r.snapshot.value === 'abandoned') assert.not.ok(before.some((e) => e.type === 'txExecuted' && e['phase'] === Phase.PHASE_PREPARE), 'given up only if our prepare never ran');
    }
  }
});

test('participant chart: a prepared participant orders a decision only after hearing it', () => {
  const input = Object.assign(
    { txid: 't:1', command: { client: 't', timestamp: 1, transfer: { sender: 1, receiver: 4001, amount: 1 } }, coordinatorCluster: 1, coordinator: 1, mode: 'start' as const },
    nodeInput({ node: 4 }),
  );
  const events: Ev[] = [
    { type: 'txExecuted', txid: 't:1', phase: Phase.PHASE_PREPARE, seq: 5, status: Status.COMMITTED, reason: '' },
    { type: 'txExecuted', txid: 't:1', phase: Phase.PHASE_PREPARE, seq: 5, status: Status.ABORTED, reason: 'lock conflict' },
    { type: 'decision', commit: true, from: 1 },
    { type: 'decision', commit: false, from: 1 },
    { type: 'prepareAgain', from: 1 },
    { type: 'tick' },
    { type: 'txExecuted', txid: 't:1', phase: Phase.PHASE_COMMIT, seq: 5, status: Status.COMMITTED, reason: '' },
  ];
  const paths = getShortestPaths(participantMachine, {
    input,
    events: events as never,
    serializeState: (s) => [valueOf(s), s.context.decision, Math.min(s.context.retries, 2)].join('|'),
  });
  const reached = new Set(paths.map((p) => valueOf(p.state)));
  for (const state of ['preparing', 'prepared', 'deciding', 'done']) assert.ok(reached.has(JSON.stringify(state)), `${state} is reachable`);
  for (const { events: evs, results } of walk(participantMachine, input, paths)) {
    for (const [i, r] of results.entries()) {
      const decided = r.tells.flatMap((t) => (t.type === 'propose' ? (t['proposals'] as { phase: number; seq?: number }[]) : [])).filter((p) => p.seq !== undefined);
      if (decided.length === 0) continue;
      const heard = evs.slice(0, i + 1).filter((e) => e.type === 'decision');
      assert.ok(heard.length > 0, 'a decision was heard first');
      assert.is(decided[0]!.phase, heard[0]!['commit'] ? Phase.PHASE_COMMIT : Phase.PHASE_ABORT, 'and it is the one ordered');
    }
  }
});

test.run();
