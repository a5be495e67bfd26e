import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import type { ConsentEvent } from "../core/consent/consent-event";
import { applyPlanEffects } from "./apply-plan-effects";
import type { Plan, PlannedOperation } from "./plan";
import type { PlanContact, PlanInput, PlatformRecordState } from "./plan-input";
import { createPairPlanner, planPair } from "./plan-pair";
import {
  APPEALS,
  CRM,
  MAIN,
  PAIR,
  POLICIES,
  contactId,
  crmFacts,
  crmRecord,
  fact,
  optIn,
  optOut,
  person,
  planInput,
  platformFacts,
  platformRecord,
  resubscribeRequested,
} from "../../test/support/plan-fixtures";
import { topicScope } from "../core/consent/consent-event";
import { constructScope, GLOBAL_OBSERVED } from "../core/consent/system-consent";

const T1 = "2026-01-10T10:00:00Z";
const T2 = "2026-02-10T10:00:00Z";
const T3 = "2026-03-10T10:00:00Z";

/** A contact linked in the CRM and both accounts, everyone subscribed, unless overridden. */
function linked(n: number, o: Partial<PlanContact> & { events?: ConsentEvent[] } = {}): PlanContact {
  return {
    contact: person(n),
    events: [],
    crm: crmRecord(n),
    platforms: { [MAIN]: platformRecord(n, MAIN), [APPEALS]: platformRecord(n, APPEALS) },
    ...o,
  };
}

const unsubscribed = (n: number, conn: string, requested = false) =>
  platformRecord(n, conn, {
    consent_state: platformFacts(true),
    resubscribe_requested: requested,
  });

/** A compact view of a plan's operations for table assertions. */
const view = (plan: Plan) =>
  plan.operations.map((o) => {
    const op = o.operation;
    const scope =
      "scope" in op
        ? op.scope.kind === "construct"
          ? `category:${op.scope.construct.id}`
          : op.scope.kind
        : undefined;
    return `${o.connection_id} ${op.kind}${scope ? ` ${scope}` : ""}`;
  });

const find = (plan: Plan, conn: string, kind: string): PlannedOperation | undefined =>
  plan.operations.find((o) => o.connection_id === conn && o.operation.kind === kind);

