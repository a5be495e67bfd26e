import { describe, expect, it } from "vitest";
import type { ConnectorOperation } from "../connector";
import { contentHash } from "../../pipeline/content-hash";
import { keepUnread } from "../../pipeline/keep-unread";
import {
  DETAIL_PARTS,
  type ConstituentDetail,
  type DetailPart,
  consentObservations,
  consentAddBody,
  constituentAddBody,
  constituentEditBody,
  provenanceOfSource,
  toExternalRecord,
  solicitCodeActive,
  toUtcIso,
  webhookChangeKind,
  CONCORD_STATEMENT_PREFIX,
} from "./mapping";
import { ConsentCollectionSchema, type ConsentRecord, type Constituent, type EmailAddress } from "./schemas";

const person = (over: Partial<Constituent> = {}): Constituent => ({
  id: "280",
  type: "Individual",
  first: "Robert",
  last: "Hernandez",
  date_modified: "2026-03-02T07:00:00.1234567-05:00",
  requests_no_email: false,
  email: { id: "283", address: "rob@example.org", primary: true, do_not_email: false, inactive: false },
  ...over,
});

const consent = (over: Partial<ConsentRecord>): ConsentRecord => ({
  id: "c1",
  channel: "Email",
  constituent_consent_response: "OptOut",
  consent_date: "2026-03-01T10:00:00+00:00",
  ...over,
});

describe("toUtcIso", () => {
  it.each([
    ["2016-06-21T02:47:20.2371396+00:00", "2016-06-21T02:47:20.237Z"],
    ["2026-03-02T07:00:00-05:00", "2026-03-02T12:00:00.000Z"],
    ["2026-03-02T12:00:00Z", "2026-03-02T12:00:00.000Z"],
  ])("%s → %s", (input, out) => {
    expect(toUtcIso(input)).toBe(out);
  });
  it("throws on garbage (a bug, not a vendor answer we accept)", () => {
    expect(() => toUtcIso("yesterday")).toThrow();
  });
  it("reads a date and time without an offset as UTC, whatever time zone the server runs in", () => {
    const zone = process.env["TZ"];
    process.env["TZ"] = "America/Toronto";
    try {
      expect(toUtcIso("2024-05-01T00:00:00")).toBe("2024-05-01T00:00:00.000Z");
      expect(toUtcIso("2024-05-01T10:29:43.1234567")).toBe("2024-05-01T10:29:43.123Z");
      expect(toUtcIso("2024-05-01")).toBe("2024-05-01T00:00:00.000Z");
      // A solicit code that starts at midnight (no offset) is in force from midnight UTC.
      const code = { id: "s1", solicit_code: "Do not email", start_date: "2024-05-01T00:00:00" };
      expect(solicitCodeActive(code, Date.parse("2024-05-01T01:00:00Z"))).toBe(true);
      expect(solicitCodeActive(code, Date.parse("2024-04-30T23:00:00Z"))).toBe(false);
    } finally {
      if (zone === undefined) delete process.env["TZ"];
      else process.env["TZ"] = zone;
    }
  });
});

