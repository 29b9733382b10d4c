/**
 * `shardbank sim`: deterministic simulation runs. One seed (`--seed S`)
 * prints that run in full; a swarm (`--seeds 1..500`) runs many seeds, each
 * with its own random fault rates, in `--jobs` worker processes, and prints a
 * summary of runs, operations, faults injected and violations. A failing run
 * prints its seed first; `shardbank sim --seed S` reruns it exactly.
 */
import { fork } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PLANTED_BUGS, type PlantedBug } from '../actors/node-info.js';
import { nodeName, type NodeId } from '../protocol/messages.js';
import type { Topology } from '../protocol/topology.js';
import { EventLog } from '../store/eventlog.js';
import { saveTopology } from './config.js';
import type { MoveStats } from '../runtime/sim-moves.js';
import { FAULT_KINDS, simulate, type FaultKind, type SimReport } from '../runtime/simulator.js';

export interface SimCommandOptions {
  seed?: number;
  seeds?: [number, number];
  ops?: number;
  faults?: FaultKind[];
  history?: string;
  /** With --seed: keep every node's log as a LevelDB directory in DIR/nX (replay and the studio open them). */
  record?: string;
  jobs?: number;
  soak?: boolean;
  /** Move items during the runs (default true; commander's --no-reshard sets false). */
  reshard?: boolean;
  json?: boolean;
  /** Internal: a worker of a swarm reports each run as one JSON line. */
  worker?: boolean;
  /** Hidden: bugs planted in every node, to show that the checkers catch them. */
  injectBug?: PlantedBug[];
}

const MAIN = fileURLToPath(new URL('./main.js', import.meta.url));

export function parseSeedRange(text: string): [number, number] {
  const m = /^(\d+)(?:\.\.(\d+))?$/.exec(text.trim());
  if (!m) throw new Error(`"${text}" is not a seed range like 1..500`);
  const from = Number(m[1]);
  const to = Number(m[2] ?? m[1]);
  if (to < from) throw new Error(`seed range ${text} is empty`);
  return [from, to];
}

/** `--inject-bug a,b`: bugs the simulator plants on purpose (actors/node-info.ts). */
export function parsePlantedBugs(text: string): PlantedBug[] {
  const names = text.split(',').map((k) => k.trim());
  for (const n of names) {
    if (!(PLANTED_BUGS as readonly string[]).includes(n)) throw new Error(`unknown bug "${n}"; choose from ${PLANTED_BUGS.join(', ')}`);
  }
  return names as PlantedBug[];
}

export function parseFaults(text: string): FaultKind[] {
  if (text === 'all') return [...FAULT_KINDS];
  if (text === 'none') return [];
  const kinds = text.split(',').map((k) => k.trim());
  for (const k of kinds) {
    if (!(FAULT_KINDS as readonly string[]).includes(k)) throw new Error(`unknown fault "${k}"; choose from ${FAULT_KINDS.join(', ')}, all, none`);
  }
  return kinds as FaultKind[];
}

function runConfig(opts: SimCommandOptions, seed: number) {
  return {
    seed,
    ops: opts.ops ?? (opts.soak ? 1000 : 150),
    safetyMs: opts.soak ? 60_000 : 8000,
    faults: opts.faults,
    keepHistory: !!opts.history,
    reshard: opts.reshard !== false,
    plantedBugs: opts.injectBug,
  };
}

/** Events per LevelDB batch when copying a log out. */
const COPY_BATCH = 512;

/**
 * Where `--record DIR` writes: DIR must be new or empty, so that a recording
 * never mixes with an older one (or with anything else). Checked before the run.
 */
export function recordDir(dir: string): string {
  const abs = resolve(dir);
  if (existsSync(abs) && readdirSync(abs).length > 0) throw new Error(`${dir} is not empty; --record needs a new or empty directory`);
  return abs;
}

