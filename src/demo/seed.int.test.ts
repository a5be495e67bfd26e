/**
 * The demo's world against the real emulators: every generated record is accepted by their seed
 * routes, and the activity simulator's acts go through their control API, naming ids, never
 * addresses.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningBlackbaudEmulator } from "../connectors/blackbaud-renxt/emulator/blackbaud-emulator";
import type { StartedConstantContactEmulator } from "../connectors/constant-contact/emulator/constant-contact-emulator";
import type { RunningEmulator } from "../connectors/manifest";
import { startEmulators } from "../emulated-world/emulated-world";
import { generateDemoWorld } from "./seed";
import { createSimulator, type SimulatorEvent } from "./simulator";
import { seedEmulators } from "./start-demo";
import { DEFAULT_WORLD, demoWorld } from "./worlds";

const SIZE = 1_000;

describe("the demo's world in the emulators", () => {
  const world = generateDemoWorld({ size: SIZE, now: new Date() });
  let emulators: Map<string, RunningEmulator>;
  let re: RunningBlackbaudEmulator;
  let ccMain: StartedConstantContactEmulator;
  let ccAppeals: StartedConstantContactEmulator;
  const emulator = (id: string): RunningEmulator => emulators.get(id)!;

  beforeAll(async () => {
    emulators = await startEmulators([
      { id: "re-nxt", system: "blackbaud-renxt", emulator: { webhooks: { autoDeliver: false } } },
      { id: "cc-main", system: "constant-contact" },
      { id: "cc-appeals", system: "constant-contact" },
    ]);
    re = emulator("re-nxt").native as RunningBlackbaudEmulator;
    ccMain = emulator("cc-main").native as StartedConstantContactEmulator;
    ccAppeals = emulator("cc-appeals").native as StartedConstantContactEmulator;
    await seedEmulators(world, emulator, demoWorld(DEFAULT_WORLD)!);
  });
  afterAll(async () => {
    await Promise.all([...(emulators?.values() ?? [])].map((e) => e.close()));
  });

  it("seeds every constituent, address, consent record and list into Raiser's Edge NXT", () => {
    expect(re.state.constituents.size).toBe(SIZE);
    const withEmail = world.people.filter((p) => p.email !== null).length;
    const primaries = [...re.state.emails.values()].filter((e) => e.primary);
    expect(primaries).toHaveLength(withEmail);
    expect([...re.state.constituents.values()].filter((c) => c.requests_no_email)).toHaveLength(
      world.people.filter((p) => p.opted_out_of_all_email).length,
    );
    expect(re.state.consents).toHaveLength(
      world.crm.people.reduce((n, c) => n + (c.consent_records?.length ?? 0), 0),
    );
    for (const list of world.crm.lists) expect(re.state.lists.get(list.id)?.ids).toEqual(list.members);
    const org = world.crm.people.find((c) => c.kind === "organisation");
    expect(re.state.constituentRead(re.state.requireConstituent(org?.id ?? ""))).toMatchObject({
      name: org?.organisation_name,
    });
  });

  it("seeds both Constant Contact accounts with their lists and contacts", () => {
    expect(ccMain.store.contacts.size).toBe(world.platforms.main.contacts.length);
    expect(ccAppeals.store.contacts.size).toBe(world.platforms.appeals.contacts.length);
    expect([...ccMain.store.lists.values()].map((l) => l.name)).toEqual([
      "Newsletter",
      "Events",
      "Board updates",
    ]);
    const unsubscribed = [...ccMain.store.contacts.values()].filter(
      (c) => c.email_address?.permission_to_send === "unsubscribed",
    );
    expect(unsubscribed).toHaveLength(
      world.ccContacts.filter((c) => c.account === "main" && c.unsubscribed).length,
    );
    expect(unsubscribed.every((c) => c.email_address?.opt_out_source === "Contact")).toBe(true);
  });

  it("acts through the control API at its own pace and reports ids, never addresses", async () => {
    const events: SimulatorEvent[] = [];
    const skips: string[] = [];
    const simulator = createSimulator({
      world,
      act: async (role, act) => {
        const id = { crm: "re-nxt", main: "cc-main", appeals: "cc-appeals" }[role];
        return { ...(await emulator(id).act(act)), connection: id };
      },
      pendingConfirmations: async (role) =>
        (await emulator(role === "appeals" ? "cc-appeals" : "cc-main").pending_confirmations?.()) ?? [],
      onEvent: (e) => events.push(e),
      onSkip: (reason) => skips.push(reason),
    });
    // Without Concord nobody was imported, so only the seeded contacts are in the accounts.
    for (let i = 0; i < 40; i += 1) {
      const e = await simulator.step();
      if (e) events.push(e);
    }
    expect(events.length).toBeGreaterThanOrEqual(35);
    expect(events[0]).toMatchObject({ system: "cc-main", action: "unsubscribe", actor: "contact" });
    const first = events[0]?.crm_record ?? "";
    const optedOut = world.ccContacts.find((c) => c.re_id === first && c.account === "main");
    expect(ccMain.store.findByEmail(optedOut?.email ?? "")?.email_address?.permission_to_send).toBe(
      "unsubscribed",
    );
    expect(new Set(events.map((e) => e.system))).toEqual(new Set(["re-nxt", "cc-main", "cc-appeals"]));
    for (const e of events) {
      expect(e.description).not.toMatch(/@/);
      expect(e.crm_record ?? e.platform_record).not.toBeNull();
    }
    expect(skips.filter((s) => s.includes("step failed"))).toEqual([]);
    await simulator.stop();
  });
});
