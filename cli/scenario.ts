/**
 * Scripted failure scenarios: a plain-text script drives a simulated cluster
 * step by step, and what happened is printed as a story whose golden copy
 * sits beside the script (`name.txt` -> `name.golden`). A spec replays every
 * script; `shardbank scenario --rewrite` writes the golden files anew.
 *
 *     # comment
 *     start [clusters=3] [nodes=3] [items=9000] [balance=10] [seed=1]
 *     transfer 1001 1002 1 [as NAME]     a transfer; `as NAME` starts it and goes on
 *     move 4001,4002 c2 c1 [as NAME]     moves items from c2 to c1 as an operator does (a move at c2's leader)
 *     reshard                            PrintReshard: the partitioner's plan over the recent transfers, carried out
 *     await NAME                         waits for a transfer or move started with `as`
 *     read 1002
 *     fail n2 | recover n2               the test sets' F and R: disconnect, reconnect
 *     crash n2 | restart n2              kill the process (writes not yet synced are lost), start it from its log
 *     partition n1 | n2 n3               cut every link between the two groups
 *     isolate n1 | heal
 *     drop 0.2 | duplicate 0.1 | delay 1 50
 *     drop-next txDecision 2             drop the next 2 messages of one kind
 *     hold txVote | release txVote       keep messages of one kind until released
 *     skew n4 0.2                        n4's clock runs fast (its timers fire early)
 *     tick 500                           let 500 ms of simulated time pass
 *     expect balance 1001 = 9 9 9        the value on every node of the owning cluster (- : not running)
 *     expect owner 4001 = c1             every running node of c1 owns it, and no other cluster's does
 *     expect acked                       no leader still resends a decision its participant never acknowledged
 *     expect leader c1 = n2 | expect leader c1 != n1
 *     expect status NAME = committed
 *     expect conserved                   total money unchanged (at each item's owner), replicas of each cluster
 *                                        equal, no WAL left, no balance held outside its owner
 *     print balance 1001 | print view | print wal | print owners
 *     sim 45 [moves]                     a whole simulated run with random faults; prints its verdict
 *                                        (with `moves`, items move during it, as in a swarm; without,
 *                                        the seed runs as it did before resharding existed)
 */
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TxResult } from '../client/client.js';
import { formatMoves, type MoveBatch } from '../client/resharder.js';
import { bodyOf, parseNodeName, shardbank, type EnvelopeProps, type NodeId, type ViewRecord } from '../protocol/messages.js';
import { allNodes, clusterNodes, clusterOfItem, clusterOfNode, makeTopology } from '../protocol/topology.js';
import { ownerOf, type ReplicaView } from '../store/state.js';
import { checkBalancesAtOwners, checkMoney, checkOwners } from '../runtime/ownership-checks.js';
import { SimCluster } from '../runtime/sim.js';
import { simulate } from '../runtime/simulator.js';
import { UsageError } from './credentials.js';
import { formatPrintBalance, formatPrintView } from './format.js';
import { collectViews } from './runner.js';

export class ScenarioError extends Error {}

export interface Step {
  line: number;
  text: string;
  words: string[];
}

const COMMANDS = new Set([
  'start', 'transfer', 'await', 'read', 'fail', 'recover', 'crash', 'restart', 'partition', 'isolate', 'heal', 'drop',
  'duplicate', 'delay', 'drop-next', 'hold', 'release', 'skew', 'tick', 'expect', 'print', 'sim', 'move', 'reshard',
]);

/** Parses a script; every problem is reported with its line, none is fatal to the parse. */
export function parseScenario(text: string): { steps: Step[]; errors: string[] } {
  const steps: Step[] = [];
  const errors: string[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = i + 1;
    const body = raw.replace(/#.*/, '').trim();
    if (!body) return;
    const words = body.split(/\s+/);
    const cmd = words[0]!.toLowerCase();
    if (!COMMANDS.has(cmd)) {
      errors.push(`line ${line}: unknown command "${words[0]}"`);
      return;
    }
    const problem = checkArgs(cmd, words.slice(1));
    if (problem) errors.push(`line ${line}: ${problem}: ${body}`);
    else steps.push({ line, text: body, words: [cmd, ...words.slice(1)] });
  });
  if (steps.length > 0 && steps[0]!.words[0] !== 'start' && steps[0]!.words[0] !== 'sim') {
    errors.push(`line ${steps[0]!.line}: a scenario begins with "start" (or is a "sim" run)`);
  }
  return { steps, errors };
}

