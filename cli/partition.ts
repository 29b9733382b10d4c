/**
 * `shardbank partition FILE`: the resharder's partitioner on a METIS graph
 * or an hMETIS hypergraph, printing the cut, the imbalance and the time, and
 * writing a METIS `.part` file, so that it can be set against `gpmetis` on
 * the same input. `shardbank workload-graph` writes the transaction graph of
 * a benchmark workload in that format.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { FormatError, formatMetisGraph, formatOfPath, formatPartition, parseGraph, parsePartition, type GraphFormat } from '../partition/formats.js';
import { balanceLimit, cutOf, imbalanceOf, partWeightsOf, type Hypergraph } from '../partition/hypergraph.js';
import { DEFAULT_IMBALANCE, partition } from '../partition/partition.js';
import { addTopologyOptions, intArg, topologyFromOptions, type TopologyOptions } from './config.js';
import { workloadGraph } from './txgraph.js';
import { DEFAULT_GROUP_SIZE, PRESETS, type Distribution, type Preset } from './workload.js';

export interface PartitionCliOptions {
  parts: number;
  imbalance: number;
  seed: number;
  out?: string;
  initial?: string;
  evaluate?: string;
  format?: GraphFormat;
  runs?: number;
  json?: boolean;
}

/** A problem with the user's input: printed as one line, exit code 2. */
class InputError extends Error {}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new InputError(`${path}: cannot read (${err.code ?? err.message})`);
  }
}

function writeText(path: string, text: string): void {
  try {
    writeFileSync(path, text);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new InputError(`${path}: cannot write (${err.code ?? err.message})`);
  }
}

/** Runs a parser, naming the file and line of a format error. */
function parsed<T>(path: string, parse: () => T): T {
  try {
    return parse();
  } catch (e) {
    if (e instanceof FormatError) throw new InputError(`${path}${e.line > 0 ? `:${e.line}` : ''}: ${e.message}`);
    throw e;
  }
}

function edgeWeightOf(g: Hypergraph): number {
  let sum = 0;
  for (const w of g.edgeWeight) sum += w;
  return sum;
}