describe("planPair: consent (seed 000)", () => {
  const cases: { name: string; contact: PlanContact; policies?: Partial<typeof POLICIES>; ops: string[] }[] =
    [
      {
        name: "unsubscribe in the unmapped main account → CRM Requests No Email and every other account",
        contact: linked(1, {
          events: [optOut({ contact: 1, connection: MAIN, at: T1 })],
          platforms: { [MAIN]: unsubscribed(1, MAIN), [APPEALS]: platformRecord(1, APPEALS) },
        }),
        ops: [`${APPEALS} record_opt_out account`, `${CRM} record_opt_out global`],
      },
      {
        name: "unsubscribe in the appeals account → CRM category Appeals only, main untouched",
        contact: linked(2, {
          events: [
            optOut({ contact: 2, connection: APPEALS, at: T1, scope: { kind: "topic", topic: "appeals" } }),
          ],
          platforms: { [MAIN]: platformRecord(2, MAIN), [APPEALS]: unsubscribed(2, APPEALS) },
        }),
        ops: [`${CRM} record_opt_out category:Appeals`],
      },
      {
        name: "a spam complaint in the appeals account is global → CRM Requests No Email and main",
        contact: linked(3, {
          events: [
            optOut({
              contact: 3,
              connection: APPEALS,
              at: T1,
              scope: { kind: "topic", topic: "appeals" },
              mechanism: "spam_complaint",
            }),
          ],
          platforms: { [MAIN]: platformRecord(3, MAIN), [APPEALS]: unsubscribed(3, APPEALS) },
        }),
        ops: [`${MAIN} record_opt_out account`, `${CRM} record_opt_out global`],
      },
      {
        name: "CRM Requests No Email → both accounts unsubscribed, nothing written back to the CRM",
        contact: linked(4, {
          events: [optOut({ contact: 4, connection: CRM, at: T1, mechanism: "phone_request" })],
          crm: crmRecord(4, { consent_state: crmFacts({ global_opt_out: true }) }),
        }),
        ops: [`${MAIN} record_opt_out account`, `${APPEALS} record_opt_out account`],
      },
      {
        name: "an admin clearing Requests No Email holds back only the global opt-out: the person's later topic opt-out still reaches the CRM's category",
        contact: linked(7, {
          events: [
            optOut({ contact: 7, connection: MAIN, at: T1 }),
            optOut({ contact: 7, connection: APPEALS, at: T2, scope: { kind: "topic", topic: "appeals" } }),
            resubscribeRequested({ contact: 7, connection: CRM, at: T3 }),
          ],
          platforms: { [MAIN]: unsubscribed(7, MAIN), [APPEALS]: unsubscribed(7, APPEALS) },
        }),
        // The admin's request asks each account for its confirmation email; only the person's
        // answer there makes them sendable.
        ops: [
          `${CRM} record_opt_out category:Appeals`,
          `${MAIN} request_resubscribe`,
          `${APPEALS} request_resubscribe`,
        ],
      },
      {
        name: "CRM opt-outs are not pushed when propagate_crm_opt_outs is off",
        contact: linked(5, {
          events: [
            optOut({
              contact: 5,
              connection: CRM,
              at: T1,
              mechanism: "admin_edit",
              actor: { kind: "account" },
            }),
          ],
          crm: crmRecord(5, { consent_state: crmFacts({ global_opt_out: true }) }),
        }),
        policies: { propagate_crm_opt_outs: false },
        ops: [],
      },
      {
        name: "an address-level do_not_email counts as the CRM showing a global opt-out",
        contact: linked(6, {
          events: [optOut({ contact: 6, connection: MAIN, at: T1 })],
          crm: crmRecord(6, {
            consent_state: [
              ...crmFacts({}),
              fact(GLOBAL_OBSERVED, "opted_out", { source: "address_flag", unversioned: true }),
            ],
          }),
          platforms: { [MAIN]: unsubscribed(6, MAIN), [APPEALS]: unsubscribed(6, APPEALS) },
        }),
        ops: [],
      },
      {
        name: "admin clears the CRM flag → one request_resubscribe, no opt-in anywhere",
        contact: linked(7, {
          events: [
            optOut({ contact: 7, connection: MAIN, at: T1 }),
            resubscribeRequested({ contact: 7, connection: CRM, at: T2 }),
          ],
          platforms: { [MAIN]: unsubscribed(7, MAIN) },
        }),
        ops: [`${MAIN} request_resubscribe`],
      },
      {
        name: "admin cleared the flag and the confirmation was already requested → nothing, still waiting",
        contact: linked(8, {
          events: [
            optOut({ contact: 8, connection: MAIN, at: T1 }),
            resubscribeRequested({ contact: 8, connection: CRM, at: T2 }),
          ],
          platforms: { [MAIN]: unsubscribed(8, MAIN, true) },
        }),
        ops: [],
      },
      {
        name: "confirmed Constant Contact resubscribe → opt-in recorded in the CRM",
        contact: linked(9, {
          events: [
            optOut({ contact: 9, connection: MAIN, at: T1 }),
            optIn({ contact: 9, connection: MAIN, at: T3, mechanism: "resubscribe_confirmation" }),
          ],
          crm: crmRecord(9, { consent_state: crmFacts({ global_opt_out: true }) }),
        }),
        ops: [`${CRM} record_opt_in global`],
      },
      {
        name: "confirmed appeals sign-up → opt-in in the CRM category only",
        contact: linked(10, {
          events: [
            optOut({ contact: 10, connection: APPEALS, at: T1, scope: { kind: "topic", topic: "appeals" } }),
            optIn({
              contact: 10,
              connection: APPEALS,
              at: T3,
              scope: { kind: "topic", topic: "appeals" },
              mechanism: "signup_form",
            }),
          ],
          crm: crmRecord(10, { consent_state: crmFacts({ categories: { Appeals: "opt_out" } }) }),
        }),
        ops: [`${CRM} record_opt_in category:Appeals`],
      },
      {
        name: "an account's own opt-in never clears a CRM flag the person set",
        contact: linked(11, {
          events: [
            optOut({ contact: 11, connection: MAIN, at: T1 }),
            optIn({ contact: 11, connection: MAIN, at: T3, mechanism: "api", actor: { kind: "account" } }),
          ],
          crm: crmRecord(11, { consent_state: crmFacts({ global_opt_out: true }) }),
          platforms: { [MAIN]: unsubscribed(11, MAIN), [APPEALS]: unsubscribed(11, APPEALS) },
        }),
        ops: [],
      },
      {
        name: "resubscribe requested while the platform still showed subscribed → opt-out first, then the request",
        contact: linked(13, {
          events: [
            optOut({ contact: 13, connection: MAIN, at: T1 }),
            resubscribeRequested({ contact: 13, connection: CRM, at: T2 }),
          ],
          platforms: { [MAIN]: platformRecord(13, MAIN) },
        }),
        ops: [`${MAIN} record_opt_out account`, `${MAIN} request_resubscribe`],
      },
      {
        name: "a CRM record marked deceased is unsubscribed everywhere even where CRM opt-outs are not pushed: no setting keeps it sendable",
        contact: linked(15, {
          events: [
            {
              ...optOut({
                contact: 15,
                connection: CRM,
                at: T1,
                mechanism: "admin_edit",
                actor: { kind: "account" },
              }),
              evidence: { source_record_id: "re-15:deceased" },
            },
          ],
          crm: crmRecord(15, { deceased: true }),
        }),
        policies: { propagate_crm_opt_outs: false },
        ops: [`${MAIN} record_opt_out account`, `${APPEALS} record_opt_out account`],
      },
      {
        name: "a deleted CRM record still gets the platforms' opt-outs pushed, and nothing else",
        contact: linked(14, {
          events: [optOut({ contact: 14, connection: MAIN, at: T1 })],
          crm: crmRecord(14, { deleted: true, emails: [{ address: "x14@example.org", primary: true }] }),
        }),
        ops: [`${MAIN} record_opt_out account`, `${APPEALS} record_opt_out account`],
      },
      {
        name: "a platform that shows the person unsubscribed is never re-subscribed by sync",
        contact: linked(12, {
          platforms: { [MAIN]: unsubscribed(12, MAIN), [APPEALS]: unsubscribed(12, APPEALS) },
        }),
        ops: [],
      },
    ];

  it.each(cases)("$name", ({ contact, policies, ops }) => {
    const plan = planPair(planInput([contact], { policies: { ...POLICIES, ...policies } }));
    expect(view(plan).sort()).toEqual([...ops].sort());
    expect(plan.operations.some((o) => o.operation.kind === "record_opt_in" && o.connection_id !== CRM)).toBe(
      false,
    );
  });

  it("names the deciding event, the rule and who initiated the opt-out", () => {
    const out = optOut({ contact: 1, connection: MAIN, at: T1 });
    const plan = planPair(
      planInput([
        linked(1, {
          events: [out],
          platforms: { [MAIN]: unsubscribed(1, MAIN), [APPEALS]: platformRecord(1, APPEALS) },
        }),
      ]),
    );
    const toAppeals = find(plan, APPEALS, "record_opt_out");
    expect(toAppeals?.priority).toBe("consent");
    expect(toAppeals?.reason.code).toBe("opt_out_to_platform");
    expect(toAppeals?.reason.message).toContain(out.id);
    expect(toAppeals?.reason.message).toContain("global_opt_out");
    expect(toAppeals?.operation).toMatchObject({
      kind: "record_opt_out",
      external_id: `${APPEALS}-1`,
      email: "p1@example.org",
      initiated_by: "contact",
      occurred_at: T1,
      origin: { system: "constant-contact", connection: MAIN, mechanism: "unsubscribe_link" },
    });
    const toCrm = find(plan, CRM, "record_opt_out");
    expect(toCrm?.reason.code).toBe("opt_out_to_crm");
    expect(toCrm?.operation).toMatchObject({
      external_id: "re-1",
      scope: { kind: "global" },
      initiated_by: "contact",
    });
  });

  it("pushes the person's own opt-out rather than the account's later one: a platform keeps a person's opt-out more firmly", () => {
    const theirs = optOut({
      contact: 1,
      connection: APPEALS,
      at: T1,
      scope: { kind: "topic", topic: "appeals" },
      mechanism: "spam_complaint",
    });
    const staff = optOut({
      contact: 1,
      connection: CRM,
      at: T2,
      mechanism: "admin_edit",
      actor: { kind: "account" },
    });
    const plan = planPair(
      planInput([
        linked(1, {
          events: [theirs, staff],
          crm: crmRecord(1, { consent_state: crmFacts({ global_opt_out: true }) }),
          platforms: { [MAIN]: platformRecord(1, MAIN), [APPEALS]: unsubscribed(1, APPEALS) },
        }),
      ]),
    );
    expect(find(plan, MAIN, "record_opt_out")?.operation).toMatchObject({
      initiated_by: "contact",
      occurred_at: T1,
      origin: { connection: APPEALS, mechanism: "spam_complaint" },
    });
  });

  it("reports the admin's resubscribe request as waiting for the person", () => {
    const events = [
      optOut({ contact: 7, connection: MAIN, at: T1 }),
      resubscribeRequested({ contact: 7, connection: CRM, at: T2 }),
    ];
    const first = planPair(planInput([linked(7, { events, platforms: { [MAIN]: unsubscribed(7, MAIN) } })]));
    expect(first.waiting).toEqual([
      {
        contact_id: contactId(7),
        connection_id: MAIN,
        event_id: events[1]!.id,
        requested_at: T2,
        requested_now: true,
      },
    ]);
    expect(find(first, MAIN, "request_resubscribe")?.reason.code).toBe("resubscribe_requested");
    const again = planPair(
      planInput([linked(7, { events, platforms: { [MAIN]: unsubscribed(7, MAIN, true) } })]),
    );
    expect(again.operations).toEqual([]);
    expect(again.waiting[0]?.requested_now).toBe(false);
  });

  it("a CRM record made active again holds back no opt-out the CRM never showed", () => {
    // The record was made inactive, the person then unsubscribed in the main account, and the
    // record was made active again: a resubscribe request, about the ending only.
    const events = [
      optOut({ contact: 8, connection: CRM, at: T1, mechanism: "admin_edit", actor: { kind: "account" } }),
      optOut({ contact: 8, connection: MAIN, at: T2 }),
      resubscribeRequested({ contact: 8, connection: CRM, at: T3 }),
    ];
    events[0]!.evidence = { source_record_id: "re-8:inactive" };
    events[2]!.evidence = { source_record_id: "re-8:inactive:cleared" };
    const contact = linked(8, { events, platforms: { [MAIN]: unsubscribed(8, MAIN) } });
    const plan = planPair(planInput([contact]));
    expect(find(plan, CRM, "record_opt_out")?.operation).toMatchObject({
      scope: { kind: "global" },
      initiated_by: "contact",
      origin: { connection: MAIN },
    });
    // A flag of the CRM's own cleared there on purpose is not fought: the CRM keeps it cleared.
    events[2]!.evidence = { source_record_id: "re-8:global_flag:cleared" };
    expect(find(planPair(planInput([contact])), CRM, "record_opt_out")).toBeUndefined();
  });

  it("an unlinked record's opt-out left out of the CRM (report only) hides no linked record's opt-out", () => {
    // Ada left the main account herself, then complained of spam in an appeals record someone had
    // put there with her address.
    const complaint = optOut({ contact: 9, connection: APPEALS, at: T2, mechanism: "spam_complaint" });
    const plan = planPair(
      planInput(
        [
          linked(9, {
            events: [optOut({ contact: 9, connection: MAIN, at: T1 }), complaint],
            platforms: {
              [MAIN]: unsubscribed(9, MAIN),
              [APPEALS]: { ...unsubscribed(9, APPEALS), matched_by_address: true },
            },
          }),
        ],
        { policies: { ...POLICIES, unlinked_opt_outs: "report_only" } },
      ),
    );
    expect(plan.unlinked_opt_outs).toMatchObject([
      { connection_id: APPEALS, event_id: complaint.id, applied: false },
    ]);
    expect(find(plan, CRM, "record_opt_out")?.operation).toMatchObject({
      scope: { kind: "global" },
      origin: { connection: MAIN },
      occurred_at: T1,
    });
  });

  it("a platform record of a person deleted in the CRM gets its opt-out and nothing else, with the reason", () => {
    const plan = planPair(
      planInput([
        linked(10, {
          crm: crmRecord(10, { deleted: true, list_ids: ["L-news"] }),
          events: [
            {
              ...optOut({ contact: 10, connection: CRM, at: T1, mechanism: "admin_edit" }),
              actor: { kind: "account" },
              evidence: { source_record_id: "re-10:deleted" },
            },
          ],
          platforms: {
            [MAIN]: platformRecord(10, MAIN, { list_ids: ["cc-news"] }),
            [APPEALS]: platformRecord(10, APPEALS),
          },
        }),
      ]),
    );
    expect(view(plan).sort()).toEqual([
      `${APPEALS} record_opt_out account`,
      `${MAIN} record_opt_out account`,
    ]);
    expect(plan.skipped.map((x) => [x.connection_id, x.reasons.map((r) => r.code)])).toEqual([
      [MAIN, ["deleted_in_crm"]],
      [APPEALS, ["deleted_in_crm"]],
    ]);
  });

  it("puts consent operations before writes", () => {
    const plan = planPair(
      planInput([
        linked(1, { crm: crmRecord(1, { emails: [{ address: "new1@example.org", primary: true }] }) }),
        linked(2, {
          events: [optOut({ contact: 2, connection: MAIN, at: T1 })],
          platforms: { [MAIN]: unsubscribed(2, MAIN) },
        }),
      ]),
    );
    const priorities = plan.operations.map((o) => o.priority);
    expect(priorities).toEqual([...priorities].sort());
    expect(priorities[0]).toBe("consent");
    expect(priorities.at(-1)).toBe("write");
  });
});

