import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type {
  Checkpoint,
  ExternalRecord,
  ConnectorOperation,
  ConnectorSession,
  ObservedScope,
  ReadPage,
  WebhookChange,
} from "../connector";
import { describeWithSpecs } from "../../../test/support/official-specs";
import { loadOpenApiValidator, officialSpecPath } from "../contract/openapi-validator";
import { blackbaudRenxtManifest } from "./manifest";
import { consentAddBody, constituentAddBody, constituentEditBody } from "./mapping";
import { startEmulatorFixture, type EmulatorFixture } from "../../../test/support/connectors/blackbaud-renxt";
import { handleBlackbaudWebhook, registerBlackbaudWebhooks } from "./webhooks";

let f: EmulatorFixture;
let session: ConnectorSession;
beforeEach(async () => {
  f = await startEmulatorFixture();
  session = blackbaudRenxtManifest.connect(f.settings(), f.runtime);
});
afterEach(async () => {
  await f.close();
});

async function readAll(s: ConnectorSession, full = true): Promise<ReadPage[]> {
  const pages: ReadPage[] = [];
  for await (const p of s.read(null, { full })) {
    if (!p.ok) throw new Error(`${p.error.code}: ${p.error.message}`);
    pages.push(p.value);
  }
  return pages;
}

const origin = { system: "constant-contact", connection: "conn_cc", mechanism: "unsubscribe_link" as const };
const optOut = (id: string, scope: ObservedScope, n = 1): ConnectorOperation => ({
  kind: "record_opt_out",
  op_id: `op_out_${id}_${n}`,
  external_id: id,
  email: "x@example.org",
  scope,
  initiated_by: "contact",
  occurred_at: "2026-03-02T11:59:00.000Z",
  origin,
});

describe("check", () => {
  it("refuses a missing subscription key without calling SKY", async () => {
    const r = await blackbaudRenxtManifest
      .connect(f.settings({ subscription_key: undefined }), f.runtime)
      .check();
    expect(r).toMatchObject({ ok: false, error: { code: "auth_invalid" } });
  });
  it("refuses a refresh token SKY does not know", async () => {
    const r = await blackbaudRenxtManifest
      .connect(f.settings({ refresh_token: "bbrt_bogus" }), f.runtime)
      .check();
    expect(r).toMatchObject({ ok: false, error: { code: "auth_invalid" } });
  });
});

describe("opt-out solicit codes", () => {
  it("a code whose table entry was retired still reads as an opt-out for whoever holds it", async () => {
    const id = await f.createConstituent("sol@example.org", "Sol", "Vane");
    await f.control("/__emulator/act", {
      as: "admin",
      action: "add_solicit_code",
      constituent_id: id,
      code: "Do not contact",
    });
    await f.control("/__emulator/act", {
      as: "admin",
      action: "retire_solicit_code",
      code: "Do not contact",
    });
    const got = await session.get([id]);
    if (!got.ok) throw new Error(got.error.message);
    const optOut = got.value.consent.find((o) => o.kind === "opt_out");
    expect(optOut?.evidence.reason).toMatch(/solicit code "Do not contact"/);
  });

  it("check refuses a code the config names that the table lacks, naming the entries; the default names are only likely ones", async () => {
    const named = blackbaudRenxtManifest.connect(
      { ...f.settings(), options: { opt_out_solicit_codes: ["Do not contact", "Do not emial"] } },
      f.runtime,
    );
    const r = await named.check();
    expect(r).toMatchObject({ ok: false, error: { code: "validation_failed" } });
    const message = r.ok ? "" : r.error.message;
    expect(message).toContain('"Do not emial"');
    expect(message).not.toContain('names "Do not contact"');
    expect(message).toContain('"Requests no email"');
    // The defaults ("Do not contact", "Do not email") are not all in this table: no refusal.
    expect((await session.check()).ok).toBe(true);
  });
});

describe("a long consent history", () => {
  it("is read past SKY's first page: an old category opt-out behind 600 newer records still counts", async () => {
    const year = (n: number) =>
      `${2000 + Math.floor(n / 12)}-${String((n % 12) + 1).padStart(2, "0")}-01T10:00:00Z`;
    const seeded = (await f.control("/__emulator/seed", {
      constituents: [
        {
          type: "Individual",
          first: "Lee",
          last: "Long",
          email: { address: "lee@example.org" },
          consents: [
            {
              channel: "Email",
              category: "Events",
              consent_date: "1999-06-01T10:00:00Z",
              constituent_consent_response: "OptOut",
              consent_statement: "No event invitations, please",
            },
            // A newsletter choice each month for fifty years, newer than the events opt-out.
            ...Array.from({ length: 600 }, (_, n) => ({
              channel: "Email",
              category: "Newsletter",
              consent_date: year(n),
              constituent_consent_response: n % 2 === 0 ? "OptIn" : "OptOut",
            })),
          ],
        },
      ],
    })) as { constituents: { id: string }[] };
    const id = seeded.constituents[0]!.id;
    const got = await session.get([id]);
    if (!got.ok) throw new Error(got.error.message);
    const consent = got.value.consent.filter((o) => o.external_id === id);
    expect(consent.filter((o) => o.scope.kind === "construct")).toHaveLength(601);
    expect(consent).toContainEqual(
      expect.objectContaining({
        kind: "opt_out",
        scope: { kind: "construct", construct: { type: "consent_category", id: "Events" } },
        occurred_at: "1999-06-01T10:00:00.000Z",
      }),
    );
  });
});

