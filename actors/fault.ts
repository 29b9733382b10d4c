/**
 * An actor of a node threw. XState stops a child that throws without a word,
 * so its parent rethrows it as an ActorFault, up to the root; the host then
 * stops the node on the spot (fail-stop) with this in its log.
 */
export class ActorFault extends Error {
  override name = 'ActorFault';
  constructor(
    readonly actor: string,
    override readonly cause: unknown,
  ) {
    super(`actor ${actor} threw: ${cause instanceof Error ? cause.message : String(cause)}`);
    if (cause instanceof Error && cause.stack) this.stack = `${this.name}: ${this.message}\n${cause.stack}`;
  }
}

/** The action a parent runs on `xstate.error.actor.*`: rethrow, naming the child. */
export function escalate({ event }: { event: unknown }): never {
  const e = event as { type: string; error?: unknown };
  throw new ActorFault(e.type.slice('xstate.error.actor.'.length), e.error);
}