describe("provenanceOfSource", () => {
  it.each([
    ["Constant Contact unsubscribe", "unsubscribe_link", "contact"],
    ["Web form", "signup_form", "contact"],
    ["Phone", "phone_request", "contact"],
    ["Letter", "written_request", "contact"],
    ["Preference center", "preference_page", "contact"],
    ["Data import", "import", "account"],
    ["Something else", undefined, undefined],
    [null, undefined, undefined],
  ] as const)("%s → %s by %s", (source, mechanism, actor) => {
    const p = provenanceOfSource(source, "jane.admin");
    expect(p?.mechanism).toBe(mechanism);
    expect(p?.actor.kind).toBe(actor);
  });

  it.each([
    // An opt-in is the person's only when nothing in its source says import, integration or staff.
    ["Email import", "OptIn", "import", "account"],
    ["Mail import", "OptIn", "import", "account"],
    ["Web import", "OptIn", "import", "account"],
    ["Mailchimp sync", "OptIn", "api", "account"],
    ["Constant Contact integration", "OptIn", "api", "account"],
    ["Staff email", "OptIn", "admin_edit", "account"],
    ["Web form", "OptIn", "signup_form", "contact"],
    ["Letter", "OptIn", "written_request", "contact"],
    // A platform's name, or a way of leaving, is no way the person signs up: staff copying it by hand.
    ["Constant Contact", "OptIn", undefined, undefined],
    ["Mailchimp", "OptIn", undefined, undefined],
    ["Email campaign", "OptIn", undefined, undefined],
    ["Unsubscribe link", "OptIn", undefined, undefined],
    ["Email campaign sign-up form", "OptIn", "signup_form", "contact"],
    // An opt-out stays the person's wherever their own channel is named, so the account cannot undo it.
    ["Mailchimp sync", "OptOut", "unsubscribe_link", "contact"],
    ["Email import", "OptOut", "import", "account"],
  ] as const)("%s (%s) → %s by %s", (source, response, mechanism, actor) => {
    const p = provenanceOfSource(source, "jane.admin", response);
    expect(p?.mechanism).toBe(mechanism);
    expect(p?.actor.kind).toBe(actor);
  });
});

