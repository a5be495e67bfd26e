/**
 * The one pure function that decides what to do after a failed vendor call, from per-provider
 * rules the connector declares: retry after a wait, defer to the quota reset, refresh the token
 * once, or give up with a stable code. No connector sleeps or retries on its own (STYLE.md rule 8).
 */
import type { ConnectorErrorCode } from "../connector";

/** What a failed response means, as the connector's classifier reads the vendor's status and body. */
export type FailureClass =
  | { kind: "throttled"; retry_after_ms?: number }
  | { kind: "quota_exceeded"; retry_at?: string }
  | { kind: "auth" }
  | { kind: "transient" } // 5xx, timeouts, resets
  | { kind: "permanent"; code: ConnectorErrorCode };

export type RetryRules = {
  max_attempts: number;
  base_backoff_ms: number;
  max_backoff_ms: number;
  /** Wait used for a throttle answer that does not say how long (Constant Contact sends no Retry-After). */
  default_throttle_ms: number;
};

export const DEFAULT_RETRY_RULES: RetryRules = {
  max_attempts: 6,
  base_backoff_ms: 250,
  max_backoff_ms: 30_000,
  default_throttle_ms: 1000,
};

export type RetryDecision =
  | { kind: "retry"; after_ms: number; pause_all: boolean }
  | { kind: "refresh_auth" }
  | { kind: "defer"; code: "quota_exceeded"; retry_at: string }
  | { kind: "fail"; code: ConnectorErrorCode };

export type RetryInput = {
  failure: FailureClass;
  /** 1 for the first attempt. */
  attempt: number;
  /** Whether the token was already refreshed for this call. */
  refreshed: boolean;
  now: Date;
  /** The next quota reset by the connector's declared rule, when the vendor gives no time. */
  next_quota_reset: Date;
};

const backoff = (rules: RetryRules, attempt: number): number =>
  Math.min(rules.max_backoff_ms, rules.base_backoff_ms * 2 ** Math.max(0, attempt - 1));

export function decideRetry(input: RetryInput, rules: RetryRules = DEFAULT_RETRY_RULES): RetryDecision {
  const { failure, attempt } = input;
  switch (failure.kind) {
    case "throttled":
      if (attempt >= rules.max_attempts) return { kind: "fail", code: "rate_limited" };
      return {
        kind: "retry",
        after_ms: Math.max(failure.retry_after_ms ?? rules.default_throttle_ms, backoff(rules, attempt) / 2),
        pause_all: true,
      };
    case "quota_exceeded":
      return {
        kind: "defer",
        code: "quota_exceeded",
        retry_at: failure.retry_at ?? input.next_quota_reset.toISOString(),
      };
    case "auth":
      return input.refreshed ? { kind: "fail", code: "auth_invalid" } : { kind: "refresh_auth" };
    case "transient":
      if (attempt >= rules.max_attempts) return { kind: "fail", code: "vendor_unavailable" };
      return { kind: "retry", after_ms: backoff(rules, attempt), pause_all: false };
    case "permanent":
      return { kind: "fail", code: failure.code };
  }
}

/** Parses a Retry-After header (seconds or an HTTP date) into milliseconds from `now`. */
export function parseRetryAfter(value: string | undefined, now: Date): number | undefined {
  if (value === undefined || value.trim() === "") return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now.getTime());
}

/** Default meaning of plain HTTP statuses, for classifiers to fall back on. */
export function classifyStatus(status: number): FailureClass {
  if (status === 401) return { kind: "auth" };
  if (status === 429) return { kind: "throttled" };
  if (status === 408 || status >= 500) return { kind: "transient" };
  if (status === 403) return { kind: "permanent", code: "forbidden" };
  if (status === 404) return { kind: "permanent", code: "not_found" };
  if (status === 409) return { kind: "permanent", code: "conflict" };
  return { kind: "permanent", code: "validation_failed" };
}
