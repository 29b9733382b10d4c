/**
 * What the 2PC actors have in common: their input, and the `txPhase` event
 * each phase change leaves in the node's log.
 */
import type { Command } from '../protocol/messages.js';
import type { TxRole } from '../store/state.js';
import { record, type Effect } from './effects.js';
import type { ActorInput } from './node-info.js';

export interface TxActorInput extends ActorInput {
  txid: string;
  command: Command;
}

export function txPhase(ctx: TxActorInput, role: TxRole, phase: string, why = ''): Effect {
  return record({ phase: { txid: ctx.txid, role, phase, why, command: ctx.command } });
}
