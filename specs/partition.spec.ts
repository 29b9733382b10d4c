/**
 * The partitioner on graphs whose best answer is plain to see, under a
 * balance constraint it must never break, breaking ties toward the fewest
 * moves, the same for the same seed; and the METIS / hMETIS files it reads
 * and writes.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FormatError, formatHmetis, formatMetisGraph, formatPartition, parseHmetis, parseMetisGraph, parsePartition } from '../partition/formats.js';
import { balanceLimit, cutNetOf, cutOf, graphFromPairs, HypergraphBuilder, partWeightsOf, type Hypergraph } from '../partition/hypergraph.js';
import { movesBetween } from '../partition/index.js';
import { partition } from '../partition/partition.js';
import { createRng, type Rng } from '../partition/rng.js';

/** k cliques of `size` vertices (edges of weight `inside`), clique c joined to clique c + 1 by one edge of weight 1. */
function ringOfCliques(k: number, size: number, inside = 3, isolated = 0): Hypergraph {
  const b = new HypergraphBuilder(k * size + isolated);
  for (let c = 0; c < k; c++) {
    for (let i = 0; i < size; i++) for (let j = i + 1; j < size; j++) b.addEdge([c * size + i, c * size + j], inside);
    if (k > 1) b.addEdge([c * size + (c % size), ((c + 1) % k) * size + ((c + 3) % size)], 1);
  }
  return b.build();
}

function randomGraph(rng: Rng, n: number, edges: number, maxPins: number, weighted: boolean): Hypergraph {
  const b = new HypergraphBuilder(n);
  if (weighted) for (let v = 0; v < n; v++) b.setVertexWeight(v, rng.int(1, 5));
  for (let e = 0; e < edges; e++) {
    const pins = Array.from({ length: rng.int(2, maxPins) }, () => rng.int(0, n - 1));
    b.addEdge(pins, rng.int(1, 4));
  }
  return b.build();
}

// ---------------------------------------------------------------- cuts

test('k cliques in a ring of light edges: the cut is the light edges, one clique per part', () => {
  for (const k of [2, 3, 4, 5, 7]) {
    const g = ringOfCliques(k, 8);
    const r = partition(g, { parts: k, imbalance: 0, seed: 11 });
    const ringEdges = k === 2 ? 2 : k;
    assert.is(r.cut, ringEdges, `k=${k}`);
    assert.is(r.imbalance, 0, `k=${k}: every part holds one clique`);
    const partOfClique = Array.from({ length: k }, (_, c) => r.parts[c * 8]!);
    for (let c = 0; c < k; c++) for (let i = 0; i < 8; i++) assert.is(r.parts[c * 8 + i], partOfClique[c], `k=${k}: clique ${c} stays whole`);
    assert.is(new Set(partOfClique).size, k, `k=${k}: each clique has a part of its own`);
  }
});

test('two dense halves joined by a heavy hyperedge and a light one: the light one is cut', () => {
  const b = new HypergraphBuilder(12);
  for (const half of [0, 6]) for (let i = 0; i < 6; i++) for (let j = i + 1; j < 6; j++) b.addEdge([half + i, half + j], 2);
  b.addEdge([0, 1, 2, 6], 1);
  b.addEdge([3, 4, 5], 9);
  const g = b.build();
  const r = partition(g, { parts: 2, imbalance: 0, seed: 1 });
  assert.is(r.cut, 1);
  assert.is(cutOf(g, r.parts, 2), 1);
  assert.is(cutNetOf(g, r.parts), 1);
});

test('a path of 12 in 3 parts: two cut edges, four vertices each', () => {
  const g = graphFromPairs(12, Array.from({ length: 11 }, (_, i) => [i, i + 1] as const));
  const r = partition(g, { parts: 3, imbalance: 0, seed: 5 });
  assert.is(r.cut, 2);
  assert.equal([...r.partWeights], [4, 4, 4]);
});

