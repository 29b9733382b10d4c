/**
 * Consistency levels a read names (a transfer is always linearizable), as
 * users write them and as the wire carries them.
 */
import { shardbank } from './messages.js';

export const LEVELS = ['linearizable', 'leader', 'session', 'any'] as const;
export type Level = (typeof LEVELS)[number];

/** Other names for the levels, as other systems (and the spec's students) write them. */
const ALIASES: Record<string, Level> = {
  linearizable: 'linearizable',
  strong: 'linearizable',
  quorum: 'linearizable',
  leader: 'leader',
  default: 'leader',
  session: 'session',
  ryw: 'session',
  'read-your-writes': 'session',
  any: 'any',
  eventual: 'any',
  local: 'any',
};

/** The level a word names, or null. */
export function parseLevel(word: string): Level | null {
  return ALIASES[word.trim().toLowerCase()] ?? null;
}

const WIRE: Record<Level, shardbank.Consistency> = {
  linearizable: shardbank.Consistency.LINEARIZABLE,
  leader: shardbank.Consistency.LEADER,
  session: shardbank.Consistency.SESSION,
  any: shardbank.Consistency.ANY,
};

export function levelToWire(level: Level): shardbank.Consistency {
  return WIRE[level];
}

export function levelOf(wire: shardbank.Consistency | null | undefined): Level {
  return (Object.entries(WIRE).find(([, w]) => w === (wire ?? 0))?.[0] as Level | undefined) ?? 'leader';
}
