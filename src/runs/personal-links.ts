/**
 * Signed personal links (DESIGN.md §5): per person and purpose, an opaque token signed with
 * HMAC-SHA256 under a key derived from CONCORD_SECRET_KEY, expiring (`server.link_ttl`) and
 * revocable (a contact's link generation moves on). The one-click URL answers RFC 8058: a POST with
 * `List-Unsubscribe=One-Click` records the person's opt-out from all email, durably, before it answers.
 */
import { createHash, createHmac, hkdfSync, timingSafeEqual } from "node:crypto";
import type { ConcordConfig } from "../config/concord-config";
import { parseSecretKey, type SecretKey } from "../config/secret-box";
import { decisionFor, foldChannelConsent } from "../core/consent/consent-state";
import type { Evidence, Mechanism, OptOutEvent, Scope } from "../core/consent/consent-event";
import { normaliseEmail } from "../core/identity/normalise-email";
import { err, ok, type Result } from "../core/result";
import { appendConsentEvents, eventsForContact, type ConsentEventInput } from "../ledger/consent-ledger";
import type { StoreSession } from "../store/ports";

export type LinkPurpose = "unsubscribe" | "preferences";

/** What signs and where links point: the key (never the secret key itself) and the public URL. */
export type LinkSigner = { key: Buffer; public_url: string; ttl_ms: number };

