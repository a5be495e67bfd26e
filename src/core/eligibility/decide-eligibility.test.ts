/** Table tests for eligibility: every reason code, all reasons listed, a sentence for each. */
import { describe, expect, it } from "vitest";
import { GLOBAL_SCOPE, topicScope, type ConsentEvent } from "../consent/consent-event";
import { foldChannelConsent } from "../consent/consent-state";
import type { CanonicalContact } from "../identity/canonical-contact";
import {
  INELIGIBILITY_CODES,
  decideEligibility,
  describeIneligibility,
  type EligibilityInput,
  type IneligibilityReason,
} from "./decide-eligibility";

const at = (s: number) => new Date(Date.UTC(2024, 0, 1) + s * 1000).toISOString();
const base = (id: string, s: number) => ({
  id: `evt_${id.padEnd(8, "0")}`,
  contact_id: "con_00000001",
  channel: "email" as const,
  source: { system: "mailchimp", connection: "mc_main" },
  occurred_at: at(s),
  observed_at: at(s),
  evidence: {},
});
const E = {
  globalOut: {
    kind: "opt_out",
    scope: GLOBAL_SCOPE,
    mechanism: "unsubscribe_link",
    actor: { kind: "contact" },
    ...base("gout", 1),
  },
  newsOut: {
    kind: "opt_out",
    scope: topicScope("news"),
    mechanism: "preference_page",
    actor: { kind: "contact" },
    ...base("nout", 1),
  },
  spam: {
    kind: "opt_out",
    scope: topicScope("news"),
    mechanism: "spam_complaint",
    actor: { kind: "contact" },
    ...base("spam", 2),
  },
  resub: {
    kind: "resubscribe_requested",
    scope: GLOBAL_SCOPE,
    mechanism: "admin_edit",
    actor: { kind: "account" },
    ...base("resub", 3),
  },
  implied: {
    kind: "opt_in",
    scope: GLOBAL_SCOPE,
    basis: "implied",
    expires_at: at(10),
    mechanism: "signup_form",
    actor: { kind: "contact" },
    ...base("impl", 1),
  },
  bounce: {
    kind: "deliverability",
    status: "hard_bounce",
    mechanism: "api",
    actor: { kind: "platform" },
    ...base("bnc", 4),
  },
  cleaned: {
    kind: "deliverability",
    status: "cleaned",
    mechanism: "api",
    actor: { kind: "platform" },
    ...base("cln", 4),
  },
  soft: {
    kind: "deliverability",
    status: "soft_bounce",
    mechanism: "api",
    actor: { kind: "platform" },
    ...base("soft", 4),
  },
} satisfies Record<string, ConsentEvent>;

const contact = (o: Partial<CanonicalContact> = {}): CanonicalContact => ({
  id: "con_00000001",
  type: "individual",
  first_name: "Jane",
  primary_email: "jane@example.org",
  other_emails: [],
  lifecycle: { inactive: false, deceased: false, erased: false },
  do_not_contact: false,
  ...o,
});
const input = (o: {
  contact?: Partial<CanonicalContact>;
  events?: ConsentEvent[];
  topic?: string;
  require?: boolean;
  audience?: boolean;
  rejection?: EligibilityInput["platform_rejection"];
}): EligibilityInput => ({
  contact: contact(o.contact),
  target: { connection: "mc_main", ...(o.topic !== undefined ? { topic: o.topic } : {}) },
  consent: foldChannelConsent(o.events ?? [], "email", {
    as_of: at(20),
    require_consent_basis: o.require ?? false,
  }),
  in_synced_audience: o.audience ?? true,
  ...(o.rejection ? { platform_rejection: o.rejection } : {}),
});
const codes = (i: EligibilityInput) => {
  const r = decideEligibility(i);
  return r.eligible ? [] : r.reasons.map((x) => x.code);
};

