/**
 * The event log on LevelDB: a synced batch is one record, read back as the
 * events it holds with their own indices; reopening continues the numbering;
 * compaction keeps the snapshot and what follows; records of one event (the
 * layout before batches were stored whole) still read.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { shardbank, type LogEventProps } from '../protocol/messages.js';
import { EventLog } from '../store/eventlog.js';

const executed = (seq: number): LogEventProps => ({ executed: { seq } });

async function indexed(log: EventLog): Promise<[number, number][]> {
  const out: [number, number][] = [];
  for await (const { index, event } of log.entries()) out.push([index, event.executed?.seq ?? (event.snapshot ? -1 : 0)]);
  return out;
}

/** Runs a test body with a fresh temporary directory, removed however the body ends. */
async function withTempDir(body: (dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'shardbank-eventlog-'));
  try {
    await body(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('a batch is one record; its events read back in order with their indices, across a reopen', () =>
  withTempDir(async (dir) => {
    const log = EventLog.onDisk(dir);
    await log.open();
    await log.append([executed(1), executed(2), executed(3)]);
    await log.append([executed(4)]);
    assert.is(log.size, 4);
    await log.close();

    const raw = new ClassicLevel<string, Uint8Array>(dir, { valueEncoding: 'view' });
    const keys: string[] = [];
    for await (const k of raw.keys()) keys.push(k);
    await raw.close();
    assert.is(keys.length, 2, 'two appends, two records');

    const again = EventLog.onDisk(dir);
    await again.open();
    assert.is(again.size, 4, 'numbering continues after the last event of the last batch');
    await again.append([executed(5), executed(6)]);
    assert.equal(await indexed(again), [[0, 1], [1, 2], [2, 3], [3, 4], [4, 5], [5, 6]]);
    assert.is(await again.count(), 6);
    await again.close();
  }));

test('compaction keeps the snapshot and the batches after it', () =>
  withTempDir(async (dir) => {
    const log = EventLog.onDisk(dir);
    await log.open();
    await log.append([executed(1), executed(2)]);
    await log.compact({ snapshot: { set: 1, executedThrough: 2 } });
    await log.append([executed(3), executed(4)]);
    assert.equal(await indexed(log), [[2, -1], [3, 3], [4, 4]]);
    const events = await log.readAll();
    assert.is(events[0]!.snapshot?.executedThrough, 2);
    await log.close();
  }));

test('a log written one event per record reads and continues', () =>
  withTempDir(async (dir) => {
    const raw = new ClassicLevel<string, Uint8Array>(dir, { valueEncoding: 'view' });
    await raw.batch(
      [1, 2, 3].map((seq, i) => ({ type: 'put' as const, key: i.toString(16).padStart(12, '0'), value: shardbank.LogEvent.encode(executed(seq)).finish() })),
    );
    await raw.close();
    const log = EventLog.onDisk(dir);
    await log.open();
    assert.is(log.size, 3);
    await log.append([executed(4), executed(5)]);
    assert.equal(await indexed(log), [[0, 1], [1, 2], [2, 3], [3, 4], [4, 5]]);
    await log.close();
  }));

test.run();
