/** Builders for planner tests: the example pair (Raiser's Edge NXT with a global and an "appeals" Constant Contact account), contacts, records and consent events. */
import type { Actor, ConsentEvent, Mechanism, Scope } from "../../src/core/consent/consent-event";
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

export const PAIR: PlanPair = {
  id: "re-nxt-constant-contact",
  crm: { connection_id: CRM, system: "blackbaud-renxt" },
  platforms: [
    {
      connection_id: MAIN,
      system: "constant-contact",
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
      topic: "appeals",
      crm_category: "Appeals",
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
    platform: "custom_field:Preferred name",
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
    consent: { requests_no_email: false, categories: {} },
    ...overrides,
  };
}

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
    consent: { unsubscribed: false, resubscribe_requested: false, permission_to_send: "implicit" },
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
