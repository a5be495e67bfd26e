/**
 * The sign-up form's double opt-in (seed 003's first lawful way back after an unsubscribe): a
 * request stores the address with a hashed one-time token and emails the person a confirmation
 * link; only the confirmation, the person's own act, records consent — an express opt-in to all
 * email (which lifts their earlier opt-outs, DESIGN.md §2 rule 3) and their topic choices, with the
 * form's wording, their address and browser as evidence. A confirmed person new to the organisation
 * is then added to the sign-up platform (`signup.connection`, in `signup.lists`); every other
 * system learns of them from the pair's sync.
 *
 * Nothing here tells a visitor whether an address is known: every accepted request gets the same
 * answer, and an address asked for too often gets no more email.
 */
import { createHash, randomBytes } from "node:crypto";
import type { ConnectionOptions as TlsConnectionOptions } from "node:tls";
import { z } from "zod";
import type { ConcordConfig, ListRef, Signup } from "../config/concord-config";
import type { SecretSources } from "../config/resolve-secret-ref";
import type { OpenedConnection } from "../connections/open-connection";
import type { ConnectorErrorCode, OperationOutcome } from "../connectors/connector";
import { clientGroup } from "../core/client-group";
import { decisionFor, foldChannelConsent } from "../core/consent/consent-state";
import { normaliseEmail } from "../core/identity/normalise-email";
import { err, ok, type Result } from "../core/result";
import { appendConsentEvents, eventsForContact } from "../ledger/consent-ledger";
import { openSmtpTransport, smtpFailure } from "../notifications/smtp-transport";
import type { Logger } from "../observability/logger";
import { constructMatches } from "../pipeline/resolve-observed-scope";
import { addressHash, suppressionSalt } from "../pipeline/suppression-hash";
import { lockForTransaction } from "../store/advisory-lock";
import { newId } from "../store/new-id";
import type { StoreSession } from "../store/ports";
import type { SignupsTable } from "../store/schema";
import { clientEvidence, preferencesOf, recordPreferences, type PreferenceLine } from "./personal-links";
import { errorMessage } from "../core/error-code";

export type SignupDeps = {
  store: StoreSession;
  config: Pick<ConcordConfig, "signup" | "topics" | "server">;
  now: () => Date;
  logger: Logger;
  /** Where `signup.smtp.password` resolves. */
  secrets: SecretSources;
  /** TLS options over the defaults for the SMTP connection (a private CA). */
  smtpTls?: TlsConnectionOptions;
};

export type SignupLang = "en" | "fr";

export type SignupRequest = {
  email: string;
  first_name?: string;
  last_name?: string;
  /** Topic keys the person ticked (of those the form offers). */
  topics: readonly string[];
  lang: SignupLang;
  /** What the form said, as the person saw it. */
  wording: string;
  ip?: string;
  user_agent?: string;
  /** The form's hidden field people never fill in; a value means a robot sent it. */
  trap?: string;
};

export type SignupProblem =
  | { code: "signup_off"; message: string }
  | { code: "invalid_request"; field: string; message: string }
  | { code: "too_many_requests"; message: string }
  | { code: "email_unavailable"; message: string };

/** The same answer whatever the address: the email went, or (asked too often, a robot) did not. */
export type SignupAccepted = { status: "confirmation_sent"; expires_at: string };

/** Emails to one address a day; more requests are answered alike and send nothing. */
const EMAILS_PER_ADDRESS_DAILY = 3;
/** A repeated request for the same address within this sends no second email. */
const RESEND_AFTER_MS = 10 * 60_000;
const NAME_MAX = 100;

const sha256 = (text: string): string => createHash("sha256").update(text, "utf8").digest("hex");

/** The topics the form offers: `signup.topics`, else every topic, as keys and labels. */
export function offeredTopics(
  config: Pick<ConcordConfig, "signup" | "topics">,
): { key: string; label: string }[] {
  const keys = config.signup?.topics;
  return config.topics
    .filter((t) => keys === undefined || keys.includes(t.key))
    .map((t) => ({ key: t.key, label: t.label }));
}

const TEXT: Record<
  SignupLang,
  { subject: string; body: (org: string, url: string, until: string) => string }
