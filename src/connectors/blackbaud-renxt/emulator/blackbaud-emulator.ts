/**
 * A local HTTP emulator of Blackbaud's SKY API for Raiser's Edge NXT (Constituent, Communication
 * Preference, List and Webhook APIs plus the OAuth 2.0 service), written from the vendor's
 * documentation and built on the shared emulator kit.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import {
  createEmulatorKit,
  EmulatorControlError,
  listenOnLoopback,
  type EmulatorKit,
} from "../../emulator-kit/emulator-kit";
import { CallLimits, hhmmss } from "../../emulator-kit/call-limits";
import {
  CUSTOM_FIELD_TYPES,
  DomainError,
  EmulatorState,
  type Constituent,
  type CustomFieldCategory,
  type DomainEvent,
} from "./emulator-state";
import { OAuth2Server, type OAuthClient } from "../../emulator-kit/oauth2-server";
import {
  DEFAULT_WEBHOOK_OPTIONS,
  SUPPORTED_EVENT_TYPES,
  WebhookHub,
  type WebhookOptions,
} from "./webhook-delivery";

export type BlackbaudEmulatorOptions = {
  /** The emulator's clock: dates, token expiry, rate limit and quota all read it. */
  now?: () => Date;
  /** The developer subscription key every call must carry (default "emulator-subscription-key"). */
  subscriptionKey?: string;
  ratePerSecond?: number;
  dailyQuota?: number;
  accessTokenTtlSeconds?: number;
  refreshTokenTtlDays?: number;
  environmentId?: string;
  environmentName?: string;
  applicationId?: string;
  oauthClients?: OAuthClient[];
  /** Consent Channels table (default ["Email"]). */
  channels?: string[];
  /** Consent Categories table (default Newsletter, Appeals, Events, Fundraising). */
  categories?: string[];
  /** Solicit Codes table; must contain requestsNoEmailSolicitCode for the requests_no_email link. */
  solicitCodes?: string[];
  requestsNoEmailSolicitCode?: string;
  /**
   * The order of a listing by `last_modified`: by the row version every change bumps (default, the
   * emulator's reading of sort_token), or by creation, which is stable too but not in the order of
   * change (SKY documents only "stable ordering"): for readers that must not assume the first.
   */
  listChangesBy?: "row_version" | "creation";
  /** Whether a new consent record moves the constituent's date_modified (default false). */
  consentTouchesConstituent?: boolean;
  /** Email Address Types table. */
  emailTypes?: string[];
  /** Custom Field Categories table of constituents (default below: one Boolean opt-out field among others). */
  customFieldCategories?: CustomFieldCategory[];
  /**
   * How long a change takes to show in the "all constituents" custom field list (SKY documents an
   * average of about 30 minutes for those endpoints); default 0.
   */
  allConstituentsListLatencyMs?: number;
  /**
   * How long a change takes to show in the constituent list asked by `last_modified` (SKY documents
   * an average of about 30 minutes for it; an average, so some show later than others: a function
   * of the constituent's id); default 0. A constituent changed within it is not listed by that
   * change (SKY shows it as it was, dated before).
   */
  constituentListLatencyMs?: number | ((constituentId: string) => number);
  webhooks?: Partial<WebhookOptions>;
  bodyLimit?: number;
  logger?: boolean;
};

export type BlackbaudEmulator = {
  app: FastifyInstance;
  kit: EmulatorKit;
  state: EmulatorState;
  webhooks: WebhookHub;
  oauth: OAuth2Server;
  limits: CallLimits;
  subscriptionKey: string;
  environmentId: string;
  /** Issues tokens as if a user had approved the app (same as POST /__emulator/token). */
  mintToken: (body?: { expires_in?: number; user_id?: string }) => Record<string, unknown>;
};

export type RunningBlackbaudEmulator = BlackbaudEmulator & { baseUrl: string; close: () => Promise<void> };

const API_PREFIXES = ["/constituent/v1", "/commpref/v1", "/list/v1", "/webhook/v1"];
const DEFAULT_SUBSCRIPTION_KEY = "emulator-subscription-key";
const ADMIN_USER_NAME = "RE NXT Admin";

const MISSING_KEY = {
  statusCode: 401,
  message:
    "Access denied due to missing subscription key. Make sure to include subscription key when making requests to an API.",
};
const INVALID_KEY = {
  statusCode: 401,
  message:
    "Access denied due to invalid subscription key. Make sure to provide a valid key for an active subscription.",
};
const INVALID_TOKEN = { statusCode: 401, message: "Unauthorized. Access token is missing or invalid." };

/** The error body of the Constituent, Communication Preference and List APIs. */
const skyErrors = (status: number, name: string, message: string) => [
  { message, error_name: name, error_code: status, raw_message: message, error_args: [] as string[] },
];

/** The Webhook API answers errors as RFC 7807 Problem Details. */
const problem = (status: number, title: string, detail: string) => ({
  type: `https://httpstatuses.io/${status}`,
  title,
  status,
  detail,
});

const isApiPath = (path: string): boolean => API_PREFIXES.some((p) => path === p || path.startsWith(`${p}/`));

