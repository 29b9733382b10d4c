/**
 * Lays a chart out with ELK (elkjs, the Eclipse Layout Kernel's layered
 * algorithm): every box, nested region, arrow and label position comes from
 * the layout engine; this file only measures text and reads the result back.
 * Coordinates are absolute (ELK's `json.edgeCoords` / `shapeCoords` ROOT).
 */
import elkBundled from 'elkjs/lib/elk.bundled.js';
import type { ELK as ElkApi, ElkExtendedEdge, ElkNode } from 'elkjs/lib/elk-api.js';
import type { Chart, ChartEdge, ChartState } from './model.js';

/** Text metrics of the drawing (monospace, so a width is characters x advance). */
export const TEXT = {
  titlePx: 12,
  linePx: 10.5,
  labelPx: 10.5,
  /** A monospace glyph's advance as a share of its size. */
  advance: 0.61,
  lineGapPx: 14,
  headPx: 24,
  padPx: 8,
} as const;

export interface Box {
  x: number;
  y: number;
  width: number;
  height: number;
}

export interface PlacedState extends Box {
  state: ChartState;
  depth: number;
  /** Lines drawn in the box under its name (entry / exit / internal transitions). */
  lines: string[];
}

export interface PlacedEdge {
  edge: ChartEdge;
  points: { x: number; y: number }[];
  label: Box | null;
}

export interface ChartLayout {
  chart: Chart;
  width: number;
  height: number;
  states: PlacedState[];
  edges: PlacedEdge[];
}

/** elkjs's bundle is CommonJS: its default import is the constructor itself. */
const ELK = elkBundled as unknown as new () => ElkApi;

export function textWidth(text: string, px: number): number {
  return Math.ceil([...text].length * px * TEXT.advance);
}

/** The lines a state shows in its box, below its name. */
export function linesOf(s: ChartState): string[] {
  const out: string[] = [];
  if (s.entry.length > 0) out.push(`entry / ${s.entry.join(', ')}`);
  if (s.exit.length > 0) out.push(`exit / ${s.exit.join(', ')}`);
  return [...out, ...s.internal];
}

/** The caption of a state box. */
export function titleOf(s: ChartState): string {
  return s.kind === 'any' ? 'in any state' : s.key;
}

function headHeight(lines: string[]): number {
  return TEXT.headPx + lines.length * TEXT.lineGapPx + (lines.length > 0 ? TEXT.padPx / 2 : 0);
}

function boxWidth(s: ChartState, lines: string[]): number {
  const widest = Math.max(textWidth(titleOf(s), TEXT.titlePx), ...lines.map((l) => textWidth(l, TEXT.linePx)));
  return widest + 2 * TEXT.padPx + 4;
}

const ROOT_OPTIONS: Record<string, string> = {
  'elk.algorithm': 'layered',
  'elk.direction': 'DOWN',
  'elk.hierarchyHandling': 'INCLUDE_CHILDREN',
  'elk.json.edgeCoords': 'ROOT',
  'elk.json.shapeCoords': 'ROOT',
  'elk.edgeRouting': 'ORTHOGONAL',
  'elk.layered.spacing.nodeNodeBetweenLayers': '46',
  'elk.spacing.nodeNode': '28',
  'elk.spacing.edgeNode': '14',
  'elk.spacing.edgeEdge': '10',
  'elk.spacing.edgeLabel': '3',
  'elk.edgeLabels.placement': 'CENTER',
  'elk.layered.nodePlacement.strategy': 'NETWORK_SIMPLEX',
  'elk.layered.crossingMinimization.semiInteractive': 'false',
  'elk.padding': '[top=16,left=16,bottom=16,right=16]',
};

function elkNode(s: ChartState): ElkNode {
  if (s.kind === 'initial') return { id: s.id, width: 14, height: 14 };
  const lines = linesOf(s);
  if (s.children.length === 0) return { id: s.id, width: boxWidth(s, lines), height: headHeight(lines) + (lines.length > 0 ? TEXT.padPx / 2 : 0) };
  const top = headHeight(lines) + 6;
  return {
    id: s.id,
    layoutOptions: {
      'elk.padding': `[top=${top},left=14,bottom=14,right=14]`,
      'elk.nodeSize.constraints': 'MINIMUM_SIZE',
      'elk.nodeSize.minimum': `(${boxWidth(s, lines)}, ${top + 20})`,
    },
    children: s.children.map(elkNode),
  };
}

function elkEdge(e: ChartEdge): ElkExtendedEdge {
  const labels = e.label ? [{ id: `${e.id}.label`, text: e.label, width: textWidth(e.label, TEXT.labelPx) + 6, height: TEXT.lineGapPx }] : [];
  return { id: e.id, sources: [e.source], targets: [e.target], labels };
}

/** Lays out one chart; the machine's root is the canvas, its states the boxes. */
export async function layoutChart(chart: Chart): Promise<ChartLayout> {
  const elk = new ELK();
  const graph: ElkNode = {
    id: '__canvas',
    layoutOptions: ROOT_OPTIONS,
    children: chart.root.children.map(elkNode),
    edges: chart.edges.map(elkEdge),
  };
  const laid = await elk.layout(graph);

  const byId = new Map<string, ChartState>();
  const index = (s: ChartState) => {
    byId.set(s.id, s);
    s.children.forEach(index);
  };
  index(chart.root);

  const states: PlacedState[] = [];
  const walk = (n: ElkNode, depth: number) => {
    const state = byId.get(n.id);
    if (state) states.push({ state, depth, lines: linesOf(state), x: n.x ?? 0, y: n.y ?? 0, width: n.width ?? 0, height: n.height ?? 0 });
    for (const c of n.children ?? []) walk(c, depth + 1);
  };
  for (const c of laid.children ?? []) walk(c, 0);

  const edgeById = new Map(chart.edges.map((e) => [e.id, e]));
  const edges: PlacedEdge[] = (laid.edges ?? []).map((le: ElkExtendedEdge) => {
    const section = (le as ElkExtendedEdge).sections?.[0];
    const points = section ? [section.startPoint, ...(section.bendPoints ?? []), section.endPoint] : [];
    const l = le.labels?.[0];
    const label = l ? { x: l.x ?? 0, y: l.y ?? 0, width: l.width ?? 0, height: l.height ?? 0 } : null;
    return { edge: edgeById.get(le.id)!, points, label };
  });
  return { chart, width: laid.width ?? 0, height: laid.height ?? 0, states, edges };
}