describe("apply consent", () => {
  it("global opt-out ticks Requests No Email and adds a channel-wide OptOut record; a second one is already applied", async () => {
    const id = await f.createConstituent("ann@example.org", "Ann", "Lee");
    const [first] = await session.apply([optOut(id, { kind: "global" })]);
    expect(first).toMatchObject({ status: "succeeded" });
    const c = await f.api("GET", `/constituent/v1/constituents/${id}`);
    expect((c.body as { requests_no_email: boolean }).requests_no_email).toBe(true);
    const records = (await f.api("GET", `/commpref/v1/constituents/${id}/consents`)).body as {
      value: {
        category?: string;
        constituent_consent_response: string;
        consent_statement: string;
        consent_date: string;
      }[];
    };
    expect(records.value).toHaveLength(1);
    expect(records.value[0]).toMatchObject({ constituent_consent_response: "OptOut" });
    expect(records.value[0]?.category ?? undefined).toBeUndefined();
    expect(records.value[0]?.consent_statement).toContain("constant-contact");
    const [again] = await session.apply([optOut(id, { kind: "global" }, 2)]);
    expect(again).toMatchObject({ status: "succeeded", code: "already_applied" });
  });

  it("a global opt-out sets Requests No Email even when its consent record is refused for good, and says so", async () => {
    const id = await f.createConstituent("vi@example.org", "Vi", "Ola");
    const other = await f.createConstituent("wu@example.org", "Wu", "Lee");
    // The tenant refuses the record (a consent source not in its table), every time.
    await f.control("/__emulator/faults", {
      status: 400,
      count: 10,
      path_prefix: "/commpref/v1/consent/consents",
      methods: ["POST"],
      latency_ms: 0,
      body: [{ message: "Source is not a valid consent source.", error_name: "InvalidSource" }],
    });
    const [global, category] = await session.apply([
      optOut(id, { kind: "global" }),
      optOut(other, { kind: "construct", construct: { type: "consent_category", id: "Newsletter" } }),
    ]);
    expect(global).toMatchObject({
      status: "succeeded",
      message: expect.stringContaining(
        "Requests No Email is set; the OptOut consent record could not be added",
      ),
    });
    const c = await f.api("GET", `/constituent/v1/constituents/${id}`);
    expect((c.body as { requests_no_email: boolean }).requests_no_email).toBe(true);
    // A category opt-out has no flag to fall back on: it fails, saying why.
    expect(category).toMatchObject({ status: "failed", code: "validation_failed" });
  });

  it("category opt-out adds an OptOut in that category and reads back with its evidence", async () => {
    const id = await f.createConstituent("bo@example.org", "Bo", "Ng");
    expect(
      (
        await session.apply([
          optOut(id, { kind: "construct", construct: { type: "consent_category", id: "Newsletter" } }),
        ])
      )[0]?.status,
    ).toBe("succeeded");
    expect(
      (
        await session.apply([
          optOut(id, { kind: "construct", construct: { type: "consent_category", id: "Newsletter" } }, 2),
        ])
      )[0]?.code,
    ).toBe("already_applied");
    const consent = (await readAll(session)).flatMap((p) => p.consent).filter((o) => o.external_id === id);
    expect(consent).toHaveLength(1);
    expect(consent[0]).toMatchObject({
      kind: "opt_out",
      scope: { kind: "construct", construct: { type: "consent_category", id: "Newsletter" } },
      occurred_at: "2026-03-02T11:59:00.000Z",
      mechanism: "sync",
    });
  });

  it("writes a category opt-in only for the person's own act", async () => {
    const id = await f.createConstituent("cy@example.org", "Cy", "Ho");
    const optIn = (mechanism: "admin_edit" | "preference_page"): ConnectorOperation => ({
      kind: "record_opt_in",
      op_id: `op_in_${mechanism}`,
      external_id: id,
      scope: { kind: "construct", construct: { type: "consent_category", id: "Events" } },
      occurred_at: "2026-03-02T12:00:00.000Z",
      origin: { ...origin, mechanism, actor: mechanism === "admin_edit" ? "account" : "contact" },
    });
    expect((await session.apply([optIn("admin_edit")]))[0]).toMatchObject({
      status: "failed",
      code: "consent_requires_contact_action",
    });
    expect((await session.apply([optIn("preference_page")]))[0]).toMatchObject({ status: "succeeded" });
  });

  it("an opt-in planned over no opt-out leaves one made since in place; one planned over it is written", async () => {
    const id = await f.createConstituent("di@example.org", "Di", "Ho");
    const events = { kind: "construct" as const, construct: { type: "consent_category", id: "Events" } };
    const optIn = (scope: ObservedScope, read_opted_out: boolean): ConnectorOperation => ({
      kind: "record_opt_in",
      op_id: `op_in_${scope.kind}_${read_opted_out}`,
      external_id: id,
      scope,
      occurred_at: "2026-03-02T12:00:00.000Z",
      read_opted_out,
      origin: { ...origin, mechanism: "preference_page", actor: "contact" },
    });
    await session.apply([optOut(id, { kind: "global" }), optOut(id, events)]);
    const records = async () =>
      ((await f.api("GET", `/commpref/v1/constituents/${id}/consents`)).body as { value: unknown[] }).value
        .length;
    const flag = async () =>
      ((await f.api("GET", `/constituent/v1/constituents/${id}`)).body as { requests_no_email: boolean })
        .requests_no_email;
    expect(await records()).toBe(2);
    const stale = await session.apply([optIn({ kind: "global" }, false), optIn(events, false)]);
    expect(stale.map((o) => [o.status, o.code])).toEqual([
      ["skipped", "conflict"],
      ["skipped", "conflict"],
    ]);
    expect(stale[0]?.message).toContain("Requests No Email");
    expect(await records()).toBe(2);
    expect(await flag()).toBe(true);
    const written = await session.apply([optIn({ kind: "global" }, true), optIn(events, true)]);
    expect(written.map((o) => o.status)).toEqual(["succeeded", "succeeded"]);
    expect(await records()).toBe(4);
    expect(await flag()).toBe(false);
  });

  it("an opt-in writes nothing over an OptOut record dated after it: the newer act stands", async () => {
    const id = await f.createConstituent("mo@example.org", "Mo", "Ray");
    expect(
      (await f.api("PATCH", `/constituent/v1/constituents/${id}`, { requests_no_email: true })).status,
    ).toBeLessThan(300);
    // Planned while the flag was set; then staff record the person's phoned-in opt-out, dated after
    // the opt-in the plan carries (the flag was set already, so nothing else changed).
    const phoned = await f.api("POST", "/commpref/v1/consent/consents", {
      constituent_id: id,
      channel: "Email",
      constituent_consent_response: "OptOut",
      consent_date: "2026-03-02T12:30:00Z",
      consent_statement: "Phoned in: no more email",
    });
    expect(phoned.status).toBeLessThan(300);
    const categoryOut = await f.api("POST", "/commpref/v1/consent/consents", {
      constituent_id: id,
      channel: "Email",
      category: "Appeals",
      constituent_consent_response: "OptOut",
      consent_date: "2026-03-02T12:30:00Z",
      consent_statement: "Phoned in: no appeals",
    });
    expect(categoryOut.status).toBeLessThan(300);
    const optIn = (scope: ObservedScope, n: string): ConnectorOperation => ({
      kind: "record_opt_in",
      op_id: `op_in_mo_${n}`,
      external_id: id,
      scope,
      occurred_at: "2026-03-02T12:00:00.000Z",
      read_opted_out: true,
      origin: { ...origin, mechanism: "preference_page", actor: "contact" },
    });
    const out = await session.apply([
      optIn({ kind: "global" }, "all"),
      optIn({ kind: "construct", construct: { type: "consent_category", id: "Appeals" } }, "appeals"),
    ]);
    for (const o of out)
      expect(o).toMatchObject({
        status: "skipped",
        code: "conflict",
        message: expect.stringContaining("dated 2026-03-02T12:30:00"),
      });
    const c = await f.api("GET", `/constituent/v1/constituents/${id}`);
    expect((c.body as { requests_no_email: boolean }).requests_no_email).toBe(true);
    const records = (await f.api("GET", `/commpref/v1/constituents/${id}/consents`)).body as {
      value: { constituent_consent_response: string }[];
    };
    expect(records.value.map((r) => r.constituent_consent_response)).toEqual(["OptOut", "OptOut"]);
  });

  it("a global opt-in over an older OptIn record writes the person's own; a retry finds its record and only clears the flag", async () => {
    const id = await f.createConstituent("el@example.org", "El", "Ma");
    // An OptIn from a 2017 web form, then staff ticked Requests No Email.
    const seeded = await f.api("POST", "/commpref/v1/consent/consents", {
      constituent_id: id,
      channel: "Email",
      constituent_consent_response: "OptIn",
      consent_date: "2017-05-01T10:00:00Z",
      consent_statement: "Web form",
    });
    expect(seeded.status).toBeLessThan(300);
    expect(
      (await f.api("PATCH", `/constituent/v1/constituents/${id}`, { requests_no_email: true })).status,
    ).toBeLessThan(300);
    const optIn: ConnectorOperation = {
      kind: "record_opt_in",
      op_id: "op_in_el",
      external_id: id,
      scope: { kind: "global" },
      occurred_at: "2026-03-02T12:00:00.000Z",
      read_opted_out: true,
      origin: { ...origin, mechanism: "preference_page", actor: "contact" },
    };
    const records = async () =>
      (
        (await f.api("GET", `/commpref/v1/constituents/${id}/consents`)).body as {
          value: { constituent_consent_response: string; consent_date: string }[];
        }
      ).value.map((r) => [r.constituent_consent_response, new Date(r.consent_date).toISOString()]);
    const flag = async () =>
      ((await f.api("GET", `/constituent/v1/constituents/${id}`)).body as { requests_no_email: boolean })
        .requests_no_email;
    // The record of this act is written, so the cleared flag reads back as the person's, dated now.
    expect((await session.apply([optIn]))[0]).toMatchObject({ status: "succeeded" });
    expect(await flag()).toBe(false);
    expect(await records()).toEqual(
      expect.arrayContaining([
        ["OptIn", "2017-05-01T10:00:00.000Z"],
        ["OptIn", "2026-03-02T12:00:00.000Z"],
      ]),
    );
    expect(await records()).toHaveLength(2);
    // A crash after the record, before the flag: the retry writes no second record.
    await f.api("PATCH", `/constituent/v1/constituents/${id}`, { requests_no_email: true });
    expect((await session.apply([{ ...optIn, op_id: "op_in_el_retry" }]))[0]).toMatchObject({
      status: "succeeded",
    });
    expect(await flag()).toBe(false);
    expect(await records()).toHaveLength(2);
  });

  it("defers the rest of a batch with retry_at when the quota runs out", async () => {
    const a = await f.createConstituent("q1@example.org", "Q", "One");
    const b = await f.createConstituent("q2@example.org", "Q", "Two");
    await f.control("/__emulator/faults", {
      status: 403,
      count: 1,
      path_prefix: "/commpref/v1",
      latency_ms: 0,
      headers: { "Retry-After": "600" },
      body: { statusCode: 403, message: "Out of call volume quota. Quota will be replenished in 00:10:00." },
    });
    const out = await session.apply([
      optOut(a, { kind: "construct", construct: { type: "consent_category", id: "Newsletter" } }),
      optOut(b, { kind: "global" }),
    ]);
    expect(out.map((o) => [o.status, o.code, o.retry_at])).toEqual([
      ["deferred", "quota_exceeded", "2026-03-02T12:10:00.000Z"],
      ["deferred", "quota_exceeded", "2026-03-02T12:10:00.000Z"],
    ]);
  });

  it("waits out a 429 and succeeds", async () => {
    const id = await f.createConstituent("r@example.org", "R", "Ate");
    await f.control("/__emulator/faults", {
      status: 429,
      count: 2,
      path_prefix: "/commpref/v1",
      latency_ms: 0,
    });
    const before = f.clock.now().getTime();
    expect(
      (
        await session.apply([
          optOut(id, { kind: "construct", construct: { type: "consent_category", id: "Appeals" } }),
        ])
      )[0]?.status,
    ).toBe("succeeded");
    expect(f.clock.now().getTime() - before).toBeGreaterThanOrEqual(2000);
  });
});

