/**
 * Behaviour 10 (executor) at the edge of the budget, on SQLite: when a connection's daily quota is
 * down to its consent reserve, opt-outs still go out and everything else waits, visibly, until the
 * quota comes back; then the waiting work runs.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  addToReList,
  individual,
  RE_LISTS,
  sqliteBackend,
  startSyncHarness,
  type SyncHarness,
} from "../../test/support/sync-harness";

const QUOTA = 200;

describe("the rate budget (SQLite)", () => {
  let h: SyncHarness;
  const re: Record<string, string> = {};

  beforeEach(async () => {
    h = await startSyncHarness(sqliteBackend(), {
      ccDailyQuota: QUOTA,
      configure: (raw) => {
        raw["connections"][1].limits = { daily_quota: QUOTA };
      },
    });
    const ids = await h.seedRe([individual("ada@example.org", "Ada", "Example")]);
    re["ada"] = ids[0] ?? "";
    await addToReList(h, RE_LISTS.news, ids);
    await h.sync();
    h.advance(60_000);
  });
  afterEach(async () => {
    await h.close();
  });

  it("spends the last of the quota on consent: the opt-out goes out, the import waits and says until when", async () => {
    // Other work has spent the day's quota down to the reserve kept for consent.
    const budget = h.connections.get("cc-main")?.budget;
    if (!budget) throw new Error("no budget");
    for (;;) {
      const slot = await budget.acquire("write");
      if (!slot.ok) break;
      slot.value(); // the call is done: its slot is free, its quota spent
    }
    const reserve = budget.usage().remaining;
    expect(reserve).toBeGreaterThan(0);

    const [bob] = await h.seedRe([individual("bob@example.org", "Bob", "Example")]);
    await addToReList(h, RE_LISTS.news, [bob ?? ""]);
    await h.reAct({ action: "set_requests_no_email", constituent_id: re["ada"] });
    h.advance(1_000);

    const report = await h.sync();
    expect(h.ccContact(h.ccMain, "ada@example.org")?.email_address?.permission_to_send).toBe("unsubscribed");
    expect(h.ccContact(h.ccMain, "bob@example.org")).toBeUndefined();
    expect(report.execution?.waiting).toEqual([
      expect.objectContaining({
        connection_id: "cc-main",
        code: "quota_exceeded",
        retry_at: expect.any(String),
      }),
    ]);
    // The platform's read waited too (reads come last); the plan used what was last read.
    expect(report.pulls.find((p) => p.connection_id === "cc-main")?.error?.code).toBe("quota_exceeded");

    // The next day the waiting import runs.
    h.advance(24 * 3_600_000);
    const next = await h.sync();
    expect(next.execution?.waiting).toEqual([]);
    expect(h.ccContact(h.ccMain, "bob@example.org")).toBeDefined();
  });
});
