/**
 * Webhook verification by a secret carried in the delivery URL (for vendors that sign nothing):
 * compared in constant time over digests, so neither the secret's content nor its length leaks.
 */
import { createHash, timingSafeEqual } from "node:crypto";

export function secretMatches(given: string | undefined, secret: string): boolean {
  if (!given || secret === "") return false;
  const a = createHash("sha256").update(given).digest();
  const b = createHash("sha256").update(secret).digest();
  return timingSafeEqual(a, b);
}
