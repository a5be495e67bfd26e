import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { resolveSecretRef } from "./resolve-secret-ref";
import {
  isSealedSecret,
  openSecret,
  parseSecretKey,
  sealSecret,
  secretKeyFromBytes,
  secretKeyId,
  type SecretKey,
} from "./secret-box";

const key = secretKeyFromBytes(Buffer.alloc(32, 7));
const otherKey = secretKeyFromBytes(Buffer.alloc(32, 8));
const seal = (plain: string, k: SecretKey = key, context = ""): string => {
  const sealed = sealSecret(plain, k, context);
  if (!sealed.ok) throw new Error(sealed.error.message);
  return sealed.value;
};
/** Flips one bit of the payload's byte at `index` (negative: from the end). */
const flip = (sealed: string, index: number): string => {
  const [p, v, id, data] = sealed.split(":") as [string, string, string, string];
  const bytes = Buffer.from(data, "base64url");
  const i = index < 0 ? bytes.length + index : index;
  bytes[i] = bytes[i]! ^ 1;
  return [p, v, id, bytes.toString("base64url")].join(":");
};

describe("sealSecret / openSecret", () => {
  it.each(["", "x", "refresh-token-åéî-🔑", "a".repeat(10_000)])("round-trips %j", (plain) => {
    const sealed = seal(plain);
    expect(sealed).toMatch(new RegExp(`^concord:v1:${key.id}:[A-Za-z0-9_-]+$`));
    // Short plaintexts can occur in base64 by chance; long ones must not.
    if (plain.length > 8) expect(sealed).not.toContain(plain.slice(0, 16));
    expect(openSecret(sealed, key)).toEqual({ ok: true, value: plain });
  });

  it("uses a fresh IV every time", () => {
    expect(seal("same")).not.toBe(seal("same"));
  });

  it("names the key by the first 8 hex digits of its sha256", () => {
    expect(key.id).toMatch(/^[0-9a-f]{8}$/);
    expect(key.id).toBe(secretKeyId(Buffer.alloc(32, 7)));
    expect(key.id).not.toBe(otherKey.id);
  });

  it.each<[string, (s: string) => string, string]>([
    ["a flipped IV bit", (s) => flip(s, 0), "secret_tampered"],
    ["a flipped ciphertext bit", (s) => flip(s, 13), "secret_tampered"],
    ["a flipped tag bit", (s) => flip(s, -1), "secret_tampered"],
    ["a truncated payload", (s) => s.slice(0, s.lastIndexOf(":") + 10), "secret_tampered"],
    [
      "another key id in the header",
      (s) => s.replace(`:${key.id}:`, `:${otherKey.id}:`),
      "secret_key_mismatch",
    ],
    ["a future version", (s) => s.replace(":v1:", ":v2:"), "secret_malformed"],
    ["no envelope at all", () => "plain-text-token", "secret_malformed"],
  ])("rejects %s", (_name, change, code) => {
    const result = openSecret(change(seal("hello", key, "ctx")), key, "ctx");
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.error.code).toBe(code);
  });

  it("refuses the wrong key with secret_key_mismatch, naming both key ids", () => {
    const result = openSecret(seal("hello"), otherKey);
    expect(result).toMatchObject({ ok: false, error: { code: "secret_key_mismatch" } });
    if (!result.ok)
      expect(result.error.message).toContain(
        `sealed with key ${key.id}, but CONCORD_SECRET_KEY is key ${otherKey.id}`,
      );
  });

  it("binds the context: an envelope moved to another name does not open", () => {
    const sealed = seal("hello", key, "cc-main.refresh-token");
    expect(openSecret(sealed, key, "cc-main.refresh-token")).toEqual({ ok: true, value: "hello" });
    expect(openSecret(sealed, key, "cc-appeals.refresh-token")).toMatchObject({
      ok: false,
      error: { code: "secret_tampered" },
    });
  });

  it("needs a key", () => {
    expect(sealSecret("x", undefined)).toMatchObject({ ok: false, error: { code: "secret_key_missing" } });
    expect(openSecret(seal("x"), undefined)).toMatchObject({
      ok: false,
      error: { code: "secret_key_missing" },
    });
  });

  it("recognises envelopes", () => {
    expect(isSealedSecret(seal("x"))).toBe(true);
    expect(isSealedSecret("concord is great")).toBe(false);
  });
});