describe("planPair: new contacts and skip reasons", () => {
  const crmOnly = (
    n: number,
    o: Partial<PlanContact> = {},
    lists = ["L-news", "L-appeals"],
  ): PlanContact => ({
    contact: person(n),
    events: [],
    crm: crmRecord(n, { list_ids: lists }),
    platforms: {},
    ...o,
  });

  it("adds every eligible contact in one bulk upsert per platform and list set, and says why each other is skipped", () => {
    const contacts: PlanContact[] = [
      crmOnly(1),
      crmOnly(2),
      crmOnly(3, {
        contact: person(3, { primary_email: "" }),
        crm: crmRecord(3, { emails: [], list_ids: ["L-news", "L-appeals"] }),
      }),
      crmOnly(4, {}, []),
      crmOnly(5, { events: [optOut({ contact: 5, connection: CRM, at: T1, mechanism: "phone_request" })] }),
      crmOnly(6, {
        events: [
          optOut({ contact: 6, connection: APPEALS, at: T1, scope: { kind: "topic", topic: "appeals" } }),
        ],
      }),
      crmOnly(7, { crm: crmRecord(7, { deceased: true, list_ids: ["L-news"] }) }),
      crmOnly(8, { contact: person(8, { do_not_contact: true }) }),
      crmOnly(9, { platforms: { [MAIN]: platformRecord(9, MAIN, { deleted: true }) } }, ["L-news"]),
    ];
    const plan = planPair(planInput(contacts));
    const upserts = plan.operations.filter((o) => o.operation.kind === "upsert_contacts");
    expect(upserts.map((o) => [o.connection_id, o.contact_ids])).toEqual([
      [APPEALS, [contactId(1), contactId(2)]],
      [MAIN, [contactId(1), contactId(2), contactId(6)]],
    ]);
    expect(plan.gains).toEqual({ [MAIN]: 3, [APPEALS]: 2 });
    const main = upserts.find((o) => o.connection_id === MAIN)!.operation;
    expect(main).toMatchObject({
      kind: "upsert_contacts",
      list_ids: ["cc-news"],
      items: [
        { item_id: contactId(1), email: "p1@example.org", first_name: "First1", last_name: "Last1" },
        { item_id: contactId(2) },
        { item_id: contactId(6) },
      ],
    });
    const reasons = (n: number, conn: string) =>
      plan.skipped
        .find((s) => s.contact_id === contactId(n) && s.connection_id === conn)
        ?.reasons.map((r) => r.code);
    expect(reasons(3, MAIN)).toEqual(["no_primary_email"]);
    expect(reasons(4, MAIN)).toEqual(["not_in_synced_audience"]);
    expect(reasons(5, MAIN)).toEqual(["opted_out"]);
    expect(reasons(5, APPEALS)).toEqual(["opted_out"]);
    expect(reasons(6, APPEALS)).toEqual(["opted_out"]);
    expect(reasons(6, MAIN)).toBeUndefined();
    expect(reasons(7, MAIN)).toEqual(["deceased"]);
    expect(reasons(8, APPEALS)).toEqual(["do_not_contact"]);
    expect(reasons(9, MAIN)).toEqual(["deleted_on_platform"]);
    const deleted = planPair(
      planInput([crmOnly(10, { crm: crmRecord(10, { deleted: true, list_ids: ["L-news"] }) })]),
    );
    expect(deleted.operations).toEqual([]);
    expect(deleted.skipped.map((s) => s.reasons.map((r) => r.code))).toEqual([
      ["deleted_in_crm"],
      ["deleted_in_crm"],
    ]);
    // Deleted on both sides: still counted, with the reason.
    const gone = planPair(
      planInput([
        linked(11, {
          crm: crmRecord(11, { deleted: true, list_ids: ["L-news"] }),
          platforms: {
            [MAIN]: platformRecord(11, MAIN, { deleted: true, consent_state: [] }),
            [APPEALS]: platformRecord(11, APPEALS, { deleted: true, consent_state: [] }),
          },
        }),
      ]),
    );
    expect(gone.operations).toEqual([]);
    expect(gone.skipped.map((s) => [s.connection_id, s.reasons.map((r) => r.code)])).toEqual([
      [MAIN, ["deleted_in_crm"]],
      [APPEALS, ["deleted_in_crm"]],
    ]);
    expect(plan.counts.skipped[MAIN]).toMatchObject({ opted_out: 1, deceased: 1, not_in_synced_audience: 1 });
    expect(plan.counts.operations[MAIN]?.upsert_contacts).toEqual({ operations: 1, contacts: 3 });
  });

  it("counts every skipped record but lists only the first 200 of each connection and reason", () => {
    // 350 contacts outside the synced lists; the last 50 of them also opted out everywhere.
    const contacts = Array.from({ length: 350 }, (_, i) =>
      crmOnly(
        i + 1,
        i >= 300
          ? { events: [optOut({ contact: i + 1, connection: CRM, at: T1, mechanism: "phone_request" })] }
          : {},
        [],
      ),
    );
    const plan = planPair(planInput(contacts));
    expect(plan.operations).toEqual([]);
    expect(plan.counts.skipped[MAIN]).toEqual({ not_in_synced_audience: 350, opted_out: 50 });
    expect(plan.counts.skipped_records).toBe(700); // 350 records on each of two platforms
    // Listed: the first 200 not in the audience, none of the next 100, and the 50 opted out, whose
    // reason has room left.
    const listed = plan.skipped.filter((s) => s.connection_id === MAIN).map((s) => s.contact_id);
    expect(listed).toEqual([
      ...Array.from({ length: 200 }, (_, i) => contactId(i + 1)),
      ...Array.from({ length: 50 }, (_, i) => contactId(i + 301)),
    ]);
  });

  it("says of each contact whether it had nothing to do and what it added; a replay adds the same", () => {
    const { contacts: _, ...input } = planInput([]);
    const planner = createPairPlanner(input);
    // Outside the synced lists: skipped on both platforms, nothing to do.
    const outside = planner.add(crmOnly(1, {}, []));
    expect(outside.settled).toBe(true);
    expect(outside.contribution?.skipped.map((r) => [r.connection_id, r.reasons[0]?.code])).toEqual([
      [MAIN, "not_in_synced_audience"],
      [APPEALS, "not_in_synced_audience"],
    ]);
    // To import: work, so not settled; its place in the bulk upserts is what it added.
    const toImport = planner.add(crmOnly(2));
    expect(toImport.settled).toBe(false);
    expect(toImport.contribution?.bulk?.map((c) => [c.kind, c.connection])).toEqual([
      ["upsert", MAIN],
      ["upsert", APPEALS],
    ]);
    // An opt-out in the CRM to carry to both platforms: operations, each with its id.
    const optedOut = planner.add(linked(4, { events: [optOut({ contact: 4, connection: CRM, at: T1 })] }));
    expect(optedOut.settled).toBe(false);
    expect(optedOut.contribution?.consent_ops?.length).toBeGreaterThan(0);
    // An implied opt-in that expires: settled until it does.
    const implied = {
      ...optIn({ contact: 3, connection: MAIN, at: T1 }),
      basis: "implied" as const,
      expires_at: "2026-09-01T00:00:00.000Z",
    };
    const expiring = planner.add(crmOnly(3, { events: [implied] }, []));
    expect(expiring).toMatchObject({ settled: true, until: "2026-09-01T00:00:00.000Z" });

    // Each contribution read back from JSON (as a mark keeps it) and replayed: the same plan.
    const replayed = createPairPlanner(input);
    for (const o of [outside, toImport, optedOut, expiring]) {
      if (o.contribution === undefined) throw new Error("expected a contribution");
      replayed.replay(JSON.parse(JSON.stringify(o.contribution)) as typeof o.contribution);
    }
    expect(replayed.finish()).toEqual(planner.finish());
  });

  it("a contact settled under a lapse rule is settled until its implied consent lapses, then it lapses", () => {
    const { contacts: _, ...input } = planInput([]);
    const rules = {
      rules: [
        {
          name: "casl",
          countries: ["CA"],
          topics: [],
          periods: { donation: { years: 2, months: 0, days: 0 }, inquiry: { years: 0, months: 6, days: 0 } },
        },
      ],
      event_id: () => "evt_lapse",
    };
    const donor = crmOnly(
      1,
      {
        crm: crmRecord(1, {
          fields: { country: "CA" },
          consent_grounds: [{ kind: "donation", at: "2025-03-01T00:00:00.000Z" }],
        }),
      },
      [],
    );
    const before = createPairPlanner({ ...input, implied_consent: rules }).add(donor);
    expect(before).toMatchObject({ settled: true, until: "2027-03-01T00:00:00.000Z" });
    const after = createPairPlanner({ ...input, implied_consent: rules, as_of: "2027-03-01T00:00:00.000Z" });
    // The lapse is planned from time, not from the donor's rows: nothing to replay, planned each time.
    expect(after.add(donor)).toEqual({ settled: false });
    // Lapses put off (the CRM could not confirm them): the donor is planned as before the lapse, no
    // opt-out by rule, and still not marked; a donor with no lapse due is planned and marked the same
    // either way.
    const deferring = createPairPlanner({
      ...input,
      implied_consent: { ...rules, defer: true },
      as_of: "2027-03-01T00:00:00.000Z",
    });
    expect(deferring.add(donor)).toEqual({ settled: true });
    expect(deferring.finish().lapses).toEqual([]);
    const recent = crmOnly(
      2,
      {
        crm: crmRecord(2, {
          fields: { country: "CA" },
          consent_grounds: [{ kind: "donation", at: "2026-06-01T00:00:00.000Z" }],
        }),
      },
      [],
    );
    const acting = createPairPlanner({ ...input, implied_consent: rules, as_of: "2027-03-01T00:00:00.000Z" });
    const marked = acting.add(recent);
    expect(marked).toMatchObject({ until: "2028-06-01T00:00:00.000Z" });
    expect(deferring.add(recent)).toEqual(marked);
  });

  it("groups new contacts by the lists they go into", () => {
    const plan = planPair(planInput([crmOnly(1, {}, ["L-news"]), crmOnly(2, {}, ["L-news", "L-events"])]));
    expect(
      plan.operations
        .filter((o) => o.connection_id === MAIN)
        .map((o) => (o.operation.kind === "upsert_contacts" ? o.operation.list_ids : [])),
    ).toEqual([["cc-events", "cc-news"], ["cc-news"]]);
  });

  it("creates CRM records for platform-only contacts only when the pair says so", () => {
    // In "Events", which the pair maps both ways, and subscribed there.
    const only = {
      contact: person(1),
      events: [],
      platforms: { [MAIN]: platformRecord(1, MAIN, { list_ids: ["cc-events"] }) },
    };
    expect(planPair(planInput([only])).operations).toEqual([]);
    const plan = planPair(planInput([only], { policies: { ...POLICIES, create_in_crm: true } }));
    expect(view(plan)).toEqual([`${CRM} create_contact`]);
    expect(plan.operations[0]?.operation).toMatchObject({
      email: "p1@example.org",
      kind_of_record: "individual",
    });
  });

  it.each([
    [
      "in no list the pair maps towards the CRM",
      platformRecord(1, MAIN, { list_ids: ["cc-news"] }),
      [],
      "not_in_synced_audience",
    ],
    [
      "without the account's permission (pending confirmation)",
      platformRecord(1, MAIN, { list_ids: ["cc-events"], consent_state: [] }),
      [],
      "no_consent_basis",
    ],
    ["unsubscribed", unsubscribed(1, MAIN), [optOut({ contact: 1, connection: MAIN, at: T1 })], "opted_out"],
    [
      "with an invalid address",
      platformRecord(1, MAIN, { list_ids: ["cc-events"], email: "p1@@example" }),
      [],
      "invalid_email",
    ],
  ] as const)("never creates a CRM record for someone %s (seed 002)", (_name, record, events, reason) => {
    const only = { contact: person(1), events: [...events], platforms: { [MAIN]: record } };
    const plan = planPair(planInput([only], { policies: { ...POLICIES, create_in_crm: true } }));
    expect(plan.operations).toEqual([]);
    expect(
      plan.skipped.filter((x) => x.connection_id === CRM).flatMap((x) => x.reasons.map((r) => r.code)),
    ).toContain(reason);
  });
});

