/**
 * The file formats of METIS and hMETIS, so that the same input goes to
 * `gpmetis` and to us: a METIS graph (`n m [fmt [ncon]]`, then one line of
 * neighbours per vertex, each edge listed from both ends), an hMETIS
 * hypergraph (`.hgr`: `E V [fmt]`, one line of pins per hyperedge, then
 * vertex weights), and a partition (`.part`: one line per vertex with its
 * part). Vertices are numbered from 1 in the files and from 0 in memory.
 * Lines starting with `%` are comments. A malformed file raises a
 * {@link FormatError} naming the line.
 */
import { assemble, isGraph, type Hypergraph } from './hypergraph.js';

export class FormatError extends Error {
  override name = 'FormatError';
  constructor(
    message: string,
    /** 1-based line of the file, 0 when the problem is the file as a whole. */
    readonly line: number,
  ) {
    super(message);
  }
}

interface Line {
  number: number;
  tokens: string[];
}

/** The file's lines with their numbers, comments left out. */
function lines(text: string): Line[] {
  const out: Line[] = [];
  const raws = text.split(/\r?\n/);
  // The newline that ends the last line does not start one more; a blank
  // line before it is a vertex without neighbours in a METIS graph.
  if (raws.length > 0 && raws[raws.length - 1] === '') raws.pop();
  raws.forEach((raw, i) => {
    if (raw.startsWith('%')) return;
    const trimmed = raw.trim();
    out.push({ number: i + 1, tokens: trimmed === '' ? [] : trimmed.split(/\s+/) });
  });
  return out;
}

function int(token: string, what: string, line: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (!/^[+-]?\d+$/.test(token)) throw new FormatError(`${what} "${token}" is not a whole number`, line);
  const x = Number(token);
  if (x < min || x > max) throw new FormatError(`${what} ${x} is outside ${min}..${max === Number.MAX_SAFE_INTEGER ? 'inf' : max}`, line);
  return x;
}

/** The header: the first line that is not blank. */
function header(all: Line[], example: string): { head: Line; rest: Line[] } {
  const at = all.findIndex((l) => l.tokens.length > 0);
  if (at < 0) throw new FormatError(`empty file: expected a header line "${example}"`, 0);
  return { head: all[at]!, rest: all.slice(at + 1) };
}

/** Reads the METIS fmt field: which of vertex sizes, vertex weights, edge weights the lines carry. */
function metisFmt(token: string | undefined, line: number): { sizes: boolean; vertexWeights: boolean; edgeWeights: boolean } {
  const fmt = token ?? '0';
  if (!/^[01]{1,3}$/.test(fmt)) throw new FormatError(`fmt "${fmt}" must be up to three digits 0/1 (sizes, vertex weights, edge weights)`, line);
  const f = fmt.padStart(3, '0');
  return { sizes: f[0] === '1', vertexWeights: f[1] === '1', edgeWeights: f[2] === '1' };
}

