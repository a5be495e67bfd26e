import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { z } from "zod";
import { createFakeClock } from "../../../test/support/fake-clock";
import type { ConnectorError } from "../connector";
import { buildUrl, createHttpClient } from "./http-client";
import { createOAuth2Auth } from "./oauth2";
import { RateLimiter } from "./rate-limiter";
import { classifyStatus } from "./retry-decision";

type Scripted = { status: number; body: unknown; headers?: Record<string, string> };

let script: Scripted[] = [];
let seen: { method: string; url: string; auth: string | undefined; body: string }[] = [];
let tokenCalls: URLSearchParams[] = [];
let tokenAnswers: Scripted[] = [];
let base = "";

function send(res: ServerResponse, s: Scripted): void {
  res.writeHead(s.status, { "content-type": "application/json", ...s.headers });
  res.end(JSON.stringify(s.body));
}

const server = createServer((req: IncomingMessage, res: ServerResponse) => {
  let body = "";
  req.on("data", (c: Buffer) => (body += c.toString()));
  req.on("end", () => {
    if (req.url === "/token") {
      tokenCalls.push(new URLSearchParams(body));
      send(res, tokenAnswers.shift() ?? { status: 400, body: { error: "invalid_grant" } });
      return;
    }
    seen.push({ method: req.method ?? "", url: req.url ?? "", auth: req.headers.authorization, body });
    send(res, script.shift() ?? { status: 200, body: { ok: true } });
  });
});