describe("planPair: lists, email and fields", () => {
  it.each([
    {
      name: "in the CRM list, not on the platform → add",
      crm: ["L-news"],
      platform: [],
      ops: [`${MAIN} add_list_members cc-news`],
    },
    {
      name: "left the CRM list with remove_membership → remove",
      crm: [],
      platform: ["cc-news"],
      ops: [`${MAIN} remove_list_members cc-news`],
      agreed: true,
    },
    {
      name: "joined on the platform, never in the CRM list: remove_membership leaves them",
      crm: [],
      platform: ["cc-news"],
      ops: [],
    },
    {
      name: "both directions: on the platform list only → add to the CRM list",
      crm: [],
      platform: ["cc-events"],
      ops: [`${CRM} add_list_members L-events`],
    },
    { name: "delete_policy keep never removes", crm: [], platform: ["cca-appeals"], ops: [], conn: APPEALS },
    {
      name: "the CRM list's own Do Not Contact removes whatever the policy",
      crm: [],
      stopped: ["L-appeals"],
      platform: ["cca-appeals"],
      ops: [`${APPEALS} remove_list_members cca-appeals`],
      conn: APPEALS,
    },
    {
      name: "the CRM list's own Do Not Contact: a platform join is removed, never copied to the CRM list",
      crm: [],
      stopped: ["L-events"],
      platform: ["cc-events"],
      ops: [`${MAIN} remove_list_members cc-events`],
    },
    {
      name: "the CRM list's own Do Not Contact, not on the platform list: nothing added",
      crm: [],
      stopped: ["L-news"],
      platform: [],
      ops: [],
    },
    { name: "no list add for an opted-out contact", crm: ["L-news"], platform: [], ops: [], optedOut: true },
  ])("$name", ({ crm, platform, ops, conn, optedOut, agreed, stopped }) => {
    const c = conn ?? MAIN;
    const contact = linked(1, {
      ...(agreed === true ? { baselines: { [c]: { "list:L-news:cc-news": "member" } } } : {}),
      crm: crmRecord(1, { list_ids: crm, ...(stopped ? { stopped_list_ids: stopped } : {}) }),
      platforms: { [c]: optedOut ? unsubscribed(1, c) : platformRecord(1, c, { list_ids: platform }) },
      events: optedOut ? [optOut({ contact: 1, connection: c, at: T1 })] : [],
      ...(optedOut
        ? { crm: crmRecord(1, { list_ids: crm, consent_state: crmFacts({ global_opt_out: true }) }) }
        : {}),
    });
    const plan = planPair(planInput([contact]));
    expect(
      plan.operations.map((o) =>
        "list_ids" in o.operation && o.operation.kind !== "upsert_contacts"
          ? `${o.connection_id} ${o.operation.kind} ${o.operation.list_ids.join(",")}`
          : `${o.connection_id} ${o.operation.kind}`,
      ),
    ).toEqual(ops);
    if (optedOut) expect(plan.skipped[0]?.reasons.map((r) => r.code)).toEqual(["opted_out"]);
  });

  it("a record archived on the platform gets no field, list or address write, only its opt-out", () => {
    const archived = platformRecord(1, MAIN, { inactive: true, list_ids: [] });
    const changed = crmRecord(1, {
      emails: [{ address: "new1@example.org", primary: true }],
      first_name: "Renamed",
      list_ids: ["L-news"],
    });
    const quiet = planPair(planInput([linked(1, { crm: changed, platforms: { [MAIN]: archived } })]));
    expect(quiet.operations.filter((o) => o.connection_id === MAIN)).toEqual([]);
    expect(
      quiet.skipped.filter((x) => x.connection_id === MAIN).flatMap((x) => x.reasons.map((r) => r.code)),
    ).toEqual(["inactive_on_platform"]);
    const optedOut = planPair(
      planInput([
        linked(1, {
          crm: crmRecord(1, { consent_state: crmFacts({ global_opt_out: true }) }),
          events: [optOut({ contact: 1, connection: CRM, at: T1, mechanism: "phone_request" })],
          platforms: { [MAIN]: archived },
        }),
      ]),
    );
    expect(view(optedOut).filter((v) => v.startsWith(MAIN))).toEqual([`${MAIN} record_opt_out account`]);
  });

  it("the CRM's new primary email → change_email on every linked platform", () => {
    const plan = planPair(
      planInput([
        linked(1, { crm: crmRecord(1, { emails: [{ address: "New1@Example.org", primary: true }] }) }),
      ]),
    );
    expect(view(plan)).toEqual([`${MAIN} change_email`, `${APPEALS} change_email`]);
    expect(find(plan, MAIN, "change_email")?.operation).toMatchObject({
      external_id: `${MAIN}-1`,
      old_email: "p1@example.org",
      new_email: "New1@Example.org",
    });
    expect(find(plan, MAIN, "change_email")?.reason.code).toBe("email_changed_in_crm");
  });

  it("the same address in another spelling is no change", () => {
    const plan = planPair(
      planInput([
        linked(1, { crm: crmRecord(1, { emails: [{ address: " P1@EXAMPLE.org", primary: true }] }) }),
      ]),
    );
    expect(plan.operations).toEqual([]);
  });

  it("a platform that moved from the agreed address → change_email on the CRM", () => {
    const plan = planPair(
      planInput([
        linked(1, {
          platforms: {
            [MAIN]: platformRecord(1, MAIN, { email: "moved1@example.org" }),
            [APPEALS]: platformRecord(1, APPEALS),
          },
          baselines: { [MAIN]: { email: "p1@example.org" } },
        }),
      ]),
    );
    // The CRM follows, and every other platform follows in the same plan (one plan converges).
    expect(view(plan)).toEqual([`${APPEALS} change_email`, `${CRM} change_email`]);
    expect(find(plan, APPEALS, "change_email")?.reason.code).toBe("email_changed_on_platform");
    expect(find(plan, APPEALS, "change_email")?.operation).toMatchObject({ new_email: "moved1@example.org" });
    expect(find(plan, CRM, "change_email")?.operation).toMatchObject({
      old_email: "p1@example.org",
      new_email: "moved1@example.org",
    });
  });

  it("merges profile fields three ways against the baseline", () => {
    const plan = planPair(
      planInput([
        linked(1, {
          crm: crmRecord(1, { first_name: "Ann", fields: { preferred_name: "Annie", title: "CEO" } }),
          platforms: {
            [MAIN]: platformRecord(1, MAIN, {
              first_name: "First1",
              fields: { job_title: "Chief", "custom_field:3b6c7a14-0f6e-4b8e-9c1d-5a2e7f4d9b10": null },
            }),
          },
          baselines: {
            [MAIN]: { first_name: "First1", last_name: "Last1", job_title: "CEO", email: "p1@example.org" },
          },
        }),
      ]),
    );
    expect(find(plan, MAIN, "update_contact")?.operation).toMatchObject({
      first_name: "Ann",
      fields: { "custom_field:3b6c7a14-0f6e-4b8e-9c1d-5a2e7f4d9b10": "Annie" },
    });
    expect(find(plan, CRM, "update_contact")?.operation).toMatchObject({ fields: { title: "Chief" } });
    expect(find(plan, CRM, "update_contact")?.operation).not.toHaveProperty("first_name");
  });

  it.each([
    { canonical: "email_opt_in", crm: "x", platform: "y" },
    { canonical: "flag", crm: "requests_no_email", platform: "y" },
    { canonical: "status", crm: "x", platform: "permission_to_send" },
  ])("refuses a consent field in the profile merge ($canonical: $crm ↔ $platform)", (names) => {
    const input = planInput([linked(1)], { fields: [{ ...names, direction: "both", owner: "latest" }] });
    expect(() => planPair(input)).toThrow(/consent fields never go through the profile merge/);
  });
});

