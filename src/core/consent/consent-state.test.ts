/** Table and property-based tests for the consent fold: every rule of DESIGN.md §2 (1–5) and every ConsentRule code. */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  ConsentEventSchema,
  GLOBAL_SCOPE,
  MechanismSchema,
  topicScope,
  type Actor,
  type Channel,
  type ConsentBasis,
  type ConsentEvent,
  type DeliverabilityEvent,
  type Evidence,
  type Mechanism,
  type OptInEvent,
  type OptOutEvent,
  type ResubscribeRequestedEvent,
  type Scope,
} from "./consent-event";
import {
  compareEvents,
  decisionFor,
  foldChannelConsent,
  liftRule,
  optOutInitiator,
  uniqueEvents,
  type ChannelConsent,
  type ConsentRule,
  type FoldOptions,
  type OptOutRef,
  type ScopeDecision,
} from "./consent-state";

// ---------------------------------------------------------------------------------------------
// Builders: seconds since a fixed instant, short names for ids, sensible defaults per kind.
// ---------------------------------------------------------------------------------------------

const at = (s: number): string => new Date(Date.UTC(2024, 0, 1, 0, 0, 0) + s * 1000).toISOString();
const id = (name: string): string => `evt_${name.padEnd(8, "0")}`;
const NEWS = topicScope("news");
const EVENTS = topicScope("events");
const CONTACT: Actor = { kind: "contact" };
const ACCOUNT: Actor = { kind: "account", user: "admin@example.org" };
const OPERATOR: Actor = { kind: "operator", user: "ops@example.org" };
const PLATFORM: Actor = { kind: "platform" };

type Common = {
  at: number;
  scope?: Scope;
  actor?: Actor;
  mechanism?: Mechanism;
  evidence?: Evidence;
  channel?: Channel;
};

const common = (name: string, o: Common, mechanism: Mechanism, actor: Actor) => ({
  id: id(name),
  contact_id: "con_00000001",
  channel: o.channel ?? "email",
  source: { system: "constant_contact", connection: "cc_main" },
  mechanism: o.mechanism ?? mechanism,
  actor: o.actor ?? actor,
  occurred_at: at(o.at),
  observed_at: at(o.at),
  evidence: o.evidence ?? {},
});

const optOut = (name: string, o: Common): OptOutEvent => ({
  kind: "opt_out",
  scope: o.scope ?? GLOBAL_SCOPE,
  ...common(name, o, "unsubscribe_link", CONTACT),
});

const optIn = (name: string, o: Common & { basis?: ConsentBasis; expires?: number }): OptInEvent => ({
  kind: "opt_in",
  scope: o.scope ?? GLOBAL_SCOPE,
  basis: o.basis ?? "express",
  ...(o.expires !== undefined ? { expires_at: at(o.expires) } : {}),
  ...common(name, o, "signup_form", CONTACT),
});

const resub = (name: string, o: Common): ResubscribeRequestedEvent => ({
  kind: "resubscribe_requested",
  scope: o.scope ?? GLOBAL_SCOPE,
  ...common(name, o, "admin_edit", ACCOUNT),
});

const deliv = (name: string, o: Common & { status: DeliverabilityEvent["status"] }): DeliverabilityEvent => ({
  kind: "deliverability",
  status: o.status,
  ...common(name, o, "api", PLATFORM),
});

const fold = (events: readonly ConsentEvent[], options: Partial<FoldOptions> = {}): ChannelConsent =>
  foldChannelConsent(events, "email", { as_of: at(50), topics: ["news", "events"], ...options });

// ---------------------------------------------------------------------------------------------
// Table: one row per rule, decided for one scope.
// ---------------------------------------------------------------------------------------------

type Row = {
  name: string;
  events: ConsentEvent[];
  scope?: Scope;
  options?: Partial<FoldOptions>;
  expect: Partial<ScopeDecision> & { rule: ConsentRule; sendable: boolean };
};