const isInt = (w: string | undefined) => w !== undefined && /^\d+$/.test(w);
const isNode = (w: string | undefined) => w !== undefined && parseNodeName(w) !== null && /^n\d+$/i.test(w);
const isCluster = (w: string | undefined) => w !== undefined && /^c\d+$/i.test(w);

function checkArgs(cmd: string, a: string[]): string | null {
  switch (cmd) {
    case 'start':
      return a.every((w) => /^(clusters|nodes|items|balance|seed)=\d+$/.test(w)) ? null : 'expected key=number options';
    case 'transfer':
      if (!isInt(a[0]) || !isInt(a[1]) || !isInt(a[2])) return 'expected sender receiver amount';
      if (a.length === 3) return null;
      return a.length === 5 && a[3] === 'as' && /^\w+$/.test(a[4]!) ? null : 'expected "as NAME" after the amount';
    case 'await':
      return a.length === 1 && /^\w+$/.test(a[0]!) ? null : 'expected a name';
    case 'move':
      if (!/^\d+(,\d+)*$/.test(a[0] ?? '') || !isCluster(a[1]) || !isCluster(a[2])) return 'expected "move ITEM[,ITEM...] cFROM cTO"';
      if (a.length === 3) return null;
      return a.length === 5 && a[3] === 'as' && /^\w+$/.test(a[4]!) ? null : 'expected "as NAME" after the clusters';
    case 'reshard':
      return a.length === 0 ? null : 'takes nothing';
    case 'read':
      return a.length === 1 && isInt(a[0]) ? null : 'expected an item';
    case 'fail':
    case 'recover':
    case 'crash':
    case 'restart':
    case 'isolate':
      return a.length === 1 && isNode(a[0]) ? null : 'expected a node like n2';
    case 'partition': {
      const bar = a.indexOf('|');
      if (bar <= 0 || bar === a.length - 1) return 'expected "nodes | nodes"';
      return a.filter((w) => w !== '|').every(isNode) ? null : 'expected node names';
    }
    case 'heal':
      return a.length === 0 ? null : 'takes nothing';
    case 'drop':
    case 'duplicate':
      return a.length === 1 && /^(0(\.\d+)?|1(\.0+)?)$/.test(a[0]!) ? null : 'expected a rate in [0, 1]';
    case 'delay':
      return a.length === 2 && isInt(a[0]) && isInt(a[1]) && Number(a[0]) <= Number(a[1]) ? null : 'expected min max in ms';
    case 'drop-next':
      return a.length >= 1 && a.length <= 2 && /^\w+$/.test(a[0]!) && (a.length === 1 || isInt(a[1])) ? null : 'expected a message kind and a count';
    case 'hold':
    case 'release':
      return a.length === 1 && /^\w+$/.test(a[0]!) ? null : 'expected a message kind';
    case 'skew':
      return a.length === 2 && isNode(a[0]) && /^\d+(\.\d+)?$/.test(a[1]!) && Number(a[1]) > 0 ? null : 'expected a node and a positive factor';
    case 'tick':
      return a.length === 1 && isInt(a[0]) ? null : 'expected milliseconds';
    case 'expect':
      if (a[0] === 'balance') {
        return isInt(a[1]) && a[2] === '=' && a.length > 3 && a.slice(3).every((w) => isInt(w) || w === '-') ? null : 'expected "balance ITEM = v v v" (- for a node not running)';
      }
      if (a[0] === 'leader') return /^c\d+$/i.test(a[1] ?? '') && (a[2] === '=' || a[2] === '!=') && isNode(a[3]) && a.length === 4 ? null : 'expected "leader cN = nX"';
      if (a[0] === 'status') return /^\w+$/.test(a[1] ?? '') && a[2] === '=' && a.length === 4 ? null : 'expected "status NAME = committed"';
      if (a[0] === 'conserved') return a.length === 1 ? null : 'takes nothing';
      if (a[0] === 'acked') return a.length === 1 ? null : 'takes nothing';
      if (a[0] === 'owner') return isInt(a[1]) && a[2] === '=' && isCluster(a[3]) && a.length === 4 ? null : 'expected "owner ITEM = cN"';
      return 'expected balance, leader, status, owner, acked or conserved';
    case 'print':
      if (a[0] === 'balance') return a.length === 2 && isInt(a[1]) ? null : 'expected "print balance ITEM"';
      return a.length === 1 && (a[0] === 'view' || a[0] === 'wal' || a[0] === 'owners') ? null : 'expected balance ITEM, view, wal or owners';
    case 'sim':
      return isInt(a[0]) && (a.length === 1 || (a.length === 2 && a[1] === 'moves')) ? null : 'expected a seed, and "moves" or nothing';
  }
  return null;
}

