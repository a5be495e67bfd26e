/** Builders for planner tests: the example pair (Raiser's Edge NXT with a global and an "appeals" Constant Contact account), contacts, records and consent events. */
import {
  GLOBAL_SCOPE,
  topicScope,
  type Actor,
  type ConsentEvent,
  type Mechanism,
  type Scope,
} from "../../src/core/consent/consent-event";
import {
  ACCOUNT_OBSERVED,
  constructScope,
  GLOBAL_OBSERVED,
  type ConsentFact,
  type ObservedScope,
} from "../../src/core/consent/system-consent";
import type { CanonicalContact } from "../../src/core/identity/canonical-contact";
import type {
  CrmRecordState,
  PlanContact,
  PlanFieldMapping,
  PlanInput,
  PlanPair,
  PlanPolicies,
  PlatformRecordState,
} from "../../src/planner/plan-input";

export const CRM = "re-nxt";
export const MAIN = "cc-main";
export const APPEALS = "cc-appeals";

/** The CRM's construct for the topic "appeals" (a Raiser's Edge consent category). */
export const APPEALS_CATEGORY: ObservedScope = constructScope("consent_category", "Appeals");

export const PAIR: PlanPair = {
  id: "re-nxt-constant-contact",
  crm: {
    connection_id: CRM,
    system: "blackbaud-renxt",
    resubscribe: "consent_record",
    targets: [
      { scope: GLOBAL_SCOPE, construct: GLOBAL_OBSERVED, shown_by: "facts", label: "all email" },
      {
        scope: topicScope("appeals"),
        construct: APPEALS_CATEGORY,
        shown_by: "facts",
        label: "consent category “Appeals”",
      },
    ],
  },
  platforms: [
    {
      connection_id: MAIN,
      system: "constant-contact",
      account_scope: GLOBAL_SCOPE,
      targets: [
        { scope: GLOBAL_SCOPE, construct: ACCOUNT_OBSERVED, shown_by: "facts", label: "the whole account" },
      ],
      resubscribe: "confirmation_email",
      audiences: [
        {
          crm_list_id: "L-news",
          platform_list_id: "cc-news",
          direction: "crm_to_platform",
          delete_policy: "remove_membership",
        },
        { crm_list_id: "L-events", platform_list_id: "cc-events", direction: "both", delete_policy: "keep" },
      ],
    },
    {
      connection_id: APPEALS,
      system: "constant-contact",
      account_scope: topicScope("appeals"),
      targets: [
        {
          scope: topicScope("appeals"),
          construct: ACCOUNT_OBSERVED,
          shown_by: "facts",
          label: "the whole account",
        },
      ],
      resubscribe: "confirmation_email",
      audiences: [
        {
          crm_list_id: "L-appeals",
          platform_list_id: "cca-appeals",
          direction: "crm_to_platform",
          delete_policy: "keep",
        },
      ],
    },
  ],
};

export const FIELDS: PlanFieldMapping[] = [
  { canonical: "first_name", crm: "first", platform: "first_name", direction: "both", owner: "crm" },
  { canonical: "last_name", crm: "last", platform: "last_name", direction: "both", owner: "crm" },
  {
    canonical: "preferred_name",
    crm: "preferred_name",
    platform: "custom_field:3b6c7a14-0f6e-4b8e-9c1d-5a2e7f4d9b10",
    direction: "crm_to_platform",
    owner: "latest",
  },
  { canonical: "job_title", crm: "title", platform: "job_title", direction: "both", owner: "latest" },
];

export const POLICIES: PlanPolicies = {
  unlinked_opt_outs: "apply_and_report",
  create_in_crm: false,
  require_consent_basis: false,
  propagate_crm_opt_outs: true,
  ended_crm_records: "unsubscribe",
};

/** A deterministic, non-cryptographic hash (FNV-1a, 2 × 32 bits) so tests need no I/O. */
export function testHash(text: string): string {
  let a = 0x811c9dc5;
  let b = 0x01000193;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    a = Math.imul(a ^ ch, 0x01000193) >>> 0;
    b = Math.imul(b ^ ch, 0x811c9dc5) >>> 0;
  }
  return a.toString(16).padStart(8, "0") + b.toString(16).padStart(8, "0");
}

export const contactId = (n: number): string => `con_${String(n).padStart(8, "0")}`;

export function person(n: number, overrides: Partial<CanonicalContact> = {}): CanonicalContact {
  return {
    id: contactId(n),
    type: "individual",
    first_name: `First${n}`,
    last_name: `Last${n}`,
    primary_email: `p${n}@example.org`,
    other_emails: [],
    lifecycle: { inactive: false, deceased: false, erased: false },
    do_not_contact: false,
    ...overrides,
  };
}