/** The `partition` command; returns the exit code. */
export async function partitionCommand(file: string, opts: PartitionCliOptions): Promise<number> {
  try {
    const k = opts.parts;
    const readStarted = performance.now();
    const graph = parsed(file, () => parseGraph(readText(file), opts.format ?? formatOfPath(file)));
    const readMs = performance.now() - readStarted;
    const limit = balanceLimit(graph.totalVertexWeight, k, opts.imbalance);
    const summary: Record<string, unknown> = { file, vertices: graph.vertexCount, edges: graph.edgeCount, edgeWeight: edgeWeightOf(graph), parts: k, imbalanceLimit: opts.imbalance, maxPartWeight: limit };
    if (opts.evaluate) {
      const evaluate = opts.evaluate;
      const parts = parsed(evaluate, () => parsePartition(readText(evaluate), graph.vertexCount, k));
      const weights = partWeightsOf(graph, parts, k);
      Object.assign(summary, { evaluated: evaluate, cut: cutOf(graph, parts, k), imbalance: imbalanceOf(weights, graph.totalVertexWeight), partWeights: [...weights] });
    } else {
      const initialFile = opts.initial;
      const initial = initialFile ? parsed(initialFile, () => parsePartition(readText(initialFile), graph.vertexCount, k)) : undefined;
      const started = performance.now();
      const cpuBefore = process.cpuUsage();
      const result = partition(graph, { parts: k, imbalance: opts.imbalance, seed: opts.seed, initial, runs: opts.runs });
      const cpu = process.cpuUsage(cpuBefore);
      const timeMs = performance.now() - started;
      if (opts.out) writeText(opts.out, formatPartition(result.parts));
      Object.assign(summary, {
        cut: result.cut,
        imbalance: result.imbalance,
        partWeights: [...result.partWeights],
        balanced: result.balanced,
        ...(initial ? { moved: result.moved } : {}),
        timeMs: Math.round(timeMs * 10) / 10,
        // The process's CPU in the call (compiler and GC threads included): on a shared machine, steadier than the time.
        cpuMs: Math.round((cpu.user + cpu.system) / 100) / 10,
        readMs: Math.round(readMs * 10) / 10,
        ...(opts.out ? { out: opts.out } : {}),
      });
    }
    process.stdout.write(opts.json ? `${JSON.stringify(summary)}\n` : describe(summary));
    return 0;
  } catch (e) {
    if (e instanceof InputError || e instanceof RangeError) {
      process.stderr.write(`shardbank partition: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
}

function describe(s: Record<string, unknown>): string {
  const imbalance = (s['imbalance'] as number).toFixed(3);
  const heaviest = Math.max(...(s['partWeights'] as number[]));
  const lines = [
    `${s['file']}: ${s['vertices']} vertices, ${s['edges']} edges of total weight ${s['edgeWeight']}; ${s['parts']} parts of at most ${s['maxPartWeight']} (imbalance ${s['imbalanceLimit']})`,
    `${s['evaluated'] ? `${s['evaluated']}: ` : ''}cut ${s['cut']}, imbalance ${imbalance} (heaviest part ${heaviest})` +
      (s['moved'] !== undefined ? `, moved ${s['moved']}` : '') +
      (s['timeMs'] !== undefined ? `, time ${s['timeMs']} ms (CPU ${s['cpuMs']} ms; reading ${s['readMs']} ms)` : ''),
  ];
  if (s['balanced'] === false) lines.push('warning: the vertex weights leave no way to keep every part within the limit');
  if (s['out']) lines.push(`wrote ${s['out']}`);
  return lines.join('\n') + '\n';
}

export interface WorkloadGraphCliOptions extends TopologyOptions {
  preset?: string;
  transfers: number;
  crossShard?: number;
  distribution?: Distribution;
  skew?: number;
  affinity?: number;
  groupSize?: number;
  seed: number;
  touchedOnly?: boolean;
  out?: string;
  owners?: string;
}

/** The `workload-graph` command; returns the exit code. */
export async function workloadGraphCommand(opts: WorkloadGraphCliOptions): Promise<number> {
  try {
    const topology = topologyFromOptions(opts);
    const preset: Preset | undefined = opts.preset === undefined ? { about: '' } : PRESETS[opts.preset];
    if (!preset) throw new InputError(`unknown preset "${opts.preset}"; choose one of ${Object.keys(PRESETS).join(', ')}`);
    const { graph, owners } = workloadGraph(
      topology,
      {
        seed: opts.seed,
        readOnlyPct: 0,
        crossShardPct: opts.crossShard ?? preset.crossShardPct ?? 20,
        distribution: opts.distribution ?? preset.distribution ?? 'uniform',
        skew: opts.skew ?? preset.skew ?? 0,
        affinityPct: opts.affinity,
        groupSize: opts.groupSize,
      },
      opts.transfers,
      opts.touchedOnly,
    );
    const text = formatMetisGraph(graph);
    if (opts.out) writeText(opts.out, text);
    else process.stdout.write(text);
    if (opts.owners) writeText(opts.owners, formatPartition(owners));
    const where = opts.out ? ` to ${opts.out}` : '';
    process.stderr.write(`${opts.transfers} transfers: ${graph.vertexCount} vertices, ${graph.edgeCount} edges${where}${opts.owners ? `; owners to ${opts.owners}` : ''}\n`);
    return 0;
  } catch (e) {
    if (e instanceof InputError || e instanceof RangeError) {
      process.stderr.write(`shardbank workload-graph: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
}

function ratioArg(value: string): number {
  const x = Number(value);
  if (value.trim() === '' || !(x >= 0) || !Number.isFinite(x)) throw new InvalidArgumentError(`"${value}" is not a number >= 0 (0.03 allows 3% over the fair share).`);
  return x;
}

function unitArg(value: string): number {
  const x = Number(value);
  if (value.trim() === '' || !(x >= 0 && x <= 1)) throw new InvalidArgumentError(`"${value}" is not a number in 0..1.`);
  return x;
}

/** Adds `partition` and `workload-graph` to the program. */
export function registerPartitionCommands(program: Command): void {
  program
    .command('partition')
    .description('partition a METIS graph (or hMETIS .hgr hypergraph) into balanced parts, fewest cut edges first; print cut, imbalance, time')
    .argument('<file>', 'METIS graph file, or hMETIS hypergraph (.hgr)')
    .requiredOption('--parts <k>', 'number of parts', intArg(1, 1_000_000))
    .option('--imbalance <e>', 'no part above (1 + e) x its fair share of the vertex weight', ratioArg, DEFAULT_IMBALANCE)
    .option('--seed <n>', 'the same seed gives the same partition', intArg(0, 0xffffffff), 1)
    .option('--out <partfile>', 'write the part 0..k-1 of each vertex, one line per vertex (METIS .part)')
    .option('--initial <partfile>', 'the part each vertex is in now: among equal cuts, the fewest vertices move')
    .option('--evaluate <partfile>', 'do not partition: measure this partition (e.g. one from gpmetis) with the same cut and imbalance')
    .addOption(new Option('--format <f>', 'input format (default: hmetis for .hgr, else metis)').choices(['metis', 'hmetis']))
    .option('--runs <n>', 'independent multilevel runs to take the best of (default 4)', intArg(1, 1000))
    .option('--json', 'print one JSON object')
    .action(async (file: string, opts: PartitionCliOptions) => {
      process.exitCode = await partitionCommand(file, opts);
    });

  addTopologyOptions(
    program
      .command('workload-graph')
      .description('write the transaction graph of a benchmark workload as a METIS graph: items are vertices, transfers weighted edges')
      .option('--preset <name>', `the mix of a bench preset: ${Object.keys(PRESETS).join(', ')}`)
      .option('--transfers <n>', 'transfers to draw', intArg(1, 100_000_000), 10_000)
      .option('--cross-shard <pct>', 'percent of transfers across clusters (default 20)', intArg(0, 100))
      .addOption(new Option('--distribution <d>', 'how items are drawn').choices(['uniform', 'zipf', 'hotspot']))
      .option('--skew <x>', 'Zipf theta, or the hotspot share of draws, in 0..1', unitArg)
      .option('--affinity <pct>', 'percent of transfers within one affinity group; the rest draw both items uniformly', intArg(0, 100))
      .option('--group-size <n>', `items per affinity group (default ${DEFAULT_GROUP_SIZE})`, intArg(2))
      .option('--seed <n>', 'workload seed, as in bench', intArg(0), 1)
      .option('--touched-only', 'leave out the items no transfer touched (vertices renumbered)')
      .option('--out <file>', 'the graph file (default: standard output)')
      .option('--owners <partfile>', "also write each vertex's current cluster - 1, for partition --initial"),
  ).action(async (opts: WorkloadGraphCliOptions) => {
    process.exitCode = await workloadGraphCommand(opts);
  });
}
