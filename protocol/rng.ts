/**
 * A small seeded random generator (mulberry32). Its whole state is one
 * 32-bit number, so a machine can keep it in its context and a run can be
 * replayed from its seed.
 */
export interface Rng {
  /** A float in [0, 1). */
  next(): number;
  /** An integer in [min, max], both inclusive. */
  int(min: number, max: number): number;
  /** The current state, to store and resume from. */
  state(): number;
}

/** One step of mulberry32: returns [value in [0,1), next state]. */
export function mulberry32Step(state: number): [number, number] {
  const s = (state + 0x6d2b79f5) >>> 0;
  let t = s;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return [((t ^ (t >>> 14)) >>> 0) / 4294967296, s];
}

export function createRng(seed: number): Rng {
  let s = seed >>> 0;
  const next = () => {
    const [v, n] = mulberry32Step(s);
    s = n;
    return v;
  };
  return {
    next,
    int: (min, max) => min + Math.floor(next() * (max - min + 1)),
    state: () => s,
  };
}

/** Mixes several numbers into one seed (for per-node streams from one run seed). */
export function mixSeed(...parts: number[]): number {
  let h = 0x811c9dc5;
  for (const p of parts) {
    h ^= p >>> 0;
    h = Math.imul(h, 0x01000193) >>> 0;
    h ^= h >>> 13;
  }
  return h >>> 0;
}
