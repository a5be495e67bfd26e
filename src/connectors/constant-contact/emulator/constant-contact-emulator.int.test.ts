import { createHash } from "node:crypto";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { describeWithSpecs, SPECS_DIR as SPECS, specsPresent } from "../../../../test/support/official-specs";
import { loadOpenApiValidator, type OpenApiValidator } from "../../contract/openapi-validator";
import {
  startConstantContactEmulator,
  type ConstantContactEmulatorOptions,
  type StartedConstantContactEmulator,
} from "./constant-contact-emulator";

let spec: OpenApiValidator;
let swagger: OpenApiValidator | undefined;

/** The official specs: the conformance suite needs them; other suites use them where present. */
async function loadSpecs(): Promise<void> {
  spec = await loadOpenApiValidator(join(SPECS, "constant-contact/csharp-client-openapi/openapi.yaml"));
  swagger = await loadOpenApiValidator(
    join(SPECS, "constant-contact/swagger-3.0.178/constant-contact-v3-openapi.yml"),
  );
}
beforeAll(async () => {
  if (specsPresent) await loadSpecs();
});

type Res = { status: number; body: any; headers: Headers };

/** One emulator per test, a controllable clock and helpers that check every answer against the spec. */
async function setup(options: ConstantContactEmulatorOptions = {}) {
  let clock = new Date("2026-03-02T12:00:00.000Z");
  const emulator = await startConstantContactEmulator({
    rateLimitPerSecond: null,
    now: () => clock,
    ...options,
  });
  running.push(emulator);
  const control = async (path: string, body: unknown = {}): Promise<any> => {
    const res = await fetch(`${emulator.baseUrl}/__emulator/${path}`, {
      method: path === "state" || path === "requests" ? "GET" : "POST",
      ...(path === "state" || path === "requests"
        ? {}
        : { headers: { "content-type": "application/json" }, body: JSON.stringify(body) }),
    });
    return res.json();
  };
  let token: string = (await control("token")).access_token;
  const raw = async (
    method: string,
    path: string,
    body?: unknown,
    init: { token?: string | null; contentType?: string; rawBody?: string } = {},
  ): Promise<Res> => {
    const headers: Record<string, string> = {};
    const bearer = init.token === undefined ? token : init.token;
    if (bearer !== null) headers.authorization = `Bearer ${bearer}`;
    const payload = init.rawBody ?? (body === undefined ? undefined : JSON.stringify(body));
    if (payload !== undefined) headers["content-type"] = init.contentType ?? "application/json";
    const res = await fetch(`${emulator.baseUrl}${path}`, {
      method,
      headers,
      ...(payload === undefined ? {} : { body: payload }),
    });
    const text = await res.text();
    return { status: res.status, body: text === "" ? undefined : JSON.parse(text), headers: res.headers };
  };
  /**
   * Calls the API and asserts the answer matches the C# client spec (and the error schemas) where
   * the official specs are present (official-specs.ts); the behaviour checks run either way.
   */
  const api = async (method: string, path: string, body?: unknown, init: Parameters<typeof raw>[3] = {}) => {
    const res = await raw(method, path, body, init);
    // Rate-limit 429s come from the gateway and are documented in the rate-limits guide, not per operation.
    if (swagger !== undefined && path.startsWith("/v3/") && !isGatewayError(res)) {
      const checked = spec.validateResponse({ method, path, status: res.status, body: res.body });
      expect(checked, `${method} ${path} → ${res.status} ${JSON.stringify(res.body)}`).toEqual({ ok: true });
      if (res.status >= 400 && res.status !== 401) {
        expect(swagger.validateSchema("#/definitions/APIErrorSchema", res.body)).toEqual({ ok: true });
        expect(res.body).toHaveLength(1);
      }
    }
    return res;
  };
  return {
    emulator,
    control,
    api,
    raw,
    setToken: (t: string) => (token = t),
    advance: (ms: number) => (clock = new Date(clock.getTime() + ms)),
    setClock: (iso: string) => (clock = new Date(iso)),
    now: () => clock,
  };
}

function isGatewayError(res: Res): boolean {
  return res.status === 429 && !Array.isArray(res.body);
}

const running: StartedConstantContactEmulator[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((e) => e.close()));
});

async function seedBasics(t: Awaited<ReturnType<typeof setup>>) {
  return t.control("seed", {
    lists: [{ name: "Newsletter" }, { name: "Events" }],
    contacts: [
      {
        email_address: { address: "ann@example.org", permission_to_send: "explicit" },
        first_name: "Ann",
        list_memberships: ["Newsletter"],
      },
      {
        email_address: {
          address: "bob@example.org",
          permission_to_send: "unsubscribed",
          opt_out_source: "Contact",
          opt_out_reason: "too many",
        },
        first_name: "Bob",
      },
      {
        email_address: {
          address: "cy@example.org",
          permission_to_send: "unsubscribed",
          opt_out_source: "Account",
        },
        first_name: "Cy",
      },
      { email_address: { address: "gone@example.org" }, deleted_at: "2026-01-05T00:00:00Z" },
    ],
  });
}