> = {
  en: {
    subject: "Confirm your subscription",
    body: (org, url, until) =>
      `Someone, we hope you, asked to receive email from ${org} at this address.\n\n` +
      `To confirm, open this link and press Confirm:\n${url}\n\n` +
      `The link works until ${until}. If you did not ask, ignore this email: nothing happens and you will not hear from us.\n`,
  },
  fr: {
    subject: "Confirmez votre abonnement",
    body: (org, url, until) =>
      `Quelqu'un, vous nous l'espérons, a demandé à recevoir les courriels de ${org} à cette adresse.\n\n` +
      `Pour confirmer, ouvrez ce lien et appuyez sur Confirmer :\n${url}\n\n` +
      `Le lien fonctionne jusqu'au ${until}. Si vous n'avez rien demandé, ignorez ce courriel : rien ne se passe et vous n'aurez pas de nouvelles de nous.\n`,
  },
};

/**
 * Takes a sign-up request: checks it, stores it with a hashed token and emails the confirmation
 * link. Records no consent: that waits for the confirmation.
 */
export async function requestSignup(
  deps: SignupDeps,
  request: SignupRequest,
): Promise<Result<SignupAccepted, SignupProblem>> {
  const signup = deps.config.signup;
  const publicUrl = deps.config.server.public_url;
  if (signup === undefined || publicUrl === undefined)
    return err({
      code: "signup_off",
      message: "Signing up is not available here (the config sets no signup section).",
    });
  const now = deps.now();
  const expires_at = new Date(now.getTime() + signup.confirm_within).toISOString();
  const accepted = ok<SignupAccepted>({ status: "confirmation_sent", expires_at });

  const email = normaliseEmail(request.email);
  if (!email.ok)
    return err({
      code: "invalid_request",
      field: "email",
      message: `email: this is not an email address (${email.reason.replaceAll("_", " ")}); expected an address such as name@example.org.`,
    });
  const offered = new Set(offeredTopics(deps.config).map((t) => t.key));
  const unknown = request.topics.find((t) => !offered.has(t));
  if (unknown !== undefined)
    return err({
      code: "invalid_request",
      field: "topics",
      message: `topics: "${unknown.slice(0, 64)}" is not offered here; expected some of: ${[...offered].join(", ") || "none"}.`,
    });
  for (const [field, value] of [
    ["first_name", request.first_name],
    ["last_name", request.last_name],
  ] as const)
    if (value !== undefined && value.length > NAME_MAX)
      return err({
        code: "invalid_request",
        field,
        message: `${field}: at most ${NAME_MAX} characters, found ${value.length}.`,
      });
  if ((request.trap ?? "") !== "") return accepted;

  const hourAgo = new Date(now.getTime() - 3_600_000).toISOString();
  const dayAgo = new Date(now.getTime() - 86_400_000).toISOString();
  const client = request.ip !== undefined ? clientGroup(request.ip) : undefined;
  const token = randomBytes(32).toString("base64url");
  const row: SignupsTable = {
    id: newId("sgn", now),
    token_hash: sha256(token),
    email: email.address,
    match_key: email.match_key,
    first_name: blankToNull(request.first_name),
    last_name: blankToNull(request.last_name),
    topics_json: JSON.stringify([...new Set(request.topics)].sort()),
    lang: request.lang,
    wording: request.wording.slice(0, 4000),
    request_ip: request.ip?.slice(0, 64) ?? null,
    request_client: client ?? null,
    request_user_agent: request.user_agent?.slice(0, 512) ?? null,
    requested_at: now.toISOString(),
    expires_at,
    status: "pending",
    confirmed_at: null,
    contact_id: null,
    placed_at: null,
    place_error: null,
    place_attempted_at: null,
  };
  // Counted and kept in one transaction under the address's and the client's locks: requests sent
  // at the same moment would otherwise each count the others out and each send an email.
  const decided = await deps.store.transaction(async (tx) => {
    await lockForTransaction(tx, [
      `signup:address:${email.match_key}`,
      ...(client !== undefined ? [`signup:client:${client}`] : []),
    ]);
    if (client !== undefined) {
      // A client group (an IPv6 client by its /64, which it could otherwise change at will).
      const fromClient = await tx.db
        .selectFrom("signups")
        .select((eb) => eb.fn.countAll<number | string>().as("n"))
        .where("request_client", "=", client)
        .where("requested_at", ">", hourAgo)
        .executeTakeFirstOrThrow();
      if (Number(fromClient.n) >= signup.per_address_hourly) return "too_many" as const;
    }
    const recent = await tx.db
      .selectFrom("signups")
      .select(["requested_at"])
      .where("match_key", "=", email.match_key)
      .where("requested_at", ">", dayAgo)
      .orderBy("requested_at", "desc")
      .execute();
    const last = recent[0];
    if (
      recent.length >= EMAILS_PER_ADDRESS_DAILY ||
      (last !== undefined && now.getTime() - Date.parse(last.requested_at) < RESEND_AFTER_MS)
    ) {
      // No second email so soon; the link already sent now asks for this request's choices (its
      // page shows them before anyone confirms, and a page opened before confirms nothing), and the
      // answer says until when it works. The evidence names this request's time and network.
      const waiting = await tx.db
        .selectFrom("signups")
        .select(["id", "expires_at"])
        .where("match_key", "=", email.match_key)
        .where("status", "=", "pending")
        .where("expires_at", ">", now.toISOString())
        .orderBy("requested_at", "desc")
        .executeTakeFirst();
      if (waiting === undefined && recent.length < EMAILS_PER_ADDRESS_DAILY) {
        // The link sent last was used (confirmed) or is gone: this request (new topics, a change
        // of mind) gets a link of its own, else it would be lost while the answer says it was sent.
        await tx.db.insertInto("signups").values(row).execute();
        return "kept" as const;
      }
      if (waiting !== undefined) {
        const rewritten = await tx.db
          .updateTable("signups")
          .set({
            // The link works for as long as this request's own would: the answer names no time
            // another request set (which would tell a visitor that someone asked for the address).
            expires_at: row.expires_at,
            first_name: row.first_name,
            last_name: row.last_name,
            topics_json: row.topics_json,
            lang: row.lang,
            wording: row.wording,
            request_ip: row.request_ip,
            // Counted against the client that asked last, as a new request would be.
            request_client: row.request_client,
            request_user_agent: row.request_user_agent,
            requested_at: row.requested_at,
          })
          .where("id", "=", waiting.id)
          // Confirmed since it was read (a confirmation holds no address lock): its choices are
          // recorded as confirmed, and this request gets a link of its own.
          .where("status", "=", "pending")
          .executeTakeFirst();
        if (Number(rewritten.numUpdatedRows) === 0 && recent.length < EMAILS_PER_ADDRESS_DAILY) {
          await tx.db.insertInto("signups").values(row).execute();
          return "kept" as const;
        }
      }
      return "quiet" as const;
    }
    await tx.db.insertInto("signups").values(row).execute();
    return "kept" as const;
  });
  if (decided === "too_many")
    return err({
      code: "too_many_requests",
      message: "Too many sign-ups from this network in the last hour; try again later.",
    });
  if (decided === "quiet") return accepted;

  const sent = await sendConfirmation(deps, signup, email.address, token, request.lang, expires_at, now);
  if (!sent.ok) {
    // Nothing was promised: the request goes, with the address it held.
    await deps.store.db.deleteFrom("signups").where("id", "=", row.id).execute();
    deps.logger.error(
      { signup: row.id, err: sent.error },
      "the sign-up confirmation email could not be sent",
    );
    return err({
      code: "email_unavailable",
      message: "The confirmation email could not be sent just now; please try again in a few minutes.",
    });
  }
  return accepted;
}