const rows: Row[] = [
  // Nothing known.
  {
    name: "no events: no_opt_out",
    events: [],
    expect: { sendable: true, status: "no_preference", rule: "no_opt_out", open_opt_outs: [] },
  },
  {
    name: "no events, basis required: no_consent_basis",
    events: [],
    options: { require_consent_basis: true },
    expect: { sendable: false, status: "no_preference", rule: "no_consent_basis" },
  },
  {
    name: "topic with no events follows global",
    events: [],
    scope: NEWS,
    expect: { sendable: true, rule: "no_opt_out" },
  },

  // Bases.
  {
    name: "express opt-in",
    events: [optIn("a", { at: 1 })],
    expect: { sendable: true, status: "opted_in", rule: "express_consent", decided_by: id("a") },
  },
  {
    name: "implied opt-in without expiry",
    events: [optIn("a", { at: 1, basis: "implied" })],
    options: { require_consent_basis: true },
    expect: { sendable: true, rule: "implied_consent" },
  },
  {
    name: "implied opt-in not yet lapsed",
    events: [optIn("a", { at: 1, basis: "implied", expires: 60 })],
    options: { require_consent_basis: true },
    expect: { sendable: true, rule: "implied_consent", decided_by: id("a") },
  },
  {
    name: "implied opt-in lapses at expires_at exactly",
    events: [optIn("a", { at: 1, basis: "implied", expires: 50 })],
    options: { require_consent_basis: true },
    expect: {
      sendable: false,
      status: "no_preference",
      rule: "implied_consent_expired",
      decided_by: id("a"),
    },
  },
  {
    name: "lapsed implied opt-in without basis requirement stays sendable",
    events: [optIn("a", { at: 1, basis: "implied", expires: 10 })],
    expect: { sendable: true, status: "no_preference", rule: "implied_consent_expired" },
  },
  {
    name: "express expiry fields are ignored: express does not lapse",
    events: [optIn("a", { at: 1, basis: "express", expires: 10 })],
    options: { require_consent_basis: true },
    expect: { sendable: true, rule: "express_consent" },
  },
  {
    name: "a later lapsed implied opt-in does not hide an earlier express one",
    events: [optIn("a", { at: 1 }), optIn("b", { at: 2, basis: "implied", expires: 10 })],
    options: { require_consent_basis: true },
    expect: { sendable: true, rule: "express_consent", decided_by: id("a") },
  },
  {
    name: "an earlier standing implied opt-in survives a later lapsed one",
    events: [
      optIn("a", { at: 1, basis: "implied", expires: 60 }),
      optIn("b", { at: 2, basis: "implied", expires: 10 }),
    ],
    options: { require_consent_basis: true },
    expect: { sendable: true, rule: "implied_consent", decided_by: id("a") },
  },
  {
    name: "an opt-out clears every earlier basis",
    events: [optIn("a", { at: 1 }), optOut("o", { at: 2 })],
    options: { require_consent_basis: true },
    expect: { sendable: false, rule: "global_opt_out" },
  },
  {
    name: "an opt-out ends earlier consent: the lapsed opt-in after it is all that stands",
    events: [
      optIn("a", { at: 1 }),
      optOut("o", { at: 2 }),
      optIn("b", { at: 3, basis: "implied", expires: 10 }),
    ],
    options: { require_consent_basis: true },
    expect: { sendable: false, rule: "implied_consent_expired", decided_by: id("b") },
  },
  {
    name: "a global opt-in is a basis for a topic",
    events: [optIn("a", { at: 1 })],
    scope: NEWS,
    options: { require_consent_basis: true },
    expect: { sendable: true, rule: "express_consent" },
  },
  {
    name: "a topic opt-in is no basis for global",
    events: [optIn("a", { at: 1, scope: NEWS })],
    options: { require_consent_basis: true },
    expect: { sendable: false, rule: "no_consent_basis" },
  },

  // Scope (rule 2).
  {
    name: "global opt-out decides global",
    events: [optOut("o", { at: 1 })],
    expect: { sendable: false, status: "opted_out", rule: "global_opt_out", decided_by: id("o") },
  },
  {
    name: "global opt-out suppresses a topic",
    events: [optOut("o", { at: 1 })],
    scope: NEWS,
    expect: { sendable: false, rule: "global_opt_out", decided_by: id("o") },
  },
  {
    name: "global opt-out suppresses a topic no event names",
    events: [optOut("o", { at: 1 })],
    scope: topicScope("appeals"),
    expect: { sendable: false, rule: "global_opt_out" },
  },
  {
    name: "topic opt-out decides its topic",
    events: [optOut("o", { at: 1, scope: NEWS })],
    scope: NEWS,
    expect: { sendable: false, rule: "topic_opt_out", decided_by: id("o") },
  },
  {
    name: "topic opt-out leaves global alone",
    events: [optOut("o", { at: 1, scope: NEWS })],
    expect: { sendable: true, rule: "no_opt_out" },
  },
  {
    name: "topic opt-out leaves other topics alone",
    events: [optOut("o", { at: 1, scope: NEWS })],
    scope: EVENTS,
    expect: { sendable: true, rule: "no_opt_out" },
  },
  {
    name: "the latest open opt-out decides",
    events: [optOut("o1", { at: 1 }), optOut("o2", { at: 2, scope: NEWS })],
    scope: NEWS,
    expect: { sendable: false, rule: "topic_opt_out", decided_by: id("o2") },
  },

  // Spam complaints (rule 5).
  {
    name: "spam complaint is its own rule",
    events: [optOut("s", { at: 1, mechanism: "spam_complaint" })],
    expect: { sendable: false, rule: "spam_complaint", decided_by: id("s") },
  },
  {
    name: "topic-scoped spam complaint is global anyway",
    events: [optOut("s", { at: 1, mechanism: "spam_complaint", scope: NEWS })],
    expect: { sendable: false, rule: "spam_complaint" },
  },
  {
    name: "topic-scoped spam complaint reaches other topics",
    events: [optOut("s", { at: 1, mechanism: "spam_complaint", scope: NEWS })],
    scope: EVENTS,
    expect: { sendable: false, rule: "spam_complaint" },
  },
  {
    name: "account cannot undo a spam complaint",
    events: [
      optOut("s", { at: 1, mechanism: "spam_complaint", actor: ACCOUNT }),
      optIn("i", { at: 2, actor: ACCOUNT, mechanism: "admin_edit" }),
    ],
    expect: { sendable: false, rule: "spam_complaint" },
  },
  {
    name: "person's topic opt-in lifts a spam complaint for that topic",
    events: [optOut("s", { at: 1, mechanism: "spam_complaint" }), optIn("i", { at: 2, scope: NEWS })],
    scope: NEWS,
    expect: { sendable: true, rule: "lifted_by_contact_opt_in" },
  },
  {
    name: "…but not for another topic",
    events: [optOut("s", { at: 1, mechanism: "spam_complaint" }), optIn("i", { at: 2, scope: NEWS })],
    scope: EVENTS,
    expect: { sendable: false, rule: "spam_complaint" },
  },

  // Sync never re-subscribes (rule 3).
  {
    name: "person's later opt-in lifts",
    events: [optOut("o", { at: 1 }), optIn("i", { at: 2 })],
    expect: { sendable: true, status: "opted_in", rule: "lifted_by_contact_opt_in", decided_by: id("i") },
  },
  {
    name: "opt-out wins at equal timestamps",
    events: [optIn("i", { at: 1 }), optOut("o", { at: 1 })],
    expect: { sendable: false, rule: "global_opt_out" },
  },
  {
    name: "opt-out wins at equal timestamps whatever the ids",
    events: [optOut("z", { at: 1 }), optIn("a", { at: 1 })],
    expect: { sendable: false, rule: "global_opt_out" },
  },
  {
    name: "an earlier opt-in does not lift",
    events: [optIn("i", { at: 1 }), optOut("o", { at: 2 })],
    expect: { sendable: false, rule: "global_opt_out" },
  },
  {
    name: "contact opt-in via import does not lift",
    events: [optOut("o", { at: 1 }), optIn("i", { at: 2, mechanism: "import" })],
    expect: { sendable: false, rule: "global_opt_out" },
  },
  {
    name: "contact opt-in via sync does not lift",
    events: [optOut("o", { at: 1 }), optIn("i", { at: 2, mechanism: "sync" })],
    expect: { sendable: false, rule: "global_opt_out" },
  },
  {
    name: "Concord's own copy of the lifting opt-in is no basis, whatever the ids at one instant (a)",
    events: [
      optOut("o", { at: 1 }),
      optIn("a", { at: 2, basis: "implied" }),
      optIn("b", { at: 2, mechanism: "sync", actor: PLATFORM }),
    ],
    expect: { sendable: true, rule: "lifted_by_contact_opt_in", decided_by: id("a") },
  },
  {
    name: "Concord's own copy of the lifting opt-in is no basis, whatever the ids at one instant (b)",
    events: [
      optOut("o", { at: 1 }),
      optIn("b", { at: 2, basis: "implied" }),
      optIn("a", { at: 2, mechanism: "sync", actor: PLATFORM }),
    ],
    expect: { sendable: true, rule: "lifted_by_contact_opt_in", decided_by: id("b") },
  },
  {
    name: "Concord's own copy alone is no consent basis",
    events: [optIn("c", { at: 2, mechanism: "sync", actor: PLATFORM })],
    options: { require_consent_basis: true },
    expect: { sendable: false, rule: "no_consent_basis" },
  },
  {
    name: "double opt-in confirmation lifts",
    events: [optOut("o", { at: 1 }), optIn("i", { at: 2, mechanism: "double_opt_in_confirmation" })],
    expect: { sendable: true, rule: "lifted_by_contact_opt_in" },
  },
  {
    name: "platform resubscribe confirmation lifts",
    events: [optOut("o", { at: 1 }), optIn("i", { at: 2, mechanism: "resubscribe_confirmation" })],
    expect: { sendable: true, rule: "lifted_by_contact_opt_in" },
  },
  {
    name: "operator override with request reference lifts",
    events: [
      optOut("o", { at: 1 }),
      optIn("i", {
        at: 2,
        actor: OPERATOR,
        mechanism: "written_request",
        evidence: { request_reference: "letter-2024-17" },
      }),
    ],
    expect: { sendable: true, rule: "lifted_by_operator_override", decided_by: id("i") },
  },
  {
    name: "operator override without evidence does not lift",
    events: [optOut("o", { at: 1 }), optIn("i", { at: 2, actor: OPERATOR, mechanism: "admin_edit" })],
    expect: { sendable: false, rule: "global_opt_out" },
  },
  {
    name: "operator override with blank reference does not lift",
    events: [
      optOut("o", { at: 1 }),
      optIn("i", { at: 2, actor: OPERATOR, evidence: { request_reference: "  " } }),
    ],
    expect: { sendable: false, rule: "global_opt_out" },
  },
  {
    name: "a person's phone request staff recorded, without a reference, does not lift: it asks them to confirm",
    events: [optOut("o", { at: 1 }), optIn("i", { at: 2, mechanism: "phone_request" })],
    expect: {
      sendable: false,
      rule: "global_opt_out",
      pending_resubscribe: { event_id: id("i"), requested_at: at(2) },
    },
  },
  {
    name: "a person's written request staff recorded with its reference lifts",
    events: [
      optOut("o", { at: 1 }),
      optIn("i", { at: 2, mechanism: "written_request", evidence: { request_reference: "letter-2024-18" } }),
    ],
    expect: { sendable: true, rule: "lifted_by_contact_opt_in", decided_by: id("i") },
  },
  {
    name: "a person's phone request staff recorded is a basis where nothing was opted out",
    events: [optIn("i", { at: 2, mechanism: "phone_request" })],
    options: { require_consent_basis: true },
    expect: { sendable: true, rule: "express_consent", decided_by: id("i") },
  },
  {
    name: "an opt-in dated after Concord saw it took place by then: it lifts no opt-out made in between",
    events: [optOut("o", { at: 5 }), { ...optIn("i", { at: 9 }), observed_at: at(3) }],
    expect: { sendable: false, rule: "global_opt_out", decided_by: id("o") },
  },
  {
    name: "an opt-out dated after Concord saw it took place by then: the person's own later opt-in lifts it",
    events: [{ ...optOut("o", { at: 9 }), observed_at: at(3) }, optIn("i", { at: 5 })],
    expect: { sendable: true, rule: "lifted_by_contact_opt_in", decided_by: id("i") },
  },
  {
    name: "platform opt-in never lifts",
    events: [optOut("o", { at: 1 }), optIn("i", { at: 2, actor: PLATFORM, mechanism: "api" })],
    expect: { sendable: false, rule: "global_opt_out" },
  },
  {
    name: "a later opt-out re-suppresses",
    events: [optOut("o1", { at: 1 }), optIn("i", { at: 2 }), optOut("o2", { at: 3 })],
    expect: { sendable: false, rule: "global_opt_out", decided_by: id("o2") },
  },
  {
    name: "an opt-in lifts every earlier opt-out it qualifies for",
    events: [
      optOut("o1", { at: 1 }),
      optOut("o2", { at: 2, scope: NEWS }),
      optIn("i", { at: 3, scope: NEWS }),
    ],
    scope: NEWS,
    expect: { sendable: true, rule: "lifted_by_contact_opt_in" },
  },

  // Who acted (rule 4).
  {
    name: "account undoes its own opt-out",
    events: [
      optOut("o", { at: 1, actor: ACCOUNT, mechanism: "admin_edit" }),
      optIn("i", { at: 2, actor: ACCOUNT, mechanism: "admin_edit" }),
    ],
    expect: { sendable: true, rule: "lifted_by_account_opt_in", decided_by: id("i") },
  },
  {
    name: "account undoes a platform opt-out (expiry rule)",
    events: [
      optOut("o", { at: 1, actor: PLATFORM, mechanism: "expiry_rule" }),
      optIn("i", { at: 2, actor: ACCOUNT, mechanism: "api" }),
    ],
    expect: { sendable: true, rule: "lifted_by_account_opt_in" },
  },
  {
    name: "account clearing a restriction does not undo the opt-out the record's ending made (marked deceased)",
    events: [
      optOut("end", {
        at: 1,
        actor: ACCOUNT,
        mechanism: "admin_edit",
        evidence: { source_record_id: "7731:deceased" },
      }),
      optOut("o", { at: 1, actor: ACCOUNT, mechanism: "admin_edit" }),
      optIn("i", { at: 2, actor: ACCOUNT, mechanism: "admin_edit" }),
    ],
    expect: { sendable: false, rule: "global_opt_out", decided_by: id("end") },
  },
  {
    name: "account cannot undo the person's opt-out",
    events: [optOut("o", { at: 1 }), optIn("i", { at: 2, actor: ACCOUNT, mechanism: "admin_edit" })],
    expect: { sendable: false, rule: "global_opt_out" },
  },
  {
    name: "account cannot undo staff recording the person's phone request",
    events: [
      optOut("o", { at: 1, actor: ACCOUNT, mechanism: "phone_request" }),
      optIn("i", { at: 2, actor: ACCOUNT, mechanism: "admin_edit" }),
    ],
    expect: { sendable: false, rule: "global_opt_out" },
  },
  {
    name: "account cannot undo an unsubscribe link mislabelled as account",
    events: [
      optOut("o", { at: 1, actor: ACCOUNT, mechanism: "unsubscribe_link" }),
      optIn("i", { at: 2, actor: ACCOUNT, mechanism: "admin_edit" }),
    ],
    expect: { sendable: false, rule: "global_opt_out" },
  },
  {
    name: "account lifts only its own opt-out of two",
    events: [
      optOut("c", { at: 1 }),
      optOut("a", { at: 2, actor: ACCOUNT, mechanism: "admin_edit" }),
      optIn("i", { at: 3, actor: ACCOUNT, mechanism: "admin_edit" }),
    ],
    expect: { sendable: false, rule: "global_opt_out", decided_by: id("c") },
  },

  // Global and topic opt-ins.
  {
    name: "global opt-in lifts a global opt-out",
    events: [optOut("o", { at: 1 }), optIn("i", { at: 2 })],
    scope: NEWS,
    expect: { sendable: true, rule: "lifted_by_contact_opt_in" },
  },
  {
    name: "global opt-in does not reopen a topic the person left",
    events: [optOut("o", { at: 1, scope: NEWS }), optIn("i", { at: 2 })],
    scope: NEWS,
    expect: { sendable: false, rule: "topic_opt_out", decided_by: id("o") },
  },
  {
    name: "…while global is opted in",
    events: [optOut("o", { at: 1, scope: NEWS }), optIn("i", { at: 2 })],
    expect: { sendable: true, rule: "express_consent" },
  },
  {
    name: "topic opt-in lifts its topic's opt-out",
    events: [optOut("o", { at: 1, scope: NEWS }), optIn("i", { at: 2, scope: NEWS })],
    scope: NEWS,
    expect: { sendable: true, rule: "lifted_by_contact_opt_in" },
  },
  {
    name: "topic opt-in does not lift another topic",
    events: [optOut("o", { at: 1, scope: NEWS }), optIn("i", { at: 2, scope: EVENTS })],
    scope: NEWS,
    expect: { sendable: false, rule: "topic_opt_out" },
  },
  {
    name: "topic opt-in lifts a global opt-out for its topic",
    events: [optOut("o", { at: 1 }), optIn("i", { at: 2, scope: NEWS })],
    scope: NEWS,
    expect: { sendable: true, rule: "lifted_by_contact_opt_in" },
  },
  {
    name: "…not for other topics",
    events: [optOut("o", { at: 1 }), optIn("i", { at: 2, scope: NEWS })],
    scope: EVENTS,
    expect: { sendable: false, rule: "global_opt_out" },
  },
  {
    name: "…not for global",
    events: [optOut("o", { at: 1 }), optIn("i", { at: 2, scope: NEWS })],
    expect: { sendable: false, rule: "global_opt_out" },
  },

  // Resubscribe requests.
  {
    name: "resubscribe request does not lift, shows pending",
    events: [optOut("o", { at: 1 }), resub("r", { at: 2 })],
    expect: {
      sendable: false,
      rule: "global_opt_out",
      pending_resubscribe: { event_id: id("r"), requested_at: at(2) },
    },
  },
  {
    name: "global resubscribe request is pending on a topic",
    events: [optOut("o", { at: 1, scope: NEWS }), resub("r", { at: 2 })],
    scope: NEWS,
    expect: {
      sendable: false,
      rule: "topic_opt_out",
      pending_resubscribe: { event_id: id("r"), requested_at: at(2) },
    },
  },
  {
    name: "resubscribe request without an opt-out is nothing",
    events: [resub("r", { at: 1 })],
    expect: { sendable: true, rule: "no_opt_out", open_opt_outs: [] },
  },
  {
    name: "resubscribe request is no basis",
    events: [resub("r", { at: 1 })],
    options: { require_consent_basis: true },
    expect: { sendable: false, rule: "no_consent_basis" },
  },
  {
    name: "the person's confirmation clears the pending request",
    events: [
      optOut("o", { at: 1 }),
      resub("r", { at: 2 }),
      optIn("i", { at: 3, mechanism: "resubscribe_confirmation" }),
    ],
    expect: { sendable: true, rule: "lifted_by_contact_opt_in" },
  },
  {
    name: "a new opt-out clears the pending request",
    events: [optOut("o", { at: 1 }), resub("r", { at: 2 }), optOut("o2", { at: 3 })],
    expect: { sendable: false, rule: "global_opt_out", decided_by: id("o2") },
  },

  // Deliverability and channels.
  {
    name: "hard bounce is not an opt-out",
    events: [deliv("d", { at: 1, status: "hard_bounce" })],
    expect: { sendable: true, rule: "no_opt_out" },
  },
  {
    name: "cleaned is not an opt-out",
    events: [optIn("i", { at: 1 }), deliv("d", { at: 2, status: "cleaned" })],
    expect: { sendable: true, rule: "express_consent" },
  },
  {
    name: "another channel's opt-out is ignored",
    events: [optOut("o", { at: 1, channel: "sms" })],
    expect: { sendable: true, rule: "no_opt_out" },
  },
  {
    name: "another channel's opt-in lifts nothing",
    events: [optOut("o", { at: 1 }), optIn("i", { at: 2, channel: "sms" })],
    expect: { sendable: false, rule: "global_opt_out" },
  },
];

