/**
 * Seed 004 (GrowthZone ⇄ Constant Contact), behaviour by behaviour, over the GrowthZone and
 * Constant Contact emulators, with what Concord does instead where it differs (docs/growthzone.md
 * lists each statement). The seed behaviours every pair shares run for GrowthZone with Constant
 * Contact and with Mailchimp in seed-behaviours.int.test.ts.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { StartedGrowthZoneEmulator } from "../connectors/growthzone/emulator/growthzone-emulator";
import type { WorldPerson } from "../connectors/emulator-kit/world";
import { ACCOUNT_OBSERVED, shownConsent } from "../core/consent/system-consent";
import { startEmulatedWorld, type EmulatedWorld } from "../emulated-world/emulated-world";
import { eventsForContact } from "../ledger/consent-ledger";
import { explainContactById } from "../explain/explain-by-id";
import type { Store } from "../store/ports";
import { createFakeClock } from "../../test/support/fake-clock";
import { sqliteBackend } from "../../test/support/sync-harness";
import type { TestStore } from "../../test/support/store-backends";
import { TEST_KEY } from "../../test/support/test-credentials";
import { pairWorld } from "../../test/support/pair-world";
import { syncPair } from "./sync-pair";

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

describe("GrowthZone ⇄ Constant Contact (seed 004)", () => {
  let world: EmulatedWorld;
  let testStore: TestStore;
  let store: Store;
  const clock = createFakeClock("2026-06-01T12:00:00.000Z");
  const ids = new Map<string, string>();

  beforeEach(async () => {
    testStore = await sqliteBackend().create({ clock: clock.now });
    store = testStore.store;
    world = await startEmulatedWorld({
      connections: [
        {
          id: "growthzone",
          system: "growthzone",
          emulator: { ratePerSecond: null },
          config: { limits: { requests_per_second: 1000 } },
        },
        { id: "cc-main", system: "constant-contact", emulator: { rateLimitPerSecond: null } },
        { id: "cc-appeals", system: "constant-contact", emulator: { rateLimitPerSecond: null } },
      ],
      config: {
        topics: [
          {
            key: "appeals",
            label: "Fundraising appeals",
            constructs: { growthzone: { type: "list", name: "Appeals" }, "cc-appeals": { type: "account" } },
          },
        ],
        pairs: [
          {
            id: "growthzone-cc",
            crm: "growthzone",
            platforms: [{ connection: "cc-main" }, { connection: "cc-appeals" }],
            list_sync: [
              {
                platform: "cc-main",
                crm_lists: { newsletter_sync: true },
                direction: "crm_to_platform",
                delete_policy: "remove_membership",
                on_delete: "delete_platform_list",
              },
            ],
            audiences: [
              { crm_list: { name: "Appeals" }, platform: "cc-appeals", platform_list: { name: "Appeals" } },
            ],
            fields: [
              { canonical: "first_name", crm: "FirstName", platform: "first_name", owner: "crm" },
              { canonical: "last_name", crm: "LastName", platform: "last_name", owner: "crm" },
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
    const people = [
      person("ada", "Ada"),
      person("bob", "Bob"),
      person("cy", "Cy", { opted_out_of_all_email: true }),
      (({ email: _primary, ...noEmail }) => noEmail)(person("di", "Di")),
      person("ed", "Ed"),
    ];
    const seeded = await world.seed("growthzone", {
      people,
      lists: [
        { id: "chamber", name: "Chamber news", members: ["ada", "bob", "cy", "di"] },
        { id: "board", name: "Board committee", members: ["ed"] },
        { id: "appeals", name: "Appeals", members: ["ada", "bob"] },
      ],
    });
    people.forEach((p, i) => ids.set(p.id, seeded.records[i]!));
    await world.seed("cc-appeals", { lists: [{ id: "appeals", name: "Appeals" }] });
    // "Board committee" is not set to synchronise with the newsletter; "Appeals" is the appeals
    // account's, by its own audience.
    await gzAct("update_group", { group_id: "board", sync_with_newsletter: false });
    await gzAct("update_group", { group_id: "appeals", sync_with_newsletter: false });
  });
  afterEach(async () => {
    await world.close();
    await testStore.cleanup();
  });

  const gzAct = async (action: string, body: Record<string, unknown>) => {
    const res = await fetch(`${world.emulator("growthzone").origin}/__emulator/act`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ action, ...body }),
    });
    expect(res.status, await res.clone().text()).toBe(200);
  };
  const { sync, firstLoad, contactOf, recordIn, listsOf } = pairWorld(
    () => world,
    () => store,
    clock,
    { connection: "growthzone", idOf: (name) => ids.get(name) },
  );
  const ccLists = () => listsOf("cc-main");
  const fullSync = () =>
    syncPair(
      { store, config: world.config, connections: world.connections, now: clock.now },
      world.config.pairs[0]!,
      { full: true },
    );
  const gz = () => world.emulator("growthzone").native as StartedGrowthZoneEmulator;
  const gzContact = (name: string) => gz().contacts.get(Number(ids.get(name)));
  /** The person signs up on Constant Contact's form, to the Chamber news list. */
  const signUpToChamberNews = async (email: string) => {
    const chamber = (await ccLists()).find((l) => l.name === "Chamber news")!;
    await world.act("cc-main", { as: "contact", action: "sign_up", email, list_ids: [chamber.external_id] });
  };
  /** How many opt-outs from GrowthZone the person's contact has in the ledger. */
  const growthZoneOptOuts = async (name: string) =>
    (await eventsForContact(store, await contactOf(name))).filter(
      (e) => e.event.source.connection === "growthzone" && e.event.kind === "opt_out",
    ).length;

  const shown = async (connection: string, name: string) => {
    const r = await recordIn(connection, name);
    return r === undefined ? undefined : shownConsent(r.consent_state, ACCOUNT_OBSERVED);
  };

  it("G1. a list set to synchronise becomes a Constant Contact list with its members; one not set does not; one set later follows", async () => {
    await firstLoad();
    const names = (await ccLists()).map((l) => l.name);
    expect(names).toContain("Chamber news");
    expect(names).not.toContain("Board committee");
    const chamber = (await ccLists()).find((l) => l.name === "Chamber news")!;
    for (const name of ["ada", "bob"])
      expect((await recordIn("cc-main", name))?.list_ids, name).toEqual([chamber.external_id]);
    expect(await recordIn("cc-main", "ed")).toBeUndefined();

    await gzAct("update_group", { group_id: "board", sync_with_newsletter: true });
    await sync();
    await sync();
    expect((await ccLists()).map((l) => l.name)).toContain("Board committee");
    expect(await shown("cc-main", "ed")).toBe("opt_in");
  });

  it("G2. only contacts with a primary email and no Do Not Contact are synced; the others are skipped with their reasons", async () => {
    const report = await firstLoad();
    expect(await recordIn("cc-main", "cy")).toBeUndefined();
    expect(await recordIn("cc-main", "di")).toBeUndefined();
    const skipped = report.plan?.skipped ?? [];
    const reasons = async (name: string) => {
      const id = await contactOf(name);
      return skipped.filter((s) => s.contact_id === id).flatMap((s) => s.reasons.map((r) => r.code));
    };
    expect(await reasons("cy")).toContain("opted_out");
    expect((await reasons("di")).length).toBeGreaterThan(0);
    // A contact added to a synced list later is added within one poll.
    await gzAct("add_to_group", { contact_id: "ed", group_id: "chamber" });
    await sync();
    expect(await shown("cc-main", "ed")).toBe("opt_in");
  });

  it("G3. Do Not Contact set in GrowthZone unsubscribes the contact in Constant Contact as the account's act; cleared, it subscribes them again", async () => {
    await firstLoad();
    await gzAct("set_restriction", { contact_id: "ada", restriction: "DoNotContact" });
    await sync();
    expect(await shown("cc-main", "ada")).toBe("opt_out");
    const ccAda = [
      ...(
        world.emulator("cc-main").native as {
          store: {
            contacts: Map<string, { email_address: { address: string; opt_out_source: string | null } }>;
          };
        }
      ).store.contacts.values(),
    ].find((c) => c.email_address.address === "ada@example.org");
    expect(ccAda?.email_address.opt_out_source).toBe("Account");
    const events = await eventsForContact(store, await contactOf("ada"));
    expect(events.find((e) => e.event.kind === "opt_out")?.event.actor.kind).toBe("account");

    await gzAct("set_restriction", { contact_id: "ada", restriction: "None" });
    await sync();
    expect(await shown("cc-main", "ada")).toBe("opt_in");
  });

  it("G3. the person's own unsubscribe, copied to GrowthZone and cleared there by staff, is not undone: the person is asked to confirm", async () => {
    await firstLoad();
    await world.act("cc-main", { as: "contact", action: "unsubscribe", email: "bob@example.org" });
    await sync();
    // A platform unsubscribe from all email: Transactional Only (no mass email) on the address.
    expect(gzContact("bob")?.Emails[0]?.Restriction).toBe("TransactionalOnly");
    await gzAct("set_restriction", { contact_id: "bob", restriction: "None" });
    await sync();
    expect(await shown("cc-main", "bob")).toBe("opt_out");
    expect(await world.emulator("cc-main").pending_confirmations?.()).toContain("bob@example.org");
    // Concord writes the person's opt-out back: the ledger still says they are out.
    expect(gzContact("bob")?.Emails[0]?.Restriction).toBe("None");
  });

  it("G3. the person's own sign-up after staff set Do Not Contact subscribes them where they signed up, and leaves staff's Do Not Contact for staff to clear, saying so", async () => {
    await firstLoad();
    await gzAct("set_restriction", { contact_id: "ada", restriction: "DoNotContact" });
    await sync();
    expect(await shown("cc-main", "ada")).toBe("opt_out");
    await signUpToChamberNews("ada@example.org");
    const run = await sync();
    expect(await shown("cc-main", "ada")).toBe("opt_in");
    // Do Not Contact stops every email, invoices too: it is staff's to clear, not the sync's.
    expect(gzContact("ada")?.Emails[0]?.Restriction).toBe("DoNotContact");
    expect(run.execution?.rejections).toContainEqual(
      expect.objectContaining({
        connection_id: "growthzone",
        contact_id: await contactOf("ada"),
        code: "conflict",
        message: expect.stringContaining("Do Not Contact"),
      }),
    );
    // Transactional Only (no mass email) is what an opt-in lifts.
    await world.act("cc-main", { as: "contact", action: "unsubscribe", email: "bob@example.org" });
    await sync();
    expect(gzContact("bob")?.Emails[0]?.Restriction).toBe("TransactionalOnly");
    await signUpToChamberNews("bob@example.org");
    await sync();
    expect(gzContact("bob")?.Emails[0]?.Restriction).toBe("None");
  });

  it("G3. staff's Do Not Contact is one opt-out however often the contact is edited after it: a later name change never undoes the person's own sign-up", async () => {
    await firstLoad();
    await gzAct("set_restriction", { contact_id: "ada", restriction: "DoNotContact" });
    await sync();
    await signUpToChamberNews("ada@example.org");
    await sync();
    expect(await shown("cc-main", "ada")).toBe("opt_in");
    const optOuts = () => growthZoneOptOuts("ada");
    const before = await optOuts();
    // An hour later staff correct her name: the contact's ModifiedDate moves, the restriction does not.
    clock.advance(3_600_000);
    await gzAct("update_contact", { contact_id: "ada", changes: { FirstName: "Adah" } });
    await sync();
    await sync();
    expect(await optOuts()).toBe(before);
    expect(await shown("cc-main", "ada")).toBe("opt_in");
  });

  it("G3. an address whose restriction GrowthZone does not return fails the read, saying so: never taken as unrestricted", async () => {
    await firstLoad();
    await gzAct("set_restriction", { contact_id: "ada", restriction: "DoNotContact" });
    await sync();
    expect(await shown("cc-main", "ada")).toBe("opt_out");
    const before = (await eventsForContact(store, await contactOf("ada"))).length;
    // GrowthZone answers Ada's record without the restriction on her address.
    await gzAct("update_contact", { contact_id: "ada", changes: { LastName: "Lovelace" } });
    delete (gzContact("ada")!.Emails[0] as { Restriction?: string }).Restriction;
    const run = await sync();
    const read = run.pulls.find((p) => p.connection_id === "growthzone");
    expect(read?.error).toMatchObject({
      code: "bad_response",
      message: expect.stringContaining("Restriction"),
    });
    // Her opt-out stands everywhere: nothing read her as unrestricted.
    expect(await shown("cc-main", "ada")).toBe("opt_out");
    // (Constant Contact's read shows Concord's own opt-out writes back: copies, no act of GrowthZone's.)
    const since = (await eventsForContact(store, await contactOf("ada"))).slice(before).map((e) => e.event);
    expect(since.filter((e) => e.kind !== "opt_out" || e.source.connection === "growthzone")).toEqual([]);
  });

  it("G7. a list's members answered without their Do Not Contact fail the read, saying so: never read as cleared", async () => {
    await firstLoad();
    await gzAct("set_list_do_not_contact", { contact_id: "ada", group_id: "appeals", do_not_contact: true });
    await sync();
    expect(await shown("cc-appeals", "ada")).toBe("opt_out");
    const before = (await eventsForContact(store, await contactOf("ada"))).length;
    (world.emulator("growthzone").native as StartedGrowthZoneEmulator).quirks.memberRowsWithoutDoNotContact =
      true;
    await gzAct("update_contact", { contact_id: "ada", changes: { LastName: "Lovelace" } });
    const run = await sync();
    expect(run.pulls.find((p) => p.connection_id === "growthzone")?.error).toMatchObject({
      code: "bad_response",
      message: expect.stringContaining("DoNotContact"),
    });
    // Her topic opt-out stands: no mark was read as cleared, nothing lifted it.
    expect(await shown("cc-appeals", "ada")).toBe("opt_out");
    const since = (await eventsForContact(store, await contactOf("ada"))).slice(before).map((e) => e.event);
    expect(since.filter((e) => e.source.connection === "growthzone")).toEqual([]);
  });

  it("G4. a name or default email changed in GrowthZone is changed on the same Constant Contact contact", async () => {
    await firstLoad();
    const before = await recordIn("cc-main", "ada");
    await gzAct("update_contact", {
      contact_id: "ada",
      changes: { LastName: "Lovelace", EmailAddress: "ada.l@example.org" },
    });
    await sync();
    await sync();
    const after = await recordIn("cc-main", "ada");
    expect(after?.external_id).toBe(before?.external_id);
    expect(after?.last_name).toBe("Lovelace");
    expect(after?.emails.map((e) => e.address)).toEqual(["ada.l@example.org"]);
  });

  it("G5. removed from a list, the contact leaves the Constant Contact list and stays subscribed; a deleted list takes its Constant Contact list, never its people", async () => {
    await firstLoad();
    await gzAct("remove_from_group", { contact_id: "bob", group_id: "chamber" });
    await sync();
    expect((await recordIn("cc-main", "bob"))?.list_ids).toEqual([]);
    expect(await shown("cc-main", "bob")).toBe("opt_in");

    await gzAct("delete_group", { group_id: "chamber" });
    await sync();
    expect((await ccLists()).map((l) => l.name)).not.toContain("Chamber news");
    expect(await shown("cc-main", "ada")).toBe("opt_in");
  });

  it("G6. a contact deleted in GrowthZone is unsubscribed in Constant Contact (deactivated), as the organisation's act", async () => {
    await firstLoad();
    await gzAct("delete_contact", { contact_id: "ada" });
    await sync();
    expect(await shown("cc-main", "ada")).toBe("opt_out");
  });

  it("G7. a list's own Do Not Contact is an opt-out of the topic that list stands for; unsubscribing from that topic's account sets it", async () => {
    await firstLoad();
    expect(await shown("cc-appeals", "ada")).toBe("opt_in");
    await gzAct("set_list_do_not_contact", { contact_id: "ada", group_id: "appeals", do_not_contact: true });
    await sync();
    expect(await shown("cc-appeals", "ada")).toBe("opt_out");
    expect(await shown("cc-main", "ada")).toBe("opt_in");

    await world.act("cc-appeals", { as: "contact", action: "unsubscribe", email: "bob@example.org" });
    await sync();
    const appeals = [...gz().groups.values()].find((g) => g.Name === "Appeals")!;
    expect(appeals.Members.get(Number(ids.get("bob")))?.DoNotContact).toBe(true);
    expect(gzContact("bob")?.Emails[0]?.Restriction).toBe("None");
  });

  it("G7. a topic opt-out of someone not on the topic's list writes nothing there (nothing is sent them through it); added to it later, they are marked", async () => {
    // Ed is on the appeals account by his own sign-up there, but not on GrowthZone's Appeals list.
    await world.seed("cc-appeals", {
      contacts: [
        {
          id: "6a1d2c3b-4e5f-4a7b-8c9d-0e1f2a3b4c5d",
          email: "ed@example.org",
          added_by: "contact",
          added_at: "2026-01-01T00:00:00.000Z",
          modified_at: "2026-01-01T00:00:00.000Z",
          subscription: { status: "subscribed", explicit: true },
          list_ids: [],
        },
      ],
    });
    await firstLoad();
    await world.act("cc-appeals", { as: "contact", action: "unsubscribe", email: "ed@example.org" });
    await sync();
    const toGrowthZone = () =>
      store.db
        .selectFrom("operations")
        .select(["kind", "status"])
        .where("target_connection", "=", "growthzone")
        .where("kind", "=", "record_opt_out")
        .execute();
    // Nothing to mark, and no read of the list's members for it at each run.
    expect(await toGrowthZone()).toEqual([]);
    await sync();
    expect(await toGrowthZone()).toEqual([]);

    // Staff add Ed to the Appeals list (which moves no date of his): the next poll reads him again,
    // and his opt-out of the topic is marked on the membership.
    await gzAct("add_to_group", { contact_id: "ed", group_id: "appeals" });
    await sync();
    const appeals = [...gz().groups.values()].find((g) => g.Name === "Appeals")!;
    expect(appeals.Members.get(Number(ids.get("ed")))?.DoNotContact).toBe(true);
    expect(await toGrowthZone()).toEqual([{ kind: "record_opt_out", status: "succeeded" }]);
  });

  it("G7. a list's Do Not Contact set after the person's sign-up stands: dated when seen (it moves no date), recorded once", async () => {
    await firstLoad();
    // Ada signs up again in the appeals account; a day later staff (or GrowthZone's own email sync)
    // set Do Not Contact on her Appeals membership, which moves no date of hers (still 05-01).
    clock.advance(60_000);
    await world.act("cc-appeals", { as: "contact", action: "unsubscribe", email: "ada@example.org" });
    await sync();
    clock.advance(60_000);
    await world.act("cc-appeals", {
      as: "contact",
      action: "sign_up",
      email: "ada@example.org",
      list_ids: ["appeals"],
    });
    await sync();
    expect(await shown("cc-appeals", "ada")).toBe("opt_in");
    clock.advance(86_400_000);
    await gzAct("set_list_do_not_contact", { contact_id: "ada", group_id: "appeals", do_not_contact: true });
    await sync();
    expect(await shown("cc-appeals", "ada")).toBe("opt_out");
    const appeals = [...gz().groups.values()].find((g) => g.Name === "Appeals")!;
    expect(appeals.Members.get(Number(ids.get("ada")))?.DoNotContact).toBe(true);
    const fromList = async () =>
      (await eventsForContact(store, await contactOf("ada")))
        .map((e) => e.event)
        .filter((e) => e.source.connection === "growthzone" && e.kind === "opt_out");
    const marks = await fromList();
    // After her sign-up, not on her contact's stale date (05-01).
    expect(Date.parse(marks.at(-1)!.occurred_at)).toBeGreaterThan(Date.parse("2026-06-02T00:00:00Z"));
    // Read again (a full read too): the same opt-out, not a new one each time.
    clock.advance(60_000);
    await sync();
    await fullSync();
    expect(await fromList()).toHaveLength(marks.length);
  });

  it("G7. two records of one person, each with the list's Do Not Contact, are each recorded once, however often read", async () => {
    await firstLoad();
    // A duplicate of Ada (the same address) joins Appeals; both memberships say Do Not Contact.
    await world.seed("growthzone", { people: [person("ada2", "Ada")] });
    await gzAct("add_to_group", { contact_id: "ada2", group_id: "appeals" });
    await gzAct("set_list_do_not_contact", { contact_id: "ada", group_id: "appeals", do_not_contact: true });
    await gzAct("set_list_do_not_contact", { contact_id: "ada2", group_id: "appeals", do_not_contact: true });
    const count = () => growthZoneOptOuts("ada");
    await sync();
    await fullSync();
    const settled = await count();
    expect(settled).toBeGreaterThan(0);
    for (let i = 0; i < 2; i++) {
      clock.advance(60_000);
      await sync();
      await fullSync();
    }
    expect(await count()).toBe(settled);
  });

  it("G3. Do Not Contact on a contact GrowthZone gives no date (0001-01-01) is not outranked by an older opt-in", async () => {
    await firstLoad();
    await gzAct("set_restriction", { contact_id: "ed", restriction: "DoNotContact" });
    gzContact("ed")!.ModifiedDate = "0001-01-01T00:00:00";
    await fullSync();
    const events = (await eventsForContact(store, await contactOf("ed"))).map((e) => e.event);
    const optOut = events.find((e) => e.kind === "opt_out" && e.source.connection === "growthzone");
    expect(optOut?.occurred_at.startsWith("1970")).toBe(false);
    expect(Date.parse(optOut!.occurred_at)).toBeGreaterThan(Date.parse(T0));
  });

  it("G7. a list's own Do Not Contact on a synced list no topic stands for takes the person out of its Constant Contact list whatever the delete policy; cleared, they are put back", async () => {
    // The default policy: leaving a CRM list leaves the platform's copy as it is.
    world.config.pairs[0]!.list_sync[0]!.delete_policy = "keep";
    await firstLoad();
    const chamber = (await ccLists()).find((l) => l.name === "Chamber news")!;
    expect((await recordIn("cc-main", "ada"))?.list_ids).toEqual([chamber.external_id]);

    await gzAct("set_list_do_not_contact", { contact_id: "ada", group_id: "chamber", do_not_contact: true });
    const run = await sync();
    expect((await recordIn("cc-main", "ada"))?.list_ids).toEqual([]);
    // Only that list: she stays subscribed, and the plan says why she left it.
    expect(await shown("cc-main", "ada")).toBe("opt_in");
    const why = run.plan?.operations.find((o) => o.kind === "remove_list_members");
    expect(why).toMatchObject({ contacts: 1, reason: { code: "list_membership_stopped" } });
    // Her page shows the membership and the list's own flag.
    const page = await explainContactById(store, world.config, await contactOf("ada"));
    expect(page.kind === "found" ? page.list_memberships : []).toContainEqual(
      expect.objectContaining({
        connection_id: "growthzone",
        list_name: "Chamber news",
        do_not_contact: true,
      }),
    );
    // Bob, who left the list in the ordinary way, stays in Constant Contact's copy under this policy.
    await gzAct("remove_from_group", { contact_id: "bob", group_id: "chamber" });
    await sync();
    expect((await recordIn("cc-main", "bob"))?.list_ids).toEqual([chamber.external_id]);

    await gzAct("set_list_do_not_contact", { contact_id: "ada", group_id: "chamber", do_not_contact: false });
    await sync();
    expect((await recordIn("cc-main", "ada"))?.list_ids).toEqual([chamber.external_id]);
  });

  it("G8. GrowthZone's 10,000 records a day is the connection's budget, renewed at UTC midnight, with a reserve for consent", async () => {
    const budget = world.connections.get("growthzone")!.budget;
    const usage = budget.usage();
    expect(usage.daily_quota).toBe(10_000);
    const now = clock.now();
    expect(usage.resets_at).toBe(
      new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1)).toISOString(),
    );
    // Spend all but the consent reserve (5%, at most 500) on reads: a read waits, an opt-out goes.
    for (let i = 0; i < 9_500; i++) {
      const slot = await budget.acquire("read");
      if (!slot.ok) throw new Error(`read ${i} refused: ${slot.error.message}`);
      slot.value();
    }
    const read = await budget.acquire("read");
    expect(read.ok).toBe(false);
    const consent = await budget.acquire("consent");
    expect(consent.ok).toBe(true);
  });
});
