/**
 * Between Mailchimp members and Concord's records: a member's status as a typed consent fact on the
 * audience (the connection's whole account), how they left as the ledger's mechanism and actor
 * where Mailchimp says (`abuse` is a spam complaint; an admin's unsubscribe is the account's),
 * `cleaned` as deliverability, never consent; tags and groups (interests) as the lists a record is
 * in; merge fields as profile fields; and the request bodies Concord sends.
 */
import { createHash } from "node:crypto";
import type {
  ConnectorOperation,
  ConsentFact,
  ConsentObservation,
  ExternalRecord,
  WebhookChange,
} from "../connector";
import type { Actor, Evidence, Mechanism } from "../../core/consent/consent-event";
import { ACCOUNT_OBSERVED } from "../../core/consent/system-consent";
import { canonicalJson } from "../../core/canonical-json";
import type { McMember } from "./schemas";

/** The merge fields the record's own name slots come from. */
export const FIRST_NAME_TAG = "FNAME";
export const LAST_NAME_TAG = "LNAME";
/** A merge tag as a pair's field mapping names it (Mailchimp's own: up to 10 capitals, digits, underscores). */
export const MERGE_TAG = /^[A-Z][A-Z0-9_]{0,9}$/;

export const tagListId = (id: number | string): string => `tag:${id}`;
export const interestListId = (id: string): string => `interest:${id}`;

/** `2026-03-02T12:00:00+00:00` (Mailchimp's form) as ISO-8601 UTC; undefined when empty or invalid. */
export function toUtc(value: string | undefined | null): string | undefined {
  if (!value) return undefined;
  const t = Date.parse(value);
  return Number.isNaN(t) ? undefined : new Date(t).toISOString();
}

export const subscriberHash = (email: string): string =>
  createHash("md5").update(email.trim().toLowerCase()).digest("hex");

const digest = (value: unknown): string => createHash("sha256").update(canonicalJson(value)).digest("hex");

/**
 * The member's id in Concord: its contact id, which an address change keeps (the subscriber hash
 * changes with the address); every member path takes it. A member without one (an older answer
 * shape) is named by its subscriber hash.
 */
export const memberId = (m: McMember): string => m.contact_id ?? m.id;

/** When the member last changed, for checkpoints. */
export const memberWatermark = (m: McMember): string => toUtc(m.last_changed) ?? "1970-01-01T00:00:00.000Z";

const STATUS_FACT: Record<McMember["status"], ConsentFact["status"]> = {
  subscribed: "opted_in",
  unsubscribed: "opted_out",
  pending: "pending",
  // Cleaned is Mailchimp giving up on the address (bounces): deliverability, not the person's choice.
  cleaned: "none",
  transactional: "none",
  archived: "none",
};

/**
 * The longest a member's opt-in may follow its signup and still be that signup's (a form's, or the
 * confirmation of a pending request): the time a confirmation email takes to be answered.
 */
export const SIGNUP_TO_OPT_IN_MAX_MS = 30 * 86_400_000;

/** Mailchimp's own wording for an unsubscribe the account made, never a person's free text. */
const BY_ACCOUNT = /^n\/a \(unsubscribed (by an admin|via (?:the )?api)\)$/;

/** How a member left, from what Mailchimp tells: its unsubscribe reason. */
export function howTheyLeft(m: McMember): { mechanism: Mechanism; actor: Actor } {
  const reason = (m.unsubscribe_reason ?? "").trim().toLowerCase();
  if (reason.startsWith("abuse") || reason.includes("spam"))
    return { mechanism: "spam_complaint", actor: { kind: "contact" } };
  // Only the whole of Mailchimp's wording: a person who writes "added by an admin" in the form's
  // box left by their own act, which the account must not be able to undo (rule 4).
  const byAccount = BY_ACCOUNT.exec(reason)?.[1];
  if (byAccount === "by an admin") return { mechanism: "admin_edit", actor: { kind: "account" } };
  if (byAccount !== undefined) return { mechanism: "api", actor: { kind: "account" } };
  // Any other reason is the person's own, from an unsubscribe form (a footer link or the one-click
  // header: Mailchimp does not say which).
  return { mechanism: "unknown", actor: { kind: "contact" } };
}

