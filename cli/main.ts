#!/usr/bin/env node
/**
 * The `shardbank` command. Every subcommand exits with the same codes
 * (`exitCodes.ts`): ordinary mistakes get one line naming what and where,
 * never a stack trace.
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { parseNodeName } from '../protocol/messages.js';
import { addTopologyOptions, ConfigError, intArg, topologyFromOptions, type TopologyOptions } from './config.js';
import { securityFromFlags, UsageError, type SecurityFlags } from './credentials.js';
import { EXIT_CODES_HELP, EXIT_INTERNAL, EXIT_USAGE } from './exitCodes.js';
import { tuneJit } from './jit.js';
import { runNodeProcess } from './node.js';
import { replayMain, ReplayError, seqArg, txArg, typeArg, type ReplayCliOptions } from './replay.js';
import { parseReadConsistency, PRESETS, type Preset, type ReadConsistency } from './workload.js';
import type { Tuning } from '../protocol/topology.js';
import { endpointUrl } from '../client/etcd.js';
import { postgresUrl } from '../client/postgres-sql.js';
import { parseFaults, parsePlantedBugs, parseSeedRange, recordDir as recordDirArg, simCommand, type SimCommandOptions } from './sim.js';
import { FAULT_KINDS } from '../runtime/simulator.js';
import { registerPartitionCommands } from './partition.js';
import { parseAfter } from './utility-names.js';
import { parseListen } from './metrics.js';

const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

const program = new Command();
program
  .name('shardbank')
  .description('A sharded, replicated bank ledger: Multi-Paxos clusters, 2PC between them, every node an XState actor hierarchy over a LevelDB event log.')
  .version(VERSION, '-V, --version', 'print the version')
  .showHelpAfterError('(add --help for the options)')
  .addHelpText('after', `\n${EXIT_CODES_HELP}`)
  .exitOverride();

/** The same exit codes and the same error handling in every subcommand. */
function common<C extends Command>(cmd: C): C {
  cmd.exitOverride().addHelpText('after', `\n${EXIT_CODES_HELP}`).showHelpAfterError('(add --help for the options)');
  return cmd;
}

const TLS_HELP = {
  local: 'use this authority (from shardbank init) instead of a throwaway one; needed with --connect',
  node: "certificates from shardbank init (this node's is <dir>/nK.crt)",
  admin: 'certificates from shardbank init (this command uses <dir>/admin.crt)',
} as const;

/** --tls / --plaintext / --cluster-id: how a command's connections are secured. */
function addSecurityOptions<C extends Command>(cmd: C, who: keyof typeof TLS_HELP): C {
  cmd
    .option('--tls <dir>', TLS_HELP[who])
    .option('--plaintext', who === 'local' ? 'no TLS: plain TCP, loopback only' : 'no TLS: plain TCP, loopback only (every node of the cluster so)')
    .option('--cluster-id <id>', who === 'node' ? 'with --plaintext: the cluster id every hello must name (default "local")' : 'with --plaintext: the cluster id the nodes were started with (default "local")');
  return cmd;
}

function nodeArg(value: string): number {
  const id = parseNodeName(value);
  if (id === null) throw new InvalidArgumentError(`"${value}" is not a node name like n4.`);
  return id;
}

function setList(value: string, prev: number[] = []): number[] {
  return [...prev, ...value.split(',').map((v) => intArg(1)(v))];
}

addSecurityOptions(addTopologyOptions(
  common(program
    .command('run'))
    .description('run a CSV file of test sets on a local cluster of node processes')
    .argument('<file>', 'CSV test file (Set Number, Transactions, Live Nodes)')
    .option('-y, --yes', 'run every set without prompts (the default without a terminal)')
    .option('--json', 'print one JSON object per set on stdout (human output goes to stderr)')
    .option('--concurrency <n>', 'commands between F/R barriers run this many at a time', intArg(1, 10000), 1)
    .option('--set <n,...>', 'run only these sets', setList)
    .option('--connect', 'use nodes already running at the configured addresses instead of starting them')
    .option('--data-dir <dir>', 'where node logs and LevelDB directories go (default: a temporary directory, removed after)')
    .option('--keep-data', 'keep the temporary data directory')
    .option('--metrics-base-port <n>', 'node k serves Prometheus metrics on 127.0.0.1:(n + k - 1)', intArg(1, 65535))
    .option('--after <utilities>', 'run these utilities after every set, e.g. "printreshard; printbalance 4001" (with --json, in the set\'s "after")', (v: string) => wrap(() => parseAfterList(v))),
), 'local').action(async (file: string, opts: TopologyOptions & SecurityFlags & { yes?: boolean; json?: boolean; concurrency: number; set?: number[]; connect?: boolean; dataDir?: string; keepData?: boolean; metricsBasePort?: number; after?: string[] }) => {
  const topology = topologyFromOptions(opts);
  // Loaded when used, so that node processes start without the client-side libraries.
  const { runCommand } = await import('./run.js');
  process.exitCode = await runCommand({ file, topology, ...opts });
});

