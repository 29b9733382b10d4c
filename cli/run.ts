/**
 * `shardbank run FILE.csv`: starts a local cluster of node processes (or
 * uses running ones with `--connect`), then runs the file's test sets. On a
 * terminal it asks before each set and offers the utilities after it; with
 * `--yes` (or without a terminal) it runs every set and prints the utilities'
 * output. `--json` prints one JSON line per set on stdout; the human output
 * then goes to stderr.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface, type Interface } from 'node:readline/promises';
import { allNodes, type Topology } from '../protocol/topology.js';
import { LocalCluster, tcpAdmin, tcpClient } from './cluster.js';
import { formatParseError, parseTestSets, validateSets, type TestSet } from './csv.js';
import { formatPerformance, formatPrintBalance, formatPrintDb, formatPrintView } from './format.js';
import { describeNodes, formatAudit, SetRunner, type CommandResult } from './runner.js';
import { progressSpinner } from './spinner.js';

export interface RunOptions {
  file: string;
  topology: Topology;
  yes?: boolean;
  json?: boolean;
  concurrency?: number;
  connect?: boolean;
  dataDir?: string;
  keepData?: boolean;
  set?: number[];
}

export async function runCommand(opts: RunOptions): Promise<number> {
  const out = opts.json ? process.stderr : process.stdout;
  const say = (line = '') => out.write(`${line}\n`);
  const text = readText(opts.file);
  const parsed = parseTestSets(text);
  const checked = validateSets(parsed.sets, opts.topology);
  const errors = [...parsed.errors, ...checked.errors].sort((a, b) => a.line - b.line);
  for (const e of errors) process.stderr.write(`${formatParseError(e, opts.file)} (skipped)\n`);
  let sets = checked.sets;
  if (opts.set && opts.set.length > 0) sets = sets.filter((s) => opts.set!.includes(s.set));
  if (sets.length === 0) {
    process.stderr.write(`${opts.file}: no test sets to run\n`);
    return 1;
  }

  const interactive = !opts.yes && process.stdin.isTTY === true && process.stdout.isTTY === true;
  const spinner = progressSpinner(!opts.json);
  const topo = opts.topology;
  const dataDir = opts.dataDir ? resolve(opts.dataDir) : mkdtempSync(join(tmpdir(), 'shardbank-run-'));
  const cluster = opts.connect ? null : new LocalCluster(topo, dataDir);
  const name = `run-${process.pid}`;
  const { admin, transport: adminTransport } = tcpAdmin(topo, `admin-${process.pid}`);
  const { client, transport: clientTransport } = tcpClient(topo, name, Math.max(64, opts.concurrency ?? 1));
  const rl: Interface | null = interactive ? createInterface({ input: process.stdin, output: process.stdout }) : null;
  let code = 0;
  // Interrupted: stop our node processes before going (each by its pid).
  const onSignal = (signal: NodeJS.Signals) => {
    process.stderr.write(`\n${signal}: stopping the cluster\n`);
    void (cluster?.stop() ?? Promise.resolve()).finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    if (cluster) {
      spinner.start(`starting ${topo.nodes.length} node processes (${topo.clusters} clusters x ${topo.nodesPerCluster}) in ${dataDir}`);
      await cluster.start(admin);
      spinner.succeed(`${topo.nodes.length} nodes running (${topo.clusters} clusters x ${topo.nodesPerCluster}), logs in ${dataDir}`);
    } else {
      for (const n of allNodes(topo)) await new LocalCluster(topo, dataDir).waitReady(admin, n, 5000);
    }
    const runner = new SetRunner({
      topology: topo,
      client,
      admin,
      concurrency: opts.concurrency ?? 1,
    });
    for (const set of sets) {
      if (rl) {
        const answer = await askSet(rl, set);
        if (answer === 'quit') break;
        if (answer === 'skip') {
          say(`Set ${set.set}: skipped`);
          continue;
        }
      }
      say(`\n=== Set ${set.set}: ${set.commands.length} commands, live ${describeNodes(set.live)}`);
      spinner.start(`set ${set.set}: flushing every node`);
      await runner.startSet(set);
      spinner.text = `set ${set.set}: running`;
      const results = await runner.runCommands(set);
      spinner.stop();
      for (const r of results) say(`  ${formatResult(r)}`);
      if (opts.json) {
        const report = await runner.report(set, results);
        say(formatAudit(report.audit));
        process.stdout.write(`${JSON.stringify(report)}\n`);
      } else {
        say(formatAudit(await runner.audit()));
      }
      if (rl) {
        const quit = await menu(rl, runner, topo, say);
        if (quit) break;
      } else {
        say(`--- PrintDB (set ${set.set})`);
        say(formatPrintDb(await runner.printDb(), allNodes(topo), { width: 120 }));
        say(`--- PrintView (set ${set.set})`);
        say(formatPrintView(await runner.printView()));
        say(`--- Performance (set ${set.set})`);
        say(formatPerformance(runner.performance()));
      }
    }
  } catch (err) {
    spinner.fail((err as Error).message);
    process.stderr.write(`${(err as Error).message}\n`);
    code = 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    rl?.close();
    client.abandonAll();
    if (cluster) await cluster.stop();
    await clientTransport.close();
    await adminTransport.close();
    if (cluster && !opts.keepData && !opts.dataDir) rmSync(dataDir, { recursive: true, force: true });
  }
  return code;
}

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new Error(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

export function formatResult(r: CommandResult): string {
  const extra: string[] = [];
  if (r.balance !== undefined) extra.push(`balance ${r.balance}`);
  if (r.reason) extra.push(r.reason);
  if (r.latencyMs !== undefined) extra.push(`${r.latencyMs.toFixed(1)} ms`);
  return `${r.command.padEnd(22)} ${r.status}${extra.length ? `  (${extra.join(', ')})` : ''}`;
}

async function askSet(rl: Interface, set: TestSet): Promise<'run' | 'skip' | 'quit'> {
  for (;;) {
    const a = (await rl.question(`\nSet ${set.set} (${set.commands.length} commands, live ${describeNodes(set.live)}): [r]un, [s]kip or [q]uit? `))
      .trim()
      .toLowerCase();
    if (a === '' || a === 'r' || a === 'run') return 'run';
    if (a === 's' || a === 'skip') return 'skip';
    if (a === 'q' || a === 'quit') return 'quit';
    console.log(`"${a}" is not one of run, skip, quit`);
  }
}

const MENU_HELP = 'printbalance ID | printdb | printview | performance | next | quit';

/** The utilities after a set; resolves true when the user quits. */
async function menu(rl: Interface, runner: SetRunner, topo: Topology, say: (l?: string) => void): Promise<boolean> {
  say(`Utilities: ${MENU_HELP}`);
  for (;;) {
    const line = (await rl.question('> ')).trim();
    const m = /^([a-z]+)\s*\(?\s*([^)]*?)\s*\)?$/i.exec(line);
    const cmd = (m?.[1] ?? '').toLowerCase();
    const arg = m?.[2] ?? '';
    try {
      if (cmd === 'next' || cmd === 'n' || line === '') return false;
      if (cmd === 'quit' || cmd === 'q') return true;
      if (cmd === 'printbalance') {
        const item = Number(arg);
        if (!Number.isInteger(item) || item < 1 || item > topo.items) say(`PrintBalance needs an item id in 1..${topo.items}, got "${arg}"`);
        else say(formatPrintBalance(await runner.printBalance(item)));
      } else if (cmd === 'printdb') say(formatPrintDb(await runner.printDb(), allNodes(topo), { width: 120 }));
      else if (cmd === 'printview') say(formatPrintView(await runner.printView()));
      else if (cmd === 'performance') say(formatPerformance(runner.performance()));
      else say(`unknown command "${line}"; try ${MENU_HELP}`);
    } catch (err) {
      say(`error: ${(err as Error).message}`);
    }
  }
}