describeWithSpecs("Constant Contact emulator: responses match the official spec", () => {
  it("serves contacts, sign-up form, resubscribe, lists and activities in documented shapes", async () => {
    const t = await setup();
    const seeded = await seedBasics(t);
    const newsletter = seeded.lists[0].list_id;
    const events = seeded.lists[1].list_id;
    const [ann, bob] = seeded.contacts;

    const list = await t.api(
      "GET",
      "/v3/contacts?include=list_memberships,phone_numbers,street_addresses,custom_fields,taggings,notes&include_count=true",
    );
    expect(list.status).toBe(200);
    expect(list.body.contacts_count).toBe(3);
    expect(list.body.contacts[0].list_memberships).toEqual([newsletter]);

    const one = await t.api("GET", `/v3/contacts/${ann.contact_id}?include=list_memberships`);
    expect(one.body.email_address.permission_to_send).toBe("explicit");

    const created = await t.api("POST", "/v3/contacts", {
      email_address: { address: "dee@example.org", permission_to_send: "explicit" },
      first_name: "Dee",
      create_source: "Account",
      list_memberships: [events],
      phone_numbers: [{ phone_number: "555-0100", kind: "home" }],
      street_addresses: [{ kind: "home", city: "Ottawa" }],
      notes: [{ content: "met at gala" }],
    });
    expect(created.status).toBe(201);
    expect(created.body.email_address).toMatchObject({
      opt_in_source: "Account",
      permission_to_send: "explicit",
    });

    const updated = await t.api("PUT", `/v3/contacts/${created.body.contact_id}`, {
      email_address: { address: "dee@example.org" },
      last_name: "Dee",
      update_source: "Account",
    });
    expect(updated.status).toBe(200);

    const signupNew = await t.api("POST", "/v3/contacts/sign_up_form", {
      email_address: "eve@example.org",
      list_memberships: [newsletter],
    });
    expect(signupNew.status).toBe(201);
    expect(signupNew.body.action).toBe("created");
    const signupOld = await t.api("POST", "/v3/contacts/sign_up_form", {
      email_address: "ann@example.org",
      list_memberships: [events],
    });
    expect(signupOld).toMatchObject({ status: 200, body: { action: "updated", contact_id: ann.contact_id } });

    // The contact report: an unsubscribe by a campaign's footer link is an em_optouts of that campaign.
    await t.control("act", {
      as: "contact",
      action: "unsubscribe",
      email: "eve@example.org",
      reason: "Too many",
    });
    const report = await t.api(
      "GET",
      `/v3/reports/contact_reports/${signupNew.body.contact_id}/activity_details?tracking_activities_list=em_optouts`,
    );
    expect(report.status).toBe(200);
    expect(report.body.tracking_activities).toMatchObject([
      { contact_id: signupNew.body.contact_id, tracking_activity_type: "em_optouts" },
    ]);

    const resub = await t.api("PUT", `/v3/contacts/resubscribe/${bob.contact_id}`, {
      list_ids: [newsletter],
    });
    expect(resub.status).toBe(200);

    const lists = await t.api("GET", "/v3/contact_lists?include_count=true&include_membership_count=all");
    expect(lists.body.lists_count).toBe(2);
    const newList = await t.api("POST", "/v3/contact_lists", {
      name: "Donors",
      description: "gave this year",
      favorite: true,
    });
    expect(newList.status).toBe(201);
    expect((await t.api("GET", `/v3/contact_lists/${newList.body.list_id}`)).status).toBe(200);
    expect(
      (await t.api("PUT", `/v3/contact_lists/${newList.body.list_id}`, { name: "Donors 2026" })).body.name,
    ).toBe("Donors 2026");
    const del = await t.api("DELETE", `/v3/contact_lists/${newList.body.list_id}`);
    expect(del.status).toBe(202);
    expect(del.headers.get("location")).toBe(`/v3/activities/${del.body.activity_id}`);

    for (const [path, body] of [
      [
        "/v3/activities/contacts_json_import",
        { import_data: [{ email: "fay@example.org", first_name: "Fay" }], list_ids: [newsletter] },
      ],
      [
        "/v3/activities/add_list_memberships",
        { source: { contact_ids: [ann.contact_id] }, list_ids: [events] },
      ],
      ["/v3/activities/remove_list_memberships", { source: { list_ids: [events] }, list_ids: [events] }],
      ["/v3/activities/contact_delete", { contact_ids: [ann.contact_id] }],
      ["/v3/activities/list_delete", { list_ids: [events] }],
    ] as const) {
      const posted = await t.api("POST", path, body);
      expect(posted.status, path).toBe(201);
      expect(posted.body.state).toBe("initialized");
      expect((await t.api("GET", `/v3/activities/${posted.body.activity_id}`)).status).toBe(200);
    }
    expect((await t.api("GET", "/v3/activities?limit=10")).body.activities).toHaveLength(6);

    expect((await t.api("DELETE", `/v3/contacts/${created.body.contact_id}`)).status).toBe(204);
    const deleted = await t.api("GET", `/v3/contacts/${created.body.contact_id}`);
    expect(deleted.body.deleted_at).toBe("2026-03-02");
  });

  it.each<[string, string, string, unknown, number, string]>([
    ["limit too small", "GET", "/v3/contacts?limit=0", undefined, 400, "contacts.api.validation.error"],
    ["limit too large", "GET", "/v3/contacts?limit=501", undefined, 400, "contacts.api.validation.error"],
    ["bad status", "GET", "/v3/contacts?status=gone", undefined, 400, "contacts.api.validation.error"],
    [
      "bad include",
      "GET",
      "/v3/contacts?include=everything",
      undefined,
      400,
      "contacts.api.validation.error",
    ],
    [
      "bad date",
      "GET",
      "/v3/contacts?updated_after=yesterday",
      undefined,
      400,
      "contacts.api.validation.error",
    ],
    [
      "unknown contact",
      "GET",
      "/v3/contacts/3fa85f64-5717-4562-b3fc-2c963f66afa6",
      undefined,
      404,
      "contacts.api.not_found",
    ],
    ["malformed contact id", "GET", "/v3/contacts/nope", undefined, 404, "contacts.api.not_found"],
    [
      "missing create_source",
      "POST",
      "/v3/contacts",
      { email_address: { address: "x@example.org" } },
      400,
      "contacts.api.validation.error",
    ],
    [
      "invalid email",
      "POST",
      "/v3/contacts",
      { email_address: { address: "nope" }, create_source: "Account" },
      400,
      "contacts.api.validation.error",
    ],
    [
      "duplicate email",
      "POST",
      "/v3/contacts",
      { email_address: { address: "ANN@example.org" }, create_source: "Account" },
      409,
      "contacts.api.conflict",
    ],
    [
      "deleted contact's email",
      "POST",
      "/v3/contacts",
      { email_address: { address: "gone@example.org" }, create_source: "Account" },
      409,
      "contacts.api.conflict",
    ],
    [
      "missing update_source",
      "PUT",
      "/v3/contacts/{ann}",
      { first_name: "A" },
      400,
      "contacts.api.validation.error",
    ],
    [
      "sign-up without lists",
      "POST",
      "/v3/contacts/sign_up_form",
      { email_address: "z@example.org" },
      400,
      "contacts.api.validation.error",
    ],
    [
      "duplicate list name",
      "POST",
      "/v3/contact_lists",
      { name: "Newsletter" },
      409,
      "contact_lists.api.conflict",
    ],
    [
      "import without lists",
      "POST",
      "/v3/activities/contacts_json_import",
      { import_data: [{ email: "q@example.org" }], list_ids: [] },
      400,
      "contacts.api.validation.error",
    ],
    [
      "two sources",
      "POST",
      "/v3/activities/add_list_memberships",
      { source: { contact_ids: ["a"], list_ids: ["b"] }, list_ids: ["c"] },
      400,
      "contacts.api.validation.error",
    ],
    [
      "unknown activity",
      "GET",
      "/v3/activities/3fa85f64-5717-4562-b3fc-2c963f66afa6",
      undefined,
      404,
      "activities.api.not_found",
    ],
  ])("%s: %s %s → %i %s", async (_name, method, path, body, status, key) => {
    const t = await setup();
    const seeded = await seedBasics(t);
    const res = await t.api(method, path.replace("{ann}", seeded.contacts[0].contact_id), body);
    expect(res.status).toBe(status);
    expect(res.body[0].error_key).toBe(key);
  });

  it("answers 415 for non-JSON bodies, 400 for malformed JSON and for bodies over 4 MB", async () => {
    const t = await setup();
    const media = await t.api("POST", "/v3/contacts", undefined, {
      rawBody: "first_name=x",
      contentType: "text/plain",
    });
    expect(media.status).toBe(415);
    const malformed = await t.api("POST", "/v3/contacts", undefined, { rawBody: "{oops" });
    expect(malformed.status).toBe(400);
    expect(malformed.body[0].error_message).toMatch(/JSON/);
    const huge = await t.raw("POST", "/v3/activities/contacts_json_import", undefined, {
      rawBody: JSON.stringify({
        import_data: [{ email: "a@b.co", first_name: "x".repeat(4 * 1024 * 1024) }],
        list_ids: ["x"],
      }),
    });
    expect(huge.status).toBe(400);
    expect(huge.body[0].error_message).toMatch(/4 MB/);
  });
});

