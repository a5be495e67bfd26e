// Pure mapping: contacts to records and consent, operations to request bodies (checked against the official spec).
import { describe, expect, it } from "vitest";
import { describeWithSpecs } from "../../../test/support/official-specs";
import { loadOpenApiValidator, officialSpecPath } from "../contract/openapi-validator";
import type { ConnectorOperation } from "../connector";
import {
  CONCORD_REASON_PREFIX,
  changeEmailPut,
  chunkImport,
  contactToConsent,
  matchOptOutActivity,
  needsOptOutActivity,
  contactToRecord,
  contactWatermark,
  createBody,
  importRow,
  isPlausibleEmail,
  membershipBody,
  messageNamesAddress,
  optOutPut,
  optOutReason,
  leaveListPut,
  updatePut,
} from "./mapping";
import { CcContactSchema, type CcContact } from "./schemas";

// The official spec sits beside the repository in shared/specs (not copied in: its licence is the vendor's).
const specPath = officialSpecPath("constant-contact", "csharp-client-openapi", "openapi.yaml");

const ID = "1f7e1b0a-2c3d-4e5f-8a9b-0c1d2e3f4a5b";
const LIST = "04fe9a97-a579-43c5-bb1a-58ed29bf0a6a";
const contact = (email: Record<string, unknown>, extra: Record<string, unknown> = {}): CcContact =>
  CcContactSchema.parse({
    contact_id: ID,
    first_name: "Ada",
    last_name: "Lovelace",
    created_at: "2026-01-01T00:00:00Z",
    updated_at: "2026-02-01T00:00:00-05:00",
    email_address: { address: "ada@example.org", created_at: "2026-01-01T00:00:00Z", ...email },
    ...extra,
  });

const optOutOp: Extract<ConnectorOperation, { kind: "record_opt_out" }> = {
  kind: "record_opt_out",
  op_id: "op_1",
  external_id: ID,
  email: "ada@example.org",
  scope: { kind: "account" },
  initiated_by: "contact",
  occurred_at: "2026-03-01T10:00:00.000Z",
  reason: "Asked by phone",
  origin: { system: "blackbaud-renxt", connection: "re", mechanism: "phone_request" },
};

