/**
 * Every scripted failure scenario in testcases/scenarios runs and tells the
 * same story as its golden copy, with every expectation met.
 * `shardbank scenario --rewrite` rewrites the golden stories after a change;
 * read the diff before committing it.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseScenario, runScenarioFile } from '../cli/scenario.js';

const dir = new URL('../../testcases/scenarios/', import.meta.url);
const scripts = readdirSync(dir).filter((f) => f.endsWith('.txt')).sort();

test('there is a scenario for each failure mode', () => {
  for (const name of ['leader-failure', 'minority-partition', 'catch-up', 'crash-restart', 'participant-no-majority', 'coordinator-leader-killed', 'participant-leader-killed', 'decision-lost', 'duplicates-and-delays', 'clock-jump', 'figure-4']) {
    assert.ok(scripts.includes(`${name}.txt`), name);
  }
});

test('there is a scenario for each fault during a move', () => {
  for (const name of ['move-source-leader-killed', 'move-destination-leader-killed', 'move-leaders-partitioned', 'move-decision-lost', 'move-transfer-waits']) {
    assert.ok(scripts.includes(`${name}.txt`), name);
  }
});

for (const script of scripts) {
  test(`scenario ${script}`, async () => {
    const story = await runScenarioFile(new URL(script, dir).pathname);
    const golden = readFileSync(new URL(script.replace(/\.txt$/, '.golden'), dir), 'utf8');
    assert.fixture(story, golden);
    assert.ok(story.trimEnd().endsWith('# all expectations met'), 'every expectation met');
  });
}

test('the scenario parser names the line of every problem and parses the rest', () => {
  const { steps, errors } = parseScenario('start seed=1\nteleport n1\ntransfer 1 2\ntransfer 1 2 3\nexpect balance 1 = x\n# fine\nfail n2\n');
  assert.equal(errors, [
    'line 2: unknown command "teleport"',
    'line 3: expected sender receiver amount: transfer 1 2',
    'line 5: expected "balance ITEM = v v v" (- for a node not running): expect balance 1 = x',
  ]);
  assert.equal(steps.map((s) => s.line), [1, 4, 7]);
});

test.run();