describe("foldChannelConsent: rules", () => {
  it.each(rows)("$name", ({ events, scope, options, expect: expected }) => {
    const state = fold(events, options);
    const decision = decisionFor(state, scope ?? GLOBAL_SCOPE);
    expect(decision).toMatchObject(expected);
    if (expected.pending_resubscribe === undefined) expect(decision.pending_resubscribe).toBeUndefined();
  });

  it("covers every ConsentRule code", () => {
    const all = {
      no_opt_out: true,
      express_consent: true,
      implied_consent: true,
      implied_consent_expired: true,
      no_consent_basis: true,
      global_opt_out: true,
      topic_opt_out: true,
      spam_complaint: true,
      lifted_by_contact_opt_in: true,
      lifted_by_operator_override: true,
      lifted_by_account_opt_in: true,
    } satisfies Record<ConsentRule, true>;
    const seen = new Set(rows.map((r) => r.expect.rule));
    expect([...seen].sort()).toEqual(Object.keys(all).sort());
  });

  it("lists the open opt-outs with provenance and who initiated them", () => {
    const state = fold([
      optOut("c", { at: 1, mechanism: "spam_complaint", scope: NEWS }),
      optOut("a", { at: 2, actor: ACCOUNT, mechanism: "admin_edit", scope: NEWS }),
    ]);
    expect(state.topics.news?.open_opt_outs).toEqual<OptOutRef[]>([
      {
        event_id: id("c"),
        scope: GLOBAL_SCOPE,
        initiated_by: "contact",
        occurred_at: at(1),
        mechanism: "spam_complaint",
        source: { system: "constant_contact", connection: "cc_main" },
      },
      {
        event_id: id("a"),
        scope: NEWS,
        initiated_by: "account",
        occurred_at: at(2),
        mechanism: "admin_edit",
        source: { system: "constant_contact", connection: "cc_main" },
      },
    ]);
    expect(state.global.open_opt_outs.map((o) => o.event_id)).toEqual([id("c")]);
  });

  it("decides every topic named by an event or an option, sorted", () => {
    const state = foldChannelConsent(
      [optOut("o", { at: 1, scope: topicScope("zeta") }), optIn("i", { at: 1, scope: topicScope("alpha") })],
      "email",
      {
        as_of: at(5),
        topics: ["mid"],
      },
    );
    expect(Object.keys(state.topics)).toEqual(["alpha", "mid", "zeta"]);
    expect(state.channel).toBe("email");
  });

  it("tracks deliverability beside consent; the latest wins", () => {
    expect(fold([]).deliverability).toEqual({ status: "deliverable" });
    expect(fold([deliv("d1", { at: 1, status: "hard_bounce" })]).deliverability).toEqual({
      status: "hard_bounce",
      decided_by: id("d1"),
      since: at(1),
    });
    expect(
      fold([deliv("d2", { at: 2, status: "deliverable" }), deliv("d1", { at: 1, status: "cleaned" })])
        .deliverability.status,
    ).toBe("deliverable");
    expect(fold([deliv("d1", { at: 1, status: "cleaned", channel: "sms" })]).deliverability.status).toBe(
      "deliverable",
    );
  });

  it("ignores a repeated event", () => {
    const o = optOut("o", { at: 1, actor: ACCOUNT, mechanism: "admin_edit" });
    expect(uniqueEvents([o, o, { ...o }])).toHaveLength(1);
    expect(fold([o, o]).global.open_opt_outs).toHaveLength(1);
  });

  it("decisionFor falls back to global for a topic the fold did not decide", () => {
    const state = foldChannelConsent([optOut("o", { at: 1 })], "email", { as_of: at(5) });
    expect(decisionFor(state, topicScope("unmapped"))).toBe(state.global);
  });
});

