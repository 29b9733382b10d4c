/**
 * The charts: read from each machine's own definition (every state, every
 * transition with its event and guard, eventless ones too), laid out by ELK
 * with children inside their parents and siblings apart, and written as SVG,
 * Mermaid and an exported folder.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { AnyStateMachine } from 'xstate';
import { chartMermaid } from '../charts/mermaid.js';
import { activeIds, chartOf, firedEdges, guardText, statesOf } from '../charts/model.js';
import { drawCharts, MACHINES } from '../cli/studio-charts.js';
import { studioCommand } from '../cli/studio.js';
import { coordinatorMachine } from '../actors/coordinator.js';
import { electionMachine } from '../actors/election.js';
import { proposerMachine } from '../actors/proposer.js';
import { makeTopology } from '../protocol/topology.js';

interface Node {
  id: string;
  states: Record<string, Node>;
  transitions: Map<string, { target?: Node[] }[]>;
  always?: { target?: Node[] }[];
}

/** Counts a machine's transitions straight from its StateNodes: with a target, and without. */
function transitionsOf(machine: AnyStateMachine): { targeted: number; internal: number; ids: string[] } {
  let targeted = 0;
  let internal = 0;
  const ids: string[] = [];
  const walk = (n: Node) => {
    for (const t of [...[...n.transitions.values()].flat(), ...(n.always ?? [])]) {
      if ((t.target ?? []).length > 0) targeted += t.target!.length;
      else internal++;
    }
    for (const c of Object.values(n.states)) {
      ids.push(c.id);
      walk(c);
    }
  };
  walk(machine.root as unknown as Node);
  return { targeted, internal, ids };
}

test('every machine: each state is in its chart, each targeted transition is an arrow, each targetless one a line in its state', () => {
  for (const m of MACHINES) {
    const chart = chartOf(m.machine);
    const own = transitionsOf(m.machine);
    const states = statesOf(chart);
    const ids = states.map((s) => s.id);
    for (const id of own.ids) assert.ok(ids.includes(id), `${m.id}: ${id} is drawn`);
    const arrows = chart.edges.filter((e) => e.event !== '');
    assert.is(arrows.length, own.targeted, `${m.id}: one arrow per target`);
    assert.is(states.reduce((n, s) => n + s.internal.length, 0), own.internal, `${m.id}: one line per targetless transition`);
    for (const e of chart.edges) {
      assert.ok(ids.includes(e.source) && ids.includes(e.target), `${m.id}: ${e.source} -> ${e.target} joins drawn states`);
    }
  }
});

test('labels carry the event and the guard, composed guards included, and eventless transitions read "always"', () => {
  const coord = chartOf(coordinatorMachine);
  const labels = coord.edges.map((e) => `${e.source} -> ${e.target}: ${e.label}`);
  assert.ok(labels.includes('coordinator.preparing -> coordinator.abandoned: tick [timedOut ∧ ¬localPrepared]'), labels.join('\n'));
  assert.ok(labels.includes('coordinator.routing -> coordinator.notifying: always [isNotify]'));
  assert.ok(labels.includes('coordinator.* -> coordinator.dropped: drop'), 'a transition on the machine leaves from "in any state"');
  const election = chartOf(electionMachine);
  assert.ok(election.edges.some((e) => e.source === 'election.candidate' && e.target === 'election.leader' && e.label === 'promise [promiseCompletesQuorum]'));
  assert.is(guardText(undefined), '');
  assert.is(guardText('hasQueued'), 'hasQueued');
});

test('active states and the arrow a step took', () => {
  assert.equal(activeIds('proposer', { leading: 'quiet' }), ['proposer', 'proposer.leading', 'proposer.leading.quiet']);
  assert.equal(activeIds('election', 'leader'), ['election', 'election.leader']);
  const chart = chartOf(proposerMachine);
  const fired = firedEdges(chart, activeIds('proposer', { leading: 'quiet' }), 'endOfTurn', activeIds('proposer', { leading: 'replicating' }));
  assert.is(fired.length, 1);
  const edge = chart.edges.find((e) => e.id === fired[0])!;
  assert.is(edge.source, 'proposer.leading.quiet');
  assert.is(edge.target, 'proposer.leading.replicating');
  assert.equal(firedEdges(chart, activeIds('proposer', 'idle'), 'tick', activeIds('proposer', 'idle')), [], 'a step inside a state takes no arrow');
});

