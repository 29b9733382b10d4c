/**
 * Two bugs planted in the move protocol show that the simulator's ownership
 * checkers catch what each breaks: with the bug, a seed reports it, named;
 * without it, the same seed runs clean.
 *
 * - seed 1, `move-commit-before-move-in`: a move's source orders its commit
 *   as soon as its own move-out ran, before the destination's move-in; in
 *   this run a move whose move-in never ran commits, and its item is left
 *   with no owner: one cluster says the other owns it (version 1), the
 *   other still says the first does (version 0).
 * - seed 3, `stale-owner-applies`: a cluster admits and runs transfers by the
 *   initial shard ranges, ignoring moves; it credits and debits items that
 *   moved away, and a replica holds a balance for an item another cluster
 *   owns.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { simulate } from '../runtime/simulator.js';

const COMMIT_BEFORE_MOVE_IN_SEED = 1;
const STALE_OWNER_SEED = 3;

test(`seed ${COMMIT_BEFORE_MOVE_IN_SEED}: a source that commits a move before the destination's move-in is caught (an item with no owner); without the bug the seed is clean`, async () => {
  const bugged = await simulate({ seed: COMMIT_BEFORE_MOVE_IN_SEED, plantedBugs: ['move-commit-before-move-in'] });
  assert.equal(bugged.plantedBugs, ['move-commit-before-move-in']);
  assert.ok(
    bugged.violations.some((v) => new RegExp(`^seed ${COMMIT_BEFORE_MOVE_IN_SEED}: item \\d+ has no owner: c1 says c\\d \\(version \\d+\\), c2 says c\\d \\(version \\d+\\)`).test(v)),
    `an item with no owner among: ${bugged.violations.join('; ')}`,
  );
  const clean = await simulate({ seed: COMMIT_BEFORE_MOVE_IN_SEED });
  assert.equal(clean.violations, []);
  assert.ok((clean.moves?.committed ?? 0) > 0, 'items moved in the clean run');
});

test(`seed ${STALE_OWNER_SEED}: a cluster that applies transfers on items that moved away is caught; without the bug the seed is clean`, async () => {
  const bugged = await simulate({ seed: STALE_OWNER_SEED, plantedBugs: ['stale-owner-applies'] });
  assert.ok(bugged.violations.length > 0, 'the bug is caught');
  assert.ok(
    bugged.violations.some((v) => /item \d+: n\d+ of c\d holds a balance \(\d+\) for it, yet says c\d owns it \(version \d+\) and no move into c\d holds it/.test(v)),
    `a balance held by a cluster that does not own its item, among: ${bugged.violations.join('; ')}`,
  );
  const clean = await simulate({ seed: STALE_OWNER_SEED });
  assert.equal(clean.violations, []);
});

test.run();