const blankToNull = (value: string | undefined): string | null => {
  const t = value?.trim() ?? "";
  return t === "" ? null : t;
};

/** The confirmation link's path for a token. */
export const confirmPath = (token: string): string => `/l/c/${token}`;

async function sendConfirmation(
  deps: SignupDeps,
  signup: Signup,
  to: string,
  token: string,
  lang: SignupLang,
  expiresAt: string,
  now: Date,
): Promise<Result<true, string>> {
  const opened = await openSmtpTransport(signup.smtp, {
    secrets: deps.secrets,
    timeoutMs: 10_000,
    where: "signup.smtp",
    ...(deps.smtpTls === undefined ? {} : { tls: deps.smtpTls }),
  });
  if (!opened.ok) return err(opened.error.message);
  const { transport, password } = opened.value;
  const url = `${(deps.config.server.public_url ?? "").replace(/\/+$/, "")}${confirmPath(token)}`;
  const text = TEXT[lang];
  const until = `${expiresAt.slice(0, 16).replace("T", " ")} UTC`;
  try {
    for (let attempt = 1; ; attempt += 1) {
      try {
        await transport.sendMail({
          from: { name: signup.organisation, address: signup.smtp.from },
          to,
          subject: `${text.subject} — ${signup.organisation}`,
          text: text.body(signup.organisation, url, until),
          date: now,
          headers: { "Auto-Submitted": "auto-generated" },
        });
        return ok(true);
      } catch (error) {
        const failure = smtpFailure(error, password);
        if (!failure.transient || attempt >= 2) return err(failure.message);
      }
    }
  } finally {
    transport.close();
  }
}

