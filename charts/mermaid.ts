/**
 * A chart as Mermaid `stateDiagram-v2` text, for docs and reviews. States
 * keep their nesting (`state leading { … }`, parallel regions split by `--`),
 * arrows carry `event [guard]`, final states lead to `[*]`, and a state's
 * targetless transitions become a note beside it.
 */
import { ALWAYS, type Chart, type ChartState } from './model.js';
import { linesOf, titleOf } from './layout.js';

/** A Mermaid-safe name for a state id (Mermaid ids take no dots). */
function mid(id: string): string {
  return id.replace(/\.\*$/, '.any').replace(/[^A-Za-z0-9_]/g, '_');
}

function labelText(text: string): string {
  // Mermaid ends a transition label at a newline and reads ':' and ';' specially.
  return text.replace(/[:;]/g, ' ').replace(/\s+/g, ' ').trim();
}

/** The chart as one Mermaid diagram (no fences). */
export function chartMermaid(chart: Chart): string {
  const out = ['stateDiagram-v2', '  direction TB'];
  const edgesFrom = new Map<string, string[]>();
  for (const e of chart.edges) {
    const from = e.source.endsWith('.•') ? '[*]' : mid(e.source);
    const label = e.label ? ` : ${labelText(e.event === ALWAYS && !e.guard ? 'always' : e.label)}` : '';
    // An initial arrow belongs inside its parent's block; the others, which may cross blocks, at the top.
    const owner = e.source.endsWith('.•') ? e.source.slice(0, -2) : chart.root.id;
    const list = edgesFrom.get(owner) ?? [];
    list.push(`${from} --> ${mid(e.target)}${label}`);
    edgesFrom.set(owner, list);
  }

  const emit = (s: ChartState, indent: string) => {
    const real = s.children.filter((c) => c.kind !== 'initial');
    for (const c of real) {
      if (c.children.length > 0) {
        out.push(`${indent}state "${titleOf(c)}" as ${mid(c.id)} {`);
        if (c.kind === 'parallel') {
          c.children.filter((r) => r.kind !== 'initial').forEach((region, i) => {
            if (i > 0) out.push(`${indent}  --`);
            out.push(`${indent}  state "${titleOf(region)}" as ${mid(region.id)} {`);
            emit(region, `${indent}    `);
            out.push(`${indent}  }`);
          });
        } else {
          emit(c, `${indent}  `);
        }
        out.push(`${indent}}`);
      } else {
        out.push(`${indent}state "${titleOf(c)}" as ${mid(c.id)}`);
      }
      if (c.kind === 'final') out.push(`${indent}${mid(c.id)} --> [*]`);
      const lines = linesOf(c);
      if (lines.length > 0) out.push(`${indent}note right of ${mid(c.id)}`, ...lines.map((l) => `${indent}  ${labelText(l)}`), `${indent}end note`);
    }
    for (const line of edgesFrom.get(s.id) ?? []) out.push(`${indent}${line}`);
  };
  emit(chart.root, '  ');
  return out.join('\n');
}
