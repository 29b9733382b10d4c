#!/usr/bin/env node
/**
 * The `shardbank` command.
 */
import { Command, InvalidArgumentError } from 'commander';
import { parseNodeName } from '../protocol/messages.js';
import { addTopologyOptions, ConfigError, intArg, topologyFromOptions, type TopologyOptions } from './config.js';
import { runNodeProcess } from './node.js';
import { runCommand } from './run.js';

const program = new Command();
program
  .name('shardbank')
  .description('A sharded, replicated bank ledger: Multi-Paxos clusters, 2PC between them, every node an XState actor hierarchy over a LevelDB event log.')
  .showHelpAfterError();

function nodeArg(value: string): number {
  const id = parseNodeName(value);
  if (id === null) throw new InvalidArgumentError(`"${value}" is not a node name like n4.`);
  return id;
}

function setList(value: string, prev: number[] = []): number[] {
  return [...prev, ...value.split(',').map((v) => intArg(1)(v))];
}

addTopologyOptions(
  program
    .command('run')
    .description('run a CSV file of test sets on a local cluster of node processes')
    .argument('<file>', 'CSV test file (Set Number, Transactions, Live Nodes)')
    .option('-y, --yes', 'run every set without prompts (the default without a terminal)')
    .option('--json', 'print one JSON object per set on stdout (human output goes to stderr)')
    .option('--concurrency <n>', 'commands between F/R barriers run this many at a time', intArg(1, 10000), 1)
    .option('--set <n,...>', 'run only these sets', setList)
    .option('--connect', 'use nodes already running at the configured addresses instead of starting them')
    .option('--data-dir <dir>', 'where node logs and LevelDB directories go (default: a temporary directory, removed after)')
    .option('--keep-data', 'keep the temporary data directory'),
).action(async (file: string, opts: TopologyOptions & { yes?: boolean; json?: boolean; concurrency: number; set?: number[]; connect?: boolean; dataDir?: string; keepData?: boolean }) => {
  const topology = topologyFromOptions(opts);
  process.exitCode = await runCommand({ file, topology, ...opts });
});

addTopologyOptions(
  program
    .command('node')
    .description('run one node process (local clusters start these for you)')
    .requiredOption('--id <node>', 'which node, e.g. n4', nodeArg)
    .requiredOption('--data-dir <dir>', 'directory for the node event logs (LevelDB)')
    .option('--seed <n>', 'seed for election timeouts', intArg(0)),
).action(async (opts: TopologyOptions & { id: number; dataDir: string; seed?: number }) => {
  const topology = topologyFromOptions(opts);
  const stop = await runNodeProcess({ topology, node: opts.id, dataDir: opts.dataDir, seed: opts.seed });
  const shutdown = () => {
    void stop().then(() => process.exit(0));
  };
  process.once('SIGTERM', shutdown);
  process.once('SIGINT', shutdown);
});

program.parseAsync(process.argv).catch((err: unknown) => {
  if (err instanceof ConfigError) process.stderr.write(`config error: ${err.message}\n`);
  else process.stderr.write(`shardbank: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(2);
});