describe("compareEvents, optOutInitiator, liftRule", () => {
  it("orders by time, then opt-outs first, then by id", () => {
    const events = [
      optIn("a", { at: 1 }),
      resub("b", { at: 1 }),
      deliv("c", { at: 1, status: "soft_bounce" }),
      optOut("d", { at: 1 }),
      optOut("e", { at: 0 }),
      optOut("f", { at: 1 }),
    ];
    expect([...events].sort(compareEvents).map((e) => e.id)).toEqual(["e", "d", "f", "c", "b", "a"].map(id));
  });

  it.each<[string, OptOutEvent, "contact" | "account"]>([
    ["contact link", optOut("x", { at: 1 }), "contact"],
    ["account admin edit", optOut("x", { at: 1, actor: ACCOUNT, mechanism: "admin_edit" }), "account"],
    ["account import", optOut("x", { at: 1, actor: { kind: "account" }, mechanism: "import" }), "account"],
    ["account phone request", optOut("x", { at: 1, actor: ACCOUNT, mechanism: "phone_request" }), "contact"],
    [
      "account written request",
      optOut("x", { at: 1, actor: ACCOUNT, mechanism: "written_request" }),
      "contact",
    ],
    [
      "account one-click (mislabelled)",
      optOut("x", { at: 1, actor: ACCOUNT, mechanism: "one_click_header" }),
      "contact",
    ],
    [
      "account preference page (mislabelled)",
      optOut("x", { at: 1, actor: ACCOUNT, mechanism: "preference_page" }),
      "contact",
    ],
    [
      "platform spam complaint",
      optOut("x", { at: 1, actor: PLATFORM, mechanism: "spam_complaint" }),
      "contact",
    ],
    ["platform expiry", optOut("x", { at: 1, actor: PLATFORM, mechanism: "expiry_rule" }), "account"],
    ["operator", optOut("x", { at: 1, actor: OPERATOR, mechanism: "admin_edit" }), "contact"],
  ])("optOutInitiator: %s", (_name, event, expected) => {
    expect(optOutInitiator(event)).toBe(expected);
  });

  const ref = (o: Partial<OptOutRef>): OptOutRef => ({
    event_id: id("o"),
    scope: GLOBAL_SCOPE,
    initiated_by: "contact",
    occurred_at: at(1),
    mechanism: "unsubscribe_link",
    source: { system: "constant_contact", connection: "cc_main" },
    ...o,
  });
  it.each<[string, OptInEvent, OptOutRef, ConsentRule | null]>([
    ["contact, later", optIn("i", { at: 2 }), ref({}), "lifted_by_contact_opt_in"],
    ["contact, same instant", optIn("i", { at: 1 }), ref({}), null],
    ["contact, earlier", optIn("i", { at: 0 }), ref({}), null],
    ["contact via import", optIn("i", { at: 2, mechanism: "import" }), ref({}), null],
    ["global in, topic out", optIn("i", { at: 2 }), ref({ scope: NEWS }), null],
    ["topic in, global out", optIn("i", { at: 2, scope: NEWS }), ref({}), "lifted_by_contact_opt_in"],
    ["topic in, other topic out", optIn("i", { at: 2, scope: NEWS }), ref({ scope: EVENTS }), null],
    [
      "operator with reference",
      optIn("i", { at: 2, actor: OPERATOR, evidence: { request_reference: "t-1" } }),
      ref({}),
      "lifted_by_operator_override",
    ],
    ["operator without reference", optIn("i", { at: 2, actor: OPERATOR }), ref({}), null],
    [
      "account, account opt-out",
      optIn("i", { at: 2, actor: ACCOUNT }),
      ref({ initiated_by: "account", mechanism: "admin_edit" }),
      "lifted_by_account_opt_in",
    ],
    [
      "account, another account's opt-out (a CRM flag)",
      optIn("i", { at: 2, actor: ACCOUNT }),
      ref({
        initiated_by: "account",
        mechanism: "admin_edit",
        source: { system: "blackbaud-renxt", connection: "re-nxt" },
      }),
      null,
    ],
    [
      "account, Concord's copy elsewhere of the account's own opt-out",
      optIn("i", { at: 2, actor: ACCOUNT }),
      ref({
        initiated_by: "account",
        mechanism: "sync",
        source: { system: "blackbaud-renxt", connection: "re-nxt" },
      }),
      "lifted_by_account_opt_in",
    ],
    ["account, contact opt-out", optIn("i", { at: 2, actor: ACCOUNT }), ref({}), null],
    [
      "account topic opt-in, the account's own opt-out of that topic",
      optIn("i", { at: 2, actor: ACCOUNT, scope: NEWS }),
      ref({ initiated_by: "account", mechanism: "admin_edit", scope: NEWS }),
      "lifted_by_account_opt_in",
    ],
    [
      // A topic's mark cleared is not the address's whole restriction undone (GrowthZone).
      "account topic opt-in, the account's own global opt-out",
      optIn("i", { at: 2, actor: ACCOUNT, scope: NEWS }),
      ref({ initiated_by: "account", mechanism: "admin_edit" }),
      null,
    ],
    [
      "account, account spam complaint",
      optIn("i", { at: 2, actor: ACCOUNT }),
      ref({ initiated_by: "account", mechanism: "spam_complaint" }),
      null,
    ],
    [
      "platform",
      optIn("i", { at: 2, actor: PLATFORM }),
      ref({ initiated_by: "account", mechanism: "admin_edit" }),
      null,
    ],
  ])("liftRule: %s", (_name, event, optOutRef, expected) => {
    expect(liftRule(event, optOutRef)).toBe(expected);
  });
});

