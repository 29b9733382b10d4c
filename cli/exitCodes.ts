/**
 * What every `shardbank` command's exit code means, the same in all of them.
 */
export const EXIT_OK = 0;
/** The command ran to its end, but something failed its check: an audit, a skipped row, a divergence, a node down. */
export const EXIT_CHECK_FAILED = 1;
/** Bad usage, input or config: a flag, a file, a directory, a port in use. Nothing ran. */
export const EXIT_USAGE = 2;
/** An internal fault: a node stopped itself (fail-stop), or a bug. */
export const EXIT_INTERNAL = 70;
/** Interrupted: Ctrl-C, SIGTERM or a closed output pipe (the local cluster is stopped and its directory removed). */
export { EXIT_INTERRUPTED } from './lifecycle.js';

/** The table `--help` and README show. */
export const EXIT_CODES_HELP = `Exit codes (every command):
  0    everything went as the file, workload or command says
  1    it ran to the end, but something failed its check (an audit, a skipped row, a divergence, a node down)
  2    bad usage, input or config (a flag, a file, a directory, a port in use); nothing ran
  70   an internal fault (a node stopped itself, or a bug)
  130  interrupted (Ctrl-C, SIGTERM, a closed output pipe); the local cluster is stopped and its directory removed`;
