/**
 * An emulated OAuth 2.0 authorization server (RFC 6749, PKCE from RFC 7636), shared by every
 * emulator whose vendor uses OAuth: the authorization-code grant (a browser gets the vendor's
 * "Allow access?" page and chooses Allow or Deny; a program asking for JSON is approved at once,
 * as the emulated user), single-use codes, expiring access tokens, refresh tokens that rotate, rotate
 * all at once or live long, depending on the vendor, and the bearer-token check the API applies to
 * every call. Each emulator configures its vendor's paths, lifetimes, token shapes and rules.
 */
import { createHash, randomBytes } from "node:crypto";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";

export type OAuthClient = { client_id: string; client_secret?: string; redirect_uris?: string[] };

/**
 * How refresh tokens live. `rotate`: a refresh spends the token used and answers a new one;
 * `rotate_all`: every new token set spends every earlier refresh token; `long_lived`: a refresh
 * answers the same refresh token and extends its life.
 */
export type RefreshRule = "rotate" | "rotate_all" | "long_lived";

/** What a token stands for: the app, the user who approved it, and what they approved. */
export type Grant = { client_id: string; user_id: string; scopes: readonly string[] };

export type OAuth2ServerOptions = {
  now: () => Date;
  /** The authorization page's paths and the token endpoint's. */
  paths: { authorize: readonly string[]; token: string };
  access_ttl_seconds: number;
  refresh_ttl_ms: number;
  refresh: RefreshRule;
  /** Whether a refresh with `preserve_refresh_token=true` keeps the refresh token it used. */
  preserve_refresh_token?: boolean;
  /** The scopes granted when the authorization request names none. */
  default_scopes: readonly string[];
  /** When set, a refresh token is issued only when this scope was granted (`offline_access`). */
  offline_scope?: string;
  /** The registered apps; when empty, any client id is accepted. */
  clients: readonly OAuthClient[];
  /**
   * Whether the code exchange is strict: the redirect URI must be repeated, and an app exchanging a
   * code without PKCE must authenticate with its secret (body or Basic header); a refresh that
   * names a client must name the one the token was issued to.
   */
  strict_exchange: boolean;
  /** The user an approval stands for. */
  user_id: string;
  /** The vendor's name on its authorization page. */
  vendor_name?: string;
  /** A prefix for tokens and codes (a vendor's token shapes), and the answer's `token_type`. */
  token_prefix?: string;
  token_type: string;
  /** The vendor's own words when a refresh token is refused (`error_description`). */
  refused_refresh_description?: string;
  /** Fields the vendor adds to every token answer. */
  answer?: (grant: Grant, refresh_expires_in: number | undefined) => Record<string, unknown>;
};

export type TokenCheck =
  ({ ok: true } & Grant) | { ok: false; reason: "missing" | "invalid" | "expired" | "revoked" };

type AuthCode = Grant & {
  redirect_uri: string;
  challenge: string | null;
  expires_at: number;
  used: boolean;
};
type TokenRecord = Grant & { expires_at: number; revoked: boolean };

const CODE_TTL_MS = 5 * 60_000;

export class OAuth2Server {
  private readonly codes = new Map<string, AuthCode>();
  private readonly access = new Map<string, TokenRecord>();
  private readonly refresh = new Map<string, TokenRecord>();

  constructor(private readonly options: OAuth2ServerOptions) {}

  private token(kind: "at" | "rt" | "ac"): string {
    const prefix = this.options.token_prefix === undefined ? "" : `${this.options.token_prefix}${kind}_`;
    return `${prefix}${randomBytes(24).toString("base64url")}`;
  }

  private nowMs(): number {
    return this.options.now().getTime();
  }

  /** Issues a token set as if the user had just approved the app (the emulators' control API). */
  mint(
    grant: { client_id?: string; user_id?: string; scopes?: readonly string[]; expires_in?: number } = {},
  ): Record<string, unknown> {
    return this.issue(
      {
        client_id: grant.client_id ?? "emulator-client",
        user_id: grant.user_id ?? this.options.user_id,
        scopes: grant.scopes ?? this.options.default_scopes,
      },
      { access_ttl_seconds: grant.expires_in },
    );
  }

  /** The grant of the live access token in an Authorization header, or why there is none. */
  check(authorization: string | undefined): TokenCheck {
    if (!authorization) return { ok: false, reason: "missing" };
    const match = /^Bearer\s+(\S+)$/i.exec(authorization.trim());
    const record = match ? this.access.get(match[1]!) : undefined;
    if (!record) return { ok: false, reason: "invalid" };
    if (record.revoked) return { ok: false, reason: "revoked" };
    if (record.expires_at <= this.nowMs()) return { ok: false, reason: "expired" };
    return { ok: true, client_id: record.client_id, user_id: record.user_id, scopes: record.scopes };
  }