/** Parses a METIS graph file; every edge must be listed by both its ends, with the same weight. */
export function parseMetisGraph(text: string): Hypergraph {
  const { head, rest } = header(lines(text), 'n m [fmt [ncon]]');
  const h = head.tokens;
  if (h.length < 2 || h.length > 4) throw new FormatError(`header must be "n m [fmt [ncon]]", got "${h.join(' ')}"`, head.number);
  const n = int(h[0]!, 'vertex count', head.number, 0, 2 ** 31 - 1);
  const m = int(h[1]!, 'edge count', head.number, 0);
  const fmt = metisFmt(h[2], head.number);
  const ncon = h[3] === undefined ? 1 : int(h[3], 'ncon', head.number, 1);
  if (ncon > 1) throw new FormatError(`multi-constraint graphs (ncon ${ncon}) are not supported`, head.number);
  if (rest.length > n && rest.slice(n).some((l) => l.tokens.length > 0)) {
    throw new FormatError(`more vertex lines than the ${n} the header announces`, rest[n]!.number);
  }
  if (rest.length < n) throw new FormatError(`the header announces ${n} vertices but the file ends after ${rest.length}`, rest[rest.length - 1]?.number ?? head.number);

  const vertexWeight = new Float64Array(n).fill(1);
  // Each undirected edge, by its smaller end: the weight and line of its first listing, and whether its other end listed it.
  const pending = new Map<number, { weight: number; line: number; from: number; to: number }>();
  const edgePins: number[] = [];
  const edgeWeights: number[] = [];
  let listed = 0;
  for (let v = 0; v < n; v++) {
    const { number, tokens } = rest[v]!;
    let i = 0;
    if (fmt.sizes) i++;
    if (fmt.vertexWeights) {
      if (tokens[i] === undefined) throw new FormatError(`vertex ${v + 1}: missing its weight`, number);
      vertexWeight[v] = int(tokens[i++]!, `vertex ${v + 1} weight`, number, 0);
    }
    const step = fmt.edgeWeights ? 2 : 1;
    if ((tokens.length - i) % step !== 0) throw new FormatError(`vertex ${v + 1}: neighbour ${tokens[tokens.length - 1]} has no edge weight`, number);
    const seen = new Set<number>();
    for (; i < tokens.length; i += step) {
      const u = int(tokens[i]!, `vertex ${v + 1}: neighbour`, number, 1, n) - 1;
      const w = fmt.edgeWeights ? int(tokens[i + 1]!, `vertex ${v + 1}: weight of edge to ${u + 1}`, number, 1) : 1;
      if (u === v) throw new FormatError(`vertex ${v + 1} lists itself as a neighbour`, number);
      if (seen.has(u)) throw new FormatError(`vertex ${v + 1} lists neighbour ${u + 1} twice`, number);
      seen.add(u);
      listed++;
      const key = Math.min(u, v) * n + Math.max(u, v);
      const first = pending.get(key);
      if (!first) {
        pending.set(key, { weight: w, line: number, from: v, to: u });
        continue;
      }
      if (first.weight !== w) throw new FormatError(`edge ${v + 1}-${u + 1} has weight ${w} here but ${first.weight} on line ${first.line}`, number);
      pending.delete(key);
      edgePins.push(Math.min(u, v), Math.max(u, v));
      edgeWeights.push(w);
    }
  }
  for (const p of pending.values()) {
    throw new FormatError(`vertex ${p.from + 1} lists neighbour ${p.to + 1}, but vertex ${p.to + 1} does not list ${p.from + 1}`, p.line);
  }
  if (listed / 2 !== m) throw new FormatError(`the header announces ${m} edges but the vertex lines hold ${listed / 2}`, head.number);
  const edgeStart = Int32Array.from({ length: edgeWeights.length + 1 }, (_, e) => 2 * e);
  return assemble(vertexWeight, Float64Array.from(edgeWeights), edgeStart, Int32Array.from(edgePins));
}

/** Parses an hMETIS hypergraph (`E V [fmt]`; fmt 1: edge weights, 10: vertex weights, 11: both). */
export function parseHmetis(text: string): Hypergraph {
  const { head, rest } = header(lines(text), 'E V [fmt]');
  const h = head.tokens;
  if (h.length < 2 || h.length > 3) throw new FormatError(`header must be "E V [fmt]", got "${h.join(' ')}"`, head.number);
  const m = int(h[0]!, 'hyperedge count', head.number, 0);
  const n = int(h[1]!, 'vertex count', head.number, 0, 2 ** 31 - 1);
  const fmt = h[2] ?? '0';
  if (!['0', '1', '10', '11', '00', '01'].includes(fmt)) throw new FormatError(`fmt "${fmt}" must be 1 (edge weights), 10 (vertex weights) or 11 (both)`, head.number);
  const edgeWeighted = fmt.endsWith('1');
  const vertexWeighted = fmt.length === 2 && fmt[0] === '1';
  const body = rest.filter((l) => l.tokens.length > 0);
  const expected = m + (vertexWeighted ? n : 0);
  if (body.length < expected) throw new FormatError(`the header announces ${m} hyperedges${vertexWeighted ? ` and ${n} vertex weights` : ''} but the file ends after ${body.length} lines`, body[body.length - 1]?.number ?? head.number);
  if (body.length > expected) throw new FormatError(`more lines than the header announces (${expected})`, body[expected]!.number);

  const starts: number[] = [0];
  const pins: number[] = [];
  const weights: number[] = [];
  for (let e = 0; e < m; e++) {
    const { number, tokens } = body[e]!;
    const w = edgeWeighted ? int(tokens[0]!, `hyperedge ${e + 1} weight`, number, 1) : 1;
    const from = edgeWeighted ? 1 : 0;
    if (tokens.length === from) throw new FormatError(`hyperedge ${e + 1} has no pins`, number);
    const seen = new Set<number>();
    for (let i = from; i < tokens.length; i++) {
      const v = int(tokens[i]!, `hyperedge ${e + 1}: pin`, number, 1, n) - 1;
      if (seen.has(v)) throw new FormatError(`hyperedge ${e + 1} lists vertex ${v + 1} twice`, number);
      seen.add(v);
      pins.push(v);
    }
    starts.push(pins.length);
    weights.push(w);
  }
  const vertexWeight = new Float64Array(n).fill(1);
  if (vertexWeighted) {
    for (let v = 0; v < n; v++) {
      const { number, tokens } = body[m + v]!;
      if (tokens.length !== 1) throw new FormatError(`vertex ${v + 1}: expected one weight, got ${tokens.length} numbers`, number);
      vertexWeight[v] = int(tokens[0]!, `vertex ${v + 1} weight`, number, 0);
    }
  }
  return assemble(vertexWeight, Float64Array.from(weights), Int32Array.from(starts), Int32Array.from(pins));
}

