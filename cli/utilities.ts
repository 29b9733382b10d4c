/**
 * The utilities an operator runs after a test set (SPEC §4), by name, as the
 * run's menu reads them and `--after "printreshard; printbalance 4001"`
 * gives them: each answers with its text for the terminal and a plain object
 * for `--json`.
 */
import { formatMoves } from '../client/resharder.js';
import { allNodes, type Topology } from '../protocol/topology.js';
import { formatPerformance, formatPrintBalance, formatPrintDb, formatPrintView, printDbJson, viewsJson } from './format.js';
import type { ReshardOutcome, SetRunner } from './runner.js';
import { parseUtility, UTILITIES_HELP } from './utility-names.js';

export { parseAfter, parseUtility, UTILITIES_HELP } from './utility-names.js';

export interface UtilityOutput {
  text: string;
  json: Record<string, unknown>;
}

/** Runs one utility; throws an Error with a one-line message on bad arguments. */
export async function runUtility(runner: SetRunner, topology: Topology, line: string): Promise<UtilityOutput> {
  const u = parseUtility(line);
  const command = line.trim();
  switch (u?.name) {
    case 'printbalance': {
      const item = Number(u.arg);
      if (!Number.isInteger(item) || item < 1 || item > topology.items) throw new Error(`PrintBalance needs an item id in 1..${topology.items}, got "${u.arg}"`);
      const entries = await runner.printBalance(item);
      return { text: formatPrintBalance(entries), json: { command, balances: Object.fromEntries(entries.map((e) => [`n${e.node}`, e.balance])) } };
    }
    case 'printdb': {
      const db = await runner.printDb();
      return { text: formatPrintDb(db, allNodes(topology), { width: 120 }), json: { command, db: printDbJson(db, allNodes(topology)) } };
    }
    case 'printview': {
      const views = await runner.printView();
      return { text: formatPrintView(views), json: { command, views: viewsJson(views) } };
    }
    case 'performance': {
      const p = runner.performance();
      return { text: formatPerformance(p), json: { command, performance: p } };
    }
    case 'printreshard': {
      const out = reshardLines(await runner.printReshard());
      return { text: out.text, json: Object.assign({ command }, out.json) };
    }
    default:
      throw new Error(`unknown command "${command}"; try ${UTILITIES_HELP}`);
  }
}

/**
 * What PrintReshard prints: the moved items as triplets on one line, then
 * the plan's cut, the imbalance, and any batch that did not commit; and the
 * same as JSON (`moves` as `[item, from, to]`).
 */
export function reshardLines(r: ReshardOutcome): UtilityOutput {
  const failed = r.batches.filter((b) => b.status !== 'committed');
  const notes = [
    `cut ${r.plan.cutBefore} -> ${r.plan.cutAfter} of ${r.plan.transfers} recent transfers, imbalance ${(r.plan.imbalance * 100).toFixed(1)}%`,
    ...failed.map((b) => `batch of ${b.items.length} from c${b.from} to c${b.to} ${b.status}: ${b.reason}`),
    ...r.unreachable.map((c) => `cluster ${c}: no node gave its history`),
  ];
  return {
    text: `${formatMoves(r.moved)}\n  (${notes.join('; ')})`,
    json: {
      moves: r.moved.map((m) => [m.item, m.from, m.to]),
      cutBefore: r.plan.cutBefore,
      cutAfter: r.plan.cutAfter,
      transfers: r.plan.transfers,
      failedBatches: failed.map((b) => ({ from: b.from, to: b.to, items: b.items.length, status: b.status, reason: b.reason })),
    },
  };
}
