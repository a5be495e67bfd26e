/** Kindful's times as Concord reads them, and an opt-out's date when Kindful's cannot be read. */
import { describe, expect, it } from "vitest";
import { findField } from "../manifest";
import { asImportColumns, KindfulContactSchema, type KindfulContact } from "./client";
import { kindfulManifest } from "./manifest";
import { keepUnread } from "../../pipeline/keep-unread";
import { consentObservations, parseKindfulTime, toExternalRecord } from "./mapping";

describe("Kindful times", () => {
  it("reads UTC, offsets, ISO-8601 and unix seconds; nothing else", () => {
    expect(parseKindfulTime("2015-10-13 18:56:12 UTC")).toBe("2015-10-13T18:56:12.000Z");
    expect(parseKindfulTime("2015-10-13 18:56:12 -0500")).toBe("2015-10-13T23:56:12.000Z");
    expect(parseKindfulTime("2015-10-13T18:56:12-05:00")).toBe("2015-10-13T23:56:12.000Z");
    expect(parseKindfulTime("1444762572")).toBe("2015-10-13T18:56:12.000Z");
    expect(parseKindfulTime("13/10/2015 soon")).toBeUndefined();
    expect(parseKindfulTime("")).toBeUndefined();
  });

  it("reads a time that names no zone as UTC, wherever Concord runs", () => {
    const zone = process.env["TZ"];
    process.env["TZ"] = "America/Toronto";
    try {
      expect(new Date("2015-10-13T18:56:12").toISOString()).not.toBe("2015-10-13T18:56:12.000Z");
      expect(parseKindfulTime("2015-10-13 18:56:12")).toBe("2015-10-13T18:56:12.000Z");
      expect(parseKindfulTime("2015-10-13T18:56:12.250")).toBe("2015-10-13T18:56:12.250Z");
      expect(parseKindfulTime("2015-10-13 18:56:12 -0500")).toBe("2015-10-13T23:56:12.000Z");
      expect(parseKindfulTime("2015/10/13 18:56:12")).toBe("2015-10-13T18:56:12.000Z");
      // Forms the host would read in its own zone are no time at all, never a guess.
      expect(new Date("10/13/2015 18:56:12").toISOString()).not.toBe("2015-10-13T18:56:12.000Z");
      for (const local of ["10/13/2015 18:56:12", "Oct 13 2015 18:56:12", "Tue Oct 13 2015"])
        expect(parseKindfulTime(local), local).toBeUndefined();
    } finally {
      if (zone === undefined) delete process.env["TZ"];
      else process.env["TZ"] = zone;
    }
  });

  it("an opt-out whose time cannot be read is dated when Concord saw it, never 1970", () => {
    const contact = {
      id: 7,
      email: "ann@example.org",
      email_opt_in: "No",
      updated_at: "last Tuesday",
    } as unknown as KindfulContact;
    const [optOut] = consentObservations(contact, [], "2026-12-06T09:00:00.000Z");
    expect(optOut).toMatchObject({
      kind: "opt_out",
      occurred_at: "2026-12-06T09:00:00.000Z",
      time_unknown: true,
    });
  });

  it("reads Yes/No columns, times and custom fields in the forms Kindful may give them, and still refuses the unknown", () => {
    const read = (extra: Record<string, unknown>) =>
      KindfulContactSchema.safeParse({
        id: 9,
        email: "bo@example.org",
        updated_at: "2026-01-02T03:04:05Z",
        ...extra,
      });
    for (const [given, as] of [
      ["no", "No"],
      [" NO ", "No"],
      [false, "No"],
      [0, "No"],
      ["yes", "Yes"],
      [true, "Yes"],
      ["", null],
    ] as const)
      expect(read({ email_opt_in: given }).data?.email_opt_in, String(given)).toBe(as);
    expect(read({ email_opt_in: "maybe" }).error?.issues[0]?.path).toEqual(["email_opt_in"]);
    expect(read({ updated_at: 1444762572 }).data?.updated_at).toBe("1444762572");
    expect(read({ updated_at: null }).data?.updated_at).toBe("");
    expect(read({ custom_fields: { Interests: ["Gala", "Run"] } }).data?.custom_fields).toEqual({
      Interests: "Gala, Run",
    });
    // "no" is Kindful's No: an opt-out, dated by its unix-seconds time.
    const [optOut] = consentObservations(
      read({ email_opt_in: "no", updated_at: 1444762572 }).data!,
      [],
      "2026-12-06T09:00:00.000Z",
    );
    expect(optOut).toMatchObject({ kind: "opt_out", occurred_at: "2015-10-13T18:56:12.000Z" });
  });

  it("reads a topic's field whatever the case or spaces Kindful writes its name in", () => {
    const contact = KindfulContactSchema.parse({
      id: 11,
      email: "cy@example.org",
      updated_at: "2026-01-02T03:04:05Z",
      custom_fields: { "No appeals email ": "Yes" },
    });
    const [optOut] = consentObservations(contact, ["No Appeals Email"], "2026-12-06T09:00:00.000Z");
    // A topic's field in the other forms a Yes takes is an opt-out too; a No in any form is not.
    for (const yes of ["yes", "Y", "true", "1", 1, true])
      expect(
        consentObservations(
          { ...contact, custom_fields: { "No Appeals Email": yes } },
          ["No Appeals Email"],
          "2026-12-06T09:00:00.000Z",
        ),
        String(yes),
      ).toHaveLength(1);
    for (const no of ["No", "n", "0", 0, false, null, ""])
      expect(
        consentObservations(
          { ...contact, custom_fields: { "No Appeals Email": no } },
          ["No Appeals Email"],
          "2026-12-06T09:00:00.000Z",
        ),
        String(no),
      ).toHaveLength(0);
    expect(optOut).toMatchObject({
      kind: "opt_out",
      evidence: { reason: expect.stringContaining("No Appeals Email") },
    });
  });

  it("a contact read without its custom fields (a re-read by id) keeps its topics' last known state: never read as cleared", () => {
    const topics = ["No Appeals Email"];
    const read = (custom_fields?: Record<string, string>) =>
      toExternalRecord(
        KindfulContactSchema.parse({
          id: 12,
          email: "di@example.org",
          email_opt_in: "Yes",
          updated_at: "2026-01-02T03:04:05Z",
          ...(custom_fields ? { custom_fields } : {}),
        }),
        topics,
      );
    const snapshot = JSON.parse(JSON.stringify(read({ "No Appeals Email": "Yes" }))) as Parameters<
      typeof keepUnread
    >[1];
    const bare = read();
    expect(bare.consent_state.map((f) => f.source)).toEqual(["email_opt_in"]);
    const completed = keepUnread(bare, snapshot);
    expect(completed.consent_state.find((f) => f.source === "custom_field:No Appeals Email")).toMatchObject({
      status: "opted_out",
    });
    expect(completed.consent_state.map((f) => f.source)).toEqual([
      "email_opt_in",
      "custom_field:No Appeals Email",
    ]);
    // Read with its custom fields, a field set to No is cleared as before.
    expect(read({ "No Appeals Email": "No" }).unread).toBeUndefined();
  });

  it("an opt-out on a contact with only an alternate address is about that address", () => {
    const contact = {
      id: 8,
      email: null,
      alt_email: "bob@example.org",
      email_opt_in: "No",
      updated_at: "2026-12-01 10:00:00 UTC",
    } as unknown as KindfulContact;
    const [optOut] = consentObservations(contact, [], "2026-12-06T09:00:00.000Z");
    expect(optOut).toMatchObject({ kind: "opt_out", email: "bob@example.org" });
  });
});

describe("Kindful custom fields a mapping may name", () => {
  it("is any name but a contact column's, which an import would write in its place", () => {
    const field = (name: string) => findField(kindfulManifest.fields, name);
    expect(field("custom_field:Favourite colour")).toMatchObject({ read: true, write: true });
    expect(field("custom_field:emails")).toBeDefined();
    for (const column of ["id", "email", "Email", "email_opt_in", "external_id", "updated_at"])
      expect(field(`custom_field:${column}`), column).toBeUndefined();
    // Written as a row's column, the value would otherwise go to the contact's own column.
    expect(asImportColumns([{ id: 7, custom_fields: { "Favourite colour": "green" } }])).toEqual({
      data: [{ id: 7, "Favourite colour": "green" }],
      custom_fields: ["Favourite colour"],
    });
  });
});
