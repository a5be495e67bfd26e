/** Prefixed random ids (`con_…`, `run_…`) for rows the store creates; deterministic ids come from their owners. */
import { randomFillSync } from "node:crypto";

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
  const random = randomChunk();
  let tail = "";
  for (let i = 0; i < RANDOM_BYTES; i += 1) tail += CROCKFORD.charAt((random[i] ?? 0) % 32);
  return `${prefix}_${head}${tail}`;
}

const RANDOM_BYTES = 16;
/** Random bytes drawn from the system 4 KiB at a time, each id taking its own 16 (never reused). */
const pool = Buffer.alloc(4096);
let offset = pool.length;

function randomChunk(): Buffer {
  if (offset + RANDOM_BYTES > pool.length) {
    randomFillSync(pool);
    offset = 0;
  }
  const chunk = pool.subarray(offset, offset + RANDOM_BYTES);
  offset += RANDOM_BYTES;
  return chunk;
}