export function createBlackbaudEmulator(options: BlackbaudEmulatorOptions = {}): BlackbaudEmulator {
  const now = options.now ?? (() => new Date());
  const subscriptionKey = options.subscriptionKey ?? DEFAULT_SUBSCRIPTION_KEY;
  const environmentId = options.environmentId ?? "p-concordEmulatorEnv01";
  const applicationId = options.applicationId ?? "00000000-0000-4000-8000-00000000c0c0";
  const kit = createEmulatorKit({
    name: "blackbaud-renxt",
    now,
    bodyLimit: options.bodyLimit ?? 5 * 1024 * 1024,
    logger: options.logger ?? false,
  });
  const { app } = kit;
  const webhookOptions: WebhookOptions = { ...DEFAULT_WEBHOOK_OPTIONS, ...(options.webhooks ?? {}) };
  const webhooks = new WebhookHub(webhookOptions, { now, environmentId });
  const state = new EmulatorState(
    {
      now,
      channels: options.channels ?? ["Email"],
      categories: options.categories ?? ["Newsletter", "Appeals", "Events", "Fundraising"],
      solicitCodes: options.solicitCodes ?? [
        "Requests no email",
        "Do not solicit",
        "Do not mail",
        "Do not phone",
        "Do not contact",
      ],
      requestsNoEmailSolicitCode: options.requestsNoEmailSolicitCode ?? "Requests no email",
      consentTouchesConstituent: options.consentTouchesConstituent ?? false,
      allConstituentsListLatencyMs: options.allConstituentsListLatencyMs ?? 0,
      constituentListLatencyMs:
        typeof options.constituentListLatencyMs === "function"
          ? options.constituentListLatencyMs
          : () => (options.constituentListLatencyMs as number | undefined) ?? 0,
      customFieldCategories: options.customFieldCategories ?? [
        { name: "Newsletter opt-out", type: "Boolean", one_per_record: true },
        { name: "Active Volunteer", type: "Boolean" },
        { name: "Anniversary", type: "Date" },
        { name: "Business Hours", type: "Text" },
      ],
      emailTypes: options.emailTypes ?? ["Email", "Email 2", "Email 3", "Work Email", "Personal Email"],
    },
    (event: DomainEvent) => {
      webhooks.publish(event);
    },
  );
  const user = {
    id: "emulator-user-0001",
    email: "api.user@example.org",
    given_name: "Api",
    family_name: "User",
  };
  const environmentName = options.environmentName ?? "Concord Emulator Environment";
  const oauth = new OAuth2Server({
    now,
    vendor_name: "Blackbaud",
    paths: { authorize: ["/oauth2/authorization", "/oauth/authorize"], token: "/oauth2/token" },
    access_ttl_seconds: options.accessTokenTtlSeconds ?? 3600,
    refresh_ttl_ms: (options.refreshTokenTtlDays ?? 365) * 86_400_000,
    // A refresh spends the token used unless the app asks to keep it (preserve_refresh_token).
    refresh: "rotate",
    preserve_refresh_token: true,
    default_scopes: [],
    clients: options.oauthClients ?? [],
    strict_exchange: true,
    user_id: user.id,
    token_prefix: "bb",
    token_type: "bearer",
    // The token answer names the environment and legal entity the user approved the app for.
    answer: (grant, refreshExpiresIn) => ({
      ...(refreshExpiresIn !== undefined ? { refresh_token_expires_in: refreshExpiresIn } : {}),
      environment_id: environmentId,
      environment_name: environmentName,
      legal_entity_id: "p-concordEmulatorLegalEntity",
      legal_entity_name: "Concord Emulator Nonprofit",
      user_id: grant.user_id,
      email: user.email,
      given_name: user.given_name,
      family_name: user.family_name,
      mode: "Full",
    }),
  });
  const ratePerSecond = options.ratePerSecond ?? 5;
  const dailyQuota = options.dailyQuota ?? 25_000;
  const limits = new CallLimits({
    now,
    per_second: ratePerSecond > 0 ? ratePerSecond : null,
    window: "sliding",
    daily: dailyQuota > 0 ? dailyQuota : null,
  });
  const callers = new WeakMap<FastifyRequest, string>();
  const userName = "Api User";

  // OAuth's token endpoint takes form posts; text bodies are not JSON and must get a 415.
  app.removeContentTypeParser("text/plain");
  app.addContentTypeParser("application/x-www-form-urlencoded", { parseAs: "string" }, (_req, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)));
  });

  // The gateway order: subscription key, then rate limit and quota, then the access token.
  app.addHook("onRequest", async (request, reply) => {
    if (reply.sent) return reply;
    const path = request.url.split("?")[0] ?? request.url;
    if (!isApiPath(path)) return undefined;
    const query = request.query as Record<string, unknown>;
    const headerKey = request.headers["bb-api-subscription-key"];
    const key =
      (Array.isArray(headerKey) ? headerKey[0] : headerKey) ??
      (query["subscription-key"] as string | undefined);
    if (!key) return reply.code(401).send(MISSING_KEY);
    if (key !== subscriptionKey) return reply.code(401).send(INVALID_KEY);
    const verdict = limits.admit();
    if (verdict.kind === "rate_limited")
      return reply
        .code(429)
        .header("Retry-After", String(verdict.retry_after_seconds))
        .send({ statusCode: 429, message: "Rate limit is exceeded. Try again in 1 second." });
    if (verdict.kind === "quota_exceeded")
      return reply
        .code(403)
        .header("Retry-After", String(verdict.retry_after_seconds))
        .send({
          statusCode: 403,
          message: `Out of call volume quota. Quota will be replenished in ${hhmmss(verdict.retry_after_seconds)}.`,
        });
    const check = oauth.check(request.headers.authorization);
    if (!check.ok) return reply.code(401).send(INVALID_TOKEN);
    callers.set(request, check.user_id);
    return undefined;
  });

  // The kit's injected faults carry a generic body; on SKY paths give them the gateway's shape.
  app.addHook("onSend", async (request, reply, payload) => {
    if (typeof payload !== "string" || !payload.includes('"error_key":"emulator.fault"')) return payload;
    const path = request.url.split("?")[0] ?? request.url;
    if (!isApiPath(path)) return payload;
    const status = reply.statusCode;
    if (status === 429) {
      if (!reply.hasHeader("retry-after")) void reply.header("Retry-After", "1");
      return JSON.stringify({ statusCode: 429, message: "Rate limit is exceeded. Try again in 1 second." });
    }
    return JSON.stringify({ statusCode: status, message: `Injected fault ${status}` });
  });

  app.setNotFoundHandler(async (request, reply) => {
    const path = request.url.split("?")[0] ?? request.url;
    if (isApiPath(path)) return reply.code(404).send({ statusCode: 404, message: "Resource not found" });
    return reply.code(404).send({ code: "not_found", message: `No route ${request.method} ${path}` });
  });

  app.setErrorHandler(async (error: any, request, reply) => {
    const path = request.url.split("?")[0] ?? request.url;
    let status = 500;
    let name = "InternalServerError";
    let message = "An unexpected error occurred.";
    if (error instanceof DomainError) {
      status = error.status;
      name = error.errorName;
      message = error.message;
    } else if (error instanceof EmulatorControlError) {
      status = 400;
      name = error.code;
      message = error.message;
    } else if (error?.code === "FST_ERR_CTP_BODY_TOO_LARGE") {
      status = 413;
      name = "RequestEntityTooLarge";
      message = "The request body is too large.";
    } else if (error?.code === "FST_ERR_CTP_INVALID_MEDIA_TYPE" || error?.statusCode === 415) {
      status = 415;
      name = "UnsupportedMediaType";
      message = "The Content-Type header must be application/json.";
    } else if (error?.statusCode === 400) {
      status = 400;
      name = "InvalidRequestBody";
      message = `The request body is not valid JSON: ${String(error.message)}`;
    } else if (typeof error?.statusCode === "number" && error.statusCode >= 400 && error.statusCode < 500) {
      status = error.statusCode;
      name = "BadRequest";
      message = String(error.message);
    } else {
      request.log.error(error);
    }
    if (path.startsWith("/__emulator")) return reply.code(status).send({ code: name, message });
    if (path.startsWith("/oauth"))
      return reply.code(status).send({ error: "invalid_request", error_description: message });
    if (path.startsWith("/webhook/v1")) {
      return reply
        .code(status)
        .type("application/problem+json")
        .send(problem(status, name, message));
    }
    return reply.code(status).send(skyErrors(status, name, message));
  });

  oauth.register(app);

  const userOf = (request: FastifyRequest): string => callers.get(request) ?? "unknown";
  const bodyOf = (request: FastifyRequest): Record<string, any> => {
    const b = request.body;
    if (b === undefined || b === null) return {};
    if (typeof b !== "object" || Array.isArray(b)) {
      throw new DomainError(400, "InvalidRequestBody", "The request body must be a JSON object.");
    }
    return b as Record<string, any>;
  };
  const qs = (request: FastifyRequest): Record<string, unknown> => request.query as Record<string, unknown>;

  registerConstituentRoutes(app, state, bodyOf, qs, userOf, options.listChangesBy ?? "row_version");
  registerCommPrefRoutes(app, state, bodyOf, qs, () => userName);
  registerListRoutes(app, state, bodyOf, qs, () => userName);
  registerWebhookRoutes(app, webhooks, bodyOf, applicationId, webhookOptions);

  app.post("/__emulator/webhooks/flush", async () => webhooks.flush());
  app.get("/__emulator/webhooks", async () => webhooks.snapshot());

  kit.registerControl({
    reset: () => {
      state.reset();
      limits.reset();
      oauth.reset();
      webhooks.reset();
    },
    seed: (body: any) => seed(state, body),
    token: (body: any) => oauth.mint(body ?? {}),
    revoke: () => oauth.revokeAll(),
    act: async (body: any) => act(state, webhooks, oauth, body),
    state: () => ({
      environment_id: environmentId,
      ...state.snapshot(),
      webhooks: webhooks.snapshot(),
      limits: limits.usage(),
      tokens: oauth.summary(),
    }),
  });

  app.addHook("onClose", async () => {
    webhooks.close();
  });

  return {
    app,
    kit,
    state,
    webhooks,
    oauth,
    limits,
    subscriptionKey,
    environmentId,
    mintToken: (body = {}) => oauth.mint(body),
  };
}

