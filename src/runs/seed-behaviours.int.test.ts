/**
 * The seed behaviours of the sync engine (docs/sync.md), one suite run for every kind of pair:
 * Raiser's Edge NXT with Constant Contact, with Mailchimp, and with both at once (fan-out). Every
 * act is the emulated world's canonical act and every check reads the systems through their own
 * connectors, so the same test says the same thing of each vendor.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { ExternalRecord } from "../connectors/connector";
import type { WorldAct, WorldContact, WorldPerson } from "../connectors/emulator-kit/world";
import { ACCOUNT_OBSERVED, GLOBAL_OBSERVED, shownConsent } from "../core/consent/system-consent";
import { startEmulatedWorld, type EmulatedWorld } from "../emulated-world/emulated-world";
import { eventsForContact } from "../ledger/consent-ledger";
import type { Store } from "../store/ports";
import { createFakeClock } from "../../test/support/fake-clock";
import { sqliteBackend } from "../../test/support/sync-harness";
import type { TestStore } from "../../test/support/store-backends";
import { TEST_KEY } from "../../test/support/test-credentials";
import { syncPair, type SyncOptions, type SyncReport } from "./sync-pair";

type Platform = { id: string; system: string; emulator?: Record<string, unknown> };
const CC: Platform = { id: "cc-main", system: "constant-contact", emulator: { rateLimitPerSecond: null } };
const MC: Platform = { id: "mc-main", system: "mailchimp", emulator: { autoDeliverWebhooks: false } };

/** A CRM the suite runs with: its connection, its name fields, and whether it marks people deceased. */
type Crm = {
  id: string;
  system: string;
  emulator?: Record<string, unknown>;
  first: string;
  last: string;
  ends: boolean;
  /**
   * Its opt-out flag is the account's to set and clear (GrowthZone's Do Not Contact): clearing it
   * lifts an opt-out the flag made itself, and a platform that lets the account undo its own
   * unsubscribe (Constant Contact) subscribes the person again (seed 004).
   */
  lifts?: boolean;
};
const RE: Crm = {
  id: "re-nxt",
  system: "blackbaud-renxt",
  emulator: { ratePerSecond: 1000, webhooks: { autoDeliver: false } },
  first: "first",
  last: "last",
  ends: true,
};
const GROWTHZONE: Crm = {
  id: "growthzone",
  system: "growthzone",
  emulator: { ratePerSecond: null },
  first: "FirstName",
  last: "LastName",
  ends: false,
  lifts: true,
};
const KINDFUL: Crm = {
  id: "kindful",
  system: "kindful",
  first: "first_name",
  last: "last_name",
  ends: false,
};

const PAIRS: { name: string; crm: Crm; platforms: Platform[] }[] = [
  { name: "Raiser's Edge NXT ⇄ Constant Contact", crm: RE, platforms: [CC] },
  { name: "Raiser's Edge NXT ⇄ Mailchimp", crm: RE, platforms: [MC] },
  { name: "Raiser's Edge NXT ⇄ Constant Contact + Mailchimp (fan-out)", crm: RE, platforms: [CC, MC] },
  { name: "Kindful ⇄ Constant Contact", crm: KINDFUL, platforms: [CC] },
  { name: "Kindful ⇄ Mailchimp", crm: KINDFUL, platforms: [MC] },
  { name: "GrowthZone ⇄ Constant Contact", crm: GROWTHZONE, platforms: [CC] },
  { name: "GrowthZone ⇄ Mailchimp", crm: GROWTHZONE, platforms: [MC] },
];

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

