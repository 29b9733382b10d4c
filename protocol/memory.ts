/**
 * A simulated network for tests and deterministic runs: every envelope is
 * handed to a scheduler with a delay drawn from a seeded generator, so one
 * seed and one sequence of sends always give one delivery order. Faults
 * (drops, duplicates, partitions, isolated nodes) are switched on by the test
 * or the simulator; drops and duplicates draw from the same seeded stream.
 */
import { shardbank, type EnvelopeProps } from './messages.js';
import { createRng, type Rng } from './rng.js';
import type { EnvelopeHandler, Transport } from './transport.js';

/** The simulated clock: whoever runs the simulation decides when time passes. */
export interface Scheduler {
  now(): number;
  /** Runs fn after delayMs of simulated time; equal times run in scheduling order. */
  schedule(delayMs: number, fn: () => void): void;
}

/** A node id, or a client's name. */
export type MemoryAddress = number | string;

export interface MemoryNetworkStats {
  sent: number;
  delivered: number;
  dropped: number;
  duplicated: number;
}

export type NetworkEvent =
  | { kind: 'send'; at: number; from: MemoryAddress; to: MemoryAddress; env: EnvelopeProps }
  | { kind: 'deliver'; at: number; from: MemoryAddress; to: MemoryAddress; env: EnvelopeProps }
  | { kind: 'drop'; at: number; from: MemoryAddress; to: MemoryAddress | undefined; reason: string }
  | { kind: 'duplicate'; at: number; from: MemoryAddress; to: MemoryAddress };

export interface MemoryNetworkOptions {
  seed: number;
  scheduler: Scheduler;
  minDelayMs?: number;
  maxDelayMs?: number;
  /** Sees every send, delivery, drop and duplicate, for traces and checkers. */
  trace?: (event: NetworkEvent) => void;
}

/** Node 4 and a client named "4" are different addresses. */
function keyOf(addr: MemoryAddress): string {
  return typeof addr === 'number' ? `n${addr}` : `c:${addr}`;
}

function checkRate(p: number, what: string): number {
  if (!(p >= 0 && p <= 1)) throw new RangeError(`${what} must be in [0, 1], got ${p}`);
  return p;
}

class MemoryEndpoint implements Transport {
  handler: EnvelopeHandler | null = null;
  closed = false;

  constructor(
    private readonly net: MemoryNetwork,
    readonly addr: MemoryAddress,
  ) {}

  send(env: EnvelopeProps): void {
    if (!this.closed) this.net.transmit(this, env);
  }

  flush(): void {}

  onEnvelope(handler: EnvelopeHandler): void {
    this.handler = handler;
  }

  close(): Promise<void> {
    this.closed = true;
    this.net.detach(this);
    return Promise.resolve();
  }
}

export class MemoryNetwork {
  private readonly rng: Rng;
  private readonly scheduler: Scheduler;
  private minDelayMs: number;
  private maxDelayMs: number;
  private readonly trace: ((event: NetworkEvent) => void) | undefined;
  private readonly endpoints = new Map<string, MemoryEndpoint>();
  private readonly isolated = new Set<string>();
  /** Cut links, stored both ways as `a|b`. */
  private readonly cut = new Set<string>();
  private dropRate = 0;
  private duplicateRate = 0;
  private readonly counters: MemoryNetworkStats = { sent: 0, delivered: 0, dropped: 0, duplicated: 0 };

  constructor(opts: MemoryNetworkOptions) {
    this.rng = createRng(opts.seed);
    this.scheduler = opts.scheduler;
    this.minDelayMs = opts.minDelayMs ?? 1;
    this.maxDelayMs = opts.maxDelayMs ?? 3;
    if (!(this.minDelayMs >= 0 && this.maxDelayMs >= this.minDelayMs)) {
      throw new RangeError(`delays must satisfy 0 <= minDelayMs <= maxDelayMs, got ${this.minDelayMs}..${this.maxDelayMs}`);
    }
    this.trace = opts.trace;
  }

  /**
   * The transport of a node (number) or client (string). Asking again for an
   * address whose endpoint is still open returns that endpoint; after it is
   * closed (a crash), a fresh one takes its place and receives what is still
   * in flight.
   */
  endpoint(addr: MemoryAddress): Transport {
    const key = keyOf(addr);
    const existing = this.endpoints.get(key);
    if (existing && !existing.closed) return existing;
    const ep = new MemoryEndpoint(this, addr);
    this.endpoints.set(key, ep);
    return ep;
  }

  /** Cuts every link of addr, both ways, until unisolate() or heal(). */
  isolate(addr: MemoryAddress): void {
    this.isolated.add(keyOf(addr));
  }

