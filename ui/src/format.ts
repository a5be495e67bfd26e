/** How the UI writes numbers, durations and times: short, unambiguous, UTC on hover. */

const integer = new Intl.NumberFormat("en-US");

export const formatCount = (n: number): string => integer.format(n);

export const plural = (n: number, one: string, many = `${one}s`): string =>
  `${formatCount(n)} ${n === 1 ? one : many}`;

/** 850 ms, 4.2 s, 3 min, 5.5 h, 2 d. */
export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "—";
  const abs = Math.abs(ms);
  if (abs < 1_000) return `${Math.round(ms)} ms`;
  if (abs < 60_000) return `${trim(ms / 1_000)} s`;
  if (abs < 3_600_000) return `${trim(ms / 60_000)} min`;
  if (abs < 86_400_000) return `${trim(ms / 3_600_000)} h`;
  return `${trim(ms / 86_400_000)} d`;
}

const trim = (x: number): string =>
  Math.abs(x) >= 10 ? String(Math.round(x)) : x.toFixed(1).replace(/\.0$/, "");

/** A local date and time to the second: 2026-11-22 11:33:47. */
export function formatTime(iso: string | null | undefined): string {
  if (iso === null || iso === undefined) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const p = (n: number): string => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** "12 s ago", "in 3 min", relative to `now`. */
export function formatRelative(iso: string | null | undefined, now: number): string {
  if (iso === null || iso === undefined) return "—";
  const t = new Date(iso).getTime();
  if (Number.isNaN(t)) return iso;
  const delta = t - now;
  if (Math.abs(delta) < 1_000) return "now";
  const d = formatDuration(Math.abs(Math.round(delta / 1_000) * 1_000));
  return delta < 0 ? `${d} ago` : `in ${d}`;
}

/** Words from a snake_case code: opt_out_missing → opt-out missing. */
export const humanize = (code: string): string =>
  code.replace(/_/g, " ").replace(/\bopt (out|in)\b/g, "opt-$1");

export const percent = (part: number, whole: number): string =>
  whole <= 0 ? "—" : `${(Math.round((part / whole) * 1_000) / 10).toString()} %`;