addSecurityOptions(addTopologyOptions(
  common(program
    .command('node'))
    .description('run one node process (local clusters start these for you)')
    .requiredOption('--id <node>', 'which node, e.g. n4', nodeArg)
    .requiredOption('--data-dir <dir>', 'directory for the node event logs (LevelDB)')
    .option('--seed <n>', 'seed for election timeouts', intArg(0))
    .option('--test-cluster', 'obey flush, fail and recover (the test driver\'s commands); run and bench set it')
    .option('--metrics <host:port>', 'serve Prometheus metrics here (HTTPS for the admin certificate with --tls)'),
), 'node').action(async (opts: TopologyOptions & SecurityFlags & { id: number; dataDir: string; seed?: number; testCluster?: boolean; metrics?: string }) => {
  const jit = tuneJit();
  const topology = topologyFromOptions(opts);
  const security = securityFromFlags(opts, 'node');
  const metrics = opts.metrics !== undefined ? parseListen(opts.metrics) : undefined;
  const stop = await runNodeProcess({ topology, node: opts.id, dataDir: opts.dataDir, seed: opts.seed, security, testCluster: opts.testCluster, metrics, jit });
  const shutdown = () => {
    void stop().then(() => process.exit(0));
  };
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
  // Started by a local cluster (bench, run): a parent that dies however it
  // dies takes its nodes with it instead of leaving them holding the ports.
  if (process.send) process.once('disconnect', shutdown);
});

common(program
  .command('replay'))
  .description("print a node's event log as a timeline, rebuild its state at any point, or diff two replicas' logs")
  .argument('<dir>', "a node's LevelDB log directory (<data-dir>/n4), or a file of replay --json lines")
  .option('--tx <txid>', 'only events about this transaction (client:timestamp, e.g. client/3:17)', txArg)
  .option('--item <n>', 'only events whose command touches this item or whose writes include it', intArg(1))
  .option('--type <kind,...>', 'only these event kinds (flushed, promised, accepted, committed, executed, view, failed, recovered, acked)', typeArg)
  .option('--seq <n|a..b>', 'only events about these seqs (a 2PC decision also by the seq it runs at)', seqArg)
  .addOption(new Option('--until <index>', 'print the state rebuilt from the events up to and including this index').argParser(intArg(0)).conflicts(['state', 'diff', 'tx', 'item', 'type', 'seq']))
  .addOption(new Option('--state', 'print the state rebuilt from the whole log').conflicts(['diff', 'tx', 'item', 'type', 'seq']))
  .addOption(new Option('--diff <dir2>', "compare with another replica's log: where do they diverge?").conflicts(['tx', 'item', 'type', 'seq']))
  .option('--json', 'JSON: one line per event, or one object for --state / --until / --diff')
  .action(async (dir: string, opts: ReplayCliOptions) => {
    process.exitCode = await replayMain(dir, opts);
  });

addSecurityOptions(addTopologyOptions(
  common(program
    .command('inspect'))
    .description("watch a running node's actors step by step: each state change, spawn and stop, as it happens")
    .requiredOption('--node <node>', 'which node, e.g. n1', nodeArg)
    .option('--all', 'every step, not only those that change a state')
    .option('--json', 'the inspection records as JSON lines')
    .option('--seconds <s>', 'stop after this many seconds (default: until Ctrl-C)', intArg(1, 86_400)),
), 'admin').action(async (opts: TopologyOptions & SecurityFlags & { node: number; all?: boolean; json?: boolean; seconds?: number }) => {
  const topology = topologyFromOptions(opts);
  const { inspectCommand } = await import('./inspect.js');
  process.exitCode = await inspectCommand({ ...opts, topology });
});

