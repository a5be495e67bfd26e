/** `buildConcordApp` as `concord serve` uses it: the admin password from the config's reference, cookies by public URL. */
import { Writable } from "node:stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { ConcordConfig } from "../config/concord-config";
import type { EngineContext } from "../open-engine";
import { createEngineRuntime, type EngineRuntime } from "../runs/engine-runtime";
import {
  sqliteBackend,
  startSyncHarness,
  engineContextOf,
  TEST_ENV,
  TEST_KEY,
  type SyncHarness,
} from "../../test/support/sync-harness";
import { createLogger } from "../observability/logger";
import { buildConcordApp } from "./concord-app";

describe("buildConcordApp", () => {
  let h: SyncHarness;
  let runtime: EngineRuntime;
  const logger = createLogger({ level: "silent" });
  const contextWith = (config: ConcordConfig): EngineContext => engineContextOf(h, config, logger);

  beforeEach(async () => {
    h = await startSyncHarness(sqliteBackend());
    runtime = createEngineRuntime({
      store: h.store,
      config: h.config,
      connections: h.connections,
      now: h.now,
      logger,
      secrets: { env: TEST_ENV, key: TEST_KEY },
    });
  });
  afterEach(async () => {
    await runtime.stop();
    await h.close();
  });

  it("without an admin password the API is served disabled, saying why; health and metrics still answer", async () => {
    const built = await buildConcordApp(contextWith(h.config), runtime, {
      version: "1.2.3",
      secrets: { env: {} },
    });
    expect(built.api_enabled).toBe(false);
    expect(built.problems).toEqual([
      expect.stringContaining("CONCORD_ADMIN_PASSWORD is not set"),
      expect.stringContaining("Personal links (one-click unsubscribe) are off"),
    ]);
    const res = await built.app.inject({ method: "POST", url: "/api/session", payload: { password: "x" } });
    expect(res.statusCode).toBe(503);
    expect(res.json()).toMatchObject({
      code: "api_disabled",
      message: expect.stringContaining("CONCORD_ADMIN_PASSWORD"),
    });
    expect((await built.app.inject({ method: "GET", url: "/readyz" })).statusCode).toBe(200);
    // Without CONCORD_SECRET_KEY a person's link gets a page that says so, not a broken page.
    const link = await built.app.inject({ method: "GET", url: "/l/u/anything.abc" });
    expect(link.statusCode).toBe(503);
    expect(link.body).toContain("not available right now");
    expect((await built.app.inject({ method: "GET", url: "/metrics" })).body).toContain(
      'concord_build_info{version="1.2.3"} 1',
    );
    expect((await built.app.inject({ method: "GET", url: "/healthz" })).json()).toEqual({
      status: "ok",
      version: "1.2.3",
    });

    const short = await buildConcordApp(contextWith(h.config), runtime, {
      version: "1",
      secrets: { env: { CONCORD_ADMIN_PASSWORD: "hunter2" } },
    });
    expect(short.api_enabled).toBe(false);
    expect(short.problems[0]).toContain("shorter than 12 characters");
  });

  it("with the password resolved, signs in; the cookie is Secure only when the public URL is https", async () => {
    const secrets = { env: { CONCORD_ADMIN_PASSWORD: "a long enough password" }, key: TEST_KEY };
    for (const [publicUrl, secure] of [
      ["https://concord.example.org", true],
      ["http://localhost:8080", false],
    ] as const) {
      const config = { ...h.config, server: { ...h.config.server, public_url: publicUrl } };
      const built = await buildConcordApp(contextWith(config), runtime, { version: "1", secrets });
      expect(built).toMatchObject({ api_enabled: true, problems: [] });
      const res = await built.app.inject({
        method: "POST",
        url: "/api/session",
        payload: { password: "a long enough password" },
      });
      expect(res.statusCode).toBe(200);
      expect(String(res.headers["set-cookie"]).includes("Secure")).toBe(secure);
      expect((await built.app.inject({ method: "GET", url: "/metrics" })).body).toContain(
        "concord_build_info",
      );
    }
  });

  it("behind a trusted proxy, sign-in limits count the forwarded client; every attempt is logged, never the password", async () => {
    const lines: string[] = [];
    const destination = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(chunk.toString("utf8"));
        done();
      },
    });
    const audit = createLogger({ level: "info", destination });
    const config = { ...h.config, server: { ...h.config.server, trust_proxy: 1 } };
    const built = await buildConcordApp(engineContextOf(h, config, audit), runtime, {
      version: "1",
      secrets: { env: { CONCORD_ADMIN_PASSWORD: "a long enough password" }, key: TEST_KEY },
    });
    const attempt = (password: string, client: string) =>
      built.app.inject({
        method: "POST",
        url: "/api/session",
        payload: { password },
        remoteAddress: "127.0.0.1",
        headers: { "x-forwarded-for": client },
      });
    for (let i = 0; i < 5; i += 1)
      expect((await attempt(`wrong-guess-${i}`, "203.0.113.50")).statusCode).toBe(401);
    expect((await attempt("a long enough password", "203.0.113.50")).statusCode).toBe(429);
    // Another operator behind the same proxy is not held up.
    expect((await attempt("a long enough password", "198.51.100.60")).statusCode).toBe(200);
    const log = lines.map((l) => JSON.parse(l) as { msg: string; client?: string; outcome?: string });
    expect(log.filter((l) => l.outcome === "wrong_password").map((l) => l.client)).toEqual(
      Array(5).fill("203.0.113.50"),
    );
    expect(log.find((l) => l.outcome === "signed_in")).toMatchObject({
      client: "198.51.100.60",
      msg: "operator signed in",
    });
    expect(log.some((l) => l.outcome === "too_many_attempts")).toBe(true);
    // Asking again while made to wait is refused at once, each time: logged once a minute, not each time.
    for (let i = 0; i < 20; i += 1) expect((await attempt(`more-${i}`, "203.0.113.50")).statusCode).toBe(429);
    const waiting = lines.filter((l) => l.includes('"too_many_attempts"'));
    expect(waiting).toHaveLength(1);
    // Callbacks no Connect started (anyone can send them): one line a minute, whatever they name.
    for (let i = 0; i < 20; i += 1) {
      const stray = await built.app.inject({
        method: "GET",
        url: `/api/connections/guess-${i}/callback?state=junk-${i}&code=x`,
      });
      expect(stray.statusCode).toBe(303);
    }
    expect(lines.filter((l) => l.includes("Connect did not complete"))).toHaveLength(1);
    expect(lines.join("\n")).not.toContain("wrong-guess");
    expect(lines.join("\n")).not.toContain("a long enough password");
  });
});
