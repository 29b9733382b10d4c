/**
 * `shardbank replay` answers "why": when a node campaigned and who voted for
 * it, the NEW-VIEW it built, and which transaction held the item a skipped
 * transfer wanted. Every such decision is an event in the node's log.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { replayCommand } from '../cli/replay.js';
import { SimCluster } from '../runtime/sim.js';
import { EventLog } from '../store/eventlog.js';

let base = '';
let sim: SimCluster;
let skipped = '';
let holder = '';

async function lines(node: number, opts: { type?: string[]; tx?: string } = {}): Promise<string[]> {
  const out: string[] = [];
  await replayCommand({ dir: join(base, `n${node}`), type: opts.type as never, tx: opts.tx }, (l) => out.push(l));
  return out;
}

test.before(async () => {
  base = mkdtempSync(join(tmpdir(), 'shardbank-why-'));
  sim = await SimCluster.start({ seed: 5 });
  await sim.startSet();
  await sim.transfer(1, 2, 1);
  // n1, C1's leader, fails: its successor n2 campaigns.
  await sim.fail(1);
  await sim.transfer(3, 4, 1);
  // Two transfers through item 20 at once: the second finds it locked by the first.
  const [a, b] = await sim.until(Promise.all([sim.client.transfer(20, 21, 1), sim.client.transfer(22, 20, 1)]));
  const pair = [a, b];
  const loser = pair.find((r) => r.reason === 'lock conflict');
  assert.ok(loser, `one of ${JSON.stringify(pair.map((r) => [r.status, r.reason]))} is skipped`);
  skipped = loser.requestId!;
  holder = pair.find((r) => r !== loser)!.requestId!;
  await sim.runFor(300);
  for (const n of [2, 3]) {
    await sim.until(sim.host(n).idle());
    const log = EventLog.onDisk(join(base, `n${n}`));
    await log.open();
    await log.append(await sim.logs.get(n)!.readAll());
    await log.close();
  }
});

test.after(async () => {
  await sim.stop();
  rmSync(base, { recursive: true, force: true });
});

test('the campaign: n2 becomes a candidate, hears n3\'s promise, leads with the promises of n2 and n3, and sends its NEW-VIEW', async () => {
  const story = await lines(2, { type: ['role', 'heard', 'view', 'promised'] });
  const at = (re: RegExp) => story.findIndex((l) => re.test(l));
  const campaign = at(/ role +candidate <2, n2>: campaigning; leader silent past the election timeout$/);
  const promised = at(/ promised +<2, n2>$/);
  const heard = at(/ heard +promise from n3 for <2, n2>/);
  const leads = at(/ role +leader <2, n2> \(promises from n2, n3\) hearing n3; promised by a majority$/);
  const view = at(/ view +NEW-VIEW <2, n2> from n2, \d+ entr/);
  assert.ok(campaign >= 0 && promised > campaign && heard > promised && leads > heard && view > leads, story.join('\n'));
});

test('the vote: n3 granted n2\'s PREPARE, and followed it', async () => {
  const story = await lines(3, { type: ['vote', 'role'] });
  const granted = story.findIndex((l) => / vote +n2's PREPARE <2, n2>: granted$/.test(l));
  const follows = story.findIndex((l, i) => i > granted && / role +follower of n2 <2, n2>/.test(l));
  assert.ok(granted >= 0 && follows > granted, story.join('\n'));
});

test('a skipped transfer: the lock event names the transaction that held the item', async () => {
  const story = await lines(2, { tx: skipped });
  const lock = story.find((l) => / lock +/.test(l));
  assert.ok(lock, story.join('\n'));
  assert.match(lock!, `tx ${skipped} skipped: item 20 held by ${holder}`);
  assert.ok(story.some((l) => / executed .*aborted \(lock conflict\)/.test(l)), 'and its abort entry ran');
  // The holder's own story includes the lock event that names it.
  assert.ok((await lines(2, { tx: holder })).some((l) => l === lock));
});

test.run();
