/** What the contract suite does not cover for GrowthZone: a delta read while contacts change under it. */
import { afterEach, expect, it } from "vitest";
import type { ReadPage } from "../connector";
import { postControl } from "../emulator-kit/world";
import { growthZoneManifest } from "./manifest";
import { startGrowthZoneEmulator, type StartedGrowthZoneEmulator } from "./emulator/growthzone-emulator";
import { createFakeClock } from "../../../test/support/fake-clock";

let emulator: StartedGrowthZoneEmulator | undefined;
afterEach(async () => {
  await emulator?.close();
});

it("a delta read while a contact changes under it skips no one: the opt-out of the contact that moved up is read", async () => {
  const clock = createFakeClock("2026-06-01T12:00:00.000Z");
  emulator = await startGrowthZoneEmulator({ ratePerSecond: null, now: clock.now });
  const origin = emulator.baseUrl;
  const key = ((await postControl(origin, "/__emulator/token", {})) as { api_key: string }).api_key;
  const person = (name: string, at: string, restriction = "None") => ({
    FirstName: name,
    LastName: "Example",
    ModifiedDate: at,
    Emails: [
      { EmailAddress: `${name.toLowerCase()}@example.org`, IsDefault: true, Restriction: restriction },
    ],
  });
  const seeded = (await postControl(origin, "/__emulator/seed", {
    contacts: [
      person("A", "2026-06-01T09:00:00"),
      person("K", "2026-06-01T10:00:00", "DoNotContact"),
      person("B", "2026-06-01T11:00:00"),
    ],
  })) as { contacts: number[] };
  const [a, k] = seeded.contacts.map(String);
  const session = growthZoneManifest.connect(
    {
      connection_id: "growthzone-test",
      base_url: origin,
      page_size: 1,
      limits: { requests_per_second: 1000 },
      credentials: { get: async () => ({ api_key: key }), save: async () => {} },
    },
    { now: clock.now, sleep: clock.sleep },
  );
  const from = {
    stream: "contacts",
    value: "2026-06-01T08:00:00.000Z",
    taken_at: "2026-06-01T08:00:00.000Z",
  };
  const pages: ReadPage[] = [];
  for await (const page of session.read(from)) {
    if (!page.ok) throw new Error(page.error.message);
    pages.push(page.value);
    // After A's page, A changes: in the order of change it moves behind K and B.
    if (pages.length === 1) {
      expect(page.value.records.map((r) => r.external_id)).toEqual([a]);
      clock.advance(60_000);
      await postControl(origin, "/__emulator/act", {
        action: "update_contact",
        contact_id: a,
        changes: { LastName: "Lovelace" },
      });
    }
  }
  const optOuts = pages.flatMap((p) => p.consent).filter((o) => o.kind === "opt_out");
  expect(optOuts.map((o) => o.external_id)).toEqual([k]);
  // A is read again as she is now.
  const lastA = pages
    .flatMap((p) => p.records)
    .filter((r) => r.external_id === a)
    .at(-1);
  expect(lastA?.last_name).toBe("Lovelace");
});

it("a delta whose contacts keep changing through its last pass keeps the old checkpoint once: the next read lists it again", async () => {
  const clock = createFakeClock("2026-06-01T12:00:00.000Z");
  emulator = await startGrowthZoneEmulator({ ratePerSecond: null, now: clock.now });
  const origin = emulator.baseUrl;
  const key = ((await postControl(origin, "/__emulator/token", {})) as { api_key: string }).api_key;
  const seeded = (await postControl(origin, "/__emulator/seed", {
    contacts: ["A", "K", "B"].map((name, i) => ({
      FirstName: name,
      LastName: "Example",
      ModifiedDate: `2026-06-01T${String(9 + i).padStart(2, "0")}:00:00`,
      Emails: [{ EmailAddress: `${name.toLowerCase()}@example.org`, IsDefault: true, Restriction: "None" }],
    })),
  })) as { contacts: number[] };
  const [a] = seeded.contacts.map(String);
  const session = growthZoneManifest.connect(
    {
      connection_id: "growthzone-test",
      base_url: origin,
      page_size: 1,
      limits: { requests_per_second: 1000 },
      credentials: { get: async () => ({ api_key: key }), save: async () => {} },
    },
    { now: clock.now, sleep: clock.sleep },
  );
  const from = {
    stream: "contacts",
    value: "2026-06-01T08:00:00.000Z",
    taken_at: "2026-06-01T08:00:00.000Z",
  };
  const pages: ReadPage[] = [];
  let edits = 0;
  for await (const page of session.read(from)) {
    if (!page.ok) throw new Error(page.error.message);
    pages.push(page.value);
    // A busy office: A changes after every page of every pass.
    clock.advance(1_000);
    await postControl(origin, "/__emulator/act", {
      action: "update_contact",
      contact_id: a,
      changes: { LastName: `Edit ${++edits}` },
    });
  }
  const last = pages.at(-1)!.checkpoint;
  expect(Date.parse(last.value.split(" ")[0]!)).toBeLessThanOrEqual(Date.parse(from.value));
  // Once, not for ever: a second busy read moves on (a delta busy through every read would
  // otherwise list more each time); the full read reads what it skipped.
  const again: ReadPage[] = [];
  for await (const page of session.read(last)) {
    if (!page.ok) throw new Error(page.error.message);
    again.push(page.value);
    clock.advance(1_000);
    await postControl(origin, "/__emulator/act", {
      action: "update_contact",
      contact_id: a,
      changes: { LastName: `Edit ${++edits}` },
    });
  }
  expect(Date.parse(again.at(-1)!.checkpoint.value.split(" ")[0]!)).toBeGreaterThan(Date.parse(from.value));
});

