import { describe, expect, it } from "vitest";
import { classifyBlackbaudFailure, onBaseOrigin } from "./client";

const now = new Date("2026-03-02T12:00:00.000Z");
const res = (status: number, body: unknown, headers: Record<string, string> = {}) => ({
  status,
  headers,
  body,
  text: JSON.stringify(body),
});

describe("classifyBlackbaudFailure", () => {
  it.each([
    [
      "429 with Retry-After",
      res(
        429,
        { statusCode: 429, message: "Rate limit is exceeded. Try again in 1 second." },
        { "retry-after": "2" },
      ),
      { kind: "throttled", retry_after_ms: 2000 },
    ],
    [
      "429 without header reads the message",
      res(429, { statusCode: 429, message: "Rate limit is exceeded. Try again in 3 seconds." }),
      { kind: "throttled", retry_after_ms: 3000 },
    ],
    [
      "quota 403 with Retry-After",
      res(
        403,
        { statusCode: 403, message: "Out of call volume quota. Quota will be replenished in 00:06:46." },
        { "retry-after": "406" },
      ),
      { kind: "quota_exceeded", retry_at: "2026-03-02T12:06:46.000Z" },
    ],
    [
      "quota 403 without header reads the message",
      res(403, {
        statusCode: 403,
        message: "Out of call volume quota. Quota will be replenished in 01:00:00.",
      }),
      { kind: "quota_exceeded", retry_at: "2026-03-02T13:00:00.000Z" },
    ],
    [
      "permission 403",
      res(403, [{ message: "You do not have permission", error_code: 403 }]),
      { kind: "permanent", code: "forbidden" },
    ],
    [
      "bad subscription key",
      res(401, { statusCode: 401, message: "Access denied due to invalid subscription key." }),
      { kind: "permanent", code: "auth_invalid" },
    ],
    [
      "expired token",
      res(401, { statusCode: 401, message: "Unauthorized. Access token is missing or invalid." }),
      { kind: "auth" },
    ],
    [
      "404",
      res(404, [{ message: "The requested item could not be found." }]),
      { kind: "permanent", code: "not_found" },
    ],
    ["400", res(400, [{ message: "bad" }]), { kind: "permanent", code: "validation_failed" }],
    ["503", res(503, "down"), { kind: "transient" }],
  ])("%s", (_n, response, expected) => {
    expect(classifyBlackbaudFailure(response, now)).toEqual(expected);
  });
});

describe("onBaseOrigin", () => {
  it("keeps next_link's path and query on the configured origin", () => {
    expect(
      onBaseOrigin(
        "http://127.0.0.1:4000",
        "https://api.sky.blackbaud.com/constituent/v1/constituents?limit=3&sort_token=AAAAAAAC%2bI4%3d",
      ),
    ).toBe("http://127.0.0.1:4000/constituent/v1/constituents?limit=3&sort_token=AAAAAAAC%2bI4%3d");
  });
});
