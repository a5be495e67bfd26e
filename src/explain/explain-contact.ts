/**
 * `explain`: one person's consent across every connected system — the ledger timeline with its
 * provenance, the decision per pair connection with the rule and the event behind it, what each
 * system shows as last read, open review items and recent operations. Data first
 * (`explainContact`), then a plain-text report (`formatExplanation`) kept apart from it.
 */
import { z } from "zod";
import type { ConcordConfig } from "../config/concord-config";
import { manifestFor } from "../connectors/registry";
import type { ConsentFactStatus, ObservedScope } from "../core/consent/system-consent";
import { leftTopicListSince } from "../core/consent/topic-list-baseline";
import { accountTopic } from "../pipeline/resolve-observed-scope";
import { StoredConsentStateSchema } from "../pipeline/stored-snapshot";
import {
  GLOBAL_SCOPE,
  topicScope,
  type Actor,
  type Channel,
  type ConsentEvent,
  type ConsentEventId,
  type Evidence,
  type Mechanism,
  type Scope,
} from "../core/consent/consent-event";
import {
  compareEvents,
  decisionFor,
  foldChannelConsent,
  optOutInitiator,
  type ChannelConsent,
  type ConsentRule,
  type ScopeDecision,
} from "../core/consent/consent-state";
import { normaliseEmail, type EmailInvalidReason } from "../core/identity/normalise-email";
import { eventsForContact, type StoredConsentEvent } from "../ledger/consent-ledger";
import { JsonValueSchema, type Contact, type JsonValue, type StoreSession } from "../store/ports";

// ---------------------------------------------------------------------------------------------
// The result (JSON-safe: what `concord explain --json` prints)

export type ExplainResult =
  | { kind: "invalid_email"; email: string; reason: EmailInvalidReason; message: string }
  | { kind: "invalid_as_of"; as_of: string; message: string }
  | { kind: "not_found"; email: string; match_key: string; as_of: string; message: string }
  | {
      kind: "found";
      email: string;
      match_key: string;
      /** The moment the state is evaluated at. */
      as_of: string;
      /** Whether `as_of` was asked for: then events that occurred after it are not counted. */
      as_of_requested: boolean;
      /** Set when several contacts have this address (e.g. an organisation and a person). */
      shared_address_note: string | null;
      people: Explanation[];
    };

export type Explanation = {
  contact: ContactView;
  /** How the address was found on this contact. */
  matched_by: "primary_email" | "secondary_email";
  /** Per pair: every platform connection's scope (and the CRM's scopes) with its decision. */
  pairs: PairState[];
  /** Every scope under the consent rules alone (no pair policy): global, then each topic. */
  scopes: ScopeState[];
  /** Tracked beside consent; never changes a consent decision. */
  deliverability: {
    status: ChannelConsent["deliverability"]["status"];
    since: string | null;
    decided_by: EventRef | null;
  };
  /** Every ledger event about the contact, in the fold's order (time of the act, opt-outs first). */
  timeline: TimelineEntry[];
  links: LinkView[];
  review_items: ReviewItemView[];
  /** The contact's most recent operations, newest first (at most RECENT_OPERATIONS). */
  recent_operations: OperationView[];
};

export type ContactView = {
  id: string;
  type: Contact["type"];
  /** Display name: the person's name or the organisation's. */
  name: string | null;
  given_name: string | null;
  family_name: string | null;
  organization_name: string | null;
  primary_email: string | null;
  /** Other addresses the contact had or has (old addresses, secondary addresses). */
  other_emails: string[];
  flags: string[];
  created_at: string;
};

/** An event named by a decision: its id and the timeline's one-line description. */
export type EventRef = { event_id: ConsentEventId; description: string };

export type ScopeState = {
  scope: Scope;
  scope_label: string;
  sendable: boolean;
  status: ScopeDecision["status"];
  rule: ConsentRule;
  /** The rule in one or two sentences. */
  rule_explanation: string;
  decided_by: EventRef | null;
  /** Opt-outs still in force for this scope. */
  open_opt_outs: (EventRef & { initiated_by: "contact" | "account" })[];
  /** An admin asked to resubscribe; waiting for the person to confirm. */
  pending_resubscribe: (EventRef & { requested_at: string }) | null;
};

export type ConnectionState = {
  connection_id: string;
  system: string | null;
  role: "crm" | "platform";
  /** The construct that stands for a topic in this system (`consent category “Appeals”`), when one does. */
  construct: string | null;
  /**
   * Since when (at the latest) the record is out of the platform's list (group, tag) standing for
   * this topic, which it had been in: it left there, or a topic opt-out took it out. Concord puts
   * it back only for the person's own opt-in to the topic (ADR 35).
   */
  left_list_since: string | null;
} & ScopeState;

export type PairState = {
  pair_id: string;
  crm_connection: string;
  require_consent_basis: boolean;
  connections: ConnectionState[];
};

