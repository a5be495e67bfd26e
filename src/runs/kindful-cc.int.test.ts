/**
 * Seed 002 (Kindful ⇄ Constant Contact), behaviour by behaviour, over the Kindful and Constant
 * Contact emulators, with what Concord does instead where Kindful's own integration falls short
 * (docs/kindful.md lists each statement).
 */
import { sql } from "kysely";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { StartedKindfulEmulator } from "../connectors/kindful/emulator/kindful-emulator";
import type { WorldPerson } from "../connectors/emulator-kit/world";
import { ACCOUNT_OBSERVED, shownConsent } from "../core/consent/system-consent";
import { startEmulatedWorld, type EmulatedWorld } from "../emulated-world/emulated-world";
import { eventsForContact } from "../ledger/consent-ledger";
import type { Store } from "../store/ports";
import { createFakeClock } from "../../test/support/fake-clock";
import { sqliteBackend } from "../../test/support/sync-harness";
import type { TestStore } from "../../test/support/store-backends";
import { TEST_KEY } from "../../test/support/test-credentials";
import { syncPair } from "./sync-pair";
import { pairWorld } from "../../test/support/pair-world";

const T0 = "2026-05-01T09:00:00.000Z";
const person = (id: string, name: string, extra: Partial<WorldPerson> = {}): WorldPerson => ({
  id,
  kind: "individual",
  first: name,
  last: "Example",
  email: { address: `${name.toLowerCase()}@example.org` },
  added_at: T0,
  modified_at: T0,
  ...extra,
});

