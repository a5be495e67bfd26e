import fc from "fast-check";
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
  stopped_list_ids: ["L-board"],
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

  it("today's form is read as it is stored, not copied part by part", () => {
    const payload = JSON.parse(JSON.stringify(platformRecord)) as typeof platformRecord;
    const record = readSnapshotRecord(payload);
    expect(record).toStrictEqual(SnapshotRecordSchema.parse(payload));
    expect(record?.consent_state).toBe(payload.consent_state);
    expect(record?.emails).toBe(payload.emails);
    expect(record?.fields).toBe(payload.fields);
  });

  it("any payload, whole or damaged anywhere, reads as the lenient schema reads it", () => {
    fc.assert(
      fc.property(snapshotPayload, (payload) => {
        const lenient = SnapshotRecordSchema.safeParse(payload);
        expect(readSnapshotRecord(payload)).toStrictEqual(lenient.success ? lenient.data : undefined);
      }),
      { numRuns: 2_000 },
    );
  });
});

const platformRecord = {
  external_id: "c-1",
  kind: "individual",
  emails: [{ address: "ada@example.org", primary: true }],
  fields: { city: "Leeds" },
  consent_state: [
    {
      channel: "email",
      scope: { kind: "account" },
      status: "opted_in",
      source: "cc",
      label: "",
      role: "state",
    },
  ],
  updated_at: "2026-05-30T10:00:00.000Z",
};

const text = fc.string({ maxLength: 6 });
const scope = fc.oneof(
  fc.constant({ kind: "global" }),
  fc.constant({ kind: "account" }),
  fc.record(
    {
      kind: fc.constant("construct"),
      construct: fc.record({ type: text, id: text, name: text }, { requiredKeys: ["type", "id"] }),
    },
    { noNullPrototype: true },
  ),
);
const fact = fc.record(
  {
    channel: fc.constantFrom("email", "sms"),
    scope,
    status: fc.constantFrom("opted_out", "opted_in", "pending", "none"),
    source: text,
    label: text,
    role: fc.constantFrom("state", "record"),
    unversioned: fc.constant(true),
    account_may_lift: fc.constant(true),
    at: text,
  },
  { requiredKeys: ["channel", "scope", "status", "source", "label", "role"] },
);
/** A snapshot in today's form, with any of its optional parts. */
const todaysForm = fc.record(
  {
    external_id: text,
    kind: fc.constantFrom("individual", "organisation"),
    emails: fc.array(
      fc.record(
        { address: text, primary: fc.boolean(), inactive: fc.boolean() },
        { requiredKeys: ["address", "primary"] },
      ),
      { maxLength: 3 },
    ),
    first_name: fc.option(text),
    last_name: fc.option(text),
    organisation_name: fc.option(text),
    fields: fc.dictionary(text, fc.option(text), { maxKeys: 3 }),
    consent_state: fc.array(fact, { maxLength: 3 }),
    list_ids: fc.array(text, { maxLength: 3 }),
    inactive: fc.boolean(),
    deceased: fc.boolean(),
    do_not_contact: fc.boolean(),
    consent_grounds: fc.array(
      fc.record(
        { kind: fc.constantFrom("donation", "inquiry"), at: text, ref: text },
        { requiredKeys: ["kind", "at"] },
      ),
      { maxLength: 2 },
    ),
    deleted: fc.boolean(),
    updated_at: text,
  },
  { requiredKeys: ["external_id", "kind", "emails", "fields", "consent_state"] },
);

/** Every object and array inside a value, the value itself first. */
function containers(value: unknown): (Record<string, unknown> | unknown[])[] {
  if (typeof value !== "object" || value === null) return [];
  const inner = Object.values(value).flatMap(containers);
  return [value as Record<string, unknown>, ...inner];
}

/**
 * Today's form, or the same with one part damaged: a key added to an object or an array, or a
 * value replaced by any JSON value (a wrong type, a string no enum has, null, a nested object).
 */
const snapshotPayload = fc.oneof(
  todaysForm.map((record) => JSON.parse(JSON.stringify(record)) as unknown),
  fc
    .tuple(todaysForm, fc.nat(), fc.nat(), fc.oneof(fc.jsonValue({ maxDepth: 2 }), text), fc.boolean())
    .map(([record, where, which, value, add]) => {
      const payload = JSON.parse(JSON.stringify(record)) as unknown;
      const all = containers(payload);
      const target = all[where % all.length] as Record<string, unknown>;
      const keys = Object.keys(target);
      const key = add || keys.length === 0 ? "extra" : (keys[which % keys.length] ?? "extra");
      if (Array.isArray(target) && key === "extra") target.push(value);
      else target[key] = value;
      return payload;
    }),
);
