/**
 * A typed client for the Mailchimp Marketing API 3.0 endpoints Concord uses, over the shared HTTP
 * client: an API key (HTTP Basic, any user name) or an OAuth access token (Mailchimp's never
 * expire), the data centre found from the key's `-usNN` suffix or the `dc` the OAuth metadata
 * gave, and the one limit Mailchimp has: 10 simultaneous connections, answered 429 beyond.
 */
import type { ConnectionSettings, ConnectorLimits, ConnectorResult, ConnectorRuntime } from "../connector";
import { createHttpClient, type HttpClient, type HttpRequest } from "../http/http-client";
import type { AuthProvider } from "../http/oauth2";
import { connectionBudget, connectionLimits, type CallPriority, type QuotaUsage } from "../http/rate-limiter";
import { classifyStatus, parseRetryAfter } from "../http/retry-decision";
import { err, ok } from "../../core/result";

/** The data centre an API key names (`…-us6` → `us6`), or undefined. */
export function dataCentreOf(apiKey: string | undefined): string | undefined {
  const m = /-([a-z]{2}\d{1,3})$/i.exec(apiKey?.trim() ?? "");
  return m ? m[1]!.toLowerCase() : undefined;
}

/** The API's base URL for a data centre. */
export const mailchimpBaseUrl = (dc: string): string => `https://${dc}.api.mailchimp.com/3.0`;

/** Where the API is, from the credentials: the API key's suffix, else the OAuth `dc`. */
export function baseUrlFromCredentials(
  credentials: Readonly<Record<string, string | undefined>>,
): string | undefined {
  // With a token (which wins over a key), the data centre its metadata named.
  const tokenDc = credentials["access_token"]?.trim() ? credentials["dc"]?.trim().toLowerCase() : undefined;
  const dc = tokenDc || dataCentreOf(credentials["api_key"]) || credentials["dc"]?.trim().toLowerCase();
  return dc ? mailchimpBaseUrl(dc) : undefined;
}

const MISSING =
  "No Mailchimp credentials: give api_key (an API key ending in -usNN), or access_token with dc from Mailchimp's OAuth metadata.";

/**
 * OAuth-token or API-key auth; neither can be refreshed, so a 401 means the connection is broken.
 * A token wins over a key: it is what Connect in the UI gives, the administrator's latest grant.
 */
function mailchimpAuth(settings: ConnectionSettings): AuthProvider {
  return {
    headers: async () => {
      const c = await settings.credentials.get();
      const token = c["access_token"]?.trim();
      if (token) return ok({ authorization: `Bearer ${token}` });
      const key = c["api_key"]?.trim();
      if (key) return ok({ authorization: `Basic ${Buffer.from(`concord:${key}`).toString("base64")}` });
      return err({ code: "auth_missing", message: MISSING });
    },
    refresh: () =>
      Promise.resolve(
        err({
          code: "auth_invalid",
          message:
            "Mailchimp refused the API key or token (revoked, or for another data centre); give a new one in the connection's credentials.",
        }),
      ),
  };
}

export type Answer<T> = { status: number; body: T };

export type MailchimpClient = {
  request: <T>(req: HttpRequest<T>) => Promise<ConnectorResult<{ status: number; body: T }>>;
  usage: () => QuotaUsage;
};

export function createMailchimpClient(
  settings: ConnectionSettings,
  runtime: ConnectorRuntime,
  limits: ConnectorLimits,
): MailchimpClient {
  const limiter = connectionBudget(runtime, connectionLimits(limits, settings.limits));
  let resolved: string | undefined = settings.base_url;
  const http: HttpClient = createHttpClient({
    base_url:
      resolved !== undefined
        ? resolved
        : async () => {
            resolved ??= baseUrlFromCredentials(await settings.credentials.get());
            return resolved !== undefined ? ok(resolved) : err({ code: "auth_missing", message: MISSING });
          },
    limiter,
    auth: mailchimpAuth(settings),
    runtime,
    ...(settings.limits?.request_timeout_ms !== undefined
      ? { timeout_ms: settings.limits.request_timeout_ms }
      : {}),
    classify: (response) => {
      // Mailchimp's only rate rule: 10 connections at once per key. A 429 waits for one to close.
      if (response.status === 429) {
        const after = parseRetryAfter(response.headers["retry-after"], runtime.now());
        return after !== undefined ? { kind: "throttled", retry_after_ms: after } : { kind: "throttled" };
      }
      // "At exceptionally high volumes, you may receive an HTTP 429 or 403 without a JSON body":
      // a 403 of Mailchimp's own (a missing permission) carries its problem document.
      if (response.status === 403 && !isJsonObject(response.text)) return { kind: "throttled" };
      return classifyStatus(response.status);
    },
    // Mailchimp has no daily quota; a quota answer cannot come, but the client needs the rule.
    next_quota_reset: (now) => new Date(now.getTime() + 86_400_000),
  });
  return {
    request: async <T>(req: HttpRequest<T>) => {
      const r = await http.request(req);
      return r.ok ? ok({ status: r.value.status, body: r.value.body }) : r;
    },
    usage: () => limiter.usage(),
  };
}

export type { CallPriority };

/** Whether a body is a JSON object (an API answer), not nothing or a page of some proxy's. */
function isJsonObject(text: string): boolean {
  try {
    const parsed: unknown = JSON.parse(text);
    return typeof parsed === "object" && parsed !== null;
  } catch {
    return false;
  }
}