/** The construct type of a GDPR marketing permission of the audience, as a topic names it. */
export const MARKETING_PERMISSION = "marketing_permission";

/** What a member shows about consent, as typed facts. */
export function memberConsentFacts(m: McMember): ConsentFact[] {
  const at = m.status === "subscribed" ? toUtc(m.timestamp_opt) : toUtc(m.last_changed);
  const facts: ConsentFact[] = [
    {
      channel: "email",
      scope: ACCOUNT_OBSERVED,
      status: STATUS_FACT[m.status],
      source: "status",
      label: `audience status: ${m.status}${m.status === "unsubscribed" && m.unsubscribe_reason ? ` (${m.unsubscribe_reason})` : ""}`,
      role: "state",
      ...(at !== undefined ? { at } : {}),
    },
  ];
  for (const p of m.marketing_permissions ?? []) {
    // A permission is the topic a config names by its text: the audience's form shows only that,
    // and its id is found on any member's permissions when Concord writes one.
    const text = (p.text ?? "").trim() || p.marketing_permission_id;
    facts.push({
      channel: "email",
      scope: {
        kind: "construct",
        construct: { type: MARKETING_PERMISSION, id: text, name: text },
      },
      status: p.enabled === true ? "opted_in" : "none",
      source: "marketing_permissions",
      label: `marketing permission “${text}”: ${p.enabled === true ? "given" : "not given"}`,
      role: "state",
      // Mailchimp keeps no date or history for a permission.
      unversioned: true,
      // Not given is no consent: nothing is sent for it (GDPR).
      requires_consent: true,
    });
  }
  return facts;
}

/** A member as an ExternalRecord. */
export function memberToRecord(m: McMember): ExternalRecord {
  const merge = m.merge_fields ?? {};
  const fields: Record<string, string | null> = {};
  for (const [tag, value] of Object.entries(merge)) {
    if (tag === FIRST_NAME_TAG || tag === LAST_NAME_TAG) continue;
    if (typeof value === "string" || typeof value === "number")
      fields[tag] = value === "" ? null : String(value);
  }
  const text = (v: unknown): string | null => (typeof v === "string" && v !== "" ? v : null);
  return {
    external_id: memberId(m),
    kind: "individual",
    emails: [{ address: m.email_address, primary: true }],
    first_name: text(merge[FIRST_NAME_TAG]),
    last_name: text(merge[LAST_NAME_TAG]),
    fields,
    consent_state: memberConsentFacts(m),
    list_ids: [
      ...(m.tags ?? []).map((t) => tagListId(t.id)),
      ...Object.entries(m.interests ?? {})
        .filter(([, on]) => on)
        .map(([id]) => interestListId(id)),
    ],
    ...(m.status === "archived" ? { inactive: true } : {}),
    updated_at: memberWatermark(m),
  };
}

/** The consent observations a member carries: an opt-out with how, an opt-in, or a bounce. */
/**
 * The consent a member shows. `observed_at` dates an opt-out or a cleaning whose member names no
 * `last_changed`: when Concord saw it, never a time before every opt-in it would then yield to.
 */