describe("apply contact changes", () => {
  it("changes the email in place and creates constituents without duplicates", async () => {
    const id = await f.createConstituent("old@example.org", "Di", "Vo");
    expect(
      (
        await session.apply([
          {
            kind: "change_email",
            op_id: "op_ce",
            external_id: id,
            old_email: "old@example.org",
            new_email: "new@example.org",
          },
        ])
      )[0]?.status,
    ).toBe("succeeded");
    const got = await session.get([id]);
    expect(got.ok && got.value.records[0]?.emails.map((e) => [e.address, e.primary])).toEqual([
      ["new@example.org", true],
    ]);
    const create: ConnectorOperation = {
      kind: "create_contact",
      op_id: "op_cc",
      email: "eve@example.org",
      first_name: "Eve",
      last_name: "Ko",
      kind_of_record: "individual",
    };
    const [made] = await session.apply([create]);
    expect(made).toMatchObject({ status: "succeeded" });
    expect(made?.external_id).toBeTruthy();
    // Sent again (its answer lost), in another case: the constituent the address is on, not a second.
    const [again] = await session.apply([{ ...create, op_id: "op_cc2", email: "EVE@example.org" }]);
    expect(again).toMatchObject({
      status: "succeeded",
      code: "already_applied",
      external_id: made?.external_id,
    });
    // Another address that only contains it finds nothing: a constituent of its own.
    const [other] = await session.apply([{ ...create, op_id: "op_cc3", email: "eve@example.org.uk" }]);
    expect(other).toMatchObject({ status: "succeeded" });
    expect(other?.code).toBeUndefined();
    expect(other?.external_id).not.toBe(made?.external_id);
    const log = (await f.control("/__emulator/requests")) as { requests: { path: string }[] };
    const searched = log.requests.filter((r) => r.path.startsWith("/constituent/v1/constituents/search"));
    expect(searched.length).toBeGreaterThan(0);
    for (const r of searched) expect(r.path).toMatch(/include_non_constituents=false.*strict_search=true/);
  });

  it("appends list members; removing them is unsupported with a reason", async () => {
    const id = await f.createConstituent("l@example.org", "L", "Ist");
    const list = (
      await f.api("POST", "/list/v1/createlistfromids", {
        name: "Newsletter",
        description: "d",
        list_type: "Constituent",
        list_permissions: "OthersCanView",
        ids: [],
      })
    ).body as { id: string };
    const [added, removed] = await session.apply([
      { kind: "add_list_members", op_id: "op_add", list_ids: [list.id], external_ids: [id] },
      { kind: "remove_list_members", op_id: "op_rm", list_ids: [list.id], external_ids: [id] },
    ]);
    expect(added?.status).toBe("succeeded");
    expect(removed).toMatchObject({ status: "failed", code: "unsupported" });
    const lists = await session.lists();
    expect(lists.ok && lists.value.find((l) => l.external_id === list.id)?.name).toBe("Newsletter");
    const pages: ReadPage[] = [];
    for await (const p of session.read(null, { full: true, list_ids: [list.id] }))
      if (p.ok) pages.push(p.value);
    expect(pages.flatMap((p) => p.records).find((r) => r.external_id === id)?.list_ids).toEqual([list.id]);
  });
});