common(program
  .command('sim'))
  .description('deterministic simulation: a whole cluster in one process under seeded faults and item moves, checked for lost or created money and for items with two owners')
  .option('--seed <n>', 'run this one seed and print it in full', intArg(0))
  .option('--seeds <a..b>', 'a swarm: run every seed in the range, each with its own fault rates', (v: string) => wrap(() => parseSeedRange(v)))
  .option('--ops <n>', 'transfers and reads per run (default 150; 1000 with --soak)', intArg(1, 1_000_000))
  .option('--faults <kinds>', `fault kinds on in every run: all, none, or some of ${FAULT_KINDS.join(',')} (default: each seed picks)`, (v: string) => wrap(() => parseFaults(v)))
  .option('--history <file>', 'with --seed: write the history of operations (invoke, ok, fail, info) as JSON')
  .addOption(new Option('--record <dir>', "with --seed: keep every node's log as LevelDB directories DIR/n1, DIR/n2, … for replay and the studio").argParser((v: string) => wrap(() => recordDirArg(v))).conflicts('seeds'))
  .option('--jobs <n>', 'worker processes for a swarm (default 1)', intArg(1, 64))
  .option('--soak', 'longer runs: 60 s of faults and 1000 operations each')
  .option('--no-reshard', 'no moves of items between clusters (each seed then runs as it did before resharding)')
  .option('--json', 'one JSON object per run')
  .addOption(new Option('--worker').hideHelp())
  .addOption(new Option('--inject-bug <names>').hideHelp().argParser((v: string) => wrap(() => parsePlantedBugs(v))))
  .action(async (opts: SimCommandOptions) => {
    process.exitCode = await simCommand(opts);
  });

common(program
  .command('scenario'))
  .description('run scripted failure scenarios (testcases/scenarios/*.txt) against their golden stories')
  .argument('[files...]', 'scenario scripts (default: every script in testcases/scenarios)')
  .option('--rewrite', 'write each script\'s golden story anew from this run')
  .action(async (files: string[], opts: { rewrite?: boolean }) => {
    const { scenarioCommand } = await import('./scenario.js');
    process.exitCode = await scenarioCommand({ files, rewrite: opts.rewrite });
  });

