/** `/api/session`: sign in with the admin password, see whether you are signed in, sign out. */
import { LoginRequestSchema, SessionSchema } from "../api-schemas";
import { defineRoute, fail, type ApiRoute } from "./api-route";
import type { ApiContext } from "./api-deps";
import { SESSION_COOKIE } from "./sessions";

export function sessionRoutes(ctx: ApiContext): ApiRoute[] {
  const { sessionManager } = ctx;
  return [
    defineRoute({
      method: "GET",
      url: "/api/session",
      tag: "session",
      summary: "Whether this browser is signed in, and its CSRF token when it is",
      access: "public",
      response: SessionSchema,
      handler: async (_input, { request }) => {
        const session = await sessionManager.get(request.cookies[SESSION_COOKIE]);
        return { signed_in: session !== undefined, csrf_token: session?.csrf_token ?? null };
      },
    }),
    defineRoute({
      method: "POST",
      url: "/api/session",
      tag: "session",
      summary: "Sign in with the admin password",
      description:
        "Sets an HttpOnly, SameSite=Strict session cookie (Secure over https) and returns the CSRF token to send in `x-csrf-token` with every state-changing request. After a few failed attempts a client (an IPv6 client by its /64) waits before each next one, twice as long each time up to a minute; past 100 failures a minute from everyone, every sign-in waits (`too_many_attempts`, with Retry-After).",
      access: "public",
      body: LoginRequestSchema,
      response: SessionSchema,
      errors: [401, 429],
      handler: async ({ body }, { request, reply }) => {
        const result = await sessionManager.signIn(body.password, request.ip);
        if (!result.ok) {
          if (result.code === "too_many_attempts") {
            void reply.header("retry-after", String(result.retry_after_s));
            return fail(
              429,
              "too_many_attempts",
              `Too many failed sign-ins; try again in ${result.retry_after_s} s.`,
            );
          }
          return fail(401, "wrong_password", "That is not the admin password.");
        }
        // A new session on every sign-in: a session id planted before sign-in is never promoted.
        await sessionManager.end(request.cookies[SESSION_COOKIE]);
        void reply.setCookie(SESSION_COOKIE, result.session.id, {
          path: "/api",
          httpOnly: true,
          sameSite: "strict",
          secure: ctx.secureCookies,
        });
        return { signed_in: true, csrf_token: result.session.csrf_token };
      },
    }),
    defineRoute({
      method: "DELETE",
      url: "/api/session",
      tag: "session",
      summary: "Sign out",
      access: "session",
      response: SessionSchema,
      handler: async (_input, { request, reply }) => {
        await sessionManager.end(request.cookies[SESSION_COOKIE]);
        void reply.clearCookie(SESSION_COOKIE, {
          path: "/api",
          httpOnly: true,
          sameSite: "strict",
          secure: ctx.secureCookies,
        });
        return { signed_in: false, csrf_token: null };
      },
    }),
  ];
}
