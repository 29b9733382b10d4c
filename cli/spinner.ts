/**
 * The progress spinner on stderr, when stderr is a terminal that can redraw a
 * line (some pseudo-terminals report no width).
 */
import ora, { type Ora } from 'ora';

export function progressSpinner(wanted = true): Ora {
  return ora({ stream: process.stderr, isEnabled: wanted && process.stderr.isTTY === true && (process.stderr.columns ?? 0) > 0 });
}
