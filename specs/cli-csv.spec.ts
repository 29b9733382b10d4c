import { readFileSync } from 'node:fs';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { parseCommand, parseLiveList, parseTestSets, validateSets, type TestSet } from '../cli/csv.js';
import { makeTopology } from '../protocol/topology.js';

const dir = new URL('../../testcases/', import.meta.url);
const read = (name: string) => readFileSync(new URL(name, dir), 'utf8');

const ORIGINAL = 'gayathrigaddam00-CSE535-F25-Project-3-Testcases.csv';
const NEW = 'huixu11-CSE535-F25-Project-3-New-Testcases.csv';
const DEMO = 'gayathrigaddam00-CSE535-F25-Project-3-Demo-Tests.csv';

const counts = (sets: TestSet[]) => Object.fromEntries(sets.map((s) => [s.set, s.commands.length]));
const setOf = (sets: TestSet[], n: number) => {
  const s = sets.find((x) => x.set === n);
  assert.ok(s, `set ${n} present`);
  return s;
};

test('original test file: sets 1..10, every row parses', () => {
  const text = read(ORIGINAL);
  assert.ok(text.includes('\r\n'), 'the original file uses CRLF');
  const { sets, errors } = parseTestSets(text);
  assert.equal(errors, []);
  assert.equal(
    sets.map((s) => s.set),
    [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
  );
  assert.equal(counts(sets), { 1: 5, 2: 9, 3: 12, 4: 7, 5: 6, 6: 18, 7: 8, 8: 9, 9: 7, 10: 300 });
  const s1 = setOf(sets, 1);
  assert.is(s1.line, 2);
  assert.equal(s1.live, [1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.equal(s1.commands[0], { line: 2, kind: 'transfer', sender: 1001, receiver: 1002, amount: 1, text: '(1001, 1002, 1)' });
  assert.equal(s1.commands[3], { line: 5, kind: 'read', item: 1002, text: '(1002)' });
  const s2 = setOf(sets, 2);
  assert.equal(s2.live, [1, 2, 4, 5, 7, 8]);
  assert.equal(s2.commands[2], { line: 9, kind: 'fail', node: 2, text: 'F(n2)' });
  const s3 = setOf(sets, 3);
  assert.equal(s3.commands.find((c) => c.kind === 'recover'), { line: 20, kind: 'recover', node: 9, text: 'R(n9)' });
  // `"(163,  164, 1)"`, with two spaces, on line 164.
  const odd = setOf(sets, 10).commands.find((c) => c.line === 164);
  assert.equal(odd, { line: 164, kind: 'transfer', sender: 163, receiver: 164, amount: 1, text: '(163, 164, 1)' });
  assert.is(setOf(sets, 10).commands.at(-1)!.text, '(6199, 6200, 1)');
});

test('New test file: sets 1..10 and 15, reads written as -id', () => {
  const { sets, errors } = parseTestSets(read(NEW));
  assert.equal(errors, []);
  assert.equal(
    sets.map((s) => s.set),
    [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15],
  );
  assert.equal(counts(sets), { 1: 5, 2: 9, 3: 12, 4: 7, 5: 6, 6: 18, 7: 9, 8: 12, 9: 13, 10: 300, 15: 10 });
  assert.equal(setOf(sets, 1).commands[3], { line: 5, kind: 'read', item: 1002, text: '(1002)' });
  assert.equal(setOf(sets, 8).live, [1, 3, 4, 5, 6, 7, 8, 9]);
  const s15 = setOf(sets, 15);
  assert.equal(s15.live, [1, 2, 3, 6, 7, 8, 11, 12, 13, 16, 17, 18, 21, 22, 23]);
  assert.is(s15.live.length, 15);
  assert.equal(s15.commands.at(-1), { line: 402, kind: 'transfer', sender: 5404, receiver: 7204, amount: 1, text: '(5404, 7204, 1)' });
});

test('demo file: 4 sets', () => {
  const { sets, errors } = parseTestSets(read(DEMO));
  assert.equal(errors, []);
  assert.equal(counts(sets), { 1: 6, 2: 7, 3: 12, 4: 1 });
  assert.equal(setOf(sets, 1).live, [1, 2, 4, 5, 7, 8]);
  assert.equal(setOf(sets, 4).commands, [{ line: 27, kind: 'transfer', sender: 1, receiver: 3001, amount: 1, text: '(1, 3001, 1)' }]);
});

test('CRLF, LF, CR and a trailing newline give the same result', () => {
  const text = read(ORIGINAL);
  const lf = text.replace(/\r\n/g, '\n');
  const a = parseTestSets(text);
  assert.equal(parseTestSets(lf), a);
  assert.equal(parseTestSets(`${lf}\n`), a);
  assert.equal(parseTestSets(text.replace(/\r\n/g, '\r')), a);
  assert.equal(parseTestSets(`\ufeff${text}`), a);
});

test('missing header, bare fields, extra spaces, blank lines', () => {
  const text = [
    '',
    ' 3 , ( 1 ,2,  5 ) , "[ n1,n2 ,N3 ]" ',
    '',
    ',f(N2),',
    ',r( n2 ),',
    ',  -7 ,',
    ',42,',
    ',"(6001, 6002, 1, Linearizable)",',
    ',"(1002, quorum)",',
    "  ,'F(n4)',",
    '',
  ].join('\n');
  const { sets, errors } = parseTestSets(text);
  assert.equal(errors, []);
  assert.is(sets.length, 1);
  const s = sets[0]!;
  assert.is(s.set, 3);
  assert.is(s.line, 2);
  assert.equal(s.live, [1, 2, 3]);
  assert.equal(
    s.commands.map((c) => [c.line, c.text]),
    [
      [2, '(1, 2, 5)'],
      [4, 'F(n2)'],
      [5, 'R(n2)'],
      [6, '(7)'],
      [7, '(42)'],
      [8, '(6001, 6002, 1, linearizable)'],
      [9, '(1002, linearizable)'],
      [10, 'F(n4)'],
    ],
  );
  assert.equal(s.commands[5], { line: 8, kind: 'transfer', sender: 6001, receiver: 6002, amount: 1, consistency: 'linearizable', text: '(6001, 6002, 1, linearizable)' });
  // "quorum" is another name for linearizable: the row is printed with the level's own name.
  assert.equal(s.commands[6], { line: 9, kind: 'read', item: 1002, consistency: 'linearizable', text: '(1002, linearizable)' });
});

test('unquoted commas are put back together', () => {
  const { sets, errors } = parseTestSets('1,(1001, 1002, 1),[n1, n2, n3]\n,(3001,3002,2),\n');
  assert.equal(errors, []);
  assert.equal(sets[0]!.live, [1, 2, 3]);
  assert.equal(
    sets[0]!.commands.map((c) => c.text),
    ['(1001, 1002, 1)', '(3001, 3002, 2)'],
  );
});

test('a tab-separated copy parses the same', () => {
  const text = read(ORIGINAL);
  const tsv = text
    .split('\r\n')
    .map((l) => {
      const m = /^([^,]*),("[^"]*"|[^,]*),?(.*)$/.exec(l)!;
      return [m[1], m[2]!.replace(/"/g, ''), m[3]!.replace(/"/g, '')].join('\t');
    })
    .join('\n');
  assert.equal(parseTestSets(tsv), parseTestSets(text));
});

test('malformed rows are reported with their line and skipped', () => {
  const lines = [
    'Set Number,Transactions,Live Nodes', // 1
    ',"(1, 2, 3)",', // 2: before any set
    '1,"(1001, 1002, 1)","[n1, n2, n3]"', // 3
    ',"(1001, 1002, -1)",', // 4: negative amount
    ',"(1001, 1002, 0)",', // 5: zero amount
    ',"(1001, 1002, 1.5)",', // 6: fractional amount
    ',"(1001, 1001, 1)",', // 7: sender == receiver
    ',"(1001, 1002)",', // 8: two numbers
    ',X(n2),', // 9: unknown command
    ',F(x2),', // 10: bad node name
    ',"(1003, 1004, 1)",', // 11: fine
    ',"(1005, 1006, 1),', // 12: unclosed quote
    ',LF,', // 13
    ',"(abc)",', // 14
    ',(3001),', // 15: fine
    ',"(1, 2, 3)","[n1, n4]"', // 16: live list on a continuation row
    'x,"(1, 2, 3)","[n1]"', // 17: bad set number
    ',"(5, 6, 1)",', // 18: belongs to the rejected set
    '2,"(5, 6, 1)","[n1, node2]"', // 19: bad live list
    ',"(7, 8, 1)",', // 20: belongs to rejected set 2
    '3,"(9, 10, 1)","[n1, n2]"', // 21
    ',"(11, 12, 1)",', // 22
    '1,"(13, 14, 1)","[n1]"', // 23: set 1 again
    ',"(15, 16, 1)",', // 24
    '4,,"[n2]"', // 25: a set with no first command
    ',"(17, 18, 1)",', // 26
  ];
  const { sets, errors } = parseTestSets(lines.join('\r\n'));
  assert.equal(
    errors.map((e) => e.line),
    [2, 4, 5, 6, 7, 8, 9, 10, 12, 13, 14, 16, 17, 18, 19, 20, 23, 24],
  );
  const msg = (line: number) => errors.find((e) => e.line === line)!.message;
  assert.match(msg(2), 'before any set');
  assert.match(msg(4), 'amount must be positive (got -1)');
  assert.match(msg(5), 'amount must be positive (got 0)');
  assert.match(msg(6), 'whole number');
  assert.match(msg(7), 'same item (1001)');
  assert.match(msg(8), 'two numbers');
  assert.match(msg(9), 'unrecognised command');
  assert.match(msg(10), 'unknown node name "x2"');
  assert.match(msg(12), 'malformed CSV');
  assert.match(msg(13), 'LF');
  assert.match(msg(14), 'item "abc"');
  assert.match(msg(16), 'live list on a row that does not start a set');
  assert.match(msg(17), 'bad set number "x"');
  assert.match(msg(18), 'line 17');
  assert.match(msg(19), 'node2');
  assert.match(msg(20), 'set 2 at line 19');
  assert.match(msg(23), 'set 1 appears again (first at line 3)');
  assert.is(errors.find((e) => e.line === 4)!.raw, ',"(1001, 1002, -1)",');

  assert.equal(
    sets.map((s) => s.set),
    [1, 3, 4],
  );
  assert.equal(
    sets[0]!.commands.map((c) => c.line),
    [3, 11, 15],
  );
  assert.equal(
    sets[1]!.commands.map((c) => c.text),
    ['(9, 10, 1)', '(11, 12, 1)'],
  );
  assert.equal(sets[2]!.live, [2]);
  assert.equal(
    sets[2]!.commands.map((c) => c.text),
    ['(17, 18, 1)'],
  );
});

test('a repeated identical live list on a later row is accepted', () => {
  const { sets, errors } = parseTestSets('1,"(1, 2, 1)","[n1, n2]"\n,"(3, 4, 1)","[n2, n1]"');
  assert.equal(errors, []);
  assert.is(sets[0]!.commands.length, 2);
});

test('parseCommand and parseLiveList on their own', () => {
  assert.equal(parseCommand('(1001, 1002, 1)'), { kind: 'transfer', sender: 1001, receiver: 1002, amount: 1, text: '(1001, 1002, 1)' });
  assert.equal(parseCommand('-1002'), { kind: 'read', item: 1002, text: '(1002)' });
  assert.equal(parseCommand('R(N12)'), { kind: 'recover', node: 12, text: 'R(n12)' });
  assert.ok('error' in parseCommand('(0)'));
  assert.ok('error' in parseCommand('(1, 2, 3, 4, 5)'));
  assert.ok('error' in parseCommand(''));
  assert.equal(parseLiveList('[n3, n1, n3]'), [1, 3]);
  assert.equal(parseLiveList('[]'), []);
  assert.ok('error' in (parseLiveList('[n1, n2') as object));
});

test('validateSets: items out of range and unknown nodes', () => {
  const text = [
    '1,"(1, 9000, 1)","[n1, n2, n10]"', // 1: n10 not in 3x3
    ',"(0009, 9001, 1)",', // 2: 9001 out of range
    ',(9001),', // 3
    ',F(n10),', // 4
    ',R(n9),', // 5
    ',"(5, 6, 1)",', // 6
    '2,"(7, 8, 1)",', // 7: no live list: all nodes
  ].join('\n');
  const parsed = parseTestSets(text);
  assert.equal(parsed.errors, []);
  assert.ok(parsed.sets[1]!.allLive);
  const topo = makeTopology();
  const { sets, errors } = validateSets(parsed.sets, topo);
  assert.equal(
    errors.map((e) => e.line),
    [1, 2, 3, 4],
  );
  assert.match(errors[0]!.message, 'n10');
  assert.match(errors[1]!.message, 'item 9001 out of range 1..9000');
  assert.match(errors[3]!.message, 'n10 is not in this topology (n1..n9)');
  assert.equal(sets[0]!.live, [1, 2]);
  assert.equal(
    sets[0]!.commands.map((c) => c.line),
    [1, 5, 6],
  );
  assert.equal(sets[1]!.live, [1, 2, 3, 4, 5, 6, 7, 8, 9]);
  // The input is left as it was.
  assert.is(parsed.sets[0]!.commands.length, 6);

  // Set 15 of the New file needs 5 x 5.
  const all = parseTestSets(read(NEW)).sets;
  assert.ok(validateSets(all, topo).errors.length > 0);
  const big = validateSets(all, makeTopology({ clusters: 5, nodesPerCluster: 5 }));
  assert.equal(big.errors, []);
  assert.equal(big.sets, all);
});

test.run();
