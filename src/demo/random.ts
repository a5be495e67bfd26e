/** A small seeded random source (mulberry32) for the demo's data and activity: same seed, same world. */

export type Random = {
  /** A float in [0, 1). */
  next: () => number;
  /** An integer in [min, max], both included. */
  int: (min: number, max: number) => number;
  chance: (p: number) => boolean;
  pick: <T>(items: readonly T[]) => T;
  /** A random permutation of `items` (a copy). */
  shuffle: <T>(items: readonly T[]) => T[];
  /** An index into `weights`, each chosen in proportion to its weight. */
  weighted: (weights: readonly number[]) => number;
  /** A version-4-shaped UUID drawn from this source (stable across runs, unlike randomUUID). */
  uuid: () => string;
};

export function createRandom(seed: number): Random {
  let state = seed >>> 0;
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (min: number, max: number): number => min + Math.floor(next() * (max - min + 1));
  const pick = <T>(items: readonly T[]): T => {
    if (items.length === 0) throw new Error("pick from an empty list");
    return items[int(0, items.length - 1)] as T;
  };
  const shuffle = <T>(items: readonly T[]): T[] => {
    const out = [...items];
    for (let i = out.length - 1; i > 0; i -= 1) {
      const j = int(0, i);
      [out[i], out[j]] = [out[j] as T, out[i] as T];
    }
    return out;
  };
  const weighted = (weights: readonly number[]): number => {
    const total = weights.reduce((a, b) => a + b, 0);
    let r = next() * total;
    for (const [i, w] of weights.entries()) {
      if (r < w) return i;
      r -= w;
    }
    return weights.length - 1;
  };
  const hex = (n: number): string => Array.from({ length: n }, () => int(0, 15).toString(16)).join("");
  const uuid = (): string => `${hex(8)}-${hex(4)}-4${hex(3)}-${"89ab"[int(0, 3)] ?? "8"}${hex(3)}-${hex(12)}`;
  return { next, int, chance: (p) => next() < p, pick, shuffle, weighted, uuid };
}