function describe(r: TxResult): string {
  return r.reason ? `${r.status} (${r.reason})` : r.status;
}

/** A move's batches as one outcome: committed when every batch did, else the first that did not. */
function moveResult(batches: MoveBatch[]): TxResult {
  const bad = batches.find((b) => b.status !== 'committed');
  if (!bad) return { status: 'committed', latencyMs: 0 };
  return { status: bad.status, reason: bad.reason, latencyMs: 0 };
}

/** Runs a parsed scenario; returns the story, line by line. */
export async function runScenario(steps: Step[]): Promise<string[]> {
  const out: string[] = [];
  const say = (s: string) => out.push(`  ${s}`);
  let sim: SimCluster | null = null;
  const named = new Map<string, Promise<TxResult>>();
  const results = new Map<string, TxResult>();
  const drops = new Map<string, number>();
  const held = new Map<string, EnvelopeProps[] | null>();
  let failures = 0;
  const need = (): SimCluster => {
    if (!sim) throw new ScenarioError('no cluster: the scenario must "start" first');
    return sim;
  };
  const node = (w: string): NodeId => {
    const id = parseNodeName(w)!;
    if (!allNodes(need().topology).includes(id)) throw new ScenarioError(`${w} is not a node of this cluster`);
    return id;
  };
  const check = (ok: boolean, what: string) => {
    if (ok) say(`ok: ${what}`);
    else {
      failures++;
      say(`FAILED: ${what}`);
    }
  };
  /** `... as NAME` (words 3 and 4) runs in the background under that name; otherwise the step waits and says how it ended. */
  const startOrAwait = async (p: Promise<TxResult>, a: string[]) => {
    if (a[3] === 'as') {
      named.set(a[4]!, p);
      void p.then((r) => results.set(a[4]!, r));
      say(`started as ${a[4]}`);
    } else say(describe(await need().until(p)));
  };
  try {
    for (const step of steps) {
      out.push(`> ${step.text}`);
      const [cmd, ...a] = step.words;
      switch (cmd) {
        case 'start': {
          const opt = Object.fromEntries(a.map((w) => w.split('=')).map(([k, v]) => [k, Number(v)]));
          const clusters = opt['clusters'] ?? 3;
          const nodesPerCluster = opt['nodes'] ?? 3;
          sim = await SimCluster.start({
            seed: opt['seed'] ?? 1,
            topology: makeTopology({ clusters, nodesPerCluster, items: opt['items'] ?? clusters * 3000, initialBalance: opt['balance'] ?? 10 }),
          });
          interceptNetwork(sim, drops, held);
          await sim.startSet();
          say(`${clusters} clusters x ${nodesPerCluster} nodes; leaders ${Array.from({ length: clusters }, (_, i) => `n${sim!.leaderOf(i + 1)}`).join(', ')}`);
          break;
        }
        case 'transfer': {
          await startOrAwait(need().client.transfer(Number(a[0]), Number(a[1]), Number(a[2])), a);
          break;
        }
        case 'move': {
          const [from, to] = [Number(a[1]!.slice(1)), Number(a[2]!.slice(1))];
          const moves = a[0]!.split(',').map((w) => ({ item: Number(w), from, to }));
          await startOrAwait(need().moveItems(moves).then(moveResult), a);
          break;
        }
        case 'reshard': {
          const { plan, batches } = await need().until(need().reshard());
          const done = new Set(batches.filter((b) => b.status === 'committed').flatMap((b) => b.items));
          say(`plan over ${plan.transfers} transfers: cut ${plan.cutBefore} -> ${plan.cutAfter}, ${plan.moves.length} moves`);
          say(formatMoves(plan.moves.filter((m) => done.has(m.item))));
          for (const b of batches.filter((x) => x.status !== 'committed')) say(`c${b.from} -> c${b.to} ${b.items.join(',')}: ${b.status} (${b.reason})`);
          break;
        }
        case 'await': {
          const p = named.get(a[0]!);
          if (!p) throw new ScenarioError(`no transfer named ${a[0]}`);
          say(`${a[0]}: ${describe(await need().until(p))}`);
          break;
        }
        case 'read': {
          const r = await need().read(Number(a[0]));
          say(r.balance !== undefined ? `balance ${r.balance}` : describe(r));
          break;
        }
        case 'fail':
          await need().fail(node(a[0]!));
          say(`${a[0]} disconnected`);
          break;
        case 'recover':
          await need().recover(node(a[0]!));
          say(`${a[0]} reconnected`);
          break;
        case 'crash':
          need().kill(node(a[0]!));
          say(`${a[0]} killed`);
          break;
        case 'restart': {
          const host = await need().restart(node(a[0]!));
          say(`${a[0]} restarted from its log: executed through seq ${host.state.executedThrough}`);
          break;
        }
        case 'partition': {
          const bar = a.indexOf('|');
          need().network.partition(a.slice(0, bar).map(node), a.slice(bar + 1).map(node));
          say('partitioned');
          break;
        }
        case 'isolate':
          need().network.isolate(node(a[0]!));
          say(`${a[0]} isolated`);
          break;
        case 'heal':
          need().network.heal();
          say('network healed');
          break;
        case 'drop':
          need().network.setDropRate(Number(a[0]));
          say(`dropping ${Number(a[0]) * 100}% of messages`);
          break;
        case 'duplicate':
          need().network.setDuplicateRate(Number(a[0]));
          say(`duplicating ${Number(a[0]) * 100}% of messages`);
          break;
        case 'delay':
          need().network.setDelay(Number(a[0]), Number(a[1]));
          say(`delays ${a[0]}..${a[1]} ms`);
          break;
        case 'drop-next':
          drops.set(a[0]!, Number(a[1] ?? 1));
          say(`dropping the next ${a[1] ?? 1} ${a[0]}`);
          break;
        case 'hold':
          held.set(a[0]!, []);
          say(`holding ${a[0]} messages`);
          break;
        case 'release': {
          const kept = held.get(a[0]!) ?? [];
          held.delete(a[0]!);
          // Messages to a node that died meanwhile are lost with it.
          const alive = kept.filter((env) => need().isRunning(env.to!));
          // Each as the network would hand it over: decoded from its bytes (a plain object names no body).
          for (const env of alive) need().host(env.to!).receive(shardbank.Envelope.decode(shardbank.Envelope.encode(env).finish()));
          say(`released ${alive.length} ${a[0]} messages`);
          break;
        }
        case 'skew':
          need().setSkew(node(a[0]!), Number(a[1]));
          say(`${a[0]} clock at ${a[1]}x`);
          break;
        case 'tick':
          await need().runFor(Number(a[0]));
          break;
        case 'expect':
          expect(need(), a, results, check, node);
          break;
        case 'print':
          await print(need(), a, say);
          break;
        case 'sim': {
          const r = await simulate({ seed: Number(a[0]), keepHistory: false, reshard: a[1] === 'moves' });
          say(`seed ${r.seed}: ${r.ops} operations under ${r.faultsOn.join(', ') || 'no faults'}${r.moves ? `, ${r.moves.itemsMoved} items moved` : ''}`);
          check(r.violations.length === 0, r.violations.length === 0 ? 'no violations' : r.violations.join('; '));
          break;
        }
      }
    }
  } catch (err) {
    if (!(err instanceof ScenarioError)) throw err;
    out.push(`  ERROR: ${err.message}`);
    failures++;
  } finally {
    await sim?.stop();
  }
  out.push(failures === 0 ? '# all expectations met' : `# ${failures} expectations FAILED`);
  return out;
}