// ---------------------------------------------------------------------------------------------
// Properties. Times come from a handful of seconds so equal timestamps are common.
// ---------------------------------------------------------------------------------------------

const RUNS = { numRuns: 1000 } as const;
const TOPICS = ["news", "events", "appeals"] as const;
const ALL_SCOPES: Scope[] = [GLOBAL_SCOPE, ...TOPICS.map(topicScope)];
const AS_OF = 8;

const timeArb = fc.integer({ min: 0, max: 5 });
const scopeArb: fc.Arbitrary<Scope> = fc.oneof(
  { weight: 2, arbitrary: fc.constant(GLOBAL_SCOPE) },
  { weight: 3, arbitrary: fc.constantFrom(...TOPICS).map(topicScope) },
);
const actorArb: fc.Arbitrary<Actor> = fc.constantFrom<Actor>(
  CONTACT,
  ACCOUNT,
  { kind: "account" },
  OPERATOR,
  PLATFORM,
);
const mechanismArb = fc.constantFrom(...MechanismSchema.options);
const optInMechanismArb = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.constantFrom<Mechanism>("signup_form", "preference_page", "double_opt_in_confirmation"),
  },
  { weight: 2, arbitrary: fc.constantFrom<Mechanism>("import", "sync") },
  { weight: 2, arbitrary: mechanismArb },
);
const evidenceArb = fc.constantFrom<Evidence>(
  {},
  { request_reference: "ticket-42" },
  { request_reference: " " },
);
const channelArb = fc.constantFrom<Channel>("email", "email", "email", "sms");