  unisolate(addr: MemoryAddress): void {
    this.isolated.delete(keyOf(addr));
  }

  /** Cuts every link between a member of groupA and a member of groupB, both ways. */
  partition(groupA: MemoryAddress[], groupB: MemoryAddress[]): void {
    for (const a of groupA) {
      for (const b of groupB) {
        const ka = keyOf(a);
        const kb = keyOf(b);
        if (ka === kb) continue;
        this.cut.add(`${ka}|${kb}`);
        this.cut.add(`${kb}|${ka}`);
      }
    }
  }

  /** Removes every partition and isolation and stops random drops; duplication stays as set. */
  heal(): void {
    this.isolated.clear();
    this.cut.clear();
    this.dropRate = 0;
  }

  /** Delivery delays from now on; a wide range reorders messages. */
  setDelay(minDelayMs: number, maxDelayMs: number): void {
    if (!(minDelayMs >= 0 && maxDelayMs >= minDelayMs)) {
      throw new RangeError(`delays must satisfy 0 <= minDelayMs <= maxDelayMs, got ${minDelayMs}..${maxDelayMs}`);
    }
    this.minDelayMs = minDelayMs;
    this.maxDelayMs = maxDelayMs;
  }

  setDropRate(p: number): void {
    this.dropRate = checkRate(p, 'drop rate');
  }

  setDuplicateRate(p: number): void {
    this.duplicateRate = checkRate(p, 'duplicate rate');
  }

  /** Whether an envelope from a to b would currently get through (random drops aside). */
  linked(a: MemoryAddress, b: MemoryAddress): boolean {
    return this.linkUp(keyOf(a), keyOf(b));
  }

  get stats(): Readonly<MemoryNetworkStats> {
    return { ...this.counters };
  }

  /** @internal Called by endpoints. */
  transmit(from: MemoryEndpoint, env: EnvelopeProps): void {
    this.counters.sent++;
    const at = this.scheduler.now();
    const to: MemoryAddress | undefined = env.toClient ? env.toClient : env.to ? env.to : undefined;
    if (to === undefined) {
      this.drop(at, from.addr, undefined, 'no destination');
      return;
    }
    // Encoding now fails loudly in the sender for a malformed envelope; each
    // delivery decodes its own copy, so nobody shares objects.
    const bytes = shardbank.Envelope.encode(env).finish();
    this.trace?.({ kind: 'send', at, from: from.addr, to, env });
    const fromKey = keyOf(from.addr);
    const toKey = keyOf(to);
    if (!this.linkUp(fromKey, toKey)) {
      this.drop(at, from.addr, to, 'partitioned');
      return;
    }
    if (this.dropRate > 0 && this.rng.next() < this.dropRate) {
      this.drop(at, from.addr, to, 'random drop');
      return;
    }
    this.scheduleDelivery(from.addr, fromKey, to, toKey, bytes);
    if (this.duplicateRate > 0 && this.rng.next() < this.duplicateRate) {
      this.counters.duplicated++;
      this.trace?.({ kind: 'duplicate', at, from: from.addr, to });
      this.scheduleDelivery(from.addr, fromKey, to, toKey, bytes);
    }
  }

  /** @internal Called by endpoints. */
  detach(ep: MemoryEndpoint): void {
    const key = keyOf(ep.addr);
    if (this.endpoints.get(key) === ep) this.endpoints.delete(key);
  }

  private scheduleDelivery(from: MemoryAddress, fromKey: string, to: MemoryAddress, toKey: string, bytes: Uint8Array): void {
    const delay = this.rng.int(this.minDelayMs, this.maxDelayMs);
    this.scheduler.schedule(delay, () => {
      const at = this.scheduler.now();
      // Faults switched on while the envelope was in flight apply to it too.
      if (!this.linkUp(fromKey, toKey)) {
        this.drop(at, from, to, 'partitioned');
        return;
      }
      const ep = this.endpoints.get(toKey);
      if (!ep || ep.closed || !ep.handler) {
        this.drop(at, from, to, 'no endpoint');
        return;
      }
      const env = shardbank.Envelope.decode(bytes);
      this.counters.delivered++;
      this.trace?.({ kind: 'deliver', at, from, to, env });
      ep.handler(env);
    });
  }

  private linkUp(fromKey: string, toKey: string): boolean {
    if (fromKey === toKey) return true;
    if (this.isolated.has(fromKey) || this.isolated.has(toKey)) return false;
    return !this.cut.has(`${fromKey}|${toKey}`);
  }

  private drop(at: number, from: MemoryAddress, to: MemoryAddress | undefined, reason: string): void {
    this.counters.dropped++;
    this.trace?.({ kind: 'drop', at, from, to, reason });
  }
}