describe("webhooks", () => {
  it("the same change delivered twice and out of order re-reads one current record", async () => {
    const id = await f.createConstituent("w@example.org", "Wu", "Li");
    await f.api("PATCH", `/constituent/v1/constituents/${id}`, { first: "Wen" });
    await f.api("PATCH", `/constituent/v1/constituents/${id}`, { requests_no_email: true });
    const deliver = (eventId: string, time: string) =>
      handleBlackbaudWebhook(
        {
          method: "POST",
          headers: { "content-type": "application/cloudevents+json; charset=utf-8" },
          query: { webhookKey: "s3cret" },
          raw_body: JSON.stringify({
            type: "com.blackbaud.constituent.change.v1",
            specversion: "1.0",
            source: "x",
            subject: "/environments/p-1",
            id: eventId,
            time,
            data: { id },
          }),
        },
        "s3cret",
      );
    const changes: WebhookChange[] = [];
    for (const h of [
      deliver("e2", "2026-03-02T12:00:02Z"),
      deliver("e1", "2026-03-02T12:00:01Z"),
      deliver("e2", "2026-03-02T12:00:02Z"),
    ]) {
      expect(h.kind).toBe("events");
      if (h.kind === "events") changes.push(...h.changes);
    }
    expect(changes).toHaveLength(3);
    const got = await session.get(changes.map((c) => c.external_id));
    expect(got.ok).toBe(true);
    if (!got.ok) return;
    expect(got.value.records).toHaveLength(1);
    expect(got.value.records[0]).toMatchObject({
      external_id: id,
      first_name: "Wen",
    });
    expect(got.value.records[0]?.consent_state).toContainEqual(
      expect.objectContaining({ source: "requests_no_email", status: "opted_out" }),
    );
  });

  it("a deleted constituent re-reads as deleted", async () => {
    const id = await f.createConstituent("d@example.org", "De", "Leted");
    await f.api("DELETE", `/constituent/v1/constituents/${id}`);
    const got = await session.get([id]);
    expect(got.ok && got.value.records[0]).toMatchObject({ external_id: id, deleted: true });
  });
});