describe("consentObservations", () => {
  it("reads requests_no_email as a global opt-out by the account's admin edit", () => {
    const [o] = consentObservations({ constituent: person({ requests_no_email: true }) });
    expect(o).toMatchObject({
      kind: "opt_out",
      scope: { kind: "global" },
      mechanism: "admin_edit",
      actor: { kind: "account" },
      email: "rob@example.org",
      occurred_at: "2026-03-02T12:00:00.123Z",
    });
  });

  it("takes who and when from a channel-wide OptOut record backing the flag", () => {
    const obs = consentObservations({
      constituent: person({ requests_no_email: true }),
      consents: [consent({ id: "c9", source: "Constant Contact unsubscribe" })],
    });
    expect(obs[0]).toMatchObject({
      mechanism: "unsubscribe_link",
      actor: { kind: "contact" },
      occurred_at: "2026-03-01T10:00:00.000Z",
    });
  });

  it("takes who and when from a backing record whatever the tenant calls its email channel", () => {
    const obs = consentObservations({
      constituent: person({ requests_no_email: true }),
      consents: [consent({ id: "c9", channel: "E-mail", source: "Constant Contact unsubscribe" })],
    });
    expect(obs[0]).toMatchObject({
      mechanism: "unsubscribe_link",
      actor: { kind: "contact" },
      occurred_at: "2026-03-01T10:00:00.000Z",
    });
  });

  it("reads an address's do_not_email as a global opt-out for that address", () => {
    const emails: EmailAddress[] = [
      { id: "1", address: "a@example.org", primary: true, do_not_email: false, inactive: false },
      {
        id: "2",
        address: "b@example.org",
        primary: false,
        do_not_email: true,
        inactive: false,
        date_modified: "2026-02-01T00:00:00+00:00",
      },
    ];
    const obs = consentObservations({ constituent: person(), emails });
    expect(obs).toHaveLength(1);
    expect(obs[0]).toMatchObject({
      email: "b@example.org",
      kind: "opt_out",
      occurred_at: "2026-02-01T00:00:00.000Z",
    });
  });

  it("keeps the whole history of consent records with their evidence and category", () => {
    const obs = consentObservations({
      constituent: person(),
      consents: [
        consent({
          id: "c2",
          category: "Newsletter",
          consent_date: "2026-02-01T00:00:00Z",
          constituent_consent_response: "OptIn",
          source: "Web form",
          consent_statement: "Yes please",
          privacy_notice: "We keep it safe",
        }),
        consent({ id: "c3", category: "Newsletter", consent_date: "2026-02-10T00:00:00Z" }),
        consent({ id: "c4", channel: "Phone", category: "Newsletter" }),
        consent({ id: "c5", category: "Events", constituent_consent_response: "NoResponse" }),
      ],
    });
    expect(obs.map((o) => [o.kind, o.scope, o.evidence.source_record_id])).toEqual([
      ["opt_in", { kind: "construct", construct: { type: "consent_category", id: "Newsletter" } }, "c2"],
      ["opt_out", { kind: "construct", construct: { type: "consent_category", id: "Newsletter" } }, "c3"],
    ]);
    expect(obs[0]?.evidence).toMatchObject({ form_wording: "Yes please", privacy_notice: "We keep it safe" });
    expect(obs[1]?.actor).toEqual({ kind: "contact" });
  });

  it.each([
    [
      "staff OptIn with no person's source",
      { source: null, user_name: "jane.admin" },
      "resubscribe_requested",
      { kind: "account", user: "jane.admin" },
    ],
    ["OptIn from an import", { source: "Data import" }, "resubscribe_requested", { kind: "account" }],
    // "Email" is no mail the person wrote, and an import is the account's whatever it names.
    ["OptIn from an email import", { source: "Email import" }, "resubscribe_requested", { kind: "account" }],
    [
      "OptIn from a platform's sync",
      { source: "Mailchimp sync" },
      "resubscribe_requested",
      { kind: "account" },
    ],
    ["OptIn from the person's form", { source: "Web form" }, "opt_in", { kind: "contact" }],
    [
      "OptIn whose source names a platform (staff copying its status)",
      { source: "Constant Contact", user_name: "jsmith" },
      "resubscribe_requested",
      { kind: "account", user: "jsmith" },
    ],
    [
      "Concord's own record read back",
      { consent_statement: `${CONCORD_STATEMENT_PREFIX} Opt-in …` },
      "opt_in",
      { kind: "platform" },
    ],
  ] as const)("%s → %s", (_name, over, kind, actor) => {
    const [o] = consentObservations({
      constituent: person(),
      consents: [consent({ constituent_consent_response: "OptIn", ...over })],
    });
    expect(o?.kind).toBe(kind);
    expect(o?.actor).toEqual(actor);
  });

  it("reports no observation for a cleared flag: the record's unversioned fact says it is clear", () => {
    const detail = { constituent: person({ requests_no_email: false }) };
    expect(consentObservations(detail)).toEqual([]);
    expect(toExternalRecord(detail).consent_state).toContainEqual({
      channel: "email",
      scope: { kind: "global" },
      status: "none",
      source: "requests_no_email",
      label: "Requests No Email: no",
      role: "state",
      unversioned: true,
    });
    expect(toExternalRecord(detail).fields).not.toHaveProperty("requests_no_email");
  });
});

describe("toExternalRecord", () => {
  it("maps an organisation and never merges its contact person", () => {
    const org = toExternalRecord({
      constituent: person({ id: "9", type: "Organization", name: "Acme Trust", first: null, last: null }),
    });
    expect(org).toMatchObject({ kind: "organisation", organisation_name: "Acme Trust", external_id: "9" });
    const contact = toExternalRecord({
      constituent: person(),
      relationships: [{ constituent_id: "280", relation_id: "9", is_organization_contact: true }],
    });
    expect(contact).toMatchObject({
      kind: "individual",
      organisation_external_id: "9",
      first_name: "Robert",
    });
  });

  it("reports the newest response per consent category as its state, and the channel-wide one as a record", () => {
    const r = toExternalRecord({
      constituent: person(),
      consents: [
        consent({
          id: "a",
          category: "Newsletter",
          consent_date: "2026-01-01T00:00:00Z",
          constituent_consent_response: "OptIn",
        }),
        consent({ id: "b", category: "Newsletter", consent_date: "2026-02-01T00:00:00Z" }),
        consent({ id: "c", category: null, consent_date: "2026-02-02T00:00:00Z" }),
      ],
    });
    expect(r.consent_state.filter((f) => f.source === "consent_record")).toEqual([
      {
        channel: "email",
        scope: { kind: "construct", construct: { type: "consent_category", id: "Newsletter" } },
        status: "opted_out",
        source: "consent_record",
        label: 'Email consent, category "Newsletter": OptOut',
        role: "state",
        at: "2026-02-01T00:00:00.000Z",
      },
      {
        channel: "email",
        scope: { kind: "global" },
        status: "opted_out",
        source: "consent_record",
        label: "Email consent, all categories: OptOut",
        role: "record",
        at: "2026-02-02T00:00:00.000Z",
      },
    ]);
    expect(Object.keys(r.fields).some((k) => k.startsWith("consent"))).toBe(false);
    expect(r.updated_at).toBe("2026-03-02T12:00:00.123Z");
  });
});

