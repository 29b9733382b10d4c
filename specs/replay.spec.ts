/**
 * `shardbank replay` on real LevelDB directories holding the logs of a
 * simulated run: the timeline, its filters, the state rebuilt at an index,
 * and the diff of two replicas (agreeing, one behind, one doctored).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { requestId } from '../protocol/messages.js';
import { logSource, printTimeline, replayCommand, ReplayError, type ReplayOptions } from '../cli/replay.js';
import { saveTopology } from '../cli/config.js';
import { shardbank, type Command, type NodeId } from '../protocol/messages.js';
import { SimCluster } from '../runtime/sim.js';
import { EventLog } from '../store/eventlog.js';
import { balanceOf, eventKind, replay } from '../store/state.js';

const MAIN = fileURLToPath(new URL('../cli/main.js', import.meta.url));
const C1: NodeId[] = [1, 2, 3];

let base = '';
let sim: SimCluster;
const events = new Map<NodeId, shardbank.LogEvent[]>();
/** The cross-shard transfer's request id. */
let crossTx = '';

const dirOf = (n: NodeId) => join(base, `n${n}`);

async function writeLog(dir: string, evs: shardbank.LogEvent[]): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const log = EventLog.onDisk(dir);
  await log.open();
  await log.append(evs);
  await log.close();
}

async function replayLines(opts: ReplayOptions): Promise<{ code: number; lines: string[] }> {
  const lines: string[] = [];
  const code = await replayCommand(opts, (l) => lines.push(l));
  return { code, lines };
}

async function rejects(opts: ReplayOptions, pattern: RegExp): Promise<void> {
  try {
    await replayCommand(opts, () => undefined);
  } catch (err) {
    assert.instance(err, ReplayError, `${(err as Error).stack}`);
    assert.match((err as Error).message, pattern);
    return;
  }
  assert.unreachable(`expected an error matching ${pattern}`);
}

function touches(cmd: Command | null | undefined, item: number): boolean {
  return cmd?.transfer?.sender === item || cmd?.transfer?.receiver === item || cmd?.read?.item === item;
}

test.before(async () => {
  base = mkdtempSync(join(tmpdir(), 'shardbank-replay-'));
  sim = await SimCluster.start({ seed: 11 });
  await sim.startSet();
  await sim.transfer(1, 2, 3);
  await sim.transfer(1001, 1002, 2);
  crossTx = (await sim.transfer(1001, 3001, 1)).requestId!;
  await sim.transfer(5, 1, 20); // insufficient balance
  await sim.fail(3);
  await sim.transfer(2, 3, 1);
  await sim.recover(3);
  await sim.transfer(1002, 7, 4);
  // The leader fails: an election, a NEW-VIEW, and n1 catching up once back.
  await sim.fail(1);
  await sim.transfer(3, 4, 1);
  await sim.transfer(1003, 3002, 2);
  await sim.recover(1);
  await sim.transfer(4, 5, 1);
  await sim.runUntil(() => C1.every((n) => sim.host(n).state.executedThrough === sim.host(1).state.commitThrough && sim.host(n).state.wal.size === 0), 5000);
  await sim.runFor(300);
  for (const n of [...C1, 4]) {
    await sim.until(sim.host(n).idle());
    const evs = await sim.logs.get(n)!.readAll();
    events.set(n, evs);
    await writeLog(dirOf(n), evs);
  }
});

test.after(async () => {
  await sim.stop();
  rmSync(base, { recursive: true, force: true });
});

