import { describe, expect, it } from "vitest";
import {
  classifyStatus,
  decideRetry,
  DEFAULT_RETRY_RULES,
  parseRetryAfter,
  type RetryInput,
} from "./retry-decision";

const now = new Date("2026-11-22T09:00:00.000Z");
const reset = new Date("2026-11-23T00:00:00.000Z");
const input = (over: Partial<RetryInput>): RetryInput => ({
  failure: { kind: "transient" },
  attempt: 1,
  refreshed: false,
  now,
  next_quota_reset: reset,
  ...over,
});

describe("decideRetry", () => {
  it.each([
    [
      "throttle with Retry-After waits that long and pauses all calls",
      input({ failure: { kind: "throttled", retry_after_ms: 3000 } }),
      { kind: "retry", after_ms: 3000, pause_all: true },
    ],
    [
      "throttle without Retry-After waits the default",
      input({ failure: { kind: "throttled" } }),
      { kind: "retry", after_ms: 1000, pause_all: true },
    ],
    [
      "throttle past the last attempt fails rate_limited",
      input({ failure: { kind: "throttled" }, attempt: 6 }),
      { kind: "fail", code: "rate_limited" },
    ],
    [
      "quota with a time defers to it",
      input({ failure: { kind: "quota_exceeded", retry_at: "2026-11-22T10:00:00.000Z" } }),
      { kind: "defer", code: "quota_exceeded", retry_at: "2026-11-22T10:00:00.000Z" },
    ],
    [
      "quota without a time defers to the declared reset",
      input({ failure: { kind: "quota_exceeded" } }),
      { kind: "defer", code: "quota_exceeded", retry_at: reset.toISOString() },
    ],
    ["first auth failure refreshes", input({ failure: { kind: "auth" } }), { kind: "refresh_auth" }],
    [
      "auth failure after a refresh breaks the connection",
      input({ failure: { kind: "auth" }, refreshed: true }),
      { kind: "fail", code: "auth_invalid" },
    ],
    [
      "transient failure backs off exponentially",
      input({ attempt: 3 }),
      { kind: "retry", after_ms: 1000, pause_all: false },
    ],
    [
      "transient failure past the last attempt is vendor_unavailable",
      input({ attempt: 6 }),
      { kind: "fail", code: "vendor_unavailable" },
    ],
    [
      "permanent failure is never retried",
      input({ failure: { kind: "permanent", code: "conflict" } }),
      { kind: "fail", code: "conflict" },
    ],
  ])("%s", (_name, given, expected) => {
    expect(decideRetry(given, DEFAULT_RETRY_RULES)).toEqual(expected);
  });

  it("caps the backoff", () => {
    const d = decideRetry(input({ attempt: 5 }), {
      ...DEFAULT_RETRY_RULES,
      max_attempts: 50,
      max_backoff_ms: 2000,
    });
    expect(d).toEqual({ kind: "retry", after_ms: 2000, pause_all: false });
  });
});

describe("parseRetryAfter and classifyStatus", () => {
  it.each([
    ["1", 1000],
    ["0", 0],
    ["Sun, 22 Nov 2026 09:00:30 GMT", 30_000],
    ["", undefined],
    ["soon", undefined],
  ])("Retry-After %j → %j ms", (value, ms) => {
    expect(parseRetryAfter(value, now)).toBe(ms);
  });

  it.each([
    [401, { kind: "auth" }],
    [429, { kind: "throttled" }],
    [503, { kind: "transient" }],
    [408, { kind: "transient" }],
    [403, { kind: "permanent", code: "forbidden" }],
    [404, { kind: "permanent", code: "not_found" }],
    [409, { kind: "permanent", code: "conflict" }],
    [400, { kind: "permanent", code: "validation_failed" }],
  ])("status %i", (status, expected) => {
    expect(classifyStatus(status)).toEqual(expected);
  });
});