export type PersonalLinks = {
  contact_id: string;
  one_click_url: string;
  /** The person's preference centre: all email and every topic, each with its state and a choice. */
  preferences_url: string;
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
const PURPOSES: Record<LinkPurpose, string> = { unsubscribe: "u", preferences: "p" };
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
  const purposeOf = (Object.keys(PURPOSES) as LinkPurpose[]).find((p) => PURPOSES[p] === purpose);
  if (
    parts.length !== 5 ||
    version !== "v1" ||
    purposeOf === undefined ||
    contactId === undefined ||
    contactId === ""
  )
    return err("malformed");
  const expires = Number(minute) * 60_000;
  if (!Number.isFinite(expires) || !Number.isInteger(Number(generation))) return err("malformed");
  if (expires <= now.getTime()) return err("expired");
  return ok({
    contact_id: contactId,
    purpose: purposeOf,
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
  const generation = await generationOf(store, contactId);
  const token = (purpose: LinkPurpose) =>
    issueToken(signer, { contact_id: contactId, purpose, generation, expires_at });
  const one_click_url = `${signer.public_url}/l/u/${token("unsubscribe")}`;
  return {
    contact_id: contactId,
    one_click_url,
    preferences_url: `${signer.public_url}/l/p/${token("preferences")}`,
    list_unsubscribe: `<${one_click_url}>`,
    list_unsubscribe_post: "List-Unsubscribe=One-Click",
    expires_at,
  };
}

/** Links written into platform fields are re-issued at most this often (their expiry steps by it). */
export const FIELD_LINK_WINDOW_MS = 30 * 86_400_000;

/**
 * A person's links as a platform field holds them: the same for every run within a 30-day window
 * (the expiry is the window's end plus `server.link_ttl`, so a campaign sent on the window's last
 * day carries a link that works `link_ttl` after it), so a field is rewritten once a window, or
 * when the person's links are revoked, never on every sync.
 */
export function fieldLinks(
  signer: LinkSigner,
  contactId: string,
  generation: number,
  now: Date,
): { one_click_url: string; preferences_url: string } {
  const windowStart = Math.floor(now.getTime() / FIELD_LINK_WINDOW_MS) * FIELD_LINK_WINDOW_MS;
  const expires_at = new Date(windowStart + FIELD_LINK_WINDOW_MS + signer.ttl_ms).toISOString();
  const token = (purpose: LinkPurpose) =>
    issueToken(signer, { contact_id: contactId, purpose, generation, expires_at });
  return {
    one_click_url: `${signer.public_url}/l/u/${token("unsubscribe")}`,
    preferences_url: `${signer.public_url}/l/p/${token("preferences")}`,
  };
}

/** Every contact's link generation that moved on from 0 (revoked links), for planning many contacts. */
export async function linkGenerations(store: StoreSession): Promise<Map<string, number>> {
  const rows = await store.db.selectFrom("link_generations").select(["contact_id", "generation"]).execute();
  return new Map(rows.map((r) => [r.contact_id, r.generation]));
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
  purpose: LinkPurpose = "unsubscribe",
): Promise<Result<TokenClaims, TokenProblem>> {
  const claims = readToken(signer, token, now);
  if (!claims.ok) return claims;
  // A link made for one page does not open another.
  if (claims.value.purpose !== purpose) return err("forged");
  if (claims.value.generation < (await generationOf(store, claims.value.contact_id))) return err("revoked");
  const contact = await store.contacts.get(claims.value.contact_id);
  if (contact === undefined || contact.erased_at !== null) return err("unknown_person");
  return claims;
}

/** `erased`: the person was erased since the link was checked; nothing was recorded. */
export type OneClickResult = { recorded: "appended" | "already_opted_out" | "erased"; event_id?: string };

/**
 * The person's one-click opt-out from all email, recorded in the ledger before the caller answers.
 * Idempotent: someone whose own opt-outs already cover all email and every topic gets no second
 * event. A topic they took back since is not covered, even while the organisation has stopped it
 * (an opt-out the account may undo, DESIGN.md §2 rule 4): the click is recorded and covers it. So
 * is a click over an opt-out the organisation made (an admin's, a Do Not Contact flag).
 */
export async function recordOneClick(
  store: StoreSession,
  claims: TokenClaims,
  request: {
    ip?: string;
    user_agent?: string;
    token: string;
    /** Set when the person pressed the button of the page the link opens: the words it showed. */
    page_wording?: string;
  },
  now: Date,
  config: Pick<ConcordConfig, "topics">,
): Promise<OneClickResult> {
  return store.transaction(async (tx) => {
    // Read under the ledger's lock: an opt-in committing at the same moment (the preference page,
    // a confirmed sign-up) is then in what is read, and never lifts a click answered "already".
    await tx.consentEvents.lockHead();
    const events = (await eventsForContact(tx, claims.contact_id)).map((s) => s.event);
    const state = foldChannelConsent(events, "email", {
      as_of: now.toISOString(),
      topics: config.topics.map((t) => t.key),
    });
    if (
      state.global.open_opt_outs.some(isOwn) &&
      Object.values(state.topics).every((d) => d.open_opt_outs.some(isOwn))
    )
      return { recorded: "already_opted_out" as const };
    const draft: Omit<OptOutEvent, "id"> = {
      kind: "opt_out",
      contact_id: claims.contact_id,
      channel: "email",
      scope: { kind: "global" },
      source: { system: "concord", connection: "links" },
      // A mail client's RFC 8058 POST, or the person on the page the footer link opens.
      mechanism: request.page_wording === undefined ? "one_click_header" : "unsubscribe_link",
      actor: { kind: "contact" },
      occurred_at: now.toISOString(),
      observed_at: now.toISOString(),
      evidence: {
        ...clientEvidence(request),
        ...(request.page_wording !== undefined ? { form_wording: request.page_wording } : {}),
        // Which link it was, as a digest of the whole token: its signature kept in the ledger (and
        // in every proof bundle) would let anyone holding one rebuild the link and use it again.
        source_record_id: `link:${createHash("sha256").update(request.token).digest("base64url").slice(0, 27)}`,
      },
    };
    const [result] = await appendConsentEvents(tx, [draft]);
    if (result?.kind === "rejected" && result.code === "contact_erased")
      return { recorded: "erased" as const };
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

/** An opt-out the person made, which only their own act lifts (not one the organisation made). */
const isOwn = (o: { initiated_by: "contact" | "account" }): boolean => o.initiated_by === "contact";

/** One line of the preference centre: all email, or a topic, and whether the person receives it now. */
export type PreferenceLine = {
  key: "all" | `topic:${string}`;
  label: string;
  receiving: boolean;
  /**
   * Whether an opt-out of the person's own covers it. A line they do not receive only because the
   * organisation opted them out (or for want of a consent basis) is not one they left.
   */
  left_by_person: boolean;
  /** When they left it (or, when they did not, when the organisation stopped it), while they do not receive it. */
  since?: string;
};

/** The person's preferences as the consent rules decide them now. */
export async function preferencesOf(
  store: StoreSession,
  config: Pick<ConcordConfig, "topics">,
  contactId: string,
  now: Date,
): Promise<PreferenceLine[]> {
  const events = (await eventsForContact(store, contactId)).map((s) => s.event);
  const state = foldChannelConsent(events, "email", {
    as_of: now.toISOString(),
    topics: config.topics.map((t) => t.key),
  });
  const line = (key: PreferenceLine["key"], label: string, scope: Scope): PreferenceLine => {
    const d = decisionFor(state, scope);
    const own = d.open_opt_outs.filter(isOwn);
    const since = d.sendable ? undefined : (own.at(-1) ?? d.open_opt_outs.at(-1))?.occurred_at;
    return {
      key,
      label,
      receiving: d.sendable,
      left_by_person: own.length > 0,
      ...(since !== undefined ? { since } : {}),
    };
  };
  return [
    line("all", "all", { kind: "global" }),
    ...config.topics.map((t) => line(`topic:${t.key}`, t.label, { kind: "topic", topic: t.key })),
  ];
}

/** The person's client as evidence: their address and browser, cut to the ledger's limits. */
export function clientEvidence(request: {
  ip?: string;
  user_agent?: string;
}): Pick<Evidence, "ip" | "user_agent"> {
  return {
    ...(request.ip !== undefined ? { ip: request.ip.slice(0, 64) } : {}),
    ...(request.user_agent !== undefined ? { user_agent: request.user_agent.slice(0, 512) } : {}),
  };
}

/** Who recorded a person's choices and with what evidence (the preference page, a confirmed sign-up). */
export type ChoiceAct = {
  source: { system: string; connection: string };
  mechanism: { opt_in: Mechanism; opt_out: Mechanism };
  evidence: Evidence;
};

/** The preference page's act: the person's own, with their address, browser and the page's words. */
export function preferencePageAct(request: { ip?: string; user_agent?: string; wording: string }): ChoiceAct {
  return {
    source: { system: "concord", connection: "preferences" },
    mechanism: { opt_in: "preference_page", opt_out: "preference_page" },
    evidence: {
      ...clientEvidence(request),
      form_wording: request.wording.slice(0, 4000),
    },
  };
}

/**
 * What a preference submission recorded; `stale` when the page it came from no longer showed the
 * state, `erased` when the person was erased since the page was opened (nothing was recorded).
 */
export type RecordedPreferences = {
  opt_outs: string[];
  opt_ins: string[];
  stale: boolean;
  /** A form of a state that has moved on, whose choices are already recorded as the person's. */
  already?: true;
  erased?: true;
};

/**
 * The person's choices (from the preference centre, a confirmed sign-up), as their own acts: an
 * opt-out where they left unticked something they receive (or that only the organisation
 * stopped), an express opt-in (which lifts their earlier opt-outs) where they ticked something
 * they do not. Leaving all email makes the topics moot. A preference form is the person's act only
 * on the state it showed: `shown` (each line as the page showed it, receiving or not) must be the
 * state now, else nothing is recorded and the submission is `stale` (an unsubscribe link, the
 * organisation or another tab changed it meanwhile, and a box left as it was shown is no choice of
 * theirs); unless the choices are already recorded as theirs (the same form sent twice), which is
 * `already`. Once recorded, the state is the form's: a line left unticked that their opt-in would
 * open (ticking all email back, with a topic left unticked) is their opt-out too. Runs in the
 * caller's transaction when given one.
 */
export async function recordPreferences(
  store: StoreSession,
  config: Pick<ConcordConfig, "topics">,
  contactId: string,
  submitted: { choices: ReadonlySet<string>; shown?: ReadonlyMap<string, boolean> },
  act: ChoiceAct,
  now: Date,
): Promise<RecordedPreferences> {
  const { choices, shown } = submitted;
  return store
    .transaction(async (tx) => recordPreferencesIn(tx, config, contactId, choices, shown, act, now))
    .catch((error: unknown) => {
      if (error instanceof ErasedMeanwhile) return { opt_outs: [], opt_ins: [], stale: false, erased: true };
      throw error;
    });
}

/** Thrown to undo a preference form's transaction when its person was erased meanwhile. */
class ErasedMeanwhile extends Error {}

async function recordPreferencesIn(
  tx: StoreSession,
  config: Pick<ConcordConfig, "topics">,
  contactId: string,
  choices: ReadonlySet<string>,
  shown: ReadonlyMap<string, boolean> | undefined,
  act: ChoiceAct,
  now: Date,
): Promise<RecordedPreferences> {
  // The state the form is checked against is read under the ledger's lock: an unsubscribe link
  // clicked at the same moment has committed by then, and the form is stale against it.
  await tx.consentEvents.lockHead();
  const current = await preferencesOf(tx, config, contactId, now);
  const recorded: RecordedPreferences = { opt_outs: [], opt_ins: [], stale: false };
  const stale = shown !== undefined && current.some((line) => shown.get(line.key) !== line.receiving);
  const all = current[0];
  const wantsATopic = current.some((line) => line.key !== "all" && choices.has(line.key));
  // Leaving all email makes the topics moot; someone already out of all email may still take one
  // topic back (a topic opt-in lifts the global opt-out for that topic alone). A line left
  // unticked is the person's own opt-out unless they already made one there: one the organisation
  // made may be undone by it, theirs only by them. Out of all email by the organisation's act
  // only and ticking no topic, they leave all email themselves.
  const leavingAll =
    !choices.has("all") && all !== undefined && !all.left_by_person && (all.receiving || !wantsATopic);
  const drafts: ConsentEventInput[] = [];
  const draft = (line: PreferenceLine, wants: boolean): void => {
    const scope: Scope =
      line.key === "all" ? { kind: "global" } : { kind: "topic", topic: line.key.slice("topic:".length) };
    const common = {
      contact_id: contactId,
      channel: "email" as const,
      scope,
      source: act.source,
      actor: { kind: "contact" as const },
      occurred_at: now.toISOString(),
      observed_at: now.toISOString(),
      evidence: act.evidence,
    };
    drafts.push(
      wants
        ? { ...common, kind: "opt_in" as const, basis: "express" as const, mechanism: act.mechanism.opt_in }
        : { ...common, kind: "opt_out" as const, mechanism: act.mechanism.opt_out },
    );
    (wants ? recorded.opt_ins : recorded.opt_outs).push(line.key);
  };
  for (const line of current) {
    if (line.key !== "all" && leavingAll) continue;
    const wants = choices.has(line.key);
    const records = wants ? !line.receiving : line.key === "all" ? leavingAll : !line.left_by_person;
    if (records) draft(line, wants);
  }
  if (stale)
    // The same form sent again (a double click, a reload) finds its choices recorded, each as the
    // person's own: it is answered as saved. Any other stale form records nothing.
    return drafts.length === 0
      ? { opt_outs: [], opt_ins: [], stale: false, already: true }
      : { opt_outs: [], opt_ins: [], stale: true };
  const append = async (): Promise<void> => {
    if (drafts.length > 0)
      for (const r of await appendConsentEvents(tx, drafts.splice(0)))
        if (r.kind === "rejected" && r.code === "contact_erased") throw new ErasedMeanwhile();
        else if (r.kind === "rejected")
          throw new Error(`a preference was rejected by the ledger: ${r.message}`);
  };
  await append();
  // An opt-in may open a line the form left unticked (all email back, a topic left out of it):
  // that line is the person's opt-out, as the form they saved says.
  if (recorded.opt_ins.length > 0 && !leavingAll) {
    for (const line of await preferencesOf(tx, config, contactId, now))
      if (line.receiving && !choices.has(line.key)) draft(line, false);
    await append();
  }
  return recorded;
}