/**
 * `changed`: the sign-up is not what the confirmation page showed (another request at the address
 * rewrote its names or topics since): nothing is recorded, and the page shows it again.
 */
export type ConfirmProblem = "unknown" | "expired" | "changed";

export type Confirmed = {
  contact_id: string;
  /** `confirmed` now, or `already_confirmed` (the link was used before: nothing recorded again). */
  status: "confirmed" | "already_confirmed";
  /** Whether the address was on the erasure suppression list, lifted by this confirmation. */
  suppression_lifted: boolean;
};

/** What the confirmation page shows of a sign-up: the address, the names typed, the topics ticked. */
export type SignupShown = {
  email: string;
  first_name: string | null;
  last_name: string | null;
  topics: string[];
};

const shownOf = (row: SignupsTable): SignupShown => ({
  email: row.email,
  first_name: row.first_name,
  last_name: row.last_name,
  topics: tickedTopics(row),
});

/**
 * A digest of what a confirmation page showed, which its form carries back: the person confirms
 * what they read, never choices someone else put in the sign-up after the page opened.
 */
export const shownDigest = (shown: SignupShown): string =>
  createHash("sha256")
    .update(JSON.stringify([shown.email, shown.first_name, shown.last_name, [...shown.topics].sort()]))
    .digest("base64url")
    .slice(0, 22);

/** Whether a confirmation token is one this server sent and can still be used (the GET page). */
export async function checkConfirmation(
  store: StoreSession,
  token: string,
  now: Date,
): Promise<Result<{ status: "pending" | "confirmed" } & SignupShown, Exclude<ConfirmProblem, "changed">>> {
  const row = await signupByToken(store, token);
  if (row === undefined) return err("unknown");
  if (row.status === "confirmed")
    return ok({ status: "confirmed", email: "", first_name: null, last_name: null, topics: [] });
  if (row.status !== "pending" || Date.parse(row.expires_at) <= now.getTime()) return err("expired");
  return ok({ status: "pending", ...shownOf(row) });
}

/** The topics the sign-up asked for. */
const tickedTopics = (row: Pick<SignupsTable, "topics_json">): string[] =>
  z.array(z.string()).parse(JSON.parse(row.topics_json));

async function signupByToken(store: StoreSession, token: string): Promise<SignupsTable | undefined> {
  if (!/^[A-Za-z0-9_-]{43}$/.test(token)) return undefined;
  return store.db
    .selectFrom("signups")
    .selectAll()
    .where("token_hash", "=", sha256(token))
    .executeTakeFirst();
}

/**
 * The person confirms: their express opt-in to all email and their topic choices are recorded (one
 * transaction, before the answer), an erasure's suppression of the address is lifted (their new
 * consent), and the sign-up waits to be placed in the sign-up platform. Idempotent.
 *
 * The choices are the ones the confirmation page showed them (`shown`: its words for the sign-up's
 * topics, kept as evidence): whoever filled in the form, the person confirms what they read.
 *
 * The opt-in is the person's who holds the mailbox, and it is given to a contact only when the
 * address is unmistakably theirs: the primary address of the one contact holding it. An address a
 * contact holds only as another address (an old mailbox someone else may have now), or that
 * several contacts share, gets a contact of its own and a review item: someone else's act never
 * lifts a person's own opt-out (DESIGN.md §2 rule 3).
 */
