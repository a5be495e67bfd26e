/**
 * SKY API's two call limits measured on the emulator's injected clock: a per-second rate limit
 * (429, `Retry-After: 1`) and a daily call-volume quota (403 with the time until it renews).
 */

export type LimitVerdict =
  | { kind: "ok" }
  | {
      kind: "rate_limited";
      status: 429;
      retryAfterSeconds: number;
      body: { statusCode: 429; message: string };
    }
  | {
      kind: "quota_exceeded";
      status: 403;
      retryAfterSeconds: number;
      body: { statusCode: 403; message: string };
    };

export type CallLimitsConfig = {
  now: () => Date;
  ratePerSecond: number;
  dailyQuota: number;
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

  /** Counts one call if it is allowed; refused calls do not use up rate or quota. */
  admit(): LimitVerdict {
    const at = this.config.now().getTime();
    // The quota window is the UTC day; the rate window slides over the last second.
    const day = Math.floor(at / DAY_MS);
    if (day !== this.quotaDay) {
      this.quotaDay = day;
      this.quotaUsed = 0;
    }
    if (this.config.dailyQuota > 0 && this.quotaUsed >= this.config.dailyQuota) {
      const seconds = Math.max(1, Math.ceil(((day + 1) * DAY_MS - at) / 1000));
      return {
        kind: "quota_exceeded",
        status: 403,
        retryAfterSeconds: seconds,
        body: {
          statusCode: 403,
          message: `Out of call volume quota. Quota will be replenished in ${hhmmss(seconds)}.`,
        },
      };
    }
    this.recent = this.recent.filter((t) => t > at - 1000 && t <= at);
    if (this.config.ratePerSecond > 0 && this.recent.length >= this.config.ratePerSecond) {
      return {
        kind: "rate_limited",
        status: 429,
        retryAfterSeconds: 1,
        body: { statusCode: 429, message: "Rate limit is exceeded. Try again in 1 second." },
      };
    }
    this.recent.push(at);
    this.quotaUsed += 1;
    return { kind: "ok" };
  }

  usage(): { quota_used: number; quota_limit: number; calls_last_second: number; rate_limit: number } {
    return {
      quota_used: this.quotaUsed,
      quota_limit: this.config.dailyQuota,
      calls_last_second: this.recent.length,
      rate_limit: this.config.ratePerSecond,
    };
  }
}

function hhmmss(totalSeconds: number): string {
  const h = Math.floor(totalSeconds / 3600);
  const m = Math.floor((totalSeconds % 3600) / 60);
  const s = totalSeconds % 60;
  return [h, m, s].map((n) => String(n).padStart(2, "0")).join(":");
}
