/**
 * The simulator reads at every consistency level and holds each to its
 * promise. Two bugs planted on purpose show that its checkers catch what
 * each level's promise rules out: with the bug, a seed reports it, named;
 * without it, the same seed runs clean.
 *
 * - seed 153, `linearizable-without-round`: a leader answers a linearizable
 *   read from its own state, without confirming it still leads; n1, behind
 *   the cluster that had moved on without it, returns a balance from before
 *   a transfer that committed and was acknowledged.
 * - seed 25, `session-before-caught-up`: a replica answers a session read
 *   before it has executed through the client's last write; n2, six seqs
 *   behind, returns item 4's initial balance after the client's own transfer.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { LEVELS } from '../protocol/consistency.js';
import { simulate } from '../runtime/simulator.js';

/** The seeds the planted bugs are caught on (README's simulator section names them too). */
const LINEARIZABLE_SEED = 153;
const SESSION_SEED = 25;

test('a run reads at every level, from several clients; session and any reads name the node that answered and how far it had executed', async () => {
  const r = await simulate({ seed: SESSION_SEED });
  const reads = r.history.filter((h) => h.kind === 'read');
  for (const level of LEVELS) assert.ok(reads.some((h) => h.level === level && h.type === 'ok'), `a ${level} read answered`);
  assert.ok(new Set(r.history.map((h) => h.client)).size > 1, 'more than one client');
  for (const h of reads.filter((x) => x.type === 'ok' && (x.level === 'any' || x.level === 'session'))) {
    assert.ok(h.node !== undefined && h.node > 0, `read #${h.id} names its node`);
    assert.type(h.executedThrough, 'number');
  }
  // A session read carries its own client's last write point: that client had a write answered before it.
  const session = reads.filter((h) => h.level === 'session' && (h.afterSeq ?? 0) > 0);
  assert.ok(session.length > 0, 'session reads that wait for a write');
  for (const h of session) {
    const own = r.history.filter((w) => w.kind === 'transfer' && w.client === h.client && w.status === 'committed' && w.completedAt <= h.invokedAt);
    assert.ok(own.length > 0, `read #${h.id} of ${h.client} waits for seq ${h.afterSeq} after a write of its own`);
  }
  assert.equal(r.violations, []);
});

test(`seed ${LINEARIZABLE_SEED}: a deposed leader answering linearizable reads without a round is caught; without the bug the seed is clean`, async () => {
  const bugged = await simulate({ seed: LINEARIZABLE_SEED, plantedBugs: ['linearizable-without-round'] });
  assert.equal(bugged.plantedBugs, ['linearizable-without-round']);
  assert.ok(bugged.violations.length > 0, 'the bug is caught');
  for (const v of bugged.violations) {
    assert.match(v, new RegExp(`^seed ${LINEARIZABLE_SEED}: linearizable read #\\d+ \\(\\d+, linearizable\\) by client\\d*, answered by n\\d+ \\(executed through \\d+\\) returned \\d+`));
    assert.match(v, /completed at \d+ ms, before the read began at \d+ ms, and left item \d+ at \d+ \(c\d seq \d+\): expected one of \d+/);
  }
  const clean = await simulate({ seed: LINEARIZABLE_SEED });
  assert.equal(clean.violations, []);
  assert.ok(clean.history.some((h) => h.level === 'linearizable' && h.type === 'ok'), 'linearizable reads answered');
});

test(`seed ${SESSION_SEED}: a session read answered before the replica caught up with the client's write is caught; without the bug the seed is clean`, async () => {
  const bugged = await simulate({ seed: SESSION_SEED, plantedBugs: ['session-before-caught-up'] });
  assert.ok(bugged.violations.length > 0, 'the bug is caught');
  for (const v of bugged.violations) {
    assert.match(v, new RegExp(`^seed ${SESSION_SEED}: session read #\\d+ \\(\\d+, session\\) by client\\d* after its write at seq \\d+, answered by n\\d+ \\(executed through \\d+\\) returned \\d+`));
    assert.match(v, /its own client's \(\d+, \d+, \d+\) #\d+/);
  }
  const clean = await simulate({ seed: SESSION_SEED });
  assert.equal(clean.violations, []);
});

test('seed 139 runs clean: its COMMIT, resent to the cluster its receiver had moved to since, is acknowledged there', async () => {
  const r = await simulate({ seed: 139 });
  assert.equal(r.violations, []);
  assert.ok((r.moves?.itemsMoved ?? 0) > 0, 'items moved');
});

test.run();