export async function confirmSignup(
  deps: Pick<SignupDeps, "store" | "config" | "now">,
  token: string,
  request: {
    ip?: string;
    user_agent?: string;
    shown: (signup: SignupShown) => string;
    /** `shownDigest` of the page the person confirmed on. */
    shown_digest: string | undefined;
  },
): Promise<Result<Confirmed, ConfirmProblem>> {
  const now = deps.now();
  return deps.store.transaction(async (tx) => {
    const row = await signupByToken(tx, token);
    if (row === undefined) return err("unknown" as const);
    if (row.status === "confirmed" && row.contact_id !== null)
      return ok({
        contact_id: row.contact_id,
        status: "already_confirmed" as const,
        suppression_lifted: false,
      });
    if (row.status !== "pending" || Date.parse(row.expires_at) <= now.getTime())
      return err("expired" as const);
    if (request.shown_digest !== shownDigest(shownOf(row))) return err("changed" as const);
    // The address's match lock, as every read that makes a contact takes it: a read making a
    // contact for this address, or a second link of the address confirmed at the same moment, has
    // committed before this looks for who holds the address, so it makes no second contact.
    await lockForTransaction(tx, [`match:${row.match_key}`]);
    // Claimed first, so a second confirmation at the same moment (a double click) records nothing;
    // and only as read, so a request rewriting it meanwhile makes this one `changed`.
    const claimed = await tx.db
      .updateTable("signups")
      .set({ status: "confirmed", confirmed_at: now.toISOString() })
      .where("id", "=", row.id)
      .where("status", "=", "pending")
      .where("topics_json", "=", row.topics_json)
      .where((eb) =>
        eb.and([
          row.first_name === null ? eb("first_name", "is", null) : eb("first_name", "=", row.first_name),
          row.last_name === null ? eb("last_name", "is", null) : eb("last_name", "=", row.last_name),
        ]),
      )
      .executeTakeFirst();
    if (Number(claimed.numUpdatedRows) === 0) {
      const again = await signupByToken(tx, token);
      if (again?.status === "pending") return err("changed" as const);
      return again?.contact_id !== null && again?.contact_id !== undefined
        ? ok({
            contact_id: again.contact_id,
            status: "already_confirmed" as const,
            suppression_lifted: false,
          })
        : err("unknown" as const);
    }

    const salt = await suppressionSalt(tx, false);
    let lifted = false;
    if (salt !== undefined) {
      const removed = await tx.db
        .deleteFrom("suppressions")
        .where("address_hash", "=", addressHash(salt, row.match_key))
        .executeTakeFirst();
      lifted = Number(removed.numDeletedRows) > 0;
    }
    const holders = (await tx.contacts.findByMatchKey(row.match_key)).filter((c) => c.erased_at === null);
    // A contact made for an earlier sign-up at this address (its review item says so) is the
    // mailbox holder's own: a later sign-up there (new topics, back after leaving) is theirs again,
    // not yet another contact.
    const madeForSignups =
      holders.length > 1
        ? await tx.db
            .selectFrom("review_items")
            .select("contact_id")
            .where("key", "like", "signup:%")
            .where(
              "contact_id",
              "in",
              holders.map((c) => c.id),
            )
            .execute()
        : [];
    const ownIds = new Set(madeForSignups.map((r) => r.contact_id));
    const own = holders.filter((c) => ownIds.has(c.id));
    const [only] = holders;
    const existing =
      own.length === 1
        ? own[0]
        : holders.length === 1 && only?.email_match_key === row.match_key
          ? only
          : undefined;
    const contact =
      existing ??
      (await tx.contacts.create({
        type: "person",
        given_name: row.first_name,
        family_name: row.last_name,
        primary_email: row.email,
        email_match_key: row.match_key,
      }));
    if (existing === undefined) await tx.contacts.addEmail(contact.id, row.email, row.match_key);
    if (existing === undefined && holders.length > 0)
      await tx.reviewItems.open({
        key: `signup:${row.id}`,
        kind: "ambiguous_identity",
        contact_id: contact.id,
        detail: {
          reason: holders.length === 1 ? "signup_at_another_contacts_secondary" : "signup_at_shared_email",
          email: row.email,
          source: "signup",
          signup_id: row.id,
          candidate_contact_ids: holders.map((c) => c.id),
        },
      });

    const ticked = tickedTopics(row);
    const confirmationWording = `Confirmation page: ${request.shown(shownOf(row))}`.slice(0, 2000);
    const evidence = {
      ...clientEvidence(request),
      // What the form said (Concord's own, or what the sending site says its form said), and what
      // Concord's confirmation page showed: the choices the person confirmed. The form's words are
      // cut to fit the ledger's 4,000 characters, never the page's.
      form_wording:
        row.wording === ""
          ? confirmationWording
          : `${row.wording.slice(0, 4000 - confirmationWording.length - 4)} || ${confirmationWording}`,
      reason:
        `Signed up on ${row.requested_at}${row.request_ip !== null ? ` from ${row.request_ip}` : ""}; confirmed from the link emailed to the address.`.slice(
          0,
          1000,
        ),
      source_record_id: `signup:${row.id}`,
    };
    const source = { system: "concord", connection: "signup" };
    // Topics the form did not offer that the person left by an opt-out of their own: the sign-up's
    // opt-in to all email would open them too (a topic stopped only by their opt-out of all
    // email), though the page never showed them.
    const offered = new Set(offeredTopics(deps.config).map((t) => `topic:${t.key}`));
    // Read under the ledger's lock, as the opt-in's write is: an opt-out committed meanwhile is seen.
    await tx.consentEvents.lockHead();
    const closedUnoffered = (await preferencesOf(tx, deps.config, contact.id, now)).filter(
      (line) => line.key !== "all" && !offered.has(line.key) && !line.receiving && line.left_by_person,
    );
    const [appended] = await appendConsentEvents(tx, [
      {
        kind: "opt_in",
        contact_id: contact.id,
        channel: "email",
        scope: { kind: "global" },
        basis: "express",
        source,
        mechanism: "double_opt_in_confirmation",
        actor: { kind: "contact" },
        occurred_at: now.toISOString(),
        observed_at: now.toISOString(),
        evidence,
      },
    ]);
    if (appended?.kind === "rejected")
      throw new Error(`the sign-up's opt-in was rejected by the ledger: ${appended.message}`);
    await recordPreferences(
      tx,
      { topics: deps.config.topics.filter((t) => offeredTopics(deps.config).some((o) => o.key === t.key)) },
      contact.id,
      // The confirmation page showed these; it showed no state of the person's to be stale against.
      { choices: new Set(["all", ...ticked.map((t) => `topic:${t}`)]) },
      { source, mechanism: { opt_in: "double_opt_in_confirmation", opt_out: "signup_form" }, evidence },
      now,
    );
    await keepClosed(tx, deps.config, contact.id, closedUnoffered, { source, evidence }, now);
    await tx.db.updateTable("signups").set({ contact_id: contact.id }).where("id", "=", row.id).execute();
    return ok({ contact_id: contact.id, status: "confirmed" as const, suppression_lifted: lifted });
  });
}

