/** Suggests the closest known name for a misspelt one, for config and environment error messages. */

/** Edit distance (insert, delete, substitute, swap of neighbours), small inputs only. */
export function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d: number[][] = Array.from({ length: rows }, (_, i) =>
    Array.from({ length: cols }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        best = Math.min(best, d[i - 2]![j - 2]! + 1);
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * The candidate closest to `input`, if it is close enough to be a plausible typo: case and the
 * `-`/`_` spelling are ignored, and at most a third of the letters may differ. An abbreviation of
 * three letters or more (`prod`) suggests the one candidate it starts.
 */
export function didYouMean(input: string, candidates: Iterable<string>): string | undefined {
  const norm = (s: string) => s.toLowerCase().replace(/[-_ ]/g, "");
  const wanted = norm(input);
  const list = [...candidates];
  const prefixed =
    wanted.length >= 3 ? list.filter((name) => name !== input && norm(name).startsWith(wanted)) : [];
  if (prefixed.length === 1) return prefixed[0];
  let best: { name: string; distance: number } | undefined;
  for (const name of list) {
    if (name === input) continue;
    const distance = editDistance(wanted, norm(name));
    if (best === undefined || distance < best.distance) best = { name, distance };
  }
  if (best === undefined) return undefined;
  const allowed = Math.max(1, Math.floor(Math.max(wanted.length, 3) / 3));
  return best.distance <= allowed ? best.name : undefined;
}

/** ` (did you mean "x"?)` or nothing. */
export const hint = (input: string, candidates: Iterable<string>): string => {
  const guess = didYouMean(input, candidates);
  return guess === undefined ? "" : ` (did you mean "${guess}"?)`;
};