it("a contact the delta lists whose detail answers 404 is not taken as deleted: it is left for a later read", async () => {
  const clock = createFakeClock("2026-06-01T12:00:00.000Z");
  emulator = await startGrowthZoneEmulator({ ratePerSecond: null, now: clock.now });
  const origin = emulator.baseUrl;
  const key = ((await postControl(origin, "/__emulator/token", {})) as { api_key: string }).api_key;
  const seeded = (await postControl(origin, "/__emulator/seed", {
    contacts: ["A", "B"].map((name) => ({
      FirstName: name,
      LastName: "Example",
      ModifiedDate: "2026-06-01T09:00:00",
      Emails: [{ EmailAddress: `${name.toLowerCase()}@example.org`, IsDefault: true, Restriction: "None" }],
    })),
  })) as { contacts: number[] };
  const [a, b] = seeded.contacts.map(String);
  await postControl(origin, "/__emulator/faults", {
    status: 404,
    count: 5,
    path_prefix: `/api/contacts/${a}`,
    methods: ["GET"],
  });
  const session = growthZoneManifest.connect(
    {
      connection_id: "growthzone-test",
      base_url: origin,
      limits: { requests_per_second: 1000 },
      credentials: { get: async () => ({ api_key: key }), save: async () => {} },
    },
    { now: clock.now, sleep: clock.sleep },
  );
  const from = {
    stream: "contacts",
    value: "2026-06-01T08:00:00.000Z",
    taken_at: "2026-06-01T08:00:00.000Z",
  };
  const pages: ReadPage[] = [];
  for await (const page of session.read(from)) {
    if (!page.ok) throw new Error(page.error.message);
    pages.push(page.value);
  }
  const records = pages.flatMap((p) => p.records);
  expect(records.map((r) => [r.external_id, r.deleted === true])).toEqual([[b, false]]);
});

it("a full read while a contact is deleted skips no one: the opt-out of the contact that moved up is read", async () => {
  const clock = createFakeClock("2026-06-01T12:00:00.000Z");
  emulator = await startGrowthZoneEmulator({ ratePerSecond: null, now: clock.now });
  const origin = emulator.baseUrl;
  const key = ((await postControl(origin, "/__emulator/token", {})) as { api_key: string }).api_key;
  const seeded = (await postControl(origin, "/__emulator/seed", {
    contacts: ["A", "K", "B", "C"].map((name) => ({
      FirstName: name,
      LastName: "Example",
      ModifiedDate: "2026-06-01T09:00:00",
      Emails: [
        {
          EmailAddress: `${name.toLowerCase()}@example.org`,
          IsDefault: true,
          Restriction: name === "K" ? "DoNotContact" : "None",
        },
      ],
    })),
  })) as { contacts: number[] };
  const [a, k] = seeded.contacts.map(String);
  const session = growthZoneManifest.connect(
    {
      connection_id: "growthzone-test",
      base_url: origin,
      page_size: 1,
      limits: { requests_per_second: 1000 },
      credentials: { get: async () => ({ api_key: key }), save: async () => {} },
    },
    { now: clock.now, sleep: clock.sleep },
  );
  const pages: ReadPage[] = [];
  for await (const page of session.read(null)) {
    if (!page.ok) throw new Error(page.error.message);
    pages.push(page.value);
    // A is deleted once her page is read: every contact after her moves up one place.
    if (pages.length === 1)
      await postControl(origin, "/__emulator/act", { action: "delete_contact", contact_id: a });
  }
  expect(
    pages
      .flatMap((p) => p.consent)
      .filter((o) => o.kind === "opt_out")
      .map((o) => o.external_id),
  ).toEqual([k]);
  // Each contact once.
  const ids = pages.flatMap((p) => p.records.map((r) => r.external_id));
  expect(new Set(ids).size).toBe(ids.length);
});