describe("consent rules", () => {
  async function consentSetup() {
    const t = await setup();
    const seeded = await seedBasics(t);
    const [ann, bob, cy] = seeded.contacts;
    return {
      t,
      ann,
      bob,
      cy,
      newsletter: seeded.lists[0].list_id as string,
      events: seeded.lists[1].list_id as string,
    };
  }

  it.each<[string, "bob" | "cy", string, string | undefined]>([
    // [case, who, expected permission after PUT explicit by Account, expected opt_out_source]
    ["contact-initiated opt-out is kept", "bob", "unsubscribed", "Contact"],
    ["account-initiated opt-out is undone", "cy", "explicit", undefined],
  ])("PUT permission explicit: %s", async (_name, who, permission, source) => {
    const c = await consentSetup();
    const id = c[who].contact_id;
    const res = await c.t.api("PUT", `/v3/contacts/${id}`, {
      email_address: { address: `${who}@example.org`, permission_to_send: "explicit" },
      update_source: "Account",
      list_memberships: [c.newsletter],
    });
    expect(res.status).toBe(200);
    expect(res.body.email_address.permission_to_send).toBe(permission);
    expect(res.body.email_address.opt_out_source).toBe(source);
    expect(res.body.list_memberships).toEqual(permission === "unsubscribed" ? [] : [c.newsletter]);
  });

  it("a contact-initiated opt-out cannot be undone even by a PUT claiming update_source Contact", async () => {
    const c = await consentSetup();
    const res = await c.t.api("PUT", `/v3/contacts/${c.bob.contact_id}`, {
      email_address: { address: "bob@example.org", permission_to_send: "implicit" },
      update_source: "Contact",
    });
    expect(res.body.email_address.permission_to_send).toBe("unsubscribed");
    const state = await c.t.control("state");
    expect(state.events.at(-1)).toMatchObject({ action: "resubscribe_ignored", email: "bob@example.org" });
  });

  it.each<[string, "Account" | "Contact", boolean]>([
    ["Account", "Account", true],
    ["Contact", "Contact", false],
  ])(
    "PUT unsubscribed with update_source %s records that source; can the account undo it? %s",
    async (_n, source, undoable) => {
      const c = await consentSetup();
      c.t.advance(60_000);
      const out = await c.t.api("PUT", `/v3/contacts/${c.ann.contact_id}`, {
        email_address: {
          address: "ann@example.org",
          permission_to_send: "unsubscribed",
          opt_out_reason: "asked by phone",
        },
        update_source: source,
      });
      expect(out.body.email_address).toMatchObject({
        permission_to_send: "unsubscribed",
        opt_out_source: source,
        opt_out_reason: "asked by phone",
        opt_out_date: "2026-03-02T12:01:00.000Z",
      });
      expect(out.body.list_memberships).toEqual([]);
      const back = await c.t.api("PUT", `/v3/contacts/${c.ann.contact_id}`, {
        email_address: { address: "ann@example.org", permission_to_send: "explicit" },
        update_source: "Account",
      });
      expect(back.body.email_address.permission_to_send).toBe(undoable ? "explicit" : "unsubscribed");
    },
  );

  it.each<[string, "bob" | "cy", number, string, boolean]>([
    ["contact opt-out: updated but stays out", "bob", 200, "unsubscribed", false],
    ["account opt-out: set explicit and listed", "cy", 200, "explicit", true],
  ])("sign_up_form by the account, %s", async (_n, who, status, permission, listed) => {
    const c = await consentSetup();
    const res = await c.t.api("POST", "/v3/contacts/sign_up_form", {
      email_address: `${who}@example.org`,
      list_memberships: [c.events],
      job_title: "Chair",
    });
    expect(res).toMatchObject({ status, body: { action: "updated" } });
    const got = await c.t.api("GET", `/v3/contacts/${c[who].contact_id}?include=list_memberships`);
    expect(got.body.email_address.permission_to_send).toBe(permission);
    expect(got.body.job_title).toBe("Chair");
    expect(got.body.list_memberships).toEqual(listed ? [c.events] : []);
  });

  it("sign_up_form creates pending_confirmation contacts when Confirmed Opt-in is on", async () => {
    const t = await setup({ confirmedOptIn: true });
    const seeded = await seedBasics(t);
    const res = await t.api("POST", "/v3/contacts/sign_up_form", {
      email_address: "new@example.org",
      list_memberships: [seeded.lists[0].list_id],
    });
    const got = await t.api("GET", `/v3/contacts/${res.body.contact_id}`);
    expect(got.body.email_address).toMatchObject({
      permission_to_send: "pending_confirmation",
      confirm_status: "pending",
      opt_in_source: "Contact",
    });
    await t.control("act", { as: "contact", action: "confirm_opt_in", email: "new@example.org" });
    const after = await t.api("GET", `/v3/contacts/${res.body.contact_id}`);
    expect(after.body.email_address).toMatchObject({
      permission_to_send: "explicit",
      confirm_status: "confirmed",
    });
  });

  it("imports count previously unsubscribed contacts and never list them", async () => {
    const c = await consentSetup();
    const posted = await c.t.api("POST", "/v3/activities/contacts_json_import", {
      import_data: [
        { email: "bob@example.org", last_name: "Builder" },
        { email: "cy@example.org" },
        { email: "new1@example.org", first_name: "New", home_phone: "555-0101", city: "Halifax" },
        { email: "not-an-email" },
        { email: "ann@example.org" },
      ],
      list_ids: [c.events],
    });
    await c.t.api("GET", `/v3/activities/${posted.body.activity_id}`);
    const done = await c.t.api("GET", `/v3/activities/${posted.body.activity_id}`);
    expect(done.body.state).toBe("completed");
    expect(done.body.status).toEqual({
      items_total_count: 5,
      person_count: 4,
      error_count: 1,
      correctable_count: 0,
      cannot_add_to_list_count: 2,
    });
    expect(done.body.activity_errors).toEqual(['Line 4: "not-an-email" is not a valid email address.']);
    const bob = await c.t.api("GET", `/v3/contacts/${c.bob.contact_id}?include=list_memberships`);
    expect(bob.body).toMatchObject({
      last_name: "Builder",
      list_memberships: [],
      email_address: { permission_to_send: "unsubscribed" },
    });
    const fresh = await c.t.api(
      "GET",
      "/v3/contacts?email=new1@example.org&include=list_memberships,phone_numbers",
    );
    expect(fresh.body.contacts[0]).toMatchObject({
      email_address: { permission_to_send: "implicit", opt_in_source: "Account" },
      list_memberships: [c.events],
      phone_numbers: [{ phone_number: "555-0101", kind: "home" }],
    });
  });

  it.each<[string, "unsubscribe" | "one_click_unsubscribe" | "spam_complaint", string, string | undefined]>([
    ["footer link", "unsubscribe", "footer_link", "moving away"],
    ["one-click header", "one_click_unsubscribe", "one_click", undefined],
    ["spam complaint", "spam_complaint", "spam_complaint", undefined],
  ])("act as contact: %s is a contact-initiated opt-out", async (_n, action, mechanism, reason) => {
    const c = await consentSetup();
    c.t.advance(3_600_000);
    await c.t.control("act", { as: "contact", action, email: "ann@example.org", reason: "moving away" });
    const got = await c.t.api("GET", `/v3/contacts/${c.ann.contact_id}?include=list_memberships`);
    expect(got.body.email_address).toMatchObject({
      permission_to_send: "unsubscribed",
      opt_out_source: "Contact",
      opt_out_date: "2026-03-02T13:00:00.000Z",
    });
    expect(got.body.email_address.opt_out_reason).toBe(reason);
    expect(got.body.updated_at).toBe("2026-03-02T13:00:00.000Z");
    expect(got.body.list_memberships).toEqual([]);
    const state = await c.t.control("state");
    const stored = state.contacts.find((x: any) => x.contact_id === c.ann.contact_id);
    expect(stored._emulator.opt_out_mechanism).toBe(mechanism);
    expect(state.events.at(-1)).toMatchObject({ as: "contact", action, mechanism });
    // Visible to a poller.
    const since = await c.t.api("GET", "/v3/contacts?status=unsubscribed&optout_after=2026-03-02T12:30:00Z");
    expect(since.body.contacts.map((x: any) => x.contact_id)).toEqual([c.ann.contact_id]);
  });

  it("act as contact sign_up lifts the person's own opt-out", async () => {
    const c = await consentSetup();
    c.t.advance(1000);
    const res = await c.t.control("act", {
      as: "contact",
      action: "sign_up",
      email: "bob@example.org",
      list_ids: [c.events],
    });
    expect(res.contact.email_address).toMatchObject({
      permission_to_send: "explicit",
      opt_in_source: "Contact",
      opt_in_date: "2026-03-02T12:00:01.000Z",
    });
    expect(res.contact.email_address.opt_out_source).toBeUndefined();
    expect(res.contact.list_memberships).toEqual([c.events]);
  });

  it("act as admin: unsubscribe is account-initiated; resubscribe refuses a contact's own opt-out", async () => {
    const c = await consentSetup();
    const out = await c.t.control("act", { as: "admin", action: "unsubscribe", email: "ann@example.org" });
    expect(out.contact.email_address.opt_out_source).toBe("Account");
    const back = await c.t.control("act", { as: "admin", action: "resubscribe", email: "ann@example.org" });
    expect(back.contact.email_address.permission_to_send).toBe("implicit");
    const refused = await c.t.control("act", {
      as: "admin",
      action: "resubscribe",
      email: "bob@example.org",
    });
    expect(refused.code).toBe("contact_initiated_opt_out");
    const keep = await c.t.control("act", { as: "admin", action: "unsubscribe", email: "bob@example.org" });
    expect(keep.contact.email_address.opt_out_source).toBe("Contact");
  });

  it("resubscribe sends one confirmation email ever; the contact stays out until confirming", async () => {
    const c = await consentSetup();
    const first = await c.t.api("PUT", `/v3/contacts/resubscribe/${c.bob.contact_id}`, {
      list_ids: [c.newsletter],
    });
    expect(first.status).toBe(200);
    const still = await c.t.api("GET", `/v3/contacts/${c.bob.contact_id}`);
    expect(still.body.email_address.permission_to_send).toBe("unsubscribed");
    const second = await c.t.api("PUT", `/v3/contacts/resubscribe/${c.bob.contact_id}`, {
      list_ids: [c.newsletter],
    });
    expect(second.status).toBe(409);
    const state = await c.t.control("state");
    expect(state.confirmation_emails).toEqual([
      {
        kind: "resubscribe",
        contact_id: c.bob.contact_id,
        email: "bob@example.org",
        list_ids: [c.newsletter],
        sent_at: "2026-03-02T12:00:00.000Z",
      },
    ]);
    c.t.advance(5000);
    await c.t.control("act", { as: "contact", action: "confirm_resubscribe", email: "bob@example.org" });
    const after = await c.t.api("GET", `/v3/contacts/${c.bob.contact_id}?include=list_memberships`);
    expect(after.body.email_address).toMatchObject({
      permission_to_send: "explicit",
      opt_in_source: "Contact",
      opt_in_date: "2026-03-02T12:00:05.000Z",
    });
    expect(after.body.list_memberships).toEqual([c.newsletter]);
    const again = await c.t.api("PUT", `/v3/contacts/resubscribe/${c.ann.contact_id}`, {
      list_ids: [c.newsletter],
    });
    expect(again.status).toBe(400); // not unsubscribed
  });

  it("add_list_memberships skips unsubscribed contacts", async () => {
    const c = await consentSetup();
    const posted = await c.t.api("POST", "/v3/activities/add_list_memberships", {
      source: { contact_ids: [c.ann.contact_id, c.bob.contact_id, c.cy.contact_id] },
      list_ids: [c.events],
    });
    await c.t.control("act", { as: "admin", action: "run_activities" });
    const done = await c.t.api("GET", `/v3/activities/${posted.body.activity_id}`);
    expect(done.body.status).toMatchObject({ items_total_count: 3, items_completed_count: 1 });
    const members = await c.t.api("GET", `/v3/contacts?lists=${c.events}`);
    expect(members.body.contacts.map((x: any) => x.contact_id)).toEqual([c.ann.contact_id]);
  });
});