/** Reads a `.part` file: exactly one part in 0..parts-1 per vertex. */
export function parsePartition(text: string, vertexCount: number, parts: number): Int32Array {
  const body = lines(text);
  const values = body.filter((l) => l.tokens.length > 0);
  if (values.length !== vertexCount) throw new FormatError(`${values.length} parts for ${vertexCount} vertices`, values[Math.min(values.length, vertexCount)]?.number ?? 0);
  const out = new Int32Array(vertexCount);
  values.forEach((l, v) => {
    if (l.tokens.length !== 1) throw new FormatError(`vertex ${v + 1}: expected one part number, got "${l.tokens.join(' ')}"`, l.number);
    out[v] = int(l.tokens[0]!, `vertex ${v + 1}: part`, l.number, 0, parts - 1);
  });
  return out;
}

/** A `.part` file: one line per vertex with its part. */
export function formatPartition(parts: ArrayLike<number>): string {
  let out = '';
  for (let v = 0; v < parts.length; v++) out += `${parts[v]}\n`;
  return out;
}

/** A METIS graph file of a hypergraph whose edges all have two pins; weights are written only where some differ from 1. */
export function formatMetisGraph(g: Hypergraph): string {
  if (!isGraph(g)) throw new RangeError('a METIS graph file holds only edges of two pins; this hypergraph has larger ones');
  const vertexWeights = g.vertexWeight.some((w) => w !== 1);
  const edgeWeights = g.edgeWeight.some((w) => w !== 1);
  const fmt = vertexWeights || edgeWeights ? ` ${vertexWeights ? 1 : 0}${edgeWeights ? 1 : 0}` : '';
  const out: string[] = [`${g.vertexCount} ${g.edgeCount}${fmt}`];
  for (let v = 0; v < g.vertexCount; v++) {
    const fields: number[] = [];
    if (vertexWeights) fields.push(g.vertexWeight[v]!);
    for (let i = g.vertexStart[v]!; i < g.vertexStart[v + 1]!; i++) {
      const e = g.incidence[i]!;
      const a = g.pins[g.edgeStart[e]!]!;
      fields.push((a === v ? g.pins[g.edgeStart[e]! + 1]! : a) + 1);
      if (edgeWeights) fields.push(g.edgeWeight[e]!);
    }
    out.push(fields.join(' '));
  }
  return out.join('\n') + '\n';
}

/** An hMETIS hypergraph file. */
export function formatHmetis(g: Hypergraph): string {
  const vertexWeights = g.vertexWeight.some((w) => w !== 1);
  const edgeWeights = g.edgeWeight.some((w) => w !== 1);
  const fmt = vertexWeights ? (edgeWeights ? ' 11' : ' 10') : edgeWeights ? ' 1' : '';
  const out: string[] = [`${g.edgeCount} ${g.vertexCount}${fmt}`];
  for (let e = 0; e < g.edgeCount; e++) {
    const fields: number[] = edgeWeights ? [g.edgeWeight[e]!] : [];
    for (let i = g.edgeStart[e]!; i < g.edgeStart[e + 1]!; i++) fields.push(g.pins[i]! + 1);
    out.push(fields.join(' '));
  }
  if (vertexWeights) for (const w of g.vertexWeight) out.push(String(w));
  return out.join('\n') + '\n';
}

export type GraphFormat = 'metis' | 'hmetis';

/** The format of a file by its name: `.hgr` is hMETIS, anything else METIS. */
export function formatOfPath(path: string): GraphFormat {
  return path.toLowerCase().endsWith('.hgr') ? 'hmetis' : 'metis';
}

/** Parses a graph or hypergraph file in the given format. */
export function parseGraph(text: string, format: GraphFormat): Hypergraph {
  return format === 'hmetis' ? parseHmetis(text) : parseMetisGraph(text);
}
