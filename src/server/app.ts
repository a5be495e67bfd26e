/**
 * The HTTP app: health and readiness today; the REST API, webhook receivers, preference pages and
 * the admin UI mount here as they land. Every route has a body size limit and answers errors as
 * JSON with a stable code.
 */
import Fastify, { type FastifyInstance } from "fastify";

export type ServerDeps = {
  version: string;
  /** Resolves true when the store answers. */
  ready: () => Promise<boolean>;
  bodyLimitBytes?: number;
};

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
  return app;
}
