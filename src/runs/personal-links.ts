/**
 * Signed personal links (DESIGN.md §5): per person and purpose, an opaque token signed with
 * HMAC-SHA256 under a key derived from CONCORD_SECRET_KEY, expiring (`server.link_ttl`) and
 * revocable (a contact's link generation moves on). The one-click URL answers RFC 8058: a POST with
 * `List-Unsubscribe=One-Click` records the person's opt-out from all email, durably, before it answers.
 */
import { createHmac, hkdfSync, timingSafeEqual } from "node:crypto";
import type { ConcordConfig } from "../config/concord-config";
import { parseSecretKey, type SecretKey } from "../config/secret-box";
import { decisionFor, foldChannelConsent } from "../core/consent/consent-state";
import type { OptOutEvent } from "../core/consent/consent-event";
import { normaliseEmail } from "../core/identity/normalise-email";
import { err, ok, type Result } from "../core/result";
import { appendConsentEvents, eventsForContact } from "../ledger/consent-ledger";
import type { StoreSession } from "../store/ports";

export type LinkPurpose = "unsubscribe";

/** What signs and where links point: the key (never the secret key itself) and the public URL. */
export type LinkSigner = { key: Buffer; public_url: string; ttl_ms: number };

export type PersonalLinks = {
  contact_id: string;
  one_click_url: string;
  /** The `List-Unsubscribe` header value (RFC 2369), the one-click URL in angle brackets. */
  list_unsubscribe: string;
  /** The `List-Unsubscribe-Post` header value (RFC 8058). */
  list_unsubscribe_post: "List-Unsubscribe=One-Click";
  expires_at: string;
};

export type TokenClaims = {
  contact_id: string;
  purpose: LinkPurpose;
  generation: number;
  expires_at: string;
};

export type TokenProblem = "malformed" | "forged" | "expired" | "revoked" | "unknown_person";

const INFO = "concord.personal-links.v1";
const PURPOSES: Record<LinkPurpose, string> = { unsubscribe: "u" };
const b64 = (b: Buffer): string => b.toString("base64url");

/** The signer, or why links cannot be made (no secret key, no public URL). */
export function linkSigner(
  secretKey: SecretKey | string | undefined,
  config: Pick<ConcordConfig, "server">,
): Result<LinkSigner, string> {
  const parsed = typeof secretKey === "object" ? ok(secretKey) : parseSecretKey(secretKey);
  if (!parsed.ok)
    return err(
      `personal links are signed with a key derived from CONCORD_SECRET_KEY: ${parsed.error.message}`,
    );
  const publicUrl = config.server.public_url;
  if (publicUrl === undefined)
    return err(
      "personal links point at server.public_url, which the config does not set: set it to the address people reach this server at (https://…)",
    );
  const key = Buffer.from(hkdfSync("sha256", parsed.value.bytes, Buffer.alloc(0), INFO, 32));
  return ok({ key, public_url: publicUrl.replace(/\/+$/, ""), ttl_ms: config.server.link_ttl });
}

function sign(signer: LinkSigner, body: string): string {
  return b64(createHmac("sha256", signer.key).update(body, "utf8").digest().subarray(0, 20));
}

/** `<body>.<signature>`: body = base64url of `v1|purpose|generation|expiry minute|contact id`. */
export function issueToken(signer: LinkSigner, claims: TokenClaims): string {
  const minute = Math.floor(Date.parse(claims.expires_at) / 60_000);
  const body = b64(
    Buffer.from(`v1|${PURPOSES[claims.purpose]}|${claims.generation}|${minute}|${claims.contact_id}`, "utf8"),
  );
  return `${body}.${sign(signer, body)}`;
}

/** The token's claims if it is well formed, signed by this instance and not expired. */
export function readToken(signer: LinkSigner, token: string, now: Date): Result<TokenClaims, TokenProblem> {
  const m = /^([A-Za-z0-9_-]{8,400})\.([A-Za-z0-9_-]{27})$/.exec(token);
  if (m === null) return err("malformed");
  const [, body = "", signature = ""] = m;
  const expected = Buffer.from(sign(signer, body));
  const given = Buffer.from(signature);
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) return err("forged");
  const parts = Buffer.from(body, "base64url").toString("utf8").split("|");
  const [version, purpose, generation, minute, contactId] = parts;
  if (
    parts.length !== 5 ||
    version !== "v1" ||
    purpose !== "u" ||
    contactId === undefined ||
    contactId === ""
  )
    return err("malformed");
  const expires = Number(minute) * 60_000;
  if (!Number.isFinite(expires) || !Number.isInteger(Number(generation))) return err("malformed");
  if (expires <= now.getTime()) return err("expired");
  return ok({
    contact_id: contactId,
    purpose: "unsubscribe",
    generation: Number(generation),
    expires_at: new Date(expires).toISOString(),
  });
}

