/** What the planner is given: one pair's mappings and policies, and per contact its ledger events and each linked record as last read. */
import type { ConsentEvent, ConsentEventId, Scope, TopicKey } from "../core/consent/consent-event";
import type { ConsentFact, ObservedScope } from "../core/consent/system-consent";
import type { CanonicalContact, ConnectionId, ContactId } from "../core/identity/canonical-contact";
import type { FieldOwner } from "../core/merge/merge-fields";
import type { ConsentGround, ImpliedConsentRule, LapseDraft } from "../core/consent/implied-consent";
export { leftAtKey, topicListKey } from "../core/consent/topic-list-baseline";

export type SyncDirection = "crm_to_platform" | "platform_to_crm" | "both";

/** One audience mapping of a platform: a CRM list and the platform list it stands for. */
export type PlanAudience = {
  crm_list_id: string;
  platform_list_id: string;
  direction: SyncDirection;
  /** What leaving the source list does on the other side; `keep` never removes anything. */
  delete_policy: "keep" | "remove_membership";
  /** The topic the platform list stands for, when it is one: nobody opted out of it is added. */
  topic?: TopicKey;
};

/** The baseline key of an audience's membership: `member` or `absent` when both sides last agreed. */
export const membershipKey = (a: PlanAudience): string => `list:${a.crm_list_id}:${a.platform_list_id}`;
/** The platform list (group, tag) a target keeps a topic in, when membership shows the topic. */
export const topicListOf = (t: PlanConsentTarget): { topic: TopicKey; list: string } | undefined =>
  t.shown_by === "membership" && t.scope.kind === "topic" && t.construct.kind === "construct"
    ? { topic: t.scope.topic, list: t.construct.construct.id }
    : undefined;

/**
 * One scope a connection keeps consent for: the ledger scope and the system's own construct that
 * stands for it (all email, the whole account, a consent category, a list…), from the config's topics.
 */
export type PlanConsentTarget = {
  scope: Scope;
  /** What an operation names: the scope in the system's own terms. */
  construct: ObservedScope;
  /**
   * How a record shows it: by its consent facts, or by its membership of the construct (a list
   * standing for a topic: not being in it is not being sent the topic).
   */
  shown_by: "facts" | "membership";
  /**
   * Only members carry the construct's consent (`ConstructSpec.members_only`): a record with no
   * fact for it is not a member, and nothing is written there for it.
   */
  members_only?: true;
  /** In messages: "all email", "consent category “Appeals”". */
  label: string;
};

/** How someone opted out becomes sendable again in a system (its manifest's capability). */
export type ResubscribePath = "confirmation_email" | "consent_record" | "contact_only";

/** One email-platform connection of the pair, as resolved from config (list ids already looked up). */
export type PlanPlatform = {
  connection_id: ConnectionId;
  /** The system, for the provenance written with an opt-out (e.g. "constant-contact"). */
  system: string;
  /** The ledger scope of the whole account: the topic it stands for, else global (seed 000). */
  account_scope: Scope;
  /** Every scope the platform keeps consent for: the whole account first, then topic constructs. */
  targets: readonly PlanConsentTarget[];
  /** The planner asks the platform for its confirmation email only where it sends one. */
  resubscribe: ResubscribePath;
  /** Whether the account may subscribe again someone it unsubscribed itself here. */
  account_resubscribe?: boolean;
  audiences: readonly PlanAudience[];
  /** The pair's rule for a platform that refuses long top-level domains (seed 002): at most this many letters. */
  max_tld_length?: number;
  /**
   * The platform's fields (by its own field names) that hold Concord's personal links, so the
   * campaigns it sends carry Concord's one-click URL and preference centre.
   */
  link_fields?: { one_click?: string; preferences?: string };
};

/** A person's links as written into platform fields (stable between runs, so nothing churns). */
export type PlanPersonalLinks = { one_click_url: string; preferences_url: string };

export type PlanPair = {
  id: string;
  crm: {
    connection_id: ConnectionId;
    system: string;
    /** All email first, then each topic's construct in the CRM (a consent category). */
    targets: readonly PlanConsentTarget[];
    /** The planner writes the person's own opt-in there only where the CRM records one. */
    resubscribe: ResubscribePath;
    /** Where the CRM records an undeliverable address (its manifest's capability), if it does. */
    deliverability_field?: { name: string; undeliverable: string };
  };
  platforms: readonly PlanPlatform[];
};

/** A profile field mapping. Canonical `first_name` and `last_name` travel in the records' own name slots. */
export type PlanFieldMapping = {
  canonical: string;
  crm: string;
  platform: string;
  direction: SyncDirection;
  owner: FieldOwner;
};