describe("planPair: operation ids and convergence", () => {
  const scenario = (): PlanContact[] => [
    linked(1, {
      events: [optOut({ contact: 1, connection: MAIN, at: T1 })],
      platforms: { [MAIN]: unsubscribed(1, MAIN), [APPEALS]: platformRecord(1, APPEALS) },
    }),
    linked(2, {
      crm: crmRecord(2, { emails: [{ address: "new2@example.org", primary: true }], list_ids: ["L-news"] }),
    }),
    {
      contact: person(3),
      events: [],
      crm: crmRecord(3, { list_ids: ["L-news", "L-appeals"] }),
      platforms: {},
    },
    linked(4, {
      events: [
        optOut({ contact: 4, connection: MAIN, at: T1 }),
        resubscribeRequested({ contact: 4, connection: CRM, at: T2 }),
      ],
      platforms: { [MAIN]: unsubscribed(4, MAIN) },
    }),
  ];

  it("gives every operation a distinct op_ id derived from its content, the same on every re-plan", () => {
    const a = planPair(planInput(scenario()));
    const b = planPair(planInput(scenario()));
    expect(b).toEqual(a);
    const ids = a.operations.map((o) => o.op_id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const o of a.operations) {
      expect(o.op_id).toMatch(/^op_[0-9a-f]+$/);
      expect(o.operation.op_id).toBe(o.op_id);
    }
    const sha = planPair(
      planInput(scenario(), { hash: (t) => createHash("sha256").update(t).digest("hex") }),
    );
    expect(sha.operations[0]?.op_id).toMatch(/^op_[0-9a-f]{64}$/);
  });

  it("does not depend on the order contacts arrive in", () => {
    const ids = (p: Plan) => p.operations.map((o) => o.op_id).sort();
    expect(ids(planPair(planInput(scenario().reverse())))).toEqual(ids(planPair(planInput(scenario()))));
  });

  it("plans nothing once the plan's effects are in place", () => {
    const input = planInput(scenario());
    const plan = planPair(input);
    expect(plan.operations.length).toBeGreaterThan(0);
    const after = planPair(planInput(applyPlanEffects(input, plan)));
    expect(after.operations).toEqual([]);
  });
});