describeWithSpecs("requests we build match the Constituent OpenAPI spec", () => {
  it("PATCH, POST constituent and email bodies validate", async () => {
    const v = await loadOpenApiValidator(officialSpecPath("blackbaud", "constituent.json"));
    const edit = constituentEditBody({
      kind: "update_contact",
      op_id: "x",
      external_id: "1",
      first_name: "A",
      last_name: "B",
      fields: { lookup_id: "L" },
    });
    expect(
      v.validateRequest({ method: "PATCH", path: "/constituent/v1/constituents/280", body: edit.body }),
    ).toEqual({ ok: true });
    expect(
      v.validateRequest({
        method: "PATCH",
        path: "/constituent/v1/constituents/280",
        body: { requests_no_email: true },
      }),
    ).toEqual({ ok: true });
    for (const kind of ["individual", "organisation"] as const) {
      const add = constituentAddBody(
        {
          kind: "create_contact",
          op_id: "x",
          email: "a@b.org",
          first_name: "A",
          last_name: "B",
          kind_of_record: kind,
        },
        "Email",
      );
      expect(v.validateRequest({ method: "POST", path: "/constituent/v1/constituents", body: add })).toEqual({
        ok: true,
      });
    }
    expect(
      v.validateRequest({
        method: "POST",
        path: "/constituent/v1/emailaddresses",
        body: { address: "a@b.org", constituent_id: "280", type: "Email", primary: true },
      }),
    ).toEqual({ ok: true });
    expect(
      v.validateRequest({
        method: "PATCH",
        path: "/constituent/v1/emailaddresses/283",
        body: { address: "n@b.org" },
      }),
    ).toEqual({ ok: true });
    // The Communication Preference API has no spec file: check the documented required fields by hand.
    const consent = consentAddBody(
      {
        kind: "record_opt_out",
        op_id: "x",
        external_id: "280",
        email: "a@b.org",
        scope: { kind: "global" },
        initiated_by: "account",
        occurred_at: "2026-03-02T12:00:00.000Z",
        origin,
      },
      { channel: "Email" },
    );
    for (const key of ["constituent_id", "channel", "consent_date", "constituent_consent_response"])
      expect(consent).toHaveProperty(key);
    expect((consent.consent_statement ?? "").length).toBeLessThanOrEqual(7999);
  });
});

describe("an incremental read", () => {
  it("reads a constituent again when it is saved while the read goes on: the opt-out made meanwhile is read", async () => {
    const a = await f.createConstituent("a@example.org", "A", "A");
    f.clock.advance(1_000);
    const b = await f.createConstituent("b@example.org", "B", "B");
    await f.createConstituent("c@example.org", "C", "C");
    const session = blackbaudRenxtManifest.connect({ ...f.settings(), page_size: 1 }, f.runtime);
    const from = {
      stream: "constituents",
      value: "2026-03-02T11:00:00.000Z",
      taken_at: "2026-03-02T11:00:00.000Z",
    };
    const pages: ReadPage[] = [];
    for await (const page of session.read(from, {})) {
      if (!page.ok) throw new Error(page.error.message);
      pages.push(page.value);
      // After A's page: A asks for no email, and later B is edited.
      if (pages.length === 1) {
        expect(page.value.records.map((r) => r.external_id)).toEqual([a]);
        await f.api("PATCH", `/constituent/v1/constituents/${a}`, { requests_no_email: true });
        f.clock.advance(20 * 60_000);
        await f.api("PATCH", `/constituent/v1/constituents/${b}`, { middle: "x" });
      }
    }
    const optOuts = pages
      .flatMap((p) => p.consent)
      .filter((o) => o.external_id === a && o.kind === "opt_out");
    expect(optOuts).toHaveLength(1);
    expect(pages.flatMap((p) => p.records).filter((r) => r.external_id === a)).toHaveLength(2);
  });
});