const ENVELOPE_FIELDS = new Set(['from', 'to', 'toClient', 'fromClient', 'epoch']);

/** The body of an envelope as it is being sent (a plain object: no decoded oneof). */
function kindOf(env: EnvelopeProps): string {
  return bodyOf(env) ?? Object.keys(env).find((k) => !ENVELOPE_FIELDS.has(k) && (env as Record<string, unknown>)[k] != null) ?? '';
}

/** Drops or holds chosen kinds of messages, as the script says. */
function interceptNetwork(sim: SimCluster, drops: Map<string, number>, held: Map<string, EnvelopeProps[] | null>): void {
  const net = sim.network as unknown as { transmit(from: unknown, env: EnvelopeProps): void };
  const transmit = net.transmit.bind(net);
  net.transmit = (from, env) => {
    const kind = kindOf(env);
    const left = drops.get(kind) ?? 0;
    if (left > 0) {
      drops.set(kind, left - 1);
      return;
    }
    const kept = held.get(kind);
    if (kept && env.to) {
      kept.push(env);
      return;
    }
    transmit(from, env);
  };
}

function expect(
  sim: SimCluster,
  a: string[],
  results: Map<string, TxResult>,
  check: (ok: boolean, what: string) => void,
  node: (w: string) => NodeId,
): void {
  if (a[0] === 'balance') {
    const item = Number(a[1]);
    const nodes = clusterNodes(sim.topology, owningCluster(sim, item));
    const got = nodes.map((n) => (sim.isRunning(n) ? String(sim.balances(item, [n])[0]) : '-'));
    const want = a.slice(3);
    check(got.join(' ') === want.join(' '), `balance ${item} is ${got.join(' ')} on ${nodes.map((n) => `n${n}`).join(' ')}${got.join(' ') === want.join(' ') ? '' : ` (expected ${want.join(' ')})`}`);
  } else if (a[0] === 'leader') {
    const cluster = Number(a[1]!.slice(1));
    const leader = sim.leaderOf(cluster);
    const want = node(a[3]!);
    const ok = a[2] === '=' ? leader === want : leader !== undefined && leader !== want;
    check(ok, `c${cluster} is led by ${leader ? `n${leader}` : 'nobody'}${ok ? '' : ` (expected ${a[2] === '=' ? '' : 'not '}${a[3]})`}`);
  } else if (a[0] === 'status') {
    const r = results.get(a[1]!);
    const got = r ? r.status : 'still running';
    check(got === a[3], `${a[1]} is ${got}${got === a[3] ? '' : ` (expected ${a[3]})`}`);
  } else if (a[0] === 'conserved') {
    const problems = conservation(sim);
    check(problems.length === 0, problems.length === 0 ? 'money conserved, replicas equal, no WAL left' : problems.join('; '));
  } else if (a[0] === 'acked') {
    const waiting = [...sim.hosts].filter(([, h]) => h.view.role === 'leader' && h.state.unacked.size > 0).map(([n, h]) => `n${n} waits for ${[...h.state.unacked.keys()].join(', ')}`);
    check(waiting.length === 0, waiting.length === 0 ? 'every decision acknowledged' : waiting.join('; '));
  } else if (a[0] === 'owner') {
    const item = Number(a[1]);
    const want = Number(a[3]!.slice(1));
    const views = ownershipViews(sim, item);
    const ok = views.every((v) => (v.cluster === want) === v.claims);
    const owner = sim.ownerOf(item);
    check(ok, ok ? `${item} is owned by c${want} (version ${owner?.version ?? '?'})` : `${item}: ${views.map((v) => `n${v.node} ${v.claims ? 'owns it' : `says c${v.owner}`} (version ${v.version})`).join(', ')} (expected c${want})`);
  }
}

