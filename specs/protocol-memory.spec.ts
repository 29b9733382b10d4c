import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { EnvelopeProps } from '../protocol/messages.js';
import { MemoryNetwork, type Scheduler } from '../protocol/memory.js';

/** Simulated time: tasks run by due time, then in the order they were scheduled. */
class ManualScheduler implements Scheduler {
  private time = 0;
  private seq = 0;
  private heap: { at: number; seq: number; fn: () => void }[] = [];

  now(): number {
    return this.time;
  }

  schedule(delayMs: number, fn: () => void): void {
    this.heap.push({ at: this.time + Math.max(0, delayMs), seq: this.seq++, fn });
    let i = this.heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(i, parent)) break;
      [this.heap[i], this.heap[parent]] = [this.heap[parent]!, this.heap[i]!];
      i = parent;
    }
  }

  /** Runs everything due, including what the tasks schedule, up to a task budget. */
  runAll(maxTasks = 100000): number {
    let ran = 0;
    while (this.heap.length > 0 && ran < maxTasks) {
      const task = this.pop();
      this.time = task.at;
      task.fn();
      ran++;
    }
    return ran;
  }

  private before(a: number, b: number): boolean {
    const x = this.heap[a]!;
    const y = this.heap[b]!;
    return x.at !== y.at ? x.at < y.at : x.seq < y.seq;
  }

  private pop(): { at: number; seq: number; fn: () => void } {
    const top = this.heap[0]!;
    const last = this.heap.pop()!;
    if (this.heap.length > 0) {
      this.heap[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < this.heap.length && this.before(l, m)) m = l;
        if (r < this.heap.length && this.before(r, m)) m = r;
        if (m === i) break;
        [this.heap[i], this.heap[m]] = [this.heap[m]!, this.heap[i]!];
        i = m;
      }
    }
    return top;
  }
}

const hb = (from: number, to: number, n: number): EnvelopeProps => ({ from, to, heartbeat: { ballot: { round: 1, node: from }, commitThrough: n } });

/** Three nodes that each send a burst to the others and echo part of what they get. */
function run(seed: number): string[] {
  const sched = new ManualScheduler();
  const net = new MemoryNetwork({ seed, scheduler: sched, minDelayMs: 1, maxDelayMs: 10 });
  const trace: string[] = [];
  const ids = [1, 2, 3];
  const eps = new Map(ids.map((id) => [id, net.endpoint(id)]));
  for (const id of ids) {
    const ep = eps.get(id)!;
    ep.onEnvelope((env) => {
      const n = env.heartbeat!.commitThrough!;
      trace.push(`${sched.now()} n${env.from}->n${id} #${n}`);
      if (n < 1000) ep.send(hb(id, env.from!, n + 1000));
    });
  }
  for (let n = 1; n <= 20; n++) for (const from of ids) for (const to of ids) if (from !== to) eps.get(from)!.send(hb(from, to, n));
  sched.runAll();
  return trace;
}

test('the same seed gives the same delivery order; another seed another', () => {
  const a = run(42);
  const b = run(42);
  const c = run(43);
  assert.is(a.length, 240);
  assert.equal(a, b);
  assert.is.not(a.join('\n'), c.join('\n'));
  // Delays differ per envelope, so sends are reordered.
  const fromOneToTwo = a
    .filter((l) => l.includes('n1->n2 #'))
    .map((l) => Number(l.split('#')[1]))
    .filter((n) => n < 1000);
  assert.is(fromOneToTwo.length, 20);
  assert.is.not(fromOneToTwo.join(','), [...fromOneToTwo].sort((x, y) => x - y).join(','));
});

test('receivers get copies, never the sender objects', () => {
  const sched = new ManualScheduler();
  const net = new MemoryNetwork({ seed: 1, scheduler: sched });
  const a = net.endpoint(1);
  const b = net.endpoint(2);
  const got: EnvelopeProps[] = [];
  b.onEnvelope((e) => got.push(e));
  const env = hb(1, 2, 5);
  a.send(env);
  env.heartbeat!.commitThrough = 99;
  sched.runAll();
  assert.is(got.length, 1);
  assert.is(got[0]!.heartbeat!.commitThrough, 5);
  assert.is.not(got[0], env);
});

