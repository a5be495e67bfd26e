/**
 * OAuth2 bearer auth shared by connectors: keeps the access token in memory, refreshes it with the
 * refresh token when it expires or is rejected, and saves a rotated refresh token at once (a
 * rotating refresh token is dead after one use, so losing the new one would break the connection).
 */
import { z } from "zod";
import type { ConnectorError, ConnectorRuntime, CredentialAccess } from "../connector";
import { err, ok, type Result } from "../../core/result";
import { networkTransport } from "./transport";
import { errorMessage } from "../../core/error-code";

export type AuthProvider = {
  headers: () => Promise<Result<Record<string, string>, ConnectorError>>;
  /** Forces a refresh (after a 401); fails with auth_invalid when the refresh is refused. */
  refresh: () => Promise<Result<void, ConnectorError>>;
};

/** The largest token answer read; real ones are a few hundred bytes to a few KB (a JWT). */
const TOKEN_ANSWER_MAX_BYTES = 64 * 1024;
/** The longest access-token lifetime believed: a year. */
const MAX_TOKEN_LIFETIME_S = 365 * 86_400;

const TokenResponseSchema = z.looseObject({
  access_token: z.string().min(1),
  refresh_token: z.string().min(1).optional(),
  expires_in: z.coerce.number().positive().optional(),
  token_type: z.string().optional(),
});

export type OAuth2Options = {
  token_url: string;
  credentials: CredentialAccess;
  runtime: ConnectorRuntime;
  /** Send client credentials as HTTP Basic (most servers) rather than in the form body. */
  client_auth?: "basic" | "body";
  /** Refresh this long before the stated expiry. */
  skew_ms?: number;
};

type FreshTokens = { access_token: string; expires_at: number };

/**
 * Refreshes in flight, by credential set. Every session of a connection builds its own auth but
 * shares the connection's credentials: two sessions refreshing at once would spend a rotating
 * refresh token twice, and the vendor refuses the second (the connection would look broken).
 */
const refreshesInFlight = new WeakMap<CredentialAccess, Promise<Result<FreshTokens, ConnectorError>>>();

/**
 * Credentials used: `client_id`, optional `client_secret`, `refresh_token`, and optionally a cached
 * `access_token` with `access_token_expires_at` (ISO-8601).
 */
