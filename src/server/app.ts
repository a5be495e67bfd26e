/**
 * The HTTP app: health and readiness today; the REST API, webhook receivers, preference pages and
 * the admin UI mount here as they land. Every route has a body size limit and answers errors as
 * JSON with a stable code.
 */
import Fastify, { type FastifyInstance } from "fastify";
import type { WebhookRequest } from "../connectors/connector";
import type { WebhookResponse } from "../engine/engine-runtime";

export type ServerDeps = {
  version: string;
  /** Resolves true when the store answers. */
  ready: () => Promise<boolean>;
  bodyLimitBytes?: number;
  /** The engine's webhook intake (`/webhooks/:connection`); absent: no receivers are mounted. */
  webhooks?: (connectionId: string, request: WebhookRequest) => Promise<WebhookResponse>;
};

/** Where a connection's webhook deliveries go: `/webhooks/<connection id>` (plus the system's own query, e.g. `?webhookKey=`). */
export const WEBHOOK_PATH = "/webhooks/:connection";

export type ErrorBody = { code: string; message: string };

export function buildServer(deps: ServerDeps): FastifyInstance {
  const app = Fastify({ logger: false, bodyLimit: deps.bodyLimitBytes ?? 1024 * 1024 });

  app.setErrorHandler((error: { statusCode?: number; code?: string; message: string }, _request, reply) => {
    const status =
      error.statusCode && error.statusCode >= 400 && error.statusCode < 600 ? error.statusCode : 500;
    const body: ErrorBody =
      status === 413
        ? {
            code: "body_too_large",
            message: `The request body is larger than ${deps.bodyLimitBytes ?? 1024 * 1024} bytes.`,
          }
        : status >= 500
          ? { code: "internal_error", message: "Something went wrong on our side; it has been logged." }
          : { code: (error.code ?? "bad_request").toLowerCase(), message: error.message };
    return reply.code(status).send(body);
  });
  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send({
      code: "not_found",
      message: `No route for ${request.method} ${request.url.split("?")[0] ?? ""}.`,
    }),
  );

  app.get("/healthz", async () => ({ status: "ok", version: deps.version }));
  app.get("/readyz", async (_request, reply) => {
    const ok = await deps.ready().catch(() => false);
    return reply
      .code(ok ? 200 : 503)
      .send(ok ? { status: "ready" } : { code: "store_unavailable", message: "The store does not answer." });
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
        method: ["POST", "OPTIONS"],
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
