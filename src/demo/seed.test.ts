/** The demo's generated world: the same every time, with the shares the docs promise. */
import { describe, expect, it } from "vitest";
import { normaliseEmail } from "../core/identity/normalise-email";
import { DEMO_SHARES, RE_LISTS, generateDemoWorld } from "./seed";

const NOW = new Date("2026-06-01T12:00:00.000Z");
const RE_EMAIL_CHECK = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

describe("generateDemoWorld", () => {
  const world = generateDemoWorld({ size: 5_000, now: NOW });
  const people = world.people;
  const count = (test: (p: (typeof people)[number]) => boolean) => people.filter(test).length;

  it("is deterministic: the same size, seed and time give the same world; another seed another", () => {
    expect(generateDemoWorld({ size: 5_000, now: NOW })).toEqual(world);
    const other = generateDemoWorld({ size: 5_000, now: NOW, seed: 7 });
    expect(other.people.map((p) => p.email)).not.toEqual(people.map((p) => p.email));
  });

  it.each([
    ["organisations", (p: (typeof people)[number]) => p.type === "Organization", DEMO_SHARES.organisations],
    ["without email", (p: (typeof people)[number]) => p.email === null, DEMO_SHARES.without_email],
    [
      "invalid email",
      (p: (typeof people)[number]) => p.email !== null && !p.email_valid,
      DEMO_SHARES.invalid_email,
    ],
    [
      "opted out of all email in the CRM",
      (p: (typeof people)[number]) => p.opted_out_of_all_email,
      DEMO_SHARES.opted_out_of_all_email,
    ],
    ["deceased", (p: (typeof people)[number]) => p.deceased, DEMO_SHARES.deceased],
    ["inactive", (p: (typeof people)[number]) => p.inactive, DEMO_SHARES.inactive],
    ["Appeals opt-out", (p: (typeof people)[number]) => p.appeals_opt_out, DEMO_SHARES.appeals_opt_out],
  ])("has its share of %s", (_name, test, share) => {
    expect(count(test)).toBe(Math.round(share * 5_000));
  });

  it("fills each list to its share, with overlapping membership", () => {
    for (const list of RE_LISTS) {
      const seeded = world.crm.lists.find((l) => l.id === list.id);
      expect(seeded?.members).toHaveLength(Math.round(list.share * 5_000));
    }
    const inBoth = count((p) => p.lists.includes("newsletter") && p.lists.includes("appeals"));
    expect(inBoth).toBeGreaterThan(100);
    const appeals = world.crm.lists.find((l) => l.name === "Appeal recipients")?.members ?? [];
    const orgIds = new Set(people.filter((p) => p.type === "Organization").map((p) => p.re_id));
    expect(appeals.some((id) => orgIds.has(id))).toBe(false);
  });

  it("writes addresses Raiser's Edge accepts; the invalid ones fail Concord's check, the others pass, none twice", () => {
    const emails = people.flatMap((p) => (p.email === null ? [] : [p]));
    for (const p of emails) {
      expect(p.email).toMatch(RE_EMAIL_CHECK);
      expect(normaliseEmail(p.email ?? "").ok).toBe(p.email_valid);
    }
    const lower = emails.map((p) => (p.email ?? "").toLowerCase());
    expect(new Set(lower).size).toBe(lower.length);
  });

  it("gives some people a consent history and every person a name", () => {
    const withHistory = world.crm.people.filter((c) => (c.consent_records?.length ?? 0) > 0);
    expect(withHistory.length).toBeGreaterThan(0.15 * 5_000);
    const sources = new Set(withHistory.flatMap((c) => c.consent_records?.map((r) => r.source) ?? []));
    expect([...sources]).toEqual(expect.arrayContaining(["Web form", "Event registration", "Phone"]));
    for (const c of world.crm.people) {
      if (c.kind === "individual") expect(c.last?.length).toBeGreaterThan(0);
      else expect(c.organisation_name?.length).toBeGreaterThan(0);
      for (const r of c.consent_records ?? []) expect(Date.parse(r.at)).toBeLessThan(NOW.getTime());
    }
  });

  it("puts contacts in the Constant Contact accounts before Concord: some from RE, some unsubscribed, some web-only", () => {
    const main = world.ccContacts.filter((c) => c.account === "main");
    const appeals = world.ccContacts.filter((c) => c.account === "appeals");
    expect(main).toHaveLength(Math.round(DEMO_SHARES.cc_main_existing * 5_000));
    expect(appeals).toHaveLength(Math.round(DEMO_SHARES.cc_appeals_existing * 5_000));
    expect(main.filter((c) => c.re_id !== null)).toHaveLength(Math.round(main.length * 0.6));
    expect(main.filter((c) => c.unsubscribed).length).toBeGreaterThan(0.1 * main.length);
    expect(appeals.every((c) => c.re_id !== null)).toBe(true);
    for (const c of world.platforms.main.contacts) {
      expect(normaliseEmail(c.email).ok).toBe(true);
      if (c.subscription.status === "unsubscribed") expect(c.list_ids).toEqual([]);
    }
  });

  it("scales down: a small world still has a bit of everything", () => {
    const small = generateDemoWorld({ size: 300, now: NOW });
    expect(small.people).toHaveLength(300);
    expect(small.people.some((p) => p.type === "Organization")).toBe(true);
    expect(small.people.some((p) => p.email === null)).toBe(true);
    expect(small.people.some((p) => p.email !== null && !p.email_valid)).toBe(true);
    expect(small.ccContacts.some((c) => c.account === "main" && c.unsubscribed && c.re_id !== null)).toBe(
      true,
    );
  });
});