describe("a constituent read in part", () => {
  // Every consent source a constituent can show: a solicit code, Requests No Email, the primary
  // address's Do not email, a custom-field opt-out and consent records.
  const whole: ConstituentDetail = {
    constituent: person({ requests_no_email: true }),
    emails: [{ id: "283", address: "rob@example.org", primary: true, do_not_email: true, inactive: false }],
    consents: [consent({ category: "Appeals" }), consent({ id: "c2", category: null })],
    relationships: [{ constituent_id: "280", relation_id: "9", is_organization_contact: true }],
    opt_out_fields: [
      {
        category: "Email opt-out",
        field: { id: "cf1", category: "Email opt-out", value: true, date_modified: "2026-03-01T09:00:00Z" },
      },
    ],
    opt_out_codes: {
      codes: ["Do not solicit"],
      held: [{ id: "s1", solicit_code: "Do not solicit", start_date: "2026-01-01T00:00:00Z" }],
      read_at: "2026-03-02T12:00:00Z",
    },
    latest_gift: { id: "g1", date: "2025-12-24T00:00:00" },
  };
  const snapshot = JSON.parse(JSON.stringify(toExternalRecord(whole))) as Parameters<typeof keepUnread>[1];

  /** The detail as a re-read of every part but `left` returns it. */
  const without = (left: readonly DetailPart[]): ConstituentDetail => {
    const read: Record<string, unknown> = { ...whole, unread: left };
    const dropped: Record<DetailPart, (keyof ConstituentDetail)[]> = {
      record: [],
      emails: ["emails"],
      consents: ["consents"],
      relationships: ["relationships"],
      custom_fields: ["opt_out_fields"],
      latest_gift: ["latest_gift"],
      solicit_codes: ["opt_out_codes"],
    };
    for (const part of left) for (const key of dropped[part]) Reflect.deleteProperty(read, key);
    return read as ConstituentDetail;
  };

  it.each(DETAIL_PARTS.filter((p) => p !== "record").map((p) => [p]))(
    "left unread (%s), completed from the last snapshot, hashes as read whole: its facts keep their place",
    (part) => {
      const completed = keepUnread(toExternalRecord(without([part])), snapshot);
      expect(completed.consent_state.map((f) => f.source)).toEqual(
        toExternalRecord(whole).consent_state.map((f) => f.source),
      );
      expect(contentHash(completed)).toBe(contentHash(snapshot));
    },
  );

  it("an address SKY sends without do_not_email (optional in EmailAddressRead) keeps its last known Do not email: never read as cleared", () => {
    const silent: ConstituentDetail = {
      ...whole,
      emails: [{ id: "283", address: "rob@example.org", primary: true, inactive: false }],
    };
    const read = toExternalRecord(silent);
    expect(read.consent_state.some((f) => f.source.startsWith("emailaddress:"))).toBe(false);
    expect(read.version).toBe(toExternalRecord(whole).version);
    const completed = keepUnread(read, snapshot);
    expect(completed.consent_state.find((f) => f.source.startsWith("emailaddress:"))).toMatchObject({
      status: "opted_out",
    });
    expect(contentHash(completed)).toBe(contentHash(snapshot));
  });

  it("left unread all at once (an address event reads the record alone), it still hashes as read whole", () => {
    const completed = keepUnread(
      toExternalRecord(without(DETAIL_PARTS.filter((p) => p !== "record"))),
      snapshot,
    );
    expect(contentHash(completed)).toBe(contentHash(snapshot));
  });
});

