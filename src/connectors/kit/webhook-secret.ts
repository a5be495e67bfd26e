/**
 * Webhook verification by a secret carried in the delivery URL (for vendors that sign nothing):
 * compared in constant time over digests, so neither the secret's content nor its length leaks.
 */
import { createHash, timingSafeEqual } from "node:crypto";

export function secretMatches(given: string | undefined, secret: string): boolean {
  if (!given || secret === "") return false;
  return timingSafeEqual(digest(given), digestOfSecret(secret));
}

const digest = (value: string): Buffer => createHash("sha256").update(value).digest();

/** Each configured secret's digest, made once rather than once per delivery (a few secrets). */
const secretDigests = new Map<string, Buffer>();
function digestOfSecret(secret: string): Buffer {
  let known = secretDigests.get(secret);
  if (known === undefined) {
    if (secretDigests.size >= 64) secretDigests.clear();
    known = digest(secret);
    secretDigests.set(secret, known);
  }
  return known;
}
