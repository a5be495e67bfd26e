import { describe, expect, it } from "vitest";
import { createFakeClock } from "../../../test/support/fake-clock";
import {
  RateLimiter,
  type CallPriority,
  type PersistedBudget,
  type PersistedBudgetChange,
} from "./rate-limiter";

/** A kept budget as one process sees it (the store's shared count is tested over real stores). */
function keptBudget(): {
  load: () => Promise<PersistedBudget | undefined>;
  add: (c: PersistedBudgetChange) => Promise<PersistedBudget>;
  kept: () => PersistedBudget | undefined;
} {
  let kept: PersistedBudget | undefined;
  return {
    load: () => Promise.resolve(kept),
    add: (c) => {
      const same =
        kept !== undefined &&
        c.period_start < new Date(Date.parse(kept.period_start) + c.period_ms).toISOString() &&
        (kept.blocked_until === null || c.period_start < kept.blocked_until);
      const next: PersistedBudget = same
        ? {
            ...kept!,
            used: kept!.used + c.calls,
            blocked_until: c.blocked_until ?? kept!.blocked_until,
            paused_until: c.paused_until ?? kept!.paused_until,
          }
        : {
            period_start: c.period_start,
            used: c.calls,
            blocked_until: c.blocked_until,
            paused_until: c.paused_until,
          };
      kept = next;
      return Promise.resolve(next);
    },
    kept: () => kept,
  };
}

const limits = {
  requests_per_second: 4,
  daily_quota: { calls: 100, reset: "utc_midnight" as const },
  max_concurrency: 1000,
};