describe("contacts behaviour", () => {
  it("pages with a relative cursor link, stable under concurrent inserts", async () => {
    const t = await setup();
    const emails = ["p1", "p2", "p3"].map((p) => `${p}@example.org`);
    await t.control("seed", { contacts: emails.map((address) => ({ email_address: { address } })) });
    const first = await t.api("GET", "/v3/contacts?limit=2");
    expect(first.body.contacts).toHaveLength(2);
    const href: string = first.body._links.next.href;
    expect(href).toMatch(/^\/v3\/contacts\?cursor=[A-Za-z0-9+/=]+$/);
    await t.api("POST", "/v3/contacts", {
      email_address: { address: "p0@example.org" },
      create_source: "Account",
    });
    const second = await t.api("GET", href);
    const seen = [...first.body.contacts, ...second.body.contacts].map((c: any) => c.email_address.address);
    expect(seen).toEqual([...emails, "p0@example.org"]);
    expect(second.body._links).toBeUndefined();
    // Exactly limit items: no next link.
    const exact = await t.api("GET", "/v3/contacts?limit=4");
    expect(exact.body._links).toBeUndefined();
  });

  it("filters by status, email, list and dates", async () => {
    const t = await setup();
    await seedBasics(t);
    t.advance(10_000);
    await t.api("POST", "/v3/contacts", {
      email_address: { address: "late@example.org" },
      create_source: "Account",
    });
    const q = async (query: string) =>
      (await t.api("GET", `/v3/contacts?${query}`)).body.contacts
        .map((c: any) => c.email_address.address)
        .sort();
    expect(await q("status=unsubscribed")).toEqual(["bob@example.org", "cy@example.org"]);
    expect(await q("status=deleted")).toEqual(["gone@example.org"]);
    expect(await q("status=all")).toHaveLength(5);
    expect(await q("status=active")).toEqual(["ann@example.org", "late@example.org"]);
    expect(await q("email=ANN@example.org")).toEqual(["ann@example.org"]);
    expect(await q("created_after=2026-03-02T12:00:05Z")).toEqual(["late@example.org"]);
    expect(await q("updated_before=2026-03-02T12:00:05Z")).toHaveLength(3);
  });

  it("PUT replaces top-level fields but keeps omitted sub-resources; revives deleted contacts with update_source Account", async () => {
    const t = await setup();
    const seeded = await t.control("seed", {
      lists: [{ name: "L" }],
      contacts: [
        {
          email_address: { address: "r@example.org" },
          first_name: "R",
          job_title: "CEO",
          list_memberships: ["L"],
        },
      ],
    });
    const id = seeded.contacts[0].contact_id;
    const put = await t.api("PUT", `/v3/contacts/${id}`, {
      email_address: { address: "r@example.org" },
      last_name: "S",
      update_source: "Account",
    });
    expect(put.body.first_name).toBeUndefined();
    expect(put.body.job_title).toBeUndefined();
    expect(put.body.last_name).toBe("S");
    expect(put.body.list_memberships).toEqual([seeded.lists[0].list_id]);
    await t.api("DELETE", `/v3/contacts/${id}`);
    expect((await t.api("DELETE", `/v3/contacts/${id}`)).status).toBe(404);
    const asContact = await t.api("PUT", `/v3/contacts/${id}`, { update_source: "Contact" });
    expect(asContact.status).toBe(400);
    const revived = await t.api("PUT", `/v3/contacts/${id}`, { update_source: "Account", first_name: "R" });
    expect(revived.status).toBe(200);
    expect(revived.body.deleted_at).toBeUndefined();
  });

  it("enforces list limits: 50 lists per contact", async () => {
    const t = await setup();
    const seeded = await t.control("seed", {
      lists: Array.from({ length: 51 }, (_, i) => ({ name: `L${i}` })),
    });
    const ids = seeded.lists.map((l: any) => l.list_id);
    const res = await t.api("POST", "/v3/contacts", {
      email_address: { address: "m@example.org" },
      create_source: "Account",
      list_memberships: ids,
    });
    expect(res.status).toBe(400);
  });

  it("allows at most 1,000 lists", async () => {
    const t = await setup();
    await t.control("seed", { lists: Array.from({ length: 1000 }, (_, i) => ({ name: `L${i}` })) });
    const res = await t.api("POST", "/v3/contact_lists", { name: "one too many" });
    expect(res.status).toBe(400);
  });
});