describe("webhook registration", () => {
  it("keeps the subscriptions while the secret stays, and makes them again with a rotated one", async () => {
    const settings = f.settings();
    const receiver = "https://concord.example.org/webhooks/re-nxt";
    const keys = () =>
      f.emu.webhooks
        .snapshot()
        .subscriptions.map((s) => new URL(s.webhook_url).searchParams.get("webhookKey"))
        .sort();
    const first = await registerBlackbaudWebhooks(settings, f.runtime, {
      url: receiver,
      secret: "old-secret-1",
    });
    if (!first.ok) throw new Error(first.error.message);
    const count = first.value.created;
    expect(count).toBeGreaterThan(0);
    expect(keys()).toEqual(Array.from({ length: count }, () => "old-secret-1"));
    const again = await registerBlackbaudWebhooks(settings, f.runtime, {
      url: receiver,
      secret: "old-secret-1",
    });
    expect(again.ok && again.value).toEqual({ created: 0, kept: count });
    // The secret rotated: SKY shows no query string, so only the fingerprint kept at the last
    // registration tells the subscriptions still carry the old one.
    const rotated = await registerBlackbaudWebhooks(settings, f.runtime, {
      url: receiver,
      secret: "new-secret-2",
    });
    expect(rotated.ok && rotated.value).toEqual({ created: count, kept: 0 });
    expect(keys()).toEqual(Array.from({ length: count }, () => "new-secret-2"));
  });
});

describe("an incremental read stopped part way (the day's quota spent)", () => {
  const from = {
    stream: "constituents",
    value: "2026-03-02T11:00:00.000Z",
    taken_at: "2026-03-02T11:00:00.000Z",
  };
  /** Three constituents made an hour apart; the first saved again last, the third asking for no email. */
  const seed = async (fx: EmulatorFixture) => {
    const a = await fx.createConstituent("a@example.org", "A", "A");
    fx.clock.advance(3_600_000);
    await fx.createConstituent("b@example.org", "B", "B");
    fx.clock.advance(3_600_000);
    const c = await fx.createConstituent("c@example.org", "C", "C");
    await fx.api("PATCH", `/constituent/v1/constituents/${c}`, { requests_no_email: true });
    fx.clock.advance(3_600_000);
    await fx.api("PATCH", `/constituent/v1/constituents/${a}`, { middle: "x" });
    fx.clock.advance(60_000);
    return { a, c };
  };
  /** The pages a read of one constituent a page takes from `at`, stopped after `n` (all when absent). */
  const pagesFrom = async (fx: EmulatorFixture, at: Checkpoint, n?: number): Promise<ReadPage[]> => {
    const s = blackbaudRenxtManifest.connect({ ...fx.settings(), page_size: 1 }, fx.runtime);
    const pages: ReadPage[] = [];
    for await (const page of s.read(at, {})) {
      if (!page.ok) throw new Error(page.error.message);
      pages.push(page.value);
      if (pages.length === n) break;
    }
    return pages;
  };
  const firstPages = (fx: EmulatorFixture, n: number) => pagesFrom(fx, from, n);
  /** Whether the next read, from `at`, reads the opt-out of constituent `id`. */
  const optOutReadFrom = async (fx: EmulatorFixture, at: Checkpoint, id: string): Promise<boolean> =>
    (await pagesFrom(fx, at))
      .flatMap((p) => p.consent)
      .some((o) => o.external_id === id && o.kind === "opt_out");

  it("listed in the order of change, goes on from the page before the last it stored", async () => {
    const { c } = await seed(f);
    const pages = await firstPages(f, 2);
    // Oldest change first (B, C, then A): the second page's checkpoint is the first page's change.
    expect(Date.parse(pages[1]!.checkpoint.value)).toBeGreaterThan(Date.parse(from.value));
    expect(await optOutReadFrom(f, pages[1]!.checkpoint, c)).toBe(true);
  });

  it("listed in another order, keeps the checkpoint it began from: an older opt-out on a later page is read next time", async () => {
    const fx = await startEmulatorFixture(undefined, { listChangesBy: "creation" });
    try {
      const { a, c } = await seed(fx);
      // By creation: A (changed last) first, then B, then C (whose opt-out is older than A's change).
      const pages = await firstPages(fx, 2);
      expect(pages[0]!.records.map((r) => r.external_id)).toEqual([a]);
      for (const p of pages) expect(p.checkpoint.value).toBe(from.value);
      expect(await optOutReadFrom(fx, pages[1]!.checkpoint, c)).toBe(true);
    } finally {
      await fx.close();
    }
  });
});