export type PlanPolicies = {
  unlinked_opt_outs: "apply_and_report" | "report_only";
  create_in_crm: boolean;
  require_consent_basis: boolean;
  /** When false, opt-outs first seen in the CRM are not pushed to the platforms. */
  propagate_crm_opt_outs: boolean;
  /** A CRM record that ended: its people are unsubscribed everywhere, and with `remove` also taken out. */
  ended_crm_records: "unsubscribe" | "remove";
};

export type RecordEmail = { address: string; primary: boolean };

/** What a system's record holds, as the last read saw it; shared by both sides. */
export type RecordProfile = {
  external_id: string;
  first_name?: string | null;
  last_name?: string | null;
  /** Other mapped fields, by the system's own field name. */
  fields: Readonly<Record<string, string | null>>;
  list_ids: readonly string[];
  deleted?: boolean;
  /** When the record last changed (ISO-8601 UTC), for fields owned by `latest`. */
  updated_at?: string;
};

/** The CRM record and the consent it currently shows, as its connector's typed facts. */
export type CrmRecordState = RecordProfile & {
  emails: readonly RecordEmail[];
  /** Lists the record is in whose own flag stops email through them (`ExternalRecord.stopped_list_ids`). */
  stopped_list_ids?: readonly string[];
  inactive?: boolean;
  deceased?: boolean;
  /** Dated acts that ground implied consent (the latest gift), as the connector read them. */
  consent_grounds?: readonly ConsentGround[];
  consent_state: readonly ConsentFact[];
};

/** A platform record and the consent it currently shows, as its connector's typed facts. */
export type PlatformRecordState = RecordProfile & {
  email: string;
  /** Archived on the platform (a Mailchimp member archived): kept out of every write but consent. */
  inactive?: boolean;
  /** Linked to the person only by its address: someone put it on the platform, not Concord. */
  matched_by_address?: boolean;
  /** Concord's own import made the record (its sign-up date is the import's, no act of the person's). */
  created_by_concord?: boolean;
  consent_state: readonly ConsentFact[];
  /** Whether the platform's confirmation email was already requested (Constant Contact sends one, ever). */
  resubscribe_requested: boolean;
};

/** The field values both sides last agreed on, by canonical field name. */
export type FieldBaseline = Readonly<Record<string, string | null>>;

export type PlanContact = {
  contact: CanonicalContact;
  /** The contact's consent events (any order; repeats count once). */
  events: readonly ConsentEvent[];
  /** The linked CRM record; absent when the contact is linked only on platforms. */
  crm?: CrmRecordState;
  /** Linked platform records by connection id; a platform absent here has no record of the contact. */
  platforms: Readonly<Record<ConnectionId, PlatformRecordState>>;
  /** Last agreed field values per platform connection (and the agreed `email`), when any. */
  baselines?: Readonly<Record<ConnectionId, FieldBaseline>>;
  /**
   * Addresses platforms refused for good under their own rules, by connection: the contact is
   * skipped there (`rejected_by_platform`) while it keeps the refused address.
   */
  rejections?: Readonly<Record<ConnectionId, { code: string; message: string; email_match_key: string }>>;
};

/** A change a pair's list rules make to a platform's lists (create, rename, delete), decided with its lists. */
export type ListChange = {
  connection_id: ConnectionId;
  reason: { code: "list_created" | "list_renamed" | "list_deleted"; message: string };
  operation:
    | { kind: "create_list"; name: string }
    | { kind: "rename_list"; list_id: string; name: string }
    | { kind: "delete_list"; list_id: string };
};

export type PlanInput = {
  pair: PlanPair;
  /** The list changes the pair's list rules call for; planned first, before any membership. */
  list_changes?: readonly ListChange[];
  fields: readonly PlanFieldMapping[];
  policies: PlanPolicies;
  /** The moment consent is evaluated at (ISO-8601 UTC): implied consent may have lapsed by then. */
  as_of: string;
  /** A content hash (hex), injected so the planner stays pure; operation ids derive from it. */
  hash: (text: string) => string;
  /**
   * A contact's personal links (injected, like `hash`: they are signed with a key the planner never
   * sees); without it no platform's link fields are written.
   */
  personal_links?: (contactId: ContactId) => PlanPersonalLinks | undefined;
  /**
   * The rules under which implied consent lapses (CASL), and the ledger's id for an opt-out by rule
   * (injected, like `hash`); without them no consent lapses.
   */
  implied_consent?: {
    rules: readonly ImpliedConsentRule[];
    event_id: (draft: LapseDraft) => ConsentEventId;
    /**
     * Lapses found are not acted on (the CRM could not confirm them): each such contact is planned
     * as if its consent had not lapsed. Every other contact is planned as without `defer`, so what
     * the plan contributes for it, and until when, is the same either way.
     */
    defer?: boolean;
  };
  /** Linked contacts; an iterable so a caller can stream them from the store. */
  contacts: Iterable<PlanContact>;
};
