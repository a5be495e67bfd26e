/**
 * `/api/connections/{id}/connect` and its callback: Connect and Reconnect for a system that
 * authorises by OAuth 2. The operator's browser goes to the vendor's authorization page and comes
 * back to the callback, which seals the tokens, checks the connection and returns to the overview.
 */
import { randomBytes } from "node:crypto";
import { z } from "zod";
import { connectFlows } from "../../connections/connect-oauth";
import { defineRoute, fail, seeOther, type ApiRoute } from "./api-route";
import type { ApiContext } from "./api-deps";

const Params = z.strictObject({ id: z.string().min(1).max(100) });
/**
 * The vendor's redirect. Parameters beyond these are the vendor's to add (OAuth 2.0 allows
 * `error_uri`, RFC 9207 adds `iss`, some add their own): they are ignored, never refused, or a
 * vendor that sends one would leave the operator on a JSON error instead of the overview.
 */
const Callback = z.object({
  code: z.string().min(1).max(4096).optional(),
  state: z.string().min(1).max(512).optional(),
  error: z.string().min(1).max(200).optional(),
  error_description: z.string().max(2000).optional(),
  scope: z.string().max(2000).optional(),
});

/** The cookie that ties a Connect's answer to the browser that started it. */
const CONNECT_COOKIE = "concord_connect";

export function connectRoutes(ctx: ApiContext): ApiRoute[] {
  const flows = connectFlows({
    store: ctx.store,
    now: ctx.now,
    succeeded: async (id) => {
      await ctx.connections.get(id)?.healthy({ ok: true });
    },
  });
  /** Where the vendor sends the browser back: the public URL when configured, else this request's origin. */
  const callbackUrl = (id: string, origin: string): string =>
    new URL(
      `/api/connections/${encodeURIComponent(id)}/callback`,
      ctx.config.server.public_url ?? origin,
    ).toString();
  const overview = (params: Record<string, string>): string => `/?${new URLSearchParams(params).toString()}`;

  return [
    defineRoute({
      method: "POST",
      url: "/api/connections/:id/connect",
      tag: "connections",
      summary: "Starts Connect (or Reconnect): the vendor's authorization page to send the browser to",
      description:
        "For a system that authorises by OAuth 2. The answer's authorize_url carries a single-use state bound to this session and, where the vendor takes it, a PKCE challenge; the vendor sends the browser back to /api/connections/{id}/callback.",
      access: "session",
      params: Params,
      response: z.strictObject({ authorize_url: z.string() }),
      errors: [404, 409],
      handler: async ({ params }, { request, reply }) => {
        const opened = ctx.connections.get(params.id);
        if (!opened) return fail(404, "not_found", `No connection ${params.id} in the config.`);
        const origin = `${request.protocol}://${request.headers.host ?? "127.0.0.1"}`;
        // The answer must come back to this browser: a secret in a cookie the vendor's redirect
        // carries (SameSite=Lax is sent on a top-level navigation back from the vendor).
        const browser = randomBytes(24).toString("base64url");
        void reply.setCookie(CONNECT_COOKIE, browser, {
          path: "/api/connections",
          httpOnly: true,
          sameSite: "lax",
          secure: ctx.secureCookies,
          maxAge: 600,
        });
        const started = await flows.start(opened, {
          redirect_uri: callbackUrl(params.id, origin),
          browser,
        });
        return started.ok
          ? started.value
          : fail(started.error.status, started.error.code, started.error.message);
      },
    }),
    defineRoute({
      method: "GET",
      url: "/api/connections/:id/callback",
      tag: "connections",
      summary: "Where the vendor sends the browser back after Connect; returns to the overview",
      description:
        "Public: the browser comes back from the vendor's site without the session cookie (SameSite=Strict); the single-use state an operator's Connect made is the proof. Checks the state, exchanges the code (with the PKCE verifier), seals the tokens as the connection's own, checks the connection and marks it working. Answers 303 to the overview with connected=<id>, or connect_error=<message>.",
      access: "public",
      params: Params,
      query: Callback,
      response: z.string(),
      produces: "text/plain",
      errors: [303],
      handler: async ({ params, query }, { request }) => {
        const done = await flows.finish(ctx.connections, {
          connection_id: params.id,
          browser: request.cookies[CONNECT_COOKIE],
          state: query.state,
          code: query.code,
          error: query.error,
          error_description: query.error_description,
        });
        ctx.onConnect?.(
          done.ok
            ? { connection_id: done.value.connection_id, outcome: "connected" }
            : { connection_id: params.id, outcome: done.error.code, message: done.error.message },
        );
        return seeOther(
          done.ok
            ? overview({ connected: done.value.connection_id })
            : // A code, never free text: anyone can send an operator a link to the overview, so
              // the page shows only its own sentences for these (the vendor's error word aside).
              overview({
                connection: params.id,
                connect_error: done.error.code,
                ...(query.error !== undefined && /^[a-z_]{1,40}$/.test(query.error)
                  ? { vendor_error: query.error }
                  : {}),
              }),
        );
      },
    }),
  ];
}