/** The cluster that owns an item as the running replicas say (the shard map when none claims it). */
function owningCluster(sim: SimCluster, item: number): number {
  const owner = sim.ownerOf(item)?.cluster ?? clusterOfItem(sim.topology, item);
  if (owner === null) throw new ScenarioError(`item ${item} is out of range`);
  return owner;
}

/** Each running, live node's view of an item's owner. */
function ownershipViews(sim: SimCluster, item: number): { node: NodeId; cluster: number; owner: number; version: number; claims: boolean }[] {
  return allNodes(sim.topology)
    .filter((n) => sim.isRunning(n) && !sim.host(n).state.failed)
    .map((node) => {
      const cluster = clusterOfNode(sim.topology, node);
      const o = ownerOf(sim.topology, sim.host(node).state, item);
      return { node, cluster, owner: o?.cluster ?? 0, version: o?.version ?? 0, claims: o?.cluster === cluster };
    });
}

/**
 * What `expect conserved` finds wrong: replicas of a cluster that differ, WAL
 * entries left, balances held by a cluster that does not own the item, and
 * the total over each item's owner.
 */
function conservation(sim: SimCluster): string[] {
  const problems: string[] = [];
  const { topology } = sim;
  const firsts = new Map<number, ReplicaView>();
  for (let c = 1; c <= topology.clusters; c++) {
    const nodes = clusterNodes(topology, c).filter((n) => sim.isRunning(n) && !sim.host(n).state.failed);
    const rows = nodes.map((n) => JSON.stringify([[...sim.host(n).state.balances].sort((x, y) => x[0] - y[0]), [...sim.host(n).state.owners].sort((x, y) => x[0] - y[0])]));
    if (rows.some((r) => r !== rows[0])) problems.push(`c${c} replicas differ`);
    for (const n of nodes) if (sim.host(n).state.wal.size > 0) problems.push(`n${n} holds a WAL entry`);
    if (nodes[0]) firsts.set(c, sim.host(nodes[0]).state);
  }
  if (firsts.size < topology.clusters) return problems;
  const { violations, owners } = checkOwners(topology, firsts, sim.seed);
  problems.push(...violations.map(withoutSeed), ...checkBalancesAtOwners(topology, replicasOf(sim), owners, sim.seed).map(withoutSeed));
  problems.push(...checkMoney(topology, firsts, owners, sim.seed).map(withoutSeed));
  return problems;
}