/** Copies every node's simulated log to DIR/nX (LevelDB, as a real node writes it) and the topology to DIR/config.json. */
async function recordLogs(dir: string, logs: ReadonlyMap<NodeId, EventLog>, topology: Topology): Promise<void> {
  mkdirSync(dir, { recursive: true });
  saveTopology(topology, join(dir, 'config.json'));
  for (const [node, log] of [...logs].sort((a, b) => a[0] - b[0])) {
    const out = EventLog.onDisk(join(dir, nodeName(node)), { sync: false });
    await out.open();
    let batch = [];
    for await (const { event } of log.entries()) {
      batch.push(event);
      if (batch.length >= COPY_BATCH) {
        await out.append(batch);
        batch = [];
      }
    }
    await out.append(batch);
    await out.close();
  }
}

/** A run as one line. */
export function describeRun(r: SimReport): string {
  const committed = r.outcomes['committed'] ?? 0;
  const unknown = Object.entries(r.outcomes).filter(([k]) => k.startsWith('failed')).reduce((s, [, n]) => s + n, 0);
  const faults = FAULT_KINDS.filter((k) => r.faults[k] > 0).map((k) => `${k} ${r.faults[k]}`).join(', ') || 'none';
  const verdict = r.violations.length === 0 ? 'ok' : `FAIL (${r.violations.length} violations)`;
  const moves = r.moves ? `; moves: ${r.moves.itemsMoved} items in ${r.moves.committed}/${r.moves.batches} batches` : '';
  return `seed ${r.seed}: ${verdict}; ${r.topology.clusters}x${r.topology.nodesPerCluster}; ${r.ops} ops, ${committed} committed, ${unknown} unknown${moves}; faults: ${faults}`;
}

/** What resharding did in a run, in one line. */
function describeMoves(m: MoveStats | null): string {
  if (!m) return 'off';
  return `${m.random} random and ${m.planned} planned reshardings; ${m.batches} move batches: ${m.committed} committed, ${m.aborted} aborted, ${m.failed} failed; ${m.itemsMoved} items moved`;
}

function printOne(r: SimReport, say: (l: string) => void): void {
  say(`seed ${r.seed}`);
  say(`topology   : ${r.topology.clusters} clusters x ${r.topology.nodesPerCluster} nodes, ${r.topology.items} items`);
  say(`faults on  : ${r.faultsOn.join(', ') || 'none'}`);
  if (r.plantedBugs.length > 0) say(`planted    : ${r.plantedBugs.join(', ')} (bugs put in on purpose)`);
  say(`injected   : ${FAULT_KINDS.map((k) => `${k} ${r.faults[k]}`).join(', ')}`);
  say(`operations : ${r.ops} (${Object.entries(r.outcomes).map(([k, n]) => `${k} ${n}`).join(', ')})`);
  say(`resharding : ${describeMoves(r.moves)}`);
  for (const [why, n] of Object.entries(r.moves?.reasons ?? {})) say(`             ${n} x ${why}`);
  say(`simulated  : ${(r.simulatedMs / 1000).toFixed(1)} s`);
  say(`log digest : ${r.digest}`);
  if (r.violations.length === 0) say('violations : none');
  else for (const v of r.violations) say(`VIOLATION  : ${v}`);
}

