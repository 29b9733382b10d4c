/**
 * The topology a command runs against: defaults, a JSON config file, then
 * command-line flags, each overriding the one before. Whatever the source,
 * the result is checked as a whole, because a topology that merely parses
 * (two nodes on one port, a gap in the shard ranges) fails much later and
 * much less clearly.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { InvalidArgumentError, type Command } from 'commander';
import { parseNodeName } from '../protocol/messages.js';
import {
  DEFAULT_TUNING,
  evenRanges,
  makeTopology,
  type NodeAddress,
  type ShardRange,
  type Topology,
  type Tuning,
} from '../protocol/topology.js';

export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(
    message: string,
    /** The offending field, dotted: `nodes[3].port`, `shards.ranges`. */
    readonly field?: string,
    /** The config file, when the value came from one. */
    readonly file?: string,
  ) {
    super(message);
  }
}

export interface TopologyOptions {
  /** Path of a JSON topology config. */
  config?: string;
  clusters?: number;
  nodesPerCluster?: number;
  items?: number;
  initialBalance?: number;
  basePort?: number;
  host?: string;
}

const TOP_FIELDS = ['clusters', 'nodesPerCluster', 'items', 'initialBalance', 'nodes', 'shards', 'tuning', 'host', 'basePort'] as const;
const TUNING_FIELDS = Object.keys(DEFAULT_TUNING) as (keyof Tuning)[];
/** Tuning fields that are shares (0 to 1), not counts. */
const FRACTIONAL_TUNING = new Set<keyof Tuning>(['reshardImbalance']);
const MAX_UINT32 = 0xffffffff;

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function show(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/** Reports problems with the field and file named, the same way everywhere. */
class Checker {
  constructor(readonly file: string | undefined) {}

  fail(field: string, problem: string): never {
    const where = this.file ? `${this.file}: ` : '';
    throw new ConfigError(`${where}${field} ${problem}`, field, this.file);
  }

  int(field: string, v: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number {
    if (typeof v !== 'number' || !Number.isInteger(v)) this.fail(field, `must be a whole number (got ${show(v)})`);
    if (v < min) this.fail(field, min === 1 ? `must be a positive integer (got ${v})` : `must be at least ${min} (got ${v})`);
    if (v > max) this.fail(field, `must be at most ${max} (got ${v})`);
    return v;
  }

  fraction(field: string, v: unknown): number {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > 1) this.fail(field, `must be a number from 0 to 1 (got ${show(v)})`);
    return v;
  }

  object(field: string, v: unknown): Json {
    if (!isObject(v)) this.fail(field, `must be an object (got ${show(v)})`);
    return v;
  }

  onlyKnown(field: string, obj: Json, known: readonly string[]): void {
    for (const k of Object.keys(obj)) {
      if (!known.includes(k)) this.fail(field ? `${field}.${k}` : k, `is not a known field (known: ${known.join(', ')})`);
    }
  }
}

function readConfigFile(path: string): Json {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new ConfigError(`${path}: cannot read config file (${err.code ?? err.message})`, undefined, path);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`${path}: not valid JSON: ${(e as Error).message}`, undefined, path);
  }
  if (!isObject(data)) throw new ConfigError(`${path}: the config must be a JSON object (got ${show(data)})`, undefined, path);
  return data;
}

function checkNodes(c: Checker, v: unknown, count: number): NodeAddress[] {
  if (!Array.isArray(v)) c.fail('nodes', `must be an array of {id, host, port} (got ${show(v)})`);
  if (v.length !== count) {
    c.fail('nodes', `lists ${v.length} nodes but clusters x nodesPerCluster = ${count}`);
  }
  const byId = new Map<number, NodeAddress>();
  const byAddr = new Map<string, number>();
  v.forEach((raw, i) => {
    const f = `nodes[${i}]`;
    const o = c.object(f, raw);
    c.onlyKnown(f, o, ['id', 'host', 'port']);
    const id = typeof o.id === 'string' ? parseNodeName(o.id) : o.id;
    const nid = c.int(`${f}.id`, id ?? o.id, 1, count);
    if (byId.has(nid)) c.fail(`${f}.id`, `repeats node n${nid}`);
    if (typeof o.host !== 'string' || o.host.trim() === '') c.fail(`${f}.host`, `must be a non-empty string (got ${show(o.host)})`);
    const port = c.int(`${f}.port`, o.port, 1, 65535);
    const addr = `${o.host}:${port}`;
    const other = byAddr.get(addr);
    if (other !== undefined) c.fail(`${f}.port`, `${port} on ${o.host} is already used by n${other}`);
    byAddr.set(addr, nid);
    byId.set(nid, { id: nid, host: o.host, port });
  });
  return [...byId.values()].sort((a, b) => a.id - b.id);
}