async function generationOf(store: StoreSession, contactId: string): Promise<number> {
  const row = await store.db
    .selectFrom("link_generations")
    .select("generation")
    .where("contact_id", "=", contactId)
    .executeTakeFirst();
  return row?.generation ?? 0;
}

/** A person's links now (a contact that exists and was not erased). */
export async function personalLinks(
  store: StoreSession,
  signer: LinkSigner,
  contactId: string,
  now: Date,
): Promise<PersonalLinks | undefined> {
  const contact = await store.contacts.get(contactId);
  if (contact === undefined || contact.erased_at !== null) return undefined;
  const expires_at = new Date(now.getTime() + signer.ttl_ms).toISOString();
  const token = issueToken(signer, {
    contact_id: contactId,
    purpose: "unsubscribe",
    generation: await generationOf(store, contactId),
    expires_at,
  });
  const one_click_url = `${signer.public_url}/l/u/${token}`;
  return {
    contact_id: contactId,
    one_click_url,
    list_unsubscribe: `<${one_click_url}>`,
    list_unsubscribe_post: "List-Unsubscribe=One-Click",
    expires_at,
  };
}

/** The contact ids holding an address (for `concord links <email>`). */
export async function contactsByEmail(store: StoreSession, email: string): Promise<string[] | undefined> {
  const n = normaliseEmail(email);
  if (!n.ok) return undefined;
  return (await store.contacts.findByMatchKey(n.match_key)).map((c) => c.id);
}

/** Revokes every link issued so far for the contact (new links work). */
export async function revokeLinks(store: StoreSession, contactId: string, now: Date): Promise<number> {
  const next = (await generationOf(store, contactId)) + 1;
  await store.db
    .insertInto("link_generations")
    .values({ contact_id: contactId, generation: next, revoked_at: now.toISOString() })
    .onConflict((oc) =>
      oc.column("contact_id").doUpdateSet({ generation: next, revoked_at: now.toISOString() }),
    )
    .execute();
  return next;
}

/** The claims of a token a person presents, checked against revocation and erasure too. */
export async function checkLink(
  store: StoreSession,
  signer: LinkSigner,
  token: string,
  now: Date,
): Promise<Result<TokenClaims, TokenProblem>> {
  const claims = readToken(signer, token, now);
  if (!claims.ok) return claims;
  if (claims.value.generation < (await generationOf(store, claims.value.contact_id))) return err("revoked");
  const contact = await store.contacts.get(claims.value.contact_id);
  if (contact === undefined || contact.erased_at !== null) return err("unknown_person");
  return claims;
}

export type OneClickResult = { recorded: "appended" | "already_opted_out"; event_id?: string };

/**
 * The person's one-click opt-out from all email, recorded in the ledger before the caller answers.
 * Idempotent: someone already opted out of all email gets no second event.
 */
export async function recordOneClick(
  store: StoreSession,
  claims: TokenClaims,
  request: { ip?: string; user_agent?: string; token: string },
  now: Date,
): Promise<OneClickResult> {
  return store.transaction(async (tx) => {
    const events = (await eventsForContact(tx, claims.contact_id)).map((s) => s.event);
    const global = decisionFor(foldChannelConsent(events, "email", { as_of: now.toISOString() }), {
      kind: "global",
    });
    if (global.open_opt_outs.length > 0) return { recorded: "already_opted_out" as const };
    const draft: Omit<OptOutEvent, "id"> = {
      kind: "opt_out",
      contact_id: claims.contact_id,
      channel: "email",
      scope: { kind: "global" },
      source: { system: "concord", connection: "links" },
      mechanism: "one_click_header",
      actor: { kind: "contact" },
      occurred_at: now.toISOString(),
      observed_at: now.toISOString(),
      evidence: {
        ...(request.ip !== undefined ? { ip: request.ip.slice(0, 64) } : {}),
        ...(request.user_agent !== undefined ? { user_agent: request.user_agent.slice(0, 512) } : {}),
        source_record_id: `link:${request.token.slice(-27)}`,
      },
    };
    const [result] = await appendConsentEvents(tx, [draft]);
    if (result === undefined || result.kind === "rejected")
      throw new Error(
        `the one-click opt-out was rejected by the ledger${result?.kind === "rejected" ? `: ${result.message}` : ""}`,
      );
    return {
      recorded: "appended" as const,
      event_id: (result.kind === "appended" ? result.event : result.existing).event.id,
    };
  });
}
