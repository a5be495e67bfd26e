import { describe, expect, it } from "vitest";
import type { ConsentEventDraft } from "./consent-event-id";
import { consentEventId, normaliseInstant } from "./consent-event-id";

const base: ConsentEventDraft = {
  kind: "opt_out",
  scope: { kind: "global" },
  contact_id: "con_1",
  channel: "email",
  source: { system: "constant_contact", connection: "cc_main" },
  mechanism: "unsubscribe_link",
  actor: { kind: "contact" },
  occurred_at: "2025-01-01T10:00:00Z",
  observed_at: "2025-01-01T10:00:05Z",
  evidence: { source_record_id: "act-1", ip: "203.0.113.7" },
};

describe("consentEventId", () => {
  it("is an evt_ id of 32 base32 characters, stable for the same content", () => {
    expect(consentEventId(base)).toMatch(/^evt_[a-z2-7]{32}$/);
    expect(consentEventId({ ...base })).toBe(consentEventId(base));
  });

  it.each([
    ["observed later, by another path", { observed_at: "2025-01-02T00:00:00Z" }],
    ["with more evidence", { evidence: { source_record_id: "act-1", user_agent: "Mail/1.0" } }],
    ["by another actor description", { actor: { kind: "account" as const } }],
    ["with the act time printed in ms", { occurred_at: "2025-01-01T10:00:00.000Z" }],
  ])("ignores what does not tell acts apart: %s", (_name, change) => {
    expect(consentEventId({ ...base, ...change })).toBe(consentEventId(base));
  });

  it.each([
    ["contact", { contact_id: "con_2" }],
    ["channel", { channel: "sms" as const }],
    ["kind", { kind: "resubscribe_requested" as const }],
    ["scope", { scope: { kind: "topic" as const, topic: "newsletter" } }],
    ["source system", { source: { system: "mailchimp", connection: "cc_main" } }],
    ["source connection", { source: { system: "constant_contact", connection: "cc_other" } }],
    ["mechanism", { mechanism: "one_click_header" as const }],
    ["time of the act", { occurred_at: "2025-01-01T10:00:01Z" }],
    ["source record", { evidence: { source_record_id: "act-2" } }],
  ])("changes with the %s", (_name, change) => {
    expect(consentEventId({ ...base, ...change })).not.toBe(consentEventId(base));
  });

  it("falls back to the payload digest when there is no source record id", () => {
    const a = { ...base, evidence: { payload_sha256: "a".repeat(64) } };
    const b = { ...base, evidence: { payload_sha256: "b".repeat(64) } };
    expect(consentEventId(a)).not.toBe(consentEventId(b));
    expect(consentEventId({ ...a, evidence: { ...a.evidence, ip: "198.51.100.1" } })).toBe(consentEventId(a));
  });
});

describe("normaliseInstant", () => {
  it.each([
    ["2025-01-01T10:00:00Z", "2025-01-01T10:00:00Z"],
    ["2025-01-01T10:00:00.000Z", "2025-01-01T10:00:00Z"],
    ["2025-01-01T10:00:00.120Z", "2025-01-01T10:00:00.12Z"],
    ["2025-01-01T10:00:00.123456Z", "2025-01-01T10:00:00.123456Z"],
  ])("%s -> %s", (input, expected) => {
    expect(normaliseInstant(input)).toBe(expected);
  });
});
