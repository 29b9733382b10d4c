/**
 * How many inbound connections a node keeps, per role and per identity. A
 * new connection past its role's limit closes the one of that role idle the
 * longest; past its identity's limit, that identity's oldest. So connections
 * that sit idle cannot lock newcomers out, and one identity cannot take every
 * place of its role. Bookkeeping only: the transport closes what it is told.
 */
import type { Role } from './tls.js';

export interface Admitted {
  readonly role: Role;
  readonly identity: string;
  /** When the connection last carried a byte either way (ms). */
  readonly lastActive: number;
}

export interface AdmissionLimits {
  perRole: Record<Role, number>;
  perIdentity: number;
}

export class Admission<C extends Admitted> {
  private readonly byRole = new Map<Role, Set<C>>();
  /** Each identity's connections, oldest first. */
  private readonly byIdentity = new Map<string, C[]>();

  constructor(private readonly limits: AdmissionLimits) {}

  /** Connections admitted of a role. */
  count(role: Role): number {
    return this.byRole.get(role)?.size ?? 0;
  }

  /** Admits a connection; returns those to close to make room for it. */
  admit(c: C): C[] {
    const out: C[] = [];
    const key = identityKey(c);
    const mine = this.byIdentity.get(key) ?? [];
    while (mine.length >= this.limits.perIdentity) out.push(mine.shift()!);
    const role = this.byRole.get(c.role) ?? new Set<C>();
    const room = this.limits.perRole[c.role] - (role.size - out.filter((o) => role.has(o)).length);
    if (room <= 0) {
      const idlest = [...role].filter((o) => !out.includes(o)).sort((a, b) => a.lastActive - b.lastActive)[0];
      if (idlest) out.push(idlest);
    }
    for (const o of out) this.remove(o);
    mine.push(c);
    this.byIdentity.set(key, mine);
    role.add(c);
    this.byRole.set(c.role, role);
    return out;
  }

  remove(c: C): void {
    this.byRole.get(c.role)?.delete(c);
    const key = identityKey(c);
    const mine = this.byIdentity.get(key);
    if (!mine) return;
    const i = mine.indexOf(c);
    if (i >= 0) mine.splice(i, 1);
    if (mine.length === 0) this.byIdentity.delete(key);
  }
}

function identityKey(c: Admitted): string {
  return `${c.role}:${c.identity}`;
}
