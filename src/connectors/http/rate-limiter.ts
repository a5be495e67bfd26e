/**
 * The one limiter every connection's calls go through: a per-second window, the calls in flight at
 * once, and a daily quota where the vendor has one, all from the manifest's declared limits, with
 * consent work served first and a slice of the quota kept for it.
 */
import type {
  CallBudget,
  CallPriority,
  ConnectorError,
  ConnectorLimits,
  ConnectorRuntime,
  QuotaUsage,
  ReleaseSlot,
} from "../connector";
import { callWindow, nextCallTime, type CallWindow } from "../../core/call-window";
import { err, ok, type Result } from "../../core/result";

export type { CallPriority, QuotaUsage } from "../connector";

const RANK: Record<CallPriority, number> = { consent: 0, write: 1, read: 2 };

/** The limits the budget enforces: the manifest's, with a connection's own rate or quota applied. */
export type BudgetLimits = Pick<ConnectorLimits, "requests_per_second" | "daily_quota" | "max_concurrency">;

export type RateLimiterOptions = {
  limits: BudgetLimits;
  now: () => Date;
  sleep: (ms: number) => Promise<void>;
  /** Calls of the daily quota kept for consent work; other work is deferred once only these are left. */
  consent_reserve?: number;
  /** Calls already used today (e.g. restored from the store after a restart). */
  used_today?: number;
  /**
   * Where the count is kept across restarts and shared with every other process of the
   * installation: loaded before the first call is let through; after every counted call the calls
   * counted since are added to the kept count (one add at a time), and what comes back (the whole
   * count, the latest quota block and pause any process was told of) is adopted. A budget idle for
   * a second asks again before its next call. A load or add that fails is reported and the budget
   * carries on from what it knows, adding those calls at the next add.
   */
  persist?: {
    load: () => Promise<PersistedBudget | undefined>;
    add: (change: PersistedBudgetChange) => Promise<PersistedBudget>;
    /**
     * Where several processes may call the vendor for this connection at once: reserves each call
     * in the window they all share and answers when it may go (epoch ms). The process's own
     * window is kept too, and is what holds when a reservation fails.
     */
    reserve?: (now_ms: number, window: CallWindow) => Promise<number>;
    onError?: (error: unknown) => void;
  };
};

/** A budget's state as kept across restarts and processes. */
export type PersistedBudget = {
  period_start: string;
  used: number;
  blocked_until: string | null;
  paused_until: string | null;
};

/** What one process adds to the kept budget: its calls since its last add, and what it was told. */
export type PersistedBudgetChange = {
  period_start: string;
  period_ms: number;
  calls: number;
  blocked_until: string | null;
  paused_until: string | null;
};

/** How stale the shared count may be before a call asks the store again. */
const SHARED_REFRESH_MS = 1_000;

type Waiter = {
  priority: CallPriority;
  seq: number;
  resolve: (r: Result<ReleaseSlot, ConnectorError>) => void;
};

const DAY_MS = 86_400_000;