export function crmRecord(n: number, overrides: Partial<CrmRecordState> = {}): CrmRecordState {
  return {
    external_id: `re-${n}`,
    emails: [{ address: `p${n}@example.org`, primary: true }],
    first_name: `First${n}`,
    last_name: `Last${n}`,
    fields: {},
    list_ids: [],
    consent_state: crmFacts({}),
    ...overrides,
  };
}

/** A consent fact of a record, as a connector would report it. */
export const fact = (
  scope: ObservedScope,
  status: ConsentFact["status"],
  extra: Partial<ConsentFact> = {},
): ConsentFact => ({
  channel: "email",
  scope,
  status,
  source: "test",
  label: status,
  role: "state",
  ...extra,
});

/**
 * A CRM record's consent facts: the global flag (a state with no history), consent records per
 * category, and the newest channel-wide consent record (a record beside the flag).
 */
export function crmFacts(shows: {
  global_opt_out?: boolean;
  categories?: Record<string, "opt_in" | "opt_out">;
  channel_record?: "opt_in" | "opt_out";
}): ConsentFact[] {
  const status = (r: "opt_in" | "opt_out"): ConsentFact["status"] =>
    r === "opt_out" ? "opted_out" : "opted_in";
  return [
    fact(GLOBAL_OBSERVED, shows.global_opt_out === true ? "opted_out" : "none", {
      source: "global_flag",
      unversioned: true,
    }),
    ...Object.entries(shows.categories ?? {}).map(([category, r]) =>
      fact(constructScope("consent_category", category), status(r), { source: "consent_record" }),
    ),
    ...(shows.channel_record !== undefined
      ? [
          fact(GLOBAL_OBSERVED, status(shows.channel_record), {
            source: "consent_record",
            role: "record" as const,
          }),
        ]
      : []),
  ];
}

/** A platform record's account-level consent: subscribed, or unsubscribed there. */
export const platformFacts = (unsubscribed: boolean): ConsentFact[] => [
  fact(ACCOUNT_OBSERVED, unsubscribed ? "opted_out" : "opted_in", { source: "subscription" }),
];

export function platformRecord(
  n: number,
  connection: string,
  overrides: Partial<PlatformRecordState> = {},
): PlatformRecordState {
  return {
    external_id: `${connection}-${n}`,
    email: `p${n}@example.org`,
    first_name: `First${n}`,
    last_name: `Last${n}`,
    fields: {},
    list_ids: [],
    consent_state: platformFacts(false),
    resubscribe_requested: false,
    ...overrides,
  };
}

const SYSTEM: Record<string, string> = {
  [CRM]: "blackbaud-renxt",
  [MAIN]: "constant-contact",
  [APPEALS]: "constant-contact",
};

type EventSpec = {
  contact: number;
  connection: string;
  at: string;
  scope?: Scope;
  mechanism?: Mechanism;
  actor?: Actor;
  id?: string;
};

const common = (s: EventSpec, kind: string) => ({
  id: s.id ?? `evt_${kind}_${s.contact}_${s.connection}_${s.at.replace(/[^0-9]/g, "")}`,
  contact_id: contactId(s.contact),
  channel: "email" as const,
  source: { system: SYSTEM[s.connection] ?? "unknown", connection: s.connection },
  mechanism: s.mechanism ?? "unknown",
  actor: s.actor ?? { kind: "contact" as const },
  occurred_at: s.at,
  observed_at: s.at,
  evidence: {},
});

export const optOut = (s: EventSpec): ConsentEvent => ({
  kind: "opt_out",
  scope: s.scope ?? { kind: "global" },
  ...common(s, "out"),
  mechanism: s.mechanism ?? "unsubscribe_link",
});

export const optIn = (s: EventSpec): ConsentEvent => ({
  kind: "opt_in",
  scope: s.scope ?? { kind: "global" },
  basis: "express",
  ...common(s, "in"),
  mechanism: s.mechanism ?? "resubscribe_confirmation",
});

export const resubscribeRequested = (s: EventSpec): ConsentEvent => ({
  kind: "resubscribe_requested",
  scope: s.scope ?? { kind: "global" },
  ...common(s, "rr"),
  mechanism: s.mechanism ?? "admin_edit",
  actor: s.actor ?? { kind: "account" },
});

export function planInput(
  contacts: PlanContact[],
  overrides: Partial<Omit<PlanInput, "contacts">> = {},
): PlanInput {
  return {
    pair: PAIR,
    fields: FIELDS,
    policies: POLICIES,
    as_of: "2026-06-01T00:00:00Z",
    hash: testHash,
    contacts,
    ...overrides,
  };
}