  /** Revokes every token, as an administrator disconnecting the app does; counts those still live. */
  revokeAll(): { revoked_access_tokens: number; revoked_refresh_tokens: number } {
    const revoke = (tokens: Map<string, TokenRecord>): number => {
      let n = 0;
      for (const t of tokens.values())
        if (!t.revoked) {
          t.revoked = true;
          n += 1;
        }
      return n;
    };
    return { revoked_access_tokens: revoke(this.access), revoked_refresh_tokens: revoke(this.refresh) };
  }

  reset(): void {
    this.codes.clear();
    this.access.clear();
    this.refresh.clear();
  }

  /** Counts for the emulator's state view. */
  summary(): Record<string, unknown> {
    const at = this.nowMs();
    const live = (tokens: Map<string, TokenRecord>): number =>
      [...tokens.values()].filter((t) => !t.revoked && t.expires_at > at).length;
    return {
      refresh: this.options.refresh,
      access_tokens: this.access.size,
      refresh_tokens: this.refresh.size,
      live_access_tokens: live(this.access),
      live_refresh_tokens: live(this.refresh),
    };
  }

  private issue(
    grant: Grant,
    how: { keep_refresh?: string; access_ttl_seconds?: number | undefined; no_refresh?: boolean } = {},
  ): Record<string, unknown> {
    const at = this.nowMs();
    const ttl = how.access_ttl_seconds ?? this.options.access_ttl_seconds;
    const accessToken = this.token("at");
    this.access.set(accessToken, { ...grant, expires_at: at + ttl * 1000, revoked: false });
    const answer: Record<string, unknown> = {
      access_token: accessToken,
      token_type: this.options.token_type,
      expires_in: ttl,
    };
    const offline =
      this.options.offline_scope === undefined || grant.scopes.includes(this.options.offline_scope);
    let refreshExpiresIn: number | undefined;
    if (how.keep_refresh !== undefined) {
      answer["refresh_token"] = how.keep_refresh;
      refreshExpiresIn = Math.max(
        0,
        Math.floor(((this.refresh.get(how.keep_refresh)?.expires_at ?? at) - at) / 1000),
      );
    } else if (offline && how.no_refresh !== true) {
      if (this.options.refresh === "rotate_all") for (const r of this.refresh.values()) r.revoked = true;
      const refreshToken = this.token("rt");
      this.refresh.set(refreshToken, {
        ...grant,
        expires_at: at + this.options.refresh_ttl_ms,
        revoked: false,
      });
      answer["refresh_token"] = refreshToken;
      refreshExpiresIn = Math.floor(this.options.refresh_ttl_ms / 1000);
    }
    return { ...answer, ...(this.options.answer?.(grant, refreshExpiresIn) ?? {}) };
  }

  private findClient(clientId: string): OAuthClient | undefined {
    if (this.options.clients.length === 0) return { client_id: clientId };
    return this.options.clients.find((c) => c.client_id === clientId);
  }

  private secretOk(clientId: string, secret: string | undefined): boolean {
    if (!secret) return false;
    const client = this.findClient(clientId);
    return client !== undefined && (client.client_secret === undefined || client.client_secret === secret);
  }