export function memberToConsent(m: McMember, observed_at: string): ConsentObservation[] {
  const base = {
    external_id: memberId(m),
    email: m.email_address,
    channel: "email" as const,
    scope: ACCOUNT_OBSERVED,
  };
  const evidence: Evidence = {
    payload_sha256: digest({
      id: m.id,
      status: m.status,
      reason: m.unsubscribe_reason ?? null,
      at: m.last_changed ?? null,
    }),
    source_record_id: m.id,
  };
  switch (m.status) {
    case "unsubscribed": {
      const how = howTheyLeft(m);
      return [
        {
          ...base,
          kind: "opt_out",
          ...how,
          // Mailchimp keeps no time of the unsubscribe: `last_changed` bounds it, and every later
          // edit of the member (a merge field, a tag, Concord's own writes) moves it. The opt-out
          // is the act already recorded while this member's last word is it, not a new one.
          occurred_at: toUtc(m.last_changed) ?? observed_at,
          time_unknown: true,
          evidence: {
            ...evidence,
            ...(m.unsubscribe_reason ? { reason: m.unsubscribe_reason.slice(0, 1000) } : {}),
          },
        },
      ];
    }
    case "subscribed": {
      // A hosted form or a confirmed double opt-in is the person's own act; an import or the API is
      // the account's. `source` says how the member was first added; `ip_opt` is where the person
      // confirmed their subscription from (a resubscribe confirmation of a member the API added).
      // Both are kept through a later subscription (an account user, or another integration,
      // subscribing again someone the API had unsubscribed): they vouch for the subscription
      // only when it followed the member's signup within the time a confirmation takes, and no
      // opt-out of the person's came between the two (the record stage asks the ledger). Without
      // an opt-in time (imports, older members, a single opt-in Mailchimp gave no confirmation
      // time) there is nothing to tell them apart by.
      const signup = Date.parse(toUtc(m.timestamp_signup) ?? "");
      const opted = Date.parse(toUtc(m.timestamp_opt) ?? "");
      const ofTheSignup =
        Number.isNaN(signup) ||
        Number.isNaN(opted) ||
        (opted >= signup - 60_000 && opted - signup <= SIGNUP_TO_OPT_IN_MAX_MS);
      // With neither time, nothing places the person's act: its only date would be `last_changed`,
      // which every later edit moves (Concord's own included), so it could come to follow an
      // opt-out it preceded and lift it. It is then the account's.
      const placed = !Number.isNaN(signup) || !Number.isNaN(opted);
      const formSource = /signup|form|confirm/i.test(m.source ?? "");
      const optInIp = (m.ip_opt ?? "").trim() !== "";
      const traced = formSource || optInIp;
      const byForm = placed && ofTheSignup && formSource;
      const confirmed = placed && ofTheSignup && optInIp;
      const byContact = byForm || confirmed;
      if (confirmed) evidence.ip = (m.ip_opt ?? "").trim().slice(0, 64);
      return [
        {
          ...base,
          kind: "opt_in",
          mechanism: byForm
            ? "signup_form"
            : confirmed
              ? "double_opt_in_confirmation"
              : !ofTheSignup || (traced && !placed)
                ? "unknown"
                : (m.source ?? "").toLowerCase().startsWith("api")
                  ? "api"
                  : "import",
          actor: byContact ? { kind: "contact" } : { kind: "account" },
          basis: byContact ? "express" : "implied",
          // Without an opt-in time, the signup's (the subscription came at or after it): a fixed
          // moment, never one a later edit moves past an opt-out.
          occurred_at: toUtc(m.timestamp_opt) ?? toUtc(m.timestamp_signup) ?? memberWatermark(m),
          // The sign-up it confirms: an opt-out in between makes it a later subscription. A member
          // with no signup time (added through the API, then confirmed) keeps the confirmation's
          // traces through a later subscription too, and nothing dates the sign-up: any opt-out of
          // the person's before the opt-in time then makes it that later subscription.
          ...(byContact && Number.isNaN(signup) && !Number.isNaN(opted)
            ? { of_signup_at: null }
            : byContact && opted > signup
              ? { of_signup_at: new Date(signup).toISOString() }
              : {}),
          evidence,
        },
      ];
    }
    case "cleaned":
      return [
        {
          ...base,
          kind: "deliverability",
          deliverability: "cleaned",
          mechanism: "unknown",
          actor: { kind: "platform" },
          occurred_at: toUtc(m.last_changed) ?? observed_at,
          evidence,
        },
      ];
    default:
      return [];
  }
}

/**
 * Whether an opt-out a webhook announced adds to what the member reads. Only a member that reads
 * unsubscribed shows it; every other status hides it: archived (it keeps no earlier status),
 * pending (a resubscribe asked for since and not confirmed), cleaned (bounced since), transactional,
 * or subscribed again (by the person, whose later opt-in lifts it by its own date, or by the
 * account, which never lifts the person's). An announced spam complaint stands also for a member
 * that reads unsubscribed without saying so, since a complaint is a global opt-out.
 */
export function announcementStands(m: McMember, change: WebhookChange): boolean {
  if (change.opt_out === undefined) return false;
  if (m.status !== "unsubscribed") return true;
  return change.opt_out.reason === "abuse" && howTheyLeft(m).mechanism !== "spam_complaint";
}

