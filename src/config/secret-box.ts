/**
 * Secrets at rest: AES-256-GCM envelopes `concord:v1:<key id>:<base64url(iv ‖ ciphertext ‖ tag)>`,
 * where the key id (first 8 hex digits of sha256 of the key) tells a wrong key from a tampered value.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";
import { err, ok, type Result } from "../core/result";

export type SecretKey = { readonly bytes: Buffer; readonly id: string };

export type SecretErrorCode =
  | "secret_key_missing" // a stored secret is used and CONCORD_SECRET_KEY is not set
  | "secret_key_invalid" // CONCORD_SECRET_KEY is not base64 of 32 bytes
  | "secret_key_mismatch" // sealed with another key
  | "secret_tampered" // the envelope or its ciphertext was changed
  | "secret_malformed" // not an envelope of a version this code reads
  | "secret_env_missing" // an { env } reference names an unset variable
  | "secret_stored_missing"; // a { stored } reference names nothing in the store
export type SecretError = { code: SecretErrorCode; message: string };

export const GENERATE_SECRET_KEY_COMMAND = `node -e "console.log(require('crypto').randomBytes(32).toString('base64'))"`;

const VERSION = "v1";
const PREFIX = `concord:${VERSION}:`;
const IV_BYTES = 12;
const TAG_BYTES = 16;

const missingKey = (): SecretError => ({
  code: "secret_key_missing",
  message: `CONCORD_SECRET_KEY is not set, and stored secrets need it. Generate one with: ${GENERATE_SECRET_KEY_COMMAND} and keep it safe: stored secrets cannot be read without it`,
});

/** The key's id: the first 8 hex digits of its sha256; safe to show and to store. */
export const secretKeyId = (bytes: Uint8Array): string =>
  createHash("sha256").update(bytes).digest("hex").slice(0, 8);

export function secretKeyFromBytes(bytes: Uint8Array): SecretKey {
  if (bytes.length !== 32) throw new Error(`a secret key has 32 bytes, got ${bytes.length}`);
  return { bytes: Buffer.from(bytes), id: secretKeyId(bytes) };
}

/** CONCORD_SECRET_KEY (base64 or base64url of 32 random bytes) as a key. Never echoes the value. */
export function parseSecretKey(base64: string | undefined): Result<SecretKey, SecretError> {
  if (base64 === undefined || base64.trim() === "") return err(missingKey());
  const text = base64.trim();
  const bytes = /^[A-Za-z0-9+/_-]+={0,2}$/.test(text) ? Buffer.from(text, "base64") : Buffer.alloc(0);
  if (bytes.length !== 32)
    return err({
      code: "secret_key_invalid",
      message: `CONCORD_SECRET_KEY must be base64 of exactly 32 random bytes (found ${text.length} characters${bytes.length > 0 ? `, ${bytes.length} bytes` : " that are not base64"}). Generate one with: ${GENERATE_SECRET_KEY_COMMAND}`,
    });
  return ok(secretKeyFromBytes(bytes));
}

/**
 * Encrypts `plain`. `context` (for a stored secret: its name) is authenticated but not stored, so
 * an envelope copied to another name does not open.
 */
export function sealSecret(
  plain: string,
  key: SecretKey | undefined,
  context = "",
): Result<string, SecretError> {
  if (key === undefined) return err(missingKey());
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv("aes-256-gcm", key.bytes, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(Buffer.from(`${PREFIX}${key.id}:${context}`, "utf8"));
  const body = Buffer.concat([cipher.update(plain, "utf8"), cipher.final()]);
  const payload = Buffer.concat([iv, body, cipher.getAuthTag()]).toString("base64url");
  return ok(`${PREFIX}${key.id}:${payload}`);
}

/** Envelopes opened under each key, by context and envelope; a few hundred at most. */
const opened = new WeakMap<SecretKey, Map<string, string>>();
const OPENED_KEPT = 256;

function remember(key: SecretKey, memoKey: string, value: string): void {
  let memo = opened.get(key);
  if (memo === undefined) {
    memo = new Map();
    opened.set(key, memo);
  }
  if (memo.size >= OPENED_KEPT) memo.delete(memo.keys().next().value ?? "");
  memo.set(memoKey, value);
}

/** Decrypts an envelope made by sealSecret with the same key and context. */
export function openSecret(
  sealed: string,
  key: SecretKey | undefined,
  context = "",
): Result<string, SecretError> {
  const parts = sealed.split(":");
  if (parts.length !== 4 || parts[0] !== "concord" || !/^v\d+$/.test(parts[1] ?? ""))
    return err({
      code: "secret_malformed",
      message: "not a Concord secret envelope (expected concord:v1:<key id>:<data>)",
    });
  if (parts[1] !== VERSION)
    return err({
      code: "secret_malformed",
      message: `secret envelope version ${parts[1] ?? ""} is not supported by this version of Concord (expected ${VERSION})`,
    });
  if (key === undefined) return err(missingKey());
  const keyId = parts[2] ?? "";
  if (keyId !== key.id)
    return err({
      code: "secret_key_mismatch",
      message: `this secret was sealed with key ${keyId}, but CONCORD_SECRET_KEY is key ${key.id}: restore the key it was sealed with, or store the secret again`,
    });
  // A connection's credentials are opened for every vendor call: each envelope is decrypted once.
  const memo = opened.get(key);
  const memoKey = `${context}\u0000${sealed}`;
  const known = memo?.get(memoKey);
  if (known !== undefined) return ok(known);
  const payload = Buffer.from(parts[3] ?? "", "base64url");
  if (payload.length < IV_BYTES + TAG_BYTES)
    return err({ code: "secret_tampered", message: "the sealed secret is truncated or was altered" });
  const iv = payload.subarray(0, IV_BYTES);
  const tag = payload.subarray(payload.length - TAG_BYTES);
  const body = payload.subarray(IV_BYTES, payload.length - TAG_BYTES);
  try {
    const decipher = createDecipheriv("aes-256-gcm", key.bytes, iv, { authTagLength: TAG_BYTES });
    decipher.setAAD(Buffer.from(`${PREFIX}${keyId}:${context}`, "utf8"));
    decipher.setAuthTag(tag);
    const value = Buffer.concat([decipher.update(body), decipher.final()]).toString("utf8");
    remember(key, memoKey, value);
    return ok(value);
  } catch {
    // GCM authentication failure is the only way final() throws here: the data or context changed.
    return err({
      code: "secret_tampered",
      message: "the sealed secret failed its integrity check: it was altered, or belongs to another name",
    });
  }
}

/** Whether a string is a sealed envelope (of any version), e.g. to refuse storing one twice. */
export const isSealedSecret = (value: string): boolean => /^concord:v\d+:[0-9a-f]{8}:/.test(value);
