import { describe, expect, it } from "vitest";
import type { WebhookChange } from "../connectors/connector";
import { distinctChanges, recentReads, seenEvents, webhookShareSpent } from "./webhook-flood";

const change = (
  event_id: string,
  external_id: string,
  kind: WebhookChange["change"] = "changed",
): WebhookChange => ({
  event_id,
  type: "t",
  external_id,
  occurred_at: "2026-06-01T00:00:00.000Z",
  change: kind,
});

describe("webhook flood controls", () => {
  it("stores an event once a day per connection, and takes a redelivery of one whose delivery was not stored", () => {
    let now = Date.parse("2026-06-01T00:00:00.000Z");
    const seen = seenEvents(() => new Date(now));
    const stored = (connection: string, changes: WebhookChange[], ok = true) => {
      const claim = seen.claim(connection, changes);
      claim.settle(ok);
      return claim.fresh;
    };
    expect(stored("re", [change("e1", "a"), change("e1", "a"), change("e2", "b")])).toHaveLength(2);
    expect(stored("re", [change("e1", "a")])).toEqual([]);
    expect(stored("other", [change("e1", "a")])).toHaveLength(1);
    expect(stored("re", [change("e3", "b")], false)).toHaveLength(1);
    expect(stored("re", [change("e3", "b")])).toHaveLength(1);
    now += 24 * 3_600_000;
    expect(stored("re", [change("e1", "a")])).toHaveLength(1);
  });

  it("answers a redelivery that arrives while the first is being stored only as that write went", async () => {
    const seen = seenEvents(() => new Date("2026-06-01T00:00:00.000Z"));
    const first = seen.claim("re", [change("e1", "a")]);
    const retry = seen.claim("re", [change("e1", "a"), change("e2", "b")]);
    expect(retry.fresh.map((c) => c.event_id)).toEqual(["e2"]);
    expect(retry.elsewhere).toHaveLength(1);
    first.settle(false);
    expect(await Promise.all(retry.elsewhere)).toEqual([false]);
    retry.settle(true);
    // Not stored by the first delivery: the next one stores it.
    const again = seen.claim("re", [change("e1", "a"), change("e2", "b")]);
    expect(again.fresh.map((c) => c.event_id)).toEqual(["e1"]);
    expect(again.elsewhere).toEqual([]);
  });

  it("keeps one hint per record and kind of change", () => {
    const flood = Array.from({ length: 500 }, (_, i) => change(`e${i}`, i % 2 ? "a" : "b"));
    expect(
      distinctChanges([...flood, change("x", "a", "deleted")]).map((c) => `${c.external_id} ${c.change}`),
    ).toEqual(["b changed", "a changed", "a deleted"]);
  });

  it("keeps an announced opt-out when a plain change to the same record follows it", () => {
    const unsubscribed = { ...change("u", "a", "consent_changed"), opt_out: { reason: "manual" } };
    const byAdmin = { ...change("v", "a", "consent_changed"), opt_out: { actor: "account" as const } };
    const cleaned = change("c", "a", "consent_changed");
    expect(distinctChanges([unsubscribed, unsubscribed, byAdmin, cleaned])).toEqual([
      unsubscribed,
      byAdmin,
      cleaned,
    ]);
  });

  it("skips records read after the delivery arrived, not before", () => {
    const reads = recentReads();
    const changes = [change("1", "a"), change("2", "b")];
    reads.record("re", [change("0", "a")], Date.parse("2026-06-01T00:00:10.000Z"));
    expect(reads.uncovered("re", "2026-06-01T00:00:05.000Z", changes).map((c) => c.external_id)).toEqual([
      "b",
    ]);
    expect(reads.uncovered("re", "2026-06-01T00:00:20.000Z", changes)).toHaveLength(2);
    reads.prune(Date.parse("2026-06-01T00:01:00.000Z"));
    expect(reads.uncovered("re", "2026-06-01T00:00:05.000Z", changes)).toHaveLength(2);
  });

  it("a re-read for one kind of change does not cover a delivery of another kind: a constituent's change reads no solicit codes", () => {
    const reads = recentReads();
    reads.record("re", [change("1", "a", "changed")], Date.parse("2026-06-01T00:00:10.000Z"));
    const solicitCode = change("2", "a", "consent_changed");
    expect(
      reads.uncovered("re", "2026-06-01T00:00:05.000Z", [change("3", "a", "changed"), solicitCode]),
    ).toEqual([solicitCode]);
  });

  it("never skips a delivery that announced an opt-out: the read since may not show it", () => {
    const reads = recentReads();
    reads.record("mc", [change("0", "a")], Date.parse("2026-06-01T00:00:10.000Z"));
    const announced = { ...change("1", "a"), opt_out: {} };
    expect(reads.uncovered("mc", "2026-06-01T00:00:05.000Z", [announced, change("2", "a")])).toEqual([
      announced,
    ]);
  });

  it("leaves the last quarter of a daily quota to polls and consent writes", () => {
    const usage = (remaining: number | null, daily_quota: number | null) => ({
      used_today: 0,
      remaining,
      daily_quota,
      resets_at: null,
      in_flight: 0,
      max_concurrency: 1,
    });
    expect(webhookShareSpent(usage(2_600, 10_000))).toBe(false);
    expect(webhookShareSpent(usage(2_500, 10_000))).toBe(true);
    expect(webhookShareSpent(usage(null, null))).toBe(false);
  });
});
