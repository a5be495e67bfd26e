// Two workers of one installation spend one API budget: their calls add up in the store, a quota
// one of them spent refuses the other, a pause the vendor asked of one holds the other back, and
// together they keep to the vendor's per-second rate.
import { afterEach, beforeEach, expect, it } from "vitest";
import { RateLimiter, type BudgetLimits } from "../connectors/http/rate-limiter";
import type { CallWindow } from "../core/call-window";
import { createFakeClock } from "../../test/support/fake-clock";
import { describeOnBackends, type TestStore } from "../../test/support/store-backends";

const limits = {
  requests_per_second: 1000,
  daily_quota: { calls: 20, reset: "utc_midnight" as const },
  max_concurrency: 10,
};

describeOnBackends("a connection's budget shared by workers", (backend) => {
  let t: TestStore;
  beforeEach(async () => {
    t = await backend.create();
  });
  /** Every worker a test made: its counts are kept before the store goes. */
  let made: RateLimiter[] = [];
  afterEach(async () => {
    await Promise.all(made.map((w) => w.flush()));
    made = [];
    await t.cleanup();
  });

  /** One call: its slot is given back at once, as a connector does once the answer is read. */
  const call = async (limiter: RateLimiter): Promise<boolean> => {
    const slot = await limiter.acquire("read");
    if (slot.ok) slot.value();
    return slot.ok;
  };

  /** A worker's budget of connection cc-main, kept in the store; `reserve` shares its rate too. */
  const worker = (
    clock: Pick<ReturnType<typeof createFakeClock>, "now" | "sleep">,
    options: {
      limits?: BudgetLimits;
      reserve?: (now_ms: number, window: CallWindow) => Promise<number>;
    } = {},
  ) => {
    // This test's store, whatever test runs when the worker's timed save comes (a save a second
    // late would otherwise carry this test's pause into the next test's store).
    const store = t.store;
    const limiter = new RateLimiter({
      limits: options.limits ?? limits,
      now: clock.now,
      sleep: clock.sleep,
      consent_reserve: 0,
      persist: {
        load: () => store.budgets.get("cc-main"),
        add: (change) => store.budgets.add("cc-main", change),
        ...(options.reserve !== undefined ? { reserve: options.reserve } : {}),
      },
    });
    made.push(limiter);
    return limiter;
  };

  it("counts both workers' calls once, and the quota one spent refuses the other", async () => {
    const clock = createFakeClock("2026-03-01T12:00:00.000Z");
    const a = worker(clock);
    const b = worker(clock);
    await Promise.all(Array.from({ length: 16 }, (_, i) => call(i % 2 === 0 ? a : b)));
    await Promise.all([a.flush(), b.flush()]);
    expect((await t.store.budgets.get("cc-main"))?.used).toBe(16);
    // A second later each asks the store again before a call: both see the other's calls.
    clock.advance(1_000);
    for (let i = 0; i < 4; i += 1) expect(await call(a)).toBe(true);
    await a.flush();
    clock.advance(1_000);
    const refused = await b.acquire("read");
    expect(refused.ok ? "" : refused.error.code).toBe("quota_exceeded");
    expect(b.usage().used_today).toBe(20);
  });

  it("holds the other worker back while the vendor's per-second pause lasts", async () => {
    const clock = createFakeClock("2026-03-01T12:00:00.000Z");
    const a = worker(clock);
    const b = worker(clock);
    expect(await call(a)).toBe(true);
    a.pause(30_000);
    await a.flush();
    clock.advance(1_000);
    const sleptBefore = clock.slept();
    expect(await call(b)).toBe(true);
    // b waited out what was left of a's pause before its call went.
    expect(clock.slept() - sleptBefore).toBeGreaterThanOrEqual(29_000);
    expect(b.usage().paused_until).toBeUndefined();
  });

  it("keeps both workers' calls together within the per-second rate", async () => {
    // A clock whose sleeps wake at the time asked for, however many sleep at once.
    let ms = Date.parse("2026-03-01T12:00:00.000Z");
    const clock = {
      now: () => new Date(ms),
      sleep: async (wait: number): Promise<void> => {
        const wake = ms + wait;
        await Promise.resolve();
        ms = Math.max(ms, wake);
      },
    };
    const start = ms;
    /** A worker, with the times the store gave its calls and the times it let them go. */
    const rated = () => {
      const reserved: number[] = [];
      const went: number[] = [];
      const limiter = worker(clock, {
        limits: { requests_per_second: 4, max_concurrency: 10 },
        reserve: async (now_ms, window) => {
          const at = await t.store.budgets.reserveCall("cc-main", { now_ms, window });
          reserved.push(at - start);
          return at;
        },
      });
      const call = () =>
        limiter.acquire("read").then((slot) => {
          went.push(clock.now().getTime() - start);
          if (slot.ok) slot.value();
          return slot.ok;
        });
      return { call, reserved, went };
    };
    const a = rated();
    const b = rated();
    const ok = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? a : b).call()));
    expect(ok.every(Boolean)).toBe(true);
    // The times the two were given, together: 4 a second, as one worker alone would go (each
    // alone lets 4 go at once: 8 in the first second).
    const all = [...a.reserved, ...b.reserved].sort((x, y) => x - y);
    expect(all).toEqual([
      0, 0, 0, 0, 1000, 1000, 1000, 1000, 2000, 2000, 2000, 2000, 3000, 3000, 3000, 3000, 4000, 4000, 4000,
      4000,
    ]);
    // Each worker let each call go no earlier than its time.
    for (const w of [a, b]) {
      expect(w.went).toHaveLength(w.reserved.length);
      w.went.forEach((at, i) => {
        expect(at).toBeGreaterThanOrEqual(w.reserved[i]!);
      });
    }
  });
});
