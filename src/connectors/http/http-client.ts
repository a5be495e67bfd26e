/**
 * The fetch wrapper every connector uses: each call waits for the connection's rate limiter, is
 * authenticated, and on failure follows the shared retry decision; the answer is parsed as JSON
 * and, when a schema is given, validated. Failures come back as values with stable codes.
 */
import type { z } from "zod";
import type { CallBudget, ConnectorError, ConnectorResult, ConnectorRuntime } from "../connector";
import { err, ok } from "../../core/result";
import type { AuthProvider } from "./oauth2";
import { networkTransport } from "./transport";
import type { CallPriority } from "./rate-limiter";
import { decideRetry, DEFAULT_RETRY_RULES, type FailureClass, type RetryRules } from "./retry-decision";
import { errorMessage } from "../../core/error-code";

export type HttpResponse = { status: number; headers: Record<string, string>; body: unknown; text: string };

export type HttpRequest<T> = {
  method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  /** A path below the base URL, or an absolute URL (e.g. a vendor's next link). */
  path: string;
  query?: Record<string, string | number | boolean | readonly string[] | undefined>;
  json?: unknown;
  priority: CallPriority;
  /** Validates a successful body; a mismatch is `bad_response`. */
  schema?: z.ZodType<T>;
  /** Statuses that are answers, not failures (e.g. 404 on a lookup, 409 on create). */
  accept?: readonly number[];
  /**
   * Whether sending the request twice does what sending it once does. Default: every method but
   * POST. A request that is not is sent again only after an answer saying it was not taken (429,
   * 503, 408, an expired token); after a lost answer (a timeout, a dropped connection) or a failure
   * the vendor may have taken it in (500, 502, 504), it is not, and the failure says so: the next
   * run looks before it writes (a second consent record or constituent cannot be taken back).
   */
  idempotent?: boolean;
};

/** Whether a transient failure leaves the request's effect unknown: it may have been taken in. */
const mayHaveTaken = (response: HttpResponse | undefined): boolean =>
  response === undefined || (response.status >= 500 && response.status !== 503);

export type HttpClientOptions = {
  /**
   * The API's base URL, or how to find it (a data centre named by the credentials, an instance URL
   * from the token answer): asked once, before the first call, and kept.
   */
  base_url: string | (() => Promise<ConnectorResult<string>>);
  limiter: CallBudget;
  auth: AuthProvider;
  runtime: ConnectorRuntime;
  /** Reads a vendor's failure answer into a retry class. */
  classify: (response: HttpResponse) => FailureClass;
  /** Headers every call carries (e.g. a subscription key). */
  headers?: () => Promise<Record<string, string>>;
  rules?: RetryRules;
  timeout_ms?: number;
  /** The next quota reset by the vendor's rule, for quota answers that carry no time. */
  next_quota_reset: (now: Date) => Date;
};

export type HttpClient = {
  request: <T = unknown>(
    req: HttpRequest<T>,
  ) => Promise<ConnectorResult<{ status: number; headers: Record<string, string>; body: T }>>;
};

export function buildUrl(base: string, path: string, query?: HttpRequest<unknown>["query"]): string {
  const url = /^https?:\/\//.test(path) ? new URL(path) : new URL(joinPath(base, path));
  for (const [key, value] of Object.entries(query ?? {})) {
    if (value === undefined) continue;
    url.searchParams.set(key, Array.isArray(value) ? value.join(",") : String(value));
  }
  return url.toString();
}

/** Joins a base URL that may carry a path prefix (…/v3) with a path that may repeat it (/v3/contacts?cursor=…). */
function joinPath(base: string, path: string): string {
  const b = new URL(base);
  const prefix = b.pathname.replace(/\/$/, "");
  const p = path.startsWith("/") ? path : `/${path}`;
  return `${b.origin}${prefix && p.startsWith(`${prefix}/`) ? p : `${prefix}${p}`}`;
}

