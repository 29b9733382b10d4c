/**
 * The names of the utilities a run offers after a set, and how a command
 * line names one: light enough for the command's start-up (the utilities
 * themselves are in utilities.ts).
 */
export const UTILITIES_HELP = 'printbalance ID | printdb | printview | performance | printreshard';

/** A utility command as typed: `printbalance 4001`, `PrintBalance(4001)`, `printreshard`. */
export function parseUtility(line: string): { name: string; arg: string } | null {
  const m = /^\s*([a-z]+)\s*\(?\s*([^)]*?)\s*\)?\s*$/i.exec(line);
  return m ? { name: m[1]!.toLowerCase(), arg: m[2] ?? '' } : null;
}

/** Splits `--after`'s list; an unknown name is an error naming it. */
export function parseAfter(list: string): string[] {
  const commands = list.split(';').map((c) => c.trim()).filter(Boolean);
  for (const c of commands) {
    const u = parseUtility(c);
    if (!u || !UTILITIES_HELP.split(' | ').some((h) => h.split(' ')[0] === u.name)) throw new Error(`--after: "${c}" is not a utility (${UTILITIES_HELP})`);
  }
  if (commands.length === 0) throw new Error('--after: give one or more utilities, separated by ";"');
  return commands;
}