export type TimelineEntry = {
  event_id: ConsentEventId;
  kind: ConsentEvent["kind"];
  channel: ConsentEvent["channel"];
  /** The scope as recorded; null for deliverability. A spam complaint applies to all email whatever it says. */
  scope: Scope | null;
  scope_label: string | null;
  occurred_at: string;
  observed_at: string;
  recorded_at: string;
  source: { system: string; connection: string; system_label: string };
  mechanism: Mechanism;
  mechanism_label: string;
  actor: Actor;
  actor_label: string;
  /** For opt-outs: whose act it counts as (a person-only mechanism is the person's whatever the actor). */
  initiated_by: "contact" | "account" | null;
  basis: "express" | "implied" | null;
  expires_at: string | null;
  deliverability_status: string | null;
  evidence: Evidence;
  evidence_erased_at: string | null;
  evidence_summary: string;
  ledger: { seq: number; hash: string; hash_prefix: string };
  /** False when `as_of` was asked for and the act came after it. */
  counted: boolean;
  /** One line: when, what, where, who, how. */
  description: string;
};

export type SystemShows =
  | {
      kind: "record";
      external_id: string;
      name: string | null;
      deleted: boolean;
      inactive: boolean;
      deceased: boolean;
      emails: { address: string; primary: boolean; inactive: boolean }[];
      /** Consent as the system shows it: its connector's typed facts, each in the system's own words. */
      consent: {
        source: string;
        status: ConsentFactStatus;
        role: "state" | "record";
        scope_label: string;
        label: string;
      }[];
      list_ids: string[] | null;
      /** Lists the record is in whose own flag stops email through them (a list's Do Not Contact). */
      stopped_list_ids: string[];
      updated_at: string | null;
    }
  | { kind: "unparsed"; problem: string; raw: JsonValue };

export type LinkView = {
  connection_id: string;
  /** From the config; null when the connection is no longer configured. */
  system: string | null;
  system_label: string | null;
  external_id: string;
  origin: string;
  linked_at: string;
  snapshot: { observed_at: string; content_hash: string; shows: SystemShows } | null;
};

export type ReviewItemView = {
  id: string;
  kind: string;
  created_at: string;
  connection_id: string | null;
  external_id: string | null;
  summary: string;
  detail: JsonValue;
};

export type OperationView = {
  id: string;
  plan_id: string;
  kind: string;
  target_connection: string;
  status: string;
  reason_code: string | null;
  reason: string | null;
  /** How many contacts the operation carries (a bulk import carries many). */
  contact_count: number;
  created_at: string;
  updated_at: string;
  last_outcome: {
    attempt: number;
    status: string;
    recorded_at: string;
    retry_at: string | null;
    message: string | null;
  } | null;
};

export const RECENT_OPERATIONS = 20;

// ---------------------------------------------------------------------------------------------
// Words

const RULE_SENTENCES: Readonly<Record<ConsentRule, string>> = {
  no_opt_out: "No opt-out covers this scope and no consent basis is required.",
  express_consent: "The person gave express consent, which does not lapse, and has not opted out since.",
  implied_consent:
    "Implied consent (such as a donation or an inquiry) stands and has not lapsed; no opt-out since.",
  implied_consent_expired: "The only consent on record was implied, and it has lapsed.",
  no_consent_basis:
    "The pair requires a consent basis (CASL) and there is no opt-in on record for this scope.",
  global_opt_out:
    "An opt-out from all email is in force. Only the person's own later opt-in, or an operator override with evidence of their request, lifts it.",
  topic_opt_out:
    "An opt-out of this topic is in force. Only the person's own later opt-in to it, or an operator override with evidence of their request, lifts it.",
  spam_complaint:
    "A spam complaint counts as an opt-out from all email. Only the person's own later opt-in lifts it.",
  lifted_by_contact_opt_in: "An earlier opt-out was lifted by the person's own opt-in, made after it.",
  lifted_by_operator_override:
    "An earlier opt-out was lifted by an operator override that references the person's own request.",
  lifted_by_account_opt_in:
    "An earlier opt-out that the account made (not the person) was undone by the account.",
};

/** The rule in a sentence, as `explain` shows it. */
export const describeRule = (rule: ConsentRule): string => RULE_SENTENCES[rule];

const MECHANISM_LABELS: Readonly<Record<Mechanism, string>> = {
  unsubscribe_link: "unsubscribe link",
  one_click_header: "one-click unsubscribe header",
  spam_complaint: "spam complaint",
  preference_page: "preference page",
  signup_form: "sign-up form",
  double_opt_in_confirmation: "double opt-in confirmation",
  resubscribe_confirmation: "resubscribe confirmation",
  admin_edit: "admin edit",
  phone_request: "phone request",
  written_request: "written request",
  import: "import",
  api: "API",
  sync: "sync",
  expiry_rule: "expiry rule",
  unknown: "unknown mechanism",
};

/** Decisions are about email; a timeline event may be about another channel, and then says so. */
function scopeLabel(scope: Scope, channel: Channel = "email"): string {
  const name = channel === "email" ? "email" : channel.toUpperCase();
  if (scope.kind === "global") return `all ${name}`;
  return channel === "email" ? `topic ${scope.topic}` : `${name} topic ${scope.topic}`;
}

function systemLabel(system: string): string {
  return manifestFor(system)?.label ?? system;
}

function actorLabel(actor: Actor): string {
  switch (actor.kind) {
    case "contact":
      return "by the contact";
    case "account":
      return actor.user !== undefined && actor.user !== ""
        ? `by the account (${actor.user})`
        : "by the account";
    case "operator":
      return `by operator ${actor.user}`;
    case "platform":
      return "by the platform";
  }
}

