import { describe, expect, it } from "vitest";
import type { ConsentEvent } from "./consent-event";
import { decisionFor, foldChannelConsent } from "./consent-state";
import {
  addPeriod,
  impliedConsentLapses,
  nextLapseAt,
  rulesFor,
  type ImpliedConsentRule,
  type LapseInput,
} from "./implied-consent";

const CASL: ImpliedConsentRule = {
  name: "casl",
  countries: ["CA", "Canada"],
  topics: [],
  periods: { donation: { years: 2, months: 0, days: 0 }, inquiry: { years: 0, months: 6, days: 0 } },
};
const AS_OF = "2026-06-01T00:00:00.000Z";

const optIn = (basis: "express" | "implied", at: string, connection = "cc-main"): ConsentEvent => ({
  id: `evt_${basis}${at.replace(/\D/g, "")}`,
  kind: "opt_in",
  basis,
  contact_id: "con_1",
  channel: "email",
  scope: { kind: "global" },
  source: { system: "constant-contact", connection },
  mechanism: basis === "express" ? "signup_form" : "import",
  actor: basis === "express" ? { kind: "contact" } : { kind: "account" },
  occurred_at: at,
  observed_at: at,
  evidence: {},
});

const input = (over: Partial<LapseInput> = {}): LapseInput => {
  const events = over.events ?? [];
  return {
    contact_id: "con_1",
    country: "Canada",
    consent: foldChannelConsent(events, "email", { as_of: AS_OF, topics: ["news"] }),
    events,
    crm_grounds: [],
    created_by_concord: new Set(),
    as_of: AS_OF,
    ...over,
  };
};

