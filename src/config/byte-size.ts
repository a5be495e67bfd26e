/** Sizes in the config file (`512kb`, `1mb`, or a number of bytes), parsed to bytes; units are powers of 1024. */
import { z } from "zod";

const UNIT_BYTES = { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 } as const;
const SIZE_RE = /^(\d+)\s*(b|kb|mb|gb)?$/i;

/** Bytes for a size string or a whole number of bytes, or undefined when it is neither. */
export function parseByteSize(input: string | number): number | undefined {
  if (typeof input === "number") return Number.isInteger(input) && input >= 0 ? input : undefined;
  const match = SIZE_RE.exec(input.trim());
  if (match === null) return undefined;
  const unit = (match[2]?.toLowerCase() ?? "b") as keyof typeof UNIT_BYTES;
  return Number(match[1]) * UNIT_BYTES[unit];
}

export function byteSizeSchema(bounds: { min: number; max: number }) {
  return z.unknown().transform((input, ctx): number => {
    const bytes = typeof input === "string" || typeof input === "number" ? parseByteSize(input) : undefined;
    if (bytes === undefined || bytes < bounds.min || bytes > bounds.max) {
      ctx.addIssue({
        code: "custom",
        input,
        message: `expected a size between ${bounds.min} bytes and ${bounds.max / 1024 ** 2}mb such as 512kb or 1mb, found ${JSON.stringify(input) ?? "nothing"}`,
      });
      return z.NEVER;
    }
    return bytes;
  });
}