export async function startBlackbaudEmulator(
  options: BlackbaudEmulatorOptions & { port?: number } = {},
): Promise<RunningBlackbaudEmulator> {
  const emulator = createBlackbaudEmulator(options);
  const baseUrl = await listenOnLoopback(emulator.app, options.port ?? 0);
  return { ...emulator, baseUrl, close: () => emulator.app.close() };
}

// ------------------------------------------------------------------ helpers

type BodyOf = (request: FastifyRequest) => Record<string, any>;
type Qs = (request: FastifyRequest) => Record<string, unknown>;

const bool = (v: unknown): boolean => v === true || v === "true" || v === "True" || v === "1";

const many = (v: unknown): string[] => {
  if (v === undefined || v === null || v === "") return [];
  const list = Array.isArray(v) ? v : [v];
  return list
    .flatMap((x) => String(x).split(","))
    .map((x) => x.trim())
    .filter((x) => x !== "");
};

function int(v: unknown, name: string, dflt: number, min: number, max: number): number {
  if (v === undefined || v === "") return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new DomainError(
      400,
      "InvalidArgument",
      `The ${name} parameter must be an integer from ${min} to ${max}.`,
    );
  }
  return n;
}

function dateParam(v: unknown, name: string): number | undefined {
  if (v === undefined || v === "") return undefined;
  const t = typeof v === "string" ? Date.parse(v) : Number.NaN;
  if (Number.isNaN(t)) {
    throw new DomainError(
      400,
      "InvalidArgument",
      `The ${name} parameter must be an ISO-8601 date, e.g. 2016-05-05T17:59:31.1600745-04:00.`,
    );
  }
  return t;
}

/** sort_token: an 8-byte big-endian counter in base64, the shape SKY returns (e.g. "AAAAAAAC+I4="). */
export function encodeSortToken(n: number): string {
  const buf = Buffer.alloc(8);
  buf.writeBigUInt64BE(BigInt(n));
  return buf.toString("base64");
}

export function decodeSortToken(token: string): number {
  const buf = Buffer.from(token, "base64");
  if (buf.length !== 8)
    throw new DomainError(400, "InvalidArgument", "The sort_token parameter is not valid.");
  return Number(buf.readBigUInt64BE());
}

function baseUrlOf(request: FastifyRequest): string {
  return `${request.protocol}://${request.headers.host ?? "127.0.0.1"}`;
}

function nextLink(request: FastifyRequest, path: string, params: Record<string, unknown>): string {
  const search = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined) continue;
    for (const item of Array.isArray(v) ? v : [v]) search.append(k, String(item));
  }
  return `${baseUrlOf(request)}${path}?${search.toString()}`;
}

const sortable = (v: unknown): string =>
  typeof v === "string" ? v : typeof v === "number" || typeof v === "boolean" ? String(v) : "";

const collection = (value: unknown[], count = value.length, next?: string) =>
  next === undefined ? { count, value } : { count, next_link: next, value };

function pickFields(record: Record<string, unknown>, fields: string[]): Record<string, unknown> {
  if (fields.length === 0) return record;
  const out: Record<string, unknown> = { id: record.id };
  for (const f of fields) if (record[f] !== undefined) out[f] = record[f];
  return out;
}

// ------------------------------------------------------------------ constituent API