describe("implied consent that lapses by rule", () => {
  it("lapses two years after the latest gift, dated the day it lapsed", () => {
    const lapses = impliedConsentLapses(
      input({ crm_grounds: [{ kind: "donation", at: "2024-03-31T00:00:00.000Z", ref: "gift:7" }] }),
      [CASL],
    );
    expect(lapses).toEqual([
      expect.objectContaining({
        kind: "opt_out",
        scope: { kind: "global" },
        mechanism: "expiry_rule",
        occurred_at: "2026-03-31T00:00:00.000Z",
        evidence: expect.objectContaining({ source_record_id: "gift:7" }),
      }),
    ]);
  });

  it("a ground within its period keeps consent; the longest-lasting ground decides", () => {
    const grounds = [
      { kind: "donation" as const, at: "2024-03-31T00:00:00.000Z" },
      { kind: "inquiry" as const, at: "2026-01-15T00:00:00.000Z" },
    ];
    expect(impliedConsentLapses(input({ crm_grounds: grounds }), [CASL])).toEqual([]);
  });

  it("says when consent not lapsed yet will lapse: the longest-lasting ground's end, none for express consent", () => {
    const grounds = [
      { kind: "donation" as const, at: "2025-03-31T00:00:00.000Z" },
      { kind: "inquiry" as const, at: "2026-01-15T00:00:00.000Z" },
    ];
    expect(nextLapseAt(input({ crm_grounds: grounds }), [CASL])).toBe("2027-03-31T00:00:00.000Z");
    // Lapsed already: nothing is due later (the lapse is due now).
    expect(
      nextLapseAt(input({ crm_grounds: [grounds[0]!], as_of: "2027-04-01T00:00:00.000Z" }), [CASL]),
    ).toBeUndefined();
    const express = [optIn("express", "2025-01-01T00:00:00.000Z")];
    expect(nextLapseAt(input({ crm_grounds: grounds, events: express }), [CASL])).toBeUndefined();
    expect(nextLapseAt(input({ crm_grounds: [] }), [CASL])).toBeUndefined();
  });

  it("express consent never lapses; a person with no known ground is left alone", () => {
    const old = [{ kind: "donation" as const, at: "2020-01-01T00:00:00.000Z" }];
    expect(
      impliedConsentLapses(
        input({ crm_grounds: old, events: [optIn("express", "2019-01-01T00:00:00.000Z")] }),
        [CASL],
      ),
    ).toEqual([]);
    expect(impliedConsentLapses(input(), [CASL])).toEqual([]);
  });

  it("a platform sign-up counts as an inquiry (six months), unless Concord's own import made the record", () => {
    const events = [optIn("implied", "2025-10-01T00:00:00.000Z")];
    expect(impliedConsentLapses(input({ events }), [CASL])).toHaveLength(1);
    expect(impliedConsentLapses(input({ events, created_by_concord: new Set(["cc-main"]) }), [CASL])).toEqual(
      [],
    );
  });

  it("an opt-out lifted by the person's own implied sign-up lapses like that sign-up; lifted by an express one, never", () => {
    const optOut: ConsentEvent = {
      id: "evt_out20250101",
      kind: "opt_out",
      contact_id: "con_1",
      channel: "email",
      scope: { kind: "global" },
      source: { system: "blackbaud-renxt", connection: "re-nxt" },
      mechanism: "unsubscribe_link",
      actor: { kind: "contact" },
      occurred_at: "2025-01-01T00:00:00.000Z",
      observed_at: "2025-01-01T00:00:00.000Z",
      evidence: {},
    };
    // The person signs up again on a form the platform holds as implicit permission.
    const signup = (basis: "express" | "implied"): ConsentEvent => ({
      ...optIn(basis, "2025-10-01T00:00:00.000Z"),
      mechanism: "signup_form",
      actor: { kind: "contact" },
    });
    const implied = input({ events: [optOut, signup("implied")] });
    expect(decisionFor(implied.consent, { kind: "global" }).rule).toBe("lifted_by_contact_opt_in");
    expect(impliedConsentLapses(implied, [CASL])).toEqual([
      expect.objectContaining({ mechanism: "expiry_rule", occurred_at: "2026-04-01T00:00:00.000Z" }),
    ]);
    const express = input({ events: [optOut, signup("express")] });
    expect(impliedConsentLapses(express, [CASL])).toEqual([]);
    expect(nextLapseAt(express, [CASL])).toBeUndefined();
  });

  it("staff clearing a flag they set is no inquiry: it gives the person no new six months", () => {
    const cleared: ConsentEvent = {
      ...optIn("implied", "2026-05-01T00:00:00.000Z", "growthzone"),
      id: "evt_cleared0001",
      mechanism: "admin_edit",
      actor: { kind: "account" },
    };
    const events = [optIn("implied", "2025-10-01T00:00:00.000Z"), cleared];
    expect(impliedConsentLapses(input({ events }), [CASL])).toEqual([
      expect.objectContaining({ occurred_at: "2026-04-01T00:00:00.000Z" }),
    ]);
  });

  it("covers only the rule's countries and topics; an opted-out person needs no lapse", () => {
    const old = [{ kind: "donation" as const, at: "2020-01-01T00:00:00.000Z" }];
    expect(impliedConsentLapses(input({ crm_grounds: old, country: "US" }), [CASL])).toEqual([]);
    expect(
      impliedConsentLapses(input({ crm_grounds: old, country: null }), [{ ...CASL, countries: ["*"] }]),
    ).toHaveLength(1);
    const topicRule = { ...CASL, topics: ["news"] };
    expect(impliedConsentLapses(input({ crm_grounds: old }), [topicRule])).toEqual([
      expect.objectContaining({ scope: { kind: "topic", topic: "news" } }),
    ]);
    const optedOut: ConsentEvent = {
      ...optIn("implied", "2021-01-01T00:00:00.000Z"),
      id: "evt_optout0001",
      kind: "opt_out",
      mechanism: "unsubscribe_link",
      actor: { kind: "contact" },
    } as ConsentEvent;
    expect(impliedConsentLapses(input({ crm_grounds: old, events: [optedOut] }), [CASL])).toEqual([]);
    expect(rulesFor([CASL], " canada ")).toHaveLength(1);
  });

  it("adds calendar periods, a day past a shorter month's end being its last day", () => {
    expect(addPeriod("2024-02-29T10:00:00.000Z", { years: 2, months: 0, days: 0 })).toBe(
      "2026-02-28T10:00:00.000Z",
    );
    expect(addPeriod("2025-08-31T00:00:00.000Z", { years: 0, months: 6, days: 0 })).toBe(
      "2026-02-28T00:00:00.000Z",
    );
    expect(addPeriod("2025-01-01T00:00:00.000Z", { years: 0, months: 0, days: 180 })).toBe(
      "2025-06-30T00:00:00.000Z",
    );
  });
});
