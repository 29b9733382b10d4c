/**
 * The test-set CSV: `Set Number,Transactions,Live Nodes`, one command per row,
 * the set number and live list on a set's first row only (SPEC §2).
 *
 * Every physical line is parsed on its own, so one broken row (an unclosed
 * quote, a bad command) costs that row alone: it is reported with its line
 * number and the rest of the file still parses.
 */
import { LEVELS, parseLevel, type Level } from '../protocol/consistency.js';
import { parse as parseCsv } from 'csv-parse/sync';
import type { Topology } from '../protocol/topology.js';

export type TestCommand =
  | { line: number; text: string; kind: 'transfer'; sender: number; receiver: number; amount: number; consistency?: 'linearizable' }
  | { line: number; text: string; kind: 'read'; item: number; consistency?: Level }
  | { line: number; text: string; kind: 'fail'; node: number }
  | { line: number; text: string; kind: 'recover'; node: number };

export interface TestSet {
  set: number;
  /** Line of the set's first row. */
  line: number;
  /** Node ids live when the set starts, ascending. */
  live: number[];
  /**
   * The row gave no live list, which means every node is live; the parser
   * cannot know the nodes, so `validateSets` fills `live` from the topology.
   */
  allLive?: boolean;
  commands: TestCommand[];
}

export interface ParseError {
  /** 1-based line of the file. */
  line: number;
  message: string;
  /** The offending line (or, for range errors, the command or live list). */
  raw: string;
}

export interface ParseResult {
  sets: TestSet[];
  errors: ParseError[];
}

type WithoutLine<T> = T extends unknown ? Omit<T, 'line'> : never;

/** Commands without their line: what `parseCommand` gives back. */
export type ParsedCommand = WithoutLine<TestCommand>;

/** Ids travel as uint32 on the wire; anything larger cannot be sent. */
const MAX_ID = 0xffffffff;

const NODE_RE = /^n(\d+)$/i;

function parseId(token: string, what: string): number | string {
  if (!/^\d+$/.test(token)) return `${what} "${token}" is not an item id (a positive whole number)`;
  const n = Number(token);
  if (n < 1) return `${what} must be at least 1 (got ${token})`;
  if (n > MAX_ID) return `${what} ${token} is too large`;
  return n;
}

function parseAmount(token: string): number | string {
  if (/^[+-]?\d+$/.test(token)) {
    const n = Number(token);
    if (n <= 0) return `amount must be positive (got ${token})`;
    if (n > MAX_ID) return `amount ${token} is too large`;
    return n;
  }
  if (/^[+-]?(\d+\.\d*|\.\d+)([eE][+-]?\d+)?$/.test(token)) return `amount must be a whole number (got ${token})`;
  return `amount "${token}" is not a number`;
}

function parseNode(token: string, context: string): number | string {
  const m = NODE_RE.exec(token.trim());
  if (!m) return `unknown node name "${token.trim()}" in ${context}: expected n<number>, e.g. n3`;
  const id = Number(m[1]);
  if (id < 1 || id > MAX_ID) return `node "${token.trim()}" in ${context} is out of range`;
  return id;
}


/**
 * One command as the CSV writes it: `(s, r, amt)` with an optional 4th
 * consistency token, a read as `(id)`, `-id` (Excel's rendering of `(id)`) or
 * a bare `id`, `F(nX)` / `R(nX)`. Returns the command or an error message.
 */
