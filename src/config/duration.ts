/** Durations in the config file (`90s`, `5m`, `1h30m`, `24h`, `7d`), parsed to milliseconds. */
import { z } from "zod";

const UNIT_MS = { d: 86_400_000, h: 3_600_000, m: 60_000, s: 1_000, ms: 1 } as const;
type Unit = keyof typeof UNIT_MS;
const ORDER: readonly Unit[] = ["d", "h", "m", "s", "ms"];
// Units in descending order, each at most once: `1h30m` is fine, `30m1h` and `1.5h` are not.
const DURATION_RE = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$/;

export const DURATION_FORM = "a duration such as 30s, 5m, 1h30m or 24h (units d, h, m, s, ms)";

/** Milliseconds for a duration string, or undefined when it is not one. */
export function parseDuration(text: string): number | undefined {
  const match = DURATION_RE.exec(text.trim());
  if (match === null || text.trim() === "") return undefined;
  let total = 0;
  ORDER.forEach((unit, i) => {
    const part = match[i + 1];
    if (part !== undefined) total += Number(part) * UNIT_MS[unit];
  });
  return total;
}

/** The shortest exact spelling of a duration: 90000 → `1m30s`. */
export function formatDuration(ms: number): string {
  if (ms === 0) return "0s";
  let rest = ms;
  let out = "";
  for (const unit of ORDER) {
    const n = Math.floor(rest / UNIT_MS[unit]);
    if (n > 0) {
      out += `${n}${unit}`;
      rest -= n * UNIT_MS[unit];
    }
  }
  return out;
}

/** A duration field: a string in, milliseconds out, with optional bounds named in the error. */
export function durationSchema(bounds: { min?: number; max?: number } = {}) {
  return z.unknown().transform((input, ctx): number => {
    const fail = (message: string): never => {
      ctx.addIssue({ code: "custom", message, input });
      return z.NEVER;
    };
    if (typeof input === "number")
      return fail(
        `expected ${DURATION_FORM}, found the number ${input} without a unit (write ${input}s or ${input}m)`,
      );
    if (typeof input !== "string") {
      if (input === undefined) return fail(`required: expected ${DURATION_FORM}, found nothing`);
      return fail(
        `expected ${DURATION_FORM}, found ${input === null ? "an empty value" : typeof input === "object" ? "a mapping or list" : typeof input}`,
      );
    }
    const ms = parseDuration(input);
    if (ms === undefined) return fail(`expected ${DURATION_FORM}, found ${JSON.stringify(input)}`);
    if (bounds.min !== undefined && ms < bounds.min)
      return fail(
        `expected a duration of at least ${formatDuration(bounds.min)}, found ${JSON.stringify(input)}`,
      );
    if (bounds.max !== undefined && ms > bounds.max)
      return fail(
        `expected a duration of at most ${formatDuration(bounds.max)}, found ${JSON.stringify(input)}`,
      );
    return ms;
  });
}