function registerConstituentRoutes(
  app: FastifyInstance,
  state: EmulatorState,
  bodyOf: BodyOf,
  qs: Qs,
  userOf: (r: FastifyRequest) => string,
  listChangesBy: "row_version" | "creation",
): void {
  const P = "/constituent/v1";

  app.get(`${P}/constituents`, async (request) => {
    const q = qs(request);
    const limit = int(q.limit, "limit", 500, 0, 5000);
    const offset = int(q.offset, "offset", 0, 0, 2147483647);
    const fields = many(q.fields);
    const path = `${P}/constituents`;
    // A list item is the spec's ConstituentListItem, which has no requests_no_email: a reader that
    // needs the flag reads the constituent itself.
    const read = (c: Constituent) => {
      const { requests_no_email: _flag, ...item } = state.constituentRead(c);
      return pickFields(item, fields);
    };

    if (typeof q.list_id === "string" && q.list_id !== "") {
      // "If this value is set, other specified filters will be ignored."
      const list = state.requireList(q.list_id);
      if (list.list_type !== "Constituent") {
        throw new DomainError(400, "InvalidArgument", "The list_id parameter must name a Constituent list.");
      }
      const rows = list.ids
        .map((id) => state.constituents.get(id))
        .filter((c): c is Constituent => c !== undefined);
      const page = rows.slice(offset, offset + limit);
      const more = offset + limit < rows.length;
      return collection(
        page.map(read),
        rows.length,
        more
          ? nextLink(request, path, { list_id: q.list_id, limit, offset: offset + limit, fields: q.fields })
          : undefined,
      );
    }

    const sort = many(q.sort);
    const sortToken = typeof q.sort_token === "string" && q.sort_token !== "" ? q.sort_token : undefined;
    if (sort.length > 0 && sortToken) {
      throw new DomainError(400, "InvalidArgument", "The sort and sort_token parameters cannot be combined.");
    }
    const lastModified = dateParam(q.last_modified, "last_modified");
    const dateAdded = dateParam(q.date_added, "date_added");
    let rows = [...state.constituents.values()];
    if (!bool(q.include_inactive)) rows = rows.filter((c) => !c.inactive);
    if (!bool(q.include_deceased)) rows = rows.filter((c) => !c.deceased);
    const ids = many(q.constituent_id);
    if (ids.length > 0) rows = rows.filter((c) => ids.includes(c.id));
    if (lastModified !== undefined) {
      // "This endpoint returns data with an average latency of about 30 minutes": a constituent
      // changed within the lag is not listed by its change yet (SKY shows it as it was, dated as it
      // was, which a later `last_modified` leaves out; the emulator keeps no older state).
      const now = state.config.now().getTime();
      rows = rows.filter(
        (c) =>
          Date.parse(c.date_modified) >= lastModified &&
          Date.parse(c.date_modified) <= now - state.config.constituentListLatencyMs(c.id),
      );
    }
    if (dateAdded !== undefined) rows = rows.filter((c) => Date.parse(c.date_added) >= dateAdded);

    // Stable paging: order by a key that only grows (row version, or creation order) and let the
    // token say "after this key", so a record modified mid-paging moves behind the cursor instead
    // of shifting the pages under the reader.
    const single = sort.length === 1 ? sort[0] : undefined;
    const stableKey: ((c: Constituent) => number) | undefined =
      lastModified !== undefined && listChangesBy === "creation"
        ? (c) => c.added_seq
        : lastModified !== undefined || single === "date_modified" || (sortToken && dateAdded === undefined)
          ? (c) => c.row_version
          : dateAdded !== undefined || single === "date_added"
            ? (c) => c.added_seq
            : undefined;

    if (stableKey) {
      rows.sort((a, b) => stableKey(a) - stableKey(b));
      if (sortToken) {
        const after = decodeSortToken(sortToken);
        rows = rows.filter((c) => stableKey(c) > after);
      }
      const page = rows.slice(offset, offset + limit);
      const last = page[page.length - 1];
      const more = offset + limit < rows.length && last !== undefined;
      const params: Record<string, unknown> = {
        limit,
        last_modified: q.last_modified,
        date_added: q.date_added,
        include_inactive: q.include_inactive,
        include_deceased: q.include_deceased,
        constituent_id: q.constituent_id,
        fields: q.fields,
        sort_token: last ? encodeSortToken(stableKey(last)) : undefined,
      };
      return collection(page.map(read), rows.length, more ? nextLink(request, path, params) : undefined);
    }

    if (sort.length > 0) {
      rows.sort((a, b) => {
        const ra = state.constituentRead(a);
        const rb = state.constituentRead(b);
        for (const s of sort) {
          const desc = s.startsWith("-");
          const key = desc ? s.slice(1) : s;
          const cmp = sortable(ra[key]).localeCompare(sortable(rb[key]), "en", { numeric: true });
          if (cmp !== 0) return desc ? -cmp : cmp;
        }
        return a.added_seq - b.added_seq;
      });
    } else {
      rows.sort((a, b) => a.added_seq - b.added_seq);
    }
    const page = rows.slice(offset, offset + limit);
    const more = offset + limit < rows.length;
    const params: Record<string, unknown> = {
      limit,
      offset: offset + limit,
      include_inactive: q.include_inactive,
      include_deceased: q.include_deceased,
      constituent_id: q.constituent_id,
      sort: q.sort,
      fields: q.fields,
    };
    return collection(page.map(read), rows.length, more ? nextLink(request, path, params) : undefined);
  });

  // SearchConstituent: by email address or lookup id. The emulated database holds constituents
  // only (no non-constituent records) and matches exactly, so `include_non_constituents` and
  // `strict_search` change nothing here; without `include_inactive` inactive ones are left out.
  app.get(`${P}/constituents/search`, async (request) => {
    const q = qs(request);
    const text = typeof q.search_text === "string" ? q.search_text.trim() : "";
    if (text === "") throw new DomainError(400, "InvalidArgument", "The search_text parameter is required.");
    const field = typeof q.search_field === "string" ? q.search_field : undefined;
    if (field !== undefined && field !== "email_address" && field !== "lookup_id")
      throw new DomainError(
        400,
        "InvalidArgument",
        "The search_field parameter supports lookup_id and email_address.",
      );
    const limit = int(q.limit, "limit", 500, 0, 5000);
    const offset = int(q.offset, "offset", 0, 0, 2147483647);
    const wanted = text.toLowerCase();
    // Each holder with the address it was found by (an email search) or its primary one.
    const found = new Map<string, string | undefined>();
    if (field === "lookup_id") {
      for (const c of state.constituents.values())
        if (c.lookup_id.toLowerCase() === wanted) found.set(c.id, state.primaryEmail(c.id)?.address);
    } else
      for (const e of state.emails.values())
        if (e.address.toLowerCase() === wanted && !found.has(e.constituent_id))
          found.set(e.constituent_id, e.address);
    const rows = [...found.keys()]
      .map((id) => state.constituents.get(id))
      .filter((c): c is Constituent => c !== undefined && (bool(q.include_inactive) || !c.inactive))
      .sort((a, b) => a.added_seq - b.added_seq);
    return collection(
      rows.slice(offset, offset + limit).map((c) => ({
        id: c.id,
        name: state.constituentRead(c).name,
        email: found.get(c.id),
        lookup_id: c.lookup_id,
        inactive: c.inactive,
        deceased: c.deceased,
      })),
      rows.length,
    );
  });

  app.get<{ Params: { id: string } }>(`${P}/constituents/:id`, async (request) =>
    state.constituentRead(state.requireConstituent(request.params.id)),
  );

  app.post(`${P}/constituents`, async (request) => {
    const { constituent } = state.createConstituent(bodyOf(request), { userId: userOf(request) });
    return { id: constituent.id };
  });

  app.patch<{ Params: { id: string } }>(`${P}/constituents/:id`, async (request, reply) => {
    state.updateConstituent(request.params.id, bodyOf(request), { userId: userOf(request) });
    return reply.code(200).send();
  });

  app.delete<{ Params: { id: string } }>(`${P}/constituents/:id`, async (request, reply) => {
    state.deleteConstituent(request.params.id);
    return reply.code(200).send();
  });

  app.get<{ Params: { id: string } }>(`${P}/constituents/:id/emailaddresses`, async (request) => {
    state.requireConstituent(request.params.id);
    const includeInactive = bool(qs(request).include_inactive);
    const rows = state.emailsOf(request.params.id).filter((e) => includeInactive || !e.inactive);
    return collection(rows.map((e) => state.emailRead(e)));
  });

  // The all-constituents list (spec ListConstituentEmailAddressesAllConstituents): optionally only
  // some constituents' addresses (`constituent_id`, repeated or comma-separated), and behind writes
  // by the all-constituents lists' latency.
  app.get(`${P}/emailaddresses`, async (request) => {
    const q = qs(request);
    const limit = int(q.limit, "limit", 500, 0, 5000);
    const offset = int(q.offset, "offset", 0, 0, 2147483647);
    const lastModified = dateParam(q.last_modified, "last_modified");
    const ids = new Set(many(q.constituent_id));
    const visibleUntil = state.config.now().getTime() - state.config.allConstituentsListLatencyMs;
    let rows = [...state.emails.values()]
      .filter(
        (e) => (ids.size === 0 || ids.has(e.constituent_id)) && Date.parse(e.date_modified) <= visibleUntil,
      )
      .sort((a, b) => Number(a.id) - Number(b.id));
    if (!bool(q.include_inactive)) rows = rows.filter((e) => !e.inactive);
    if (lastModified !== undefined) rows = rows.filter((e) => Date.parse(e.date_modified) >= lastModified);
    const page = rows.slice(offset, offset + limit);
    const more = offset + limit < rows.length;
    return collection(
      page.map((e) => state.emailRead(e)),
      rows.length,
      more
        ? nextLink(request, `${P}/emailaddresses`, {
            limit,
            offset: offset + limit,
            last_modified: q.last_modified,
            include_inactive: q.include_inactive,
            constituent_id: q.constituent_id,
          })
        : undefined,
    );
  });

  app.post(`${P}/emailaddresses`, async (request) => {
    const body = bodyOf(request);
    if (body.constituent_id === undefined)
      throw new DomainError(400, "InvalidArgument", "The constituent_id field is required.");
    return { id: state.addEmail(body).id };
  });

  app.patch<{ Params: { id: string } }>(`${P}/emailaddresses/:id`, async (request, reply) => {
    state.updateEmail(request.params.id, bodyOf(request));
    return reply.code(200).send();
  });

  app.delete<{ Params: { id: string } }>(`${P}/emailaddresses/:id`, async (request, reply) => {
    state.deleteEmail(request.params.id);
    return reply.code(200).send();
  });

  app.get(`${P}/emailaddresstypes`, async () => collection(state.config.emailTypes));

  // Postal addresses and phones: a change moves the constituent's date_modified (the preferred
  // address and the primary phone are part of the constituent record).
  app.get<{ Params: { id: string } }>(`${P}/constituents/:id/addresses`, async (request) => {
    state.requireConstituent(request.params.id);
    const includeInactive = bool(qs(request).include_inactive);
    const rows = state.addressesOf(request.params.id).filter((a) => includeInactive || !a.inactive);
    return collection(rows.map((a) => state.addressRead(a)));
  });
  app.post(`${P}/addresses`, async (request) => {
    const body = bodyOf(request);
    if (body.constituent_id === undefined)
      throw new DomainError(400, "InvalidArgument", "The constituent_id field is required.");
    return { id: state.addAddress(body).id };
  });
  app.patch<{ Params: { id: string } }>(`${P}/addresses/:id`, async (request, reply) => {
    state.updateAddress(request.params.id, bodyOf(request));
    return reply.code(200).send();
  });
  app.get<{ Params: { id: string } }>(`${P}/constituents/:id/phones`, async (request) => {
    state.requireConstituent(request.params.id);
    const includeInactive = bool(qs(request).include_inactive);
    const rows = state.phonesOf(request.params.id).filter((p) => includeInactive || !p.inactive);
    return collection(rows.map((p) => state.phoneRead(p)));
  });
  app.post(`${P}/phones`, async (request) => {
    const body = bodyOf(request);
    if (body.constituent_id === undefined)
      throw new DomainError(400, "InvalidArgument", "The constituent_id field is required.");
    return { id: state.addPhone(body).id };
  });
  app.patch<{ Params: { id: string } }>(`${P}/phones/:id`, async (request, reply) => {
    state.updatePhone(request.params.id, bodyOf(request));
    return reply.code(200).send();
  });

  // Custom fields: their own store; a change does not move the constituent's date_modified.
  app.get<{ Params: { id: string } }>(`${P}/constituents/:id/customfields`, async (request) => {
    state.requireConstituent(request.params.id);
    return collection(state.customFieldsOf(request.params.id).map((f) => state.customFieldRead(f)));
  });

  app.get(`${P}/constituents/customfields/categories/details`, async () =>
    collection(state.customFieldCategories.map((c) => ({ ...c }))),
  );

  app.get(`${P}/constituents/customfields`, async (request) => {
    const q = qs(request);
    const limit = int(q.limit, "limit", 500, 0, 5000);
    const offset = int(q.offset, "offset", 0, 0, 2147483647);
    const lastModified = dateParam(q.last_modified, "last_modified");
    // The all-constituents list lags behind writes (SKY: about 30 minutes on average).
    const visibleUntil = state.config.now().getTime() - state.config.allConstituentsListLatencyMs;
    let rows = [...state.customFields.values()]
      .filter((f) => Date.parse(f.date_modified) <= visibleUntil)
      .sort((a, b) => Number(a.id) - Number(b.id));
    if (typeof q.category === "string") rows = rows.filter((f) => f.category === q.category);
    if (lastModified !== undefined) rows = rows.filter((f) => Date.parse(f.date_modified) >= lastModified);
    const page = rows.slice(offset, offset + limit);
    const more = offset + limit < rows.length;
    return collection(
      page.map((f) => state.customFieldRead(f)),
      rows.length,
      more
        ? nextLink(request, `${P}/constituents/customfields`, {
            limit,
            offset: offset + limit,
            last_modified: q.last_modified,
            category: q.category,
          })
        : undefined,
    );
  });

  app.post(`${P}/constituents/customfields`, async (request) => ({
    id: state.addCustomField(bodyOf(request)).id,
  }));

  app.patch<{ Params: { id: string } }>(`${P}/constituents/customfields/:id`, async (request, reply) => {
    state.updateCustomField(request.params.id, bodyOf(request));
    return reply.code(200).send();
  });

  app.delete<{ Params: { id: string } }>(`${P}/constituents/customfields/:id`, async (request, reply) => {
    state.deleteCustomField(request.params.id);
    return reply.code(200).send();
  });

  app.get<{ Params: { id: string } }>(`${P}/constituents/:id/relationships`, async (request) => {
    state.requireConstituent(request.params.id);
    return collection(state.relationshipsOf(request.params.id).map((r) => state.relationshipRead(r)));
  });

  // The all-constituents list (spec ListRelationshipsAllConstituents): every relationship row, both
  // directions, oldest first, behind writes by the all-constituents lists' latency.
  app.get(`${P}/relationships`, async (request) => {
    const q = qs(request);
    const limit = int(q.limit, "limit", 500, 0, 5000);
    const offset = int(q.offset, "offset", 0, 0, 2147483647);
    const lastModified = dateParam(q.last_modified, "last_modified");
    const dateAdded = dateParam(q.date_added, "date_added");
    const visibleUntil = state.config.now().getTime() - state.config.allConstituentsListLatencyMs;
    let rows = [...state.relationships.values()]
      .filter((r) => Date.parse(r.date_modified) <= visibleUntil)
      .sort((a, b) => Number(a.id) - Number(b.id));
    if (lastModified !== undefined) rows = rows.filter((r) => Date.parse(r.date_modified) >= lastModified);
    if (dateAdded !== undefined) rows = rows.filter((r) => Date.parse(r.date_added) >= dateAdded);
    const page = rows.slice(offset, offset + limit);
    const more = offset + limit < rows.length;
    return collection(
      page.map((r) => state.relationshipRead(r)),
      rows.length,
      more
        ? nextLink(request, `${P}/relationships`, {
            limit,
            offset: offset + limit,
            last_modified: q.last_modified,
            date_added: q.date_added,
          })
        : undefined,
    );
  });

  app.post(`${P}/relationships`, async (request) => ({ id: state.addRelationship(bodyOf(request)).id }));

  app.delete<{ Params: { id: string } }>(`${P}/relationships/:id`, async (request, reply) => {
    state.deleteRelationship(request.params.id);
    return reply.code(200).send();
  });

  // The Constituent API's older view of solicit codes ("communication preferences"), read-only here.
  app.get<{ Params: { id: string } }>(`${P}/constituents/:id/communicationpreferences`, async (request) => {
    state.requireConstituent(request.params.id);
    return collection(
      state.solicitCodesOf(request.params.id).map((s) => ({
        id: s.id,
        constituent_id: s.constituent_id,
        solicit_code: s.solicit_code,
        ...(s.start_date ? { start: s.start_date } : {}),
        ...(s.end_date ? { end: s.end_date } : {}),
      })),
    );
  });
}