test('replies to a client go to its endpoint by name', () => {
  const sched = new ManualScheduler();
  const net = new MemoryNetwork({ seed: 7, scheduler: sched });
  const node = net.endpoint(1);
  const client = net.endpoint('alice');
  const replies: EnvelopeProps[] = [];
  client.onEnvelope((e) => replies.push(e));
  node.onEnvelope((e) => node.send({ from: 1, toClient: e.request!.command!.client!, reply: { client: 'alice', timestamp: 3, leader: 1 } }));
  client.send({ from: 0, to: 1, request: { command: { client: 'alice', timestamp: 3, read: { item: 1 } } } });
  sched.runAll();
  assert.is(replies.length, 1);
  assert.is(replies[0]!.reply!.timestamp, 3);
  assert.equal(net.stats, { sent: 2, delivered: 2, dropped: 0, duplicated: 0 });
});

test('isolate drops both ways, in flight too; heal restores', () => {
  const sched = new ManualScheduler();
  const net = new MemoryNetwork({ seed: 5, scheduler: sched });
  const [a, b, c] = [net.endpoint(1), net.endpoint(2), net.endpoint(3)];
  const got = new Map<number, number[]>([[1, []], [2, []], [3, []]]);
  a.onEnvelope((e) => got.get(1)!.push(e.heartbeat!.commitThrough!));
  b.onEnvelope((e) => got.get(2)!.push(e.heartbeat!.commitThrough!));
  c.onEnvelope((e) => got.get(3)!.push(e.heartbeat!.commitThrough!));

  a.send(hb(1, 2, 1)); // in flight when 2 is cut off
  net.isolate(2);
  a.send(hb(1, 2, 2));
  b.send(hb(2, 1, 3));
  b.send(hb(2, 3, 4));
  a.send(hb(1, 3, 5)); // unaffected
  sched.runAll();
  assert.equal(got.get(1), []);
  assert.equal(got.get(2), []);
  assert.equal(got.get(3), [5]);
  assert.is(net.stats.dropped, 4);
  assert.not.ok(net.linked(1, 2));

  net.heal();
  assert.ok(net.linked(1, 2));
  a.send(hb(1, 2, 6));
  b.send(hb(2, 1, 7));
  sched.runAll();
  assert.equal(got.get(2), [6]);
  assert.equal(got.get(1), [7]);
});

test('partition cuts only links between the groups', () => {
  const sched = new ManualScheduler();
  const net = new MemoryNetwork({ seed: 9, scheduler: sched });
  const eps = [1, 2, 3].map((id) => net.endpoint(id));
  const got: string[] = [];
  eps.forEach((ep, i) => ep.onEnvelope((e) => got.push(`${e.from}->${i + 1}`)));
  net.partition([1], [2, 3]);
  for (const from of [1, 2, 3]) for (const to of [1, 2, 3]) if (from !== to) eps[from - 1]!.send(hb(from, to, 0));
  sched.runAll();
  assert.equal(got.sort(), ['2->3', '3->2']);
});

test('drop and duplicate rates are applied and counted', () => {
  const sched = new ManualScheduler();
  const net = new MemoryNetwork({ seed: 11, scheduler: sched });
  const a = net.endpoint(1);
  const b = net.endpoint(2);
  let delivered = 0;
  b.onEnvelope(() => delivered++);
  net.setDropRate(0.3);
  net.setDuplicateRate(0.2);
  for (let i = 0; i < 1000; i++) a.send(hb(1, 2, i));
  sched.runAll();
  const s = net.stats;
  assert.is(s.sent, 1000);
  assert.is(s.delivered, delivered);
  assert.is(s.delivered, 1000 - s.dropped + s.duplicated);
  assert.ok(s.dropped > 200 && s.dropped < 400, `dropped ${s.dropped}`);
  assert.ok(s.duplicated > 100 && s.duplicated < 200, `duplicated ${s.duplicated}`);
  net.heal();
  net.setDuplicateRate(0);
  a.send(hb(1, 2, 0));
  sched.runAll();
  assert.is(net.stats.delivered, s.delivered + 1);
  assert.throws(() => net.setDropRate(1.5), /drop rate/);
});

test('a closed endpoint receives nothing; a fresh one for the same node does', () => {
  const sched = new ManualScheduler();
  const net = new MemoryNetwork({ seed: 3, scheduler: sched });
  const a = net.endpoint(1);
  const b = net.endpoint(2);
  let old = 0;
  b.onEnvelope(() => old++);
  a.send(hb(1, 2, 1));
  void b.close();
  sched.runAll();
  assert.is(old, 0);
  const b2 = net.endpoint(2);
  assert.is.not(b2, b);
  let fresh = 0;
  b2.onEnvelope(() => fresh++);
  a.send(hb(1, 2, 2));
  sched.runAll();
  assert.is(fresh, 1);
});

test.run();