test('one part, more parts than vertices, no edges: answered, not thrown', () => {
  const g = ringOfCliques(3, 4);
  assert.is(partition(g, { parts: 1 }).cut, 0);
  const many = partition(graphFromPairs(4, [[0, 1], [2, 3]]), { parts: 10, imbalance: 0 });
  assert.ok(many.balanced && Math.max(...many.partWeights) <= 1);
  const empty = partition(new HypergraphBuilder(9).build(), { parts: 3, imbalance: 0 });
  assert.equal([...empty.partWeights], [3, 3, 3]);
  assert.throws(() => partition(g, { parts: 0 }), /parts/);
  assert.throws(() => partition(g, { parts: 3, initial: [0, 1] }), /initial/);
  assert.throws(() => partition(g, { parts: 3, initial: new Array(12).fill(3) }), /outside 0..2/);
});

// ---------------------------------------------------------------- balance

test('balance is never exceeded: 60 random graphs and hypergraphs, weighted and not, 2 to 7 parts', () => {
  const rng = createRng(2024);
  for (let i = 0; i < 60; i++) {
    const n = rng.int(10, 600);
    const weighted = i % 3 === 0;
    const g = randomGraph(rng, n, rng.int(0, 3 * n), i % 2 === 0 ? 2 : 6, weighted);
    const k = rng.int(2, 7);
    const imbalance = [0, 0.01, 0.03, 0.1][i % 4]!;
    const initial = i % 5 === 0 ? Array.from({ length: n }, () => rng.int(0, k - 1)) : undefined;
    const r = partition(g, { parts: k, imbalance, seed: i, initial });
    const what = `graph ${i}: n=${n} k=${k} eps=${imbalance}${weighted ? ' weighted' : ''}`;
    const limit = balanceLimit(g.totalVertexWeight, k, imbalance);
    const weights = partWeightsOf(g, r.parts, k);
    assert.ok(r.parts.every((p) => p >= 0 && p < k), `${what}: parts in 0..k-1`);
    assert.equal([...r.partWeights], [...weights], `${what}: reported weights`);
    if (!weighted) assert.ok(r.balanced, `${what}: unit weights always fit`);
    if (r.balanced) assert.ok(Math.max(...weights) <= limit, `${what}: heaviest ${Math.max(...weights)} > limit ${limit}`);
    assert.is(r.cut, cutOf(g, r.parts, k), `${what}: reported cut`);
    if (initial) assert.is(r.moved, r.parts.filter((p, v) => p !== initial[v]).length, `${what}: moved`);
  }
});

test('the balance limit: (1 + eps) x W / k, never below ceil(W / k)', () => {
  assert.is(balanceLimit(9000, 3, 0.03), 3090);
  assert.is(balanceLimit(9000, 5, 0.03), 1854);
  assert.is(balanceLimit(10, 3, 0.03), 4);
  assert.is(balanceLimit(12, 3, 0), 4);
});

// ---------------------------------------------------------------- moves

test('an initial assignment that is already optimal moves nothing, whatever its part numbers', () => {
  const k = 5;
  const g = ringOfCliques(k, 6, 3, 10);
  // Clique c is in part (c + 2) % k; the 10 isolated vertices are spread 2 per part.
  const initial = Array.from({ length: g.vertexCount }, (_, v) => (v < k * 6 ? (Math.floor(v / 6) + 2) % k : v % k));
  for (const seed of [1, 2, 3]) {
    const r = partition(g, { parts: k, imbalance: 0.03, seed, initial });
    assert.is(r.cut, k);
    assert.is(r.moved, 0, `seed ${seed}`);
    assert.equal([...r.parts], initial);
  }
});