// ------------------------------------------------------------------ communication preference API

function registerCommPrefRoutes(
  app: FastifyInstance,
  state: EmulatorState,
  bodyOf: BodyOf,
  qs: Qs,
  userName: () => string,
): void {
  const P = "/commpref/v1";

  app.get(`${P}/consent/channels`, async () =>
    collection(state.channels.map((description) => ({ description }))),
  );

  app.get(`${P}/consent/categories`, async (request) => {
    const includeInactive = bool(qs(request).include_inactive);
    return collection(state.categories.filter((c) => includeInactive || !c.inactive));
  });

  app.get(`${P}/consent/channelcategories`, async () =>
    collection(
      state.channels.flatMap((channel) =>
        state.categories
          .filter((c) => !c.inactive)
          .map((c) => ({ channel, category: c.description, sequence: c.sequence })),
      ),
    ),
  );

  app.get<{ Params: { id: string } }>(`${P}/constituents/:id/consents`, async (request) => {
    state.requireConstituent(request.params.id);
    const q = qs(request);
    const rows = state.listConsents(request.params.id, {
      mostRecentOnly: bool(q.most_recent_only),
      channels: many(q.channels),
      categories: many(q.categories),
    });
    const skip = int(q.skip, "skip", 0, 0, 2147483647);
    const limit = int(q.limit, "limit", 500, 0, 5000);
    return collection(
      rows.slice(skip, skip + limit).map((r) => state.consentRead(r)),
      rows.length,
    );
  });

  app.post(`${P}/consent/consents`, async (request) => ({
    id: state.addConsent(bodyOf(request), { userName: userName() }).id,
  }));

  // The giving summary's latest gift. A constituent without gifts gets an empty summary (UNVERIFIED:
  // the spec does not say what it returns then).
  app.get<{ Params: { id: string } }>(
    "/constituent/v1/constituents/:id/givingsummary/latest",
    async (request) => {
      state.requireConstituent(request.params.id);
      const gift = state.latestGift(request.params.id);
      if (!gift) return {};
      return {
        id: gift.id,
        amount: { value: gift.amount },
        appeals: [],
        campaigns: [],
        date: gift.date,
        funds: [],
        type: gift.type,
      };
    },
  );

  app.get(`${P}/solicitcodes`, async (request) => {
    const includeInactive = bool(qs(request).include_inactive);
    return collection(state.solicitCodeTable.filter((s) => includeInactive || !s.inactive));
  });

  app.get<{ Params: { id: string } }>(`${P}/constituents/:id/constituentsolicitcodes`, async (request) => {
    state.requireConstituent(request.params.id);
    const q = qs(request);
    const rows = state.solicitCodesOf(request.params.id);
    const skip = int(q.skip, "skip", 0, 0, 2147483647);
    const limit = int(q.limit, "limit", 500, 0, 5000);
    return collection(rows.slice(skip, skip + limit), rows.length);
  });

  app.post(`${P}/constituentsolicitcodes`, async (request) => ({
    id: state.addSolicitCode(bodyOf(request)).id,
  }));

  app.patch<{ Params: { id: string } }>(`${P}/constituentsolicitcodes/:id`, async (request, reply) => {
    state.updateSolicitCode(request.params.id, bodyOf(request));
    return reply.code(200).send();
  });

  app.delete<{ Params: { id: string } }>(`${P}/constituentsolicitcodes/:id`, async (request, reply) => {
    state.deleteSolicitCode(request.params.id);
    return reply.code(200).send();
  });
}

