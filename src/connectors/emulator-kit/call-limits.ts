/**
 * A vendor's call limits, measured on the emulator's injected clock: a per-second rate (a window
 * sliding over the last second, or the calendar second) and a daily quota that renews at 00:00 UTC.
 * Each emulator answers a refusal in its vendor's own shape; refused calls use up neither limit.
 */

export type LimitVerdict =
  | { kind: "ok" }
  | { kind: "rate_limited"; retry_after_seconds: number }
  | { kind: "quota_exceeded"; retry_after_seconds: number };

export type CallLimitsConfig = {
  now: () => Date;
  /** Calls a second; null: no rate limit. */
  per_second: number | null;
  /** `sliding`: any 1,000 ms; `calendar`: each whole second of the clock. */
  window: "sliding" | "calendar";
  /** Calls a UTC day; null: no quota. */
  daily: number | null;
};

const DAY_MS = 86_400_000;

export class CallLimits {
  private recent: number[] = [];
  private quotaDay = -1;
  private quotaUsed = 0;

  constructor(private readonly config: CallLimitsConfig) {}

  reset(): void {
    this.recent = [];
    this.quotaDay = -1;
    this.quotaUsed = 0;
  }

  /** Counts one call if it is allowed. The quota is checked first, as vendors' gateways do. */
  admit(): LimitVerdict {
    const at = this.config.now().getTime();
    const day = Math.floor(at / DAY_MS);
    if (day !== this.quotaDay) {
      this.quotaDay = day;
      this.quotaUsed = 0;
    }
    if (this.config.daily !== null && this.quotaUsed >= this.config.daily)
      return {
        kind: "quota_exceeded",
        retry_after_seconds: Math.max(1, Math.ceil(((day + 1) * DAY_MS - at) / 1000)),
      };
    const from = this.config.window === "sliding" ? at - 1000 : Math.floor(at / 1000) * 1000 - 1;
    this.recent = this.recent.filter((t) => t > from && t <= at);
    if (this.config.per_second !== null && this.recent.length >= this.config.per_second)
      return { kind: "rate_limited", retry_after_seconds: 1 };
    this.recent.push(at);
    this.quotaUsed += 1;
    return { kind: "ok" };
  }

  usage(): {
    day: string;
    quota_used: number;
    quota_limit: number | null;
    calls_this_second: number;
    rate_limit: number | null;
  } {
    return {
      day: this.quotaDay < 0 ? "" : new Date(this.quotaDay * DAY_MS).toISOString().slice(0, 10),
      quota_used: this.quotaUsed,
      quota_limit: this.config.daily,
      calls_this_second: this.recent.length,
      rate_limit: this.config.per_second,
    };
  }
}

/** Seconds as hh:mm:ss, as quota messages give the time until renewal. */
export function hhmmss(totalSeconds: number): string {
  const h = Math.floor(totalSeconds / 3600);
  const m = Math.floor((totalSeconds % 3600) / 60);
  const s = totalSeconds % 60;
  return [h, m, s].map((n) => String(n).padStart(2, "0")).join(":");
}