describe("decideEligibility", () => {
  it.each<[string, EligibilityInput, IneligibilityReason[] | "eligible"]>([
    ["a plain contact in an audience", input({}), "eligible"],
    ["a soft bounce is not a reason", input({ events: [E.soft] }), "eligible"],
    [
      "a topic opt-out does not touch another topic",
      input({ events: [E.newsOut], topic: "events" }),
      "eligible",
    ],
    ["a topic opt-out does not touch an unmapped audience", input({ events: [E.newsOut] }), "eligible"],
    ["lapsed implied consent without a basis requirement", input({ events: [E.implied] }), "eligible"],
    [
      "erased",
      input({ contact: { lifecycle: { inactive: false, deceased: false, erased: true } } }),
      [{ code: "erased" }],
    ],
    [
      "deceased",
      input({ contact: { lifecycle: { inactive: false, deceased: true, erased: false } } }),
      [{ code: "deceased" }],
    ],
    [
      "inactive",
      input({ contact: { lifecycle: { inactive: true, deceased: false, erased: false } } }),
      [{ code: "inactive" }],
    ],
    ["do not contact", input({ contact: { do_not_contact: true } }), [{ code: "do_not_contact" }]],
    ["no primary email", input({ contact: { primary_email: "  " } }), [{ code: "no_primary_email" }]],
    [
      "invalid email carries the identity reason",
      input({ contact: { primary_email: "jane@localhost" } }),
      [{ code: "invalid_email", email_reason: "domain_without_dot" }],
    ],
    [
      "global opt-out",
      input({ events: [E.globalOut] }),
      [{ code: "opted_out", scope: GLOBAL_SCOPE, rule: "global_opt_out", event_id: E.globalOut.id }],
    ],
    [
      "global opt-out on a topic audience",
      input({ events: [E.globalOut], topic: "news" }),
      [{ code: "opted_out", scope: GLOBAL_SCOPE, rule: "global_opt_out", event_id: E.globalOut.id }],
    ],
    [
      "topic opt-out",
      input({ events: [E.newsOut], topic: "news" }),
      [{ code: "opted_out", scope: topicScope("news"), rule: "topic_opt_out", event_id: E.newsOut.id }],
    ],
    [
      "spam complaint is global",
      input({ events: [E.spam], topic: "events" }),
      [{ code: "opted_out", scope: GLOBAL_SCOPE, rule: "spam_complaint", event_id: E.spam.id }],
    ],
    [
      "pending resubscribe beside the opt-out",
      input({ events: [E.globalOut, E.resub] }),
      [
        { code: "opted_out", scope: GLOBAL_SCOPE, rule: "global_opt_out", event_id: E.globalOut.id },
        { code: "pending_resubscribe", event_id: E.resub.id, requested_at: at(3) },
      ],
    ],
    ["no consent basis", input({ require: true }), [{ code: "no_consent_basis" }]],
    [
      "consent expired",
      input({ events: [E.implied], require: true }),
      [{ code: "consent_expired", event_id: E.implied.id }],
    ],
    [
      "hard bounce",
      input({ events: [E.bounce] }),
      [{ code: "undeliverable", status: "hard_bounce", event_id: E.bounce.id }],
    ],
    [
      "cleaned",
      input({ events: [E.cleaned] }),
      [{ code: "undeliverable", status: "cleaned", event_id: E.cleaned.id }],
    ],
    [
      "rejected by platform",
      input({
        rejection: { code: "compliance_state", message: "Address is on the platform's suppression list." },
      }),
      [
        {
          code: "rejected_by_platform",
          platform_code: "compliance_state",
          message: "Address is on the platform's suppression list.",
        },
      ],
    ],
    ["not in a synced audience", input({ audience: false }), [{ code: "not_in_synced_audience" }]],
  ])("%s", (_name, i, expected) => {
    const result = decideEligibility(i);
    expect(result).toEqual(
      expected === "eligible" ? { eligible: true } : { eligible: false, reasons: expected },
    );
  });

  it("lists every reason, in the stable order", () => {
    const everything = input({
      contact: {
        primary_email: "bad@@example.org",
        do_not_contact: true,
        lifecycle: { inactive: true, deceased: true, erased: true },
      },
      events: [E.globalOut, E.resub, E.bounce],
      audience: false,
      rejection: { code: "invalid" },
    });
    expect(codes(everything)).toEqual([
      "erased",
      "deceased",
      "inactive",
      "do_not_contact",
      "invalid_email",
      "opted_out",
      "pending_resubscribe",
      "undeliverable",
      "rejected_by_platform",
      "not_in_synced_audience",
    ]);
    const { primary_email: _absent, ...noEmail } = contact();
    expect(codes({ ...input({ require: true }), contact: noEmail })).toEqual([
      "no_primary_email",
      "no_consent_basis",
    ]);
  });

  it("has a sentence for every code", () => {
    const samples: IneligibilityReason[] = [
      { code: "erased" },
      { code: "deceased" },
      { code: "inactive" },
      { code: "do_not_contact" },
      { code: "no_primary_email" },
      { code: "invalid_email", email_reason: "missing_at" },
      { code: "opted_out", scope: GLOBAL_SCOPE, rule: "global_opt_out", event_id: "evt_00000000" },
      { code: "opted_out", scope: topicScope("news"), rule: "topic_opt_out", event_id: "evt_00000000" },
      { code: "opted_out", scope: GLOBAL_SCOPE, rule: "spam_complaint", event_id: "evt_00000000" },
      { code: "pending_resubscribe", event_id: "evt_00000000", requested_at: at(1) },
      { code: "no_consent_basis" },
      { code: "consent_expired", event_id: "evt_00000000" },
      { code: "undeliverable", status: "hard_bounce" },
      { code: "undeliverable", status: "cleaned" },
      { code: "rejected_by_platform", platform_code: "x" },
      { code: "rejected_by_platform", platform_code: "x", message: "Nope" },
      { code: "not_in_synced_audience" },
    ];
    expect(new Set(samples.map((s) => s.code))).toEqual(new Set(INELIGIBILITY_CODES));
    const sentences = samples.map(describeIneligibility);
    for (const s of sentences) expect(s).toMatch(/^[A-Z].*[.”]$/);
    expect(sentences[7]).toContain("news");
    expect(sentences[5]).toContain("no @");
  });

  it("refuses consent folded for another channel", () => {
    const i = input({});
    expect(() => decideEligibility({ ...i, consent: { ...i.consent, channel: "sms" } })).toThrow(
      /email consent/,
    );
  });
});