describe("request bodies", () => {
  const optOut: Extract<ConnectorOperation, { kind: "record_opt_out" }> = {
    kind: "record_opt_out",
    op_id: "op_1",
    external_id: "280",
    email: "rob@example.org",
    scope: { kind: "construct", construct: { type: "consent_category", id: "Newsletter" } },
    initiated_by: "contact",
    occurred_at: "2026-03-02T12:00:00.000Z",
    origin: { system: "constant-contact", connection: "conn_cc", mechanism: "one_click_header" },
  };
  it("writes a category OptOut with the provenance in the statement", () => {
    const body = consentAddBody(optOut, { channel: "Email" });
    expect(body).toMatchObject({
      constituent_id: "280",
      channel: "Email",
      category: "Newsletter",
      constituent_consent_response: "OptOut",
      consent_date: "2026-03-02T12:00:00.000Z",
    });
    expect(body.consent_statement).toContain("constant-contact");
    expect(body.consent_statement).toContain("one_click_header");
    expect(body).not.toHaveProperty("source");
  });
  it("writes a channel-wide record for a global scope", () => {
    expect(
      consentAddBody({ ...optOut, scope: { kind: "global" } }, { channel: "Email", source: "Concord" }),
    ).not.toHaveProperty("category");
  });
  it("refuses fields a constituent edit cannot take", () => {
    expect(
      constituentEditBody({
        kind: "update_contact",
        op_id: "x",
        external_id: "1",
        first_name: "A",
        fields: { shoe_size: "9", lookup_id: "L1" },
      }),
    ).toEqual({
      body: { first: "A", lookup_id: "L1" },
      address: {},
      rejected: ["shoe_size"],
    });
  });
  it("sends the preferred address's parts and the primary phone to their own records", () => {
    expect(
      constituentEditBody({
        kind: "update_contact",
        op_id: "x",
        external_id: "1",
        fields: { city: "Ottawa", postal_code: null, phone: "555-0100" },
      }),
    ).toEqual({ body: {}, address: { city: "Ottawa", postal_code: null }, phone: "555-0100", rejected: [] });
  });
  it("creates an individual with its primary email inline", () => {
    expect(
      constituentAddBody(
        {
          kind: "create_contact",
          op_id: "x",
          email: "a@b.org",
          first_name: "A",
          last_name: null,
          kind_of_record: "individual",
        },
        "Email",
      ),
    ).toEqual({
      type: "Individual",
      first: "A",
      last: "a@b.org",
      email: { address: "a@b.org", type: "Email", primary: true, do_not_email: false, inactive: false },
    });
  });
});

describe("webhookChangeKind", () => {
  it.each([
    ["com.blackbaud.constituent.change.v1", "changed"],
    ["com.blackbaud.constituent.add.v1", "changed"],
    ["com.blackbaud.constituent.delete.v1", "deleted"],
    ["com.blackbaud.constituent.emailaddress.change.v1", "email_changed"],
    ["com.blackbaud.constituent.solicitcode.add.v1", "consent_changed"],
    ["com.blackbaud.constituent.address.change.v1", "changed"],
    ["com.blackbaud.utility.testpayload.v1", "test"],
    ["com.blackbaud.gift.add.v1", undefined],
  ])("%s → %s", (type, kind) => {
    expect(webhookChangeKind(type)).toBe(kind);
  });
});