/** `2026-03-01T10:00:00.000Z` → `2026-03-01 10:00:00Z`: short, still exact to the second. */
export const shortTime = (iso: string): string => iso.replace("T", " ").replace(/\.\d+Z$/, "Z");

const clip = (text: string, max: number): string => (text.length > max ? `${text.slice(0, max - 1)}…` : text);

function evidenceSummary(stored: StoredConsentEvent): string {
  if (stored.evidence_erased_at !== null)
    return `evidence erased on ${shortTime(stored.evidence_erased_at)} (digest ${stored.evidence_digest.slice(0, 12)} kept)`;
  const e = stored.event.evidence;
  const parts: string[] = [];
  if (e.request_reference !== undefined) parts.push(`request reference ${clip(e.request_reference, 80)}`);
  if (e.reason !== undefined) parts.push(`reason "${clip(e.reason, 320)}"`);
  if (e.form_wording !== undefined) parts.push(`form wording "${clip(e.form_wording, 120)}"`);
  if (e.privacy_notice !== undefined) parts.push(`privacy notice "${clip(e.privacy_notice, 80)}"`);
  if (e.source_record_id !== undefined) parts.push(`source record ${e.source_record_id}`);
  if (e.ip !== undefined) parts.push(`IP ${e.ip}`);
  if (e.user_agent !== undefined) parts.push(`user agent "${clip(e.user_agent, 60)}"`);
  if (e.payload_sha256 !== undefined) parts.push(`payload sha256 ${e.payload_sha256.slice(0, 12)}…`);
  return parts.length > 0 ? parts.join("; ") : "no evidence given";
}

function whatHappened(event: ConsentEvent): string {
  switch (event.kind) {
    case "opt_out":
      return event.mechanism === "spam_complaint"
        ? `spam complaint (an opt-out of ${scopeLabel(GLOBAL_SCOPE, event.channel)})`
        : `opt-out of ${scopeLabel(event.scope, event.channel)}`;
    case "opt_in":
      return `${event.basis} opt-in to ${scopeLabel(event.scope, event.channel)}${
        event.expires_at !== undefined ? ` (lapses ${shortTime(event.expires_at)})` : ""
      }`;
    case "resubscribe_requested":
      return `resubscribe request for ${scopeLabel(event.scope, event.channel)}`;
    case "deliverability":
      return `deliverability: ${event.status.replace("_", " ")}`;
  }
}

function timelineEntry(stored: StoredConsentEvent, counted: boolean): TimelineEntry {
  const e = stored.event;
  const initiated_by = e.kind === "opt_out" ? optOutInitiator(e) : null;
  // A person-only mechanism makes the opt-out the person's whatever the connector reported.
  const actor_label =
    initiated_by === "contact" && e.actor.kind !== "contact"
      ? `by the contact (the source said ${actorLabel(e.actor).replace(/^by /, "")})`
      : actorLabel(e.actor);
  const label = systemLabel(e.source.system);
  return {
    event_id: e.id,
    kind: e.kind,
    channel: e.channel,
    scope: e.kind === "deliverability" ? null : e.scope,
    scope_label: e.kind === "deliverability" ? null : scopeLabel(e.scope, e.channel),
    occurred_at: e.occurred_at,
    observed_at: e.observed_at,
    recorded_at: stored.recorded_at,
    source: { system: e.source.system, connection: e.source.connection, system_label: label },
    mechanism: e.mechanism,
    mechanism_label: MECHANISM_LABELS[e.mechanism],
    actor: e.actor,
    actor_label,
    initiated_by,
    basis: e.kind === "opt_in" ? e.basis : null,
    expires_at: e.kind === "opt_in" ? (e.expires_at ?? null) : null,
    deliverability_status: e.kind === "deliverability" ? e.status : null,
    evidence: e.evidence,
    evidence_erased_at: stored.evidence_erased_at,
    evidence_summary: evidenceSummary(stored),
    ledger: { seq: stored.seq, hash: stored.hash, hash_prefix: stored.hash.slice(0, 12) },
    counted,
    description: `${shortTime(e.occurred_at)} ${whatHappened(e)} in ${e.source.connection} (${label}, ${actor_label}, ${MECHANISM_LABELS[e.mechanism]})`,
  };
}

// ---------------------------------------------------------------------------------------------
// as_of

const AsOfSchema = z.union([z.iso.datetime({ offset: true }), z.iso.date()]);

/**
 * Parses an `--as-of` value: an ISO-8601 time with `Z` or an offset, or a date alone (the end of
 * that day, UTC, so the day's events count). Returns the instant as ISO-8601 UTC.
 */
export function parseAsOf(input: string): { ok: true; as_of: string } | { ok: false; message: string } {
  const parsed = AsOfSchema.safeParse(input.trim());
  if (!parsed.success)
    return {
      ok: false,
      message: `expected an ISO-8601 time with a zone, such as 2026-03-01T12:00:00Z, or a date such as 2026-03-01; got "${input}"`,
    };
  const value = parsed.data;
  const ms = /^\d{4}-\d{2}-\d{2}$/.test(value) ? Date.parse(`${value}T23:59:59.999Z`) : Date.parse(value);
  return { ok: true, as_of: new Date(ms).toISOString() };
}