addSecurityOptions(addTopologyOptions(
  common(program
    .command('bench'))
    .description('benchmark a local cluster of node processes: throughput, latency percentiles, and an audit at the end')
    .option('--preset <name>', `a named mix: ${Object.keys(PRESETS).join(', ')}`, (v: string) => wrap(() => presetArg(v)))
    .option('--count <n>', 'operations to run', intArg(1, 100_000_000))
    .option('--duration <s>', 'or: seconds to run', intArg(1, 86_400))
    .option('--clients <n>', 'requests in flight at once (default 64)', intArg(1, 10_000))
    .option('--read-only <pct>', 'percent of balance reads (default 0)', intArg(0, 100))
    .option('--cross-shard <pct>', 'percent of read-write operations that cross clusters (default 20)', intArg(0, 100))
    .addOption(new Option('--distribution <d>', 'how items are drawn').choices(['uniform', 'zipf', 'hotspot']))
    .option('--skew <x>', 'Zipf theta, or the hotspot share of draws, in 0..1', (v: string) => wrap(() => unitArg(v)))
    .option('--smallbank', 'SmallBank transaction kinds mapped onto reads and transfers')
    .addOption(new Option('--consistency <level>', 'the level reads are asked at: linearizable, leader (default), session, any, or mix (the four in turn); prints Performance per level').argParser((v: string) => wrap(() => parseReadConsistency(v))).conflicts(['etcd', 'postgres', 'idle']))
    .addOption(new Option('--lock-policy <policy>', 'what a leader does with a transfer whose item another holds: skip it (aborted: lock conflict, the default) or wait behind the holder; for the local cluster the bench starts').choices(['skip', 'wait']).conflicts(['etcd', 'postgres']))
    .option('--seed <n>', 'workload seed (default 1)', intArg(0))
    .option('--affinity <pct>', 'percent of read-write operations whose two items come from one affinity group (groups straddle clusters); the rest are uniform', intArg(0, 100))
    .option('--group-size <n>', 'items per affinity group (default 10)', intArg(2))
    .addOption(new Option('--reshard-at <s>', 'reshard this many seconds into the run, with the load going on; report before, during and after').argParser(intArg(0, 86_400)).conflicts(['etcd', 'postgres', 'idle']))
    .option('--json <file>', 'also write the results as JSON')
    .option('--settle <s>', 'how long the audit waits for in-doubt transactions to settle (default 10)', intArg(0, 3600))
    .option('--warmup <s>', 'run the workload this many seconds first, not counted (default 0)', intArg(0, 3600))
    .option('--connect', 'use nodes already running at the configured addresses')
    .addOption(new Option('--etcd <urls>', 'run the same workload against etcd instead (comma-separated client URLs; see bench/etcd.sh)').argParser((v: string) => wrap(() => urlList(v))).conflicts(['postgres', 'idle', 'connect']))
    .addOption(new Option('--postgres <url>', 'run the same workload against PostgreSQL instead (postgres://user@host:port/db; see bench/postgres.sh)').argParser((v: string) => wrap(() => postgresUrl(v).href)).conflicts(['idle', 'connect']))
    .option('--server-pids <pids>', 'with --etcd or --postgres: also report the CPU these processes and their children use over the run (comma-separated pids; Linux)', (v: string) => wrap(() => pidList(v)))
    .addOption(new Option('--idle <s>', "no workload: measure the nodes' CPU over this many seconds with nothing to do (after --warmup seconds to settle, default 2)").argParser(intArg(1, 3600)))
    .option('--data-dir <dir>', 'where node logs go (default: a temporary directory, removed after)')
    .option('--report-to <url>', 'post throughput and latency every second to a running studio (its URL), which plots them', (v: string) => wrap(() => httpUrl(v))),
), 'local').action(async (opts: TopologyOptions & Record<string, unknown>) => {
  const preset: Partial<Preset> = (opts['preset'] as Preset | undefined) ?? {};
  // Large balances by default, so that transfers rarely fail for lack of funds.
  const topology = topologyFromOptions({ ...opts, initialBalance: opts.initialBalance ?? 1_000_000 });
  const pick = <T>(flag: string, fallback: T): T => (opts[flag] as T | undefined) ?? ((preset as Record<string, unknown>)[flag] as T | undefined) ?? fallback;
  // --count and --duration given here replace the preset's size; both together stop at whichever comes first.
  const ownCount = opts['count'] as number | undefined;
  const ownDuration = opts['duration'] as number | undefined;
  const own = ownCount !== undefined || ownDuration !== undefined;
  const count = own ? ownCount : preset.count;
  const durationS = own ? ownDuration : (preset.durationS ?? (count === undefined ? 10 : undefined));
  const { benchCommand } = await import('./bench.js');
  const etcd = opts['etcd'] as string[] | undefined;
  const postgres = opts['postgres'] as string | undefined;
  const idleS = opts['idle'] as number | undefined;
  const readOnlyPct = pick('readOnly', preset.readOnlyPct ?? 0);
  const smallbank = pick('smallbank', preset.smallbank ?? false);
  if (opts['consistency'] !== undefined && readOnlyPct === 0 && !smallbank) {
    throw new UsageError(`--consistency ${String(opts['consistency'])}: this workload has no reads to ask at a level; give --read-only PCT (or --preset tc12)`);
  }
  const options = {
    preset: Object.entries(PRESETS).find(([, p]) => p === opts['preset'])?.[0],
    count,
    durationS,
    clients: pick('clients', 64),
    readOnlyPct,
    crossShardPct: pick('crossShard', preset.crossShardPct ?? 20),
    distribution: pick('distribution', preset.distribution ?? 'uniform'),
    skew: pick('skew', preset.skew ?? 0),
    smallbank,
    consistency: pick<ReadConsistency | undefined>('consistency', preset.consistency),
    lockPolicy: opts['lockPolicy'] as Tuning['lockPolicy'] | undefined,
    seed: pick('seed', 1),
    affinityPct: opts['affinity'] as number | undefined,
    groupSize: opts['groupSize'] as number | undefined,
    reshardAtS: opts['reshardAt'] as number | undefined,
    printReshard: preset.printReshard === true && !etcd && !postgres,
    json: opts['json'] as string | undefined,
    settleS: pick('settle', 10),
    warmupS: pick('warmup', 0),
    connect: opts['connect'] as boolean | undefined,
    dataDir: opts['dataDir'] as string | undefined,
    tls: opts['tls'] as string | undefined,
    plaintext: opts['plaintext'] as boolean | undefined,
    clusterId: opts['clusterId'] as string | undefined,
    reportTo: opts['reportTo'] as string | undefined,
  };
  if (options.groupSize !== undefined && options.affinityPct === undefined) throw new UsageError('bench: --group-size goes with --affinity PCT');
  if (options.groupSize !== undefined && options.groupSize > topology.items) throw new UsageError(`bench: --group-size ${options.groupSize} is more than the ${topology.items} items`);
  if (options.reshardAtS !== undefined && options.durationS !== undefined && options.reshardAtS >= options.durationS) {
    throw new UsageError(`bench: --reshard-at ${options.reshardAtS} is not within the run's ${options.durationS} s (--duration)`);
  }
  if (idleS !== undefined) {
    const { idleCommand } = await import('./bench-idle.js');
    process.exitCode = await idleCommand(topology, { ...options, idleS, settleS: pick('warmup', 2) });
  } else if (etcd || postgres) {
    const { otherSystemBenchCommand, etcdSystem, postgresSystem } = await import('./bench-systems.js');
    const other = etcd ? etcdSystem(etcd) : postgresSystem(postgres!, options.clients);
    process.exitCode = await otherSystemBenchCommand(topology, { ...options, serverPids: opts['serverPids'] as number[] | undefined }, other);
  } else {
    process.exitCode = await benchCommand(topology, options);
  }
});