describe("activities", () => {
  it("move initialized → processing → completed as they are polled", async () => {
    const t = await setup();
    const seeded = await seedBasics(t);
    const posted = await t.api("POST", "/v3/activities/contact_delete", {
      list_ids: [seeded.lists[0].list_id],
    });
    expect(posted.body).toMatchObject({ state: "initialized", percent_done: 0 });
    const mid = await t.api("GET", `/v3/activities/${posted.body.activity_id}`);
    expect(mid.body).toMatchObject({ state: "processing", percent_done: 50 });
    expect(
      (await t.api("GET", `/v3/contacts/${seeded.contacts[0].contact_id}`)).body.deleted_at,
    ).toBeUndefined();
    const done = await t.api("GET", `/v3/activities/${posted.body.activity_id}`);
    expect(done.body).toMatchObject({
      state: "completed",
      percent_done: 100,
      status: { items_total_count: 1, items_completed_count: 1 },
    });
    expect((await t.api("GET", `/v3/contacts/${seeded.contacts[0].contact_id}`)).body.deleted_at).toBe(
      "2026-03-02",
    );
  });

  it("DELETE /contact_lists/{id} removes the list and its memberships when the activity completes", async () => {
    const t = await setup({ activityPollsToComplete: 1 });
    const seeded = await seedBasics(t);
    const listId = seeded.lists[0].list_id;
    const del = await t.api("DELETE", `/v3/contact_lists/${listId}`);
    await t.api("GET", `/v3/activities/${del.body.activity_id}`);
    expect((await t.api("GET", `/v3/contact_lists/${listId}`)).status).toBe(404);
    const ann = await t.api("GET", `/v3/contacts/${seeded.contacts[0].contact_id}?include=list_memberships`);
    expect(ann.body.list_memberships).toEqual([]);
    expect((await t.api("GET", "/v3/contact_lists?status=deleted")).body.lists).toHaveLength(1);
  });

  it("remove_list_memberships by source list", async () => {
    const t = await setup({ activityPollsToComplete: 1 });
    const seeded = await seedBasics(t);
    const [newsletter] = seeded.lists.map((l: any) => l.list_id);
    const posted = await t.api("POST", "/v3/activities/remove_list_memberships", {
      source: { list_ids: [newsletter] },
      list_ids: [newsletter],
    });
    const done = await t.api("GET", `/v3/activities/${posted.body.activity_id}`);
    expect(done.body.status).toMatchObject({ items_total_count: 1, items_completed_count: 1 });
    expect((await t.api("GET", `/v3/contacts?lists=${newsletter}`)).body.contacts).toEqual([]);
  });

  it("refuses a 1,001st queued activity with 429", async () => {
    const t = await setup();
    for (let i = 0; i < 1000; i += 1) {
      const r = await t.raw("POST", "/v3/activities/list_delete", { list_ids: ["x"] });
      expect(r.status).toBe(201);
    }
    const over = await t.api("POST", "/v3/activities/list_delete", { list_ids: ["x"] });
    expect(over.status).toBe(429);
    expect(over.body[0].error_message).toMatch(/1,000 queued activities/);
  });
});