// ---------------------------------------------------------------------------------------------
// Gathering

/** A person's consent across every system, with the rule and the event behind each current state. */
export async function explainContact(
  store: StoreSession,
  config: ConcordConfig,
  email: string,
  options: { as_of?: string } = {},
): Promise<ExplainResult> {
  const normalised = normaliseEmail(email);
  if (!normalised.ok)
    return {
      kind: "invalid_email",
      email,
      reason: normalised.reason,
      message: `"${email}" is not an email address Concord can match (${normalised.reason.replaceAll("_", " ")}).`,
    };
  let as_of = store.clock().toISOString();
  if (options.as_of !== undefined) {
    const parsed = parseAsOf(options.as_of);
    if (!parsed.ok) return { kind: "invalid_as_of", as_of: options.as_of, message: parsed.message };
    as_of = parsed.as_of;
  }
  const key = normalised.match_key;
  const contacts = await store.contacts.findByMatchKey(key);
  if (contacts.length === 0)
    return {
      kind: "not_found",
      email: normalised.address,
      match_key: key,
      as_of,
      message: `No contact has ${normalised.address} as a primary or secondary address.`,
    };

  const people: Explanation[] = [];
  for (const contact of contacts)
    people.push(await explainOne(store, config, contact, key, as_of, options.as_of !== undefined));
  return {
    kind: "found",
    email: normalised.address,
    match_key: key,
    as_of,
    as_of_requested: options.as_of !== undefined,
    shared_address_note: sharedAddressNote(people),
    people,
  };
}

function sharedAddressNote(people: readonly Explanation[]): string | null {
  if (people.length < 2) return null;
  const types = new Set(people.map((p) => p.contact.type));
  const what =
    types.size > 1
      ? "an organisation and a person"
      : types.has("organization")
        ? "several organisations"
        : "several people";
  return `${people.length} contacts have this address (${what}); each is explained on its own. Identity matching sends new records with this address to review instead of guessing.`;
}

async function explainOne(
  store: StoreSession,
  config: ConcordConfig,
  contact: Contact,
  key: string,
  as_of: string,
  filterByAsOf: boolean,
): Promise<Explanation> {
  const emails = await store.contacts.emails(contact.id);
  const stored = (await eventsForContact(store, contact.id)).sort((a, b) => compareEvents(a.event, b.event));
  const asOfMs = Date.parse(as_of);
  const isCounted = (s: StoredConsentEvent): boolean =>
    !filterByAsOf || Date.parse(s.event.occurred_at) <= asOfMs;
  const timeline = stored.map((s) => timelineEntry(s, isCounted(s)));
  const byId = new Map(timeline.map((t) => [t.event_id, t]));
  const events = stored.filter(isCounted).map((s) => s.event);
  const ref = (id: ConsentEventId | undefined): EventRef | null => {
    if (id === undefined) return null;
    return { event_id: id, description: byId.get(id)?.description ?? "(not in this contact's timeline)" };
  };

  const configTopics = config.topics.map((t) => t.key);
  const scopeState = (decision: ScopeDecision, scope: Scope, requireBasis: boolean): ScopeState => ({
    scope,
    scope_label: scopeLabel(scope),
    sendable: decision.sendable,
    status: decision.status,
    rule: decision.rule,
    rule_explanation: ruleExplanation(decision, requireBasis, events),
    decided_by: ref(decision.decided_by),
    open_opt_outs: decision.open_opt_outs.map((o) => ({
      event_id: o.event_id,
      description: ref(o.event_id)?.description ?? "",
      initiated_by: o.initiated_by,
    })),
    pending_resubscribe:
      decision.pending_resubscribe !== undefined
        ? {
            event_id: decision.pending_resubscribe.event_id,
            description: ref(decision.pending_resubscribe.event_id)?.description ?? "",
            requested_at: decision.pending_resubscribe.requested_at,
          }
        : null,
  });

  const systemOf = (connection: string): string | null =>
    config.connections.find((c) => c.id === connection)?.system ?? null;

  const baselines = new Map<string, JsonValue>();
  for (const pair of config.pairs) {
    const b = await store.baselines.get(contact.id, pair.id);
    if (b !== undefined) baselines.set(pair.id, b.values);
  }
  const pairs: PairState[] = config.pairs.map((pair) => {
    const requireBasis = pair.policies.require_consent_basis;
    const state = foldChannelConsent(events, "email", {
      as_of,
      topics: configTopics,
      require_consent_basis: requireBasis,
    });
    const line = (
      connection_id: string,
      role: "crm" | "platform",
      scope: Scope,
      construct: string | null,
    ): ConnectionState => ({
      connection_id,
      system: systemOf(connection_id),
      role,
      construct,
      left_list_since:
        role === "platform" && scope.kind === "topic"
          ? leftListSince(baselines.get(pair.id), connection_id, scope.topic)
          : null,
      ...scopeState(decisionFor(state, scope), scope, requireBasis),
    });
    /** Each topic's construct on a connection (but the whole account, which is the connection itself). */
    const constructLines = (connection: string, role: "crm" | "platform"): ConnectionState[] =>
      config.topics.flatMap((t) => {
        const c = t.constructs[connection];
        if (c === undefined || c.type === "account") return [];
        const system = systemOf(connection);
        const label = (system !== null ? manifestFor(system)?.topics[c.type]?.label : undefined) ?? c.type;
        return [line(connection, role, topicScope(t.key), `${label} “${c.name ?? c.id ?? ""}”`)];
      });
    const platforms = pair.platforms.flatMap((p) => {
      const topic = accountTopic(config.topics, p.connection);
      return [
        line(p.connection, "platform", topic === undefined ? GLOBAL_SCOPE : topicScope(topic), null),
        ...constructLines(p.connection, "platform"),
      ];
    });
    // The CRM holds every scope: all email, and each topic it keeps (a consent category).
    const crm = [line(pair.crm, "crm", GLOBAL_SCOPE, null), ...constructLines(pair.crm, "crm")];
    return {
      pair_id: pair.id,
      crm_connection: pair.crm,
      require_consent_basis: requireBasis,
      connections: [...platforms, ...crm],
    };
  });

  const plain = foldChannelConsent(events, "email", { as_of, topics: configTopics });
  const scopes = [
    scopeState(plain.global, GLOBAL_SCOPE, false),
    ...Object.entries(plain.topics).map(([topic, d]) => scopeState(d, topicScope(topic), false)),
  ];

  return {
    contact: contactView(
      contact,
      emails.map((e) => ({ email: e.email, match_key: e.match_key })),
    ),
    matched_by: contact.email_match_key === key ? "primary_email" : "secondary_email",
    pairs,
    scopes,
    deliverability: {
      status: plain.deliverability.status,
      since: plain.deliverability.since ?? null,
      decided_by: ref(plain.deliverability.decided_by),
    },
    timeline,
    links: await linkViews(store, config, contact.id),
    review_items: await openReviewItems(store, contact.id),
    recent_operations: await recentOperations(store, contact.id),
  };
}

