/** The shared emulated OAuth 2.0 server, through Fastify's in-process requests. */
import { createHash } from "node:crypto";
import Fastify, { type FastifyInstance } from "fastify";
import { afterEach, describe, expect, it } from "vitest";
import { OAuth2Server, type OAuth2ServerOptions } from "./oauth2-server";

let t = Date.parse("2026-06-01T10:00:00.000Z");
const apps: FastifyInstance[] = [];
afterEach(async () => {
  for (const app of apps.splice(0)) await app.close();
});

function serve(overrides: Partial<OAuth2ServerOptions> = {}) {
  const server = new OAuth2Server({
    now: () => new Date(t),
    paths: { authorize: ["/authorize"], token: "/token" },
    access_ttl_seconds: 3600,
    refresh_ttl_ms: 86_400_000,
    refresh: "rotate",
    default_scopes: ["read"],
    clients: [],
    strict_exchange: false,
    user_id: "u1",
    token_type: "Bearer",
    ...overrides,
  });
  const app = Fastify();
  app.addContentTypeParser("application/x-www-form-urlencoded", { parseAs: "string" }, (_r, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)));
  });
  server.register(app);
  apps.push(app);
  const token = async (form: Record<string, string>, headers: Record<string, string> = {}) => {
    const res = await app.inject({
      method: "POST",
      url: "/token",
      headers: { "content-type": "application/x-www-form-urlencoded", ...headers },
      payload: new URLSearchParams(form).toString(),
    });
    return { status: res.statusCode, body: res.json<Record<string, unknown>>() };
  };
  const authorize = async (query: Record<string, string>) => {
    const res = await app.inject({
      method: "GET",
      url: `/authorize?${new URLSearchParams(query).toString()}`,
    });
    return {
      status: res.statusCode,
      location: res.headers.location ? new URL(res.headers.location) : undefined,
    };
  };
  return { server, token, authorize };
}

const verifier = "a-verifier-of-enough-length-0123456789abcdef";
const challenge = createHash("sha256").update(verifier).digest("base64url");