test('among equal cuts the fewest vertices move: half a clique comes home, the other clique stays', () => {
  const g = ringOfCliques(3, 6);
  const initial = Array.from({ length: 18 }, (_, v) => Math.floor(v / 6));
  // Vertices 0..2 of clique 0 were put in part 1: the best cut needs 3 of them, or 9 others, to move.
  for (const v of [0, 1, 2]) initial[v] = 1;
  const r = partition(g, { parts: 3, imbalance: 0.5, seed: 4, initial });
  assert.is(r.cut, 3);
  assert.is(r.moved, 3);
  assert.equal([...r.parts], Array.from({ length: 18 }, (_, v) => Math.floor(v / 6)));
  assert.equal(movesBetween(initial, r.parts), [0, 1, 2].map((vertex) => ({ vertex, from: 1, to: 0 })));
});

test('untouched vertices stay where they are unless balance needs them: then only the excess moves', () => {
  // Two pairs that trade (0-1 in part 0, 2-3 in part 1) and 16 untouched vertices, 12 of them in part 0.
  const g = graphFromPairs(20, [[0, 1], [2, 3]]);
  const initial = Array.from({ length: 20 }, (_, v) => (v < 2 ? 0 : v < 4 ? 1 : v < 16 ? 0 : 1));
  const r = partition(g, { parts: 2, imbalance: 0, seed: 1, initial });
  assert.is(r.cut, 0);
  assert.equal([...r.partWeights], [10, 10]);
  // Part 0 held 14: four of its untouched vertices move, nothing else.
  assert.is(r.moved, 4);
  for (let v = 0; v < 4; v++) assert.is(r.parts[v], initial[v], `trading vertex ${v} stays`);
  const loose = partition(g, { parts: 2, imbalance: 0.5, seed: 1, initial });
  assert.is(loose.moved, 0, 'with room to spare nothing moves');
});

// ---------------------------------------------------------------- determinism

test('the same seed gives the same partition; every seed gives a valid one', () => {
  const g = randomGraph(createRng(7), 2000, 4000, 2, false);
  const a = partition(g, { parts: 5, seed: 42 });
  const b = partition(g, { parts: 5, seed: 42 });
  assert.equal([...a.parts], [...b.parts]);
  assert.is(a.cut, b.cut);
  for (const seed of [1, 2, 3]) assert.ok(partition(g, { parts: 5, seed }).balanced);
});

// ---------------------------------------------------------------- files

test('METIS graph files: weights, isolated vertices at the end and comments survive a round trip', () => {
  const text = '% a comment\n5 3 011\n2 2 4 3 7\n1 1 4 3 1\n4 1 7 2 1\n1\n1\n';
  const g = parseMetisGraph(text);
  assert.is(g.vertexCount, 5);
  assert.is(g.edgeCount, 3);
  assert.equal([...g.vertexWeight], [2, 1, 4, 1, 1]);
  const again = parseMetisGraph(formatMetisGraph(g));
  assert.equal([...again.vertexWeight], [...g.vertexWeight]);
  assert.is(again.edgeCount, 3);
  const parts = [0, 0, 1, 1, 1];
  assert.is(cutOf(again, parts, 2), cutOf(g, parts, 2));
  assert.is(cutOf(g, parts, 2), 7 + 1);
  assert.is(formatMetisGraph(graphFromPairs(3, [[0, 1], [0, 1]])), '3 1 01\n2 2\n1 2\n\n');
});

test('hMETIS files and .part files round-trip', () => {
  const g = parseHmetis('3 6 11\n5 1 2 3\n1 3 4\n2 4 5 6\n1\n1\n1\n2\n2\n2\n');
  assert.is(g.edgeCount, 3);
  assert.equal([...g.vertexWeight], [1, 1, 1, 2, 2, 2]);
  const again = parseHmetis(formatHmetis(g));
  assert.equal([...again.pins], [...g.pins]);
  assert.equal([...again.edgeWeight], [5, 1, 2]);
  assert.is(cutOf(g, [0, 0, 0, 1, 1, 1], 2), 1);
  const parts = Int32Array.from([2, 0, 1, 1, 0, 2]);
  assert.equal([...parsePartition(formatPartition(parts), 6, 3)], [...parts]);
});