function ruleExplanation(
  decision: ScopeDecision,
  requireBasis: boolean,
  events: readonly ConsentEvent[],
): string {
  const base = describeRule(decision.rule);
  const basisEvent = events.find((e) => e.id === decision.decided_by);
  switch (decision.rule) {
    case "implied_consent":
      return basisEvent?.kind === "opt_in" && basisEvent.expires_at !== undefined
        ? `${base} It lapses on ${shortTime(basisEvent.expires_at)}.`
        : base;
    case "implied_consent_expired": {
      const lapsed =
        basisEvent?.kind === "opt_in" && basisEvent.expires_at !== undefined
          ? ` It lapsed on ${shortTime(basisEvent.expires_at)}.`
          : "";
      return requireBasis
        ? `${base}${lapsed} The pair requires a consent basis (CASL), so this scope is not sendable.`
        : `${base}${lapsed} No consent basis is required here, so this scope stays sendable.`;
    }
    default:
      return base;
  }
}

/** When the pair's baseline first saw the record out of the topic's list on `connection` (`agreedBaselines`). */
function leftListSince(values: JsonValue | undefined, connection: string, topic: string): string | null {
  const agreed =
    values !== null && typeof values === "object" && !Array.isArray(values) ? values[connection] : null;
  if (agreed === null || agreed === undefined || typeof agreed !== "object" || Array.isArray(agreed))
    return null;
  return leftTopicListSince(agreed, topic) ?? null;
}

function contactView(contact: Contact, emails: readonly { email: string; match_key: string }[]): ContactView {
  const personName = [contact.given_name, contact.family_name]
    .filter((s) => s !== null && s !== "")
    .join(" ");
  const name =
    contact.type === "organization"
      ? (contact.organization_name ?? (personName || null))
      : personName || contact.organization_name;
  const other = emails.filter((e) => e.match_key !== contact.email_match_key).map((e) => e.email);
  return {
    id: contact.id,
    type: contact.type,
    name,
    given_name: contact.given_name,
    family_name: contact.family_name,
    organization_name: contact.organization_name,
    primary_email: contact.primary_email,
    other_emails: [...new Set(other)],
    flags: contact.flags,
    created_at: contact.created_at,
  };
}

// What connectors put in a snapshot (connector.ts `ExternalRecord`), read leniently: vendors and
// older versions may add keys, and a snapshot that does not fit is shown raw rather than hidden.
const SnapshotEmailSchema = z.looseObject({
  address: z.string(),
  primary: z.boolean().optional(),
  inactive: z.boolean().optional(),
});
const SnapshotRecordSchema = z.looseObject({
  external_id: z.string(),
  kind: z.string().optional(),
  emails: z.array(SnapshotEmailSchema).optional(),
  first_name: z.string().nullable().optional(),
  last_name: z.string().nullable().optional(),
  organisation_name: z.string().nullable().optional(),
  consent_state: StoredConsentStateSchema,
  list_ids: z.array(z.string()).optional(),
  stopped_list_ids: z.array(z.string()).optional(),
  inactive: z.boolean().optional(),
  deceased: z.boolean().optional(),
  deleted: z.boolean().optional(),
  updated_at: z.string().optional(),
});

/** An observed scope in words: all email, the whole account, or the construct by name. */
function observedScopeLabel(scope: ObservedScope): string {
  if (scope.kind === "global") return "all email";
  if (scope.kind === "account") return "the whole account";
  return `${scope.construct.type.replaceAll("_", " ")} “${scope.construct.name ?? scope.construct.id}”`;
}