export async function simCommand(opts: SimCommandOptions): Promise<number> {
  const say = (l: string) => process.stdout.write(`${l}\n`);
  if (opts.seeds === undefined) {
    const seed = opts.seed ?? 1;
    const record = opts.record === undefined ? undefined : recordDir(opts.record);
    const keepLogs = record === undefined ? undefined : (logs: ReadonlyMap<NodeId, EventLog>, topology: Topology) => recordLogs(record, logs, topology);
    const r = await simulate({ ...runConfig(opts, seed), keepLogs });
    if (opts.json) say(JSON.stringify({ ...r, history: undefined }));
    else printOne(r, say);
    if (record) say(`recorded   : every node's log in ${record} (shardbank replay ${join(record, 'n1')}, or open it in shardbank studio)`);
    if (opts.history) writeFileSync(opts.history, `${JSON.stringify(r.history, null, 1)}\n`);
    return r.violations.length === 0 ? 0 : 1;
  }
  const [from, to] = opts.seeds;
  if (opts.worker) {
    for (let seed = from; seed <= to; seed++) say(JSON.stringify({ ...(await simulate(runConfig(opts, seed))), history: undefined }));
    return 0;
  }
  const reports = await swarm(opts, from, to, (r) => {
    if (!opts.json) say(describeRun(r));
  });
  reports.sort((a, b) => a.seed - b.seed);
  const failing = reports.filter((r) => r.violations.length > 0);
  if (opts.json) {
    for (const r of reports) say(JSON.stringify(r));
    return failing.length === 0 ? 0 : 1;
  }
  const totals = Object.fromEntries(FAULT_KINDS.map((k) => [k, reports.reduce((s, r) => s + r.faults[k], 0)]));
  const withKind = Object.fromEntries(FAULT_KINDS.map((k) => [k, reports.filter((r) => r.faults[k] > 0).length]));
  const ops = reports.reduce((s, r) => s + r.ops, 0);
  const committed = reports.reduce((s, r) => s + (r.outcomes['committed'] ?? 0), 0);
  say('');
  for (const r of failing) say(`FAILED seed ${r.seed}: ${r.violations.join('; ')}  (rerun: shardbank sim --seed ${r.seed})`);
  say(`runs       : ${reports.length} (seeds ${from}..${to}), ${failing.length} with violations`);
  say(`operations : ${ops} (${committed} committed)`);
  const moved = reports.filter((r) => r.moves);
  if (moved.length > 0) {
    const sum = (k: Exclude<keyof MoveStats, 'reasons'>) => moved.reduce((s, r) => s + r.moves![k], 0);
    say(`moves      : ${sum('batches')} batches (${sum('committed')} committed, ${sum('aborted')} aborted, ${sum('failed')} failed), ${sum('itemsMoved')} items moved, ${sum('planned')} partitioner plans`);
  }
  say(`faults     : ${FAULT_KINDS.map((k) => `${k} ${totals[k]} in ${withKind[k]} runs`).join(', ')}`);
  say(`violations : ${failing.reduce((s, r) => s + r.violations.length, 0)}`);
  return failing.length === 0 ? 0 : 1;
}

/** Runs seeds from..to in `jobs` worker processes (or here, for one job). */
async function swarm(opts: SimCommandOptions, from: number, to: number, onRun: (r: SimReport) => void): Promise<SimReport[]> {
  const jobs = Math.max(1, Math.min(opts.jobs ?? 1, to - from + 1));
  const reports: SimReport[] = [];
  if (jobs === 1) {
    for (let seed = from; seed <= to; seed++) {
      const r = await simulate({ ...runConfig(opts, seed), keepHistory: false });
      reports.push(r);
      onRun(r);
    }
    return reports;
  }
  const per = Math.ceil((to - from + 1) / jobs);
  await Promise.all(
    Array.from({ length: jobs }, (_, j) => {
      const a = from + j * per;
      const b = Math.min(to, a + per - 1);
      if (a > b) return Promise.resolve();
      const args = ['sim', '--seeds', `${a}..${b}`, '--worker'];
      if (opts.ops) args.push('--ops', String(opts.ops));
      if (opts.faults) args.push('--faults', opts.faults.length ? opts.faults.join(',') : 'none');
      if (opts.soak) args.push('--soak');
      if (opts.reshard === false) args.push('--no-reshard');
      if (opts.injectBug?.length) args.push('--inject-bug', opts.injectBug.join(','));
      return new Promise<void>((resolve, reject) => {
        const child = fork(MAIN, args, { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
        let buffer = '';
        child.stdout!.on('data', (d: Buffer) => {
          buffer += d.toString();
          let nl: number;
          while ((nl = buffer.indexOf('\n')) >= 0) {
            const line = buffer.slice(0, nl);
            buffer = buffer.slice(nl + 1);
            if (!line.trim()) continue;
            const r = JSON.parse(line) as SimReport;
            reports.push(r);
            onRun(r);
          }
        });
        child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`worker for seeds ${a}..${b} exited with ${code}`))));
      });
    }),
  );
  return reports;
}
