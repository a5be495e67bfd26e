import { describe, expect, it } from "vitest";
import { readSnapshotRecord, SnapshotRecordSchema } from "./stored-snapshot";

/** A snapshot as Concord writes one today (a CRM record with every kind of consent fact). */
const current = {
  external_id: "280012",
  kind: "individual",
  emails: [
    { address: "ada@example.org", primary: true, inactive: false },
    { address: "old@example.org", primary: false },
  ],
  first_name: "Ada",
  last_name: null,
  fields: { lookup_id: "92436", title: null },
  consent_state: [
    {
      channel: "email",
      scope: { kind: "global" },
      status: "none",
      source: "renxt",
      label: "none",
      role: "state",
      unversioned: true,
    },
    {
      channel: "email",
      scope: { kind: "construct", construct: { type: "solicit_code", id: "17", name: "No appeals" } },
      status: "opted_out",
      source: "renxt",
      label: "No appeals",
      role: "record",
      account_may_lift: true,
      at: "2026-05-01T00:00:00.000Z",
    },
    {
      channel: "sms",
      scope: { kind: "construct", construct: { type: "list", id: "L1" } },
      status: "opted_in",
      source: "renxt",
      label: "",
      role: "state",
    },
  ],
  list_ids: ["L-news"],
  inactive: false,
  deceased: false,
  do_not_contact: false,
  consent_grounds: [
    { kind: "donation", at: "2026-01-10T00:00:00.000Z", ref: "gift-1" },
    { kind: "inquiry", at: "2025-01-01T00:00:00.000Z" },
  ],
  deleted: false,
  updated_at: "2026-05-30T10:00:00.000Z",
  // A key this version does not read: dropped either way.
  raw_vendor_field: 1,
};

describe("a stored snapshot read back", () => {
  it.each([
    ["today's form", current],
    [
      "a platform record with few fields",
      { external_id: "x", kind: "organisation", emails: [], fields: {}, consent_state: [] },
    ],
    // Earlier or damaged forms: the lenient reading decides.
    ["no consent facts, lists or emails", { external_id: "x", fields: {} }],
    [
      "an unknown channel and role",
      { ...current, consent_state: [{ ...current.consent_state[0], channel: "fax", role: "other" }] },
    ],
    [
      "a fact it cannot read",
      { ...current, consent_state: [null, { scope: { kind: "mars" } }, current.consent_state[1]] },
    ],
    [
      "a ground it cannot read",
      { ...current, consent_grounds: [{ kind: "purchase", at: "2026-01-01" }, current.consent_grounds[0]] },
    ],
    ["an unknown kind", { ...current, kind: "household" }],
  ])("%s: as the lenient schema reads it", (_, payload) => {
    expect(readSnapshotRecord(payload)).toStrictEqual(SnapshotRecordSchema.parse(payload));
  });

  it("a payload that is no record at all reads as none", () => {
    expect(readSnapshotRecord({ emails: [] })).toBeUndefined();
    expect(readSnapshotRecord("text")).toBeUndefined();
    expect(readSnapshotRecord({ ...current, external_id: 7 })).toBeUndefined();
  });
});
