/**
 * `shardbank run FILE.csv`: starts a local cluster of node processes (or
 * uses running ones with `--connect`), then runs the file's test sets. On a
 * terminal it asks before each set and offers the utilities after it; with
 * `--yes` (or without a terminal) it runs every set and prints the utilities'
 * output. `--json` prints one JSON line per set on stdout; the human output
 * then goes to stderr.
 */
import { readFileSync } from 'node:fs';
import { createInterface, type Interface } from 'node:readline/promises';
import { allNodes, type Topology } from '../protocol/topology.js';
import { UsageError, type SecurityFlags } from './credentials.js';
import { formatParseError, parseTestSets, validateSets, type TestSet } from './csv.js';
import { EXIT_CHECK_FAILED, EXIT_OK } from './exitCodes.js';
import { formatPerformance, formatPrintDb, formatPrintView } from './format.js';
import { auditHolds, describeNodes, formatAudit, SetRunner, type CommandResult } from './runner.js';
import { Session } from './session.js';
import { progressSpinner } from './spinner.js';
import { parseUtility, runUtility, UTILITIES_HELP } from './utilities.js';

export interface RunOptions extends SecurityFlags {
  file: string;
  topology: Topology;
  yes?: boolean;
  json?: boolean;
  concurrency?: number;
  connect?: boolean;
  dataDir?: string;
  keepData?: boolean;
  set?: number[];
  metricsBasePort?: number;
  /** Utilities to run after every set (`printreshard; printbalance 4001`). */
  after?: string[];
}

/**
 * Runs the file's sets; resolves to the exit code: 0 when every set ran and
 * its audit held, 1 when a row was skipped or an audit failed. Bad input and
 * flags throw UsageError (exit code 2).
 */
export async function runCommand(opts: RunOptions): Promise<number> {
  const out = opts.json ? process.stderr : process.stdout;
  const say = (line = '') => out.write(`${line}\n`);
  const text = readText(opts.file);
  const parsed = parseTestSets(text);
  const checked = validateSets(parsed.sets, opts.topology);
  const errors = [...parsed.errors, ...checked.errors].sort((a, b) => a.line - b.line);
  for (const e of errors) process.stderr.write(`${formatParseError(e, opts.file)} (skipped)\n`);
  let sets = checked.sets;
  if (opts.set && opts.set.length > 0) {
    const missing = opts.set.filter((n) => !sets.some((s) => s.set === n));
    if (missing.length > 0) throw new UsageError(`--set ${missing.join(',')}: ${opts.file} has no such set (it has ${sets.map((s) => s.set).join(', ') || 'none'})`);
    sets = sets.filter((s) => opts.set!.includes(s.set));
  }
  if (sets.length === 0) throw new UsageError(`${opts.file}: no test sets to run`);

  const interactive = !opts.yes && process.stdin.isTTY === true && process.stdout.isTTY === true;
  const spinner = progressSpinner(!opts.json);
  const topo = opts.topology;
  const session = await Session.open({ ...opts, command: 'run', clientSlots: Math.max(64, opts.concurrency ?? 1) });
  const { admin, client } = session;
  const rl: Interface | null = interactive ? createInterface({ input: process.stdin, output: process.stdout }) : null;
  // A prompt reads the terminal key by key, so Ctrl-C reaches it as a key, not a
  // signal: turn it back into one (the run stops), and Ctrl-D into a quit.
  rl?.on('SIGINT', () => process.kill(process.pid, 'SIGINT'));
  let closedByUser = false;
  rl?.on('close', () => (closedByUser = true));
  let code = errors.length > 0 ? EXIT_CHECK_FAILED : EXIT_OK;
  try {
    await session.start(spinner);
    const runner = new SetRunner({
      topology: topo,
      client,
      admin,
      concurrency: opts.concurrency ?? 1,
    });
    for (const set of sets) {
      if (rl) {
        const answer = closedByUser ? 'quit' : await askSet(rl, set).catch(() => 'quit' as const);
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
      let audit;
      if (opts.json) {
        const report = await runner.report(set, results);
        audit = report.audit;
        say(formatAudit(audit));
        const after = await runAfter(runner, topo, opts.after ?? [], say);
        process.stdout.write(`${JSON.stringify(opts.after ? Object.assign(report, { after }) : report)}\n`);
      } else {
        audit = await runner.audit();
        say(formatAudit(audit));
        await runAfter(runner, topo, opts.after ?? [], say);
      }
      if (!auditHolds(audit)) code = EXIT_CHECK_FAILED;
      if (rl) {
        const quit = closedByUser || (await menu(rl, runner, topo, say).catch(() => true));
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
    spinner.stop();
    throw err;
  } finally {
    spinner.stop();
    rl?.close();
    await session.close();
  }
  return code;
}

function readText(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory, not a CSV file' : code === 'EACCES' ? 'permission denied' : (code ?? (err as Error).message);
    throw new UsageError(`${file}: ${why}`);
  }
}

export function formatResult(r: CommandResult): string {
  const extra: string[] = [];
  const status =
    r.status !== 'unknown' || !r.resolved
      ? r.status
      : r.resolved === 'committed'
        ? `unknown -> committed${r.resolvedSeq ? ` at seq ${r.resolvedSeq}` : ''}`
        : r.resolved === 'pending'
          ? 'unknown -> still pending'
          : 'unknown -> never applied';
  if (r.balance !== undefined) extra.push(`balance ${r.balance}`);
  if (r.reason) extra.push(r.reason);
  if (r.latencyMs !== undefined) extra.push(`${r.latencyMs.toFixed(1)} ms`);
  return `${r.command.padEnd(22)} ${status}${extra.length ? `  (${extra.join(', ')})` : ''}`;
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

const MENU_HELP = `${UTILITIES_HELP} | next | quit`;

/** The utilities after a set; resolves true when the user quits. */
async function menu(rl: Interface, runner: SetRunner, topo: Topology, say: (l?: string) => void): Promise<boolean> {
  say(`Utilities: ${MENU_HELP}`);
  for (;;) {
    const line = (await rl.question('> ')).trim();
    const cmd = parseUtility(line)?.name ?? '';
    if (cmd === 'next' || cmd === 'n' || line === '') return false;
    if (cmd === 'quit' || cmd === 'q') return true;
    try {
      say((await runUtility(runner, topo, line)).text);
    } catch (err) {
      say(`error: ${(err as Error).message}`);
    }
  }
}

/** `--after`'s utilities, each under its own heading; their JSON, for `--json`. */
async function runAfter(runner: SetRunner, topo: Topology, commands: string[], say: (l?: string) => void): Promise<Record<string, unknown>[]> {
  const out: Record<string, unknown>[] = [];
  for (const c of commands) {
    say(`--- ${c}`);
    try {
      const r = await runUtility(runner, topo, c);
      say(r.text);
      out.push(r.json);
    } catch (err) {
      say(`error: ${(err as Error).message}`);
      out.push({ command: c, error: (err as Error).message });
    }
  }
  return out;
}