describe.each(PAIRS)("seed behaviours: $name (SQLite)", ({ crm, platforms }) => {
  let world: EmulatedWorld;
  let testStore: TestStore;
  let store: Store;
  const clock = createFakeClock("2026-06-01T12:00:00.000Z");

  beforeEach(async () => {
    testStore = await sqliteBackend().create({ clock: clock.now });
    store = testStore.store;
    world = await startEmulatedWorld({
      connections: [
        { id: crm.id, system: crm.system, ...(crm.emulator ? { emulator: crm.emulator } : {}) },
        ...platforms.map((p) => ({
          id: p.id,
          system: p.system,
          ...(p.emulator ? { emulator: p.emulator } : {}),
        })),
      ],
      config: {
        pairs: [
          {
            id: "re-platforms",
            crm: crm.id,
            platforms: platforms.map((p) => ({ connection: p.id })),
            audiences: platforms.map((p) => ({
              crm_list: { name: "Monthly newsletter" },
              platform: p.id,
              platform_list: { name: "Newsletter" },
              direction: "crm_to_platform",
              delete_policy: "remove_membership",
            })),
            fields: [
              { canonical: "first_name", crm: crm.first, platform: "first_name", owner: "crm" },
              { canonical: "last_name", crm: crm.last, platform: "last_name", owner: "crm" },
            ],
            policies: { unlinked_opt_outs: "apply_and_report" },
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
    const seededPeople = await world.seed(crm.id, {
      people: [
        person("p-ada", "Ada"),
        person("p-bob", "Bob"),
        person("p-cy", "Cy"),
        person("p-di", "Di"),
        person("p-ed", "Ed", { opted_out_of_all_email: true }),
        ...(crm.ends ? [person("p-fay", "Fay", { deceased: true })] : []),
      ],
      lists: [
        {
          id: "news",
          name: "Monthly newsletter",
          members: ["p-ada", "p-bob", "p-cy", "p-di", "p-ed", ...(crm.ends ? ["p-fay"] : [])],
        },
      ],
    });
    ["p-ada", "p-bob", "p-cy", "p-di", "p-ed", "p-fay"].forEach((name, i) => {
      const given = seededPeople.records[i];
      if (given !== undefined) systemIds.set(name, given);
    });
    for (const p of platforms) await world.seed(p.id, { lists: [{ id: "news-list", name: "Newsletter" }] });
  });
  afterEach(async () => {
    await world.close();
    await testStore.cleanup();
  });

  const config = () => world.config;
  const sync = async (options: SyncOptions = {}): Promise<SyncReport> => {
    const pair = config().pairs[0]!;
    const report = await syncPair(
      { store, config: config(), connections: world.connections, now: clock.now },
      pair,
      options,
    );
    expect(report.execution?.rejections ?? [], JSON.stringify(report.execution?.rejections)).toEqual([]);
    return report;
  };
  /** The id the CRM gave each world person (Kindful numbers its contacts itself). */
  const systemIds = new Map<string, string>();
  const act = (connection: string, a: WorldAct) => world.act(connection, a);
  const contactOf = async (reId: string): Promise<string> =>
    (await store.links.find(crm.id, systemIds.get(reId) ?? reId))?.contact_id ?? "";

  /** The record a connection holds for a CRM person, read through its own connector. */
  const recordIn = async (connection: string, reId: string): Promise<ExternalRecord | undefined> => {
    const links = await store.links.forContact(await contactOf(reId));
    const link = links.find((l) => l.connection_id === connection);
    if (!link) return undefined;
    const got = await world.connections.get(connection)!.session().get([link.external_id]);
    if (!got.ok) throw new Error(got.error.message);
    return got.value.records[0];
  };
  const optedOutIn = async (connection: string, reId: string): Promise<boolean> => {
    const r = await recordIn(connection, reId);
    const scope = connection === crm.id ? GLOBAL_OBSERVED : ACCOUNT_OBSERVED;
    return r !== undefined && shownConsent(r.consent_state, scope) === "opt_out";
  };
  /** Whether the platform would send to the person now (a pending confirmation is not yet sendable). */
  const sendableIn = async (connection: string, reId: string): Promise<boolean> => {
    const r = await recordIn(connection, reId);
    return r !== undefined && shownConsent(r.consent_state, ACCOUNT_OBSERVED) === "opt_in";
  };
  const emailOf = (name: string) => `${name.toLowerCase()}@example.org`;

  const firstSync = async () => {
    const report = await sync();
    clock.advance(60_000);
    return report;
  };

  it("1. the first sync imports the eligible list members, skips the rest with their reasons, and a second run changes nothing", async () => {
    const report = await firstSync();
    for (const p of platforms) {
      for (const name of ["p-ada", "p-bob", "p-cy", "p-di"]) {
        const r = await recordIn(p.id, name);
        expect(r, `${name} in ${p.id}`).toBeDefined();
        expect(shownConsent(r!.consent_state, ACCOUNT_OBSERVED)).toBe("opt_in");
        expect(r!.list_ids?.length).toBe(1);
      }
      expect(await recordIn(p.id, "p-ed")).toBeUndefined();
      if (crm.ends) {
        expect(await recordIn(p.id, "p-fay")).toBeUndefined();
        // Fay is deceased, which is also the organisation's opt-out (ADR 13): she counts under both.
        expect(report.plan?.counts.skipped[p.id]).toMatchObject({ opted_out: 2, deceased: 1 });
      } else expect(report.plan?.counts.skipped[p.id]).toMatchObject({ opted_out: 1 });
    }
    const again = await sync();
    expect(again.plan?.operations ?? []).toEqual([]);
    // Nothing changed since a plan with nothing to do: every contact is settled by its mark (ADR 29).
    const third = await sync();
    expect(third.plan?.operations ?? []).toEqual([]);
    expect(third.contacts?.planned).toBeGreaterThan(0);
    expect(third.contacts).toEqual({ planned: again.contacts?.planned, unchanged: again.contacts?.planned });
    // The scheduled full reconciliation plans every contact again, trusting no mark.
    const full = await sync({ full: true });
    expect(full.plan?.operations ?? []).toEqual([]);
    expect(full.contacts).toEqual({ planned: again.contacts?.planned, unchanged: 0 });
  });

  it("2. a person's unsubscribe in a platform (link, one-click, complaint) reaches the CRM and every other platform, with who and how", async () => {
    await firstSync();
    const [first] = platforms;
    await act(first!.id, { as: "contact", action: "unsubscribe", email: emailOf("Bob") });
    await act(first!.id, { as: "contact", action: "one_click_unsubscribe", email: emailOf("Cy") });
    await act(first!.id, { as: "contact", action: "spam_complaint", email: emailOf("Di") });
    clock.advance(1_000);
    await sync();
    for (const name of ["p-bob", "p-cy", "p-di"]) {
      expect(await optedOutIn(crm.id, name), `${name} in the CRM`).toBe(true);
      for (const p of platforms) expect(await optedOutIn(p.id, name), `${name} in ${p.id}`).toBe(true);
    }
    expect(await optedOutIn(crm.id, "p-ada")).toBe(false);
    const events = await eventsForContact(store, await contactOf("p-di"));
    const optOut = events.find((e) => e.event.kind === "opt_out" && e.event.source.connection === first!.id);
    expect(optOut?.event.actor.kind).toBe("contact");
    if (first!.system === "mailchimp") expect(optOut?.event.mechanism).toBe("spam_complaint");
  });

  it("3. an opt-out in the CRM unsubscribes the person in every platform, as the account's act", async () => {
    await firstSync();
    await act(crm.id, { as: "admin", action: "opt_out_of_all_email", id: "p-ada" });
    clock.advance(1_000);
    await sync();
    for (const p of platforms) expect(await optedOutIn(p.id, "p-ada"), p.id).toBe(true);
    expect(await optedOutIn(crm.id, "p-bob")).toBe(false);
  });

  it("3. an opt-out in the CRM also reaches a platform contact outside the mapped lists (seed 001's missed case)", async () => {
    const gus = await world.seed(crm.id, { people: [person("p-gus", "Gus")] });
    systemIds.set("p-gus", gus.records[0] ?? "p-gus");
    for (const p of platforms)
      await world.seed(p.id, {
        contacts: [
          {
            id: "5b8e2a4c-1f3d-4e6a-9c7b-0d2f4a6c8e1b",
            email: emailOf("Gus"),
            added_by: "contact",
            added_at: T0,
            modified_at: T0,
            subscription: { status: "subscribed", explicit: true },
            list_ids: [],
          },
        ],
      });
    await firstSync();
    for (const p of platforms) expect(await sendableIn(p.id, "p-gus"), `${p.id} before`).toBe(true);
    await act(crm.id, { as: "admin", action: "opt_out_of_all_email", id: "p-gus" });
    clock.advance(1_000);
    await sync();
    for (const p of platforms) expect(await optedOutIn(p.id, "p-gus"), p.id).toBe(true);
  });

  it("4. an admin clearing the CRM flag re-subscribes no one: the platform asks the person, who stays unsubscribed until they confirm", async () => {
    await firstSync();
    await act(crm.id, { as: "admin", action: "opt_out_of_all_email", id: "p-ada" });
    clock.advance(1_000);
    await sync();
    clock.advance(60_000);
    await act(crm.id, { as: "admin", action: "clear_opt_out_of_all_email", id: "p-ada" });
    clock.advance(1_000);
    await sync();
    const [first] = platforms;
    if (crm.lifts === true && first!.system === "constant-contact") {
      // The account undid its own Do Not Contact: Constant Contact lets the account undo its own
      // unsubscribe, so the person is subscribed again, with no confirmation email.
      expect(await sendableIn(first!.id, "p-ada")).toBe(true);
      expect((await world.emulator(first!.id).pending_confirmations?.()) ?? []).not.toContain(emailOf("Ada"));
      expect(await optedOutIn(crm.id, "p-ada")).toBe(false);
      return;
    }
    for (const p of platforms) {
      expect(await sendableIn(p.id, "p-ada"), `${p.id} does not send to them`).toBe(false);
      const pending = (await world.emulator(p.id).pending_confirmations?.()) ?? [];
      expect(pending, `${p.id} sent its confirmation email`).toContain(emailOf("Ada"));
    }
    // The person confirms in the first platform: their own act makes them sendable everywhere.
    await act(first!.id, { as: "contact", action: "confirm_resubscribe", email: emailOf("Ada") });
    clock.advance(1_000);
    await sync();
    expect(await sendableIn(first!.id, "p-ada")).toBe(true);
    expect(await optedOutIn(crm.id, "p-ada")).toBe(false);
  });

  it("5. an address changed in the CRM changes it in every platform: no duplicate, the opt-out carried", async () => {
    await firstSync();
    await act(platforms[0]!.id, { as: "contact", action: "unsubscribe", email: emailOf("Bob") });
    clock.advance(1_000);
    await sync();
    clock.advance(60_000);
    await act(crm.id, {
      as: "admin",
      action: "change_primary_email",
      id: "p-bob",
      address: "bob.new@example.org",
      remove_old: true,
    });
    clock.advance(1_000);
    await sync();
    clock.advance(60_000);
    await sync();
    for (const p of platforms) {
      const r = await recordIn(p.id, "p-bob");
      expect(
        r?.emails.map((e) => e.address.toLowerCase()),
        p.id,
      ).toEqual(["bob.new@example.org"]);
      expect(shownConsent(r!.consent_state, ACCOUNT_OBSERVED), p.id).toBe("opt_out");
    }
  });

  it("6. someone only a platform knows who unsubscribes is matched by address and applied in the CRM", async () => {
    const [first] = platforms;
    const contact: WorldContact = {
      id: "7d2b8f0e-4a1c-4b7e-9d3f-2c5a6e8b1f04",
      email: emailOf("Cy"),
      added_by: "account",
      added_at: T0,
      modified_at: T0,
      subscription: { status: "subscribed", explicit: false },
      list_ids: [],
    };
    await world.seed(first!.id, { contacts: [contact] });
    await act(first!.id, { as: "contact", action: "unsubscribe", email: emailOf("Cy") });
    clock.advance(1_000);
    const report = await firstSync();
    expect(report.plan?.unlinked_opt_outs.length).toBe(1);
    expect(await optedOutIn(crm.id, "p-cy")).toBe(true);
    // Opted out where they were; never added, or unsubscribed, anywhere else.
    expect(await optedOutIn(first!.id, "p-cy")).toBe(true);
    for (const p of platforms) expect(await sendableIn(p.id, "p-cy"), p.id).toBe(false);
  });

  it("7. leaving the CRM list removes the platform list membership, never the contact", async () => {
    await firstSync();
    await act(crm.id, { as: "admin", action: "remove_from_list", id: "p-di", list_id: "news" });
    clock.advance(1_000);
    await sync();
    for (const p of platforms) {
      const r = await recordIn(p.id, "p-di");
      expect(r, p.id).toBeDefined();
      expect(r!.list_ids ?? [], p.id).toEqual([]);
      expect(shownConsent(r!.consent_state, ACCOUNT_OBSERVED), p.id).toBe("opt_in");
    }
  });

  it("8. a field the CRM owns follows to every platform; consent never follows a field", async () => {
    await firstSync();
    await act(crm.id, { as: "admin", action: "update_name", id: "p-ada", last: "Lovelace" });
    clock.advance(1_000);
    await sync();
    for (const p of platforms) {
      const r = await recordIn(p.id, "p-ada");
      expect(r?.last_name, p.id).toBe("Lovelace");
      expect(shownConsent(r!.consent_state, ACCOUNT_OBSERVED), p.id).toBe("opt_in");
    }
  });
});
