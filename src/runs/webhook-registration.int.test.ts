/**
 * `concord serve` makes sure every pushing system is subscribed to its receiver at
 * `server.public_url` — on start, then every hour — and makes a subscription the vendor dropped
 * again, alerting once on every channel with a link to the UI, and once more when it is fine.
 */
import type { AddressInfo } from "node:net";
import type { FastifyInstance } from "fastify";
import { webhookShareSpent } from "./webhook-flood";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { connectionHealthTracker, type ConnectionAlert } from "../connections/connection-health";
import { createLogger } from "../observability/logger";
import { buildServer } from "../server/app";
import { createEngineRuntime, WEBHOOK_CHECK_MS, type EngineRuntime } from "./engine-runtime";
import {
  addToReList,
  individual,
  post,
  RE_LISTS,
  sqliteBackend,
  startSyncHarness,
  type SyncHarness,
} from "../../test/support/sync-harness";
import { TEST_ENV, TEST_KEY } from "../../test/support/test-credentials";

const AUDIENCE = "a1b2c3d4e5";

describe("webhook subscriptions kept by serve (SQLite)", () => {
  let h: SyncHarness;
  let runtime: EngineRuntime;
  let server: FastifyInstance;
  let base: string;
  let alerts: ConnectionAlert[];
  /** Where the runtime resolves secrets from: a test may replace one while it runs. */
  let env: Record<string, string>;

  beforeEach(async () => {
    h = await startSyncHarness(sqliteBackend(), {
      mailchimp: true,
      configure: (raw) => {
        for (const c of raw["connections"] as Record<string, unknown>[]) {
          if (c["id"] === "mc") c["webhooks"] = { enabled: true, secret: { env: "MC_WEBHOOK_SECRET" } };
          if (c["id"] === "re-nxt") c["webhooks"] = { enabled: true, secret: { env: "RE_WEBHOOK_SECRET" } };
        }
      },
    });
    alerts = [];
    // The receiver listens first: the config's public URL is where it is.
    const receiver: { handle?: EngineRuntime["handleWebhook"] } = {};
    server = buildServer({
      version: "test",
      ready: async () => true,
      webhooks: (id, request) => receiver.handle!(id, request),
    });
    await server.listen({ port: 0, host: "127.0.0.1" });
    base = `http://127.0.0.1:${(server.server.address() as AddressInfo).port}`;
    (h.config.server as { public_url?: string }).public_url = base;
    const logger = createLogger({ level: "silent" });
    env = {
      ...TEST_ENV,
      MC_WEBHOOK_SECRET: "mc-webhook-secret-1f3a",
      RE_WEBHOOK_SECRET: "re-webhook-secret-9b2d",
    };
    const health = connectionHealthTracker({
      store: h.store,
      logger,
      now: h.now,
      notify: async (a) => {
        alerts.push(a);
      },
      public_url: base,
    });
    runtime = createEngineRuntime({
      store: h.store,
      config: h.config,
      connections: h.connections,
      now: h.now,
      logger,
      secrets: { env, key: TEST_KEY },
      problems: health,
    });
    receiver.handle = runtime.handleWebhook;
  });
  afterEach(async () => {
    await runtime.stop();
    await server.close();
    await h.close();
  });

  const mcHooks = async () => {
    const { api_key } = await post<{ api_key: string }>(h.mcOrigin!, "/__emulator/token", {});
    const res = await fetch(`${h.mcOrigin!}/3.0/lists/${AUDIENCE}/webhooks`, {
      headers: { authorization: `Basic ${Buffer.from(`x:${api_key}`).toString("base64")}` },
    });
    return ((await res.json()) as { webhooks: { id: string; url: string }[] }).webhooks;
  };
  const reSubscriptions = () => h.re.webhooks.snapshot().subscriptions;

  it("subscribes on start, keeps what is there, and makes a dropped subscription again with one alert", async () => {
    const first = await runtime.ensureWebhooks();
    expect(first.map((c) => [c.connection_id, c.status])).toEqual([
      ["re-nxt", "registered"],
      ["mc", "registered"],
    ]);
    expect(first.every((c) => c.created > 0)).toBe(true);
    expect((await mcHooks()).map((w) => w.url)).toEqual([
      `${base}/webhooks/mc?key=mc-webhook-secret-1f3a&by=user`,
      `${base}/webhooks/mc?key=mc-webhook-secret-1f3a&by=admin`,
    ]);
    const reCount = reSubscriptions().length;
    expect(reCount).toBeGreaterThan(0);

    // Checked again: nothing new is made.
    const again = await runtime.ensureWebhooks();
    expect(again.map((c) => c.created)).toEqual([0, 0]);
    expect((await mcHooks()).length).toBe(2);
    expect(reSubscriptions().length).toBe(reCount);
    expect(alerts).toEqual([]);

    // The vendors drop them (an app disconnected, an endpoint that failed too long).
    const { api_key } = await post<{ api_key: string }>(h.mcOrigin!, "/__emulator/token", {});
    for (const hook of await mcHooks())
      await fetch(`${h.mcOrigin!}/3.0/lists/${AUDIENCE}/webhooks/${hook.id}`, {
        method: "DELETE",
        headers: { authorization: `Basic ${Buffer.from(`x:${api_key}`).toString("base64")}` },
      });
    for (const s of reSubscriptions()) h.re.webhooks.deleteSubscription(s.id);

    // The hourly check at a tick finds them gone and makes them again.
    h.advance(WEBHOOK_CHECK_MS);
    await runtime.tick();
    expect((await mcHooks()).length).toBe(2);
    expect(reSubscriptions().length).toBe(reCount);
    await runtime.idle();
    const lost = alerts.filter((a) => a.code === "webhook_subscription_lost");
    expect(lost.map((a) => a.connection_id).sort()).toEqual(["mc", "re-nxt"]);
    expect(lost.every((a) => a.status === "warning" && a.link === `${base}/`)).toBe(true);

    // Another hour, all in place: each alert is closed once, and not raised again.
    h.advance(WEBHOOK_CHECK_MS);
    await runtime.tick();
    h.advance(WEBHOOK_CHECK_MS);
    await runtime.tick();
    const resolved = alerts.filter((a) => a.status === "resolved");
    expect(resolved.map((a) => a.connection_id).sort()).toEqual(["mc", "re-nxt"]);
    expect(alerts).toHaveLength(4);
  });

  it("a Do Not Contact solicit code added in Raiser's Edge NXT reaches Constant Contact by its webhook, before any full read", async () => {
    const [ada] = await h.seedRe([individual("ada@example.org", "Ada", "Example")]);
    await addToReList(h, RE_LISTS.news, [ada!]);
    await runtime.syncNow();
    await runtime.ensureWebhooks();
    expect(reSubscriptions().map((s) => s.event_type)).toContain(
      "com.blackbaud.constituent.solicitcode.add.v1",
    );
    await fetch(`${h.re.baseUrl}/__emulator/webhooks/flush`, { method: "POST" });
    // A solicit code moves no constituent's date: an incremental read would not list her.
    await h.reAct({ action: "add_solicit_code", constituent_id: ada, code: "Do not contact" });
    h.advance(1_000);
    await fetch(`${h.re.baseUrl}/__emulator/webhooks/flush`, { method: "POST" });
    await runtime.idle();
    expect(h.ccContact(h.ccMain, "ada@example.org")?.email_address?.permission_to_send).toBe("unsubscribed");
  });

  it("a solicit code's webhook is read even once webhook re-reads have used their share of the quota: no poll shows it", async () => {
    const [ada] = await h.seedRe([individual("ada@example.org", "Ada", "Example")]);
    await addToReList(h, RE_LISTS.news, [ada!]);
    await runtime.syncNow();
    await runtime.ensureWebhooks();
    await fetch(`${h.re.baseUrl}/__emulator/webhooks/flush`, { method: "POST" });
    // Three quarters of today's calls are spent: plain changes are left to the poll from now on.
    const re = h.connections.get("re-nxt")!;
    h.connections.set("re-nxt", {
      ...re,
      budget: {
        ...re.budget,
        usage: () => ({ ...re.budget.usage(), daily_quota: 25_000, remaining: 6_000 }),
      },
    });
    expect(webhookShareSpent(h.connections.get("re-nxt")!.budget.usage())).toBe(true);
    await h.reAct({ action: "add_solicit_code", constituent_id: ada, code: "Do not contact" });
    h.advance(1_000);
    await fetch(`${h.re.baseUrl}/__emulator/webhooks/flush`, { method: "POST" });
    await runtime.idle();
    expect(h.ccContact(h.ccMain, "ada@example.org")?.email_address?.permission_to_send).toBe("unsubscribed");
  });

  it("a webhook secret replaced while serve runs makes the subscriptions again at once, with no alert", async () => {
    await runtime.ensureWebhooks();
    const old = "mc-webhook-secret-1f3a";
    // The operator replaces the secret (`concord secrets set`); Mailchimp still delivers to the old URLs.
    env["MC_WEBHOOK_SECRET"] = "mc-webhook-secret-2c9d";
    h.advance(61_000);
    const refused = await fetch(`${base}/webhooks/mc?key=${old}&by=user`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: "type=profile&fired_at=2026-06-01+09%3A00%3A00&data%5Bemail%5D=ada%40example.org",
    });
    expect(refused.status).toBe(401);
    // Made again now, not at the next hourly check; the old ones are gone.
    const deadline = Date.now() + 45_000;
    const newUrls = [
      `${base}/webhooks/mc?key=mc-webhook-secret-2c9d&by=user`,
      `${base}/webhooks/mc?key=mc-webhook-secret-2c9d&by=admin`,
    ];
    while (JSON.stringify((await mcHooks()).map((w) => w.url)) !== JSON.stringify(newUrls)) {
      if (Date.now() > deadline) throw new Error(`never made again: ${JSON.stringify(await mcHooks())}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await runtime.ensureWebhooks();
    expect(alerts).toEqual([]);
  });

  it("says why a subscription cannot be made, and alerts once", async () => {
    (h.config.server as { public_url?: string }).public_url = "http://127.0.0.1:9/";
    const checks = await runtime.ensureWebhooks();
    // Mailchimp checks the receiver before it makes the webhook, and cannot reach this one.
    const mc = checks.find((c) => c.connection_id === "mc");
    expect(mc?.status).toBe("failed");
    expect(mc?.message).toMatch(/could not make sure mc pushes its changes/);
    await runtime.ensureWebhooks();
    expect(
      alerts.filter((a) => a.connection_id === "mc" && a.code === "webhook_subscription_failed"),
    ).toHaveLength(1);
  });
});