describe("contactToConsent", () => {
  const optOut = { permission_to_send: "unsubscribed", opt_out_date: "2026-03-01T10:00:00-05:00" };
  it.each([
    [
      "contact unsubscribed",
      { ...optOut, opt_out_source: "Contact", opt_out_reason: "Too many" },
      {
        kind: "opt_out",
        actor: { kind: "contact" },
        // Only the unsubscribe page a campaign's footer link opens asks for a reason.
        mechanism: "unsubscribe_link",
        scope: { kind: "account" },
        occurred_at: "2026-03-01T15:00:00.000Z",
      },
    ],
    [
      "account unsubscribed",
      { ...optOut, opt_out_source: "Account" },
      { kind: "opt_out", actor: { kind: "account" }, mechanism: "admin_edit" },
    ],
    // A source that is not the account's (none, a partner's System) is the person's: the account cannot undo it.
    ["unsubscribed, source not given", { ...optOut }, { kind: "opt_out", actor: { kind: "contact" } }],
    [
      "unsubscribed by a partner (System)",
      { ...optOut, opt_out_source: "System" },
      { kind: "opt_out", actor: { kind: "contact" } },
    ],
    [
      "our own write echoed",
      { ...optOut, opt_out_source: "Account", opt_out_reason: `${CONCORD_REASON_PREFIX} x` },
      { kind: "opt_out", actor: { kind: "account" }, mechanism: "sync" },
    ],
    [
      "explicit by the contact",
      { permission_to_send: "explicit", opt_in_source: "Contact", opt_in_date: "2026-01-02T00:00:00Z" },
      {
        kind: "opt_in",
        actor: { kind: "contact" },
        basis: "express",
        occurred_at: "2026-01-02T00:00:00.000Z",
      },
    ],
    [
      "explicit by the account",
      { permission_to_send: "explicit", opt_in_source: "Account" },
      { kind: "opt_in", actor: { kind: "account" }, basis: "implied" },
    ],
    [
      "implicit (import)",
      { permission_to_send: "implicit", opt_in_source: "Account" },
      { kind: "opt_in", actor: { kind: "account" }, basis: "implied" },
    ],
    [
      // A contact that began with a form, whose account opt-out the account lifted: opt_in_source
      // never moves after the contact is made, so it does not say who gave this permission.
      "implicit on a contact that began with the person",
      { permission_to_send: "implicit", opt_in_source: "Contact", opt_in_date: "2026-05-02T00:00:00Z" },
      { kind: "opt_in", actor: { kind: "account" }, basis: "implied" },
    ],
  ])("%s", (_, email, expected) => {
    const [observation, ...rest] = contactToConsent(contact(email));
    expect(rest).toEqual([]);
    expect(observation).toMatchObject({
      ...expected,
      scope: { kind: "account" },
      channel: "email",
      external_id: ID,
      email: "ada@example.org",
    });
    expect(observation!.evidence.payload_sha256).toMatch(/^[a-f0-9]{64}$/);
  });

  it("keeps the contact's reason as evidence", () => {
    expect(
      contactToConsent(contact({ ...optOut, opt_out_source: "Contact", opt_out_reason: "Too many" }))[0]!
        .evidence.reason,
    ).toBe("Too many");
  });

  describe("a contact's opt-out with no reason, by what the contact report shows", () => {
    const reasonless = contact({ ...optOut, opt_out_source: "Contact" });
    const at = "2026-03-01T15:00:00Z";
    const campaign = { campaign_activity_id: "c-1", campaign_activity_name: "March appeal" };

    it("a campaign's opt-out at that time is the unsubscribe link, in the account's scope", () => {
      const activity = matchOptOutActivity(at, [{ ...campaign, created_time: "2026-03-01T14:59:58Z" }]);
      const [o] = contactToConsent(reasonless, activity);
      expect(o).toMatchObject({ mechanism: "unsubscribe_link", scope: { kind: "account" } });
      expect(o?.evidence.reason).toMatch(/“March appeal” \(c-1\).*does not say which/);
    });

    it("no campaign opt-out may be a spam complaint: kept global, and the evidence says why", () => {
      // An opt-out from another campaign a month earlier is not this one.
      const activity = matchOptOutActivity(at, [{ ...campaign, created_time: "2026-01-30T10:00:00Z" }]);
      expect(activity).toEqual({ kind: "none" });
      const [o] = contactToConsent(reasonless, activity);
      expect(o).toMatchObject({ mechanism: "unknown", scope: { kind: "global" } });
      expect(o?.evidence.reason).toMatch(/spam complaint/);
    });

    it("not looked up (older than the look-back): unknown, in the account's scope", () => {
      const [o] = contactToConsent(reasonless);
      expect(o).toMatchObject({ mechanism: "unknown", scope: { kind: "account" } });
      expect(o?.evidence.reason).toMatch(/does not say how/);
      expect(needsOptOutActivity(reasonless)).toBe(true);
      expect(needsOptOutActivity(contact({ ...optOut, opt_out_source: "Account" }))).toBe(false);
    });
  });

  it.each([
    ["pending_confirmation", "pending"],
    ["temp_hold", "none"],
    ["not_set", "none"],
  ])("reports no consent event for %s, and its state as %s", (permission, status) => {
    expect(contactToConsent(contact({ permission_to_send: permission }))).toEqual([]);
    const record = contactToRecord(contact({ permission_to_send: permission }));
    expect(record.consent_state).toEqual([
      {
        channel: "email",
        scope: { kind: "account" },
        status,
        source: "permission_to_send",
        label: `permission to send: ${permission}`,
        role: "state",
      },
    ]);
    expect(record.fields).not.toHaveProperty("permission_to_send");
  });
});

describe("contactToRecord", () => {
  it("maps fields, lists, sub-resources and deletion", () => {
    const r = contactToRecord(
      contact(
        { permission_to_send: "implicit" },
        {
          job_title: "Engineer",
          list_memberships: [LIST],
          custom_fields: [{ custom_field_id: "cf1", value: "gold" }],
          phone_numbers: [{ kind: "mobile", phone_number: "555" }],
          street_addresses: [{ kind: "home", city: "London" }],
          deleted_at: "2026-02-03",
        },
      ),
    );
    expect(r).toMatchObject({
      external_id: ID,
      kind: "individual",
      emails: [{ address: "ada@example.org", primary: true }],
      first_name: "Ada",
      list_ids: [LIST],
      deleted: true,
      fields: {
        job_title: "Engineer",
        "custom_field:cf1": "gold",
        "phone:mobile": "555",
        "address:home:city": "London",
      },
    });
    expect(r.updated_at).toBe("2026-02-03T00:00:00.000Z");
  });

  it("watermarks with the newest of the contact's and the email's timestamps", () => {
    expect(contactWatermark(contact({ opt_out_date: "2026-04-01T00:00:00Z" }))).toBe(
      "2026-04-01T00:00:00.000Z",
    );
  });
});

