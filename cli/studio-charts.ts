/**
 * The studio's charts: every machine of a node's actor hierarchy, drawn from
 * its own definition and laid out once per process (ELK takes a few hundred
 * milliseconds for all of them; the charts never change while it runs).
 */
import type { AnyStateMachine } from 'xstate';
import { acceptorMachine } from '../actors/acceptor.js';
import { coordinatorMachine } from '../actors/coordinator.js';
import { electionMachine } from '../actors/election.js';
import { executorMachine } from '../actors/executor.js';
import { lockManagerMachine } from '../actors/lockManager.js';
import { nodeMachine } from '../actors/node.js';
import { participantMachine } from '../actors/participant.js';
import { proposerMachine } from '../actors/proposer.js';
import { transactionsMachine } from '../actors/transactions.js';
import { layoutChart, type ChartLayout } from '../charts/layout.js';
import { chartOf, statesOf, type Chart } from '../charts/model.js';
import { chartSvg } from '../charts/svg.js';

export interface MachineEntry {
  /** The machine's id, which is also what inspection records name it by. */
  id: string;
  machine: AnyStateMachine;
  /** One line on what the actor does. */
  about: string;
  /** Per transaction (many at once), not one per node. */
  perTransaction?: boolean;
}

/** The machines in the order a node's hierarchy reads, root first. */
export const MACHINES: readonly MachineEntry[] = [
  { id: 'node', machine: nodeMachine, about: 'the node: routes envelopes to its actors, ticks them, fails and recovers' },
  { id: 'election', machine: electionMachine, about: 'leader election (Multi-Paxos phase 1): follower, candidate, leader' },
  { id: 'acceptor', machine: acceptorMachine, about: 'promises and accepts; catches up with the leader when behind' },
  { id: 'proposer', machine: proposerMachine, about: "the leader's side of phase 2: batches, pipelines and retransmits accepts" },
  { id: 'executor', machine: executorMachine, about: 'applies committed entries in seq order, answers reads' },
  { id: 'lockManager', machine: lockManagerMachine, about: 'item locks at the leader: admits, parks or skips transfers' },
  { id: 'transactions', machine: transactionsMachine, about: 'spawns and routes the per-transaction 2PC actors' },
  { id: 'coordinator', machine: coordinatorMachine, about: "2PC coordinator (the sender's cluster), one per cross-shard transfer", perTransaction: true },
  { id: 'participant', machine: participantMachine, about: "2PC participant (the receiver's cluster), one per cross-shard transfer", perTransaction: true },
];

export interface DrawnChart {
  id: string;
  about: string;
  perTransaction: boolean;
  chart: Chart;
  layout: ChartLayout;
  svg: string;
  /** The real states' ids (pseudo-states left out). */
  states: string[];
}

let drawn: Promise<DrawnChart[]> | null = null;

/** Every machine's chart, laid out (once per process). */
export function drawCharts(): Promise<DrawnChart[]> {
  drawn ??= Promise.all(
    MACHINES.map(async (m) => {
      const chart = chartOf(m.machine);
      const layout = await layoutChart(chart);
      const states = statesOf(chart)
        .filter((s) => s !== chart.root && s.kind !== 'initial' && s.kind !== 'any')
        .map((s) => s.id);
      return { id: m.id, about: m.about, perTransaction: !!m.perTransaction, chart, layout, svg: chartSvg(layout), states };
    }),
  );
  return drawn;
}