type Draft = ConsentEvent extends infer E ? (E extends ConsentEvent ? Omit<E, "id"> : never) : never;
const commonArb = fc.record({
  channel: channelArb,
  actor: actorArb,
  mechanism: mechanismArb,
  evidence: evidenceArb,
  t: timeArb,
  // Seen a little after the act, or (a date typed by hand) before the date it carries.
  seen: fc.integer({ min: -3, max: 2 }),
});
const withCommon = (c: {
  channel: Channel;
  actor: Actor;
  mechanism: Mechanism;
  evidence: Evidence;
  t: number;
  seen: number;
}) => ({
  contact_id: "con_00000001",
  channel: c.channel,
  source: { system: "mailchimp", connection: "mc_main" },
  mechanism: c.mechanism,
  actor: c.actor,
  occurred_at: at(c.t),
  observed_at: at(c.t + c.seen),
  evidence: c.evidence,
});

const optOutDraftArb = fc.tuple(commonArb, scopeArb, fc.boolean()).map(([c, scope, spam]): Draft => ({
  kind: "opt_out",
  scope,
  ...withCommon({ ...c, mechanism: spam ? "spam_complaint" : c.mechanism }),
}));
const optInDraftArb = fc
  .tuple(
    commonArb,
    scopeArb,
    optInMechanismArb,
    fc.constantFrom<ConsentBasis>("express", "implied"),
    fc.option(fc.integer({ min: 0, max: 12 }), { nil: undefined }),
  )
  .map(([c, scope, mechanism, basis, expires]): Draft => ({
    kind: "opt_in",
    scope,
    basis,
    ...(expires !== undefined ? { expires_at: at(expires) } : {}),
    ...withCommon({ ...c, mechanism }),
  }));
const resubDraftArb = fc
  .tuple(commonArb, scopeArb)
  .map(([c, scope]): Draft => ({ kind: "resubscribe_requested", scope, ...withCommon(c) }));
const delivDraftArb = fc
  .tuple(
    commonArb,
    fc.constantFrom<DeliverabilityEvent["status"]>("hard_bounce", "soft_bounce", "cleaned", "deliverable"),
  )
  .map(([c, status]): Draft => ({ kind: "deliverability", status, ...withCommon(c) }));

const draftArb = fc.oneof(
  { weight: 4, arbitrary: optOutDraftArb },
  { weight: 5, arbitrary: optInDraftArb },
  { weight: 1, arbitrary: resubDraftArb },
  { weight: 1, arbitrary: delivDraftArb },
);

