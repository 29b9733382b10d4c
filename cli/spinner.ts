/**
 * The progress spinner on stderr, when stderr is a terminal that can redraw a
 * line (some pseudo-terminals report no width). It leaves stdin alone: a
 * spinner that swallows keystrokes would swallow Ctrl-C with them, and a run
 * must stop at any moment.
 */
import ora, { type Ora } from 'ora';

export function progressSpinner(wanted = true): Ora {
  return ora({
    stream: process.stderr,
    discardStdin: false,
    isEnabled: wanted && process.stderr.isTTY === true && (process.stderr.columns ?? 0) > 0,
  });
}
