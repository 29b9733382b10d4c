/**
 * A command's way out, whichever it takes: Ctrl-C (also while a spinner is
 * on screen), SIGTERM or SIGHUP, a closed output pipe, or its ordinary end.
 * What a command registers here (stop its node processes, remove its
 * temporary directory) runs once on an interruption, and the synchronous
 * part (kill by pid, remove the directory) runs at exit in any case. A
 * second Ctrl-C stops waiting for a clean stop.
 */

/** Exit code of a command stopped by a signal or a closed pipe, as shells report SIGINT. */
export const EXIT_INTERRUPTED = 130;

interface Cleanup {
  /** A clean stop (SIGTERM to the nodes, wait for them). */
  graceful: () => Promise<void>;
  /** The last resort at exit: must not wait for anything. */
  now: () => void;
}

const cleanups = new Set<Cleanup>();
let installed = false;
let interrupting = false;

/** How long an interrupted command waits for its clean stop before it forces one. */
const GRACE_MS = 6000;

/**
 * Registers what a command must undo however it ends; returns the function
 * that unregisters it (after the command undid it itself).
 */
export function onExit(graceful: () => Promise<void>, now: () => void): () => void {
  const c: Cleanup = { graceful, now };
  cleanups.add(c);
  return () => cleanups.delete(c);
}

function runNow(): void {
  for (const c of cleanups) {
    try {
      c.now();
    } catch {
      // Nothing left to do about it: we are leaving.
    }
  }
  cleanups.clear();
}

async function interrupt(why: string): Promise<void> {
  if (interrupting) {
    runNow();
    process.exit(EXIT_INTERRUPTED);
  }
  interrupting = true;
  if (why !== 'EPIPE') process.stderr.write(`\n${why}: stopping\n`);
  const force = setTimeout(() => {
    runNow();
    process.exit(EXIT_INTERRUPTED);
  }, GRACE_MS);
  await Promise.allSettled([...cleanups].map((c) => c.graceful()));
  clearTimeout(force);
  runNow();
  process.exit(EXIT_INTERRUPTED);
}

/**
 * Installs the handlers (once per process): signals, a closed stdout, and
 * the last-resort cleanup at exit.
 */
export function installExitHandlers(): void {
  if (installed) return;
  installed = true;
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => void interrupt(signal));
  // A reader that went away (`| head`): stop as if interrupted, quietly.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') void interrupt('EPIPE');
  });
  process.stderr.on('error', () => {});
  process.on('exit', runNow);
}
