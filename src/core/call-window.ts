/**
 * A vendor's per-second rate as a sliding window of call times, the same for one process's budget
 * and for the window every process of an installation shares in the store.
 */

/** At most `calls` calls in any `ms` milliseconds. */
export type CallWindow = { calls: number; ms: number };

/**
 * The window of a per-second rate: a whole number of calls, over a second or longer, so a
 * fractional rate holds (0.5 a second is one call in any two seconds; 2.5 is two in 800 ms).
 */
export function callWindow(perSecond: number): CallWindow {
  const calls = Math.max(1, Math.floor(perSecond));
  return { calls, ms: (1000 * calls) / perSecond };
}

/**
 * How far ahead of `now` a kept call time may be and still count: further is a clock that ran
 * ahead (a machine out of step), never a queue of calls, and would hold every call back until then.
 */
export const CALL_TIME_HORIZON_MS = 10 * 60_000;

/**
 * Where a call goes in a window: never before `now`, nor before the latest call kept (so the
 * times stay in order), nor within the window of the call `window.calls` places back. The times
 * kept are the last `window.calls`, all a later call needs; times further ahead than
 * `CALL_TIME_HORIZON_MS` are dropped.
 */
export function nextCallTime(
  kept: readonly number[],
  now: number,
  window: CallWindow,
): { at: number; recent: number[] } {
  const recent = kept.filter((t) => t <= now + CALL_TIME_HORIZON_MS);
  const last = recent.at(-1) ?? Number.NEGATIVE_INFINITY;
  const back = recent.length >= window.calls ? recent[recent.length - window.calls] : undefined;
  const at = Math.max(now, last, back === undefined ? Number.NEGATIVE_INFINITY : back + window.ms);
  return { at, recent: [...recent, at].slice(-window.calls) };
}