function replicasOf(sim: SimCluster): Map<NodeId, ReplicaView> {
  return new Map([...sim.hosts].filter(([, h]) => !h.state.failed).map(([n, h]) => [n, h.state] as const));
}

/** A scenario names its seed once, at its start. */
function withoutSeed(msg: string): string {
  return msg.replace(/^seed \d+: /, '');
}

async function print(sim: SimCluster, a: string[], say: (s: string) => void): Promise<void> {
  if (a[0] === 'balance') {
    const item = Number(a[1]);
    say(formatPrintBalance(clusterNodes(sim.topology, owningCluster(sim, item)).map((n) => ({ node: n, balance: sim.isRunning(n) ? sim.balances(item, [n])[0]! : null }))));
  } else if (a[0] === 'view') {
    const views = collectViews(sim.topology, [...sim.hosts].map(([n, host]): [NodeId, ViewRecord[]] => [n, host.state.views]));
    for (const line of formatPrintView(views).split('\n')) say(line);
  } else if (a[0] === 'owners') {
    const lines: string[] = [];
    for (let c = 1; c <= sim.topology.clusters; c++) {
      const node = clusterNodes(sim.topology, c).find((n) => sim.isRunning(n));
      if (!node) continue;
      const owners = [...sim.host(node).state.owners].sort((x, y) => x[0] - y[0]);
      lines.push(`c${c} (n${node}): ${owners.length === 0 ? 'the shard map' : owners.map(([item, o]) => `${item} -> c${o.cluster} v${o.version}`).join(', ')}`);
    }
    for (const l of lines) say(l);
  } else if (a[0] === 'wal') {
    const lines: string[] = [];
    for (const [n, host] of [...sim.hosts].sort((x, y) => x[0] - y[0])) {
      for (const w of host.state.wal.values()) lines.push(`n${n}: ${w.txid} ${w.role} seq ${w.seq} before ${w.before.map((b) => `${b.item}=${b.balance}`).join(' ')}`);
    }
    for (const l of lines.length ? lines : ['no WAL entries']) say(l);
  }
}

export interface ScenarioCommandOptions {
  files: string[];
  rewrite?: boolean;
}

/** `shardbank scenario [FILE...] [--rewrite]`: run scripts against their golden stories. */
export async function scenarioCommand(opts: ScenarioCommandOptions): Promise<number> {
  const files = opts.files.length > 0 ? opts.files : defaultScenarios();
  let bad = 0;
  for (const file of files) {
    const story = await runScenarioFile(file);
    const golden = file.replace(/\.txt$/, '.golden');
    if (opts.rewrite) {
      writeFileSync(golden, story);
      process.stdout.write(`${file}: golden written\n`);
      continue;
    }
    const want = existsSync(golden) ? readFileSync(golden, 'utf8') : null;
    const same = want === story;
    if (!same) bad++;
    process.stdout.write(`${file}: ${same ? 'matches its golden story' : want === null ? 'no golden story (run with --rewrite)' : 'DIFFERS from its golden story'}\n`);
    if (!same) process.stdout.write(story.replace(/^/gm, '    '));
  }
  return bad === 0 ? 0 : 1;
}

function defaultScenarios(): string[] {
  const dir = fileURLToPath(new URL('../../testcases/scenarios/', import.meta.url));
  return readdirSync(dir).filter((f) => f.endsWith('.txt')).sort().map((f) => join(dir, f));
}

/** Runs a script file; returns its story. Parse errors are the story. */
export async function runScenarioFile(path: string): Promise<string> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UsageError(`${path}: ${code === 'ENOENT' ? 'no such scenario file' : code === 'EISDIR' ? 'is a directory, not a scenario script' : (code ?? (err as Error).message)}`);
  }
  const { steps, errors } = parseScenario(text);
  if (errors.length > 0) return `${errors.map((e) => `ERROR ${e}`).join('\n')}\n`;
  return `${(await runScenario(steps)).join('\n')}\n`;
}
