/**
 * Ledger seals: each row's hash MACed (HMAC-SHA256) under a key derived from CONCORD_SECRET_KEY,
 * which lives outside the database. The hash chain alone shows accidental damage, but someone who
 * can write to the database can recompute it after an edit; without the key they cannot reseal.
 */
import { createHmac, hkdfSync, timingSafeEqual } from "node:crypto";
import type { LedgerSealer } from "../store/ports";

const INFO = "concord.ledger-seal.v1";

/** `secretKey`: CONCORD_SECRET_KEY as parsed (its 32 bytes and its public id). */
export function ledgerSealer(secretKey: { bytes: Uint8Array; id: string }): LedgerSealer {
  const key = Buffer.from(hkdfSync("sha256", secretKey.bytes, Buffer.alloc(0), INFO, 32));
  return {
    key_id: secretKey.id,
    seal: (hash) => `${secretKey.id}:${createHmac("sha256", key).update(hash, "utf8").digest("hex")}`,
  };
}

export type SealCheck = "ok" | "unsealed" | "other_key" | "forged";

/** Whether `seal` is this key's seal of `hash`. */
export function checkSeal(sealer: LedgerSealer, hash: string, seal: string | null): SealCheck {
  if (seal === null) return "unsealed";
  if (!seal.startsWith(`${sealer.key_id}:`)) return "other_key";
  const expected = Buffer.from(sealer.seal(hash), "utf8");
  const found = Buffer.from(seal, "utf8");
  return expected.length === found.length && timingSafeEqual(expected, found) ? "ok" : "forged";
}
