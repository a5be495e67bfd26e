import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { topicScope, type ConsentEvent, type Scope } from "../core/consent/consent-event";
import { decisionFor, foldChannelConsent } from "../core/consent/consent-state";
import { shownConsent } from "../core/consent/system-consent";
import { applyPlanEffects } from "./apply-plan-effects";
import type { Plan } from "./plan";
import type { PlanContact, PlanInput, PlanPolicies } from "./plan-input";
import { planPair } from "./plan-pair";
import {
  APPEALS,
  CRM,
  MAIN,
  PAIR,
  POLICIES,
  contactId,
  crmFacts,
  crmRecord,
  person,
  planInput,
  platformFacts,
  platformRecord,
} from "../../test/support/plan-fixtures";

const RUNS = 1_000;
const CONNECTIONS = [CRM, MAIN, APPEALS] as const;
const TIMES = [
  "2026-01-01T00:00:00Z",
  "2026-02-01T00:00:00Z",
  "2026-03-01T00:00:00Z",
  "2026-04-01T00:00:00Z",
];
const MECHANISMS = [
  "unsubscribe_link",
  "spam_complaint",
  "admin_edit",
  "signup_form",
  "resubscribe_confirmation",
  "import",
  "api",
  "phone_request",
] as const;
const scopeArb: fc.Arbitrary<Scope> = fc.constantFrom<Scope>(
  { kind: "global" },
  topicScope("appeals"),
  topicScope("events"),
);
const actorArb = fc.constantFrom(
  { kind: "contact" as const },
  { kind: "account" as const },
  { kind: "operator" as const, user: "ops" },
);

const eventArb = (n: number, i: number): fc.Arbitrary<ConsentEvent> =>
  fc
    .record({
      kind: fc.constantFrom("opt_out", "opt_in", "resubscribe_requested"),
      scope: scopeArb,
      connection: fc.constantFrom(...CONNECTIONS),
      mechanism: fc.constantFrom(...MECHANISMS),
      actor: actorArb,
      at: fc.constantFrom(...TIMES),
      reference: fc.boolean(),
    })
    .map((e): ConsentEvent => {
      const common = {
        id: `evt_prop_${n}_${i}_xx`,
        contact_id: contactId(n),
        channel: "email" as const,
        source: {
          system: e.connection === CRM ? "blackbaud-renxt" : "constant-contact",
          connection: e.connection,
        },
        mechanism: e.mechanism,
        actor: e.actor,
        occurred_at: e.at,
        observed_at: e.at,
        evidence: e.reference ? { request_reference: "ticket-1" } : {},
      };
      if (e.kind === "opt_in") return { kind: "opt_in", scope: e.scope, basis: "express", ...common };
      return { kind: e.kind, scope: e.scope, ...common };
    });

const listsArb = (lists: string[]) => fc.subarray(lists);

const platformArb = (n: number, conn: string, lists: string[]) =>
  fc
    .option(
      fc.record({
        unsubscribed: fc.boolean(),
        resubscribe_requested: fc.boolean(),
        lists: listsArb(lists),
        email: fc.constantFrom(`p${n}@example.org`, `alt${n}@example.org`),
        first: fc.constantFrom(`First${n}`, "Other"),
        title: fc.constantFrom(null, "CEO", "CFO"),
        deleted: fc.boolean().map((b) => b && n % 5 === 0),
      }),
      { nil: undefined },
    )
    .map((r) =>
      r === undefined
        ? undefined
        : platformRecord(n, conn, {
            email: r.email,
            first_name: r.first,
            list_ids: r.lists,
            fields: { job_title: r.title },
            deleted: r.deleted,
            consent_state: platformFacts(r.unsubscribed),
            resubscribe_requested: r.resubscribe_requested,
          }),
    );

const contactArb = (n: number): fc.Arbitrary<PlanContact> =>
  fc
    .record({
      events: fc
        .integer({ min: 0, max: 5 })
        .chain((k) => fc.tuple(...Array.from({ length: k }, (_, i) => eventArb(n, i)))),
      hasCrm: fc.boolean().map((b) => b || n % 3 !== 0),
      requestsNoEmail: fc.boolean(),
      appeals: fc.constantFrom(undefined, "opt_in" as const, "opt_out" as const),
      crmLists: listsArb(["L-news", "L-events", "L-appeals"]),
      crmEmail: fc.constantFrom(`p${n}@example.org`, `new${n}@example.org`, "not-an-email", ""),
      crmFirst: fc.constantFrom(`First${n}`, "Renamed"),
      crmTitle: fc.constantFrom(null, "CEO", "Director"),
      deceased: fc.boolean(),
      doNotContact: fc.boolean(),
      main: platformArb(n, MAIN, ["cc-news", "cc-events"]),
      appealsRec: platformArb(n, APPEALS, ["cca-appeals"]),
      baseline: fc.option(
        fc.record({
          first_name: fc.constantFrom(`First${n}`, "Other"),
          job_title: fc.constantFrom(null, "CEO"),
          email: fc.constantFrom(`p${n}@example.org`, `alt${n}@example.org`),
        }),
        { nil: undefined },
      ),
    })
    .map((g): PlanContact => {
      const platforms: Record<string, ReturnType<typeof platformRecord>> = {};
      if (g.main) platforms[MAIN] = g.main;
      if (g.appealsRec) platforms[APPEALS] = g.appealsRec;
      return {
        contact: person(n, { do_not_contact: g.doNotContact, primary_email: g.crmEmail }),
        events: g.events,
        ...(g.hasCrm
          ? {
              crm: crmRecord(n, {
                emails: g.crmEmail === "" ? [] : [{ address: g.crmEmail, primary: true }],
                first_name: g.crmFirst,
                fields: { title: g.crmTitle, preferred_name: null },
                list_ids: g.crmLists,
                deceased: g.deceased,
                consent_state: crmFacts({
                  global_opt_out: g.requestsNoEmail,
                  ...(g.appeals === undefined ? {} : { categories: { Appeals: g.appeals } }),
                }),
              }),
            }
          : {}),
        platforms,
        ...(g.baseline ? { baselines: { [MAIN]: g.baseline, [APPEALS]: g.baseline } } : {}),
      };
    });