describe("a full read from SKY's all-constituents lists", () => {
  /** 100 individuals (the first 20 contacts of 20 organisations), each with email addresses and consent. */
  async function seedTenant(fixture: EmulatorFixture): Promise<string[]> {
    const people = Array.from({ length: 100 }, (_, i) => ({
      type: "Individual",
      first: `P${i}`,
      last: "Reader",
      email: { address: `p${i}@example.org`, type: "Email", do_not_email: i % 7 === 0 },
      email_addresses:
        i % 3 === 0
          ? [{ address: `old${i}@example.org`, type: "Email", primary: false, inactive: true }]
          : [],
      consents:
        i % 2 === 0
          ? [
              {
                channel: "Email",
                category: "Newsletter",
                consent_date: "2026-01-05T10:00:00Z",
                constituent_consent_response: i % 4 === 0 ? "OptOut" : "OptIn",
              },
            ]
          : [],
    }));
    const organisations = Array.from({ length: 20 }, (_, i) => ({ type: "Organization", name: `Org ${i}` }));
    const seeded = (await fixture.control("/__emulator/seed", {
      constituents: [...people, ...organisations],
    })) as { constituents: { id: string }[] };
    const ids = seeded.constituents.map((c) => c.id);
    await fixture.control("/__emulator/seed", {
      relationships: ids.slice(0, 20).map((id, i) => ({
        constituent_id: id,
        relation_id: ids[100 + i],
        type: "Employee",
        reciprocal_type: "Employer",
        is_organization_contact: true,
      })),
    });
    return ids;
  }
  const byId = <T extends { external_id: string }>(rows: readonly T[]): T[] =>
    [...rows].sort((a, b) => a.external_id.localeCompare(b.external_id));
  const callsSince = async (fixture: EmulatorFixture, from: number) => {
    const log = (await fixture.control("/__emulator/requests")) as { requests: { path: string }[] };
    return log.requests.slice(from).map((r) => r.path);
  };
  const logLength = async (fixture: EmulatorFixture): Promise<number> =>
    ((await fixture.control("/__emulator/requests")) as { count: number }).count;

  it("reads the same records and consent as reading constituent by constituent, in three calls each where SKY has no list of all", async () => {
    const ids = await seedTenant(f);
    // Saved two hours before the read, as most of an organisation's records are: outside the lag
    // of the all-constituents lists, which serve their addresses and relationships.
    f.clock.advance(2 * 3600_000);
    const from = await logLength(f);
    const pages = await readAll(session);
    const paths = await callsSince(f, from);
    const read = { records: pages.flatMap((p) => p.records), consent: pages.flatMap((p) => p.consent) };
    expect(read.records).toHaveLength(120);

    // Per constituent: the constituent itself (a list item has no requests_no_email), its consent
    // records and its solicit codes (the tenant's table has the opt-out codes), which SKY serves
    // for one constituent at a time. Addresses and relationships come in bulk.
    const count = (re: RegExp) => paths.filter((p) => re.test(p)).length;
    expect(count(/^\/constituent\/v1\/constituents\/\d+$/)).toBe(120);
    expect(count(/^\/commpref\/v1\/constituents\/\d+\/consents/)).toBe(120);
    expect(count(/^\/commpref\/v1\/constituents\/\d+\/constituentsolicitcodes/)).toBe(120);
    expect(count(/^\/constituent\/v1\/constituents\/\d+\/(emailaddresses|relationships)/)).toBe(0);
    expect(count(/^\/constituent\/v1\/emailaddresses\?constituent_id=\d+&constituent_id=/)).toBe(2); // 100 ids a call
    expect(count(/^\/constituent\/v1\/relationships\?/)).toBe(1);
    // And once per read: the token, the constituent list page, the solicit code table.
    expect(paths.length).toBe(3 * 120 + 2 + 1 + 3);

    // The same constituents read one by one (the path of small pages, webhooks and re-reads).
    const one = await session.get(ids);
    if (!one.ok) throw new Error(one.error.message);
    // Read from the lagging lists, a record carries no version: the next poll reads it whole.
    expect(read.records.filter((r) => r.version !== undefined)).toEqual([]);
    expect(one.value.records.every((r) => typeof r.version === "string")).toBe(true);
    const versionless = (records: ExternalRecord[]) => records.map(({ version: _version, ...r }) => r);
    expect(byId(versionless(read.records))).toEqual(byId(versionless(one.value.records)));
    expect(byId(read.consent)).toEqual(byId(one.value.consent));
    const contact = read.records.find((r) => r.external_id === ids[3]);
    expect(contact).toMatchObject({ organisation_external_id: ids[103] });
    expect(contact?.emails.map((e) => e.address)).toEqual(["p3@example.org", "old3@example.org"]);
  });

  it("reads a constituent saved within the lists' lag from its current record, and leaves its checkpoint before the lag", async () => {
    const lagged = await startEmulatorFixture("2026-03-02T12:00:00.000Z", {
      allConstituentsListLatencyMs: 30 * 60_000,
    });
    try {
      const s = blackbaudRenxtManifest.connect(lagged.settings(), lagged.runtime);
      const ids = await seedTenant(lagged);
      lagged.clock.advance(2 * 3600_000);
      // p5 gets a new primary address and p11 (emailable, no consent records) has Do Not Email ticked on its address;
      // twenty minutes later someone else's name changes. The all-constituents email list shows
      // neither save for thirty minutes.
      await lagged.api("POST", "/constituent/v1/emailaddresses", {
        constituent_id: ids[5],
        address: "p5.new@example.org",
        type: "Email",
        primary: true,
      });
      const p11 = (await lagged.api("GET", `/constituent/v1/constituents/${ids[11]}/emailaddresses`))
        .body as {
        value: { id: string; address: string }[];
      };
      const p11Address = p11.value.find((e) => e.address === "p11@example.org");
      if (!p11Address) throw new Error("p11 has no address");
      expect(
        (await lagged.api("PATCH", `/constituent/v1/emailaddresses/${p11Address.id}`, { do_not_email: true }))
          .status,
      ).toBeLessThan(300);
      lagged.clock.advance(20 * 60_000);
      await lagged.api("PATCH", `/constituent/v1/constituents/${ids[6]}`, { first: "Renamed" });
      lagged.clock.advance(60_000);

      const pages: ReadPage[] = [];
      for await (const p of s.read(null, { full: true })) {
        if (!p.ok) throw new Error(p.error.message);
        pages.push(p.value);
      }
      // Saved within the lag: read from their current records, with a version.
      const fullRead = pages.flatMap((p) => p.records).find((r) => r.external_id === ids[5]);
      expect(fullRead?.emails.map((e) => e.address)).toContain("p5.new@example.org");
      expect(typeof fullRead?.version).toBe("string");
      const p11OptOut = pages
        .flatMap((p) => p.consent)
        .filter((o) => o.external_id === ids[11] && o.kind === "opt_out");
      expect(p11OptOut).not.toEqual([]);
      // Saved before the lag: from the lists, without a version.
      const older = pages.flatMap((p) => p.records).find((r) => r.external_id === ids[9]);
      expect(older?.version).toBeUndefined();
      const checkpoint = pages.at(-1)?.checkpoint;
      if (!checkpoint) throw new Error("no checkpoint");

      const next: ReadPage[] = [];
      for await (const p of s.read(checkpoint)) {
        if (!p.ok) throw new Error(p.error.message);
        next.push(p.value);
      }
      const reread = next.flatMap((p) => p.records).find((r) => r.external_id === ids[5]);
      expect(reread?.emails.map((e) => e.address)).toContain("p5.new@example.org");
    } finally {
      await lagged.close();
    }
  });
});