beforeAll(async () => {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(
  () =>
    new Promise<void>((resolve) =>
      server.close(() => {
        resolve();
      }),
    ),
);
beforeEach(() => {
  script = [];
  seen = [];
  tokenCalls = [];
  tokenAnswers = [];
});

function setup(initial: Record<string, string> = {}) {
  const clock = createFakeClock();
  const stored: Record<string, string> = {
    client_id: "cid",
    refresh_token: "r1",
    access_token: "a1",
    ...initial,
  };
  const authFailures: ConnectorError[] = [];
  const runtime = {
    now: clock.now,
    sleep: clock.sleep,
    onAuthFailure: (e: ConnectorError) => authFailures.push(e),
  };
  const limiter = new RateLimiter({
    limits: {
      requests_per_second: 100,
      daily_quota: { calls: 1000, reset: "utc_midnight" },
      max_concurrency: 4,
    },
    now: clock.now,
    sleep: clock.sleep,
    consent_reserve: 0,
  });
  const auth = createOAuth2Auth({
    token_url: `${base}/token`,
    runtime,
    credentials: {
      get: async () => ({ ...stored }),
      save: async (changes) => void Object.assign(stored, changes),
    },
  });
  const client = createHttpClient({
    base_url: `${base}/v3`,
    limiter,
    auth,
    runtime,
    next_quota_reset: () => new Date("2026-11-23T00:00:00.000Z"),
    classify: (res) => {
      const key = Array.isArray(res.body)
        ? (res.body[0] as { error_key?: string } | undefined)?.error_key
        : undefined;
      if (res.status === 429 && key === "quota_exceeded") return { kind: "quota_exceeded" };
      return classifyStatus(res.status);
    },
  });
  return { client, stored, authFailures, clock, limiter };
}

describe("createHttpClient", () => {
  it("joins base paths with vendor next links and query values", () => {
    expect(buildUrl("https://api.cc.email/v3", "/v3/contacts?cursor=abc")).toBe(
      "https://api.cc.email/v3/contacts?cursor=abc",
    );
    expect(
      buildUrl("https://api.cc.email/v3", "/contacts", { limit: 500, include: ["a", "b"], x: undefined }),
    ).toBe("https://api.cc.email/v3/contacts?limit=500&include=a%2Cb");
    expect(buildUrl("https://x.test/v3", "https://y.test/next?p=2")).toBe("https://y.test/next?p=2");
  });

  it("follows an absolute link only on the API's own address: the token never goes elsewhere", async () => {
    const { client } = setup();
    const same = await client.request({
      method: "GET",
      path: `${base}/v3/contacts?cursor=2`,
      priority: "read",
    });
    expect(same.ok).toBe(true);
    expect(seen.map((s) => s.url)).toEqual(["/v3/contacts?cursor=2"]);
    for (const elsewhere of [
      "https://evil.example/v3/contacts?cursor=3",
      `${base.replace("127.0.0.1", "localhost")}/v3/x`,
    ]) {
      const r = await client.request({ method: "GET", path: elsewhere, priority: "read" });
      expect(r.ok).toBe(false);
      if (!r.ok) {
        expect(r.error.code).toBe("bad_response");
        expect(r.error.message).toContain("is not followed");
      }
    }
    expect(seen).toHaveLength(1);
  });

  it("refreshes once on 401, saves the rotated refresh token, and retries", async () => {
    const { client, stored } = setup();
    script = [
      { status: 401, body: [{ error_key: "unauthorized" }] },
      { status: 200, body: { id: 7 } },
    ];
    tokenAnswers = [{ status: 200, body: { access_token: "a2", refresh_token: "r2", expires_in: 86400 } }];
    const r = await client.request({ method: "GET", path: "/contacts/7", priority: "read" });
    expect(r).toMatchObject({ ok: true, value: { status: 200, body: { id: 7 } } });
    expect(seen.map((s) => s.auth)).toEqual(["Bearer a1", "Bearer a2"]);
    expect(tokenCalls[0]?.get("refresh_token")).toBe("r1");
    expect(stored["refresh_token"]).toBe("r2");
  });

  it("believes a token lifetime of at most a year, and refuses a token answer too large to be one", async () => {
    const { client, stored, clock } = setup();
    script = [
      { status: 401, body: [] },
      { status: 200, body: {} },
    ];
    tokenAnswers = [{ status: 200, body: { access_token: "a2", expires_in: 1e300 } }];
    expect((await client.request({ method: "GET", path: "/x", priority: "read" })).ok).toBe(true);
    const until = Date.parse(stored["access_token_expires_at"] ?? "");
    expect(until - clock.now().getTime()).toBeLessThanOrEqual(365 * 86_400_000);

    const big = setup();
    script = [{ status: 401, body: [] }];
    tokenAnswers = [{ status: 200, body: { access_token: "a3", padding: "x".repeat(70 * 1024) } }];
    const r = await big.client.request({ method: "GET", path: "/y", priority: "read" });
    expect(r.ok).toBe(false);
    if (!r.ok)
      expect(r.error).toMatchObject({
        code: "network_error",
        message: expect.stringContaining("larger than"),
      });
  });

  it("reports auth_invalid and tells the host when the refresh is refused", async () => {
    const { client, authFailures } = setup();
    script = [{ status: 401, body: [{ error_key: "unauthorized" }] }];
    tokenAnswers = [
      {
        status: 400,
        body: { error: "invalid_grant", error_description: "unknown, invalid, or expired refresh token" },
      },
    ];
    const r = await client.request({ method: "GET", path: "/contacts", priority: "read" });
    expect(r).toMatchObject({ ok: false, error: { code: "auth_invalid", vendor_code: "invalid_grant" } });
    expect(authFailures).toHaveLength(1);
  });

  it("two sessions of one connection refreshing at once spend a rotating refresh token once", async () => {
    const clock = createFakeClock();
    const stored: Record<string, string> = { client_id: "cid", refresh_token: "r1" };
    const credentials = {
      get: async () => ({ ...stored }),
      save: async (changes: Record<string, string>) => void Object.assign(stored, changes),
    };
    const runtime = { now: clock.now, sleep: clock.sleep, onAuthFailure: () => undefined };
    // Each session builds its own auth over the connection's one credential store.
    const one = createOAuth2Auth({ token_url: `${base}/token`, runtime, credentials });
    const two = createOAuth2Auth({ token_url: `${base}/token`, runtime, credentials });
    tokenAnswers = [
      { status: 200, body: { access_token: "a2", refresh_token: "r2", expires_in: 86400 } },
      // A second use of r1 would be refused, as a vendor refuses a spent rotating token.
      { status: 400, body: { error: "invalid_grant" } },
    ];
    const [h1, h2] = await Promise.all([one.headers(), two.headers()]);
    expect(h1).toEqual({ ok: true, value: { authorization: "Bearer a2" } });
    expect(h2).toEqual(h1);
    expect(tokenCalls).toHaveLength(1);
    expect(stored["refresh_token"]).toBe("r2");
  });

  it("waits and retries when throttled, and after transient failures", async () => {
    const { client, clock } = setup();
    script = [
      { status: 429, body: [{ error_key: "throttled", error_message: "Too Many Requests" }] },
      { status: 503, body: [] },
      { status: 200, body: { done: true } },
    ];
    const before = clock.now().getTime();
    const r = await client.request({ method: "POST", path: "/contacts", json: { a: 1 }, priority: "write" });
    expect(r).toMatchObject({ ok: true, value: { body: { done: true } } });
    expect(seen).toHaveLength(3);
    expect(seen[2]?.body).toBe('{"a":1}');
    expect(clock.now().getTime() - before).toBeGreaterThanOrEqual(1000);
  });

  it("sends a POST again only after an answer that says it was not taken: a 500 may have made what it asked", async () => {
    const { client } = setup();
    const post = (idempotent?: boolean) =>
      client.request({
        method: "POST",
        path: "/consents",
        json: { a: 1 },
        priority: "consent",
        ...(idempotent === undefined ? {} : { idempotent }),
      });
    // A consent record the vendor may have stored before it failed: not sent twice.
    for (const status of [500, 502, 504]) {
      seen = [];
      script = [{ status, body: [] }];
      const r = await post();
      expect(r).toMatchObject({ ok: false, error: { code: "vendor_unavailable" } });
      expect(!r.ok && r.error.message).toMatch(/not sent again: POST \/v3\/consents may have been taken in/);
      expect(seen).toHaveLength(1);
    }
    // A request that does the same sent twice, and any method but POST, is retried as before.
    seen = [];
    script = [{ status: 500, body: [] }];
    expect(await post(true)).toMatchObject({ ok: true });
    expect(seen).toHaveLength(2);
    seen = [];
    script = [{ status: 502, body: [] }];
    expect(
      await client.request({ method: "PUT", path: "/contacts/1", json: {}, priority: "write" }),
    ).toMatchObject({
      ok: true,
    });
    expect(seen).toHaveLength(2);
  });

  it("defers on a spent quota and refuses further calls until the reset", async () => {
    const { client } = setup();
    script = [{ status: 429, body: [{ error_key: "quota_exceeded", error_message: "Limit Exceeded" }] }];
    const r = await client.request({ method: "GET", path: "/contacts", priority: "read" });
    expect(r).toMatchObject({
      ok: false,
      error: { code: "quota_exceeded", retry_at: "2026-11-23T00:00:00.000Z" },
    });
    const again = await client.request({ method: "GET", path: "/contacts", priority: "consent" });
    expect(again).toMatchObject({ ok: false, error: { code: "quota_exceeded" } });
    expect(seen).toHaveLength(1);
  });

  it("turns a body that fails the schema into bad_response, and accepts declared statuses", async () => {
    const { client } = setup();
    script = [
      { status: 200, body: { id: "not-a-number" } },
      { status: 409, body: [{ error_key: "contacts.api.conflict" }] },
    ];
    const r = await client.request({
      method: "GET",
      path: "/x",
      priority: "read",
      schema: z.object({ id: z.number() }),
    });
    expect(r).toMatchObject({ ok: false, error: { code: "bad_response" } });
    const c = await client.request({
      method: "POST",
      path: "/contacts",
      json: {},
      priority: "write",
      accept: [409],
    });
    expect(c).toMatchObject({ ok: true, value: { status: 409 } });
  });

  it("fails a permanent error without retrying", async () => {
    const { client } = setup();
    script = [{ status: 400, body: [{ error_key: "contacts.api.validation.error" }] }];
    const r = await client.request({ method: "POST", path: "/contacts", json: {}, priority: "write" });
    expect(r).toMatchObject({ ok: false, error: { code: "validation_failed", http_status: 400 } });
    expect(seen).toHaveLength(1);
  });
});