export function readSnapshot(payload: JsonValue): SystemShows {
  const parsed = SnapshotRecordSchema.safeParse(payload);
  if (!parsed.success)
    return { kind: "unparsed", problem: z.prettifyError(parsed.error).replaceAll("\n", " "), raw: payload };
  const r = parsed.data;
  const name =
    r.organisation_name ??
    ([r.first_name, r.last_name].filter((s) => s !== null && s !== undefined && s !== "").join(" ") || null);
  return {
    kind: "record",
    external_id: r.external_id,
    name,
    deleted: r.deleted ?? false,
    inactive: r.inactive ?? false,
    deceased: r.deceased ?? false,
    emails: (r.emails ?? []).map((e) => ({
      address: e.address,
      primary: e.primary ?? false,
      inactive: e.inactive ?? false,
    })),
    consent: r.consent_state.map((f) => ({
      source: f.source,
      status: f.status,
      role: f.role,
      scope_label: observedScopeLabel(f.scope),
      label: f.label,
    })),
    list_ids: r.list_ids ?? null,
    stopped_list_ids: r.stopped_list_ids ?? [],
    updated_at: r.updated_at ?? null,
  };
}

async function linkViews(
  store: StoreSession,
  config: ConcordConfig,
  contact_id: string,
): Promise<LinkView[]> {
  const links = await store.links.forContact(contact_id);
  const views: LinkView[] = [];
  for (const link of links) {
    const system = config.connections.find((c) => c.id === link.connection_id)?.system ?? null;
    const snapshot = await store.snapshots.get(link.connection_id, link.external_id);
    views.push({
      connection_id: link.connection_id,
      system,
      system_label: system === null ? null : systemLabel(system),
      external_id: link.external_id,
      origin: link.origin,
      linked_at: link.created_at,
      snapshot:
        snapshot === undefined
          ? null
          : {
              observed_at: snapshot.observed_at,
              content_hash: snapshot.content_hash,
              shows: readSnapshot(snapshot.payload),
            },
    });
  }
  return views.sort(
    (a, b) => a.connection_id.localeCompare(b.connection_id) || a.external_id.localeCompare(b.external_id),
  );
}

/** Parses a JSON text column; a corrupt one is shown as its text rather than failing the whole report. */
function jsonColumn(text: string): JsonValue {
  try {
    const parsed = JsonValueSchema.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : text;
  } catch {
    return text;
  }
}

// `like` finds candidates (an id in a JSON column); `_` in ids is a wildcard there, so every
// candidate is checked again on the parsed JSON.
const likeId = (id: string): string => `%"${id.replaceAll("%", "")}"%`;

const ReviewDetailSchema = z.looseObject({
  reason: z.string().optional(),
  message: z.string().optional(),
  email: z.string().nullable().optional(),
  candidate_contact_ids: z.array(z.string()).optional(),
});

async function openReviewItems(store: StoreSession, contact_id: string): Promise<ReviewItemView[]> {
  const rows = await store.db
    .selectFrom("review_items")
    .selectAll()
    .where("status", "=", "open")
    .where((eb) => eb.or([eb("contact_id", "=", contact_id), eb("detail_json", "like", likeId(contact_id))]))
    .orderBy("created_at")
    .orderBy("id")
    .execute();
  const items: ReviewItemView[] = [];
  for (const row of rows) {
    const detail = jsonColumn(row.detail_json);
    const d = ReviewDetailSchema.safeParse(detail);
    const candidates = d.success ? (d.data.candidate_contact_ids ?? []) : [];
    if (row.contact_id !== contact_id && !candidates.includes(contact_id)) continue;
    const parts = [
      d.success ? (d.data.reason ?? d.data.message) : undefined,
      candidates.length > 0 ? `candidates ${candidates.join(", ")}` : undefined,
      d.success && typeof d.data.email === "string" ? `address ${d.data.email}` : undefined,
    ].filter((s): s is string => s !== undefined);
    items.push({
      id: row.id,
      kind: row.kind,
      created_at: row.created_at,
      connection_id: row.connection_id,
      external_id: row.external_id,
      summary: parts.length > 0 ? parts.join("; ") : row.kind,
      detail,
    });
  }
  return items;
}

const OperationPayloadSchema = z.looseObject({
  contact_ids: z.array(z.string()).optional(),
  reason: z.looseObject({ code: z.string().optional(), message: z.string().optional() }).optional(),
});
const ItemNoteSchema = z.looseObject({
  item_id: z.string().nullable(),
  code: z.string().nullable(),
  message: z.string().nullable(),
});
const OutcomeDetailSchema = z.looseObject({
  message: z.string().nullable().optional(),
  pending_contact_action: z.string().nullable().optional(),
  failures: z.array(ItemNoteSchema).optional(),
  skips: z.array(ItemNoteSchema).optional(),
});

/**
 * What an outcome says of this contact's own item when it failed or was skipped: in a bulk
 * operation the item named after the contact, in the contact's own operation its only one.
 */
