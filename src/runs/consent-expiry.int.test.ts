/**
 * Implied consent that lapses by rule (CASL; DESIGN.md §2 rule 9) over the emulators: the latest gift
 * in Raiser's Edge NXT grounds a donor's implied consent for two years; when it lapses without
 * express consent, a dry run previews the opt-out, a run records it (mechanism `expiry_rule`) and
 * unsubscribes the person; a gift made since the last read is found before anything lapses.
 */
import { afterEach, describe, expect, it } from "vitest";
import { eventsForContact } from "../ledger/consent-ledger";
import { verifyLedger } from "../ledger/verify-ledger";
import {
  addToReList,
  individual,
  RE_LISTS,
  sqliteBackend,
  startSyncHarness,
  type SyncHarness,
} from "../../test/support/sync-harness";

const sqlite = sqliteBackend();
const DAY = 86_400_000;

const canadian = (email: string, first: string, giftDate: string) =>
  individual(email, first, "Example", {
    address: { address_lines: "1 Main St", city: "Ottawa", country: "Canada", type: "Home" },
    gifts: [{ date: giftDate, amount: 50, type: "Donation" }],
  });

describe("implied consent that lapses by rule (CASL)", () => {
  let h: SyncHarness;
  afterEach(async () => {
    await h.close();
  });

  const start = () =>
    startSyncHarness(sqlite, {
      configure: (raw) => {
        raw["compliance"] = { implied_consent: [{ name: "casl", countries: ["CA", "Canada"] }] };
        const re = (raw["connections"] as Record<string, any>[]).find((c) => c["id"] === "re-nxt")!;
        re["options"] = { ...re["options"], read: { latest_gift: true } };
      },
    });

  /** Months pass between these syncs: the administrator connects each system again (tokens expire). */
  const reconnect = async () => {
    for (const id of ["re-nxt", "cc-main", "cc-appeals"]) await h.storeRefreshToken(id);
    h.reopen();
  };
  const contactOf = async (email: string): Promise<string> => {
    const [c] = await h.store.contacts.findByMatchKey(email);
    if (!c) throw new Error(`no contact for ${email}`);
    return c.id;
  };
  const lapsesOf = async (email: string) =>
    (await eventsForContact(h.store, await contactOf(email)))
      .map((s) => s.event)
      .filter((e) => e.kind === "opt_out" && e.mechanism === "expiry_rule");

  it("a donor whose gift is over two years old is not added (consent_expired); others are", async () => {
    h = await start();
    // The clock starts at 2026-06-01.
    const ids = await h.seedRe([
      canadian("ada@example.org", "Ada", "2024-01-15T00:00:00"),
      canadian("bea@example.org", "Bea", "2026-01-10T00:00:00"),
      individual("cyd@example.org", "Cyd", "Example", {
        address: { address_lines: "9 Elm St", city: "Boston", country: "United States", type: "Home" },
        gifts: [{ date: "2020-01-01T00:00:00", amount: 5, type: "Donation" }],
      }),
    ]);
    await addToReList(h, RE_LISTS.news, ids);
    const report = await h.sync();

    const skipped = report.plan?.skipped.filter((s) => s.connection_id === "cc-main") ?? [];
    expect(skipped.flatMap((s) => s.reasons.map((r) => r.code))).toEqual(["consent_expired"]);
    expect(h.ccContact(h.ccMain, "ada@example.org")).toBeUndefined();
    expect(h.ccContact(h.ccMain, "bea@example.org")?.email_address?.permission_to_send).toBe("implicit");
    // Not covered by the rule (a United States address): the old gift decides nothing.
    expect(h.ccContact(h.ccMain, "cyd@example.org")).toBeDefined();

    const [lapse] = await lapsesOf("ada@example.org");
    expect(lapse).toMatchObject({
      scope: { kind: "global" },
      actor: { kind: "platform" },
      source: { system: "concord", connection: "compliance:casl" },
      occurred_at: "2026-01-15T00:00:00.000Z",
    });
    expect(lapse?.evidence.reason).toContain("from a donation on 2024-01-15");
    expect(lapse?.evidence.reason).toContain("after 2 years");
    expect((await verifyLedger(h.store)).ok).toBe(true);
  });

  it("consent lapsing later is previewed by a dry run, then recorded and applied: the person is unsubscribed", async () => {
    h = await start();
    const ids = await h.seedRe([canadian("bea@example.org", "Bea", "2026-01-10T00:00:00")]);
    await addToReList(h, RE_LISTS.news, ids);
    await h.sync();
    expect(h.ccContact(h.ccMain, "bea@example.org")?.email_address?.permission_to_send).toBe("implicit");

    // Two years after the gift (2028-01-10), and a day more.
    h.advance(Date.parse("2028-01-11T12:00:00Z") - h.now().getTime());
    await reconnect();
    const preview = await h.sync({ dry_run: true });
    expect(preview.plan?.lapses).toHaveLength(1);
    expect(preview.plan?.operations).toContainEqual(
      expect.objectContaining({ connection_id: "cc-main", kind: "record_opt_out" }),
    );
    // A preview records nothing and changes nothing.
    expect(await lapsesOf("bea@example.org")).toEqual([]);
    expect(h.ccContact(h.ccMain, "bea@example.org")?.email_address?.permission_to_send).toBe("implicit");

    const run = await h.sync();
    expect(run.execution?.operations.failed).toBe(0);
    expect(await lapsesOf("bea@example.org")).toHaveLength(1);
    const cc = h.ccContact(h.ccMain, "bea@example.org");
    expect(cc?.email_address?.permission_to_send).toBe("unsubscribed");
    expect(cc?.email_address?.opt_out_source).toBe("Account");

    // Once recorded, the lapse is not recorded or applied again.
    h.advance(DAY);
    const again = await h.sync();
    expect(again.plan?.lapses).toEqual([]);
    expect(again.plan?.operations.filter((o) => o.kind === "record_opt_out")).toEqual([]);
    expect(await lapsesOf("bea@example.org")).toHaveLength(1);
  });

  it("a gift made since the last read is found before consent lapses: nothing lapses", async () => {
    h = await start();
    const [bea] = await h.seedRe([canadian("bea@example.org", "Bea", "2026-01-10T00:00:00")]);
    await addToReList(h, RE_LISTS.news, [bea!]);
    await h.sync();

    // A new gift in December 2027: it moves no constituent date, so an incremental read misses it.
    h.advance(Date.parse("2027-12-01T12:00:00Z") - h.now().getTime());
    await reconnect();
    await h.reAct({
      action: "add_gift",
      constituent_id: bea,
      gift: { date: "2027-12-01T00:00:00", amount: 20 },
    });
    h.advance(Date.parse("2028-01-11T12:00:00Z") - h.now().getTime());
    await reconnect();
    const run = await h.sync();
    expect(run.plan?.lapses).toEqual([]);
    expect(await lapsesOf("bea@example.org")).toEqual([]);
    expect(h.ccContact(h.ccMain, "bea@example.org")?.email_address?.permission_to_send).toBe("implicit");
  });

  it("when the CRM cannot confirm a lapse (its connection broke), nothing lapses this run and the report says why", async () => {
    h = await start();
    const ids = await h.seedRe([
      canadian("bea@example.org", "Bea", "2026-01-10T00:00:00"),
      individual("dan@example.org", "Dan", "Example"),
    ]);
    await addToReList(h, RE_LISTS.news, ids);
    await h.sync();
    // Two years on, nobody reconnected Raiser's Edge NXT: its refresh token expired.
    h.advance(Date.parse("2028-01-11T12:00:00Z") - h.now().getTime());
    for (const id of ["cc-main", "cc-appeals"]) await h.storeRefreshToken(id);
    h.reopen();
    const run = await h.sync();
    expect(run.lapses_deferred).toMatchObject({
      contacts: 1,
      reason: expect.stringContaining("auth_invalid"),
    });
    expect(run.plan?.lapses).toEqual([]);
    expect(await lapsesOf("bea@example.org")).toEqual([]);
    expect(h.ccContact(h.ccMain, "bea@example.org")?.email_address?.permission_to_send).toBe("implicit");
    // The plan without the lapse reuses what the plan with it marked: only Bea is planned again,
    // this run and the next, not every contact twice a run while the CRM stays unreadable.
    expect(run.contacts).toEqual({ planned: 2, unchanged: 1 });
    const next = await h.sync();
    expect(next.lapses_deferred).toMatchObject({ contacts: 1 });
    expect(next.contacts).toEqual({ planned: 2, unchanged: 1 });
    expect(await lapsesOf("bea@example.org")).toEqual([]);
  });
});