/**
 * The opt-out an unsubscribe webhook announced, for a member whose status does not show it (see
 * `announcementStands`), or a spam complaint announced for a member that reads unsubscribed without
 * saying so, dated when the webhook fired: an account user's when it came by the webhook for
 * account users' acts (`by=admin`), else the person's (an opt-out is the account's only when the
 * source plainly says so); a spam complaint when its reason is `abuse`.
 */
export function announcedOptOut(m: McMember, change: WebhookChange): ConsentObservation {
  return announced(change, {
    external_id: memberId(m),
    email: m.email_address,
    source_record_id: m.id,
    hidden:
      m.status === "archived"
        ? "the member was archived before it was read"
        : m.status === "unsubscribed"
          ? undefined
          : `the member reads ${m.status} since`,
    status: m.status,
  });
}

/**
 * The opt-out a webhook announced for a member no read shows, for the address the delivery named;
 * none when it named no address: one deleted for good before Concord read it (`gone`), or one a
 * delivery given up unread named (`unread`: Mailchimp out of reach through every retry, or refusing
 * the re-read; the next poll may never show it, the member may have been archived meanwhile).
 */
export function unreadMemberOptOut(
  change: WebhookChange,
  why: "gone" | "unread" = "unread",
): ConsentObservation | undefined {
  const email = change.opt_out?.email;
  if (email === undefined) return undefined;
  return {
    ...announced(change, {
      external_id: change.external_id,
      email,
      source_record_id: change.external_id,
      hidden:
        why === "gone"
          ? "the member was deleted for good before it was read"
          : "the member could not be re-read (the delivery was given up)",
    }),
    record_gone: true,
  };
}

function announced(
  change: WebhookChange,
  member: {
    external_id: string;
    email: string;
    source_record_id: string;
    /** Why the member's own state does not show the opt-out, if it hides it altogether. */
    hidden: string | undefined;
    status?: string;
  },
): ConsentObservation {
  const reason = change.opt_out?.reason;
  return {
    external_id: member.external_id,
    email: member.email,
    channel: "email",
    scope: ACCOUNT_OBSERVED,
    kind: "opt_out",
    ...(change.opt_out?.actor === "account" && reason !== "abuse"
      ? { mechanism: "admin_edit" as const, actor: { kind: "account" as const } }
      : {
          mechanism: reason === "abuse" ? ("spam_complaint" as const) : ("unknown" as const),
          actor: { kind: "contact" as const },
        }),
    occurred_at: change.occurred_at,
    evidence: {
      payload_sha256: digest({ event_id: change.event_id, type: change.type, id: change.external_id }),
      source_record_id: member.source_record_id,
      reason:
        member.hidden !== undefined
          ? `Mailchimp's ${change.type} webhook (${reason ?? "no reason"}); ${member.hidden}`
          : `Mailchimp's ${change.type} webhook reported an abuse report; the member reads ${member.status ?? "unknown"}`,
    },
  };
}

/** Merge fields for a record's names and mapped fields (only the ones given). */
export function mergeFieldsOf(item: {
  first_name?: string | null;
  last_name?: string | null;
  fields?: Record<string, string | null>;
}): Record<string, string> {
  const out: Record<string, string> = {};
  if (item.first_name !== undefined) out[FIRST_NAME_TAG] = item.first_name ?? "";
  if (item.last_name !== undefined) out[LAST_NAME_TAG] = item.last_name ?? "";
  for (const [tag, value] of Object.entries(item.fields ?? {}))
    if (MERGE_TAG.test(tag)) out[tag] = value ?? "";
  return out;
}

/** The status a new member starts with, from the plan's consent intent (never `subscribed` unless it says). */
export function newMemberStatus(
  intent: Extract<ConnectorOperation, { kind: "upsert_contacts" }>["consent_intent"],
): "subscribed" | "unsubscribed" | "pending" {
  if (intent.new_contacts === "subscribed") return "subscribed";
  if (intent.new_contacts === "pending_confirmation") return "pending";
  return "unsubscribed";
}

export { isPlausibleEmail } from "../kit/upsert-items";