function ownItemNote(
  detail: z.infer<typeof OutcomeDetailSchema>,
  contact_id: string,
  own_operation: boolean,
): string | null {
  for (const [status, notes] of [
    ["failed", detail.failures],
    ["skipped", detail.skips],
  ] as const) {
    const own = notes?.find((n) => n.item_id === contact_id || (own_operation && n.item_id === null));
    if (own)
      return `This contact's item ${status}${own.code ? ` (${own.code})` : ""}: ${own.message ?? "no reason given"}`;
  }
  return null;
}

async function recentOperations(store: StoreSession, contact_id: string): Promise<OperationView[]> {
  // Single-contact operations carry contact_id; bulk ones list their contacts in the payload.
  const rows = await store.db
    .selectFrom("operations")
    .selectAll()
    .where((eb) =>
      eb.or([
        eb("contact_id", "=", contact_id),
        eb.and([eb("contact_id", "is", null), eb("payload_json", "like", likeId(contact_id))]),
      ]),
    )
    .orderBy("updated_at", "desc")
    .orderBy("id", "desc")
    .limit(RECENT_OPERATIONS * 10)
    .execute();
  const views: OperationView[] = [];
  for (const row of rows) {
    if (views.length >= RECENT_OPERATIONS) break;
    const payload = OperationPayloadSchema.safeParse(jsonColumn(row.payload_json));
    const ids = payload.success ? (payload.data.contact_ids ?? []) : [];
    if (row.contact_id !== contact_id && !ids.includes(contact_id)) continue;
    const outcomes = await store.outcomes.forOperation(row.id);
    const last = outcomes.at(-1);
    const detail = last === undefined ? undefined : OutcomeDetailSchema.safeParse(last.detail);
    views.push({
      id: row.id,
      plan_id: row.plan_id,
      kind: row.kind,
      target_connection: row.target_connection,
      status: row.status,
      reason_code: payload.success ? (payload.data.reason?.code ?? null) : null,
      reason: payload.success ? (payload.data.reason?.message ?? null) : null,
      contact_count: Math.max(ids.length, 1),
      created_at: row.created_at,
      updated_at: row.updated_at,
      last_outcome:
        last === undefined
          ? null
          : {
              attempt: last.attempt,
              status: last.status,
              recorded_at: last.recorded_at,
              retry_at: last.retry_at,
              message: detail?.success
                ? (ownItemNote(detail.data, contact_id, row.contact_id === contact_id) ??
                  detail.data.pending_contact_action ??
                  detail.data.message ??
                  null)
                : null,
            },
    });
  }
  return views;
}

// ---------------------------------------------------------------------------------------------
// The plain-text report

/** A readable report answering "why is this person (un)subscribed?": state first, then the history. */
export function formatExplanation(result: ExplainResult): string {
  switch (result.kind) {
    case "invalid_email":
      return result.message;
    case "invalid_as_of":
      return `--as-of: ${result.message}`;
    case "not_found":
      return `${result.message} Nothing is known about this address.`;
    case "found":
      break;
  }
  const lines: string[] = [];
  lines.push(
    `${result.email}: consent as of ${shortTime(result.as_of)}${result.as_of_requested ? " (events after this time are not counted)" : ""}`,
  );
  if (result.shared_address_note !== null) lines.push(`Note: ${result.shared_address_note}`);
  for (const person of result.people) {
    lines.push("");
    lines.push(...formatPerson(person));
  }
  return lines.join("\n");
}

const SENDABLE = "SENDABLE";
const NOT_SENDABLE = "NOT SENDABLE";

function stateLines(label: string, width: number, s: ScopeState, indent: string): string[] {
  const verdict = (s.sendable ? SENDABLE : NOT_SENDABLE).padEnd(NOT_SENDABLE.length);
  const decided =
    s.decided_by !== null ? ` — decided by ${s.decided_by.event_id} ${s.decided_by.description}` : "";
  const out = [`${indent}${label.padEnd(width)}  ${verdict}  rule ${s.rule}${decided}`];
  const more = `${indent}${" ".repeat(width + 2)}  `;
  out.push(`${more}${s.rule_explanation}`);
  if (s.pending_resubscribe !== null)
    out.push(
      `${more}waiting for the person to confirm: resubscribe requested ${shortTime(s.pending_resubscribe.requested_at)} (${s.pending_resubscribe.event_id})`,
    );
  const others = s.open_opt_outs.filter((o) => o.event_id !== s.decided_by?.event_id);
  for (const o of others) out.push(`${more}also open: ${o.event_id} ${o.description}`);
  return out;
}

