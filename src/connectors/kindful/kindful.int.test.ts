/**
 * What the contract suite does not cover for Kindful: a query token Kindful forgot mid-read (the read
 * starts the query again and yields each contact once), the change feed (a contact is linked only
 * after its page was taken, and a changed contact comes back), and imports that match no contact.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { ConnectionSettings, ConnectorOperation, ConnectorRuntime, ReadPage } from "../connector";
import { postControl } from "../emulator-kit/world";
import { GLOBAL_OBSERVED } from "../../core/consent/system-consent";
import { kindfulManifest } from "./manifest";
import { customFieldScope } from "./mapping";
import { startKindfulEmulator, type StartedKindfulEmulator } from "./emulator/kindful-emulator";

describe("the Kindful connector", () => {
  let emulator: StartedKindfulEmulator;
  let clock = Date.parse("2026-06-01T12:00:00.000Z");
  let settings: ConnectionSettings;
  const runtime: ConnectorRuntime = {
    now: () => new Date(clock),
    sleep: async (ms) => {
      clock += ms;
      await new Promise((resolve) => setImmediate(resolve));
    },
  };

  beforeEach(async () => {
    emulator = await startKindfulEmulator({ now: () => new Date(clock) });
    const token = ((await postControl(emulator.baseUrl, "/__emulator/token", {})) as { token: string }).token;
    settings = {
      connection_id: "kindful-test",
      base_url: emulator.baseUrl,
      credentials: { get: async () => ({ api_token: token }), save: async () => {} },
    };
    await postControl(emulator.baseUrl, "/__emulator/seed", {
      contacts: Array.from({ length: 120 }, (_, i) => ({
        email: `p${i}@example.org`,
        first_name: `P${i}`,
        updated_at: new Date(clock).toISOString(),
      })),
    });
  });
  afterEach(async () => {
    await emulator.close();
  });
  /** The person's opt-out of the Appeals topic (its field "Yes"), from another system. */
  const appealsOptOut = (op_id: string): ConnectorOperation => ({
    kind: "record_opt_out",
    op_id,
    external_id: "1",
    email: "p0@example.org",
    scope: customFieldScope("No Appeals Email"),
    initiated_by: "contact",
    occurred_at: new Date(clock).toISOString(),
    origin: { system: "mailchimp", connection: "mc", mechanism: "unsubscribe_link" },
  });
  /** The connection with the Appeals topic's opt-out field, named as the config spells it. */
  const withAppealsField = (): ConnectionSettings => ({
    ...settings,
    constructs: [{ type: "custom_field", name: "No Appeals Email" }],
  });

  const readAll = async (checkpoint: ReadPage["checkpoint"] | null, between?: () => void) => {
    const pages: ReadPage[] = [];
    for await (const page of kindfulManifest.connect(settings, runtime).read(checkpoint)) {
      if (!page.ok) throw new Error(page.error.message);
      pages.push(page.value);
      between?.();
      // Stored, as the engine says once the page's transaction commits.
      const stored = await page.value.stored?.();
      if (stored !== undefined && !stored.ok) throw new Error(stored.error.message);
    }
    return pages;
  };

  it("a query token forgotten while a page was being stored: the query starts again and every contact comes once", async () => {
    let n = 0;
    // The store takes six minutes over the first page: Kindful forgets the token (five idle minutes).
    const pages = await readAll(null, () => {
      if (n++ === 0) clock += 6 * 60_000;
    });
    const ids = pages.flatMap((p) => p.records.map((r) => r.external_id));
    expect(ids.length).toBe(120);
    expect(new Set(ids).size).toBe(120);
    // The first page, the forgotten token's refusal, then the three pages of the query started again.
    const queries = emulator.kit.requests.filter((r) => r.path.startsWith("/api/v1/contacts/query"));
    expect(queries.map((r) => r.status)).toEqual([200, 400, 200, 200, 200]);
  });

  it("links each page only once it is stored, reads nothing again, and brings back a contact that changed", async () => {
    // Pages taken but not stored (the engine fetches one page ahead): nobody is linked.
    const unstored: ReadPage[] = [];
    for await (const page of kindfulManifest.connect(settings, runtime).read(null))
      if (page.ok) unstored.push(page.value);
    expect(unstored.flatMap((p) => p.records)).toHaveLength(120);
    expect([...emulator.contacts.values()].every((c) => c.external_id === null)).toBe(true);
    const pages = await readAll(null);
    const checkpoint = pages.at(-1)!.checkpoint;
    expect([...emulator.contacts.values()].every((c) => c.external_id !== null)).toBe(true);
    expect((await readAll(checkpoint)).flatMap((p) => p.records)).toEqual([]);
    await postControl(emulator.baseUrl, "/__emulator/act", {
      action: "update_contact",
      contact_id: 7,
      changes: { email_opt_in: "No" },
    });
    const again = await readAll(checkpoint);
    expect(again.flatMap((p) => p.records.map((r) => r.external_id))).toEqual(["7"]);
    expect(again.flatMap((p) => p.consent).map((o) => [o.kind, o.scope.kind])).toEqual([
      ["opt_out", "global"],
    ]);
  });

  it("every contact of a feed is read in one read even when Kindful pages the live feed, which linking shrinks", async () => {
    await emulator.close();
    emulator = await startKindfulEmulator({ now: () => new Date(clock), live_paging: true });
    const token = ((await postControl(emulator.baseUrl, "/__emulator/token", {})) as { token: string }).token;
    settings = {
      ...settings,
      base_url: emulator.baseUrl,
      credentials: { get: async () => ({ api_token: token }), save: async () => {} },
    };
    await postControl(emulator.baseUrl, "/__emulator/seed", {
      contacts: Array.from({ length: 120 }, (_, i) => ({
        email: `p${i}@example.org`,
        updated_at: new Date(clock).toISOString(),
      })),
    });
    const checkpoint = (await readAll(null)).at(-1)!.checkpoint;
    // 100 people opt out between two polls: the next read sees every one of them.
    for (let id = 1; id <= 100; id += 1)
      await postControl(emulator.baseUrl, "/__emulator/act", {
        action: "update_contact",
        contact_id: id,
        changes: { email_opt_in: "No" },
      });
    const read = await readAll(checkpoint);
    expect(read.flatMap((p) => p.consent).filter((o) => o.kind === "opt_out")).toHaveLength(100);
    expect(new Set(read.flatMap((p) => p.records.map((r) => r.external_id))).size).toBe(100);
  });

  it("an update for a contact Kindful does not have is not_found; a create for an address it has finds that contact", async () => {
    const outcomes = await kindfulManifest.connect(settings, runtime).apply([
      { kind: "update_contact", op_id: "u1", external_id: "99999", last_name: "Nobody" },
      { kind: "create_contact", op_id: "c1", email: "p3@example.org", kind_of_record: "individual" },
    ]);
    expect(outcomes.map((o) => [o.status, o.code ?? null, o.external_id ?? null])).toEqual([
      ["failed", "not_found", null],
      ["succeeded", "already_applied", "4"],
    ]);
  });

  it("an opt-out is written by the import alone: a contact read that answers 404 does not stop it", async () => {
    // The targeted read of a contact is not among Kindful's documented endpoints: whatever it
    // answers, an opt-out goes on by the documented import, and the import row says who changed.
    await postControl(emulator.baseUrl, "/__emulator/faults", {
      status: 404,
      count: 10,
      path_prefix: "/api/v1/contacts/1",
      methods: ["GET"],
    });
    const [outcome] = await kindfulManifest.connect(settings, runtime).apply([
      {
        kind: "record_opt_out",
        op_id: "o1",
        external_id: "1",
        email: "p0@example.org",
        scope: GLOBAL_OBSERVED,
        initiated_by: "contact",
        occurred_at: new Date(clock).toISOString(),
        origin: { system: "mailchimp", connection: "mc", mechanism: "unsubscribe_link" },
      },
    ]);
    expect(outcome).toMatchObject({ status: "succeeded", external_id: "1" });
    expect(emulator.contacts.get(1)?.email_opt_in).toBe("No");
  });

  it("refuses a profile update of a topic's opt-out field, however its name is written: only consent writes it", async () => {
    const topical = withAppealsField();
    const [outcome] = await kindfulManifest.connect(topical, runtime).apply([
      {
        kind: "update_contact",
        op_id: "u1",
        external_id: "1",
        fields: { "custom_field:no appeals email": "No" },
      },
    ]);
    expect(outcome).toMatchObject({
      status: "failed",
      code: "validation_failed",
      message: expect.stringContaining("topic's opt-out field"),
    });
  });

  it("writes a topic's opt-out under the field's name as Kindful spells it, not the config's, in a later session of the connection too", async () => {
    const topical = withAppealsField();
    emulator.contacts.get(1)!.custom_fields["No appeals email"] = "No";
    // The engine reads in one session and writes in the next, both of the same connection.
    const connection = { ...runtime };
    const reading = kindfulManifest.connect(topical, connection);
    for await (const page of reading.read(null)) if (!page.ok) throw new Error(page.error.message);
    const session = kindfulManifest.connect(topical, connection);
    const [outcome] = await session.apply([appealsOptOut("t1")]);
    expect(outcome).toMatchObject({ status: "succeeded" });
    expect(emulator.contacts.get(1)?.custom_fields).toEqual({ "No appeals email": "Yes" });
  });

  it("an opt-in planned over no opt-out leaves an opt-out made since in place; one planned over it clears it", async () => {
    const session = kindfulManifest.connect(settings, runtime);
    const origin = { system: "mailchimp", connection: "mc", mechanism: "signup_form" as const };
    await session.apply([
      {
        kind: "record_opt_out",
        op_id: "out",
        external_id: "1",
        email: "p0@example.org",
        scope: GLOBAL_OBSERVED,
        initiated_by: "account",
        occurred_at: new Date(clock).toISOString(),
        origin: { ...origin, mechanism: "admin_edit" },
      },
    ]);
    const optIn = (read_opted_out: boolean) =>
      session.apply([
        {
          kind: "record_opt_in",
          op_id: `in_${read_opted_out}`,
          external_id: "1",
          scope: GLOBAL_OBSERVED,
          occurred_at: new Date(clock).toISOString(),
          read_opted_out,
          origin: { ...origin, actor: "contact" },
        },
      ]);
    expect((await optIn(false))[0]).toMatchObject({ status: "skipped", code: "conflict" });
    expect(emulator.contacts.get(1)?.email_opt_in).toBe("No");
    expect((await optIn(true))[0]).toMatchObject({ status: "succeeded", external_id: "1" });
    expect(emulator.contacts.get(1)?.email_opt_in).toBe("Yes");
  });

  it("a topic's opt-out before any read of the connection learns the field's spelling from the contact", async () => {
    emulator.contacts.get(1)!.custom_fields["No appeals email"] = "No";
    const topical = withAppealsField();
    // A connection just opened (a process restarted): no read has shown the spelling yet.
    const [outcome] = await kindfulManifest
      .connect(topical, { ...runtime })
      .apply([appealsOptOut("t_first")]);
    expect(outcome).toMatchObject({ status: "succeeded" });
    expect(emulator.contacts.get(1)?.custom_fields).toEqual({ "No appeals email": "Yes" });
  });

  it("a topic opt-in whose contact answer carries no custom fields waits: nothing read is not opted in", async () => {
    emulator.contacts.get(1)!.custom_fields["No appeals email"] = "Yes";
    const topical = withAppealsField();
    const optIn = () =>
      kindfulManifest.connect(topical, runtime).apply([
        {
          kind: "record_opt_in",
          op_id: "in_topic",
          external_id: "1",
          scope: customFieldScope("No Appeals Email"),
          occurred_at: new Date(clock).toISOString(),
          read_opted_out: true,
          origin: { system: "mailchimp", connection: "mc", mechanism: "preference_page", actor: "contact" },
        },
      ]);
    // The contact as a GET may answer it: its columns, no custom fields.
    await postControl(emulator.baseUrl, "/__emulator/faults", {
      status: 200,
      count: 1,
      path_prefix: "/api/v1/contacts/1",
      methods: ["GET"],
      body: {
        id: 1,
        email: "p0@example.org",
        email_opt_in: "Yes",
        updated_at: new Date(clock).toISOString(),
      },
    });
    const [waiting] = await optIn();
    expect(waiting).toMatchObject({ status: "deferred", code: "bad_response" });
    expect(waiting?.message).toContain('custom fields (the topic\'s "No Appeals Email")');
    expect(emulator.contacts.get(1)?.custom_fields).toEqual({ "No appeals email": "Yes" });
    // An answer that shows the field: written.
    expect((await optIn())[0]).toMatchObject({ status: "succeeded", external_id: "1" });
    expect(emulator.contacts.get(1)?.custom_fields).toEqual({ "No appeals email": "No" });
  });

  it("a create that meets a contact made since the address was looked up leaves it as it is, opted out, and takes it", async () => {
    await postControl(emulator.baseUrl, "/__emulator/act", {
      action: "update_contact",
      contact_id: 1,
      changes: { email_opt_in: "No" },
    });
    // The lookup answered before the contact was there (another process made it meanwhile).
    await postControl(emulator.baseUrl, "/__emulator/faults", {
      status: 200,
      count: 1,
      path_prefix: "/api/v1/contacts/email_exist",
      methods: ["GET"],
      body: { exist: false, ids: [] },
    });
    const before = emulator.contacts.size;
    const [outcome] = await kindfulManifest
      .connect(settings, runtime)
      .apply([
        { kind: "create_contact", op_id: "c2", email: "p0@example.org", kind_of_record: "individual" },
      ]);
    expect(outcome).toMatchObject({ status: "succeeded", external_id: "1" });
    expect(emulator.contacts.size).toBe(before);
    expect(emulator.contacts.get(1)?.email_opt_in).toBe("No");
  });

  it("an update Kindful answers by making a new contact is not done: the contact meant is gone", async () => {
    await postControl(emulator.baseUrl, "/__emulator/faults", {
      status: 200,
      count: 1,
      path_prefix: "/api/v1/imports",
      methods: ["POST"],
      body: { id: 77, status: "complete", results: [{ row: 0, contact_id: 500, status: "created" }] },
    });
    const [outcome] = await kindfulManifest
      .connect(settings, runtime)
      .apply([{ kind: "update_contact", op_id: "u2", external_id: "99999", last_name: "Nobody" }]);
    expect(outcome).toMatchObject({
      status: "failed",
      code: "not_found",
      message: expect.stringContaining("made a new contact (500)"),
    });
  });

  it("an import row answered with a status Concord does not know is no write: an opt-out stays to do", async () => {
    await postControl(emulator.baseUrl, "/__emulator/faults", {
      status: 200,
      count: 1,
      path_prefix: "/api/v1/imports",
      methods: ["POST"],
      body: { id: 78, status: "complete", results: [{ row: 0, contact_id: 1, status: "skipped" }] },
    });
    const [outcome] = await kindfulManifest.connect(settings, runtime).apply([
      {
        kind: "record_opt_out",
        op_id: "o-skip",
        external_id: "1",
        email: "p0@example.org",
        scope: { kind: "global" },
        initiated_by: "contact",
        occurred_at: runtime.now().toISOString(),
        origin: { system: "constant-contact", connection: "cc", mechanism: "unsubscribe_link" },
      },
    ]);
    // Kept and tried again, never reported as applied.
    expect(outcome).toMatchObject({
      status: "deferred",
      code: "bad_response",
      message: expect.stringContaining('status "skipped"'),
    });
    expect(emulator.contacts.get(1)?.email_opt_in).not.toBe("No");
  });

  it("a create Kindful answers by updating the contact it matched is not done, and says so", async () => {
    await postControl(emulator.baseUrl, "/__emulator/faults", {
      status: 200,
      count: 1,
      path_prefix: "/api/v1/imports",
      methods: ["POST"],
      body: { id: 79, status: "complete", results: [{ row: 0, contact_id: 1, status: "updated" }] },
    });
    const [outcome] = await kindfulManifest
      .connect(settings, runtime)
      .apply([
        { kind: "create_contact", op_id: "c3", email: "new-one@example.org", kind_of_record: "individual" },
      ]);
    expect(outcome).toMatchObject({
      status: "failed",
      code: "conflict",
      message: expect.stringContaining("updated it instead of leaving it as it was"),
    });
  });

  it("a group change whose import refused some rows fails, naming them; the rows it took are changed", async () => {
    const seeded = (await postControl(emulator.baseUrl, "/__emulator/seed", {
      groups: [{ name: "Newsletter" }],
    })) as { groups: { id: number }[] };
    const group = String(seeded.groups[0]!.id);
    const [outcome] = await kindfulManifest
      .connect(settings, runtime)
      .apply([{ kind: "add_list_members", op_id: "g1", list_ids: [group], external_ids: ["1", "99999"] }]);
    expect(outcome).toMatchObject({
      status: "failed",
      code: "validation_failed",
      message: expect.stringMatching(/1 of 2 contact\(s\): 99999 \(no contact with id 99999\)/),
    });
    expect([...emulator.groups.get(Number(group))!.members]).toEqual([1]);
  });

  it("a group change whose update row Kindful answered by making a new contact fails for that contact: its membership did not change", async () => {
    const seeded = (await postControl(emulator.baseUrl, "/__emulator/seed", {
      groups: [{ name: "Appeals" }],
    })) as { groups: { id: number }[] };
    const group = String(seeded.groups[0]!.id);
    await postControl(emulator.baseUrl, "/__emulator/faults", {
      status: 200,
      count: 1,
      path_prefix: "/api/v1/imports",
      methods: ["POST"],
      body: {
        id: 78,
        status: "complete",
        results: [
          { row: 0, contact_id: 1, status: "updated" },
          { row: 1, contact_id: 501, status: "created" },
        ],
      },
    });
    const [outcome] = await kindfulManifest
      .connect(settings, runtime)
      .apply([{ kind: "remove_list_members", op_id: "g2", list_ids: [group], external_ids: ["1", "99998"] }]);
    expect(outcome).toMatchObject({
      status: "failed",
      code: "validation_failed",
      message: expect.stringContaining("1 of 2 contact(s): 99998 (gone: Kindful made contact 501)"),
    });
  });
});