/** Ids are unique per generated event; `prefix` keeps events appended by a property apart. */
const withIds = (drafts: readonly Draft[], prefix = "gen"): ConsentEvent[] =>
  drafts.map((d, i): ConsentEvent => ({ ...d, id: `evt_${prefix}_${String(i).padStart(4, "0")}` }));
const eventsArb = fc.array(draftArb, { maxLength: 14 }).map((d) => withIds(d));
const optionsArb = fc.record({ require_consent_basis: fc.boolean() });

const foldAt = (
  events: readonly ConsentEvent[],
  o: { require_consent_basis: boolean } = { require_consent_basis: false },
) =>
  foldChannelConsent(events, "email", {
    as_of: at(AS_OF),
    topics: TOPICS,
    require_consent_basis: o.require_consent_basis,
  });

const decisionsOf = (state: ChannelConsent): [string, ScopeDecision][] =>
  ALL_SCOPES.map((s) => [s.kind === "global" ? "global" : s.topic, decisionFor(state, s)]);

const withoutPending = (state: ChannelConsent) =>
  decisionsOf(state).map(([k, d]) => {
    const { pending_resubscribe: _pending, ...rest } = d;
    return [k, rest] as const;
  });

/**
 * The oracle, written from DESIGN.md §2 alone: may `target` be sendable? Only if every opt-out
 * covering it has a strictly later opt-in that qualifies to lift it for `target`.
 */
function oracleAllowsSending(events: readonly ConsentEvent[], target: Scope): boolean {
  const email = events.filter((e) => e.channel === "email");
  // An act takes place by the time it is seen at the latest: one dated later was not made later.
  const t = (e: ConsentEvent) => Math.min(Date.parse(e.occurred_at), Date.parse(e.observed_at));
  const isSpam = (o: OptOutEvent) => o.mechanism === "spam_complaint";
  const reallyGlobal = (o: OptOutEvent) => isSpam(o) || o.scope.kind === "global";
  const coversTarget = (o: OptOutEvent) =>
    reallyGlobal(o) ||
    (target.kind === "topic" && o.scope.kind === "topic" && o.scope.topic === target.topic);
  const personOnly = [
    "unsubscribe_link",
    "one_click_header",
    "spam_complaint",
    "preference_page",
    "phone_request",
    "written_request",
  ];
  const accountStarted = (o: OptOutEvent) =>
    (o.actor.kind === "account" || o.actor.kind === "platform") && !personOnly.includes(o.mechanism);
  const qualifies = (i: OptInEvent, o: OptOutEvent): boolean => {
    if (!(t(i) > t(o))) return false;
    // A global opt-in speaks for global opt-outs only; a topic opt-in for its own topic only.
    if (i.scope.kind === "global" && !reallyGlobal(o)) return false;
    if (i.scope.kind === "topic") {
      if (target.kind !== "topic" || target.topic !== i.scope.topic) return false;
      if (!reallyGlobal(o) && !(o.scope.kind === "topic" && o.scope.topic === i.scope.topic)) return false;
    }
    // The person's own act; a request they made to staff (a call, a letter) needs its reference, as
    // an operator override does.
    const referenced = (i.evidence.request_reference ?? "").trim().length > 0;
    if (i.actor.kind === "contact")
      return (
        i.mechanism !== "import" &&
        i.mechanism !== "sync" &&
        (referenced || (i.mechanism !== "phone_request" && i.mechanism !== "written_request"))
      );
    if (i.actor.kind === "operator") return referenced;
    // The account undoes its own opt-out only, in the scope it made it in.
    const sameScope =
      i.scope.kind === "global"
        ? o.scope.kind === "global"
        : o.scope.kind === "topic" && o.scope.topic === i.scope.topic;
    if (i.actor.kind === "account") return accountStarted(o) && !isSpam(o) && sameScope;
    return false;
  };
  const optIns = email.filter((e): e is OptInEvent => e.kind === "opt_in");
  return email
    .filter((e): e is OptOutEvent => e.kind === "opt_out")
    .filter(coversTarget)
    .every((o) => optIns.some((i) => qualifies(i, o)));
}