test('malformed files are refused with the line at fault', () => {
  const cases: [string, () => unknown, number, RegExp][] = [
    ['no header', () => parseMetisGraph('\n\n'), 0, /empty file/],
    ['header word', () => parseMetisGraph('3 x\n'), 1, /edge count "x"/],
    ['neighbour out of range', () => parseMetisGraph('2 1\n2\n3\n'), 3, /neighbour 3 is outside 1..2/],
    ['one-sided edge', () => parseMetisGraph('3 1\n2\n\n\n'), 2, /vertex 1 lists neighbour 2, but vertex 2 does not/],
    ['edge count', () => parseMetisGraph('2 2\n2\n1\n'), 1, /announces 2 edges but the vertex lines hold 1/],
    ['self loop', () => parseMetisGraph('% c\n2 1\n1\n\n'), 3, /lists itself/],
    ['weights differ', () => parseMetisGraph('2 1 1\n2 3\n1 4\n'), 3, /weight 4 here but 3 on line 2/],
    ['too few lines', () => parseMetisGraph('4 1\n2\n1\n'), 3, /announces 4 vertices but the file ends after 2/],
    ['too many lines', () => parseMetisGraph('1 0\n\n1\n'), 3, /more vertex lines/],
    ['ncon', () => parseMetisGraph('1 0 10 2\n1 1\n'), 1, /multi-constraint/],
    ['hgr pin', () => parseHmetis('1 2\n1 3\n'), 2, /pin 3 is outside 1..2/],
    ['hgr short', () => parseHmetis('2 2\n1 2\n'), 2, /announces 2 hyperedges/],
    ['part count', () => parsePartition('0\n1\n', 3, 2), 0, /2 parts for 3 vertices/],
    ['part range', () => parsePartition('0\n2\n', 2, 2), 2, /part 2 is outside 0..1/],
  ];
  for (const [what, parse, line, message] of cases) {
    try {
      parse();
      assert.unreachable(`${what}: accepted`);
    } catch (e) {
      assert.instance(e, FormatError, what);
      assert.is((e as FormatError).line, line, `${what}: line`);
      assert.match((e as Error).message, message, what);
    }
  }
});

// ---------------------------------------------------------------- command

test('shardbank partition: writes one part per vertex; a malformed file is one line with file and line, exit 2', () => {
  const dir = mkdtempSync(join(tmpdir(), 'shardbank-partition-'));
  try {
    const graph = join(dir, 'ring.graph');
    writeFileSync(graph, formatMetisGraph(ringOfCliques(3, 5)));
    const out = join(dir, 'ring.part');
    const ok = spawnSync(process.execPath, ['dist/cli/main.js', 'partition', graph, '--parts', '3', '--imbalance', '0', '--out', out, '--json'], { encoding: 'utf8' });
    assert.is(ok.status, 0, ok.stderr);
    const summary = JSON.parse(ok.stdout) as { cut: number; imbalance: number; timeMs: number };
    assert.is(summary.cut, 3);
    assert.is(summary.imbalance, 0);
    const parts = readFileSync(out, 'utf8').trim().split('\n');
    assert.is(parts.length, 15);
    const measured = spawnSync(process.execPath, ['dist/cli/main.js', 'partition', graph, '--parts', '3', '--evaluate', out], { encoding: 'utf8' });
    assert.match(measured.stdout, /cut 3, imbalance 0\.000/);

    const bad = join(dir, 'bad.graph');
    writeFileSync(bad, '3 2\n2\n1 3\n2 4\n');
    const refused = spawnSync(process.execPath, ['dist/cli/main.js', 'partition', bad, '--parts', '2'], { encoding: 'utf8' });
    assert.is(refused.status, 2);
    assert.is(refused.stderr, `shardbank partition: ${bad}:4: vertex 3: neighbour 4 is outside 1..3\n`);
    const missing = spawnSync(process.execPath, ['dist/cli/main.js', 'partition', join(dir, 'none.graph'), '--parts', '2'], { encoding: 'utf8' });
    assert.is(missing.status, 2);
    assert.match(missing.stderr, /none\.graph: cannot read \(ENOENT\)\n$/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
