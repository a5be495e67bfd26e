/**
 * The one limiter every connection's calls go through: a per-second window and a daily quota,
 * declared by the connector, with consent work served first and a slice of the quota kept for it.
 */
import type {
  CallBudget,
  CallPriority,
  ConnectorError,
  ConnectorLimits,
  ConnectorRuntime,
  QuotaUsage,
} from "../connector";
import { err, ok, type Result } from "../../core/result";

export type { CallPriority, QuotaUsage } from "../connector";

const RANK: Record<CallPriority, number> = { consent: 0, write: 1, read: 2 };

export type RateLimiterOptions = {
  limits: Pick<ConnectorLimits, "requests_per_second" | "daily_quota" | "quota_reset">;
  now: () => Date;
  sleep: (ms: number) => Promise<void>;
  /** Calls of the daily quota kept for consent work; other work is deferred once only these are left. */
  consent_reserve?: number;
  /** Calls already used today (e.g. restored from the store after a restart). */
  used_today?: number;
};

type Waiter = { priority: CallPriority; seq: number; resolve: (r: Result<void, ConnectorError>) => void };

const DAY_MS = 86_400_000;

export class RateLimiter implements CallBudget {
  private readonly waiters: Waiter[] = [];
  private readonly window: number[] = [];
  private seq = 0;
  private pumping = false;
  private usedToday: number;
  private dayStart: number;
  private pausedUntil = 0;
  private quotaBlockedUntil = 0;
  private readonly reserve: number;

  constructor(private readonly options: RateLimiterOptions) {
    this.usedToday = options.used_today ?? 0;
    this.dayStart = this.periodStart(options.now().getTime());
    this.reserve = options.consent_reserve ?? Math.min(500, Math.floor(options.limits.daily_quota * 0.05));
  }

  /** Waits for a slot; resolves with `quota_exceeded` when today's budget (for this priority) is spent. */
  acquire(priority: CallPriority): Promise<Result<void, ConnectorError>> {
    return new Promise((resolve) => {
      this.waiters.push({ priority, seq: this.seq++, resolve });
      void this.pump();
    });
  }

  /** The vendor said the per-second limit was hit: hold every call for `ms`. */
  pause(ms: number): void {
    this.pausedUntil = Math.max(this.pausedUntil, this.options.now().getTime() + ms);
  }

  /** The vendor said the daily quota is spent: refuse calls until `until`. */
  quotaExhausted(until: Date): void {
    this.quotaBlockedUntil = Math.max(this.quotaBlockedUntil, until.getTime());
  }

  usage(): QuotaUsage {
    const now = this.options.now().getTime();
    this.rollPeriod(now);
    const paused = this.pausedUntil > now ? { paused_until: new Date(this.pausedUntil).toISOString() } : {};
    return {
      used_today: this.usedToday,
      remaining: Math.max(0, this.options.limits.daily_quota - this.usedToday),
      daily_quota: this.options.limits.daily_quota,
      resets_at: new Date(this.nextReset(now)).toISOString(),
      ...paused,
    };
  }

  private periodStart(now: number): number {
    return this.options.limits.quota_reset === "utc_midnight" ? Math.floor(now / DAY_MS) * DAY_MS : now;
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
    }
    if (now >= this.dayStart + DAY_MS) {
      this.dayStart = this.periodStart(now);
      this.usedToday = 0;
    }
  }

  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.waiters.length > 0) {
        this.waiters.sort((a, b) => RANK[a.priority] - RANK[b.priority] || a.seq - b.seq);
        const next = this.waiters[0]!;
        const now = this.options.now().getTime();
        this.rollPeriod(now);

        const remaining = this.options.limits.daily_quota - this.usedToday;
        const blocked = this.quotaBlockedUntil > now;
        if (blocked || remaining <= 0 || (next.priority !== "consent" && remaining <= this.reserve)) {
          this.waiters.shift();
          const retryAt = new Date(this.nextReset(now)).toISOString();
          next.resolve(
            err({
              code: "quota_exceeded",
              message:
                blocked || remaining <= 0
                  ? `Daily API quota of ${this.options.limits.daily_quota} calls is spent; work resumes at ${retryAt}.`
                  : `Only ${remaining} calls are left today and they are kept for consent changes; this work resumes at ${retryAt}.`,
              retry_at: retryAt,
            }),
          );
          continue;
        }
        if (this.pausedUntil > now) {
          await this.options.sleep(this.pausedUntil - now);
          continue;
        }
        while (this.window.length > 0 && this.window[0]! <= now - 1000) this.window.shift();
        if (this.window.length >= this.options.limits.requests_per_second) {
          await this.options.sleep(Math.max(1, this.window[0]! + 1000 - now));
          continue;
        }
        this.window.push(now);
        this.usedToday += 1;
        this.waiters.shift();
        next.resolve(ok(undefined));
      }
    } finally {
      this.pumping = false;
    }
  }
}

/** The runtime's shared budget for this connection, or a new limiter from the declared limits. */
export function connectionBudget(
  runtime: ConnectorRuntime,
  limits: Pick<ConnectorLimits, "requests_per_second" | "daily_quota" | "quota_reset">,
): CallBudget {
  return runtime.budget ?? new RateLimiter({ limits, now: runtime.now, sleep: runtime.sleep });
}
