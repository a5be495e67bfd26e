/** Prefixed random ids (`con_…`, `run_…`) for rows the store creates; deterministic ids come from their owners. */
import { randomBytes } from "node:crypto";

const CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz";

export type IdPrefix = "con" | "run" | "plan" | "rev" | "whk" | "era" | "sgn";

/**
 * `prefix_` + 10 characters of millisecond time + 16 random characters (Crockford base32, lowercase):
 * ids sort roughly by creation time, which keeps listings and index pages in insertion order.
 */
export function newId(prefix: IdPrefix, now: Date = new Date()): string {
  let time = now.getTime();
  let head = "";
  for (let i = 0; i < 10; i += 1) {
    head = CROCKFORD.charAt(time % 32) + head;
    time = Math.floor(time / 32);
  }
  const random = randomBytes(16);
  let tail = "";
  for (const byte of random) tail += CROCKFORD.charAt(byte % 32);
  return `${prefix}_${head}${tail}`;
}
