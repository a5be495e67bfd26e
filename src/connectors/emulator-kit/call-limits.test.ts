import { describe, expect, it } from "vitest";
import { CallLimits, hhmmss } from "./call-limits";

function at(iso: string) {
  let t = Date.parse(iso);
  return { now: () => new Date(t), set: (next: string) => (t = Date.parse(next)) };
}

describe("emulated call limits", () => {
  it("sliding: any 1,000 ms holds the rate; calendar: each whole second starts afresh", () => {
    const clock = at("2026-06-01T10:00:00.900Z");
    const sliding = new CallLimits({ now: clock.now, per_second: 2, window: "sliding", daily: null });
    const calendar = new CallLimits({ now: clock.now, per_second: 2, window: "calendar", daily: null });
    for (const l of [sliding, calendar]) {
      expect(l.admit().kind).toBe("ok");
      expect(l.admit().kind).toBe("ok");
      expect(l.admit()).toEqual({ kind: "rate_limited", retry_after_seconds: 1 });
    }
    clock.set("2026-06-01T10:00:01.100Z");
    expect(sliding.admit().kind).toBe("rate_limited");
    expect(calendar.admit().kind).toBe("ok");
  });

  it("spends the daily quota, says how long until 00:00 UTC, and renews then; refusals cost nothing", () => {
    const clock = at("2026-06-01T23:59:00.000Z");
    const limits = new CallLimits({ now: clock.now, per_second: null, window: "sliding", daily: 2 });
    expect(limits.admit().kind).toBe("ok");
    expect(limits.admit().kind).toBe("ok");
    expect(limits.admit()).toEqual({ kind: "quota_exceeded", retry_after_seconds: 60 });
    expect(limits.usage()).toMatchObject({ day: "2026-06-01", quota_used: 2, quota_limit: 2 });
    clock.set("2026-06-02T00:00:00.000Z");
    expect(limits.admit().kind).toBe("ok");
    expect(limits.usage()).toMatchObject({ day: "2026-06-02", quota_used: 1 });
    expect(hhmmss(3_725)).toBe("01:02:05");
  });
});
