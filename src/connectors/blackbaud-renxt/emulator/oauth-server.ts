/**
 * The emulated Blackbaud OAuth 2.0 service (oauth2.sky.blackbaud.com): authorization-code grant
 * with PKCE for public clients, expiring access tokens, refresh tokens, and the token checks the
 * API gateway applies to every call.
 */
import { createHash, randomBytes } from "node:crypto";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";

export type OAuthClient = { client_id: string; client_secret?: string; redirect_uris?: string[] };

export type OAuthConfig = {
  now: () => Date;
  accessTokenTtlSeconds: number;
  refreshTokenTtlDays: number;
  environmentId: string;
  environmentName: string;
  legalEntityId: string;
  legalEntityName: string;
  /** When empty, any client_id is accepted (and any non-empty secret for confidential clients). */
  clients: OAuthClient[];
  user: { id: string; email: string; given_name: string; family_name: string };
};

type AuthCode = {
  client_id: string;
  redirect_uri: string;
  code_challenge?: string;
  code_challenge_method?: string;
  expires_at: number;
};

type TokenRecord = { client_id: string; user_id: string; expires_at: number; revoked: boolean };

export type TokenCheck =
  { ok: true; user_id: string } | { ok: false; reason: "missing" | "invalid" | "expired" | "revoked" };

const CODE_TTL_MS = 5 * 60_000;

const token = (prefix: string): string => `${prefix}${randomBytes(24).toString("base64url")}`;

export class OAuthServer {
  private codes = new Map<string, AuthCode>();
  private access = new Map<string, TokenRecord>();
  private refresh = new Map<string, TokenRecord>();

  constructor(private readonly config: OAuthConfig) {}

  reset(): void {
    this.codes.clear();
    this.access.clear();
    this.refresh.clear();
  }

  revokeAll(): { revoked_access_tokens: number; revoked_refresh_tokens: number } {
    let a = 0;
    let r = 0;
    for (const t of this.access.values()) {
      if (!t.revoked) {
        t.revoked = true;
        a += 1;
      }
    }
    for (const t of this.refresh.values()) {
      if (!t.revoked) {
        t.revoked = true;
        r += 1;
      }
    }
    return { revoked_access_tokens: a, revoked_refresh_tokens: r };
  }

  /** Issues tokens as if the user had just approved the app on the consent page. */
  mint(body: { client_id?: string; expires_in?: number; user_id?: string } = {}): Record<string, unknown> {
    return this.issue(
      body.client_id ?? "emulator-client",
      body.user_id ?? this.config.user.id,
      undefined,
      body.expires_in,
    );
  }

  check(authorization: string | undefined): TokenCheck {
    if (!authorization) return { ok: false, reason: "missing" };
    const match = /^Bearer\s+(\S+)$/i.exec(authorization.trim());
    if (!match) return { ok: false, reason: "invalid" };
    const record = this.access.get(match[1]!);
    if (!record) return { ok: false, reason: "invalid" };
    if (record.revoked) return { ok: false, reason: "revoked" };
    if (record.expires_at <= this.config.now().getTime()) return { ok: false, reason: "expired" };
    return { ok: true, user_id: record.user_id };
  }

  tokenCounts(): { access_tokens: number; refresh_tokens: number } {
    return { access_tokens: this.access.size, refresh_tokens: this.refresh.size };
  }

  private issue(
    clientId: string,
    userId: string,
    keepRefresh?: string,
    accessTtlSeconds?: number,
  ): Record<string, unknown> {
    const at = this.config.now().getTime();
    const ttl = accessTtlSeconds ?? this.config.accessTokenTtlSeconds;
    const accessToken = token("bbat_");
    this.access.set(accessToken, {
      client_id: clientId,
      user_id: userId,
      expires_at: at + ttl * 1000,
      revoked: false,
    });
    let refreshToken = keepRefresh;
    let refreshExpires: number;
    if (refreshToken) {
      refreshExpires = this.refresh.get(refreshToken)!.expires_at;
    } else {
      refreshToken = token("bbrt_");
      refreshExpires = at + this.config.refreshTokenTtlDays * 86_400_000;
      this.refresh.set(refreshToken, {
        client_id: clientId,
        user_id: userId,
        expires_at: refreshExpires,
        revoked: false,
      });
    }
    return {
      access_token: accessToken,
      token_type: "bearer",
      expires_in: ttl,
      refresh_token: refreshToken,
      refresh_token_expires_in: Math.max(0, Math.floor((refreshExpires - at) / 1000)),
      environment_id: this.config.environmentId,
      environment_name: this.config.environmentName,
      legal_entity_id: this.config.legalEntityId,
      legal_entity_name: this.config.legalEntityName,
      user_id: userId,
      email: this.config.user.email,
      given_name: this.config.user.given_name,
      family_name: this.config.user.family_name,
      mode: "Full",
    };
  }