describe("RateLimiter", () => {
  it("admits at most requests_per_second calls in any one-second window", async () => {
    const clock = createFakeClock();
    const limiter = new RateLimiter({ limits, now: clock.now, sleep: clock.sleep, consent_reserve: 0 });
    const grantedAt: number[] = [];
    for (let i = 0; i < 12; i++) {
      const r = await limiter.acquire("read");
      expect(r.ok).toBe(true);
      grantedAt.push(clock.now().getTime());
    }
    for (let i = 4; i < grantedAt.length; i++)
      expect(grantedAt[i]! - grantedAt[i - 4]!).toBeGreaterThanOrEqual(1000);
    expect(clock.slept()).toBeGreaterThanOrEqual(2000);
  });

  it("keeps a rate below one a second: 0.5 is one call in any two seconds", async () => {
    const clock = createFakeClock();
    const limiter = new RateLimiter({
      limits: { ...limits, requests_per_second: 0.5 },
      now: clock.now,
      sleep: clock.sleep,
      consent_reserve: 0,
    });
    const start = clock.now().getTime();
    const grantedAt: number[] = [];
    for (let i = 0; i < 3; i++) {
      expect((await limiter.acquire("read")).ok).toBe(true);
      grantedAt.push(clock.now().getTime() - start);
    }
    expect(grantedAt).toEqual([0, 2000, 4000]);
  });

  it("serves consent work before writes and reads waiting at the same time", async () => {
    const clock = createFakeClock();
    const limiter = new RateLimiter({
      limits: { ...limits, requests_per_second: 1 },
      now: clock.now,
      sleep: clock.sleep,
    });
    const order: CallPriority[] = [];
    const calls = (["read", "write", "read", "consent", "write", "consent"] as const).map((p) =>
      limiter.acquire(p).then(() => order.push(p)),
    );
    await Promise.all(calls);
    // The first read was admitted at once; of those that waited, consent went first, then writes.
    expect(order).toEqual(["read", "consent", "consent", "write", "write", "read"]);
  });

  it("survives a restart: a new limiter goes on from the kept count in the same period, afresh in the next", async () => {
    const clock = createFakeClock("2026-03-01T12:00:00.000Z");
    const persist = keptBudget();
    const first = new RateLimiter({
      limits,
      now: clock.now,
      sleep: clock.sleep,
      consent_reserve: 0,
      persist,
    });
    for (let i = 0; i < 30; i++) expect((await first.acquire("read")).ok).toBe(true);
    await first.flush();
    expect(persist.kept()).toEqual({
      period_start: "2026-03-01T00:00:00.000Z",
      used: 30,
      blocked_until: null,
      paused_until: null,
    });

    // The process restarts: the quota it spent is still spent.
    const second = new RateLimiter({
      limits,
      now: clock.now,
      sleep: clock.sleep,
      consent_reserve: 0,
      persist,
    });
    await second.flush();
    expect(second.usage()).toMatchObject({ used_today: 30, remaining: 70 });
    second.quotaExhausted(new Date("2026-03-01T18:00:00.000Z"));
    await second.flush();
    const third = new RateLimiter({
      limits,
      now: clock.now,
      sleep: clock.sleep,
      consent_reserve: 0,
      persist,
    });
    const refused = await third.acquire("consent");
    expect(refused.ok ? "" : refused.error.code).toBe("quota_exceeded");

    // Another day: counted afresh.
    clock.advance(86_400_000);
    const fourth = new RateLimiter({
      limits,
      now: clock.now,
      sleep: clock.sleep,
      consent_reserve: 0,
      persist,
    });
    expect((await fourth.acquire("read")).ok).toBe(true);
    expect(fourth.usage().used_today).toBe(1);
  });

  it("keeps many calls in one write, at most a second after they were made", async () => {
    const clock = createFakeClock("2026-03-01T12:00:00.000Z");
    const persist = keptBudget();
    let adds = 0;
    const limiter = new RateLimiter({
      limits,
      now: clock.now,
      sleep: clock.sleep,
      consent_reserve: 0,
      persist: {
        ...persist,
        add: (c) => {
          adds += 1;
          return persist.add(c);
        },
      },
    });
    for (let i = 0; i < 4; i++) expect((await limiter.acquire("read")).ok).toBe(true);
    // The next call a second later first keeps the four in one write (a timer also keeps them
    // after a second of real time, when no call comes); a stopping process flushes the rest.
    clock.advance(1_000);
    expect((await limiter.acquire("read")).ok).toBe(true);
    expect(persist.kept()?.used).toBe(4);
    expect(adds).toBeLessThanOrEqual(2);
    await limiter.flush();
    expect(persist.kept()?.used).toBe(5);
  });

  it("carries on in memory when the store cannot keep the count, and says so", async () => {
    const clock = createFakeClock();
    const errors: unknown[] = [];
    const limiter = new RateLimiter({
      limits,
      now: clock.now,
      sleep: clock.sleep,
      persist: {
        load: () => Promise.reject(new Error("database is locked")),
        add: () => Promise.reject(new Error("disk full")),
        onError: (e) => errors.push(e),
      },
    });
    expect((await limiter.acquire("consent")).ok).toBe(true);
    await limiter.flush();
    expect(limiter.usage().used_today).toBe(1);
    expect([...new Set(errors.map((e) => (e as Error).message))]).toEqual([
      "database is locked",
      "disk full",
    ]);
  });

  it("keeps the last calls of the day for consent work and says when the rest resumes", async () => {
    const clock = createFakeClock("2026-11-22T23:00:00.000Z");
    const limiter = new RateLimiter({
      limits: { ...limits, requests_per_second: 1000, daily_quota: { calls: 10, reset: "utc_midnight" } },
      now: clock.now,
      sleep: clock.sleep,
      consent_reserve: 3,
    });
    for (let i = 0; i < 7; i++) expect((await limiter.acquire("write")).ok).toBe(true);
    const deferred = await limiter.acquire("write");
    expect(deferred).toMatchObject({
      ok: false,
      error: { code: "quota_exceeded", retry_at: "2026-11-23T00:00:00.000Z" },
    });
    for (let i = 0; i < 3; i++) expect((await limiter.acquire("consent")).ok).toBe(true);
    expect((await limiter.acquire("consent")).ok).toBe(false);
    expect(limiter.usage()).toMatchObject({ used_today: 10, remaining: 0 });
    clock.set("2026-11-23T00:00:01.000Z");
    expect((await limiter.acquire("read")).ok).toBe(true);
    expect(limiter.usage()).toMatchObject({ used_today: 1, remaining: 9 });
  });

  it("holds every call after the vendor throttles, and refuses all after it reports the quota spent", async () => {
    const clock = createFakeClock();
    const limiter = new RateLimiter({ limits, now: clock.now, sleep: clock.sleep, consent_reserve: 0 });
    limiter.pause(5000);
    const before = clock.now().getTime();
    await limiter.acquire("consent");
    expect(clock.now().getTime() - before).toBe(5000);
    limiter.quotaExhausted(new Date("2026-11-22T12:00:00.000Z"));
    const r = await limiter.acquire("consent");
    expect(r).toMatchObject({ ok: false, error: { code: "quota_exceeded" } });
  });

  it("resumes when the vendor's stated replenishment time passes, not at the end of the day", async () => {
    const clock = createFakeClock("2026-11-22T10:00:00.000Z");
    const limiter = new RateLimiter({
      limits: { ...limits, daily_quota: { calls: 100, reset: "rolling_24h" } },
      now: clock.now,
      sleep: clock.sleep,
      consent_reserve: 0,
    });
    limiter.quotaExhausted(new Date("2026-11-22T11:00:00.000Z"));
    expect(await limiter.acquire("read")).toMatchObject({
      ok: false,
      error: { code: "quota_exceeded", retry_at: "2026-11-22T11:00:00.000Z" },
    });
    clock.set("2026-11-22T11:00:01.000Z");
    expect((await limiter.acquire("read")).ok).toBe(true);
    expect(limiter.usage()).toMatchObject({ used_today: 1 });
  });

  it("lets at most max_concurrency calls be in flight; a release lets the next one in", async () => {
    const clock = createFakeClock();
    const limiter = new RateLimiter({
      limits: { ...limits, requests_per_second: 1000, max_concurrency: 2 },
      now: clock.now,
      sleep: clock.sleep,
    });
    const first = await limiter.acquire("read");
    const second = await limiter.acquire("read");
    if (!first.ok || !second.ok) throw new Error("the first two calls must be admitted");
    let thirdIn = false;
    const third = limiter.acquire("consent").then((r) => {
      thirdIn = true;
      return r;
    });
    // Nothing frees a slot yet: however long we wait, the third call stays out.
    for (let i = 0; i < 20; i++) await Promise.resolve();
    expect(thirdIn).toBe(false);
    expect(limiter.usage()).toMatchObject({ in_flight: 2, max_concurrency: 2 });
    first.value();
    first.value(); // releasing twice frees one slot, not two
    expect((await third).ok).toBe(true);
    expect(limiter.usage().in_flight).toBe(2);
    expect(clock.slept()).toBe(0);
  });

  it("has no quota figures and never defers when the vendor sets no daily quota", async () => {
    const clock = createFakeClock();
    const limiter = new RateLimiter({
      limits: { requests_per_second: 1000, max_concurrency: 10 },
      now: clock.now,
      sleep: clock.sleep,
    });
    for (let i = 0; i < 2000; i++) {
      const r = await limiter.acquire("write");
      if (!r.ok) throw new Error(r.error.message);
      r.value();
    }
    expect(limiter.usage()).toMatchObject({
      used_today: 2000,
      remaining: null,
      daily_quota: null,
      resets_at: null,
    });
  });

  it("goes by its own window, and says so, when the shared window cannot be reached", async () => {
    const clock = createFakeClock();
    const kept = keptBudget();
    const errors: unknown[] = [];
    const limiter = new RateLimiter({
      limits,
      now: clock.now,
      sleep: clock.sleep,
      consent_reserve: 0,
      persist: {
        load: kept.load,
        add: kept.add,
        reserve: () => Promise.reject(new Error("connection terminated unexpectedly")),
        onError: (error) => errors.push(error),
      },
    });
    const start = clock.now().getTime();
    const grantedAt: number[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await limiter.acquire("read");
      expect(r.ok).toBe(true);
      if (r.ok) r.value();
      grantedAt.push(clock.now().getTime() - start);
    }
    // Every call went, four in the first second as the process's own window allows, the fifth after.
    expect(grantedAt.slice(0, 4)).toEqual([0, 0, 0, 0]);
    expect(grantedAt[4]).toBeGreaterThanOrEqual(1000);
    expect(errors).toHaveLength(5);
  });
});
