/**
 * The OAuth2 side of the Constant Contact emulator: authorization codes with PKCE, access tokens,
 * rotating or long-lived refresh tokens, and the lookup the V3 routes use to authenticate.
 */
import type { FastifyInstance } from "fastify";
import { createHash, randomBytes } from "node:crypto";

export type TokenResponse = {
  access_token: string;
  refresh_token?: string;
  token_type: "Bearer";
  expires_in: number;
  scope: string;
};

export type RefreshMode = "rotating" | "long_lived";

export const DEFAULT_SCOPES = ["contact_data", "offline_access"];

const DAY_MS = 86_400_000;
const REFRESH_TOKEN_LIFETIME_MS = 180 * DAY_MS;
const AUTH_CODE_LIFETIME_MS = 5 * 60_000;

type AccessToken = { scopes: string[]; expiresAt: number; revoked: boolean };
type RefreshToken = { scopes: string[]; expiresAt: number; dead: boolean };
type AuthCode = {
  redirectUri: string;
  scopes: string[];
  challenge: string | null;
  expiresAt: number;
  used: boolean;
};

export class OAuthServer {
  private readonly accessTokens = new Map<string, AccessToken>();
  private readonly refreshTokens = new Map<string, RefreshToken>();
  private readonly authCodes = new Map<string, AuthCode>();

  constructor(
    private readonly now: () => Date,
    private readonly ttlSeconds: number,
    readonly refreshMode: RefreshMode,
  ) {}

  /** Issues a token set as if the user had just completed the consent screen. */
  mint(scopes: string[] = DEFAULT_SCOPES): TokenResponse {
    const at = this.now().getTime();
    const access = randomBytes(24).toString("base64url");
    this.accessTokens.set(access, { scopes, expiresAt: at + this.ttlSeconds * 1000, revoked: false });
    const response: TokenResponse = {
      access_token: access,
      token_type: "Bearer",
      expires_in: this.ttlSeconds,
      scope: scopes.join(" "),
    };
    if (scopes.includes("offline_access")) {
      // Rotating mode: "generating a new set of tokens causes all previous refresh tokens to expire".
      if (this.refreshMode === "rotating") for (const r of this.refreshTokens.values()) r.dead = true;
      const refresh = randomBytes(24).toString("base64url");
      this.refreshTokens.set(refresh, { scopes, expiresAt: at + REFRESH_TOKEN_LIFETIME_MS, dead: false });
      response.refresh_token = refresh;
    }
    return response;
  }

  /** The scopes of the live access token in an Authorization header, or undefined. */
  authenticate(header: string | undefined): string[] | undefined {
    const token = /^Bearer\s+(.+)$/i.exec(header ?? "")?.[1]?.trim();
    const entry = token === undefined ? undefined : this.accessTokens.get(token);
    if (!entry || entry.revoked || entry.expiresAt <= this.now().getTime()) return undefined;
    return entry.scopes;
  }

  revokeAll(): { revoked_access_tokens: number; revoked_refresh_tokens: number } {
    for (const t of this.accessTokens.values()) t.revoked = true;
    for (const r of this.refreshTokens.values()) r.dead = true;
    return { revoked_access_tokens: this.accessTokens.size, revoked_refresh_tokens: this.refreshTokens.size };
  }

  reset(): void {
    this.accessTokens.clear();
    this.refreshTokens.clear();
    this.authCodes.clear();
  }

  summary(): Record<string, unknown> {
    const at = this.now().getTime();
    return {
      refresh_mode: this.refreshMode,
      access_tokens: this.accessTokens.size,
      live_access_tokens: [...this.accessTokens.values()].filter((t) => !t.revoked && t.expiresAt > at)
        .length,
      live_refresh_tokens: [...this.refreshTokens.values()].filter((t) => !t.dead && t.expiresAt > at).length,
    };
  }

  register(app: FastifyInstance): void {
    app.get("/oauth2/default/v1/authorize", async (request, reply) => {
      const q = request.query as Record<string, string | undefined>;
      if (!q.client_id || !q.redirect_uri || q.response_type !== "code") {
        return reply.code(400).send({
          error: "invalid_request",
          error_description: "client_id, redirect_uri and response_type=code are required.",
        });
      }
      if (q.code_challenge !== undefined && q.code_challenge_method !== "S256") {
        return reply
          .code(400)
          .send({ error: "invalid_request", error_description: "code_challenge_method must be S256." });
      }
      const code = randomBytes(16).toString("base64url");
      this.authCodes.set(code, {
        redirectUri: q.redirect_uri,
        scopes: (q.scope ?? DEFAULT_SCOPES.join(" ")).split(/[\s+]+/).filter((s) => s !== ""),
        challenge: q.code_challenge ?? null,
        expiresAt: this.now().getTime() + AUTH_CODE_LIFETIME_MS,
        used: false,
      });
      // No login page: the emulated user consents at once and is sent back to the app.
      const target = new URL(q.redirect_uri);
      target.searchParams.set("code", code);
      if (q.state !== undefined) target.searchParams.set("state", q.state);
      return reply.redirect(target.toString(), 302);
    });

    app.post("/oauth2/default/v1/token", async (request, reply) => {
      const body = (request.body ?? {}) as Record<string, string | undefined>;
      const invalidGrant = (description: string) =>
        reply.code(400).send({ error: "invalid_grant", error_description: description });
      if (body.grant_type === "authorization_code") {
        const entry = body.code === undefined ? undefined : this.authCodes.get(body.code);
        if (!entry || entry.used || entry.expiresAt <= this.now().getTime()) {
          return invalidGrant("The authorization code is invalid or has expired.");
        }
        entry.used = true;
        if (body.redirect_uri !== undefined && body.redirect_uri !== entry.redirectUri) {
          return invalidGrant("The redirect_uri does not match the one used in the authorization request.");
        }
        if (entry.challenge !== null) {
          const verifier = body.code_verifier ?? "";
          const digest = createHash("sha256").update(verifier).digest("base64url");
          if (digest !== entry.challenge) return invalidGrant("PKCE verification failed.");
        }
        return this.mint(entry.scopes);
      }
      if (body.grant_type === "refresh_token") {
        const token = body.refresh_token ?? "";
        const entry = this.refreshTokens.get(token);
        if (!entry || entry.dead || entry.expiresAt <= this.now().getTime()) {
          return invalidGrant("unknown, invalid, or expired refresh token");
        }
        if (this.refreshMode === "long_lived") {
          // The same refresh token comes back; using it within 180 days keeps it alive.
          entry.expiresAt = this.now().getTime() + REFRESH_TOKEN_LIFETIME_MS;
          const minted = this.mint(entry.scopes.filter((s) => s !== "offline_access"));
          return { ...minted, scope: entry.scopes.join(" "), refresh_token: token };
        }
        entry.dead = true;
        return this.mint(entry.scopes);
      }
      return reply.code(400).send({
        error: "unsupported_grant_type",
        error_description: "grant_type must be authorization_code or refresh_token.",
      });
    });
  }
}
