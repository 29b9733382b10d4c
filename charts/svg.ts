/**
 * A laid-out chart as one standalone SVG document. Every state is a
 * `<g class="state" data-state="proposer.leading.quiet">` and every arrow a
 * `<g class="edge" data-event="tick" data-source=… data-target=…>`, so a page
 * lights states and flashes arrows by toggling classes, and the same SVG,
 * written to a file, draws on its own (its style is inside it).
 */
import { TEXT, titleOf, type ChartLayout, type PlacedEdge, type PlacedState } from './layout.js';

/** The drawing's own style: plain on disk; the studio page adds `.lit` and `.flash`. */
export const CHART_STYLE = `
.chart { font-family: ui-monospace, 'DejaVu Sans Mono', Menlo, Consolas, monospace; }
.chart .state > rect { fill: #f7f9fc; stroke: #5b6b7f; stroke-width: 1.2; }
.chart .state.kind-compound > rect, .chart .state.kind-parallel > rect { fill: #eef2f7; }
.chart .state.kind-parallel > rect { stroke-dasharray: 6 3; }
.chart .state.kind-any > rect { fill: #fffdf4; stroke: #b89d4a; stroke-dasharray: 4 3; }
.chart .state.kind-final > rect.inner { fill: none; }
.chart .state.kind-initial > circle { fill: #33404f; }
.chart .state .title { font-size: ${TEXT.titlePx}px; font-weight: 600; fill: #1d2733; }
.chart .state.kind-any .title { font-weight: 400; font-style: italic; fill: #7a6520; }
.chart .state .line { font-size: ${TEXT.linePx}px; fill: #4a5868; }
.chart .edge path { fill: none; stroke: #7d8a99; stroke-width: 1.2; }
.chart .edge .label { font-size: ${TEXT.labelPx}px; fill: #36587a; }
.chart .edge .label-bg { fill: #ffffff; opacity: 0.85; }
`;

export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

const n = (v: number) => (Math.round(v * 10) / 10).toString();

function stateSvg(p: PlacedState): string {
  const s = p.state;
  const attrs = `class="state kind-${s.kind}" data-state="${escapeXml(s.id)}"`;
  if (s.kind === 'initial') {
    return `<g ${attrs}><circle cx="${n(p.x + p.width / 2)}" cy="${n(p.y + p.height / 2)}" r="${n(p.width / 2)}"/></g>`;
  }
  const parts = [`<rect x="${n(p.x)}" y="${n(p.y)}" width="${n(p.width)}" height="${n(p.height)}" rx="8" ry="8"/>`];
  if (s.kind === 'final') parts.push(`<rect class="inner" x="${n(p.x + 3)}" y="${n(p.y + 3)}" width="${n(p.width - 6)}" height="${n(p.height - 6)}" rx="6" ry="6"/>`);
  const left = p.x + TEXT.padPx;
  parts.push(`<text class="title" x="${n(left)}" y="${n(p.y + 17)}">${escapeXml(titleOf(s))}</text>`);
  p.lines.forEach((line, i) => {
    const event = /^(\S+)/.exec(line)?.[1] ?? '';
    parts.push(`<text class="line" data-event="${escapeXml(event)}" x="${n(left)}" y="${n(p.y + TEXT.headPx + 10 + i * TEXT.lineGapPx)}">${escapeXml(line)}</text>`);
  });
  return `<g ${attrs}>${parts.join('')}</g>`;
}

function edgeSvg(p: PlacedEdge, marker: string): string {
  const e = p.edge;
  if (p.points.length === 0) return '';
  const d = p.points.map((pt, i) => `${i === 0 ? 'M' : 'L'}${n(pt.x)} ${n(pt.y)}`).join(' ');
  const title = e.actions.length > 0 ? `<title>${escapeXml(`${e.label || 'initial'} / ${e.actions.join(', ')}`)}</title>` : '';
  const parts = [`<path d="${d}" marker-end="url(#${marker})"/>`];
  if (p.label && e.label) {
    const l = p.label;
    parts.push(`<rect class="label-bg" x="${n(l.x)}" y="${n(l.y)}" width="${n(l.width)}" height="${n(l.height)}" rx="2"/>`);
    parts.push(`<text class="label" x="${n(l.x + 3)}" y="${n(l.y + l.height - 3.5)}">${escapeXml(e.label)}</text>`);
  }
  const attrs = `class="edge" data-edge="${e.id}" data-event="${escapeXml(e.event)}" data-source="${escapeXml(e.source)}" data-target="${escapeXml(e.target)}"`;
  return `<g ${attrs}>${title}${parts.join('')}</g>`;
}

/** The chart as an SVG document (with an XML-free root, so it can be inlined in HTML too). */
export function chartSvg(layout: ChartLayout): string {
  const machine = layout.chart.machine;
  const marker = `arrow-${machine}`;
  const w = Math.ceil(layout.width);
  const h = Math.ceil(layout.height);
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" class="chart" data-machine="${escapeXml(machine)}" viewBox="0 0 ${w} ${h}" width="${w}" height="${h}">`,
    `<title>${escapeXml(machine)} statechart</title>`,
    `<defs><marker id="${marker}" viewBox="0 0 10 10" refX="9" refY="5" markerUnits="userSpaceOnUse" markerWidth="9" markerHeight="9" orient="auto-start-reverse"><path d="M0 0 L10 5 L0 10 z" fill="#7d8a99"/></marker></defs>`,
    `<style>${CHART_STYLE}</style>`,
    `<g class="states">${layout.states.map(stateSvg).join('')}</g>`,
    `<g class="edges">${layout.edges.map((e) => edgeSvg(e, marker)).join('')}</g>`,
    '</svg>',
  ].join('\n');
}
