/**
 * The audit line says what it could check and no more: a cluster it could
 * not read is named, and a total off while transactions are in doubt is not
 * called money lost; only a wrong total with everything read and settled is.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { auditHolds, formatAudit, type Audit } from '../cli/runner.js';

const base: Audit = { total: 90000, expectedTotal: 90000, conserved: true, replicasAgree: true, inDoubt: 0, unreadable: [] };

test('a cluster with no live node is named, and money is not checked, not lost', () => {
  const a: Audit = { ...base, total: 90005, conserved: null, unreadable: [1] };
  assert.is(formatAudit(a), 'audit: money not checked (cluster 1: no live node to read); live replicas of each readable cluster agree');
  assert.ok(auditHolds(a));
});

test('a total off while transactions are in doubt is not called money lost', () => {
  const a: Audit = { ...base, total: 90001, conserved: null, inDoubt: 2 };
  assert.match(formatAudit(a), /money not checked \(the total 90001 of 90000 counts the tentative writes of transactions in doubt\)/);
  assert.not.match(formatAudit(a), /NOT CONSERVED/);
  assert.ok(auditHolds(a));
});

test('a wrong total with every cluster read and nothing in doubt fails, and so do replicas that disagree', () => {
  const lost: Audit = { ...base, total: 89990, conserved: false };
  assert.match(formatAudit(lost), /MONEY NOT CONSERVED: total 89990, expected 90000/);
  assert.not.ok(auditHolds(lost));
  const apart: Audit = { ...base, replicasAgree: false };
  assert.match(formatAudit(apart), /LIVE REPLICAS DISAGREE/);
  assert.not.ok(auditHolds(apart));
  assert.ok(auditHolds(base));
});

test.run();
