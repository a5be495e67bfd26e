/**
 * /metrics as `concord serve` mounts it: the gauges read from the store are read once for a burst of
 * scrapes (reused for a few seconds), and `server.metrics_token` closes the route to anyone without
 * the bearer token — and to everyone when the token cannot be resolved.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createLogger } from "../../observability/logger";
import type { EngineRuntime } from "../../runs/engine-runtime";
import { buildConcordApp } from "../concord-app";
import {
  engineContextOf,
  runtimeOf,
  sqliteBackend,
  startSyncHarness,
  TEST_KEY,
  type SyncHarness,
} from "../../../test/support/sync-harness";
import { addScrapeMetrics, createConcordMetrics, STORE_GAUGES_TTL_MS } from "./metrics";
import { recordPlanStanding, type PlanStanding } from "../../pipeline/plan-standing";

const TOKEN = "metrics-token-0123456789";

describe("/metrics", () => {
  let h: SyncHarness;
  let runtime: EngineRuntime;
  const logger = createLogger({ level: "silent" });

  beforeEach(async () => {
    h = await startSyncHarness(sqliteBackend());
    runtime = runtimeOf(h, logger);
  });
  afterEach(async () => {
    await runtime.stop();
    await h.close();
  });

  const appWith = async (env: Record<string, string>, tokenRef = true) => {
    const config = {
      ...h.config,
      server: {
        ...h.config.server,
        ...(tokenRef ? { metrics_token: { kind: "env" as const, name: "METRICS_TOKEN" } } : {}),
      },
    };
    return buildConcordApp(engineContextOf(h, config, logger), runtime, {
      version: "1",
      secrets: { env: { CONCORD_ADMIN_PASSWORD: "a long enough password", ...env }, key: TEST_KEY },
    });
  };

  it("asks for the bearer token when server.metrics_token is set", async () => {
    const built = await appWith({ METRICS_TOKEN: TOKEN });
    expect(built.problems.filter((p) => !p.startsWith("Personal links"))).toEqual([]);
    const none = await built.app.inject({ method: "GET", url: "/metrics" });
    expect(none.statusCode).toBe(401);
    expect(none.json()).toMatchObject({ code: "metrics_token_required" });
    const wrong = await built.app.inject({
      method: "GET",
      url: "/metrics",
      headers: { authorization: "Bearer nope" },
    });
    expect(wrong.statusCode).toBe(401);
    const right = await built.app.inject({
      method: "GET",
      url: "/metrics",
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(right.statusCode).toBe(200);
    expect(right.body).toContain("concord_build_info");
    // Without the setting, /metrics stays public.
    const open = await appWith({}, false);
    expect((await open.app.inject({ method: "GET", url: "/metrics" })).statusCode).toBe(200);
  });

  it("is closed to everyone, and says so at start, when the token cannot be resolved", async () => {
    const built = await appWith({});
    expect(built.problems).toContainEqual(
      expect.stringContaining("/metrics is closed: server.metrics_token could not be resolved"),
    );
    const res = await built.app.inject({
      method: "GET",
      url: "/metrics",
      headers: { authorization: "Bearer " },
    });
    expect(res.statusCode).toBe(401);
  });

  it("reads the store's counts once for a burst of scrapes, and again a few seconds later", async () => {
    let clock = 0;
    const metrics = createConcordMetrics({ now: h.now });
    addScrapeMetrics(
      metrics,
      { store: h.store, config: h.config, connections: h.connections, version: "1", monotonic: () => clock },
      h.now(),
    );
    const open = async () => /concord_review_items_open (\d+)/.exec(await metrics.registry.metrics())?.[1];
    expect(await open()).toBe("0");
    await h.store.reviewItems.open({ key: "k1", kind: "ambiguous_identity", detail: {} });
    expect(await open()).toBe("0"); // the same burst: reused
    clock += STORE_GAUGES_TTL_MS;
    expect(await open()).toBe("1");
  });

  it("gives each configured pair's contacts, and leaves out a pair the config no longer has", async () => {
    const standing = (contacts: number): PlanStanding => ({
      key: "k",
      contacts,
      unmarked: 0,
      operations: 0,
      since: "0",
      until: null,
      run_id: "run-1",
      planned_at: h.now().toISOString(),
      checked_at: h.now().toISOString(),
    });
    const [pair] = h.config.pairs;
    if (pair === undefined) throw new Error("the harness has no pair");
    await recordPlanStanding(h.store, pair.id, standing(42));
    // A pair removed from the config keeps its standing row until it is tidied; it is not shown.
    await recordPlanStanding(h.store, "removed-pair", standing(7));
    const metrics = createConcordMetrics({ now: h.now });
    addScrapeMetrics(
      metrics,
      { store: h.store, config: h.config, connections: h.connections, version: "1", monotonic: () => 0 },
      h.now(),
    );
    const lines = (await metrics.registry.metrics())
      .split("\n")
      .filter((line) => line.startsWith("concord_pair_contacts{"));
    expect(lines).toEqual([`concord_pair_contacts{pair="${pair.id}"} 42`]);
  });
});
