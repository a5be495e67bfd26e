/**
 * The HTTP app: health and readiness, the webhook receivers, and (given the engine) the REST API,
 * /openapi.json, /metrics and the built admin UI. Every route has a body size limit and answers
 * errors as JSON with a stable code.
 */
import { existsSync } from "node:fs";
import { createServer } from "node:http";
import { join } from "node:path";
import fastifyStatic from "@fastify/static";
import Fastify, { type FastifyInstance, type FastifyReply } from "fastify";
import type { WebhookRequest } from "../connectors/connector";
import type { WebhookResponse } from "../runs/engine-runtime";
import { registerApi, registerApiDisabled, type ApiDeps, type ApiDisabled } from "./api/register-api";
import { registerPersonPages, type PersonPagesDeps } from "./person-pages";

export type ServerDeps = {
  version: string;
  /** Resolves true when the store answers. */
  /** Whether the service can do its work (the store takes a write); a message says why not. */
  ready: () => Promise<boolean | { ok: true } | { ok: false; message: string }>;
  bodyLimitBytes?: number;
  /** The engine's webhook intake (`/webhooks/:connection`); absent: no receivers are mounted. */
  webhooks?: (connectionId: string, request: WebhookRequest) => Promise<WebhookResponse>;
  /** The REST API, /openapi.json and /metrics; absent: not mounted. */
  api?: ApiDeps;
  /** Why the API cannot run (e.g. no admin password): /api answers 503 `api_disabled` saying so; /metrics still answers. */
  apiDisabled?: ApiDisabled;
  /** The pages a person reaches from an email (one-click unsubscribe); absent: not mounted. */
  personPages?: PersonPagesDeps;
  /** The built admin UI (`ui/dist`): its files, and index.html for any other GET outside /api. */
  uiDir?: string;
  /** Where a request's unexpected failure (a 5xx) is reported; the client gets `internal_error` only. */
  onError?: (error: unknown, request: { method: string; url: string }) => void;
  /**
   * The address people and systems reach the server at (`server.public_url`): requests naming
   * another Host are refused (421), and an https address adds HSTS. Absent: any Host is answered.
   */
  publicUrl?: string;
  /**
   * The longest a client may take to send a whole request (default 30 s), and a connection may sit
   * idle (default 60 s): a slow sender never holds a connection open for long.
   */
  timeouts?: { request_ms?: number; idle_ms?: number };
  /** Which proxies' X-Forwarded-For gives the client's address (`server.trust_proxy`). */
  trustProxy?: boolean | number | string[];
};

/** What every answer carries; a route may set a stricter policy of its own. */
const SECURITY_HEADERS: Record<string, string> = {
  "x-content-type-options": "nosniff",
  "referrer-policy": "same-origin",
  "content-security-policy":
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
};

/** Probes a load balancer or orchestrator sends by address, whatever the Host. */
const PROBES = /^\/(healthz|readyz)$/;

const STORE_FULL = {
  retry_after: "60",
  body: {
    code: "store_full",
    message: "The store's disk is full; nothing was changed. Try again once space is freed.",
  },
};

/** Store failures that pass: answered 503 with Retry-After rather than 500. */
const STORE_UNAVAILABLE: Record<string, { retry_after: string; body: ErrorBody }> = {
  store_busy: {
    retry_after: "5",
    body: {
      code: "store_busy",
      message: "The store is busy with another writer; nothing was changed. Try again in a few seconds.",
    },
  },
  SQLITE_FULL: STORE_FULL,
  // PostgreSQL's disk_full.
  "53100": STORE_FULL,
};

/** The hosts the server answers for: the public address's, and the loopback names. */
export function allowedHosts(publicUrl: string): ReadonlySet<string> {
  return new Set([new URL(publicUrl).host.toLowerCase(), "localhost", "127.0.0.1", "[::1]"]);
}

/** A Host header without its port, lower-cased (`[::1]:8080` → `[::1]`). */
function hostName(header: string | undefined): string {
  const h = (header ?? "").trim().toLowerCase();
  if (h.startsWith("[")) return h.slice(0, h.indexOf("]") + 1);
  return h.split(":")[0] ?? "";
}

/** Where a connection's webhook deliveries go: `/webhooks/<connection id>` (plus the system's own query, e.g. `?webhookKey=`). */
export const WEBHOOK_PATH = "/webhooks/:connection";