const policiesArb: fc.Arbitrary<PlanPolicies> = fc.record({
  unlinked_opt_outs: fc.constant("apply_and_report" as const),
  create_in_crm: fc.boolean(),
  require_consent_basis: fc.boolean(),
  propagate_crm_opt_outs: fc.boolean(),
  ended_crm_records: fc.constantFrom("unsubscribe" as const, "remove" as const),
});

const worldArb = fc
  .tuple(fc.integer({ min: 1, max: 4 }), policiesArb)
  .chain(([k, policies]) =>
    fc.tuple(fc.tuple(...Array.from({ length: k }, (_, i) => contactArb(i + 1))), fc.constant(policies)),
  );

const inputOf = (contacts: PlanContact[], policies: PlanPolicies): PlanInput =>
  planInput(contacts, { policies: { ...POLICIES, ...policies } });

const scopeOf = (connection: string): Scope =>
  PAIR.platforms.find((x) => x.connection_id === connection)?.account_scope ?? { kind: "global" };

/** Whether the ledger lets `contactId` be sent to on `connection`, as the plan's input says. */
function decisionOn(input: PlanInput, contacts: PlanContact[], id: string, connection: string) {
  const c = contacts.find((x) => x.contact.id === id)!;
  const state = foldChannelConsent(c.events, "email", {
    as_of: input.as_of,
    topics: ["appeals"],
    require_consent_basis: input.policies.require_consent_basis,
  });
  return decisionFor(state, scopeOf(connection));
}

const consentOps = (plan: Plan) => plan.operations.filter((o) => o.priority === "consent");

describe("planPair properties", () => {
  it("never plans an operation that makes a person sendable on a platform", () => {
    fc.assert(
      fc.property(worldArb, ([contacts, policies]) => {
        const input = inputOf(contacts, policies);
        const plan = planPair(input);
        for (const o of plan.operations) {
          const kind = o.operation.kind;
          if (o.connection_id === CRM) continue;
          expect(kind).not.toBe("record_opt_in");
          if (kind === "upsert_contacts" || kind === "add_list_members" || kind === "request_resubscribe") {
            for (const id of o.contact_ids) {
              const decision = decisionOn(input, contacts, id, o.connection_id);
              // A resubscribe request is for someone opted out, or whose opt-out an operator override
              // (the person's written request) or the person's own opt-in made elsewhere lifted, and
              // it changes nothing until they confirm.
              if (kind === "request_resubscribe")
                expect(
                  !decision.sendable ||
                    decision.rule === "lifted_by_operator_override" ||
                    decision.rule === "lifted_by_contact_opt_in",
                ).toBe(true);
              else expect(decision.sendable).toBe(true);
            }
          }
        }
        for (const o of plan.operations)
          if (o.operation.kind === "record_opt_in") {
            const scope = o.operation.scope;
            const c = contacts.find((x) => x.contact.id === o.contact_ids[0])!;
            const state = foldChannelConsent(c.events, "email", {
              as_of: input.as_of,
              topics: ["appeals"],
              require_consent_basis: policies.require_consent_basis,
            });
            const decision =
              scope.kind === "global" ? state.global : decisionFor(state, topicScope("appeals"));
            expect(decision.sendable).toBe(true);
            // Only an opt-in planned over an opt-out the CRM showed may clear one when applied.
            expect(o.operation.read_opted_out).toBe(
              shownConsent(c.crm?.consent_state ?? [], scope) === "opt_out",
            );
          }
      }),
      { numRuns: RUNS },
    );
  });

  it("is deterministic: the same input gives the same plan, whatever the contact order", () => {
    fc.assert(
      fc.property(worldArb, ([contacts, policies]) => {
        const a = planPair(inputOf(contacts, policies));
        expect(planPair(inputOf(contacts, policies))).toEqual(a);
        const reversed = planPair(inputOf([...contacts].reverse(), policies));
        expect(reversed.operations.map((o) => o.op_id).sort()).toEqual(
          a.operations.map((o) => o.op_id).sort(),
        );
      }),
      { numRuns: RUNS },
    );
  });

  it("converges: once the plan's effects are in place, re-planning yields no operation (CRM records it creates: one more)", () => {
    fc.assert(
      fc.property(worldArb, ([contacts, policies]) => {
        const input = inputOf(contacts, policies);
        const plan = planPair(input);
        const once = inputOf(applyPlanEffects(input, plan), policies);
        const after = planPair(once);
        // A CRM record created from a platform (create_contact) carries only its address and names
        // and has no id until it exists; its consent and fields follow once it is linked, in the
        // next plan. Every other contact is done after one plan.
        const created = new Set(
          plan.operations.filter((o) => o.operation.kind === "create_contact").flatMap((o) => o.contact_ids),
        );
        expect(after.operations.filter((o) => o.contact_ids.some((id) => !created.has(id)))).toEqual([]);
        expect(consentOps(after).every((o) => o.connection_id === CRM)).toBe(true);
        expect(planPair(inputOf(applyPlanEffects(once, after), policies)).operations).toEqual([]);
      }),
      { numRuns: RUNS },
    );
  });
});