  private findClient(clientId: string): OAuthClient | undefined {
    if (this.config.clients.length === 0) return { client_id: clientId };
    return this.config.clients.find((c) => c.client_id === clientId);
  }

  /** Serves the authorization page and the token endpoint on the emulator's own origin. */
  register(app: FastifyInstance): void {
    const authorize = async (request: FastifyRequest, reply: FastifyReply): Promise<unknown> => {
      const q = request.query as Record<string, string | undefined>;
      const client = q.client_id ? this.findClient(q.client_id) : undefined;
      if (!client || !q.redirect_uri) {
        return reply
          .code(400)
          .send({ error: "invalid_request", error_description: "client_id and redirect_uri are required." });
      }
      if (client.redirect_uris && !client.redirect_uris.includes(q.redirect_uri)) {
        return reply
          .code(400)
          .send({ error: "invalid_request", error_description: "redirect_uri is not registered." });
      }
      const target = new URL(q.redirect_uri);
      if (q.response_type !== "code") {
        target.searchParams.set("error", "unsupported_response_type");
        if (q.state) target.searchParams.set("state", q.state);
        return reply.redirect(target.toString(), 302);
      }
      if (q.code_challenge && (q.code_challenge_method ?? "plain") !== "S256") {
        target.searchParams.set("error", "invalid_request");
        target.searchParams.set("error_description", "code_challenge_method must be S256");
        return reply.redirect(target.toString(), 302);
      }
      const code = token("bbac_");
      this.codes.set(code, {
        client_id: client.client_id,
        redirect_uri: q.redirect_uri,
        ...(q.code_challenge ? { code_challenge: q.code_challenge, code_challenge_method: "S256" } : {}),
        expires_at: this.config.now().getTime() + CODE_TTL_MS,
      });
      // The emulator has no consent screen: the user is taken to have approved at once.
      target.searchParams.set("code", code);
      if (q.state) target.searchParams.set("state", q.state);
      return reply.redirect(target.toString(), 302);
    };
    app.get("/oauth2/authorization", authorize);
    app.get("/oauth/authorize", authorize);

    app.post("/oauth2/token", async (request, reply) => {
      const body = (request.body ?? {}) as Record<string, string | undefined>;
      let clientId = body.client_id;
      let clientSecret = body.client_secret;
      const basic = /^Basic\s+(\S+)$/i.exec(request.headers.authorization ?? "");
      if (basic) {
        const [id, secret] = Buffer.from(basic[1]!, "base64").toString("utf8").split(":");
        clientId = id !== undefined ? decodeURIComponent(id) : clientId;
        clientSecret = secret !== undefined ? decodeURIComponent(secret) : clientSecret;
      }
      const fail = (status: number, error: string, description: string) =>
        reply.code(status).send({ error, error_description: description });
      const at = this.config.now().getTime();
      if (body.grant_type === "authorization_code") {
        const code = body.code ? this.codes.get(body.code) : undefined;
        if (!code || code.expires_at <= at)
          return fail(400, "invalid_grant", "The authorization code is invalid or expired.");
        // A code is good for one exchange only.
        this.codes.delete(body.code!);
        if (clientId !== undefined && clientId !== code.client_id)
          return fail(400, "invalid_grant", "client_id mismatch.");
        if (body.redirect_uri !== code.redirect_uri)
          return fail(400, "invalid_grant", "redirect_uri mismatch.");
        if (code.code_challenge) {
          const verifier = body.code_verifier ?? "";
          const digest = createHash("sha256").update(verifier).digest("base64url");
          if (digest !== code.code_challenge)
            return fail(400, "invalid_grant", "code_verifier does not match.");
        } else if (!this.secretOk(code.client_id, clientSecret)) {
          return fail(401, "invalid_client", "Client authentication failed.");
        }
        return this.issue(code.client_id, this.config.user.id);
      }
      if (body.grant_type === "refresh_token") {
        const record = body.refresh_token ? this.refresh.get(body.refresh_token) : undefined;
        if (!record || record.revoked || record.expires_at <= at) {
          return fail(400, "invalid_grant", "The refresh token is invalid, revoked or expired.");
        }
        if (clientId !== undefined && clientId !== record.client_id)
          return fail(400, "invalid_grant", "client_id mismatch.");
        if (clientSecret !== undefined && !this.secretOk(record.client_id, clientSecret)) {
          return fail(401, "invalid_client", "Client authentication failed.");
        }
        if (body.preserve_refresh_token === "true") {
          return this.issue(record.client_id, record.user_id, body.refresh_token);
        }
        // Without preserve_refresh_token the old refresh token is spent and a new one issued.
        record.revoked = true;
        return this.issue(record.client_id, record.user_id);
      }
      return fail(400, "unsupported_grant_type", "grant_type must be authorization_code or refresh_token.");
    });
  }

  private secretOk(clientId: string, secret: string | undefined): boolean {
    if (!secret) return false;
    const client = this.findClient(clientId);
    if (!client) return false;
    return client.client_secret === undefined || client.client_secret === secret;
  }
}