/**
 * Keeps each topic the sign-up did not offer where the person left it: one their own opt-out
 * stopped before and the sign-up's opt-in to all email opened is stopped again by a topic opt-out,
 * theirs (their opt-out of all email stood for it, and nothing they confirmed lifted it).
 */
async function keepClosed(
  tx: StoreSession,
  config: Pick<ConcordConfig, "topics">,
  contactId: string,
  closedBefore: readonly PreferenceLine[],
  act: { source: { system: string; connection: string }; evidence: Record<string, unknown> },
  now: Date,
): Promise<void> {
  if (closedBefore.length === 0) return;
  const before = new Map(closedBefore.map((line) => [line.key, line]));
  const reopened = (await preferencesOf(tx, config, contactId, now)).filter(
    (line) => line.receiving && before.has(line.key),
  );
  if (reopened.length === 0) return;
  const results = await appendConsentEvents(
    tx,
    reopened.map((line) => ({
      kind: "opt_out" as const,
      contact_id: contactId,
      channel: "email" as const,
      scope: { kind: "topic" as const, topic: line.key.slice("topic:".length) },
      source: act.source,
      mechanism: "signup_form" as const,
      actor: { kind: "contact" as const },
      occurred_at: now.toISOString(),
      observed_at: now.toISOString(),
      evidence: {
        ...act.evidence,
        reason: `Kept as the person left it${before.get(line.key)?.since !== undefined ? ` on ${before.get(line.key)?.since ?? ""}` : ""}: the sign-up did not offer this topic, so confirming it lifted nothing here.`,
      },
    })),
  );
  const refused = results.find((r) => r.kind === "rejected");
  if (refused !== undefined)
    throw new Error(`the sign-up's kept opt-out was rejected by the ledger: ${refused.message}`);
}

/** Outcome codes of a placement worth trying again. */
const TRANSIENT: ReadonlySet<string> = new Set<ConnectorErrorCode>([
  "vendor_unavailable",
  "rate_limited",
  "quota_exceeded",
  "network_error",
  "bad_response",
  "auth_invalid",
  "auth_missing",
]);

/** A placement that failed for a passing reason (an outage, a quota) is tried again after this. */
const PLACE_RETRY_MS = 60_000;
/** Waiting sign-ups are forgotten this long after their link expired (it says "expired" until then). */
const KEEP_EXPIRED_MS = 7 * 86_400_000;
/** Confirmed sign-ups are forgotten this long after they were placed: the ledger keeps the evidence. */
const KEEP_PLACED_MS = 30 * 86_400_000;

/** Confirmed sign-ups waiting to be placed now (never placed, or a retry is due). */
export async function dueSignups(store: StoreSession, now: Date, limit: number): Promise<SignupsTable[]> {
  const retryBefore = new Date(now.getTime() - PLACE_RETRY_MS).toISOString();
  return store.db
    .selectFrom("signups")
    .selectAll()
    .where("status", "=", "confirmed")
    .where("placed_at", "is", null)
    .where((eb) => eb.or([eb("place_attempted_at", "is", null), eb("place_attempted_at", "<", retryBefore)]))
    .orderBy("confirmed_at")
    .limit(limit)
    .execute();
}

