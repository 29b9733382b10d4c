/**
 * V8's interrupt budget in a node process, following the node's load.
 *
 * V8 optimizes a function once it has run its budget of bytecode (67,584
 * bytes by default), and again after each deoptimization. A node's turn runs
 * a few hundred small functions (the transport, the codec, XState's steps,
 * the actors) about once each, so at the default a node that has just
 * started runs most of a turn in the interpreter for its first ten seconds of
 * load or more, at two to three times the CPU per turn. With a budget of
 * 1,024 the hot path is optimized within the first second of load.
 *
 * At rest a low budget costs: a node that wakes a few times a second then
 * optimizes, with little type feedback, functions it runs a handful of times,
 * and keeps doing so for half a minute (nine idle nodes spent 4 to 5% of a
 * core in their first 15 s instead of 1.3%). And the budget a function gets
 * is the one in force when its counter was last reset, so lowering it later
 * reaches the code that ran before only as each function next tiers up. So
 * the budget follows the load: V8's default while the node is quiet, low from
 * the first half second of work, the default again after a quiet spell.
 * Alternating runs against V8's default throughout (README, Benchmark):
 * about a quarter more intra-shard transfers per second at one client, a
 * sixth more at 64, cross-shard work the same, and idle nodes as before.
 * Starting low instead gains more (cross-shard too) but triples the CPU of
 * idle nodes.
 *
 * An operator who starts the process with `--interrupt-budget` (in its
 * arguments or NODE_OPTIONS) keeps it: then nothing here changes anything.
 */
import { setFlagsFromString } from 'node:v8';

/** The budget while busy, and V8's own default (V8 11, Node 20). */
export const BUSY_BUDGET = 1024;
export const V8_DEFAULT_BUDGET = 67_584;

/**
 * The load is looked at on a turn at least LOOK_MS after the last look (no
 * timer: an idle node is not woken for it); more than BUSY_TURNS turns per
 * LOOK_MS since then is busy, and QUIET_MS without a busy look is rest.
 */
export const LOOK_MS = 500;
export const BUSY_TURNS = 50;
export const QUIET_MS = 5000;

/** Whether the process was started with its own `--interrupt-budget`. */
export function operatorBudget(execArgv: readonly string[], nodeOptions = ''): boolean {
  return [...execArgv, ...nodeOptions.split(/\s+/)].some((a) => /^--interrupt[-_]budget(=|$)/.test(a));
}

/** The policy, apart from V8: told of the node's turns, it says which budget to set, when it changes. */
export class JitBudget {
  budget = V8_DEFAULT_BUDGET;
  private since: number;
  private turnsThen = 0;
  private quietMs = 0;

  constructor(
    private readonly set: (budget: number) => void = (b) => setFlagsFromString(`--interrupt-budget=${b}`),
    now = performance.now(),
  ) {
    this.since = now;
  }

  /** A turn ended at `now` (ms); `turns` is the node's turn count so far. */
  turned(now: number, turns: number): void {
    const elapsed = now - this.since;
    if (elapsed < LOOK_MS) return;
    const busy = (turns - this.turnsThen) * LOOK_MS > BUSY_TURNS * elapsed;
    this.since = now;
    this.turnsThen = turns;
    this.quietMs = busy ? 0 : this.quietMs + elapsed;
    const want = busy ? BUSY_BUDGET : this.quietMs >= QUIET_MS ? V8_DEFAULT_BUDGET : this.budget;
    if (want !== this.budget) this.set((this.budget = want));
  }
}

/** For `shardbank node`: the policy, or none when the operator set the budget. */
export function tuneJit(): JitBudget | undefined {
  return operatorBudget(process.execArgv, process.env.NODE_OPTIONS) ? undefined : new JitBudget();
}
