/**
 * Mounts the REST API (`/api/…`), `/openapi.json` and `/metrics` on the app. Every API route is
 * declared once in the route table below: the table registers the routes and generates the OpenAPI
 * document. Every /api route but sign-in needs a session; every state-changing one the CSRF token.
 */
import fastifyCookie from "@fastify/cookie";
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import type { SyncDeps } from "../../runs/sync-pair";
import { defineRoute, fail, raw, registerRoutes, type AccessCheck, type ApiRoute } from "./api-route";
import type { ApiContext, ApiDeps } from "./api-deps";
import { chartRoutes } from "./chart-routes";
import { connectRoutes } from "./connect-routes";
import {
  addScrapeMetrics,
  createConcordMetrics,
  metricsAllowed,
  type ConcordMetrics,
  type MetricsAccess,
  type MetricsSources,
} from "./metrics";
import { openApiDocument } from "./openapi";
import { overviewRoutes } from "./overview-routes";
import { peopleRoutes } from "./people-routes";
import { complianceRoutes } from "./compliance-routes";
import { reconciliationRoutes } from "./reconciliation-routes";
import { reviewRoutes } from "./review-routes";
import { runRoutes } from "./run-routes";
import { sessionRoutes } from "./session-routes";
import { createSessionManager, CSRF_HEADER, SESSION_COOKIE } from "./sessions";

export type { ApiDeps } from "./api-deps";

/** Every /api route, in the order the OpenAPI document lists them. */
export function apiRoutes(ctx: ApiContext): ApiRoute[] {
  return [
    ...sessionRoutes(ctx),
    ...overviewRoutes(ctx),
    ...connectRoutes(ctx),
    ...runRoutes(ctx),
    ...peopleRoutes(ctx),
    ...complianceRoutes(ctx),
    ...reconciliationRoutes(ctx),
    ...reviewRoutes(ctx),
    ...chartRoutes(ctx),
  ];
}

/** `/metrics`: the counters in `metrics`, plus the gauges read from `sources` on each scrape. */
function metricsRoute(
  metrics: ConcordMetrics,
  sources: MetricsSources,
  since: Date,
  access: MetricsAccess = { kind: "public" },
): ApiRoute {
  addScrapeMetrics(metrics, sources, since);
  return defineRoute({
    method: "GET",
    url: "/metrics",
    tag: "operations",
    summary: "Prometheus metrics (text exposition format)",
    access: "public",
    response: z.string(),
    produces: "text/plain",
    handler: async (_input, { request }) =>
      metricsAllowed(access, request.headers.authorization)
        ? raw(metrics.registry.contentType, await metrics.registry.metrics())
        : fail(
            401,
            "metrics_token_required",
            access.kind === "closed"
              ? "/metrics needs server.metrics_token, which could not be resolved; fix the reference and restart."
              : "/metrics needs the configured bearer token: send Authorization: Bearer <server.metrics_token>.",
          ),
  });
}

export function registerApi(app: FastifyInstance, deps: ApiDeps): void {
  const metrics = deps.metrics ?? createConcordMetrics({ now: deps.now });
  const sessionManager = createSessionManager({
    ...deps.sessions,
    adminPassword: deps.adminPassword,
    store: deps.store,
    now: deps.now,
  });
  const syncDeps: SyncDeps = {
    store: deps.store,
    config: deps.config,
    connections: deps.connections,
    now: deps.now,
  };
  const ctx: ApiContext = { ...deps, metrics, sessionManager, syncDeps };

  const routes = apiRoutes(ctx);
  const operational: ApiRoute[] = [metricsRoute(metrics, deps, deps.now(), deps.metricsAccess)];
  let document: Record<string, unknown> | undefined;
  const openapi: ApiRoute = defineRoute({
    method: "GET",
    url: "/openapi.json",
    tag: "operations",
    summary: "This API as an OpenAPI 3.1 document",
    access: "public",
    response: z.record(z.string(), z.unknown()),
    handler: async (): Promise<Record<string, unknown>> =>
      (document ??= openApiDocument([...routes, ...operational, openapi], deps.version)),
  });

  const check: AccessCheck = async (request, access) => {
    if (access === "public") return undefined;
    const session = await sessionManager.get(request.cookies[SESSION_COOKIE]);
    if (!session)
      return fail(401, "not_signed_in", "Sign in first: POST /api/session with the admin password.");
    if (request.method === "GET" || request.method === "HEAD") return undefined;
    const header = request.headers[CSRF_HEADER];
    if (!sessionManager.csrfMatches(session, Array.isArray(header) ? header[0] : header))
      return fail(
        403,
        "csrf_invalid",
        `A state-changing request must carry the session's CSRF token in the ${CSRF_HEADER} header (from GET or POST /api/session).`,
      );
    return undefined;
  };

  void app.register(async (scope) => {
    await scope.register(fastifyCookie);
    scope.addHook("onSend", async (request, reply, payload) => {
      if (request.url.startsWith("/api/")) void reply.header("cache-control", "no-store");
      return payload;
    });
    registerRoutes(scope, [...routes, ...operational, openapi], check);
  });
}

export type ApiDisabled = {
  reason: string;
  /** Metrics need no sign-in: served even so. */
  metrics?: { metrics: ConcordMetrics; sources: MetricsSources; now: () => Date; access?: MetricsAccess };
};

/** When the API cannot run (no admin password): every /api route answers 503 `api_disabled` with why. */
export function registerApiDisabled(app: FastifyInstance, disabled: ApiDisabled): void {
  app.all("/api/*", async (_request, reply) =>
    reply.code(503).send({ code: "api_disabled", message: `The API is disabled: ${disabled.reason}` }),
  );
  const m = disabled.metrics;
  if (m)
    registerRoutes(app, [metricsRoute(m.metrics, m.sources, m.now(), m.access)], () =>
      Promise.resolve(undefined),
    );
}