test('timeline: one line per event, `#index kind description`', async () => {
  const evs = events.get(1)!;
  const { code, lines } = await replayLines({ dir: dirOf(1) });
  assert.is(code, 0);
  assert.is(lines.length, evs.length);
  lines.forEach((line, i) => assert.ok(line.startsWith(`#${i} ${eventKind(evs[i]!)}`), line));
  assert.match(lines[0]!, /^#0 flushed {3}set 1 leader n1 ballot <1, n1> balance 10$/);
  assert.ok(lines.some((l) => /^#\d+ accepted  seq \d+ <1, n1> \(1, 2, 3\)$/.test(l)), 'accepted (1, 2, 3)');
  assert.ok(lines.some((l) => /^#\d+ executed  seq \d+ \(1, 2, 3\) committed 1=7 2=13$/.test(l)), 'executed (1, 2, 3)');
  assert.ok(lines.some((l) => /^#\d+ executed  seq \d+ \(5, 1, 20\) aborted \(insufficient balance\)$/.test(l)), 'insufficient balance');
  const prepared = new RegExp(`^#\\d+ executed  seq \\d+ P \\(1001, 3001, 1\\) tx ${crossTx} coordinator prepared 1001=7 \\(before 1001=8\\)$`);
  assert.ok(lines.some((l) => prepared.test(l)), 'the prepare with its before-image');
  assert.ok(lines.some((l) => new RegExp(`^#\\d+ executed  seq \\d+ C \\(1001, 3001, 1\\) tx ${crossTx} coordinator committed \\(at seq \\d+\\)$`).test(l)), 'the decision');
  assert.ok(lines.some((l) => /^#\d+ accepted  seq \d+ C <1, n1> \(1001, 3001, 1\) runs at \d+$/.test(l)), 'the decision accepted, with where it runs');
  assert.ok(lines.some((l) => new RegExp(`^#\\d+ acked {5}tx ${crossTx}$`).test(l)), 'the ACK');
  assert.ok(lines.some((l) => /^#\d+ failed$/.test(l)) && lines.some((l) => /^#\d+ recovered$/.test(l)));
  assert.ok(lines.some((l) => /^#\d+ committed seq \d+, \d+ P, \d+ C runs at \d+$/.test(l)), 'several keys in one event');

  const n2 = await replayLines({ dir: dirOf(2) });
  assert.ok(n2.lines.some((l) => /^#\d+ promised  <2, n[23]>$/.test(l)), 'the promise to the new leader');
  assert.ok(n2.lines.some((l) => /^#\d+ view {6}NEW-VIEW <2, n[23]> from n[23], 7 entries$/.test(l)), 'the NEW-VIEW');

});

test('filters: --type, --item, --tx, --seq, and combined', async () => {
  const evs = events.get(1)!;
  const indexes = (lines: string[]) => lines.map((l) => Number(/^#(\d+)/.exec(l)![1]));
  const picked = (pred: (ev: shardbank.LogEvent) => boolean) => evs.flatMap((ev, i) => (pred(ev) ? [i] : []));

  const executed = await replayLines({ dir: dirOf(1), type: ['executed'] });
  assert.equal(indexes(executed.lines), picked((ev) => !!ev.executed));
  const two = await replayLines({ dir: dirOf(1), type: ['accepted', 'committed'] });
  assert.equal(indexes(two.lines), picked((ev) => !!ev.accepted || !!ev.committed));

  // Item 3001 lives in C2: on n1 only the cross-shard transfer's entries touch it.
  const item = await replayLines({ dir: dirOf(1), item: 3001 });
  assert.ok(item.lines.length >= 6, item.lines.join('\n'));
  for (const l of item.lines) assert.match(l, /accepted|committed|executed|acked|phase|lock/);
  const byItem = indexes(item.lines);
  for (const i of picked((ev) => (ev.accepted?.entries ?? []).some((e) => touches(e.command, 3001)) || touches(ev.executed?.command, 3001))) {
    assert.ok(byItem.includes(i), `#${i} touches 3001`);
  }

  const tx = await replayLines({ dir: dirOf(1), tx: crossTx });
  assert.equal(indexes(tx.lines), byItem, 'on n1, item 3001 and the cross-shard transaction are the same events');
  assert.ok(tx.lines.some((l) => l.includes('committed seq')), 'its commits, found through the log');

  const item2 = await replayLines({ dir: dirOf(1), item: 2 });
  const expected2 = picked(
    (ev) =>
      (ev.accepted?.entries ?? []).some((e) => touches(e.command, 2)) ||
      touches(ev.executed?.command, 2) ||
      (ev.executed?.writes ?? []).some((w) => w.item === 2),
  );
  for (const i of expected2) assert.ok(indexes(item2.lines).includes(i), `#${i} is about item 2`);

  const seq = await replayLines({ dir: dirOf(1), seq: { from: 2, to: 3 } });
  for (const l of seq.lines) if (!l.includes(' acked ')) assert.match(l, /seq (2|3)\b|runs at (2|3)\b|at seq (2|3)\)/, l);
  assert.ok(seq.lines.filter((l) => l.includes('executed')).length >= 2);

  const both = await replayLines({ dir: dirOf(1), type: ['executed'], item: 1001 });
  const txids = both.lines.map((l) => /tx (\S+)/.exec(l)?.[1] ?? '');
  assert.ok(both.lines.length >= 3, both.lines.join('\n'));
  for (const l of both.lines) assert.match(l, /executed .*1001/);
  assert.ok(txids.includes(crossTx));

  const none = await replayLines({ dir: dirOf(1), tx: 'nobody:1' });
  assert.equal(none.lines, []);
});

test('--until the last index rebuilds the live state; --until earlier equals the fold of the prefix', async () => {
  const evs = events.get(1)!;
  const live = sim.host(1).state;
  const { lines } = await replayLines({ dir: dirOf(1), until: evs.length - 1, json: true });
  const s = JSON.parse(lines[0]!) as { balances: Record<string, number>; executedThrough: number; commitThrough: number; index: number };
  assert.is(s.index, evs.length - 1);
  const liveBalances = Object.fromEntries([...live.modified].sort((a, b) => a - b).map((i) => [String(i), balanceOf(live, i)]));
  assert.equal(s.balances, liveBalances);
  assert.is(s.executedThrough, live.executedThrough);
  assert.is(s.commitThrough, live.commitThrough);

  const whole = await replayLines({ dir: dirOf(1), state: true });
  const text = await replayLines({ dir: dirOf(1), until: evs.length - 1 });
  assert.equal(whole.lines, text.lines);
  assert.match(whole.lines[0]!, `state of n1 after #${evs.length - 1} (${evs.length} events)`);
  assert.ok(whole.lines.includes('  1001 = 7'), whole.lines.join('\n'));
  assert.ok(whole.lines.includes('WAL              0 entries'));

  // Mid-transaction: after the prepare ran, before its decision.
  const prepareAt = evs.findIndex((ev) => ev.executed?.txid === crossTx && ev.executed.phase === shardbank.Phase.PHASE_PREPARE);
  const mid = await replayLines({ dir: dirOf(1), until: prepareAt, json: true });
  const m = JSON.parse(mid.lines[0]!) as { balances: Record<string, number>; wal: { txid: string }[]; locks: Record<string, string>; executedThrough: number };
  const folded = replay(1, evs.slice(0, prepareAt + 1));
  assert.is(m.executedThrough, folded.executedThrough);
  assert.is(m.balances['1001'], 7);
  assert.equal(m.wal.map((w) => w.txid), [crossTx]);
  assert.equal(m.locks, { '1001': crossTx });
  const midText = await replayLines({ dir: dirOf(1), until: prepareAt });
  assert.ok(midText.lines.some((l) => l.startsWith(`  ${crossTx}  seq `) && l.endsWith('before 1001=8')), midText.lines.join('\n'));
  assert.ok(midText.lines.includes(`  1001 = ${crossTx}`));
});

test('--diff: replicas agree; one behind is behind, not divergent', async () => {
  const executed = events.get(1)!.filter((ev) => ev.executed).length;
  const same = await replayLines({ dir: dirOf(1), diff: dirOf(2) });
  assert.is(same.code, 0);
  assert.equal(same.lines, [`no divergence: ${executed} executed entries agree`]);
  const recovered = await replayLines({ dir: dirOf(3), diff: dirOf(1) });
  assert.equal(recovered.lines, [`no divergence: ${executed} executed entries agree`]);

  const n2 = events.get(2)!;
  const cut = n2.findIndex((ev, i) => ev.executed && n2.slice(0, i + 1).filter((e) => e.executed).length === executed - 2);
  const short = join(base, 'short', 'n2');
  await writeLog(short, n2.slice(0, cut + 1));
  const behind = await replayLines({ dir: dirOf(1), diff: short });
  assert.is(behind.code, 0);
  assert.is(behind.lines[0], `no divergence: ${executed - 2} executed entries agree`);
  assert.match(behind.lines[1]!, /^n2 is behind n1 by 2 entries \(executed through seq \d+ vs \d+\)$/);
  const json = await replayLines({ dir: short, diff: dirOf(1), json: true });
  assert.equal(JSON.parse(json.lines[0]!), { diverged: false, agree: executed - 2, behind: { node: 'n2', ahead: 'n1', by: 2 } });
});

test('--diff: a doctored write is reported at its index in each log', async () => {
  const n1 = events.get(1)!;
  const n2 = events.get(2)!.map((ev) => shardbank.LogEvent.decode(shardbank.LogEvent.encode(ev).finish()));
  const withWrites = n2.flatMap((ev, i) => ((ev.executed?.writes ?? []).length > 0 ? [i] : []));
  const target = withWrites[2]!;
  n2[target]!.executed!.writes![0]!.balance = 99;
  const doctored = join(base, 'doctored', 'n2');
  await writeLog(doctored, n2);

  const ordinal = n2.slice(0, target + 1).filter((ev) => ev.executed).length;
  const inN1 = n1.findIndex((ev, i) => ev.executed && n1.slice(0, i + 1).filter((e) => e.executed).length === ordinal);
  const seq = n2[target]!.executed!.seq;
  const { code, lines } = await replayLines({ dir: dirOf(1), diff: doctored });
  assert.is(code, 1);
  assert.is(lines[0], `diverged at executed entry ${ordinal} (seq ${seq}): n1 #${inN1}, n2 #${target}`);
  assert.ok(lines.includes('n1:') && lines.includes('n2:'));
  const marked = lines.filter((l) => l.startsWith('  > '));
  assert.is(marked.length, 2);
  assert.ok(marked[0]!.startsWith(`  > #${inN1} executed`));
  assert.ok(marked[1]!.startsWith(`  > #${target} executed`) && marked[1]!.includes('=99'), marked[1]);
  assert.ok(lines.length > 6, 'context around each');
});

test('--diff: a value committed differently, not yet executed by both, is a divergence', async () => {
  const n2 = events.get(2)!.map((ev) => shardbank.LogEvent.decode(shardbank.LogEvent.encode(ev).finish()));
  const intra = n2.flatMap((ev, i) => (ev.executed?.command?.transfer && !ev.executed.txid ? [i] : []));
  const last = intra[intra.length - 1]!;
  const seq = n2[last]!.executed!.seq;
  const changed = n2.filter((_, i) => i !== last);
  for (const ev of changed) for (const e of ev.accepted?.entries ?? []) if (e.seq === seq && !e.phase) e.command!.transfer!.amount = 9;
  const dir = join(base, 'recommitted', 'n2');
  await writeLog(dir, changed);

  const commitOf = (evs: shardbank.LogEvent[]) => evs.findIndex((ev) => (ev.committed?.slots ?? []).includes(seq ?? 0));
  const t = n2[last]!.executed!.command!.transfer!;
  const { code, lines } = await replayLines({ dir: dirOf(1), diff: dir });
  assert.is(code, 1);
  assert.is(
    lines[0],
    `diverged at seq ${seq}: committed (${t.sender}, ${t.receiver}, ${t.amount}) on n1 #${commitOf(events.get(1)!)}, (${t.sender}, ${t.receiver}, 9) on n2 #${commitOf(changed)}`,
  );
});

test('a log open in this process (a simulated node\'s) replays like its directory', async () => {
  const lines: string[] = [];
  await printTimeline(logSource(sim.logs.get(1)!, 'n1', 1), {}, false, (l) => lines.push(l));
  assert.equal(lines, (await replayLines({ dir: dirOf(1) })).lines);
});

test('--json timeline round-trips: a dump replays like the directory', async () => {
  const { lines } = await replayLines({ dir: dirOf(1), json: true });
  const first = JSON.parse(lines[0]!) as { index: number; kind: string; text: string; event: Record<string, unknown> };
  assert.is(first.index, 0);
  assert.is(first.kind, 'flushed');
  assert.ok(first.event.flushed);
  const dump = join(base, 'n1.jsonl');
  writeFileSync(dump, `${lines.join('\n')}\n`);
  const fromDump = await replayLines({ dir: dump });
  const fromDir = await replayLines({ dir: dirOf(1) });
  assert.equal(fromDump.lines, fromDir.lines);
  const state = await replayLines({ dir: dump, state: true });
  assert.equal(state.lines, (await replayLines({ dir: dirOf(1), state: true })).lines);
});

test('bad input: clear errors, not stack traces', async () => {
  await rejects({ dir: join(base, 'missing') }, /missing: no such directory/);
  const empty = join(base, 'not-a-log');
  mkdirSync(empty);
  await rejects({ dir: empty }, /not a LevelDB event log \(no CURRENT file\)/);
  const junk = join(base, 'junk.jsonl');
  writeFileSync(junk, '{"index": 0, "event": {"flushed": {}}}\nhello\n');
  await rejects({ dir: junk }, /junk\.jsonl:2: not an event line of "replay --json"/);
  await rejects({ dir: dirOf(1), until: 100000 }, /there is no index 100000 \(the last is #\d+\)/);
  await rejects({ dir: dirOf(1), diff: dirOf(1) }, /not the same one/);

  const held = EventLog.onDisk(dirOf(2));
  await held.open();
  try {
    await rejects({ dir: dirOf(2) }, /locked \(is a node still running on it\?\)/);
  } finally {
    await held.close();
  }

  saveTopology(sim.topology, join(base, 'config.json'));
  try {
    await rejects({ dir: dirOf(1), diff: dirOf(4) }, /n1 is in cluster 1 and n4 in cluster 2/);
  } finally {
    rmSync(join(base, 'config.json'));
  }
});

test('the command: `shardbank replay DIR` prints the timeline; a bad directory exits 2 with one line', () => {
  const ok = spawnSync(process.execPath, [MAIN, 'replay', dirOf(1), '--type', 'flushed'], { encoding: 'utf8' });
  assert.is(ok.status, 0, ok.stderr);
  assert.is(ok.stdout, '#0 flushed   set 1 leader n1 ballot <1, n1> balance 10\n');
  const bad = spawnSync(process.execPath, [MAIN, 'replay', join(base, 'missing')], { encoding: 'utf8' });
  assert.is(bad.status, 2);
  assert.is(bad.stderr, `replay: ${join(base, 'missing')}: no such directory\n`);
  const flag = spawnSync(process.execPath, [MAIN, 'replay', dirOf(1), '--seq', '9..3'], { encoding: 'utf8' });
  assert.ok(flag.status !== 0);
  assert.match(flag.stderr, /--seq <n\|a\.\.b>.*the range 9\.\.3 is empty/);
  assert.not.match(flag.stderr, /at .*\.js:\d+/);
});

test.run();