// ------------------------------------------------------------------ list API

function registerListRoutes(
  app: FastifyInstance,
  state: EmulatorState,
  bodyOf: BodyOf,
  qs: Qs,
  userName: () => string,
): void {
  const P = "/list/v1";

  app.get(`${P}/lists`, async (request) => {
    const q = qs(request);
    const limit = int(q.limit, "limit", 500, 0, 5000);
    const offset = int(q.offset, "offset", 0, 0, 2147483647);
    let rows = [...state.lists.values()];
    if (typeof q.list_type === "string" && q.list_type !== "")
      rows = rows.filter((l) => l.list_type === q.list_type);
    return collection(
      rows.slice(offset, offset + limit).map((l) => state.listRead(l)),
      rows.length,
    );
  });

  app.get<{ Params: { id: string } }>(`${P}/lists/:id`, async (request) =>
    state.listRead(state.requireList(request.params.id)),
  );

  const create = async (request: FastifyRequest) => {
    const body = bodyOf(request);
    for (const key of ["name", "list_type", "ids"]) {
      if (body[key] === undefined)
        throw new DomainError(400, "InvalidArgument", `The ${key} field is required.`);
    }
    if (!Array.isArray(body.ids))
      throw new DomainError(400, "InvalidArgument", "The ids field must be an array.");
    return { id: state.createList(body, { userName: userName() }).id };
  };
  app.post(`${P}/createlistfromids`, create);

  app.post(`${P}/appendidstolist`, async (request) => {
    const body = bodyOf(request);
    if (typeof body.list_id !== "string")
      throw new DomainError(400, "InvalidArgument", "The list_id field is required.");
    if (!Array.isArray(body.ids))
      throw new DomainError(400, "InvalidArgument", "The ids field must be an array.");
    state.appendToList(body.list_id, body.ids.map(String), userName());
    return {};
  });
}

// ------------------------------------------------------------------ webhook API