describe("parseSecretKey", () => {
  const good = randomBytes(32);
  it.each([
    ["base64", good.toString("base64")],
    ["base64url", good.toString("base64url")],
    ["base64 with spaces around", ` ${good.toString("base64")}\n`],
  ])("accepts %s", (_name, text) => {
    const parsed = parseSecretKey(text);
    expect(parsed.ok && parsed.value.bytes.equals(good)).toBe(true);
  });

  it.each<[string, string | undefined, string]>([
    ["unset", undefined, "secret_key_missing"],
    ["empty", "", "secret_key_missing"],
    ["16 bytes", randomBytes(16).toString("base64"), "secret_key_invalid"],
    ["hex", randomBytes(32).toString("hex"), "secret_key_invalid"],
    ["a passphrase", "correct horse battery staple", "secret_key_invalid"],
  ])("rejects %s with the command that makes a good one", (_name, text, code) => {
    const parsed = parseSecretKey(text);
    expect(parsed).toMatchObject({ ok: false, error: { code } });
    if (!parsed.ok) {
      expect(parsed.error.message).toContain(
        `node -e "console.log(require('crypto').randomBytes(32).toString('base64'))"`,
      );
      if (text !== undefined && text !== "") expect(parsed.error.message).not.toContain(text);
    }
  });
});

describe("resolveSecretRef", () => {
  const stored = new Map([["cc-main.refresh-token", seal("rt-123", key, "cc-main.refresh-token")]]);
  const sources = {
    env: { CC_SECRET: "cs-456", EMPTY: "" },
    stored: (name: string) => stored.get(name),
    key,
  };

  it.each<[string, Parameters<typeof resolveSecretRef>[0], unknown]>([
    ["a plain value", { kind: "plain", value: "client-id" }, { ok: true, value: "client-id" }],
    ["an env reference", { kind: "env", name: "CC_SECRET" }, { ok: true, value: "cs-456" }],
    [
      "an unset env reference",
      { kind: "env", name: "NOPE" },
      { ok: false, error: { code: "secret_env_missing" } },
    ],
    [
      "an empty env reference",
      { kind: "env", name: "EMPTY" },
      { ok: false, error: { code: "secret_env_missing" } },
    ],
    ["a stored reference", { kind: "stored", name: "cc-main.refresh-token" }, { ok: true, value: "rt-123" }],
    [
      "a missing stored reference",
      { kind: "stored", name: "nope" },
      { ok: false, error: { code: "secret_stored_missing" } },
    ],
  ])("resolves %s", async (_name, ref, expected) => {
    expect(await resolveSecretRef(ref, sources)).toMatchObject(expected as object);
  });

  it("needs the key for stored references, and the right one", async () => {
    const ref = { kind: "stored", name: "cc-main.refresh-token" } as const;
    expect(await resolveSecretRef(ref, { ...sources, key: undefined })).toMatchObject({
      ok: false,
      error: { code: "secret_key_missing" },
    });
    expect(await resolveSecretRef(ref, { ...sources, key: otherKey })).toMatchObject({
      ok: false,
      error: { code: "secret_key_mismatch" },
    });
  });

  it("accepts an async store lookup", async () => {
    const result = await resolveSecretRef(
      { kind: "stored", name: "cc-main.refresh-token" },
      { key, stored: (name) => Promise.resolve(stored.get(name)) },
    );
    expect(result).toEqual({ ok: true, value: "rt-123" });
  });
});