describe("planPair: a topic kept as a platform's list", () => {
  // The main account keeps the topic "newsletter" as its list cc-news (a Constant Contact list
  // standing for a topic): in the list is receiving it, not in it is not.
  const NEWS_LIST = constructScope("list", "cc-news", "Newsletter");
  const [main, appeals] = PAIR.platforms;
  const pair = {
    ...PAIR,
    platforms: [
      {
        ...main!,
        targets: [
          ...main!.targets,
          {
            scope: topicScope("newsletter"),
            construct: NEWS_LIST,
            shown_by: "membership" as const,
            label: "contact list “Newsletter”",
          },
        ],
        audiences: main!.audiences.map((a) =>
          a.platform_list_id === "cc-news" ? { ...a, topic: "newsletter" } : a,
        ),
      },
      appeals!,
    ],
  };
  const newsOut = (n: number) =>
    optOut({
      contact: n,
      connection: CRM,
      at: T1,
      scope: topicScope("newsletter"),
      mechanism: "preference_page",
    });

  it("takes a member who left the topic out of its list, and leaves the account subscribed", () => {
    const input = planInput(
      [
        linked(1, {
          events: [newsOut(1)],
          crm: crmRecord(1, { list_ids: ["L-news"] }),
          platforms: { [MAIN]: platformRecord(1, MAIN, { list_ids: ["cc-news"] }) },
        }),
      ],
      { pair },
    );
    const plan = planPair(input);
    const out = plan.operations.filter((o) => o.connection_id === MAIN);
    expect(out.map((o) => [o.operation.kind, "scope" in o.operation ? o.operation.scope : null])).toEqual([
      ["record_opt_out", NEWS_LIST],
    ]);
    expect(out[0]?.scope).toEqual(topicScope("newsletter"));
    expect(out[0]?.reason.message).toContain("still shows the person in contact list “Newsletter”");
    // Once out of the list, planning again finds nothing to do on the platform.
    const after = applyPlanEffects(input, plan);
    expect(after[0]?.platforms[MAIN]?.list_ids).toEqual([]);
    const again = planPair({ ...input, contacts: after });
    expect(again.operations.filter((o) => o.connection_id === MAIN)).toEqual([]);
  });

  it("a resubscribe request's confirmation puts the person back in the CRM's lists, never in a topic's list they opted out of", () => {
    const plan = planPair(
      planInput(
        [
          linked(3, {
            events: [
              optOut({ contact: 3, connection: MAIN, at: T1 }),
              newsOut(3),
              resubscribeRequested({ contact: 3, connection: CRM, at: T2 }),
            ],
            crm: crmRecord(3, { list_ids: ["L-news", "L-events"] }),
            platforms: { [MAIN]: unsubscribed(3, MAIN) },
          }),
        ],
        { pair },
      ),
    );
    expect(find(plan, MAIN, "request_resubscribe")?.operation).toMatchObject({ list_ids: ["cc-events"] });
    // A topic they did not leave: its list is asked for too (the global opt-out is what they confirm away).
    const kept = planPair(
      planInput(
        [
          linked(4, {
            events: [
              optOut({ contact: 4, connection: MAIN, at: T1 }),
              resubscribeRequested({ contact: 4, connection: CRM, at: T2 }),
            ],
            crm: crmRecord(4, { list_ids: ["L-news", "L-events"] }),
            platforms: { [MAIN]: unsubscribed(4, MAIN) },
          }),
        ],
        { pair },
      ),
    );
    expect(find(kept, MAIN, "request_resubscribe")?.operation).toMatchObject({
      list_ids: ["cc-events", "cc-news"],
    });
  });

  it("never adds someone who left the topic to its list, and imports a new contact into the other lists only", () => {
    const existing = planPair(
      planInput(
        [
          linked(2, {
            events: [newsOut(2)],
            crm: crmRecord(2, { list_ids: ["L-news"] }),
            platforms: { [MAIN]: platformRecord(2, MAIN) },
          }),
        ],
        { pair },
      ),
    );
    expect(existing.operations.filter((o) => o.operation.kind === "add_list_members")).toEqual([]);
    expect(existing.skipped).toContainEqual(
      expect.objectContaining({
        connection_id: MAIN,
        reasons: [expect.objectContaining({ code: "opted_out", scope: topicScope("newsletter") })],
      }),
    );

    const fresh = planPair(
      planInput(
        [
          linked(3, {
            events: [newsOut(3)],
            crm: crmRecord(3, { list_ids: ["L-news", "L-events"] }),
            platforms: {},
          }),
        ],
        { pair },
      ),
    );
    const upsert = fresh.operations.find((o) => o.operation.kind === "upsert_contacts");
    expect(upsert?.operation).toMatchObject({
      list_ids: ["cc-events"],
      consent_intent: { existing: "keep", new_contacts: "subscribed" },
    });
  });

  /** Plans `input`, applies the plan's effects, then `change` (what happens before the next read). */
  const next = (
    input: PlanInput,
    change: (c: PlanContact) => PlanContact = (c) => c,
    as_of = input.as_of,
  ) => {
    const plan = planPair(input);
    return { plan, input: { ...input, as_of, contacts: applyPlanEffects(input, plan).map(change) } };
  };
  const lists = (crm: string[], platform: string[]) => (c: PlanContact) => ({
    ...c,
    crm: { ...c.crm!, list_ids: crm },
    platforms: { ...c.platforms, [MAIN]: { ...c.platforms[MAIN]!, list_ids: platform } },
  });
  const adds = (plan: Plan) =>
    plan.operations.filter((o) => o.operation.kind === "add_list_members").map((o) => o.operation);
  const KEY = "topic:newsletter:list:cc-news";
  const LATER = "2026-07-01T00:00:00.000Z";

  it("keeps someone who left the topic's list on the platform out of it after the CRM drops and adds them again, until they opt in to the topic themselves", () => {
    const start = planInput(
      [
        linked(5, {
          crm: crmRecord(5, { list_ids: ["L-news", "L-events"] }),
          platforms: { [MAIN]: platformRecord(5, MAIN, { list_ids: ["cc-news", "cc-events"] }) },
        }),
      ],
      { pair },
    );
    // Both sides agree; then the person unticks the newsletter on the platform's own form, and an
    // admin there takes them out of the events list.
    let step = next(start, lists(["L-news", "L-events"], []));
    step = next(step.input);
    expect(adds(step.plan)).toEqual([]);
    expect(step.input.contacts[0]?.baselines?.[MAIN]).toMatchObject({
      [KEY]: "left",
      [`${KEY}:left_at`]: start.as_of,
      "list:L-news:cc-news": "member",
      "list:L-events:cc-events": "member",
    });
    // The CRM drops them from both lists, then adds them to both again (a list rebuilt).
    step = next(step.input, lists([], []));
    step = next(step.input, lists(["L-news", "L-events"], []));
    expect(step.input.contacts[0]?.baselines?.[MAIN]?.[KEY]).toBe("left");
    step = next(step.input);
    // The events list is the organisation's: it gets them back. The newsletter's list does not.
    expect(adds(step.plan)).toEqual([expect.objectContaining({ list_ids: ["cc-events"] })]);

    // An opt-in to the topic that is not the person's own act changes nothing.
    const byAdmin = optIn({
      contact: 5,
      connection: CRM,
      at: LATER,
      scope: topicScope("newsletter"),
      mechanism: "admin_edit",
      actor: { kind: "account" },
    });
    const held = next({
      ...step.input,
      as_of: LATER,
      contacts: step.input.contacts.map((c) => ({ ...c, events: [byAdmin] })),
    });
    expect(adds(held.plan)).toEqual([]);

    // Their own opt-in to the topic, after the leave, puts them back; then the leave is over.
    const own = optIn({
      contact: 5,
      connection: CRM,
      at: LATER,
      scope: topicScope("newsletter"),
      mechanism: "preference_page",
    });
    const back = next({
      ...step.input,
      as_of: LATER,
      contacts: step.input.contacts.map((c) => ({ ...c, events: [own] })),
    });
    expect(adds(back.plan)).toEqual([expect.objectContaining({ list_ids: ["cc-news"] })]);
    expect(back.input.contacts[0]?.baselines?.[MAIN]?.[KEY]).toBe("member");
    expect(back.input.contacts[0]?.baselines?.[MAIN]?.[`${KEY}:left_at`]).toBeUndefined();
  });

  it("puts someone back into the topic's list when they opt in to the topic again after an opt-out took them out", () => {
    const out = newsOut(6);
    let step = next(
      planInput(
        [
          linked(6, {
            events: [out],
            // Both sides held the membership when they last agreed.
            baselines: { [MAIN]: { [KEY]: "member" } },
            crm: crmRecord(6, { list_ids: ["L-news"] }),
            platforms: { [MAIN]: platformRecord(6, MAIN, { list_ids: ["cc-news"] }) },
          }),
        ],
        { pair },
      ),
    );
    expect(view(step.plan)).toContain(`${MAIN} record_opt_out category:cc-news`);
    step = next(step.input);
    expect(step.plan.operations.filter((o) => o.connection_id === MAIN)).toEqual([]);
    expect(step.input.contacts[0]?.baselines?.[MAIN]?.[KEY]).toBe("left");
    const back = optIn({
      contact: 6,
      connection: CRM,
      at: LATER,
      scope: topicScope("newsletter"),
      mechanism: "preference_page",
    });
    const again = next({
      ...step.input,
      as_of: LATER,
      contacts: step.input.contacts.map((c) => ({ ...c, events: [out, back] })),
    });
    expect(adds(again.plan)).toEqual([expect.objectContaining({ list_ids: ["cc-news"] })]);
    // And once back in, nothing more to do.
    expect(next(again.input).plan.operations.filter((o) => o.connection_id === MAIN)).toEqual([]);
  });

  it("puts someone back into a topic's list no CRM list maps once they opt in again, and never on an older opt-in after they leave again", () => {
    // The list only stands for the topic (as a Mailchimp group usually does): no CRM list maps it.
    const alone = {
      ...pair,
      platforms: pair.platforms.map((p) =>
        p.connection_id === MAIN
          ? { ...p, audiences: p.audiences.filter((a) => a.platform_list_id !== "cc-news") }
          : p,
      ),
    };
    const out = newsOut(7);
    let step = next(
      planInput(
        [
          linked(7, {
            events: [out],
            baselines: { [MAIN]: { [KEY]: "member" } },
            platforms: { [MAIN]: platformRecord(7, MAIN, { list_ids: ["cc-news"] }) },
          }),
        ],
        { pair: alone },
      ),
    );
    expect(view(step.plan)).toContain(`${MAIN} record_opt_out category:cc-news`);
    step = next(step.input);
    expect(step.input.contacts[0]?.baselines?.[MAIN]?.[KEY]).toBe("left");
    const back = optIn({
      contact: 7,
      connection: CRM,
      at: LATER,
      scope: topicScope("newsletter"),
      mechanism: "preference_page",
    });
    const withBack = (c: PlanContact) => ({ ...c, events: [out, back] });
    const again = next({ ...step.input, as_of: LATER, contacts: step.input.contacts.map(withBack) });
    const put = again.plan.operations.filter((o) => o.connection_id === MAIN);
    expect(put.map((o) => [o.operation, o.reason.code, o.scope])).toEqual([
      [
        expect.objectContaining({ kind: "add_list_members", list_ids: ["cc-news"] }),
        "opt_in_to_platform",
        topicScope("newsletter"),
      ],
    ]);
    expect(put[0]?.reason.message).toContain(back.id);
    // They untick it on the platform's own form again, later: the opt-in before that is spent.
    const AFTER = "2026-08-01T00:00:00.000Z";
    let left = next(again.input, lists([], []), AFTER);
    expect(left.input.contacts[0]?.baselines?.[MAIN]?.[KEY]).toBe("member");
    left = next(left.input, (c) => c, AFTER);
    expect(left.input.contacts[0]?.baselines?.[MAIN]).toMatchObject({
      [KEY]: "left",
      [`${KEY}:left_at`]: AFTER,
    });
    expect(next(left.input).plan.operations.filter((o) => o.connection_id === MAIN)).toEqual([]);
  });

  it("does not hold someone out of a topic's list when the CRM's own list took them out, and the CRM adds them again", () => {
    const removing = {
      ...pair,
      platforms: pair.platforms.map((p) =>
        p.connection_id === MAIN
          ? {
              ...p,
              audiences: p.audiences.map((a) => ({ ...a, delete_policy: "remove_membership" as const })),
            }
          : p,
      ),
    };
    let step = next(
      planInput(
        [
          linked(8, {
            crm: crmRecord(8, { list_ids: ["L-news"] }),
            platforms: { [MAIN]: platformRecord(8, MAIN, { list_ids: ["cc-news"] }) },
          }),
        ],
        { pair: removing },
      ),
      lists([], ["cc-news"]),
    );
    step = next(step.input);
    expect(step.plan.operations.map((o) => o.operation.kind)).toContain("remove_list_members");
    expect(step.input.contacts[0]?.baselines?.[MAIN]?.[KEY]).toBeUndefined();
    step = next(step.input, lists(["L-news"], []));
    step = next(step.input);
    expect(adds(step.plan)).toEqual([expect.objectContaining({ list_ids: ["cc-news"] })]);
  });

  describe("who is put back into a topic's list they left", () => {
    const ownIn = (n: number, at = LATER) =>
      optIn({
        contact: n,
        connection: CRM,
        at,
        scope: topicScope("newsletter"),
        mechanism: "preference_page",
      });
    const leftOf = (
      n: number,
      o: Parameters<typeof linked>[1] = {},
      rec: Partial<PlatformRecordState> = {},
    ) =>
      linked(n, {
        events: [ownIn(n)],
        baselines: { [MAIN]: { [KEY]: "left", [`${KEY}:left_at`]: T3 } },
        crm: crmRecord(n, { list_ids: ["L-news"] }),
        platforms: { [MAIN]: platformRecord(n, MAIN, rec) },
        ...o,
      });
    const planned = (c: PlanContact, p = pair) => planPair(planInput([c], { pair: p, as_of: LATER }));

    it("someone whose own opt-in came after they left", () => {
      expect(adds(planned(leftOf(9)))).toEqual([expect.objectContaining({ list_ids: ["cc-news"] })]);
    });

    it("not while the CRM's list mapped to it stops email through it", () => {
      const c = leftOf(10, { crm: crmRecord(10, { list_ids: ["L-news"], stopped_list_ids: ["L-news"] }) });
      expect(adds(planned(c))).toEqual([]);
    });

    it("not on an opt-in older than the record's last change on the platform (they left again since)", () => {
      expect(adds(planned(leftOf(11, {}, { updated_at: "2026-07-02T00:00:00.000Z" })))).toEqual([]);
    });

    it("not while the platform's own scope may not be sent to them (its account stands for a topic they left)", () => {
      const appealsAccount = {
        ...pair,
        platforms: pair.platforms.map((p) =>
          p.connection_id === MAIN ? { ...p, account_scope: topicScope("appeals") } : p,
        ),
      };
      const c = leftOf(12, {
        events: [optOut({ contact: 12, connection: CRM, at: T1, scope: topicScope("appeals") }), ownIn(12)],
      });
      const plan = planned(c, appealsAccount);
      expect(adds(plan)).toEqual([]);
      expect(plan.skipped).toContainEqual(
        expect.objectContaining({
          connection_id: MAIN,
          reasons: [expect.objectContaining({ code: "opted_out", scope: topicScope("appeals") })],
        }),
      );
    });

    it("dates the leave by the record's last change, so an opt-in made before the leave was read counts", () => {
      // Concord took them out for a topic opt-out (the platform's change at T2); they ticked the
      // topic again at T3, before a read saw them out.
      const c = linked(13, {
        events: [newsOut(13), ownIn(13, T3)],
        baselines: { [MAIN]: { [KEY]: "member", "list:L-news:cc-news": "member" } },
        crm: crmRecord(13, { list_ids: ["L-news"] }),
        platforms: { [MAIN]: platformRecord(13, MAIN, { updated_at: T2 }) },
      });
      const read = next(planInput([c], { pair, as_of: LATER }));
      expect(read.input.contacts[0]?.baselines?.[MAIN]).toMatchObject({
        [KEY]: "left",
        [`${KEY}:left_at`]: new Date(T2).toISOString(),
      });
      expect(adds(next(read.input).plan)).toEqual([expect.objectContaining({ list_ids: ["cc-news"] })]);
    });

    it("dates a leave no later than the plan, whatever the platform's clock says of the record", () => {
      // A platform clock ahead of Concord's would date the leave after the person's next opt-in,
      // and keep them out for it.
      const ahead = new Date(Date.parse(LATER) + 3_600_000).toISOString();
      const c = linked(15, {
        events: [newsOut(15)],
        baselines: { [MAIN]: { [KEY]: "member", "list:L-news:cc-news": "member" } },
        crm: crmRecord(15, { list_ids: ["L-news"] }),
        platforms: { [MAIN]: platformRecord(15, MAIN, { updated_at: ahead }) },
      });
      const read = next(planInput([c], { pair, as_of: LATER }));
      expect(read.input.contacts[0]?.baselines?.[MAIN]).toMatchObject({
        [KEY]: "left",
        [`${KEY}:left_at`]: LATER,
      });
    });

    it("never marks a record that left the account (unsubscribed there) as leaving its topic's lists", () => {
      const c = linked(14, {
        events: [optOut({ contact: 14, connection: MAIN, at: T1 })],
        baselines: { [MAIN]: { [KEY]: "member", "list:L-news:cc-news": "member" } },
        crm: crmRecord(14, { list_ids: ["L-news"] }),
        platforms: { [MAIN]: unsubscribed(14, MAIN) },
      });
      const after = next(planInput([c], { pair }));
      expect(after.input.contacts[0]?.baselines?.[MAIN]?.[KEY]).toBeUndefined();
    });
  });

  it("skips a new contact whose only mapped list stands for a topic they left, with that reason", () => {
    const plan = planPair(
      planInput(
        [linked(4, { events: [newsOut(4)], crm: crmRecord(4, { list_ids: ["L-news"] }), platforms: {} })],
        { pair },
      ),
    );
    expect(plan.operations.filter((o) => o.connection_id === MAIN)).toEqual([]);
    expect(plan.skipped).toContainEqual(
      expect.objectContaining({
        connection_id: MAIN,
        reasons: [expect.objectContaining({ code: "opted_out", scope: topicScope("newsletter") })],
      }),
    );
  });
});