describe("an incremental read behind the constituent list's lag", () => {
  it("reads a change the list shows late, after newer changes moved the checkpoint past it; one it holds already, it does not read again", async () => {
    // SKY's constituent list shows changes "with an average latency of about 30 minutes": Ada's
    // shows 30 minutes late, the others' at once.
    let late = "";
    const f = await startEmulatorFixture("2026-03-02T12:00:00.000Z", {
      constituentListLatencyMs: (id) => (id === late ? 30 * 60_000 : 0),
    });
    try {
      const s = blackbaudRenxtManifest.connect(f.settings(), f.runtime);
      late = await f.createConstituent("ada@example.org", "Ada", "Late");
      const bo = await f.createConstituent("bo@example.org", "Bo", "Prompt");
      const cy = await f.createConstituent("cy@example.org", "Cy", "Earlier");
      const readFrom = async (checkpoint: Checkpoint | null, held?: Map<string, string>) => {
        const pages: ReadPage[] = [];
        for await (const p of s.read(checkpoint, held ? { held: async () => held } : {})) {
          if (!p.ok) throw new Error(p.error.message);
          pages.push(p.value);
        }
        const last = pages.at(-1)?.checkpoint;
        if (!last) throw new Error("no checkpoint");
        const records = pages.flatMap((p) => p.records);
        return { pages, records, checkpoint: last };
      };
      // 12:40 Cy is renamed; 13:00 a read.
      f.clock.advance(40 * 60_000);
      await f.api("PATCH", `/constituent/v1/constituents/${cy}`, { first: "Cyd" });
      f.clock.advance(20 * 60_000);
      const first = await readFrom(null);
      // 13:00 Ada asks for no email; 13:15 Bo is renamed; 13:20 a poll sees Bo, not Ada.
      await f.control("/__emulator/act", {
        as: "admin",
        action: "set_requests_no_email",
        constituent_id: late,
      });
      f.clock.advance(15 * 60_000);
      await f.api("PATCH", `/constituent/v1/constituents/${bo}`, { first: "Bob" });
      f.clock.advance(5 * 60_000);
      const poll = await readFrom(first.checkpoint);
      expect(poll.records.map((r) => r.external_id)).not.toContain(late);
      expect(Date.parse(poll.checkpoint.value)).toBeGreaterThan(Date.parse("2026-03-02T13:10:00Z"));
      // 13:40: the list shows Ada's change, dated 13:00, before the checkpoint's overlap.
      f.clock.advance(20 * 60_000);
      const version = (id: string) => poll.records.find((r) => r.external_id === id)?.version ?? "";
      const held = new Map([
        [bo, version(bo)],
        [cy, version(cy)],
      ]);
      const before = f.emu.kit.requests.length;
      const next = await readFrom(poll.checkpoint, held);
      const optOuts = next.records.length === 0 ? [] : next.pages.flatMap((p) => p.consent);
      expect(optOuts.filter((o) => o.kind === "opt_out").map((o) => o.external_id)).toEqual([late]);
      // Cy, listed again from before the overlap at the version held, is not read again.
      const calls = f.emu.kit.requests.slice(before).map((r) => r.path);
      expect(next.records.map((r) => r.external_id)).not.toContain(cy);
      expect(calls.filter((p) => p.includes(`/${cy}`))).toEqual([]);
    } finally {
      await f.close();
    }
  });
});