export type ErrorBody = { code: string; message: string };

/** Paths the UI fallback never answers: they are the API's, the receivers' and the operators' tools'. */
const NOT_UI = /^\/(api|webhooks|metrics|openapi\.json|healthz|readyz|l)(\/|$)/;

/** Fastify's own error codes, as ours. */
const FRAMEWORK_CODES: Record<string, string> = {
  FST_ERR_CTP_INVALID_MEDIA_TYPE: "unsupported_media_type",
  FST_ERR_CTP_EMPTY_JSON_BODY: "invalid_json",
  FST_ERR_CTP_INVALID_JSON_BODY: "invalid_json",
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: "invalid_request",
  FST_ERR_VALIDATION: "invalid_request",
};

/** The longest path parameter the router takes (a route may take less). */
const MAX_PARAM_LENGTH = 500;

export function buildServer(deps: ServerDeps): FastifyInstance {
  const requestTimeout = deps.timeouts?.request_ms ?? 30_000;
  const app = Fastify({
    logger: false,
    bodyLimit: deps.bodyLimitBytes ?? 1024 * 1024,
    // A path parameter's length is each route's to check (the API's schemas say what they take); the
    // router's own cap only stops the absurd. It must not reach a person's link token (about 90
    // characters today): a one-click unsubscribe refused for its length would be an opt-out lost.
    maxParamLength: MAX_PARAM_LENGTH,
    // The router's own refusals answer in the app's form, saying what was wrong.
    frameworkErrors: (error, request, anyReply) => {
      const reply = anyReply as unknown as FastifyReply;
      const path = (request.url.split("?")[0] ?? "").slice(0, 80);
      const body: ErrorBody =
        error.code === "FST_ERR_MAX_PARAM_LENGTH"
          ? {
              code: "uri_too_long",
              message: `A part of the path ${JSON.stringify(path)}… is longer than ${MAX_PARAM_LENGTH} characters.`,
            }
          : error.code === "FST_ERR_BAD_URL"
            ? {
                code: "bad_url",
                message: `The path ${JSON.stringify(path)} is not a valid URL (a malformed %-escape?).`,
              }
            : { code: "bad_request", message: error.message };
      void reply.code(error.code === "FST_ERR_MAX_PARAM_LENGTH" ? 414 : 400).send(body);
    },
    // A hop count trusts that many proxies nearest the server.
    trustProxy:
      typeof deps.trustProxy === "number"
        ? (
            (hops: number) => (_address: string, hop: number) =>
              hop < hops
          )(deps.trustProxy)
        : (deps.trustProxy ?? false),
    // Node checks request deadlines on an interval (30 s by default): often enough to hold them.
    // (Fastify applies none of its own timeouts to a server it did not make: set them here.)
    serverFactory: (handler) => {
      const server = createServer(
        {
          requestTimeout,
          headersTimeout: requestTimeout,
          connectionsCheckingInterval: Math.max(50, Math.min(1_000, Math.floor(requestTimeout / 4))),
          keepAliveTimeout: 72_000,
        },
        handler,
      );
      server.setTimeout(deps.timeouts?.idle_ms ?? 60_000);
      return server;
    },
  });

  const hosts = deps.publicUrl !== undefined ? allowedHosts(deps.publicUrl) : undefined;
  const publicHost = deps.publicUrl !== undefined ? new URL(deps.publicUrl).host : "";
  const hostNames = hosts !== undefined ? new Set([...hosts].map((h) => hostName(h))) : undefined;
  const https = deps.publicUrl?.startsWith("https:") === true;
  app.addHook("onRequest", async (request, reply) => {
    for (const [name, value] of Object.entries(SECURITY_HEADERS)) void reply.header(name, value);
    if (https) void reply.header("strict-transport-security", "max-age=31536000; includeSubDomains");
    const path = request.url.split("?")[0] ?? "";
    const host = hostName(request.headers.host);
    if (hostNames !== undefined && !hostNames.has(host) && !PROBES.test(path))
      return reply.code(421).send({
        code: "misdirected_request",
        message: `This server answers for ${publicHost} (server.public_url); the request named host "${host.slice(0, 100)}".`,
      } satisfies ErrorBody);
    return undefined;
  });

  app.setErrorHandler((error: { statusCode?: number; code?: string; message: string }, request, reply) => {
    const status =
      error.statusCode && error.statusCode >= 400 && error.statusCode < 600 ? error.statusCode : 500;
    if (status >= 500)
      deps.onError?.(error, { method: request.method, url: request.url.split("?")[0] ?? "" });
    const unavailable = STORE_UNAVAILABLE[error.code ?? ""];
    if (unavailable !== undefined) {
      // Nothing was changed, and the same request succeeds once the store takes writes again: a
      // system delivering a webhook retries on 503. (Logged above, as every 5xx is.)
      return reply.code(503).header("retry-after", unavailable.retry_after).send(unavailable.body);
    }
    const body: ErrorBody =
      status === 413
        ? {
            code: "body_too_large",
            message: `The request body is larger than ${deps.bodyLimitBytes ?? 1024 * 1024} bytes.`,
          }
        : status >= 500
          ? { code: "internal_error", message: "Something went wrong on our side; it has been logged." }
          : error.code === "FST_ERR_CTP_INVALID_MEDIA_TYPE"
            ? {
                code: "unsupported_media_type",
                message: `This endpoint takes application/json; the request's body is ${JSON.stringify(
                  (request.headers["content-type"] ?? "(no content-type)").slice(0, 100),
                )}.`,
              }
            : {
                code: FRAMEWORK_CODES[error.code ?? ""] ?? (error.code ?? "bad_request").toLowerCase(),
                message: error.message,
              };
    return reply.code(status).send(body);
  });
  const uiDir =
    deps.uiDir !== undefined && existsSync(join(deps.uiDir, "index.html")) ? deps.uiDir : undefined;
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split("?")[0] ?? "";
    // The admin UI routes in the browser: any other page GET gets its index.html.
    if (uiDir !== undefined && request.method === "GET" && !NOT_UI.test(path))
      return reply
        .type("text/html; charset=utf-8")
        .header("cache-control", "no-cache")
        .sendFile("index.html");
    return reply.code(404).send({ code: "not_found", message: `No route for ${request.method} ${path}.` });
  });
  if (uiDir !== undefined)
    void app.register(fastifyStatic, {
      root: uiDir,
      prefix: "/",
      // Built assets have content hashes in their names; index.html must be revalidated.
      setHeaders: (reply, file) => {
        void reply.header(
          "cache-control",
          file.endsWith("index.html") ? "no-cache" : "public, max-age=31536000, immutable",
        );
      },
    });
  if (deps.personPages) registerPersonPages(app, deps.personPages);
  if (deps.api) registerApi(app, deps.api);
  else if (deps.apiDisabled !== undefined) registerApiDisabled(app, deps.apiDisabled);

  app.get("/healthz", async () => ({ status: "ok", version: deps.version }));
  app.get("/readyz", async (_request, reply) => {
    const answer = await deps.ready().catch(() => false);
    if (answer === true || (typeof answer === "object" && answer.ok)) return reply.send({ status: "ready" });
    return reply.code(503).send({
      code: "store_unavailable",
      message: typeof answer === "object" && !answer.ok ? answer.message : "The store does not answer.",
    });
  });
  const webhooks = deps.webhooks;
  if (webhooks) {
    // The raw body, untouched: a system's signature or verification covers the bytes as sent.
    void app.register((scope, _opts, done) => {
      scope.removeAllContentTypeParsers();
      scope.addContentTypeParser("*", { parseAs: "string" }, (_request, body, next) => {
        next(null, body);
      });
      scope.route({
        method: ["GET", "POST", "OPTIONS"],
        url: WEBHOOK_PATH,
        handler: async (request, reply) => {
          const { connection } = request.params as { connection: string };
          const headers: Record<string, string | undefined> = {};
          for (const [k, v] of Object.entries(request.headers))
            headers[k] = Array.isArray(v) ? v.join(", ") : v;
          const query: Record<string, string | undefined> = {};
          for (const [k, v] of Object.entries(request.query as Record<string, unknown>))
            query[k] = typeof v === "string" ? v : undefined;
          const answer = await webhooks(connection, {
            method: request.method,
            headers,
            query,
            raw_body: typeof request.body === "string" ? request.body : "",
          });
          void reply.code(answer.status);
          for (const [k, v] of Object.entries(answer.headers ?? {})) void reply.header(k, v);
          return reply.send(answer.body ?? "");
        },
      });
      done();
    });
  }
  return app;
}