describe("the emulated OAuth 2.0 server", () => {
  it("runs the code grant with PKCE: single-use codes, a live token, an expired one", async () => {
    const { server, token, authorize } = serve();
    const a = await authorize({
      client_id: "app",
      redirect_uri: "http://localhost/cb",
      response_type: "code",
      code_challenge: challenge,
      code_challenge_method: "S256",
      state: "s1",
    });
    expect(a.status).toBe(302);
    expect(a.location?.searchParams.get("state")).toBe("s1");
    const code = a.location!.searchParams.get("code")!;
    const wrong = await token({ grant_type: "authorization_code", code, code_verifier: "nope" });
    expect(wrong).toMatchObject({ status: 400, body: { error: "invalid_grant" } });
    // The failed exchange spent the code.
    const again = await token({ grant_type: "authorization_code", code, code_verifier: verifier });
    expect(again.status).toBe(400);

    const b = await authorize({
      client_id: "app",
      redirect_uri: "http://localhost/cb",
      response_type: "code",
    });
    const tokens = await token({
      grant_type: "authorization_code",
      code: b.location!.searchParams.get("code")!,
    });
    expect(tokens.status).toBe(200);
    const header = `Bearer ${String(tokens.body["access_token"])}`;
    expect(server.check(header)).toEqual({ ok: true, client_id: "app", user_id: "u1", scopes: ["read"] });
    t += 3601_000;
    expect(server.check(header)).toEqual({ ok: false, reason: "expired" });
    expect(server.check(undefined)).toEqual({ ok: false, reason: "missing" });
    expect(server.check("Bearer unknown")).toEqual({ ok: false, reason: "invalid" });
  });

  it("refuses a bad authorization request: 400 without a safe redirect, an error redirect with one", async () => {
    const { authorize } = serve({ clients: [{ client_id: "app", redirect_uris: ["http://localhost/cb"] }] });
    expect(
      (await authorize({ client_id: "other", redirect_uri: "http://localhost/cb", response_type: "code" }))
        .status,
    ).toBe(400);
    expect(
      (await authorize({ client_id: "app", redirect_uri: "http://evil/cb", response_type: "code" })).status,
    ).toBe(400);
    const r = await authorize({
      client_id: "app",
      redirect_uri: "http://localhost/cb",
      response_type: "token",
      state: "x",
    });
    expect(r.status).toBe(302);
    expect(r.location?.searchParams.get("error")).toBe("unsupported_response_type");
    expect(r.location?.searchParams.get("state")).toBe("x");
  });

  it("strict exchange: the redirect URI repeated and the app's secret without PKCE", async () => {
    const { token, authorize } = serve({
      strict_exchange: true,
      clients: [{ client_id: "app", client_secret: "s3cret" }],
    });
    const codeOf = async () =>
      (
        await authorize({ client_id: "app", redirect_uri: "http://localhost/cb", response_type: "code" })
      ).location!.searchParams.get("code")!;
    expect(
      await token({
        grant_type: "authorization_code",
        code: await codeOf(),
        redirect_uri: "http://localhost/cb",
      }),
    ).toMatchObject({
      status: 401,
      body: { error: "invalid_client" },
    });
    expect(
      await token({ grant_type: "authorization_code", code: await codeOf(), client_secret: "s3cret" }),
    ).toMatchObject({
      status: 400,
      body: { error: "invalid_grant" },
    });
    const basic = `Basic ${Buffer.from("app:s3cret").toString("base64")}`;
    const ok = await token(
      { grant_type: "authorization_code", code: await codeOf(), redirect_uri: "http://localhost/cb" },
      { authorization: basic },
    );
    expect(ok.status).toBe(200);
  });

  it("rotate: a refresh spends the token used, unless the app asks to keep it where the vendor allows", async () => {
    const { server, token } = serve({ preserve_refresh_token: true });
    const first = server.mint({ client_id: "app" });
    const kept = await token({
      grant_type: "refresh_token",
      refresh_token: String(first["refresh_token"]),
      preserve_refresh_token: "true",
    });
    expect(kept.body["refresh_token"]).toBe(first["refresh_token"]);
    const rotated = await token({
      grant_type: "refresh_token",
      refresh_token: String(first["refresh_token"]),
    });
    expect(rotated.body["refresh_token"]).not.toBe(first["refresh_token"]);
    expect(
      (await token({ grant_type: "refresh_token", refresh_token: String(first["refresh_token"]) })).status,
    ).toBe(400);
  });

  it("rotate_all: every new token set spends earlier refresh tokens; offline scope decides whether there is one", async () => {
    const { server, token } = serve({
      refresh: "rotate_all",
      offline_scope: "offline_access",
      default_scopes: ["read", "offline_access"],
      refused_refresh_description: "the vendor's words",
    });
    const one = server.mint();
    server.mint();
    expect(await token({ grant_type: "refresh_token", refresh_token: String(one["refresh_token"]) })).toEqual(
      {
        status: 400,
        body: { error: "invalid_grant", error_description: "the vendor's words" },
      },
    );
    expect(server.mint({ scopes: ["read"] })["refresh_token"]).toBeUndefined();
  });

  it("long_lived: a refresh answers the same refresh token and extends its life; revoking ends it", async () => {
    const { server, token } = serve({ refresh: "long_lived" });
    const first = server.mint();
    t += 80_000_000; // most of its day
    const a = await token({ grant_type: "refresh_token", refresh_token: String(first["refresh_token"]) });
    expect(a.body["refresh_token"]).toBe(first["refresh_token"]);
    t += 80_000_000; // past the first day, within the extended one
    const b = await token({ grant_type: "refresh_token", refresh_token: String(first["refresh_token"]) });
    expect(b.status).toBe(200);
    expect(server.revokeAll()).toEqual({ revoked_access_tokens: 3, revoked_refresh_tokens: 1 });
    expect(
      (await token({ grant_type: "refresh_token", refresh_token: String(first["refresh_token"]) })).status,
    ).toBe(400);
    expect(server.check(`Bearer ${String(b.body["access_token"])}`)).toEqual({
      ok: false,
      reason: "revoked",
    });
  });
});