/**
 * Forgets sign-ups Concord no longer needs: requests whose link expired a week ago, and confirmed
 * ones placed a month ago (their consent and its evidence are in the ledger). Returns how many.
 */
export async function forgetOldSignups(store: StoreSession, now: Date): Promise<number> {
  const expired = await store.db
    .deleteFrom("signups")
    .where("status", "=", "pending")
    .where("expires_at", "<", new Date(now.getTime() - KEEP_EXPIRED_MS).toISOString())
    .executeTakeFirst();
  const placed = await store.db
    .deleteFrom("signups")
    .where("status", "=", "confirmed")
    .where("placed_at", "<", new Date(now.getTime() - KEEP_PLACED_MS).toISOString())
    .executeTakeFirst();
  return Number(expired.numDeletedRows) + Number(placed.numDeletedRows);
}

export type PlacedSignup = {
  signup_id: string;
  contact_id: string;
  /**
   * `failed`: tried again later (an outage, a quota); `refused`: the platform will not take it (kept
   * with its reason); `withdrawn`: the person left all email after confirming, so nothing is placed.
   */
  status: "added" | "already_there" | "failed" | "refused" | "withdrawn";
  /** Whether the record is linked already (a bulk import names no ids: the next read links it). */
  linked: boolean;
  message?: string;
};

/**
 * Adds confirmed sign-ups to the sign-up platform: a person it does not hold yet is created there
 * subscribed, in `signup.lists`, and linked (Concord made the record); one it holds joins the lists.
 * Their consent is read again first: a person who left all email since confirming is not placed,
 * and a list that stands for a topic is joined only while they receive that topic. A failure is
 * kept on the sign-up and tried again a minute later. Returns what was tried.
 */
export async function placeConfirmedSignups(
  deps: Pick<SignupDeps, "store" | "config" | "now">,
  connections: ReadonlyMap<string, OpenedConnection>,
): Promise<PlacedSignup[]> {
  const signup = deps.config.signup;
  if (signup === undefined) return [];
  const now = deps.now();
  const due = await dueSignups(deps.store, now, 100);
  if (due.length === 0) return [];
  const opened = connections.get(signup.connection);
  const results: PlacedSignup[] = [];
  let lists: Result<SignupList[], string> | undefined;
  for (const row of due) {
    const contactId = row.contact_id ?? "";
    let result: PlacedSignup;
    if (opened === undefined)
      result = {
        signup_id: row.id,
        contact_id: contactId,
        status: "failed",
        linked: false,
        message: `connection ${signup.connection} is not open`,
      };
    else {
      lists ??= await resolveLists(opened, signup.lists);
      result = lists.ok
        ? await placeOne(deps.store, deps.config, opened, row, lists.value, now)
        : {
            signup_id: row.id,
            contact_id: contactId,
            status: "failed",
            linked: false,
            message: lists.error,
          };
    }
    await deps.store.db
      .updateTable("signups")
      .set(
        result.status === "failed"
          ? { place_error: (result.message ?? "").slice(0, 1000), place_attempted_at: now.toISOString() }
          : {
              placed_at: now.toISOString(),
              place_error:
                result.status === "refused" || result.status === "withdrawn"
                  ? (result.message ?? "").slice(0, 1000)
                  : null,
              place_attempted_at: now.toISOString(),
            },
      )
      .where("id", "=", row.id)
      .execute();
    results.push(result);
  }
  await opened?.settled();
  return results;
}

/** A list of `signup.lists` as the platform names it. */
type SignupList = { external_id: string; name: string };

async function resolveLists(
  opened: OpenedConnection,
  refs: readonly ListRef[],
): Promise<Result<SignupList[], string>> {
  if (refs.length === 0) return ok([]);
  const lists = await opened.healthy(await opened.session().lists());
  if (!lists.ok)
    return err(
      `the lists of ${opened.connection.id} could not be read (${lists.error.code}: ${lists.error.message})`,
    );
  const found: SignupList[] = [];
  for (const ref of refs) {
    const list = lists.value.find((l) =>
      ref.id !== undefined ? l.external_id === ref.id : sameName(l.name, ref.name),
    );
    if (list === undefined)
      return err(
        `signup.lists: no list ${ref.id !== undefined ? `with id ${ref.id}` : `named “${ref.name ?? ""}”`} in ${opened.connection.id}`,
      );
    found.push({ external_id: list.external_id, name: list.name });
  }
  return ok(found);
}