describe("limits", () => {
  it("throttles the 5th request in one second and recovers in the next (injected clock)", async () => {
    const t = await setup({ rateLimitPerSecond: 4 });
    const statuses: number[] = [];
    for (let i = 0; i < 5; i += 1) statuses.push((await t.api("GET", "/v3/contacts")).status);
    expect(statuses).toEqual([200, 200, 200, 200, 429]);
    const throttled = await t.raw("GET", "/v3/contacts");
    expect(throttled.body).toEqual({ error_key: "throttled", error_message: "Too Many Requests" });
    t.advance(1000);
    expect((await t.api("GET", "/v3/contacts")).status).toBe(200);
  });

  it("stops at the daily quota and resets at 00:00 UTC", async () => {
    const t = await setup({ dailyQuota: 3 });
    t.setClock("2026-03-02T23:59:58.000Z");
    for (let i = 0; i < 3; i += 1) expect((await t.api("GET", "/v3/contacts")).status).toBe(200);
    const over = await t.raw("GET", "/v3/contacts");
    expect(over).toMatchObject({
      status: 429,
      body: { error_key: "quota_exceeded", error_message: "Limit Exceeded" },
    });
    t.setClock("2026-03-03T00:00:00.000Z");
    expect((await t.api("GET", "/v3/contacts")).status).toBe(200);
    expect((await t.control("state")).usage).toMatchObject({ day: "2026-03-03", requests_today: 1 });
  });
});