describe("requests", () => {
  it("chunks imports under both the count and the byte limit", () => {
    const entries = Array.from({ length: 10 }, (_, i) => ({
      row: importRow({ item_id: `${i}`, email: `p${i}@example.org` }),
      item: i,
    }));
    expect(chunkImport(entries, [LIST], 4, 1_000_000).map((c) => c.rows.length)).toEqual([4, 4, 2]);
    const bySize = chunkImport(entries, [LIST], 100, 150);
    for (const c of bySize) {
      expect(Buffer.byteLength(JSON.stringify({ import_data: c.rows, list_ids: [LIST] }))).toBe(c.bytes);
      expect(c.bytes).toBeLessThan(150);
    }
    expect(bySize.flatMap((c) => c.items)).toEqual(entries.map((e) => e.item));
  });

  it.each([
    ["a@example.org", true],
    ["a.b+tag@sub.example.co.uk", true],
    ["not-an-address", false],
    ["a@b", false],
    ["a b@example.org", false],
    [`${"x".repeat(80)}@example.org`, false],
  ])("isPlausibleEmail(%s) = %s", (email, expected) => {
    expect(isPlausibleEmail(email)).toBe(expected);
  });

  it("writes the origin into a 255-character opt_out_reason", () => {
    expect(optOutReason(optOutOp)).toMatch(
      /^Concord: the person's request recorded in blackbaud-renxt \(re\) via phone_request/,
    );
    expect(optOutReason({ ...optOutOp, reason: "x".repeat(400) }).length).toBe(255);
  });

  it("sends the whole contact back on an opt-out, with consent changed and nothing else", () => {
    const body = optOutPut(
      contact(
        { permission_to_send: "explicit" },
        { job_title: "Engineer", list_memberships: [LIST], sms_channel: { sms_address: "1" } },
      ),
      optOutOp,
    );
    expect(body).toMatchObject({
      update_source: "Contact",
      first_name: "Ada",
      last_name: "Lovelace",
      job_title: "Engineer",
      email_address: { address: "ada@example.org", permission_to_send: "unsubscribed" },
    });
    expect(body).not.toHaveProperty("sms_channel");
  });

  it("leaves lists out of every write that is not about lists: a list left meanwhile is not rejoined", () => {
    const c = contact({ permission_to_send: "implicit" }, { list_memberships: [LIST, "other-list"] });
    const update = updatePut(c, { kind: "update_contact", op_id: "o", external_id: ID, first_name: "A" });
    for (const body of [optOutPut(c, optOutOp), update, changeEmailPut(c, "new@example.org")])
      expect(body).not.toHaveProperty("list_memberships");
    expect(leaveListPut(c, LIST).list_memberships).toEqual(["other-list"]);
  });

  it("writes the person's opt-out as the contact's, the account's as the account's, and revives a deleted contact as the account", () => {
    const live = contact({ permission_to_send: "implicit" });
    expect(optOutPut(live, optOutOp).update_source).toBe("Contact");
    expect(optOutPut(live, { ...optOutOp, initiated_by: "account" }).update_source).toBe("Account");
    const deleted = contact({ permission_to_send: "implicit" }, { deleted_at: "2026-02-01T00:00:00Z" });
    expect(optOutPut(deleted, optOutOp).update_source).toBe("Account");
  });

  it("keeps consent as read on an update and an email change", () => {
    const c = contact(
      { permission_to_send: "unsubscribed", opt_out_source: "Contact", opt_out_reason: "r" },
      { job_title: "Engineer" },
    );
    const u = updatePut(c, {
      kind: "update_contact",
      op_id: "o",
      external_id: ID,
      last_name: null,
      fields: { job_title: "CTO", "custom_field:cf9": "v" },
    });
    expect(u).toMatchObject({
      first_name: "Ada",
      job_title: "CTO",
      email_address: { address: "ada@example.org", permission_to_send: "unsubscribed", opt_out_reason: "r" },
      custom_fields: [{ custom_field_id: "cf9", value: "v" }],
    });
    expect(u).not.toHaveProperty("last_name");
    expect(changeEmailPut(c, "new@example.org").email_address).toEqual({
      address: "new@example.org",
      permission_to_send: "unsubscribed",
      opt_out_reason: "r",
    });
  });
});

