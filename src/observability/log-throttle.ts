/**
 * At most one log line a window for each kind of refusal anyone may cause (a guesser, a scanner, a
 * client retrying): the line says how many were held back since the last one, so nothing goes
 * unsaid and the log cannot be flooded. Kinds are bounded too: past `maxKinds` the oldest is dropped.
 */
export type LogThrottle = (kind: string) => { log: true; held_back: number } | { log: false };

export function logThrottle(now: () => Date, windowMs = 60_000, maxKinds = 1_000): LogThrottle {
  const seen = new Map<string, { at: number; held_back: number }>();
  return (kind) => {
    const at = now().getTime();
    const last = seen.get(kind);
    if (last !== undefined && at - last.at < windowMs) {
      last.held_back += 1;
      return { log: false };
    }
    seen.delete(kind);
    if (seen.size >= maxKinds) {
      const oldest = seen.keys().next();
      if (oldest.done !== true) seen.delete(oldest.value);
    }
    seen.set(kind, { at, held_back: 0 });
    return { log: true, held_back: last?.held_back ?? 0 };
  };
}