const sameName = (a: string, b: string | undefined): boolean =>
  a.trim().toLowerCase() === (b ?? "").trim().toLowerCase();

/**
 * The sign-up lists the person's consent allows now, or undefined when they receive no email at
 * all: they may have left all email, or a topic, between confirming and being placed (an outage,
 * a spent quota). A list that stands for a topic (the topic's construct in this platform) is
 * joined only while they receive that topic.
 */
export async function listsTheyReceive(
  store: StoreSession,
  config: Pick<ConcordConfig, "topics">,
  connectionId: string,
  contactId: string,
  lists: readonly SignupList[],
  now: Date,
): Promise<string[] | undefined> {
  const state = foldChannelConsent(
    (await eventsForContact(store, contactId)).map((e) => e.event),
    "email",
    { as_of: now.toISOString(), topics: config.topics.map((t) => t.key) },
  );
  if (!decisionFor(state, { kind: "global" }).sendable) return undefined;
  return lists
    .filter((list) =>
      config.topics.every((topic) => {
        const construct = topic.constructs[connectionId];
        const standsFor =
          construct !== undefined &&
          constructMatches(construct, { type: "list", id: list.external_id, name: list.name });
        return !standsFor || decisionFor(state, { kind: "topic", topic: topic.key }).sendable;
      }),
    )
    .map((list) => list.external_id);
}

async function placeOne(
  store: StoreSession,
  config: Pick<ConcordConfig, "topics">,
  opened: OpenedConnection,
  row: SignupsTable,
  lists: readonly SignupList[],
  now: Date,
): Promise<PlacedSignup> {
  const contactId = row.contact_id ?? "";
  const base = { signup_id: row.id, contact_id: contactId, linked: false };
  const contact = await store.contacts.get(contactId);
  if (contact === undefined || contact.erased_at !== null)
    return { ...base, status: "already_there", linked: true, message: "the person was erased since" };
  const listIds = await listsTheyReceive(store, config, opened.connection.id, contactId, lists, now);
  if (listIds === undefined)
    return {
      ...base,
      status: "withdrawn",
      message: "the person left all email after confirming; they are not added",
    };
  const link = (await store.links.forContact(contactId)).find(
    (l) => l.connection_id === opened.connection.id,
  );
  const opId = `op_signup_${row.id}`;
  let outcome: OperationOutcome | undefined;
  try {
    [outcome] =
      link !== undefined
        ? listIds.length === 0
          ? [{ op_id: opId, status: "succeeded" as const }]
          : await opened.session().apply([
              {
                kind: "add_list_members",
                op_id: opId,
                list_ids: listIds,
                external_ids: [link.external_id],
              },
            ])
        : await opened.session().apply([
            {
              kind: "upsert_contacts",
              op_id: opId,
              items: [
                {
                  item_id: contactId,
                  email: contact.primary_email ?? row.email,
                  first_name: contact.given_name ?? row.first_name,
                  last_name: contact.family_name ?? row.last_name,
                },
              ],
              list_ids: listIds,
              // The person confirmed: new to the platform, they start subscribed; one it holds
              // keeps what it shows, and their opt-in reaches it as any opt-in does.
              consent_intent: { existing: "keep", new_contacts: "subscribed" },
            },
          ]);
  } catch (error) {
    // No answer at all: a passing failure, tried again.
    outcome = {
      op_id: opId,
      status: "failed",
      code: "network_error",
      message: errorMessage(error),
    };
  }
  if (outcome === undefined || (outcome.status !== "succeeded" && outcome.status !== "skipped"))
    return {
      ...base,
      // An outage or a spent quota passes; a refusal of this person (an address the platform
      // will not take) does not, and is kept with its reason instead of being tried forever.
      status: outcome?.status === "failed" && !TRANSIENT.has(outcome.code ?? "") ? "refused" : "failed",
      message: `${opened.manifest.label} did not take the sign-up (${outcome?.code ?? outcome?.status ?? "no answer"}${outcome?.message ? `: ${outcome.message}` : ""})`,
    };
  if (link !== undefined) return { ...base, status: "already_there", linked: true };
  // A bulk import names no ids: the caller's next read links the record.
  if (outcome.external_id === undefined) return { ...base, status: "added" };
  if ((await store.links.find(opened.connection.id, outcome.external_id)) === undefined)
    await store.links.create({
      connection_id: opened.connection.id,
      external_id: outcome.external_id,
      contact_id: contactId,
      origin: "concord",
    });
  return { ...base, status: "added", linked: true };
}