describeWithSpecs("requests match the official OpenAPI spec", async () => {
  const spec = await loadOpenApiValidator(specPath);
  const valid = (method: string, path: string, body: unknown): void => {
    expect(spec.validateRequest({ method, path, body })).toEqual({ ok: true });
  };
  const full = contact(
    { permission_to_send: "explicit" },
    {
      job_title: "Engineer",
      list_memberships: [LIST],
      custom_fields: [{ custom_field_id: "1f7e1b0a-2c3d-4e5f-8a9b-0c1d2e3f4a5c", value: "x" }],
      phone_numbers: [{ kind: "home", phone_number: "555", phone_number_id: ID }],
      street_addresses: [{ kind: "home", street: "1 Main", street_address_id: ID }],
    },
  );

  it("PUT /contacts/{id} for an opt-out", () => {
    valid("PUT", `/v3/contacts/${ID}`, optOutPut(full, optOutOp));
  });
  it("PUT /contacts/{id} for an update", () => {
    valid(
      "PUT",
      `/v3/contacts/${ID}`,
      updatePut(full, { kind: "update_contact", op_id: "o", external_id: ID, first_name: "A" }),
    );
  });
  it("PUT /contacts/{id} for an email change", () => {
    valid("PUT", `/v3/contacts/${ID}`, changeEmailPut(full, "b@example.org"));
  });
  it("POST /contacts", () => {
    valid(
      "POST",
      "/v3/contacts",
      createBody({
        kind: "create_contact",
        op_id: "o",
        email: "a@example.org",
        first_name: "A",
        kind_of_record: "individual",
      }),
    );
  });
  it("POST /activities/contacts_json_import", () => {
    const rows = [
      importRow({
        item_id: "1",
        email: "a@example.org",
        first_name: "A",
        fields: { job_title: "J", birthday_month: "3" },
      }),
    ];
    valid("POST", "/v3/activities/contacts_json_import", { import_data: rows, list_ids: [LIST] });
  });
  it("POST /activities/contacts_json_import carries every part of every address and phone kind", () => {
    const fields: Record<string, string> = {};
    for (const kind of ["home", "work", "other"])
      for (const part of ["street", "city", "state", "postal_code", "country"])
        fields[`address:${kind}:${part}`] = `${kind} ${part}`;
    for (const kind of ["home", "work", "mobile", "other"]) fields[`phone:${kind}`] = `+1 555 ${kind}`;
    const row = importRow({ item_id: "1", email: "a@example.org", fields });
    // Each value lands in a column of its own: nothing is dropped on the way.
    expect(Object.values(row).sort()).toEqual([...Object.values(fields), "a@example.org"].sort());
    valid("POST", "/v3/activities/contacts_json_import", { import_data: [row], list_ids: [LIST] });
  });
  it("POST /activities/add_list_memberships", () => {
    valid("POST", "/v3/activities/add_list_memberships", membershipBody([ID], [LIST]));
  });
  it("PUT /contacts/resubscribe/{id}", () => {
    valid("PUT", `/v3/contacts/resubscribe/${ID}`, { list_ids: [LIST] });
  });
  it("POST /activities/remove_list_memberships: the official spec says maxItems 0 (a codegen error, QUIRKS.md)", () => {
    const r = spec.validateRequest({
      method: "POST",
      path: "/v3/activities/remove_list_memberships",
      body: membershipBody([ID], [LIST]),
    });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.errors.join(" ")).toMatch(/must NOT have more than 0 items/);
  });
});

describe("messageNamesAddress", () => {
  it.each([
    ['Line 4: "ann@example.org" is not a valid email address.', "ann@example.org", true],
    ["ann@example.org is unsubscribed.", "Ann@Example.org", true],
    ["Contact 'ann@example.org' cannot be added", "ann@example.org", true],
    ['Line 2: "joann@example.org" is unsubscribed', "ann@example.org", false],
    ["ann@example.org.uk is unsubscribed", "ann@example.org", false],
    ["jo.ann@example.org, ann@example.org: unsubscribed", "ann@example.org", true],
    ["nothing here", "ann@example.org", false],
  ])("%j names %s: %s", (message, address, expected) => {
    expect(messageNamesAddress(message, address)).toBe(expected);
  });
});
