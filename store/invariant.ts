/**
 * Asserts that stay on in production. A broken invariant means the node's
 * state can no longer be trusted, so the error it throws stops the node on
 * the spot (fail-stop: the host drops the turn unwritten and the process
 * exits 70), with the reason in the node's log. The fuzzers and the
 * simulator turn a failed one into a found bug with its seed.
 */
export class InvariantError extends Error {
  override name = 'InvariantError';
}

/** Throws an InvariantError naming what should have held. */
export function invariant(condition: unknown, what: string | (() => string)): asserts condition {
  if (!condition) throw new InvariantError(typeof what === 'string' ? what : what());
}