describe("a consent listing", () => {
  const record = (response: unknown) => ({
    id: "c1",
    channel: "Email",
    constituent_consent_response: response,
    consent_date: "2026-03-02T12:00:00Z",
  });
  it("reads the product's own spellings of a response as SKY's values", () => {
    const read = ConsentCollectionSchema.parse({
      value: ["Opt-out", "opt in", "No response", "NO_RESPONSE", "OptOut"].map(record),
    });
    expect(read.value.map((r) => r.constituent_consent_response)).toEqual([
      "OptOut",
      "OptIn",
      "NoResponse",
      "NoResponse",
      "OptOut",
    ]);
  });
  it("refuses a response it cannot place, naming the value", () => {
    const read = ConsentCollectionSchema.safeParse({ value: [record("Maybe")] });
    expect(read.success).toBe(false);
    expect(JSON.stringify(read.error?.issues)).toContain("OptIn");
  });
});

describe("times SKY gives blank or unreadable, and Yes/No fields given as text", () => {
  const seen = "2026-03-05T08:00:00.000Z";

  it("stop no read: an opt-out is dated when seen; an opt-in it cannot place is left out", () => {
    const detail: ConstituentDetail = {
      constituent: person({ requests_no_email: true, date_modified: "" }),
      emails: [
        {
          id: "283",
          address: "rob@example.org",
          primary: true,
          do_not_email: true,
          inactive: false,
          date_modified: "not a date",
        },
      ],
      consents: [
        consent({ id: "out", category: "Appeals", consent_date: "n/a" }),
        consent({
          id: "in",
          category: "Events",
          constituent_consent_response: "OptIn",
          source: "Web form",
          consent_date: "n/a",
        }),
      ],
    };
    const record = toExternalRecord(detail);
    // A record with no time of its own: the epoch stand-in, never taken as newer than anything.
    expect(record.updated_at).toBe("1970-01-01T00:00:00.000Z");
    const observed = consentObservations(detail, seen);
    expect(observed.map((o) => [o.kind, o.evidence.source_record_id, o.occurred_at, o.time_unknown])).toEqual(
      [
        ["opt_out", "constituent:280", seen, true],
        ["opt_out", "emailaddress:283", seen, true],
        ["opt_out", "out", seen, true],
      ],
    );
  });

  it("a Yes/No custom field given as the text true or Yes is ticked", () => {
    for (const value of ["true", "Yes", true]) {
      const detail: ConstituentDetail = {
        constituent: person(),
        opt_out_fields: [
          {
            category: "Email opt-out",
            field: { id: "cf1", category: "Email opt-out", value, date_modified: "2026-03-01T09:00:00Z" },
          },
        ],
      };
      expect(
        consentObservations(detail, seen).map((o) => o.kind),
        String(value),
      ).toEqual(["opt_out"]);
      expect(toExternalRecord(detail).consent_state).toContainEqual(
        expect.objectContaining({ source: "customfield:Email opt-out", status: "opted_out" }),
      );
    }
    const no: ConstituentDetail = {
      constituent: person(),
      opt_out_fields: [
        { category: "Email opt-out", field: { id: "cf1", category: "Email opt-out", value: "No" } },
      ],
    };
    expect(consentObservations(no, seen)).toEqual([]);
  });
});

describe("a solicit code entered with a start years back", () => {
  it("is an act of the day it was entered: an opt-in made in between does not come after it", () => {
    const detail: ConstituentDetail = {
      constituent: person(),
      opt_out_codes: {
        codes: ["Do not solicit"],
        held: [
          {
            id: "s9",
            solicit_code: "Do not solicit",
            start_date: "2020-01-01T00:00:00Z",
            date_added: "2026-03-01T15:00:00Z",
          },
        ],
        read_at: "2026-03-02T12:00:00Z",
      },
    };
    const [o] = consentObservations(detail, "2026-03-02T12:00:00.000Z");
    expect(o).toMatchObject({ kind: "opt_out", occurred_at: "2026-03-01T15:00:00.000Z" });
    expect(toExternalRecord(detail).consent_state).toContainEqual(
      expect.objectContaining({ source: "solicitcode:do not solicit", at: "2026-03-01T15:00:00.000Z" }),
    );
  });
});