test('the layout nests every state inside its parent, keeps siblings apart, and places every arrow', async () => {
  for (const c of await drawCharts()) {
    const boxes = new Map(c.layout.states.map((p) => [p.state.id, p]));
    for (const p of c.layout.states) {
      assert.ok(p.width > 0 && p.height > 0 && p.x >= 0 && p.y >= 0 && p.x + p.width <= c.layout.width + 0.5 && p.y + p.height <= c.layout.height + 0.5, `${p.state.id} lies on the canvas`);
      for (const child of p.state.children) {
        const q = boxes.get(child.id)!;
        assert.ok(q.x >= p.x && q.y >= p.y && q.x + q.width <= p.x + p.width + 0.5 && q.y + q.height <= p.y + p.height + 0.5, `${child.id} lies inside ${p.state.id}`);
      }
      const siblings = p.state.children.map((s) => boxes.get(s.id)!);
      for (const a of siblings) {
        for (const b of siblings) {
          if (a === b) continue;
          const apart = a.x + a.width <= b.x + 0.5 || b.x + b.width <= a.x + 0.5 || a.y + a.height <= b.y + 0.5 || b.y + b.height <= a.y + 0.5;
          assert.ok(apart, `${a.state.id} and ${b.state.id} do not overlap`);
        }
      }
    }
    for (const e of c.layout.edges) assert.ok(e.points.length >= 2, `${c.id}: ${e.edge.id} is routed`);
    for (const id of c.states) assert.ok(c.svg.includes(`data-state="${id}"`), `${c.id}'s SVG holds ${id}`);
  }
});

test('Mermaid: a stateDiagram-v2 per machine with its states nested and its arrows labelled', () => {
  const text = chartMermaid(chartOf(proposerMachine));
  assert.ok(text.startsWith('stateDiagram-v2\n'));
  const lines = text.split('\n').map((l) => l.trim());
  const open = lines.indexOf('state "leading" as proposer_leading {');
  assert.ok(open > 0, 'leading is a composite state');
  assert.ok(lines.indexOf('state "quiet" as proposer_leading_quiet') > open, 'quiet is declared inside it');
  assert.ok(lines.includes('proposer_leading_quiet --> proposer_leading_replicating : endOfTurn [hasQueued]'));
  assert.ok(lines.includes('[*] --> proposer_idle'));
  const arrows = lines.filter((l) => l.includes('-->') && !l.startsWith('[*]'));
  assert.is(arrows.length, chartOf(proposerMachine).edges.filter((e) => e.event !== '').length);
});

test('studio --export writes one SVG per machine and an index.html holding them all; bad output is one line', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'shardbank-export-'));
  const topology = makeTopology({});
  const write = process.stdout.write.bind(process.stdout);
  try {
    process.stdout.write = (() => true) as typeof process.stdout.write;
    const code = await studioCommand({ topology, port: 0, export: dir });
    process.stdout.write = write;
    assert.is(code, 0);
    const files = readdirSync(dir).sort();
    assert.equal(files, [...MACHINES.map((m) => `${m.id}.svg`), 'index.html'].sort());
    const index = readFileSync(join(dir, 'index.html'), 'utf8');
    for (const m of MACHINES) {
      const svg = readFileSync(join(dir, `${m.id}.svg`), 'utf8');
      assert.ok(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"'), `${m.id}.svg is an SVG document`);
      assert.ok(index.includes(`data-machine="${m.id}"`), `index.html shows ${m.id}`);
    }
    assert.not.match(index, /https?:\/\/(?!www\.w3\.org)/, 'the index loads nothing from the network');
  } finally {
    process.stdout.write = write;
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