function registerWebhookRoutes(
  app: FastifyInstance,
  hub: WebhookHub,
  bodyOf: BodyOf,
  applicationId: string,
  options: WebhookOptions,
): void {
  const P = "/webhook/v1";
  // GET endpoints do not return the query string (it usually carries the receiver's secret).
  const read = (s: ReturnType<WebhookHub["snapshot"]>["subscriptions"][number]) => ({
    id: s.id,
    application_id: s.application_id,
    environment_id: s.environment_id,
    event_type: s.event_type,
    webhook_url: s.webhook_url.split("?")[0],
    state: s.state,
  });
  const fail = (reply: FastifyReply, status: number, title: string, detail: string) =>
    reply
      .code(status)
      .type("application/problem+json")
      .send(problem(status, title, detail));

  app.get(`${P}/subscriptions`, async () => collection(hub.snapshot().subscriptions.map(read)));

  app.get<{ Params: { id: string } }>(`${P}/subscriptions/:id`, async (request, reply) => {
    const sub = hub.subscriptions.get(request.params.id);
    if (!sub) return fail(reply, 404, "Not Found", "The requested item could not be found.");
    return read(sub);
  });

  app.post(`${P}/subscriptions`, async (request, reply) => {
    const body = bodyOf(request);
    if (typeof body.event_type !== "string" || !SUPPORTED_EVENT_TYPES.includes(body.event_type)) {
      return fail(
        reply,
        400,
        "Bad Request",
        `event_type must be one of: ${SUPPORTED_EVENT_TYPES.join(", ")}.`,
      );
    }
    let url: URL;
    try {
      url = new URL(String(body.webhook_url));
    } catch {
      return fail(reply, 400, "Bad Request", "webhook_url must be an absolute URL.");
    }
    if (url.protocol !== "https:" && !(options.allowHttp && url.protocol === "http:")) {
      return fail(reply, 400, "Bad Request", "webhook_url must use https.");
    }
    const duplicate = [...hub.subscriptions.values()].some(
      (s) => s.event_type === body.event_type && s.webhook_url === url.toString(),
    );
    if (duplicate)
      return fail(
        reply,
        409,
        "Conflict",
        "A subscription for this event type and webhook URL already exists.",
      );
    const sub = hub.createSubscription(
      { webhook_url: url.toString(), event_type: body.event_type },
      applicationId,
    );
    return { id: sub.id };
  });

  app.delete<{ Params: { id: string } }>(`${P}/subscriptions/:id`, async (request, reply) => {
    if (!hub.deleteSubscription(request.params.id))
      return fail(reply, 404, "Not Found", "The requested item could not be found.");
    return reply.code(200).send();
  });

  app.post<{ Params: { id: string } }>(`${P}/subscriptions/:id/testpayload`, async (request, reply) => {
    const sub = hub.subscriptions.get(request.params.id);
    if (!sub) return fail(reply, 404, "Not Found", "The requested item could not be found.");
    const attempt = await hub.sendTestPayload(sub);
    if (attempt.outcome !== "delivered") {
      return fail(
        reply,
        400,
        "Bad Request",
        `The webhook did not accept the test payload (${attempt.status ?? attempt.error ?? "no answer"}).`,
      );
    }
    return reply.code(200).send();
  });
}

// ------------------------------------------------------------------ control: seed and act

function seed(state: EmulatorState, body: any): unknown {
  if (!body || typeof body !== "object")
    throw new EmulatorControlError("invalid_seed", "The seed body must be a JSON object.");
  if (Array.isArray(body.consent_channels)) state.channels = body.consent_channels.map(String);
  if (Array.isArray(body.consent_categories)) {
    state.categories = body.consent_categories.map((c: any, i: number) =>
      typeof c === "string"
        ? { description: c, inactive: false, sequence: i + 1 }
        : {
            description: String(c.description),
            inactive: c.inactive === true,
            sequence: Number(c.sequence ?? i + 1),
          },
    );
  }
  if (Array.isArray(body.custom_field_categories))
    state.customFieldCategories = body.custom_field_categories.map((c: any) => ({
      name: String(c.name),
      type: CUSTOM_FIELD_TYPES.includes(c.type) ? c.type : "Text",
      ...(c.one_per_record === true ? { one_per_record: true } : {}),
    }));
  if (Array.isArray(body.solicit_codes_table)) {
    state.solicitCodeTable = body.solicit_codes_table.map((c: any, i: number) =>
      typeof c === "string"
        ? { description: c, inactive: false, sequence: i + 1 }
        : {
            description: String(c.description),
            inactive: c.inactive === true,
            sequence: Number(c.sequence ?? i + 1),
          },
    );
  }
  const created: { id: string; lookup_id: string; email_address_ids: string[] }[] = [];
  for (const input of asArray(body.constituents)) {
    const { email_addresses, consents, solicit_codes, custom_fields, gifts, email, ...rest } = input ?? {};
    const { constituent } = state.createConstituent(rest, { seeded: true });
    const emailIds: string[] = [];
    for (const e of [
      ...(email ? [{ ...email, primary: email.primary ?? true }] : []),
      ...asArray(email_addresses),
    ]) {
      emailIds.push(
        state.addEmail({ type: "Email", ...e, constituent_id: constituent.id }, { seeded: true }).id,
      );
    }
    for (const r of asArray(consents)) {
      state.addConsent({ ...r, constituent_id: constituent.id }, { seeded: true, userName: ADMIN_USER_NAME });
    }
    for (const s of asArray(solicit_codes))
      state.addSolicitCode({ ...s, constituent_id: constituent.id }, { seeded: true });
    for (const f of asArray(custom_fields))
      state.addCustomField({ ...f, parent_id: constituent.id }, { seeded: true });
    for (const g of asArray(gifts)) state.addGift({ ...g, constituent_id: constituent.id }, { seeded: true });
    if (typeof rest.date_modified === "string") constituent.date_modified = rest.date_modified;
    created.push({ id: constituent.id, lookup_id: constituent.lookup_id, email_address_ids: emailIds });
  }
  for (const r of asArray(body.consents)) state.addConsent(r, { seeded: true, userName: ADMIN_USER_NAME });
  for (const s of asArray(body.solicit_codes)) state.addSolicitCode(s, { seeded: true });
  for (const g of asArray(body.gifts)) state.addGift(g, { seeded: true });
  const relationships = asArray(body.relationships).map((r) => state.addRelationship(r, { seeded: true }).id);
  const lists = asArray(body.lists).map((l) => {
    const list = state.createList(
      { list_type: "Constituent", ...l },
      { seeded: true, userName: ADMIN_USER_NAME },
    );
    return { id: list.id, name: list.name };
  });
  return { constituents: created, relationships, lists };
}

function asArray(v: unknown): any[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v))
    throw new EmulatorControlError("invalid_seed", "Collections in a seed must be arrays.");
  return v;
}