describe("foldChannelConsent: properties", () => {
  it("generated events are valid ledger events", () => {
    fc.assert(
      fc.property(eventsArb, (events) => events.every((e) => ConsentEventSchema.safeParse(e).success)),
      { numRuns: 200 },
    );
  });

  it("(a) never sendable while a covering opt-out has no later qualifying opt-in (independent oracle)", () => {
    fc.assert(
      fc.property(eventsArb, optionsArb, (events, options) => {
        const state = foldAt(events, options);
        for (const scope of ALL_SCOPES) {
          const d = decisionFor(state, scope);
          const allowed = oracleAllowsSending(events, scope);
          if (d.sendable && !allowed) return false;
          // The converse too: the fold is opted out exactly when the oracle says an opt-out stands.
          if ((d.status === "opted_out") === allowed) return false;
        }
        return true;
      }),
      RUNS,
    );
  });

  it("(b) folding is independent of arrival order", () => {
    const arb = eventsArb.chain((events) =>
      fc.tuple(
        fc.constant(events),
        fc.shuffledSubarray(events, { minLength: events.length, maxLength: events.length }),
      ),
    );
    fc.assert(
      fc.property(arb, optionsArb, ([events, shuffled], options) => {
        expect(foldAt(shuffled, options)).toEqual(foldAt(events, options));
      }),
      RUNS,
    );
  });

  it("(c) applying an event twice changes nothing", () => {
    const arb = eventsArb.chain((events) =>
      fc.tuple(fc.constant(events), fc.subarray(events)).chain(([evs, again]) => {
        const all = [...evs, ...again.map((e) => structuredClone(e))];
        return fc.tuple(
          fc.constant(evs),
          fc.shuffledSubarray(all, { minLength: all.length, maxLength: all.length }),
        );
      }),
    );
    fc.assert(
      fc.property(arb, optionsArb, ([events, doubled], options) => {
        expect(foldAt(doubled, options)).toEqual(foldAt(events, options));
      }),
      RUNS,
    );
  });

  it("(d) an account-initiated opt-in never lifts a contact-initiated opt-out", () => {
    const contactOptOutArb = fc
      .tuple(
        scopeArb,
        timeArb,
        fc.constantFrom<[Actor, Mechanism]>(
          [CONTACT, "unsubscribe_link"],
          [CONTACT, "admin_edit"],
          [ACCOUNT, "phone_request"],
          [PLATFORM, "one_click_header"],
          [OPERATOR, "admin_edit"],
        ),
      )
      .map(([scope, s, [actor, mechanism]]) => optOut("contact_out", { at: s, scope, actor, mechanism }));
    // Every opt-in is the account's: whatever else happens, the person's opt-out must stand.
    const accountOnlyArb = eventsArb.map((events) =>
      events.map((e) => (e.kind === "opt_in" ? { ...e, actor: ACCOUNT } : e)),
    );
    fc.assert(
      fc.property(accountOnlyArb, contactOptOutArb, optionsArb, (events, out, options) => {
        expect(optOutInitiator(out)).toBe("contact");
        const state = foldAt([...events, out], options);
        for (const scope of ALL_SCOPES) {
          const covered =
            out.scope.kind === "global" || (scope.kind === "topic" && scope.topic === out.scope.topic);
          if (covered && decisionFor(state, scope).sendable) return false;
        }
        return true;
      }),
      RUNS,
    );
  });

  it("(e) a global opt-out suppresses every topic until lifted for that topic", () => {
    const arb = fc.tuple(
      eventsArb,
      fc.constantFrom(...TOPICS),
      fc.constantFrom<Actor>(CONTACT, OPERATOR),
      optionsArb,
    );
    fc.assert(
      fc.property(arb, ([events, topic, actor, options]) => {
        const out = optOut("global_out", { at: 6, actor: ACCOUNT, mechanism: "admin_edit" });
        const suppressed = foldAt([...events, out], options);
        if (decisionsOf(suppressed).some(([, d]) => d.sendable)) return false;
        // The person (or an evidenced override) opts in to one topic: that topic alone reopens.
        const lift = optIn("topic_in", {
          at: 7,
          scope: topicScope(topic),
          actor,
          evidence: { request_reference: "ticket-7" },
        });
        const lifted = foldAt([...events, out, lift], options);
        return decisionsOf(lifted).every(([k, d]) => d.sendable === (k === topic));
      }),
      RUNS,
    );
  });

  it("(f) a spam complaint is global whatever its scope, and the account cannot undo it", () => {
    const arb = fc.tuple(eventsArb, scopeArb, actorArb, scopeArb, optionsArb);
    fc.assert(
      fc.property(arb, ([events, spamScope, spamActor, accountInScope, options]) => {
        const spam = optOut("spam", {
          at: 6,
          scope: spamScope,
          actor: spamActor,
          mechanism: "spam_complaint",
        });
        const accountIn = optIn("acct_in", {
          at: 7,
          scope: accountInScope,
          actor: ACCOUNT,
          mechanism: "admin_edit",
        });
        const state = foldAt([...events, spam, accountIn], options);
        return decisionsOf(state).every(
          ([, d]) => !d.sendable && d.rule === "spam_complaint" && d.decided_by === spam.id,
        );
      }),
      RUNS,
    );
  });

  it("(g) deliverability events never change consent decisions", () => {
    const arb = fc.tuple(eventsArb, fc.array(delivDraftArb, { maxLength: 6 }), optionsArb);
    fc.assert(
      fc.property(arb, ([events, extra, options]) => {
        const consentOnly = events.filter((e) => e.kind !== "deliverability");
        const all = [...events, ...withIds(extra, "dlv")];
        expect(decisionsOf(foldAt(all, options))).toEqual(decisionsOf(foldAt(consentOnly, options)));
      }),
      RUNS,
    );
  });

  it("(h) a resubscribe request never makes anyone sendable", () => {
    const arb = fc.tuple(eventsArb, fc.array(resubDraftArb, { maxLength: 6 }), optionsArb);
    fc.assert(
      fc.property(arb, ([events, extra, options]) => {
        const withoutRequests = events.filter((e) => e.kind !== "resubscribe_requested");
        const all = [...events, ...withIds(extra, "rsb")];
        expect(withoutPending(foldAt(all, options))).toEqual(
          withoutPending(foldAt(withoutRequests, options)),
        );
      }),
      RUNS,
    );
  });

  it("(i) implied consent lapses; express consent does not", () => {
    const arb = fc.tuple(eventsArb, fc.integer({ min: 0, max: 12 }));
    fc.assert(
      fc.property(arb, ([events, asOf]) => {
        const state = foldChannelConsent(events, "email", {
          as_of: at(asOf),
          topics: TOPICS,
          require_consent_basis: true,
        });
        for (const [, d] of decisionsOf(state)) {
          if (!d.sendable) continue;
          const basis = events.find((e) => e.id === d.decided_by);
          if (basis?.kind !== "opt_in") return false;
          if (
            basis.basis === "implied" &&
            basis.expires_at !== undefined &&
            Date.parse(basis.expires_at) <= Date.parse(at(asOf))
          )
            return false;
          // Consent given before the latest covering opt-out no longer counts.
          if (d.open_opt_outs.length > 0) return false;
        }
        for (const scope of ALL_SCOPES) {
          const d = decisionFor(state, scope);
          if (!d.sendable) continue;
          const basis = events.find((e) => e.id === d.decided_by)!;
          const covering = events.filter(
            (e): e is OptOutEvent =>
              e.kind === "opt_out" &&
              e.channel === "email" &&
              (e.mechanism === "spam_complaint" ||
                e.scope.kind === "global" ||
                (scope.kind === "topic" && e.scope.kind === "topic" && e.scope.topic === scope.topic)),
          );
          // Each act took place by the time it was seen at the latest.
          const acted = (e: ConsentEvent) => Math.min(Date.parse(e.occurred_at), Date.parse(e.observed_at));
          if (covering.some((o) => acted(o) >= acted(basis))) return false;
        }
        return true;
      }),
      RUNS,
    );
  });

  it("(j) another opt-in never makes anyone unsendable (a later implied opt-in cannot hide express consent)", () => {
    const arb = fc.tuple(eventsArb, optInDraftArb, fc.integer({ min: 0, max: 12 }), fc.boolean());
    fc.assert(
      fc.property(arb, ([events, extra, asOf, require]) => {
        const options = { as_of: at(asOf), topics: TOPICS, require_consent_basis: require };
        const before = foldChannelConsent(events, "email", options);
        const after = foldChannelConsent([...events, ...withIds([extra], "ext")], "email", options);
        return ALL_SCOPES.every((s) => !decisionFor(before, s).sendable || decisionFor(after, s).sendable);
      }),
      RUNS,
    );
  });
});
