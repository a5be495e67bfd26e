import { describe, expect, it } from "vitest";
import type { ConsentFact, ExternalRecord } from "../connectors/connector";
import type { JsonValue } from "../store/ports";
import { contentHash } from "./content-hash";
import { keepUnread } from "./keep-unread";

const fact = (source: string, status: ConsentFact["status"]): ConsentFact => ({
  channel: "email",
  scope: { kind: "global" },
  status,
  source,
  label: `${source}: ${status}`,
  role: "state",
  unversioned: true,
});

const whole: ExternalRecord = {
  external_id: "280",
  kind: "individual",
  emails: [
    { address: "ann@example.org", primary: true, external_id: "e1", inactive: false },
    { address: "old@example.org", primary: false, external_id: "e2", inactive: true },
  ],
  first_name: "Ann",
  fields: {},
  consent_state: [
    fact("solicitcode:do not contact", "opted_out"),
    fact("requests_no_email", "none"),
    fact("emailaddress:e1.do_not_email", "none"),
    fact("consent_record", "opted_in"),
  ],
  do_not_contact: true,
  organisation_external_id: "9",
  updated_at: "2026-06-01T12:00:00.000Z",
};
const snapshot = JSON.parse(JSON.stringify(whole)) as JsonValue;

/** What a re-read of the constituent and its consent records alone returns. */
const { do_not_contact: _codes, organisation_external_id: _relationships, ...constituentOnly } = whole;
const partial = (changes: Partial<ExternalRecord> = {}): ExternalRecord => ({
  ...constituentOnly,
  emails: [{ address: "ann@example.org", primary: true, external_id: "e1", inactive: false }],
  consent_state: [fact("requests_no_email", "none"), fact("consent_record", "opted_in")],
  unread: {
    properties: ["emails", "do_not_contact", "organisation_external_id", "consent_grounds"],
    consent_sources: ["solicitcode:", "emailaddress:"],
    fact_order: ["solicitcode:", "requests_no_email", "emailaddress:", "customfield:", "consent_record"],
  },
  ...changes,
});

describe("keepUnread", () => {
  it("a record read whole is left as it is", () => {
    expect(keepUnread(whole, snapshot)).toBe(whole);
  });

  it("completes a partial re-read from the snapshot: the same record hashes the same as read whole", () => {
    const completed = keepUnread(partial(), snapshot);
    expect(completed).not.toHaveProperty("unread");
    expect(completed.emails).toHaveLength(2);
    expect(completed).toMatchObject({ do_not_contact: true, organisation_external_id: "9" });
    expect(completed.consent_state.map((f) => f.source)).toEqual(whole.consent_state.map((f) => f.source));
    expect(contentHash(completed)).toBe(contentHash(whole));
  });

  it("what was read wins, and an opt-out left unread stays an opt-out (it never reads as cleared)", () => {
    const completed = keepUnread(
      partial({ first_name: "Annie", consent_state: [fact("requests_no_email", "opted_out")] }),
      snapshot,
    );
    expect(completed.first_name).toBe("Annie");
    expect(completed.consent_state).toEqual([
      fact("solicitcode:do not contact", "opted_out"),
      fact("requests_no_email", "opted_out"),
      fact("emailaddress:e1.do_not_email", "none"),
    ]);
  });

  it("a property the snapshot did not have is left out; a source new since then takes its place in the connector's order", () => {
    const { organisation_external_id: _gone, ...withoutOrganisation } = whole;
    const completed = keepUnread(
      partial({
        organisation_external_id: "12",
        consent_state: [fact("requests_no_email", "none"), fact("customfield:Opt out", "opted_out")],
      }),
      JSON.parse(JSON.stringify(withoutOrganisation)) as JsonValue,
    );
    expect(completed).not.toHaveProperty("organisation_external_id");
    expect(completed.consent_state.map((f) => f.source)).toEqual([
      "solicitcode:do not contact",
      "requests_no_email",
      "emailaddress:e1.do_not_email",
      "customfield:Opt out",
    ]);
  });

  it("without a snapshot the record is kept as read, without its unread parts named", () => {
    const completed = keepUnread(partial(), undefined);
    expect(completed).not.toHaveProperty("unread");
    expect(completed.consent_state).toEqual(partial().consent_state);
  });
});