addSecurityOptions(addTopologyOptions(
  common(program
    .command('studio'))
    .description('statecharts and the cluster in a local web page: every actor drawn, the current state lit, live or while stepping through a log')
    .option('--port <n>', 'port on 127.0.0.1 (0: any free port)', intArg(0, 65535), 7300)
    .option('--connect', 'watch nodes already running at the configured addresses instead of starting a local cluster')
    .addOption(new Option('--offline', 'no cluster: the charts, replay of logs and bench files only').conflicts('connect'))
    .option('--data-dir <dir>', 'where the local cluster keeps its logs (default: a temporary directory, removed after)')
    .option('--export <dir>', 'write the charts to DIR instead (one SVG per machine and an index.html that opens from disk) and exit')
    .addOption(new Option('--format <f>', 'with --export: svg (default) or mermaid; alone, mermaid prints every chart as a Mermaid stateDiagram-v2').choices(['svg', 'mermaid'])),
), 'local').action(async (opts: TopologyOptions & SecurityFlags & { port: number; connect?: boolean; offline?: boolean; dataDir?: string; export?: string; format?: 'svg' | 'mermaid' }) => {
  const topology = topologyFromOptions(opts);
  const { studioCommand } = await import('./studio.js');
  process.exitCode = await studioCommand({ ...opts, topology });
});

program
  .command('compare-table')
  .description('print the side-by-side table (shardbank, PostgreSQL with 2 sync standbys, etcd) from the bench --json files in a directory; bench/compare.sh makes them')
  .argument('<dir>', 'a directory of bench --json reports and a setup.json')
  .option('--json <file>', 'also write the table\'s figures and every report as one JSON file')
  .action(async (dir: string, opts: { json?: string }) => {
    const { compareTableCommand } = await import('./compare.js');
    process.exitCode = compareTableCommand(dir, opts);
  });

addTopologyOptions(
  common(program
    .command('init'))
    .description("create a cluster's certificate authority: a certificate per node, client and operator, each naming its role")
    .requiredOption('--out <dir>', 'directory for ca.crt, ca.key and every certificate and key')
    .option('--client <name,...>', 'client certificates to issue (default: client)', (v: string, prev: string[] = []) => [...prev, ...v.split(',')])
    .option('--admin <name,...>', 'operator (admin) certificates to issue (default: admin)', (v: string, prev: string[] = []) => [...prev, ...v.split(',')])
    .option('--cluster-id <id>', 'the cluster identity every certificate names (default: random)'),
).action(async (opts: TopologyOptions & { out: string; client?: string[]; admin?: string[]; clusterId?: string }) => {
  const topology = topologyFromOptions(opts);
  const { initCommand } = await import('./init.js');
  process.exitCode = await initCommand(topology, opts);
});

common(program
  .command('issue'))
  .description('issue one more certificate from an authority made by shardbank init')
  .requiredOption('--authority <dir>', 'the directory from shardbank init (it must hold ca.key)')
  .addOption(new Option('--role <role>', 'what the certificate may do').choices(['client', 'admin', 'peer']).makeOptionMandatory())
  .requiredOption('--name <name>', 'the identity: a client or operator name, or a node (n4)')
  .action(async (opts: { authority: string; role: 'client' | 'admin' | 'peer'; name: string }) => {
    const { issueFrom } = await import('./authority.js');
    await issueFrom(opts.authority, { role: opts.role, name: opts.name });
    process.stdout.write(`issued ${opts.role} certificate for ${opts.name}: ${opts.authority}/${opts.name}.crt and .key\n`);
  });