describe("planPair: what a platform's manifest says about resubscribing", () => {
  it("asks for a confirmation email only where the platform sends one; elsewhere it waits for the person", () => {
    const contact = linked(5, {
      events: [
        optOut({ contact: 5, connection: CRM, at: T1, mechanism: "admin_edit", actor: { kind: "account" } }),
        resubscribeRequested({ contact: 5, connection: CRM, at: T2 }),
      ],
      platforms: { [MAIN]: unsubscribed(5, MAIN) },
    });
    const withEmail = planPair(planInput([contact]));
    expect(view(withEmail)).toContain(`${MAIN} request_resubscribe`);
    const contactOnly = {
      ...PAIR,
      platforms: PAIR.platforms.map((p) => ({ ...p, resubscribe: "contact_only" as const })),
    };
    const without = planPair(planInput([contact], { pair: contactOnly }));
    expect(view(without).filter((v) => v.includes("request_resubscribe"))).toEqual([]);
    expect(without.waiting).toEqual([
      expect.objectContaining({ contact_id: contactId(5), connection_id: MAIN, requested_now: false }),
    ]);
  });
});

describe("planPair: the account undoes its own opt-out (step 1c)", () => {
  const resubscribing = {
    ...PAIR,
    platforms: PAIR.platforms.map((p) =>
      p.connection_id === MAIN ? { ...p, account_resubscribe: true } : p,
    ),
  };
  // An admin ticked Do Not Contact in the CRM, Concord unsubscribed the contact, the admin cleared it.
  const events = [
    optOut({ contact: 1, connection: CRM, at: T1, mechanism: "admin_edit", actor: { kind: "account" } }),
    optIn({ contact: 1, connection: CRM, at: T2, mechanism: "admin_edit", actor: { kind: "account" } }),
  ];
  const planFor = (record: PlatformRecordState) =>
    planPair(planInput([linked(1, { events, platforms: { [MAIN]: record } })], { pair: resubscribing }));

  it("subscribes again the record it unsubscribed", () => {
    expect(find(planFor(unsubscribed(1, MAIN)), MAIN, "record_opt_in")?.reason.code).toBe(
      "opt_in_to_platform",
    );
  });

  it("writes nothing to a record the account archived or deleted: the write would bring it back", () => {
    for (const gone of [{ inactive: true }, { deleted: true }] as const) {
      const plan = planFor({ ...unsubscribed(1, MAIN), ...gone });
      expect(plan.operations.filter((o) => o.connection_id === MAIN)).toEqual([]);
    }
  });
});