export class RateLimiter implements CallBudget {
  private readonly waiters: Waiter[] = [];
  /** This process's latest call times, within the rate's window. */
  private recent: number[] = [];
  private readonly window: CallWindow;
  private seq = 0;
  private pumping = false;
  private inFlight = 0;
  private usedToday: number;
  private dayStart: number;
  private pausedUntil = 0;
  private quotaBlockedUntil = 0;
  private readonly reserve: number;
  private loaded: Promise<void> | undefined;
  private saving: Promise<void> | undefined;
  private dirty = false;
  /** Calls counted here and not yet added to the kept count. */
  private unsaved = 0;
  private syncedAt = Number.NEGATIVE_INFINITY;
  /** Saves the calls counted meanwhile within a second of the first of them. */
  private saveTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: RateLimiterOptions) {
    this.usedToday = options.used_today ?? 0;
    this.window = callWindow(options.limits.requests_per_second);
    this.dayStart = this.periodStart(options.now().getTime());
    const quota = options.limits.daily_quota?.calls;
    this.reserve =
      options.consent_reserve ?? (quota === undefined ? 0 : Math.min(500, Math.floor(quota * 0.05)));
    // Asked at once, so the kept count is known before the first call (and before any transaction).
    void this.load();
  }

  /**
   * Waits for a slot and returns the function that gives it back once the call's answer is read;
   * resolves with `quota_exceeded` when today's budget (for this priority) is spent.
   */
  acquire(priority: CallPriority): Promise<Result<ReleaseSlot, ConnectorError>> {
    return new Promise((resolve) => {
      this.waiters.push({ priority, seq: this.seq++, resolve });
      void this.pump();
    });
  }

  /** The vendor said the per-second limit was hit: hold every call for `ms`. */
  pause(ms: number): void {
    this.pausedUntil = Math.max(this.pausedUntil, this.options.now().getTime() + ms);
    void this.save();
  }

  /** The vendor said the daily quota is spent: refuse calls until `until`. */
  quotaExhausted(until: Date): void {
    this.quotaBlockedUntil = Math.max(this.quotaBlockedUntil, until.getTime());
    void this.save();
  }

  /** Restores the kept count once: a restart within the same quota period goes on counting. */
  private load(): Promise<void> {
    const persist = this.options.persist;
    if (persist === undefined) return Promise.resolve();
    this.loaded ??= persist.load().then(
      (kept) => {
        if (kept !== undefined) this.adopt(kept);
        this.syncedAt = this.options.now().getTime();
      },
      (error: unknown) => persist.onError?.(error),
    );
    return this.loaded;
  }

  /** Takes what every process has counted and been told, as the store keeps it. */
  private adopt(kept: PersistedBudget): void {
    const now = this.options.now().getTime();
    const start = Date.parse(kept.period_start);
    if (!Number.isNaN(start) && start <= now && now < start + DAY_MS) {
      this.dayStart = start;
      this.usedToday = kept.used + this.unsaved;
    }
    const blocked = kept.blocked_until === null ? NaN : Date.parse(kept.blocked_until);
    if (!Number.isNaN(blocked) && blocked > now)
      this.quotaBlockedUntil = Math.max(this.quotaBlockedUntil, blocked);
    const paused = kept.paused_until === null ? NaN : Date.parse(kept.paused_until);
    if (!Number.isNaN(paused) && paused > now) this.pausedUntil = Math.max(this.pausedUntil, paused);
  }

  /** Adds the newest calls to the kept count; one add at a time, and one more if calls came meanwhile. */
  private save(): Promise<void> {
    const persist = this.options.persist;
    if (persist === undefined) return Promise.resolve();
    if (this.saving !== undefined) {
      this.dirty = true;
      return this.saving;
    }
    this.saving = (async () => {
      do {
        this.dirty = false;
        const calls = this.unsaved;
        this.unsaved = 0;
        const change: PersistedBudgetChange = {
          period_start: new Date(this.dayStart).toISOString(),
          period_ms: DAY_MS,
          calls,
          blocked_until: this.quotaBlockedUntil > 0 ? new Date(this.quotaBlockedUntil).toISOString() : null,
          paused_until: this.pausedUntil > 0 ? new Date(this.pausedUntil).toISOString() : null,
        };
        try {
          this.adopt(await persist.add(change));
          this.syncedAt = this.options.now().getTime();
        } catch (error) {
          // Counted again at the next add: the kept count never loses a call.
          this.unsaved += calls;
          persist.onError?.(error);
        }
      } while (this.dirty);
      this.saving = undefined;
    })();
    return this.saving;
  }

  /**
   * Calls are added to the kept count at most a second after they are made, many in one write
   * (a write per call would be a transaction per call); a pause or a spent quota is kept at once.
   */
  private saveSoon(): void {
    if (this.options.persist === undefined || this.saveTimer !== undefined) return;
    // A real timer, not the injected sleep (which a test clock turns into a jump of time); it does
    // not hold a stopping process, which flushes instead.
    this.saveTimer = setTimeout(() => {
      this.saveTimer = undefined;
      if (this.unsaved > 0) void this.save();
    }, SHARED_REFRESH_MS);
    this.saveTimer.unref();
  }

  /**
   * When the call may go in the window every process shares (now, where there is none); a
   * reservation that fails is reported and the call goes by this process's window alone.
   */
  private async reserveShared(now: number): Promise<number> {
    const persist = this.options.persist;
    if (persist?.reserve === undefined) return now;
    try {
      return Math.max(now, await persist.reserve(now, this.window));
    } catch (error) {
      persist.onError?.(error);
      return now;
    }
  }

  /** Resolves once every count so far is kept (tests, and a process about to stop). */
  async flush(): Promise<void> {
    await this.load();
    if (this.unsaved > 0) await this.save();
    while (this.saving !== undefined) await this.saving;
  }

  usage(): QuotaUsage {
    const now = this.options.now().getTime();
    this.rollPeriod(now);
    const quota = this.options.limits.daily_quota?.calls;
    const paused = this.pausedUntil > now ? { paused_until: new Date(this.pausedUntil).toISOString() } : {};
    return {
      used_today: this.usedToday,
      remaining: quota === undefined ? null : Math.max(0, quota - this.usedToday),
      daily_quota: quota ?? null,
      resets_at: quota === undefined ? null : new Date(this.nextReset(now)).toISOString(),
      in_flight: this.inFlight,
      max_concurrency: this.options.limits.max_concurrency,
      ...paused,
    };
  }

  private periodStart(now: number): number {
    return this.options.limits.daily_quota?.reset === "rolling_24h" ? now : Math.floor(now / DAY_MS) * DAY_MS;
  }

  private nextReset(now: number): number {
    // A replenishment time the vendor stated wins over our own count of the day.
    return this.quotaBlockedUntil > now ? this.quotaBlockedUntil : this.dayStart + DAY_MS;
  }

  private rollPeriod(now: number): void {
    // The vendor said when its quota is replenished: from then on, count afresh.
    if (this.quotaBlockedUntil > 0 && now >= this.quotaBlockedUntil) {
      this.quotaBlockedUntil = 0;
      this.usedToday = 0;
      this.unsaved = 0;
      this.dayStart = now;
    }
    if (now >= this.dayStart + DAY_MS) {
      this.dayStart = this.periodStart(now);
      this.usedToday = 0;
    }
  }

  private release(): ReleaseSlot {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.inFlight -= 1;
      // A freed slot may let the next waiter in.
      if (this.waiters.length > 0) void this.pump();
    };
  }

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      if (this.options.persist !== undefined) await this.load();
      while (this.waiters.length > 0) {
        // Other processes' calls and pauses, at most a second old.
        if (
          this.options.persist !== undefined &&
          this.options.now().getTime() - this.syncedAt >= SHARED_REFRESH_MS
        )
          await this.save();
        this.waiters.sort((a, b) => RANK[a.priority] - RANK[b.priority] || a.seq - b.seq);
        const next = this.waiters[0]!;
        const now = this.options.now().getTime();
        this.rollPeriod(now);

        const quota = this.options.limits.daily_quota?.calls;
        const remaining = quota === undefined ? Infinity : quota - this.usedToday;
        const blocked = this.quotaBlockedUntil > now;
        if (blocked || remaining <= 0 || (next.priority !== "consent" && remaining <= this.reserve)) {
          this.waiters.shift();
          const retryAt = new Date(this.nextReset(now)).toISOString();
          next.resolve(
            err({
              code: "quota_exceeded",
              message:
                blocked || remaining <= 0
                  ? `Daily API quota${quota === undefined ? "" : ` of ${quota} calls`} is spent; work resumes at ${retryAt}.`
                  : `Only ${remaining} calls are left today and they are kept for consent changes; this work resumes at ${retryAt}.`,
              retry_at: retryAt,
            }),
          );
          continue;
        }
        // Every slot is taken: the next release pumps again (no clock involved, nothing sleeps).
        if (this.inFlight >= this.options.limits.max_concurrency) return;
        if (this.pausedUntil > now) {
          await this.options.sleep(this.pausedUntil - now);
          continue;
        }
        const own = nextCallTime(this.recent, now, this.window);
        if (own.at > now) {
          await this.options.sleep(Math.max(1, own.at - now));
          continue;
        }
        // The slot is this waiter's from here, whatever comes while its time is reserved.
        this.usedToday += 1;
        this.unsaved += 1;
        this.saveSoon();
        this.inFlight += 1;
        this.waiters.shift();
        const at = await this.reserveShared(now);
        // From the time the store answered: the reservation took a round trip.
        const wait = at - this.options.now().getTime();
        if (wait > 0) await this.options.sleep(wait);
        this.recent = nextCallTime(this.recent, at, this.window).recent;
        next.resolve(ok(this.release()));
      }
    } finally {
      this.pumping = false;
    }
  }
}

/** The runtime's shared budget for this connection, or a new limiter from the declared limits. */
export function connectionBudget(runtime: ConnectorRuntime, limits: BudgetLimits): CallBudget {
  return runtime.budget ?? new RateLimiter({ limits, now: runtime.now, sleep: runtime.sleep });
}

/**
 * The limits a connection runs under: the manifest's, with the connection's own per-second rate
 * and daily quota where the config sets them (a connection given a quota its vendor does not
 * publish still gets one, counted by UTC day).
 */
export function connectionLimits(
  declared: ConnectorLimits,
  own: { requests_per_second?: number | undefined; daily_quota?: number | undefined } | undefined,
): BudgetLimits {
  const quota = own?.daily_quota;
  return {
    requests_per_second: own?.requests_per_second ?? declared.requests_per_second,
    max_concurrency: declared.max_concurrency,
    ...(quota !== undefined
      ? { daily_quota: { calls: quota, reset: declared.daily_quota?.reset ?? "utc_midnight" } }
      : declared.daily_quota !== undefined
        ? { daily_quota: declared.daily_quota }
        : {}),
  };
}
