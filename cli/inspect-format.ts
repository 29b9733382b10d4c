/** One inspection record as a line: when, which actor, what event, and where its state went. */
import type { InspectRecord } from '../runtime/inspect.js';

function stateText(json: string | null | undefined): string {
  if (!json) return '';
  try {
    const v = JSON.parse(json) as unknown;
    return typeof v === 'string' ? v : JSON.stringify(v).replace(/"/g, '');
  } catch {
    return json;
  }
}

export function formatRecord(r: InspectRecord): string {
  const at = `${(r.atMs ?? 0).toFixed(1).padStart(10)} ms`;
  const who = `n${r.node} ${r.actor}`.padEnd(24);
  if (r.kind === 'spawned') return `${at}  ${who} spawned (${r.machine})`;
  if (r.kind === 'stopped') return `${at}  ${who} ${r.event} -> stopped ${stateText(r.stateJson)}`;
  const move = r.changed ? `-> ${stateText(r.stateJson)}` : `(${stateText(r.stateJson)})`;
  return `${at}  ${who} ${(r.event ?? '').padEnd(14)} ${move}`;
}