function formatPerson(p: Explanation): string[] {
  const c = p.contact;
  const lines: string[] = [];
  const kind = c.type === "organization" ? "organisation" : "person";
  lines.push(`${c.name ?? "(no name)"} — ${kind} ${c.id}`);
  lines.push(
    `  primary email ${c.primary_email ?? "(none)"}${p.matched_by === "secondary_email" ? " (found by an older or secondary address)" : ""}`,
  );
  if (c.other_emails.length > 0) lines.push(`  other addresses: ${c.other_emails.join(", ")}`);
  if (c.flags.length > 0) lines.push(`  flags: ${c.flags.join(", ")}`);

  lines.push("");
  if (p.pairs.length === 0) {
    lines.push("  Current state (email; no pairs configured, so by scope)");
    const labels = p.scopes.map((s) => s.scope_label);
    const width = Math.max(...labels.map((l) => l.length));
    for (const s of p.scopes) lines.push(...stateLines(s.scope_label, width, s, "    "));
  }
  for (const pair of p.pairs) {
    lines.push(
      `  Current state in pair ${pair.pair_id} (email${pair.require_consent_basis ? "; a consent basis is required" : ""})`,
    );
    const label = (s: ConnectionState): string =>
      `${s.connection_id} (${s.scope.kind === "global" ? "all email" : s.scope.topic}${
        s.construct !== null ? `, ${s.construct}` : ""
      })`;
    const width = Math.max(...pair.connections.map((s) => label(s).length));
    for (const s of pair.connections) {
      lines.push(...stateLines(label(s), width, s, "    "));
      if (s.left_list_since !== null)
        lines.push(
          `    ${" ".repeat(width + 2)}  out of it since ${shortTime(s.left_list_since)} at the latest (left on the platform, or taken out for a topic opt-out): put back only for their own opt-in to the topic`,
        );
    }
  }
  const d = p.deliverability;
  lines.push(
    `  Deliverability: ${d.status.replace("_", " ")}${d.since !== null ? ` since ${shortTime(d.since)}` : ""}${
      d.decided_by !== null ? ` (${d.decided_by.event_id})` : ""
    } — tracked beside consent, never changes a decision.`,
  );

  lines.push("");
  const uncounted = p.timeline.filter((t) => !t.counted).length;
  lines.push(
    p.timeline.length === 0
      ? "  Timeline: no consent events in the ledger."
      : `  Timeline (${p.timeline.length} event${p.timeline.length === 1 ? "" : "s"}, by time of the act${
          uncounted > 0 ? `; ${uncounted} after the as-of time, not counted` : ""
        })`,
  );
  for (const t of p.timeline) {
    lines.push(`    ${t.description}${t.counted ? "" : "  [after as-of: not counted]"}`);
    lines.push(
      `        ${t.event_id}; observed ${shortTime(t.observed_at)}, recorded ${shortTime(t.recorded_at)}; ledger seq ${t.ledger.seq}, hash ${t.ledger.hash_prefix}`,
    );
    lines.push(`        evidence: ${t.evidence_summary}`);
  }

  lines.push("");
  lines.push(p.links.length === 0 ? "  Linked records: none." : "  What each system shows (as last read)");
  for (const l of p.links) {
    lines.push(
      `    ${l.connection_id} (${l.system_label ?? "connection not in the config"}): record ${l.external_id}, linked ${shortTime(l.linked_at)} (${l.origin.replaceAll("_", " ")})`,
    );
    if (l.snapshot === null) {
      lines.push("        not read yet");
      continue;
    }
    const s = l.snapshot.shows;
    lines.push(`        read ${shortTime(l.snapshot.observed_at)}`);
    if (s.kind === "unparsed") {
      lines.push(`        unrecognised record (${s.problem}): ${clip(JSON.stringify(s.raw), 400)}`);
      continue;
    }
    const state = [
      s.deleted ? "deleted" : null,
      s.inactive ? "inactive" : null,
      s.deceased ? "deceased" : null,
    ]
      .filter((x) => x !== null)
      .join(", ");
    if (state !== "") lines.push(`        record is ${state}`);
    for (const f of s.consent) lines.push(`        ${f.label}${f.role === "record" ? " (on record)" : ""}`);
    for (const e of s.emails) {
      const notes = [e.primary ? "primary" : null, e.inactive ? "inactive" : null]
        .filter((x) => x !== null)
        .join(", ");
      lines.push(`        email ${e.address}${notes !== "" ? ` (${notes})` : ""}`);
    }
    if (s.list_ids !== null)
      lines.push(`        lists: ${s.list_ids.length > 0 ? s.list_ids.join(", ") : "none"}`);
    if (s.stopped_list_ids.length > 0)
      lines.push(
        `        not emailed through (the list's own Do Not Contact): ${s.stopped_list_ids.join(", ")}`,
      );
  }

  if (p.review_items.length > 0) {
    lines.push("");
    lines.push("  Open review items");
    for (const r of p.review_items)
      lines.push(
        `    ${r.id} ${r.kind}${r.connection_id !== null ? ` in ${r.connection_id}` : ""}${
          r.external_id !== null ? ` record ${r.external_id}` : ""
        }, since ${shortTime(r.created_at)}: ${r.summary}`,
      );
  }
  if (p.recent_operations.length > 0) {
    lines.push("");
    lines.push(`  Recent operations (newest first, at most ${RECENT_OPERATIONS})`);
    for (const o of p.recent_operations) {
      const outcome =
        o.last_outcome === null
          ? ""
          : `; attempt ${o.last_outcome.attempt}: ${o.last_outcome.status}${
              o.last_outcome.message !== null ? ` (${o.last_outcome.message})` : ""
            }${o.last_outcome.retry_at !== null ? `, retry at ${shortTime(o.last_outcome.retry_at)}` : ""}`;
      lines.push(
        `    ${shortTime(o.updated_at)} ${o.kind} on ${o.target_connection}: ${o.status}${outcome}${
          o.contact_count > 1 ? ` [bulk, ${o.contact_count} contacts]` : ""
        }${o.reason !== null ? ` — ${o.reason}` : ""}`,
      );
    }
  }
  return lines;
}
