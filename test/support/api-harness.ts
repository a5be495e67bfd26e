/**
 * Test support for the API: the engine's sync harness (emulators, a real store, virtual clock) with a
 * real runtime and metrics fed by it, the app built over them, and a signed-in client for `inject`.
 */
import type { FastifyInstance, LightMyRequestResponse } from "fastify";
import { createLogger } from "../../src/observability/logger";
import { connectionHealthTracker } from "../../src/connections/connection-health";
import { createEngineRuntime, type EngineRuntime } from "../../src/runs/engine-runtime";
import { openConnection } from "../../src/connections/open-connection";
import {
  sqliteBackend,
  startSyncHarness,
  TEST_ENV,
  TEST_KEY,
  type SyncHarness,
  type SyncHarnessOptions,
} from "./sync-harness";
import type { StoreBackend } from "./store-backends";
import { buildServer } from "../../src/server/app";
import { linkSigner } from "../../src/runs/personal-links";
import { proofKey } from "../../src/runs/proof-bundle";
import type { ApiDeps } from "../../src/server/api/api-deps";
import { createConcordMetrics, type ConcordMetrics } from "../../src/server/api/metrics";

export const ADMIN_PASSWORD = "correct horse battery staple";

export type ApiHarness = {
  h: SyncHarness;
  runtime: EngineRuntime;
  metrics: ConcordMetrics;
  app: FastifyInstance;
  /** Signs in; later `call`s carry the cookie and the CSRF token. */
  signIn: () => Promise<{ cookie: string; csrf: string }>;
  call: (
    method: "GET" | "POST" | "DELETE",
    url: string,
    body?: unknown,
    options?: { csrf?: string | null; headers?: Record<string, string> },
  ) => Promise<LightMyRequestResponse>;
  close: () => Promise<void>;
};

export async function startApiHarness(
  options: {
    harness?: SyncHarnessOptions;
    /** The store to run on (default SQLite). */
    backend?: StoreBackend;
    api?: Partial<ApiDeps>;
    bodyLimitBytes?: number;
    uiDir?: string;
  } = {},
): Promise<ApiHarness> {
  const h = await startSyncHarness(options.backend ?? sqliteBackend(), options.harness);
  const metrics = createConcordMetrics({ now: h.now });
  const logger = createLogger({ level: "silent" });
  // The harness's connections again, now reporting their calls to the metrics (as `serve` wires them).
  const health = connectionHealthTracker({
    store: h.store,
    logger,
    now: h.now,
    notify: async () => undefined,
  });
  for (const c of h.config.connections)
    h.connections.set(
      c.id,
      openConnection(
        c,
        {
          store: h.store,
          env: TEST_ENV,
          key: TEST_KEY,
          health,
          now: h.now,
          sleep: async (ms) => {
            h.advance(ms);
            await new Promise((resolve) => setImmediate(resolve));
          },
          onApiCall: metrics.onApiCall,
        },
        h.config.topics,
      ),
    );
  const runtime = createEngineRuntime({
    store: h.store,
    config: h.config,
    connections: h.connections,
    now: h.now,
    logger,
    secrets: { env: TEST_ENV, key: TEST_KEY },
    onRun: metrics.onRun,
  });
  const app = buildServer({
    version: "test",
    ready: async () => true,
    ...(options.bodyLimitBytes !== undefined ? { bodyLimitBytes: options.bodyLimitBytes } : {}),
    ...(options.uiDir !== undefined ? { uiDir: options.uiDir } : {}),
    webhooks: runtime.handleWebhook,
    api: {
      store: h.store,
      config: h.config,
      connections: h.connections,
      runtime,
      now: h.now,
      adminPassword: ADMIN_PASSWORD,
      secureCookies: true,
      version: "test",
      metrics,
      proofKey: proofKey(TEST_KEY),
      links: linkSigner(TEST_KEY, {
        server: { ...h.config.server, public_url: "https://concord.example.org" },
      }),
      ...options.api,
    },
  });
  await app.ready();
  let auth: { cookie: string; csrf: string } | undefined;
  const call: ApiHarness["call"] = (method, url, body, opts = {}) => {
    const csrf = opts.csrf === undefined ? auth?.csrf : opts.csrf;
    return app.inject({
      method,
      url,
      headers: {
        ...(auth ? { cookie: auth.cookie } : {}),
        ...(csrf !== undefined && csrf !== null ? { "x-csrf-token": csrf } : {}),
        ...opts.headers,
      },
      ...(body !== undefined ? { payload: body as Record<string, unknown> } : {}),
    });
  };
  return {
    h,
    runtime,
    metrics,
    app,
    call,
    signIn: async () => {
      const res = await app.inject({
        method: "POST",
        url: "/api/session",
        payload: { password: ADMIN_PASSWORD },
      });
      if (res.statusCode !== 200) throw new Error(`sign-in answered ${res.statusCode}: ${res.body}`);
      const cookie = res.cookies.find((c) => c.name === "concord_session");
      const { csrf_token } = res.json<{ csrf_token: string }>();
      auth = { cookie: `concord_session=${cookie?.value ?? ""}`, csrf: csrf_token };
      return auth;
    },
    close: async () => {
      await runtime.stop();
      await app.close();
      await h.close();
    },
  };
}