  /** Serves the authorization page and the token endpoint on the emulator's own origin. */
  register(app: FastifyInstance): void {
    const authorize = async (request: FastifyRequest, reply: FastifyReply): Promise<unknown> => {
      // The page's form answers with the request's own parameters and the user's choice.
      const posted = request.method === "POST" ? formFields(request.body) : undefined;
      const q = (posted ?? request.query) as Record<string, string | undefined>;
      const client = q.client_id ? this.findClient(q.client_id) : undefined;
      // Without a known app and its redirect URI there is nowhere safe to send an error (RFC 6749 §4.1.2.1).
      if (!client || !q.redirect_uri)
        return reply
          .code(400)
          .send({ error: "invalid_request", error_description: "client_id and redirect_uri are required." });
      if (client.redirect_uris && !client.redirect_uris.includes(q.redirect_uri))
        return reply
          .code(400)
          .send({ error: "invalid_request", error_description: "redirect_uri is not registered." });
      let target: URL;
      try {
        target = new URL(q.redirect_uri);
      } catch {
        return reply
          .code(400)
          .send({ error: "invalid_request", error_description: "redirect_uri is not an absolute URL." });
      }
      const back = (params: Record<string, string>) => {
        for (const [k, v] of Object.entries(params)) target.searchParams.set(k, v);
        if (q.state !== undefined) target.searchParams.set("state", q.state);
        return reply.redirect(target.toString(), 302);
      };
      if (q.response_type !== "code")
        return back({ error: "unsupported_response_type", error_description: "response_type must be code." });
      if (q.code_challenge !== undefined && (q.code_challenge_method ?? "plain") !== "S256")
        return back({ error: "invalid_request", error_description: "code_challenge_method must be S256." });
      const browser = posted === undefined && (request.headers.accept ?? "").includes("text/html");
      if (browser)
        return reply
          .type("text/html; charset=utf-8")
          .send(consentPage(this.options.vendor_name ?? "The service", client.client_id, q));
      if (posted !== undefined && posted["decision"] !== "allow")
        return back({ error: "access_denied", error_description: "The user denied access." });
      const code = this.token("ac");
      this.codes.set(code, {
        client_id: client.client_id,
        user_id: this.options.user_id,
        scopes: q.scope ? q.scope.split(/[\s+]+/).filter((s) => s !== "") : this.options.default_scopes,
        redirect_uri: q.redirect_uri,
        challenge: q.code_challenge ?? null,
        expires_at: this.nowMs() + CODE_TTL_MS,
        used: false,
      });
      return back({ code });
    };
    for (const path of this.options.paths.authorize) {
      app.get(path, authorize);
      app.post(path, authorize);
    }

    app.post(this.options.paths.token, async (request, reply) => {
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
      const strict = this.options.strict_exchange;
      const at = this.nowMs();

      if (body.grant_type === "authorization_code") {
        const code = body.code ? this.codes.get(body.code) : undefined;
        if (!code || code.used || code.expires_at <= at)
          return fail(400, "invalid_grant", "The authorization code is invalid, used or expired.");
        // A code is good for one exchange only, even a failed one.
        code.used = true;
        if (clientId !== undefined && clientId !== code.client_id)
          return fail(400, "invalid_grant", "client_id mismatch.");
        if ((strict || body.redirect_uri !== undefined) && body.redirect_uri !== code.redirect_uri)
          return fail(400, "invalid_grant", "The redirect_uri does not match the authorization request's.");
        if (code.challenge !== null) {
          const digest = createHash("sha256")
            .update(body.code_verifier ?? "")
            .digest("base64url");
          if (digest !== code.challenge) return fail(400, "invalid_grant", "PKCE verification failed.");
        } else if (strict && !this.secretOk(code.client_id, clientSecret)) {
          return fail(401, "invalid_client", "Client authentication failed.");
        }
        return this.issue(code);
      }

      if (body.grant_type === "refresh_token") {
        const token = body.refresh_token ?? "";
        const record = this.refresh.get(token);
        if (!record || record.revoked || record.expires_at <= at)
          return fail(
            400,
            "invalid_grant",
            this.options.refused_refresh_description ??
              "The refresh token is unknown, invalid, revoked or expired.",
          );
        if (strict && clientId !== undefined && clientId !== record.client_id)
          return fail(400, "invalid_grant", "client_id mismatch.");
        if (strict && clientSecret !== undefined && !this.secretOk(record.client_id, clientSecret))
          return fail(401, "invalid_client", "Client authentication failed.");
        if (this.options.refresh === "long_lived") {
          // The same refresh token comes back; using it keeps it alive for another lifetime.
          record.expires_at = at + this.options.refresh_ttl_ms;
          return this.issue(record, { keep_refresh: token });
        }
        if (this.options.preserve_refresh_token === true && body.preserve_refresh_token === "true")
          return this.issue(record, { keep_refresh: token });
        record.revoked = true;
        return this.issue(record);
      }
      return fail(400, "unsupported_grant_type", "grant_type must be authorization_code or refresh_token.");
    });
  }
}

/** A form body as fields (the emulators parse forms to a string or an object). */
function formFields(body: unknown): Record<string, string> {
  if (typeof body === "string") return Object.fromEntries(new URLSearchParams(body));
  if (body !== null && typeof body === "object")
    return Object.fromEntries(
      Object.entries(body as Record<string, unknown>).filter(
        (e): e is [string, string] => typeof e[1] === "string",
      ),
    );
  return {};
}

const escape = (s: string): string =>
  s.replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] ?? c,
  );

/** The vendor's "Allow access?" page: the request's parameters carried through its form. */
function consentPage(vendor: string, clientId: string, q: Record<string, string | undefined>): string {
  const hidden = Object.entries(q)
    .filter((e): e is [string, string] => typeof e[1] === "string" && e[0] !== "decision")
    .map(([k, v]) => `<input type="hidden" name="${escape(k)}" value="${escape(v)}">`)
    .join("");
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escape(vendor)}: allow access</title></head>
<body><main><h1>${escape(vendor)}</h1><p>The application <strong>${escape(clientId)}</strong> asks to access your account${q.scope ? ` (${escape(q.scope)})` : ""}.</p>
<form method="post">${hidden}<button type="submit" name="decision" value="allow">Allow</button> <button type="submit" name="decision" value="deny">Deny</button></form></main></body></html>`;
}