function checkRanges(c: Checker, v: unknown, clusters: number, items: number): ShardRange[] {
  if (!Array.isArray(v)) c.fail('shards.ranges', `must be an array of {cluster, from, to} (got ${show(v)})`);
  const ranges = v.map((raw, i): ShardRange => {
    const f = `shards.ranges[${i}]`;
    const o = c.object(f, raw);
    c.onlyKnown(f, o, ['cluster', 'from', 'to']);
    const cluster = c.int(`${f}.cluster`, o.cluster, 1, clusters);
    const from = c.int(`${f}.from`, o.from, 1, items);
    const to = c.int(`${f}.to`, o.to, from, items);
    return { cluster, from, to };
  });
  const sorted = ranges.slice().sort((a, b) => a.from - b.from);
  let next = 1;
  for (const r of sorted) {
    if (r.from < next) c.fail('shards.ranges', `overlap: items ${r.from}..${Math.min(r.to, next - 1)} are in more than one range`);
    if (r.from > next) c.fail('shards.ranges', `leave items ${next}..${r.from - 1} without a cluster`);
    next = r.to + 1;
  }
  if (next <= items) c.fail('shards.ranges', `leave items ${next}..${items} without a cluster`);
  return ranges;
}

function checkOverrides(c: Checker, v: unknown, clusters: number, items: number): Record<string, number> {
  const o = c.object('shards.overrides', v);
  const out: Record<string, number> = {};
  for (const [k, val] of Object.entries(o)) {
    const f = `shards.overrides.${k}`;
    if (!/^\d+$/.test(k) || Number(k) < 1 || Number(k) > items) c.fail(f, `names an item outside 1..${items}`);
    out[String(Number(k))] = c.int(f, val, 1, clusters);
  }
  return out;
}

function checkTuning(c: Checker, v: unknown): Partial<Tuning> {
  const o = c.object('tuning', v);
  c.onlyKnown('tuning', o, TUNING_FIELDS);
  const out: Partial<Tuning> = {};
  for (const k of TUNING_FIELDS) {
    if (o[k] === undefined) continue;
    if (k === 'lockPolicy') {
      if (o[k] !== 'skip' && o[k] !== 'wait') c.fail(`tuning.${k}`, `must be "skip" or "wait" (got ${show(o[k])})`);
      out.lockPolicy = o[k] as Tuning['lockPolicy'];
      continue;
    }
    (out as Record<string, number>)[k] = FRACTIONAL_TUNING.has(k) ? c.fraction(`tuning.${k}`, o[k]) : c.int(`tuning.${k}`, o[k], 1);
  }
  return out;
}

/**
 * The topology from defaults (3 x 3, 9000 items, balance 10, ports from
 * 7101), an optional JSON config giving any subset of the Topology fields,
 * then the flags. Throws ConfigError naming the field (and file) at fault.
 */