export function createHttpClient(options: HttpClientOptions): HttpClient {
  const rules = options.rules ?? DEFAULT_RETRY_RULES;
  const { runtime } = options;
  const transport = runtime.transport ?? networkTransport;
  let baseUrl = typeof options.base_url === "string" ? options.base_url : undefined;
  const base = async (): Promise<ConnectorResult<string>> => {
    if (baseUrl !== undefined) return ok(baseUrl);
    if (typeof options.base_url === "string") return ok(options.base_url);
    const found = await options.base_url();
    if (found.ok) baseUrl = found.value;
    return found;
  };

  const send = async (url: string, req: HttpRequest<unknown>): Promise<ConnectorResult<HttpResponse>> => {
    const auth = await options.auth.headers();
    if (!auth.ok) {
      // A token that cannot be renewed (revoked, expired grant) breaks the connection like a 401 does.
      if (auth.error.code === "auth_invalid" || auth.error.code === "auth_missing")
        runtime.onAuthFailure?.(auth.error);
      return auth;
    }
    const headers: Record<string, string> = {
      accept: "application/json",
      ...(options.headers ? await options.headers() : {}),
      ...auth.value,
    };
    let body: string | null = null;
    if (req.json !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(req.json);
    }
    const started = performance.now();
    try {
      const response = await transport(url, {
        method: req.method,
        headers,
        body,
        timeout_ms: options.timeout_ms ?? 60_000,
      });
      runtime.onApiCall?.({
        method: req.method,
        path: new URL(url).pathname,
        status: response.status,
        duration_ms: Math.round(performance.now() - started),
      });
      return ok({ ...response, body: parseBody(response.text) });
    } catch (error) {
      return err({
        code: "network_error",
        message: `${req.method} ${new URL(url).pathname}: ${errorMessage(error)}`,
      });
    }
  };

  return {
    request: async <T>(req: HttpRequest<T>) => {
      const root = await base();
      if (!root.ok) return root;
      // A vendor's absolute link (a next page) is followed only on the vendor's own address: the
      // credentials never go to another host, whatever a response says.
      if (/^https?:\/\//.test(req.path) && new URL(req.path).origin !== new URL(root.value).origin)
        return err({
          code: "bad_response",
          message: `${req.method}: a link to ${new URL(req.path).origin} is outside ${new URL(root.value).origin}, the API's address; it is not followed.`,
        });
      const url = buildUrl(root.value, req.path, req.query);
      let refreshed = false;
      for (let attempt = 1; ; attempt++) {
        const slot = await options.limiter.acquire(req.priority);
        if (!slot.ok) return slot;
        let sent: ConnectorResult<HttpResponse>;
        try {
          sent = await send(url, req);
        } finally {
          // The answer is read (or the call failed): the slot is free for the next call.
          slot.value();
        }
        let failure: FailureClass;
        let last: ConnectorError;
        let answered: HttpResponse | undefined;
        if (sent.ok) {
          answered = sent.value;
          const res = sent.value;
          if ((res.status >= 200 && res.status < 300) || req.accept?.includes(res.status)) {
            if (!req.schema || res.status >= 300)
              return ok({ status: res.status, headers: res.headers, body: res.body as T });
            const parsed = req.schema.safeParse(res.body);
            if (parsed.success) return ok({ status: res.status, headers: res.headers, body: parsed.data });
            return err({
              code: "bad_response",
              message: `${req.method} ${new URL(url).pathname} answered a body we do not understand: ${parsed.error.issues
                .slice(0, 3)
                .map((i) => `${i.path.join(".")}: ${i.message}`)
                .join("; ")}`,
              http_status: res.status,
            });
          }
          failure = options.classify(res);
          last = {
            code: failure.kind === "permanent" ? failure.code : "vendor_unavailable",
            message: `${req.method} ${new URL(url).pathname} answered ${res.status}: ${res.text.slice(0, 300)}`,
            http_status: res.status,
          };
        } else {
          if (sent.error.code !== "network_error") return sent;
          failure = { kind: "transient" };
          last = sent.error;
        }
        if (
          failure.kind === "transient" &&
          !(req.idempotent ?? req.method !== "POST") &&
          mayHaveTaken(answered)
        )
          return err({
            ...last,
            message: `${last.message} (not sent again: ${req.method} ${new URL(url).pathname} may have been taken in; the next run looks before it writes)`,
          });
        const decision = decideRetry(
          {
            failure,
            attempt,
            refreshed,
            now: runtime.now(),
            next_quota_reset: options.next_quota_reset(runtime.now()),
          },
          rules,
        );
        switch (decision.kind) {
          case "retry":
            if (decision.pause_all) options.limiter.pause(decision.after_ms);
            else await runtime.sleep(decision.after_ms);
            continue;
          case "refresh_auth": {
            refreshed = true;
            const r = await options.auth.refresh();
            if (!r.ok) {
              runtime.onAuthFailure?.(r.error);
              return r;
            }
            continue;
          }
          case "defer":
            options.limiter.quotaExhausted(new Date(decision.retry_at));
            return err({
              ...last,
              code: "quota_exceeded",
              retry_at: decision.retry_at,
              message: `Daily API quota spent; deferred to ${decision.retry_at}.`,
            });
          case "fail": {
            const failed: ConnectorError = { ...last, code: decision.code };
            if (decision.code === "auth_invalid") runtime.onAuthFailure?.(failed);
            return err(failed);
          }
        }
      }
    },
  };
}

function parseBody(text: string): unknown {
  if (text === "") return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