describe("OAuth2", () => {
  const form = (fields: Record<string, string>) => ({
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams(fields).toString(),
  });

  it("authorization code with PKCE S256, single-use code", async () => {
    const t = await setup();
    const verifier = "v".repeat(50);
    const challenge = createHash("sha256").update(verifier).digest("base64url");
    const auth = await fetch(
      `${t.emulator.baseUrl}/oauth2/default/v1/authorize?` +
        new URLSearchParams({
          client_id: "app",
          redirect_uri: "http://localhost/cb",
          response_type: "code",
          scope: "contact_data offline_access",
          state: "s1",
          code_challenge: challenge,
          code_challenge_method: "S256",
        }).toString(),
      { redirect: "manual" },
    );
    expect(auth.status).toBe(302);
    const location = new URL(auth.headers.get("location") ?? "");
    expect(location.searchParams.get("state")).toBe("s1");
    const code = location.searchParams.get("code") ?? "";
    const tokenUrl = `${t.emulator.baseUrl}/oauth2/default/v1/token`;
    const wrong = await fetch(
      tokenUrl,
      form({
        grant_type: "authorization_code",
        code,
        code_verifier: "nope",
        client_id: "app",
        redirect_uri: "http://localhost/cb",
      }),
    );
    expect(wrong.status).toBe(400);
    expect(((await wrong.json()) as any).error).toBe("invalid_grant");
    // A failed attempt used the code up.
    const reused = await fetch(
      tokenUrl,
      form({ grant_type: "authorization_code", code, code_verifier: verifier }),
    );
    expect(reused.status).toBe(400);

    const again = await fetch(
      `${t.emulator.baseUrl}/oauth2/default/v1/authorize?` +
        new URLSearchParams({
          client_id: "app",
          redirect_uri: "http://localhost/cb",
          response_type: "code",
          code_challenge: challenge,
          code_challenge_method: "S256",
        }).toString(),
      { redirect: "manual" },
    );
    const code2 = new URL(again.headers.get("location") ?? "").searchParams.get("code") ?? "";
    const ok = await fetch(
      tokenUrl,
      form({
        grant_type: "authorization_code",
        code: code2,
        code_verifier: verifier,
        redirect_uri: "http://localhost/cb",
      }),
    );
    const tokens: any = await ok.json();
    expect(tokens).toMatchObject({
      token_type: "Bearer",
      expires_in: 86400,
      scope: "contact_data offline_access",
    });
    expect(typeof tokens.refresh_token).toBe("string");
    t.setToken(tokens.access_token);
    expect((await t.api("GET", "/v3/contacts")).status).toBe(200);
  });

  it("access tokens expire; rotating refresh tokens are single-use and a new set kills older ones", async () => {
    const t = await setup({ accessTokenTtlSeconds: 3600 });
    const tokenUrl = `${t.emulator.baseUrl}/oauth2/default/v1/token`;
    const first = await t.control("token");
    t.setToken(first.access_token);
    t.advance(3_600_000);
    const expired = await t.api("GET", "/v3/contacts");
    expect(expired).toMatchObject({
      status: 401,
      body: { error_key: "unauthorized", error_message: "Unauthorized" },
    });
    // The body's schema is checked where the official spec is present (see official-specs.ts).
    if (swagger !== undefined)
      expect(swagger.validateSchema("#/definitions/AuthorizationErrorSchema", expired.body)).toEqual({
        ok: true,
      });

    const refreshed: any = await (
      await fetch(tokenUrl, form({ grant_type: "refresh_token", refresh_token: first.refresh_token }))
    ).json();
    expect(refreshed.refresh_token).not.toBe(first.refresh_token);
    const reused = await fetch(
      tokenUrl,
      form({ grant_type: "refresh_token", refresh_token: first.refresh_token }),
    );
    expect(reused.status).toBe(400);
    expect(await reused.json()).toEqual({
      error: "invalid_grant",
      error_description: "unknown, invalid, or expired refresh token",
    });

    await t.control("token"); // a new set: earlier refresh tokens expire
    const killed = await fetch(
      tokenUrl,
      form({ grant_type: "refresh_token", refresh_token: refreshed.refresh_token }),
    );
    expect(killed.status).toBe(400);
    t.setToken(refreshed.access_token);
    expect((await t.api("GET", "/v3/contacts")).status).toBe(200);
  });

  it("long-lived refresh tokens come back unchanged and expire after 180 unused days", async () => {
    const t = await setup({ refreshMode: "long_lived" });
    const tokenUrl = `${t.emulator.baseUrl}/oauth2/default/v1/token`;
    const first = await t.control("token");
    const a: any = await (
      await fetch(tokenUrl, form({ grant_type: "refresh_token", refresh_token: first.refresh_token }))
    ).json();
    const b: any = await (
      await fetch(tokenUrl, form({ grant_type: "refresh_token", refresh_token: first.refresh_token }))
    ).json();
    expect([a.refresh_token, b.refresh_token]).toEqual([first.refresh_token, first.refresh_token]);
    expect(a.access_token).not.toBe(b.access_token);
    t.advance(181 * 86_400_000);
    expect(
      (await fetch(tokenUrl, form({ grant_type: "refresh_token", refresh_token: first.refresh_token })))
        .status,
    ).toBe(400);
  });

  it.each<[string, string | null]>([
    ["missing", null],
    ["unknown", "not-a-token"],
  ])("%s token → 401", async (_n, token) => {
    const t = await setup();
    const res = await t.api("GET", "/v3/contacts", undefined, { token });
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toBe("Bearer realm=api.cc.email");
  });

  it("revoke makes every issued token fail", async () => {
    const t = await setup();
    const refresh = (await t.control("token")).refresh_token;
    const current = await t.control("token", { scopes: ["contact_data", "offline_access"] });
    t.setToken(current.access_token);
    expect((await t.api("GET", "/v3/contacts")).status).toBe(200);
    await t.control("oauth/revoke");
    expect((await t.api("GET", "/v3/contacts")).status).toBe(401);
    const res = await fetch(
      `${t.emulator.baseUrl}/oauth2/default/v1/token`,
      form({ grant_type: "refresh_token", refresh_token: refresh }),
    );
    expect(res.status).toBe(400);
  });

  it("a token without contact_data is forbidden; without offline_access it has no refresh token", async () => {
    const t = await setup();
    const tokens = await t.control("token", { scopes: ["campaign_data"] });
    expect(tokens.refresh_token).toBeUndefined();
    t.setToken(tokens.access_token);
    expect((await t.api("GET", "/v3/contacts")).status).toBe(403);
  });
});

