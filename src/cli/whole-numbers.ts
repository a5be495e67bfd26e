/**
 * Whole numbers given on the command line: decimal digits only. `Number()` alone would take
 * `0x50` for 80, `1e3` for 1000 and an empty value for 0 (a random port), so a typo would start
 * Concord on a port nobody asked for.
 */
import { InvalidArgumentError } from "commander";

const DECIMAL = /^[0-9]{1,15}$/;

/** `value` as a whole number from `min` to `max`; `separators` lets `10_000` and `10,000` through. */
export function parseWholeNumber(
  value: string,
  opts: { min: number; max: number; what: string; separators?: boolean },
): number {
  const digits = opts.separators ? value.replace(/(?<=[0-9])[_,](?=[0-9])/g, "") : value;
  const n = DECIMAL.test(digits) ? Number(digits) : Number.NaN;
  if (!Number.isInteger(n) || n < opts.min || n > opts.max)
    throw new InvalidArgumentError(
      `expected ${opts.what} from ${opts.min} to ${opts.max} in decimal digits, got "${value}"`,
    );
  return n;
}

export const parsePort = (value: string): number =>
  parseWholeNumber(value, { min: 0, max: 65_535, what: "a port number" });