describe("Kindful ⇄ Constant Contact (seed 002)", () => {
  let world: EmulatedWorld;
  let testStore: TestStore;
  let store: Store;
  const clock = createFakeClock("2026-06-01T12:00:00.000Z");
  const ids = new Map<string, string>();

  const start = async (pair: Record<string, unknown> = {}) => {
    world = await startEmulatedWorld({
      connections: [
        { id: "kindful", system: "kindful" },
        { id: "cc-main", system: "constant-contact", emulator: { rateLimitPerSecond: null } },
        { id: "cc-appeals", system: "constant-contact", emulator: { rateLimitPerSecond: null } },
      ],
      config: {
        topics: [
          {
            key: "appeals",
            label: "Fundraising appeals",
            constructs: {
              kindful: { type: "custom_field", name: "No appeals email" },
              "cc-appeals": { type: "account" },
            },
          },
        ],
        pairs: [
          {
            id: "kindful-cc",
            crm: "kindful",
            platforms: [{ connection: "cc-main", max_tld_length: 3 }, { connection: "cc-appeals" }],
            list_sync: [
              {
                platform: "cc-main",
                crm_lists: { names: ["Newsletter", "Volunteers", "Gala"] },
                direction: "both",
                on_rename: "rename",
                on_delete: "delete_platform_list",
              },
            ],
            fields: [
              { canonical: "first_name", crm: "first_name", platform: "first_name", owner: "crm" },
              { canonical: "last_name", crm: "last_name", platform: "last_name", owner: "crm" },
              { canonical: "company", crm: "company_name", platform: "company_name", owner: "crm" },
            ],
            ...pair,
          },
        ],
      },
      store,
      key: TEST_KEY,
      now: clock.now,
      sleep: async (ms) => {
        clock.advance(ms);
        await new Promise((resolve) => setImmediate(resolve));
      },
    });
    const people = [
      person("ada", "Ada"),
      person("bob", "Bob"),
      person("cy", "Cy", { email: { address: "cy@example.guru" } }),
      person("di", "Di", { opted_out_of_all_email: true }),
      // Only an alternate address: Kindful's primary email is the one that syncs (seed 002).
      (({ email: _primary, ...ed }) => ({
        ...ed,
        other_emails: [{ address: "ed@example.org", label: "alt" }],
      }))(person("ed", "Ed")),
      person("acme", "Acme", {
        kind: "organisation",
        organisation_name: "Acme Trust",
        first: "Fay",
        last: "Owner",
      }),
      person("gil", "Gil"),
    ];
    const seeded = await world.seed("kindful", {
      people,
      lists: [
        { id: "news", name: "Newsletter", members: ["ada", "bob", "cy", "di", "ed", "acme"] },
        { id: "board", name: "Board", members: ["gil"] },
        { id: "gala", name: "Gala", members: [] },
      ],
    });
    people.forEach((p, i) => ids.set(p.id, seeded.records[i]!));
  };

  beforeEach(async () => {
    testStore = await sqliteBackend().create({ clock: clock.now });
    store = testStore.store;
  });
  afterEach(async () => {
    await world.close();
    await testStore.cleanup();
  });

  const { sync, firstLoad, contactOf, recordIn, listsOf } = pairWorld(
    () => world,
    () => store,
    clock,
    { connection: "kindful", idOf: (name) => ids.get(name) },
  );
  const ccLists = () => listsOf("cc-main");
  const kindful = () => world.emulator("kindful").native as StartedKindfulEmulator;
  const kContact = (name: string) => kindful().contacts.get(Number(ids.get(name)));
  const listNamed = async (name: string) => (await ccLists()).find((l) => l.name === name);

  it("K1. syncs only the groups the pair selects, never an empty one, and only contacts that meet the sync rules, each skip with its reason", async () => {
    await start();
    const report = await firstLoad();
    const names = (await ccLists()).map((l) => l.name);
    expect(names).toContain("Newsletter");
    // "Board" is not selected (Kindful's own integration syncs every group); "Gala" is empty.
    expect(names).not.toContain("Board");
    expect(names).not.toContain("Gala");
    expect(await recordIn("cc-main", "gil")).toBeUndefined();

    const news = await listNamed("Newsletter");
    for (const name of ["ada", "bob", "acme"]) {
      const r = await recordIn("cc-main", name);
      expect(r?.list_ids, name).toEqual([news!.external_id]);
      expect(shownConsent(r!.consent_state, ACCOUNT_OBSERVED), name).toBe("opt_in");
    }
    // A top-level domain longer than three letters, Integration Email Opt-in: No, an alternate email only.
    for (const name of ["cy", "di", "ed"]) expect(await recordIn("cc-main", name), name).toBeUndefined();
    const skipped = report.plan?.skipped.filter((s) => s.connection_id === "cc-main") ?? [];
    const reasonsOf = async (name: string) => {
      const id = await contactOf(name);
      return skipped.filter((s) => s.contact_id === id).flatMap((s) => s.reasons.map((r) => r.code));
    };
    expect(await reasonsOf("di")).toContain("opted_out");
    // Constant Contact refuses a top-level domain longer than three letters (the pair's max_tld_length).
    expect(await reasonsOf("cy")).toContain("rejected_by_platform");
    expect((await reasonsOf("ed")).length, "ed has only an alternate email").toBeGreaterThan(0);
  });

  it("K2. an organisation keeps its company name, and first and last name stay those of its contact person", async () => {
    await start();
    await firstLoad();
    const r = await recordIn("cc-main", "acme");
    expect(r?.fields["company_name"]).toBe("Acme Trust");
    expect(r?.first_name).toBe("Fay");
    expect(r?.last_name).toBe("Owner");
  });

  /** Bob is also on the appeals account, which stands for the Appeals topic. */
  const bobOnAppeals = () =>
    world.seed("cc-appeals", {
      contacts: [
        {
          id: "3f0c9a52-7d1e-4b8a-9c2f-5e6d7a8b9c01",
          email: "bob@example.org",
          added_by: "contact",
          added_at: T0,
          modified_at: T0,
          subscription: { status: "subscribed", explicit: true },
          list_ids: [],
        },
      ],
    });

  it("K3. an unsubscribe from all email sets Integration Email Opt-in to No; one from the account that stands for a topic sets only that topic's field", async () => {
    await start();
    await bobOnAppeals();
    await firstLoad();
    await world.act("cc-main", { as: "contact", action: "unsubscribe", email: "ada@example.org" });
    await world.act("cc-appeals", { as: "contact", action: "unsubscribe", email: "bob@example.org" });
    clock.advance(1_000);
    await sync();
    expect(kContact("ada")?.email_opt_in).toBe("No");
    expect(kContact("bob")?.email_opt_in).toBe("Yes");
    expect(kContact("bob")?.custom_fields["No appeals email"]).toBe("Yes");
    // Bob still gets the newsletter; Ada gets nothing from either account.
    expect(shownConsent((await recordIn("cc-main", "bob"))!.consent_state, ACCOUNT_OBSERVED)).toBe("opt_in");
    expect(shownConsent((await recordIn("cc-appeals", "bob"))!.consent_state, ACCOUNT_OBSERVED)).toBe(
      "opt_out",
    );
  });

  it("K3. staff setting a topic's field in Kindful is that topic's opt-out: the account that stands for it follows, the newsletter stays", async () => {
    await start();
    await bobOnAppeals();
    await firstLoad();
    // The field is read from Kindful's query, which returns custom fields only when asked for them.
    await world.act("kindful", {
      as: "admin",
      action: "record_consent",
      id: "bob",
      topic: "No appeals email",
      response: "opt_out",
      source: "Phone call",
    });
    clock.advance(1_000);
    await sync();
    expect(shownConsent((await recordIn("cc-appeals", "bob"))!.consent_state, ACCOUNT_OBSERVED)).toBe(
      "opt_out",
    );
    expect(shownConsent((await recordIn("cc-main", "bob"))!.consent_state, ACCOUNT_OBSERVED)).toBe("opt_in");
  });

  it("K3. Integration Email Opt-in: No is one opt-out however often the contact is edited after it", async () => {
    await start();
    await firstLoad();
    const optOuts = async () =>
      (await eventsForContact(store, await contactOf("di"))).filter(
        (e) => e.event.source.connection === "kindful" && e.event.kind === "opt_out",
      ).length;
    expect(await optOuts()).toBe(1);
    // Staff correct Di's name twice: the contact's updated_at moves each time, her opt-out does not.
    for (const first of ["Diana", "Dina"]) {
      clock.advance(3_600_000);
      await world.act("kindful", { as: "admin", action: "update_name", id: "di", first });
      await sync();
    }
    expect(await optOuts()).toBe(1);
  });

  it("K3. an opt-out read from Kindful whose page could not be stored is read again at the next poll, never lost", async () => {
    await start();
    await firstLoad();
    await world.act("kindful", { as: "admin", action: "opt_out_of_all_email", id: "ada" });
    clock.advance(1_000);
    // The store cannot take the page (here: its ledger table is gone for one run).
    await sql`alter table consent_events rename to consent_events_away`.execute(store.db);
    try {
      await expect(sync()).rejects.toThrow(/consent_events/);
    } finally {
      await sql`alter table consent_events_away rename to consent_events`.execute(store.db);
    }
    // Kindful was not told the page was stored: Ada is still in its change feed.
    await sync();
    expect(shownConsent((await recordIn("cc-main", "ada"))!.consent_state, ACCOUNT_OBSERVED)).toBe("opt_out");
  });

  it("K4. changing the primary email in Kindful moves the same Constant Contact contact: no second contact", async () => {
    await start();
    await firstLoad();
    const before = await recordIn("cc-main", "ada");
    await world.act("kindful", {
      as: "admin",
      action: "change_primary_email",
      id: "ada",
      address: "ada.new@example.org",
    });
    clock.advance(1_000);
    await sync();
    const after = await recordIn("cc-main", "ada");
    expect(after?.external_id).toBe(before?.external_id);
    expect(after?.emails.map((e) => e.address)).toEqual(["ada.new@example.org"]);
  });

  it("K5. a field Kindful owns wins over a later change in Constant Contact (no updated_at race)", async () => {
    await start();
    await firstLoad();
    await world.act("kindful", { as: "admin", action: "update_name", id: "bob", last: "Kindful" });
    clock.advance(5_000);
    const cc = await recordIn("cc-main", "bob");
    const applied = await world.connections
      .get("cc-main")!
      .session()
      .apply([
        { kind: "update_contact", op_id: "admin-edit", external_id: cc!.external_id, last_name: "Changed" },
      ]);
    expect(applied[0]?.status).toBe("succeeded");
    clock.advance(1_000);
    await sync();
    expect(kContact("bob")?.last_name).toBe("Kindful");
    expect((await recordIn("cc-main", "bob"))?.last_name).toBe("Kindful");
  });

  it("K6. renaming a group renames its list; deleting it deletes the list, never its people; leaving a list in Constant Contact keeps the group", async () => {
    await start();
    await firstLoad();
    const news = await listNamed("Newsletter");
    const groupId = [...kindful().groups.values()].find((g) => g.name === "Newsletter")!.id;
    // Someone removed from the list in Constant Contact stays in the Kindful group (seed 002's rule).
    const bobCc = await recordIn("cc-main", "bob");
    await world.connections
      .get("cc-main")!
      .session()
      .apply([
        {
          kind: "remove_list_members",
          op_id: "admin-remove",
          list_ids: [news!.external_id],
          external_ids: [bobCc!.external_id],
        },
      ]);
    clock.advance(1_000);
    await sync();
    expect(
      kindful()
        .groups.get(groupId)
        ?.members.has(Number(ids.get("bob"))),
    ).toBe(true);

    await world.act("kindful", { as: "admin", action: "add_to_list", id: "gil", list_id: "news" });
    await postAct("rename_group", { group_id: groupId, name: "Volunteers" });
    clock.advance(1_000);
    await sync();
    expect((await ccLists()).find((l) => l.external_id === news!.external_id)?.name).toBe("Volunteers");
    expect((await recordIn("cc-main", "gil"))?.list_ids).toEqual([news!.external_id]);

    await postAct("delete_group", { group_id: groupId });
    clock.advance(1_000);
    await sync();
    expect((await ccLists()).find((l) => l.external_id === news!.external_id)).toBeUndefined();
    expect(await recordIn("cc-main", "ada")).toBeDefined();
  });

  it("K7. creates Kindful contacts from Constant Contact only for subscribed people in a list mapped towards Kindful", async () => {
    await start({
      audiences: [
        {
          crm_list: { name: "Board" },
          platform: "cc-main",
          platform_list: { name: "Sign-ups" },
          direction: "platform_to_crm",
        },
      ],
      policies: { create_in_crm: true },
    });
    await world.seed("cc-main", { lists: [{ id: "signups", name: "Sign-ups" }] });
    const signups = (await listNamed("Sign-ups"))!.external_id;
    const contact = (email: string, status: "subscribed" | "unsubscribed", listIds: string[]) => ({
      id: crypto.randomUUID(),
      email,
      added_by: "contact" as const,
      added_at: T0,
      modified_at: T0,
      subscription:
        status === "subscribed" ? { status, explicit: true } : { status, by: "contact" as const, at: T0 },
      list_ids: listIds,
    });
    await world.seed("cc-main", {
      contacts: [
        contact("new.subscriber@example.org", "subscribed", [signups]),
        contact("new.unsubscribed@example.org", "unsubscribed", [signups]),
        contact("no.list@example.org", "subscribed", []),
      ],
    });
    await sync();
    const emails = [...kindful().contacts.values()].map((c) => c.email);
    expect(emails).toContain("new.subscriber@example.org");
    expect(emails).not.toContain("new.unsubscribed@example.org");
    expect(emails).not.toContain("no.list@example.org");
    const made = [...kindful().contacts.values()].find((c) => c.email === "new.subscriber@example.org")!;
    expect(made.email_opt_in).toBe("Yes");

    // Kindful says the address exists but names no contact: no second contact is made.
    await world.seed("cc-main", {
      contacts: [contact("second.subscriber@example.org", "subscribed", [signups])],
    });
    const res = await fetch(`${world.emulator("kindful").origin}/__emulator/faults`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        status: 200,
        body: { exist: true },
        count: 1,
        path_prefix: "/api/v1/contacts/email_exist",
      }),
    });
    expect(res.status).toBe(200);
    clock.advance(1_000);
    const refused = await sync();
    expect([...kindful().contacts.values()].map((c) => c.email)).not.toContain(
      "second.subscriber@example.org",
    );
    expect(refused.execution?.rejections).toContainEqual(
      expect.objectContaining({
        connection_id: "kindful",
        code: "conflict",
        message: expect.stringContaining("names none"),
      }),
    );
  });

  const postAct = async (action: string, body: Record<string, unknown>) => {
    const res = await fetch(`${world.emulator("kindful").origin}/__emulator/act`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ action, ...body }),
    });
    expect(res.status, await res.clone().text()).toBe(200);
  };
});