describe("control API", () => {
  it("injects faults by path prefix and logs requests", async () => {
    const t = await setup();
    await t.control("faults", { status: 503, count: 1, path_prefix: "/v3/contacts" });
    expect((await t.api("GET", "/v3/contacts")).status).toBe(503);
    expect((await t.api("GET", "/v3/contacts")).status).toBe(200);
    const log = await t.control("requests");
    expect(log.requests.map((r: any) => r.status)).toEqual([503, 200]);
  });

  it("reset empties state, tokens and logs", async () => {
    const t = await setup();
    await seedBasics(t);
    await t.control("reset");
    const state = await t.control("state");
    expect(state.contacts).toEqual([]);
    expect(state.lists).toEqual([]);
    expect((await t.api("GET", "/v3/contacts")).status).toBe(401);
  });

  it.each<[string, unknown, string]>([
    ["unknown actor", { as: "robot", action: "unsubscribe", email: "ann@example.org" }, "invalid_act"],
    [
      "unknown contact",
      { as: "contact", action: "unsubscribe", email: "nobody@example.org" },
      "unknown_contact",
    ],
    [
      "no resubscribe pending",
      { as: "contact", action: "confirm_resubscribe", email: "bob@example.org" },
      "no_resubscribe_pending",
    ],
    ["unknown action", { as: "contact", action: "dance", email: "ann@example.org" }, "invalid_act"],
  ])("act rejects %s", async (_n, body, code) => {
    const t = await setup();
    await seedBasics(t);
    const res = await t.control("act", body);
    expect(res.code).toBe(code);
  });
});
