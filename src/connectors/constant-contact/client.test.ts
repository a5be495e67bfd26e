// Pure parts of the client: reading Constant Contact's 429 bodies and its quota reset.
import { describe, expect, it } from "vitest";
import type { HttpResponse } from "../http/http-client";
import { classifyConstantContact, nextUtcMidnight } from "./client";

const NOW = new Date("2026-06-01T23:59:30.000Z");
const res = (status: number, body: unknown, headers: Record<string, string> = {}): HttpResponse => ({
  status,
  headers,
  body,
  text: JSON.stringify(body),
});

describe("classifyConstantContact", () => {
  it.each([
    [
      "per-second limit",
      res(429, [{ error_key: "throttled", error_message: "Too Many Requests" }]),
      { kind: "throttled" },
    ],
    [
      "daily quota",
      res(429, [{ error_key: "quota_exceeded", error_message: "Limit Exceeded" }]),
      { kind: "quota_exceeded" },
    ],
    ["daily quota as a bare object", res(429, { error_key: "quota_exceeded" }), { kind: "quota_exceeded" }],
    [
      "429 with a Retry-After after all",
      res(429, [{ error_key: "throttled" }], { "retry-after": "3" }),
      { kind: "throttled", retry_after_ms: 3000 },
    ],
    [
      "too many queued activities",
      res(429, "Too many requests. You exceeded 1,000 queued activities for this user account."),
      { kind: "throttled", retry_after_ms: 60_000 },
    ],
    ["429 with no body", res(429, undefined), { kind: "throttled" }],
    ["bad token", res(401, { error_key: "unauthorized", error_message: "Unauthorized" }), { kind: "auth" }],
    ["missing scope", res(403, [{ error_key: "forbidden" }]), { kind: "permanent", code: "forbidden" }],
    [
      "duplicate email",
      res(409, [{ error_key: "contacts.api.conflict" }]),
      { kind: "permanent", code: "conflict" },
    ],
    [
      "validation",
      res(400, [{ error_key: "contacts.api.validation.error" }]),
      { kind: "permanent", code: "validation_failed" },
    ],
    ["outage", res(503, undefined), { kind: "transient" }],
  ])("%s", (_, response, expected) => {
    expect(classifyConstantContact(response, NOW)).toEqual(expected);
  });
});

describe("nextUtcMidnight", () => {
  it.each([
    ["2026-06-01T23:59:30.000Z", "2026-06-02T00:00:00.000Z"],
    ["2026-06-02T00:00:00.000Z", "2026-06-03T00:00:00.000Z"],
    ["2026-12-31T12:00:00.000Z", "2027-01-01T00:00:00.000Z"],
  ])("%s → %s", (now, next) => {
    expect(nextUtcMidnight(new Date(now)).toISOString()).toBe(next);
  });
});