export function createOAuth2Auth(options: OAuth2Options): AuthProvider {
  let accessToken: string | undefined;
  let expiresAt = 0;
  const skew = options.skew_ms ?? 60_000;

  const exclusive = options.credentials.exclusive ?? (<T>(fn: () => Promise<T>): Promise<T> => fn());
  // Under the connection's credential lock: another process may have renewed the token meanwhile.
  const doRefresh = (): Promise<Result<FreshTokens, ConnectorError>> => exclusive(() => renew(accessToken));
  const renew = async (spent: string | undefined): Promise<Result<FreshTokens, ConnectorError>> => {
    const creds = await options.credentials.get();
    const kept = creds["access_token"];
    const keptUntil = creds["access_token_expires_at"] ? Date.parse(creds["access_token_expires_at"]) : NaN;
    // Another process renewed it while this one waited for the lock: use its token, spend nothing.
    if (kept && kept !== spent && keptUntil - skew > options.runtime.now().getTime())
      return ok({ access_token: kept, expires_at: keptUntil });
    const refreshToken = creds["refresh_token"];
    const clientId = creds["client_id"];
    if (!refreshToken || !clientId) {
      return err({
        code: "auth_missing",
        message: "No refresh token or client id is stored for this connection.",
      });
    }
    const form = new URLSearchParams({ grant_type: "refresh_token", refresh_token: refreshToken });
    const headers: Record<string, string> = {
      "content-type": "application/x-www-form-urlencoded",
      accept: "application/json",
    };
    const secret = creds["client_secret"];
    if ((options.client_auth ?? "basic") === "basic" && secret) {
      headers["authorization"] = `Basic ${Buffer.from(`${clientId}:${secret}`).toString("base64")}`;
    } else {
      form.set("client_id", clientId);
      if (secret) form.set("client_secret", secret);
    }
    let status: number;
    let text: string;
    const started = Date.now();
    try {
      const transport = options.runtime.transport ?? networkTransport;
      const response = await transport(options.token_url, {
        method: "POST",
        headers,
        body: form.toString(),
        // A token answer is a few hundred bytes: a slow or huge one is not waited for.
        timeout_ms: 30_000,
        max_bytes: TOKEN_ANSWER_MAX_BYTES,
      });
      status = response.status;
      text = response.text;
      // A vendor call like any other (metrics; the crash test stops the process here, between the
      // vendor's answer and the save of a rotated token).
      options.runtime.onApiCall?.({
        method: "POST",
        path: new URL(options.token_url).pathname,
        status,
        duration_ms: Date.now() - started,
      });
    } catch (error) {
      return err({
        code: "network_error",
        message: `Token endpoint unreachable: ${errorMessage(error)}`,
      });
    }
    if (status >= 500)
      return err({
        code: "vendor_unavailable",
        message: `Token endpoint answered ${status}.`,
        http_status: status,
      });
    if (status !== 200) {
      return err({
        code: "auth_invalid",
        message: `The refresh token was refused (HTTP ${status}); the connection must be authorised again.`,
        http_status: status,
        ...vendorCode(text),
      });
    }
    const parsed = TokenResponseSchema.safeParse(safeJson(text));
    if (!parsed.success)
      return err({ code: "bad_response", message: "The token endpoint answered without an access_token." });
    // A lifetime beyond a year (or none) is not believed: the token is renewed within the year.
    const lifetime = Math.min(parsed.data.expires_in ?? 3600, MAX_TOKEN_LIFETIME_S);
    const fresh: FreshTokens = {
      access_token: parsed.data.access_token,
      expires_at: options.runtime.now().getTime() + lifetime * 1000,
    };
    const changes: Record<string, string> = {
      access_token: fresh.access_token,
      access_token_expires_at: new Date(fresh.expires_at).toISOString(),
    };
    if (parsed.data.refresh_token) changes["refresh_token"] = parsed.data.refresh_token;
    await options.credentials.save(changes);
    return ok(fresh);
  };

  const refresh = async (): Promise<Result<void, ConnectorError>> => {
    // One refresh at a time per connection (not per session): a rotating refresh token must not be
    // spent twice.
    let shared = refreshesInFlight.get(options.credentials);
    if (!shared) {
      const started = doRefresh().finally(() => {
        if (refreshesInFlight.get(options.credentials) === started)
          refreshesInFlight.delete(options.credentials);
      });
      refreshesInFlight.set(options.credentials, started);
      shared = started;
    }
    const tokens = await shared;
    if (!tokens.ok) return tokens;
    accessToken = tokens.value.access_token;
    expiresAt = tokens.value.expires_at;
    return ok(undefined);
  };

  return {
    refresh,
    headers: async () => {
      if (!accessToken) {
        const creds = await options.credentials.get();
        const cached = creds["access_token"];
        const cachedExpiry = creds["access_token_expires_at"]
          ? Date.parse(creds["access_token_expires_at"])
          : 0;
        if (cached) {
          accessToken = cached;
          expiresAt =
            Number.isNaN(cachedExpiry) || cachedExpiry === 0 ? Number.MAX_SAFE_INTEGER : cachedExpiry;
        }
      }
      if (!accessToken || options.runtime.now().getTime() >= expiresAt - skew) {
        const refreshed = await refresh();
        if (!refreshed.ok) return refreshed;
      }
      return ok({ authorization: `Bearer ${accessToken ?? ""}` });
    },
  };
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function vendorCode(text: string): { vendor_code?: string } {
  const body = safeJson(text);
  if (body && typeof body === "object" && "error" in body && typeof body.error === "string")
    return { vendor_code: body.error };
  return {};
}