export function parseCommand(input: string): ParsedCommand | { error: string } {
  let t = input.trim();
  // The spec writes fail/recover as 'F(ni)'; tolerate stray quotes around any command.
  const q = /^(['"])(.*)\1$/.exec(t);
  if (q) t = q[2]!.trim();
  if (t === '') return { error: 'empty command' };

  const fr = /^([FR])\s*\(\s*(.*?)\s*\)$/i.exec(t);
  if (fr) {
    const kind = fr[1]!.toUpperCase() === 'F' ? 'fail' : 'recover';
    const node = parseNode(fr[2]!, `${fr[1]!.toUpperCase()}(${fr[2]})`);
    if (typeof node === 'string') return { error: node };
    return { kind, node, text: `${kind === 'fail' ? 'F' : 'R'}(n${node})` };
  }
  if (/^LF$/i.test(t)) return { error: 'LF (leader fail) is a Project 1 command, not a test-set command here; use F(nX)' };

  const neg = /^-\s*(\d+)$/.exec(t) ?? /^(\d+)$/.exec(t);
  if (neg) {
    const item = parseId(neg[1]!, 'item');
    if (typeof item === 'string') return { error: item };
    return { kind: 'read', item, text: `(${item})` };
  }

  const paren = /^\((.*)\)$/.exec(t);
  if (!paren) return { error: `unrecognised command "${t}": expected (sender, receiver, amount), (item), F(nX) or R(nX)` };
  const parts = paren[1]!.split(',').map((s) => s.trim());
  if (parts.some((p) => p === '')) return { error: `empty field in "${t}"` };

  const isNumberish = (s: string) => /^[+-]?[\d.]+([eE][+-]?\d+)?$/.test(s);
  if (parts.length === 1 || (parts.length === 2 && !isNumberish(parts[1]!))) {
    const item = parseId(parts[0]!, 'item');
    if (typeof item === 'string') return { error: item };
    if (parts.length === 2) {
      const consistency = parseLevel(parts[1]!);
      if (!consistency) return { error: `unknown consistency level "${parts[1]}" in "${t}": a read names one of ${LEVELS.join(', ')}` };
      return { kind: 'read', item, consistency, text: `(${item}, ${consistency})` };
    }
    return { kind: 'read', item, text: `(${item})` };
  }
  if (parts.length === 2) return { error: `"${t}" has two numbers: expected (sender, receiver, amount) or (item)` };
  if (parts.length > 4) return { error: `"${t}" has ${parts.length} fields: expected (sender, receiver, amount) with an optional consistency level` };

  const sender = parseId(parts[0]!, 'sender');
  if (typeof sender === 'string') return { error: sender };
  const receiver = parseId(parts[1]!, 'receiver');
  if (typeof receiver === 'string') return { error: receiver };
  const amount = parseAmount(parts[2]!);
  if (typeof amount === 'string') return { error: amount };
  if (sender === receiver) return { error: `sender and receiver are the same item (${sender})` };
  if (parts.length === 4) {
    const level = parseLevel(parts[3]!);
    if (level !== 'linearizable') {
      return { error: `"${t}": a transfer is always linearizable (every one is ordered by consensus); "${parts[3]}" is ${level ? 'a level for reads' : 'not a consistency level'}` };
    }
    return { kind: 'transfer', sender, receiver, amount, consistency: level, text: `(${sender}, ${receiver}, ${amount}, ${level})` };
  }
  return { kind: 'transfer', sender, receiver, amount, text: `(${sender}, ${receiver}, ${amount})` };
}

/** `[n1, n2, n4]` (brackets optional, commas or spaces) into ascending, distinct ids. */
export function parseLiveList(input: string): number[] | { error: string } {
  let t = input.trim();
  const q = /^(['"])(.*)\1$/.exec(t);
  if (q) t = q[2]!.trim();
  const b = /^\[(.*)\]$/.exec(t);
  if (b) t = b[1]!;
  else if (t.includes('[') || t.includes(']')) return { error: `bad live list "${input.trim()}": unbalanced brackets` };
  const tokens = t.split(/[\s,]+/).filter((s) => s !== '');
  const ids = new Set<number>();
  for (const tok of tokens) {
    const id = parseNode(tok, 'live list');
    if (typeof id === 'string') return { error: `bad live list: ${id}` };
    ids.add(id);
  }
  return [...ids].sort((a, b2) => a - b2);
}

function splitLines(text: string): string[] {
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  return body.split(/\r\n|\n|\r/);
}

/** Splits one physical line into [set, command, live] fields. */
function fieldsOf(line: string, delimiter: string): string[] | { error: string } {
  let records: string[][];
  try {
    records = parseCsv(line, { delimiter, relax_column_count: true, relax_quotes: true, trim: true }) as string[][];
  } catch (e) {
    // csv-parse counts lines within the one line it was given; drop its position.
    const err = e as Error & { code?: string };
    const why = err.code === 'CSV_QUOTE_NOT_CLOSED' ? 'a double quote is never closed' : err.message.replace(/\s*(at|on) line \d+.*$/i, '');
    return { error: `malformed CSV row: ${why}` };
  }
  const fields = records[0] ?? [];
  while (fields.length > 0 && fields[fields.length - 1] === '') fields.pop();
  if (fields.length <= 3) return fields;
  // More than three fields: an unquoted command or live list whose commas
  // split it. Put them back together: the live list is the bracketed tail.
  const rest = fields.slice(1);
  let liveAt = -1;
  if (rest[rest.length - 1]!.endsWith(']')) {
    for (let i = rest.length - 1; i >= 0; i--) {
      if (rest[i]!.startsWith('[')) {
        liveAt = i;
        break;
      }
    }
  }
  const cmdParts = liveAt >= 0 ? rest.slice(0, liveAt) : rest;
  const liveParts = liveAt >= 0 ? rest.slice(liveAt) : [];
  while (cmdParts.length > 0 && cmdParts[cmdParts.length - 1] === '') cmdParts.pop();
  return [fields[0]!, cmdParts.join(', '), liveParts.join(', ')];
}

function looksLikeHeader(fields: string[]): boolean {
  return !/^\d+$/.test(fields[0] ?? '') && /set|transaction|command|live/i.test(fields.join(' '));
}

/** Parses the text of a test-set file. Malformed rows are reported and skipped. */
export function parseTestSets(text: string): ParseResult {
  const sets: TestSet[] = [];
  const errors: ParseError[] = [];
  const lines = splitLines(text);
  const firstRow = lines.find((l) => l.trim() !== '') ?? '';
  // A tab-separated copy of the official file exists; commas win when both appear.
  const delimiter = firstRow.includes('\t') && !firstRow.includes(',') ? '\t' : ',';

  const seen = new Map<number, number>();
  let current: TestSet | null = null;
  /** The set-start row that was rejected; its rows are rejected with it. */
  let rejected: { line: number; label: string } | null = null;
  let sawRow = false;

  lines.forEach((raw, i) => {
    const line = i + 1;
    if (raw.trim() === '') return;
    const fail = (message: string) => errors.push({ line, message, raw });

    const fields = fieldsOf(raw, delimiter);
    if (!Array.isArray(fields)) return fail(fields.error);
    if (fields.every((f) => f === '')) return;
    const first = !sawRow;
    sawRow = true;
    if (first && looksLikeHeader(fields)) return;

    const [setField = '', cmdField = '', liveField = ''] = fields;

    if (setField !== '') {
      current = null;
      rejected = null;
      const label = `set ${setField}`;
      if (!/^\d+$/.test(setField) || Number(setField) < 1) {
        rejected = { line, label: 'the set' };
        return fail(`bad set number "${setField}": expected a positive whole number`);
      }
      // The set number travels as a uint32 (the flush's epoch): a larger one would wrap into another set's.
      if (Number(setField) > MAX_ID) {
        rejected = { line, label: 'the set' };
        return fail(`set number ${setField} is too large (at most ${MAX_ID})`);
      }
      const set = Number(setField);
      const dup = seen.get(set);
      if (dup !== undefined) {
        rejected = { line, label };
        return fail(`set ${set} appears again (first at line ${dup}); this set is skipped`);
      }
      let live: number[] = [];
      let allLive = false;
      if (liveField === '') allLive = true;
      else {
        const l = parseLiveList(liveField);
        if (!Array.isArray(l)) {
          rejected = { line, label };
          return fail(`${l.error}; set ${set} is skipped`);
        }
        live = l;
      }
      seen.set(set, line);
      current = { set, line, live, commands: [] };
      if (allLive) current.allLive = true;
      sets.push(current);
      if (cmdField === '') return;
    } else {
      if (current === null) {
        const r = rejected as { line: number; label: string } | null;
        if (r) return fail(`row of ${r.label} at line ${r.line}, which was rejected`);
        return fail('command row before any set: the first row of a set needs its set number');
      }
      const cur: TestSet = current;
      if (liveField !== '') {
        const l = parseLiveList(liveField);
        const same = Array.isArray(l) && !cur.allLive && l.length === cur.live.length && l.every((v, k) => v === cur.live[k]);
        if (!same) return fail(`live list on a row that does not start a set (set ${cur.set} started at line ${cur.line})`);
      }
      if (cmdField === '') return;
    }

    const cmd = parseCommand(cmdField);
    if ('error' in cmd) return fail(cmd.error);
    (current as TestSet).commands.push({ ...cmd, line } as TestCommand);
  });

  return { sets, errors };
}

/**
 * Checks the sets against a topology: items in 1..items, nodes among the
 * topology's. Returns the errors and a copy of the sets without the bad
 * commands and unknown live nodes, with `live` filled in where the file gave
 * no list.
 */
export function validateSets(sets: TestSet[], topo: Topology): ParseResult {
  const errors: ParseError[] = [];
  const nodeIds = new Set(topo.nodes.map((n) => n.id));
  const allNodes = [...nodeIds].sort((a, b) => a - b);
  const nodeCount = topo.clusters * topo.nodesPerCluster;
  const badItem = (item: number) => !Number.isInteger(item) || item < 1 || item > topo.items;
  const badNode = (node: number) => !nodeIds.has(node);
  const itemRange = `1..${topo.items}`;
  const nodeRange = `n1..n${nodeCount}`;

  const out = sets.map((s): TestSet => {
    let live = s.allLive ? allNodes.slice() : s.live.slice();
    const unknown = live.filter(badNode);
    if (unknown.length > 0) {
      errors.push({
        line: s.line,
        message: `set ${s.set}: live list names ${unknown.map((n) => `n${n}`).join(', ')}, not in this topology (${nodeRange}); ignored`,
        raw: `[${s.live.map((n) => `n${n}`).join(', ')}]`,
      });
      live = live.filter((n) => !badNode(n));
    }
    const commands = s.commands.filter((c) => {
      let message: string | null = null;
      switch (c.kind) {
        case 'transfer': {
          const bad = [c.sender, c.receiver].filter(badItem);
          if (bad.length > 0) message = `item ${bad.join(', ')} out of range ${itemRange}`;
          break;
        }
        case 'read':
          if (badItem(c.item)) message = `item ${c.item} out of range ${itemRange}`;
          break;
        case 'fail':
        case 'recover':
          if (badNode(c.node)) message = `node n${c.node} is not in this topology (${nodeRange})`;
          break;
      }
      if (message === null) return true;
      errors.push({ line: c.line, message: `set ${s.set}: ${message}`, raw: c.text });
      return false;
    });
    const copy: TestSet = { set: s.set, line: s.line, live, commands };
    return copy;
  });
  return { sets: out, errors };
}

/** A ParseError as one line: `line 12: amount must be positive (got -3)  | ,"(1, 2, -3)",`. */
export function formatParseError(e: ParseError, file?: string): string {
  return `${file ? `${file}:` : 'line '}${e.line}: ${e.message}${e.raw ? `  | ${e.raw}` : ''}`;
}