async function act(state: EmulatorState, hub: WebhookHub, oauth: OAuth2Server, body: any): Promise<unknown> {
  if (!body || typeof body !== "object")
    throw new EmulatorControlError("invalid_act", "The act body must be a JSON object.");
  if (body.as !== "admin") {
    throw new EmulatorControlError(
      "unsupported_actor",
      'Raiser\'s Edge NXT is a CRM: constituents do not act in it. Use {"as":"admin",…}.',
    );
  }
  const constituent = (): Constituent => {
    if (body.constituent_id !== undefined) return state.requireConstituent(String(body.constituent_id));
    if (typeof body.email === "string") {
      const c = state.findConstituentByEmail(body.email);
      if (!c)
        throw new EmulatorControlError("not_found", `No constituent has the email address ${body.email}.`);
      return c;
    }
    throw new EmulatorControlError("invalid_act", "Name the constituent with constituent_id or email.");
  };
  const userId = "admin";
  switch (body.action) {
    case "set_requests_no_email":
    case "clear_requests_no_email": {
      const c = constituent();
      state.updateConstituent(
        c.id,
        { requests_no_email: body.action === "set_requests_no_email" },
        { userId },
      );
      return { ok: true, constituent: state.constituentRead(c) };
    }
    case "add_gift": {
      // A gift is entered for the constituent (it moves no constituent modification date).
      const c = constituent();
      const gift = state.addGift({ ...body.gift, constituent_id: c.id });
      return { ok: true, gift };
    }
    case "set_custom_field": {
      // An admin ticks or clears a Yes/No custom field (or sets any other) on the constituent record.
      const c = constituent();
      const existing = state.customFieldsOf(c.id).find((f) => f.category === body.category);
      const field = existing
        ? state.updateCustomField(existing.id, { value: body.value })
        : state.addCustomField({ parent_id: c.id, category: body.category, value: body.value });
      return { ok: true, custom_field: state.customFieldRead(field) };
    }
    case "set_do_not_email":
    case "clear_do_not_email": {
      let emailId = body.email_address_id !== undefined ? String(body.email_address_id) : undefined;
      if (!emailId) {
        const c = constituent();
        const wanted =
          typeof body.address === "string"
            ? body.address
            : typeof body.email === "string"
              ? body.email
              : undefined;
        const match = state
          .emailsOf(c.id)
          .find((e) => (wanted ? e.address.toLowerCase() === wanted.toLowerCase() : e.primary));
        if (!match) throw new EmulatorControlError("not_found", "No such email address on the constituent.");
        emailId = match.id;
      }
      const value = body.action === "set_do_not_email" ? body.value !== false : false;
      return {
        ok: true,
        email_address: state.emailRead(state.updateEmail(emailId, { do_not_email: value })),
      };
    }
    case "change_primary_email": {
      const c = constituent();
      const address = body.new_address ?? body.address;
      if (typeof address !== "string")
        throw new EmulatorControlError("invalid_act", "change_primary_email needs new_address.");
      const existing = state.emailsOf(c.id).find((e) => e.address.toLowerCase() === address.toLowerCase());
      const email = existing
        ? state.updateEmail(existing.id, { primary: true })
        : state.addEmail({ constituent_id: c.id, address, type: body.type ?? "Email", primary: true });
      if (body.remove_old === true) {
        for (const e of state.emailsOf(c.id)) if (e.id !== email.id) state.deleteEmail(e.id);
      }
      return { ok: true, email_address: state.emailRead(email) };
    }
    case "add_email": {
      const c = constituent();
      return {
        ok: true,
        email_address: state.emailRead(
          state.addEmail({ type: "Email", ...body.email_address, constituent_id: c.id }),
        ),
      };
    }
    case "add_consent": {
      const c = constituent();
      const record = state.addConsent(
        {
          channel: "Email",
          consent_date: new Date(state.config.now()).toISOString(),
          source: "Admin",
          ...body.consent,
          ...(body.response ? { constituent_consent_response: body.response } : {}),
          ...(body.category ? { category: body.category } : {}),
          constituent_id: c.id,
        },
        { userName: typeof body.user_name === "string" ? body.user_name : ADMIN_USER_NAME },
      );
      return { ok: true, consent: state.consentRead(record) };
    }
    case "add_solicit_code": {
      const c = constituent();
      return {
        ok: true,
        solicit_code: state.addSolicitCode({
          ...body.solicit_code,
          solicit_code: body.solicit_code?.solicit_code ?? body.code,
          constituent_id: c.id,
        }),
      };
    }
    case "retire_solicit_code": {
      // An admin marks an entry of the Solicit Codes table inactive: no one new may be given it,
      // and the constituents who hold it keep it.
      const entry = state.solicitCodeTable.find((t) => t.description === body.code);
      if (!entry)
        throw new EmulatorControlError("not_found", "The Solicit Codes table has no entry by that name.");
      entry.inactive = true;
      return { ok: true };
    }
    case "end_solicit_code": {
      // An admin ends a code on the constituent record: its end date becomes today.
      const c = constituent();
      const at = new Date(state.config.now()).toISOString();
      const ended = state
        .solicitCodesOf(c.id)
        .filter((s) => s.solicit_code === (body.code ?? body.solicit_code) && s.end_date === undefined)
        .map((s) => state.updateSolicitCode(s.id, { end_date: at }));
      if (ended.length === 0)
        throw new EmulatorControlError(
          "not_found",
          "The constituent holds no open solicit code by that name.",
        );
      return { ok: true, ended: ended.length };
    }
    case "add_constituent": {
      const { constituent: created } = state.createConstituent(body.constituent ?? {}, { userId });
      return { ok: true, constituent: state.constituentRead(created) };
    }
    case "update_constituent": {
      const c = constituent();
      state.updateConstituent(c.id, body.changes ?? {}, { userId });
      return { ok: true, constituent: state.constituentRead(c) };
    }
    case "delete_constituent": {
      const c = constituent();
      state.deleteConstituent(c.id);
      return { ok: true, deleted: c.id };
    }
    case "add_to_list":
    case "remove_from_list": {
      if (typeof body.list_id !== "string" || !Array.isArray(body.ids)) {
        throw new EmulatorControlError("invalid_act", `${String(body.action)} needs list_id and ids.`);
      }
      const list =
        body.action === "add_to_list"
          ? state.appendToList(body.list_id, body.ids.map(String), ADMIN_USER_NAME)
          : state.removeFromList(body.list_id, body.ids, ADMIN_USER_NAME);
      return { ok: true, list: { ...state.listRead(list), ids: list.ids } };
    }
    case "create_list": {
      // An admin builds a static list in the RE NXT UI.
      const list = state.createList(
        { name: body.name, ids: Array.isArray(body.ids) ? body.ids : [] },
        { userName: ADMIN_USER_NAME },
      );
      return { ok: true, list: { ...state.listRead(list), ids: list.ids } };
    }
    case "rename_list":
    case "delete_list": {
      if (typeof body.list_id !== "string")
        throw new EmulatorControlError("invalid_act", `${String(body.action)} needs list_id.`);
      const list = state.requireList(body.list_id);
      if (body.action === "delete_list") {
        state.lists.delete(list.id);
        return { ok: true, deleted: list.id };
      }
      if (typeof body.name !== "string" || body.name.trim() === "")
        throw new EmulatorControlError("invalid_act", "rename_list needs name.");
      list.name = body.name.trim();
      list.date_modified = new Date(state.config.now()).toISOString();
      return { ok: true, list: state.listRead(list) };
    }
    case "disconnect_application": {
      // Disconnecting the app in RE NXT revokes its tokens and deletes its webhook subscriptions.
      const revoked = oauth.revokeAll();
      const subscriptions = [...hub.subscriptions.keys()];
      for (const id of subscriptions) hub.deleteSubscription(id);
      return { ok: true, ...revoked, deleted_subscriptions: subscriptions.length };
    }
    default:
      throw new EmulatorControlError(
        "unknown_action",
        "action must be one of set_requests_no_email, clear_requests_no_email, set_do_not_email, clear_do_not_email, change_primary_email, add_email, add_consent, add_gift, add_solicit_code, retire_solicit_code, end_solicit_code, add_constituent, update_constituent, delete_constituent, add_to_list, remove_from_list, create_list, rename_list, delete_list, disconnect_application.",
      );
  }
}