describe("Kindful ⇄ Mailchimp: deliverability from the platform", () => {
  it("K8. an address Mailchimp cleaned is marked Email Deliverable: No in Kindful, and is no opt-out", async () => {
    const clock = createFakeClock("2026-06-01T12:00:00.000Z");
    const testStore = await sqliteBackend().create({ clock: clock.now });
    const store = testStore.store;
    const world = await startEmulatedWorld({
      connections: [
        { id: "kindful", system: "kindful" },
        { id: "mc-main", system: "mailchimp", emulator: { autoDeliverWebhooks: false } },
      ],
      config: {
        pairs: [
          {
            id: "kindful-mc",
            crm: "kindful",
            platforms: [{ connection: "mc-main" }],
            audiences: [
              {
                crm_list: { name: "Newsletter" },
                platform: "mc-main",
                platform_list: { name: "Newsletter" },
              },
            ],
          },
        ],
      },
      store,
      key: TEST_KEY,
      now: clock.now,
      sleep: async (ms) => {
        clock.advance(ms);
        await new Promise((resolve) => setImmediate(resolve));
      },
    });
    try {
      const seeded = await world.seed("kindful", {
        people: [person("ada", "Ada")],
        lists: [{ id: "news", name: "Newsletter", members: ["ada"] }],
      });
      await world.seed("mc-main", { lists: [{ id: "news", name: "Newsletter" }] });
      const sync = async () => {
        const r = await syncPair(
          { store, config: world.config, connections: world.connections, now: clock.now },
          world.config.pairs[0]!,
        );
        clock.advance(60_000);
        return r;
      };
      await sync();
      const res = await fetch(`${world.emulator("mc-main").origin}/__emulator/act`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ as: "system", action: "bounce", email: "ada@example.org" }),
      });
      expect(res.status).toBe(200);
      clock.advance(1_000);
      const report = await sync();
      expect(report.plan?.operations.map((o) => o.reason.code)).toContain("undeliverable_to_crm");
      const ada = (world.emulator("kindful").native as StartedKindfulEmulator).contacts.get(
        Number(seeded.records[0]),
      );
      expect(ada?.email_deliverable).toBe("No");
      expect(ada?.email_opt_in).toBe("Yes");
      // Written once: the next run finds the field already says so.
      const again = await sync();
      expect(again.plan?.operations.map((o) => o.reason.code) ?? []).not.toContain("undeliverable_to_crm");
    } finally {
      await world.close();
      await testStore.cleanup();
    }
  });
});