export function loadTopology(opts: TopologyOptions = {}): Topology {
  const file = opts.config;
  const fromFile: Json = file !== undefined ? readConfigFile(file) : {};
  const fc: Checker = new Checker(file);
  fc.onlyKnown('', fromFile, TOP_FIELDS);
  const flags: Checker = new Checker(undefined);

  // A value comes from a flag (checked without a file name) or the file.
  const pick = (key: 'clusters' | 'nodesPerCluster' | 'items' | 'initialBalance' | 'basePort', min: number, max?: number): number | undefined => {
    const flag = opts[key];
    if (flag !== undefined) return flags.int(`--${key.replace(/[A-Z]/g, (m) => `-${m.toLowerCase()}`)}`, flag, min, max);
    if (fromFile[key] !== undefined) return fc.int(key, fromFile[key], min, max);
    return undefined;
  };
  const clusters = pick('clusters', 1, 1000) ?? 3;
  const nodesPerCluster = pick('nodesPerCluster', 1, 1000) ?? 3;
  const items = pick('items', 1, MAX_UINT32) ?? 9000;
  const initialBalance = pick('initialBalance', 0, MAX_UINT32) ?? 10;
  const basePort = pick('basePort', 1, 65535);
  let host = opts.host;
  if (host !== undefined && host.trim() === '') flags.fail('--host', 'must not be empty');
  const fileHost = fromFile.host;
  if (host === undefined && fileHost !== undefined) {
    if (typeof fileHost !== 'string' || fileHost.trim() === '') fc.fail('host', `must be a non-empty string (got ${show(fileHost)})`);
    host = fileHost;
  }

  if (items < clusters) {
    const [who, name] = opts.items !== undefined ? [flags, '--items'] : [fc, 'items'];
    who.fail(name, `(${items}) must be at least the number of clusters (${clusters})`);
  }
  const count = clusters * nodesPerCluster;
  if ((basePort ?? 7101) + count - 1 > 65535) {
    const [who, name] = opts.basePort !== undefined ? [flags, '--base-port'] : [fc, 'basePort'];
    who.fail(name, `(${basePort ?? 7101}) leaves no room for ${count} consecutive ports`);
  }

  const tuning = fromFile.tuning !== undefined ? checkTuning(fc, fromFile.tuning) : {};
  const topo = makeTopology({ clusters, nodesPerCluster, items, initialBalance, basePort, host, tuning });
  if (topo.tuning.electionTicksMin > topo.tuning.electionTicksMax) {
    fc.fail('tuning.electionTicksMin', `(${topo.tuning.electionTicksMin}) must not exceed tuning.electionTicksMax (${topo.tuning.electionTicksMax})`);
  }
  if (topo.tuning.idleHeartbeatTicks < topo.tuning.heartbeatTicks) {
    fc.fail('tuning.idleHeartbeatTicks', `(${topo.tuning.idleHeartbeatTicks}) must be at least tuning.heartbeatTicks (${topo.tuning.heartbeatTicks})`);
  }

  if (fromFile.nodes !== undefined) {
    let nodes = checkNodes(fc, fromFile.nodes, count);
    // Flags override the file: --base-port renumbers, --host moves every node.
    if (opts.basePort !== undefined) nodes = nodes.map((n) => ({ ...n, port: opts.basePort! + n.id - 1 }));
    if (opts.host !== undefined) nodes = nodes.map((n) => ({ ...n, host: opts.host! }));
    topo.nodes = nodes;
  }

  if (fromFile.shards !== undefined) {
    const s = fc.object('shards', fromFile.shards);
    fc.onlyKnown('shards', s, ['version', 'ranges', 'overrides']);
    topo.shards = {
      version: s.version !== undefined ? fc.int('shards.version', s.version, 1) : 1,
      ranges: s.ranges !== undefined ? checkRanges(fc, s.ranges, clusters, items) : evenRanges(clusters, items),
      overrides: s.overrides !== undefined ? checkOverrides(fc, s.overrides, clusters, items) : {},
    };
  }
  return topo;
}

/** Commander's parser for an integer flag, rejecting anything below `min`. */
export function intArg(min: number, max = Number.MAX_SAFE_INTEGER): (value: string) => number {
  return (value: string) => {
    const t = value.trim();
    if (!/^[+-]?\d+$/.test(t)) throw new InvalidArgumentError(`"${value}" is not a whole number.`);
    const n = Number(t);
    if (n < min) throw new InvalidArgumentError(min === 1 ? `must be a positive integer (got ${n}).` : `must be at least ${min} (got ${n}).`);
    if (n > max) throw new InvalidArgumentError(`must be at most ${max} (got ${n}).`);
    return n;
  };
}

/** Adds the topology flags to a command; read them back with `topologyFromOptions`. */
export function addTopologyOptions<C extends Command>(cmd: C): C {
  cmd
    .option('--config <file>', 'topology config (JSON); the flags below override it')
    .option('--clusters <n>', 'number of clusters (default 3)', intArg(1, 1000))
    .option('--nodes-per-cluster <n>', 'nodes in each cluster (default 3)', intArg(1, 1000))
    .option('--items <n>', 'number of data items (default 9000)', intArg(1, MAX_UINT32))
    .option('--initial-balance <n>', 'starting balance of every item (default 10)', intArg(0, MAX_UINT32))
    .option('--base-port <n>', 'port of n1; node k listens on base + k - 1 (default 7101)', intArg(1, 65535));
  return cmd;
}

/** The topology from a command's parsed options (see `addTopologyOptions`). */
export function topologyFromOptions(opts: TopologyOptions): Topology {
  return loadTopology({
    config: opts.config,
    clusters: opts.clusters,
    nodesPerCluster: opts.nodesPerCluster,
    items: opts.items,
    initialBalance: opts.initialBalance,
    basePort: opts.basePort,
    host: opts.host,
  });
}

/** Writes a topology as JSON that `loadTopology({ config })` reads back unchanged. */
export function saveTopology(topo: Topology, path: string): void {
  mkdirSync(dirname(path), { recursive: true });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(topo, null, 2)}\n`);
  renameSync(tmp, path);
}