addSecurityOptions(addTopologyOptions(
  common(program
    .command('status'))
    .description('show a running cluster: leaders, ballots, commit points, lag, in-doubt transactions, nodes down')
    .option('--json', 'one JSON object'),
), 'admin').action(async (opts: TopologyOptions & SecurityFlags & { json?: boolean }) => {
  const topology = topologyFromOptions(opts);
  const { statusCommand } = await import('./status.js');
  process.exitCode = await statusCommand(topology, opts);
});

addSecurityOptions(addTopologyOptions(
  common(program
    .command('reshard'))
    .description("reshard a running cluster: gather each cluster's recent transfers, partition the items, move them; print the moves as (item, cSrc, cDst)")
    .option('--dry-run', 'only plan: print the moves and the cut before and after, move nothing')
    .option('--json', 'one JSON object')
    .option('--seed <n>', 'the partitioner\'s seed (default 1); the same seed and history give the same plan', intArg(0))
    .option('--imbalance <e>', 'no cluster above (1 + e) x its fair share of the items, e in 0..1 (default: tuning.reshardImbalance, 0.03)', (v: string) => wrap(() => unitArg(v)))
    .addOption(new Option('--connect').hideHelp()),
), 'admin').action(async (opts: TopologyOptions & SecurityFlags & { dryRun?: boolean; json?: boolean; seed?: number; imbalance?: number }) => {
  const topology = topologyFromOptions(opts);
  const { reshardCommand } = await import('./reshard.js');
  process.exitCode = await reshardCommand(topology, opts);
});

function parseAfterList(v: string): string[] {
  return parseAfter(v);
}

function presetArg(v: string): Preset {
  const p = PRESETS[v];
  if (!p) throw new Error(`unknown preset "${v}"; choose one of ${Object.keys(PRESETS).join(', ')}`);
  return p;
}

function urlList(v: string): string[] {
  const urls = v.split(',').map((u) => u.trim()).filter(Boolean);
  urls.forEach(endpointUrl);
  if (urls.length === 0) throw new Error('give at least one URL, e.g. http://127.0.0.1:2379');
  return urls;
}

function pidList(v: string): number[] {
  const pids = v.split(',').map((p) => p.trim()).filter(Boolean);
  if (pids.length === 0 || !pids.every((p) => /^[1-9]\d*$/.test(p))) throw new Error(`"${v}" is not a list of pids like 4012,4013`);
  return pids.map(Number);
}

function httpUrl(v: string): string {
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw new Error(`"${v}" is not a URL like http://127.0.0.1:7300/`);
  }
  if (u.protocol !== 'http:') throw new Error(`"${v}" is not an http:// URL`);
  return u.href;
}

function unitArg(v: string): number {
  const x = Number(v);
  if (!(x >= 0 && x <= 1)) throw new Error(`"${v}" is not a number in 0..1`);
  return x;
}

/** Turns a parser's error into commander's "invalid argument" message. */
function wrap<T>(parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

registerPartitionCommands(program);
/** Whether an error is an ordinary mistake (bad flag, file, config): one line, exit code 2. */
function isUsage(err: unknown): boolean {
  return err instanceof UsageError || err instanceof ConfigError || err instanceof ReplayError || err instanceof InvalidArgumentError;
}

program.parseAsync(process.argv).catch((err: unknown) => {
  if (err instanceof CommanderError) {
    // Help and --version end with code 0; a bad flag or argument has been printed already.
    process.exit(err.exitCode === 0 || err.code === 'commander.helpDisplayed' || err.code === 'commander.version' ? 0 : EXIT_USAGE);
  }
  if (isUsage(err)) {
    const prefix = err instanceof ConfigError ? 'config error' : 'shardbank';
    process.stderr.write(`${prefix}: ${(err as Error).message}\n`);
    process.exit(EXIT_USAGE);
  }
  // Not an ordinary mistake. A plain Error is a fault we describe (a node that does
  // not start); anything else is a bug, and its stack is what finds it.
  const e = err as Error;
  const text = e?.constructor === Error ? e.message : (e?.stack ?? String(err));
  process.stderr.write(`shardbank: ${text}\n`);
  process.exit(EXIT_INTERNAL);
});
