/**
 * A local HTTP server that behaves like the Mailchimp Marketing API 3.0 (audiences, members,
 * batch subscribe, groups, tags, merge fields, webhooks, API keys and OAuth 2, the 10-connection
 * limit and problem documents), written from Mailchimp's documentation and checked against its
 * published OpenAPI definition. QUIRKS.md says where each behaviour comes from.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import { randomBytes } from "node:crypto";
import {
  EmulatorControlError,
  createEmulatorKit,
  listenOnLoopback,
  type EmulatorClock,
  type EmulatorKit,
} from "../../emulator-kit/emulator-kit";
import { DeliveryQueue } from "../../emulator-kit/delivery-queue";
import { BatchRunner, parseOperations, type Batch } from "./batches";
import { OAuth2Server } from "../../emulator-kit/oauth2-server";
import {
  MailchimpError,
  MailchimpStore,
  isValidEmail,
  subscriberHash,
  type Audience,
  type ChangeSource,
  type Member,
  type MemberEvent,
  type MemberInput,
} from "./mailchimp-store";

export type MailchimpEmulatorOptions = {
  now?: EmulatorClock;
  /** The data centre the account lives in; API keys end in `-<dc>`. */
  dc?: string;
  /** Simultaneous connections per API key or token (documented: 10). */
  maxConnections?: number;
  /** Added to every API answer, to model a slow account (default 0). */
  latencyMs?: number;
  /** Awaited by every API call once it holds a connection: a test holds connections open with it. */
  hold?: () => Promise<void>;
  accountName?: string;
  /** Webhook sender: deliver in the background (default) or only on `/__emulator/webhooks/flush`. */
  autoDeliverWebhooks?: boolean;
  /** Multiplies the webhook retry schedule (default 0.001: minutes become tens of milliseconds). */
  webhookBackoffScale?: number;
  /** How long the webhook sender waits for an answer (documented: 10 s). */
  webhookTimeoutMs?: number;
  /** Whether the validation GET must answer before a webhook is created (default true). */
  validateWebhookUrls?: boolean;
  logger?: boolean;
};

export type StartedMailchimpEmulator = {
  app: EmulatorKit["app"];
  store: MailchimpStore;
  webhooks: DeliveryQueue;
  batches: BatchRunner;
  baseUrl: string;
  /** A new API key for the account, as the account's API keys page makes one. */
  newApiKey: () => string;
  close: () => Promise<void>;
};

const API = "/3.0";
const MAX_COUNT = 1000;
const BATCH_SUBSCRIBE_MAX = 500;
const ERROR_DOCS = "https://mailchimp.com/developer/marketing/docs/errors/";
/** The webhook sender's retries after a failed delivery (UNVERIFIED schedule; documented total: 75 minutes). */
const WEBHOOK_RETRIES_MS = [60_000, 120_000, 300_000, 600_000, 900_000, 1_200_000, 1_320_000];
const DEFAULT_DC = "us6";
/** A new Mailchimp account has one audience; the emulator starts (and resets) with it. */
export const DEFAULT_AUDIENCE = { id: "a1b2c3d4e5", name: "Concord supporters" };

type Hook = {
  id: string;
  url: string;
  events: Record<"subscribe" | "unsubscribe" | "profile" | "cleaned" | "upemail" | "campaign", boolean>;
  sources: Record<ChangeSource, boolean>;
  list_id: string;
};

const problem = (status: number, title: string, detail: string, extra: Record<string, unknown> = {}) => ({
  type: ERROR_DOCS,
  title,
  status,
  detail,
  instance: randomBytes(16)
    .toString("hex")
    .replace(/(.{8})(.{4})(.{4})(.{4})(.{12})/, "$1-$2-$3-$4-$5"),
  ...extra,
});

const pathOf = (request: FastifyRequest): string => request.url.split("?")[0] ?? request.url;

/** `YYYY-MM-DD HH:MM:SS`, as webhook deliveries give `fired_at`. */
const firedAt = (d: Date): string => d.toISOString().replace("T", " ").slice(0, 19);

export function createMailchimpEmulator(options: MailchimpEmulatorOptions = {}) {
  const kit = createEmulatorKit({
    name: "mailchimp",
    bodyLimit: 256 * 1024 * 1024,
    ...(options.now ? { now: options.now } : {}),
    ...(options.logger === undefined ? {} : { logger: options.logger }),
  });
  const { app, now } = kit;
  const dc = options.dc ?? DEFAULT_DC;
  const maxConnections = options.maxConnections ?? 10;
  const latencyMs = options.latencyMs ?? 0;
  const accountName = options.accountName ?? "Concord Emulated Nonprofit";
  const accountId = randomBytes(12).toString("hex");
  const apiKeys = new Set<string>();
  const hooks = new Map<string, Hook>();
  const webhooks = new DeliveryQueue(
    {
      autoDeliver: options.autoDeliverWebhooks ?? true,
      timeoutMs: options.webhookTimeoutMs ?? 10_000,
      retryScheduleMs: WEBHOOK_RETRIES_MS,
      backoffScale: options.webhookBackoffScale ?? 0.001,
      delivered: (status) => status >= 200 && status < 300,
      user_agent: "MailChimp.com",
    },
    now,
  );
  const store = new MailchimpStore(now, (event) => {
    announce(event);
  });
  store.createAudience(DEFAULT_AUDIENCE);
  const oauth = new OAuth2Server({
    now,
    vendor_name: "Mailchimp",
    paths: { authorize: ["/oauth2/authorize"], token: "/oauth2/token" },
    // Mailchimp's access tokens do not expire; there is no refresh token.
    access_ttl_seconds: 100 * 365 * 86_400,
    refresh_ttl_ms: 0,
    refresh: "long_lived",
    default_scopes: [],
    offline_scope: "__never__",
    clients: [],
    strict_exchange: false,
    user_id: "emulator-user",
    token_type: "bearer",
    answer: () => ({ expires_in: 0, scope: null }),
  });
  const inFlight = new Map<string, number>();

  const newApiKey = (): string => {
    const key = `${randomBytes(16).toString("hex")}-${dc}`;
    apiKeys.add(key);
    return key;
  };

  // ---------------------------------------------------------------- webhooks out

  function announce(event: MemberEvent): void {
    for (const hook of hooks.values()) {
      if (hook.list_id !== event.list_id || !hook.events[event.type] || !hook.sources[event.source]) continue;
      const m = event.member;
      const data: Record<string, string> = {
        type: event.type,
        fired_at: firedAt(now()),
        // Mailchimp's own example gives a 10-hex id here, the length of `unique_email_id` (not the
        // subscriber hash the member endpoints take): a client must find the member otherwise.
        "data[id]": m.unique_email_id,
        "data[list_id]": event.list_id,
        "data[email]": m.email_address,
        "data[email_type]": m.email_type,
        "data[web_id]": String(m.web_id),
        "data[ip_opt]": m.ip_opt,
        "data[merges][EMAIL]": m.email_address,
      };
      for (const [tag, value] of Object.entries(m.merge_fields)) data[`data[merges][${tag}]`] = String(value);
      if (event.type === "unsubscribe") {
        data["data[action]"] = event.action;
        data["data[reason]"] = event.reason;
        if (event.campaign_id) data["data[campaign_id]"] = event.campaign_id;
      }
      if (event.type === "cleaned") {
        data["data[reason]"] = event.reason ?? "hard";
        if (event.campaign_id) data["data[campaign_id]"] = event.campaign_id;
      }
      if (event.type === "upemail") {
        data["data[new_id]"] = m.unique_email_id;
        data["data[new_email]"] = event.new_email;
        data["data[old_email]"] = event.old_email;
        delete data["data[email]"];
      }
      webhooks.enqueue({
        hook_id: hook.id,
        url: hook.url,
        content_type: "application/x-www-form-urlencoded",
        body: new URLSearchParams(data).toString(),
        type: event.type,
      });
    }
  }

  // ---------------------------------------------------------------- parsing, errors, auth, limits

  app.addContentTypeParser("application/x-www-form-urlencoded", { parseAs: "string" }, (_req, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)));
  });

  app.setErrorHandler((error: FastifyError | MailchimpError, request, reply) => {
    if (error instanceof MailchimpError)
      return reply
        .code(error.status)
        .header("allow", error.status === 405 ? "GET, PUT" : undefined)
        .type("application/problem+json")
        .send(problem(error.status, error.title, error.detail, error.errors ? { errors: error.errors } : {}));
    let status = 500;
    let title = "Internal Server Error";
    let detail = "An unexpected internal error has occurred. Please contact Support for more information.";
    if (error.code?.startsWith("FST_ERR_CTP_INVALID_JSON") || error instanceof SyntaxError) {
      status = 400;
      title = "JSON Parse Error";
      detail = `We encountered an unspecified JSON parsing error: ${error.message}`;
    } else if (error.code === "FST_ERR_CTP_EMPTY_JSON_BODY") {
      status = 400;
      title = "JSON Parse Error";
      detail = "The request body is empty; a JSON body is required.";
    } else if (typeof error.statusCode === "number" && error.statusCode < 500) {
      status = error.statusCode;
      title = "Bad Request";
      detail = error.message;
    }
    if (status === 500) request.log.error(error);
    return reply
      .code(status)
      .type("application/problem+json")
      .send(problem(status, title, detail));
  });

  app.setNotFoundHandler((request, reply) =>
    reply
      .code(404)
      .type("application/problem+json")
      .send(
        problem(
          404,
          "Resource Not Found",
          `The requested resource could not be found: ${request.method} ${pathOf(request)}.`,
        ),
      ),
  );

  /** Who is calling: the API key (HTTP Basic, any user name) or the OAuth token (`OAuth` or `Bearer`). */
  const caller = (authorization: string | undefined): string | null => {
    if (!authorization) return null;
    const basic = /^Basic\s+(\S+)$/i.exec(authorization.trim());
    if (basic) {
      const decoded = Buffer.from(basic[1]!, "base64").toString("utf8");
      const key = decoded.slice(decoded.indexOf(":") + 1);
      return apiKeys.has(key) ? `key:${key}` : null;
    }
    const token = /^(?:OAuth|Bearer)\s+(\S+)$/i.exec(authorization.trim());
    if (token && oauth.check(`Bearer ${token[1]}`).ok) return `token:${token[1]}`;
    return null;
  };
  const callers = new WeakMap<FastifyRequest, string>();

  app.addHook("onRequest", async (request: FastifyRequest, reply: FastifyReply) => {
    if (reply.sent || !pathOf(request).startsWith(`${API}/`)) return;
    const who = caller(request.headers.authorization);
    if (who === null)
      return reply
        .code(401)
        .type("application/problem+json")
        .send(
          problem(
            401,
            "API Key Invalid",
            "Your API key may be invalid, or you've attempted to access the wrong datacenter.",
          ),
        );
    const open = inFlight.get(who) ?? 0;
    if (open >= maxConnections)
      return reply
        .code(429)
        .type("application/problem+json")
        .send(
          problem(
            429,
            "Too Many Requests",
            `You have exceeded the limit of ${maxConnections} simultaneous connections.`,
          ),
        );
    inFlight.set(who, open + 1);
    callers.set(request, who);
    if (latencyMs > 0) await new Promise((resolve) => setTimeout(resolve, latencyMs));
    if (options.hold) await options.hold();
    return undefined;
  });
  app.addHook("onResponse", async (request: FastifyRequest) => {
    const who = callers.get(request);
    if (who === undefined) return;
    callers.delete(request);
    const open = (inFlight.get(who) ?? 1) - 1;
    if (open <= 0) inFlight.delete(who);
    else inFlight.set(who, open);
  });

  oauth.register(app);
  app.get("/oauth2/metadata", async (request, reply) => {
    const token = /^(?:OAuth|Bearer)\s+(\S+)$/i.exec(request.headers.authorization ?? "");
    if (!token || !oauth.check(`Bearer ${token[1]}`).ok)
      return reply
        .code(401)
        .send({ error: "invalid_token", error_description: "The access token is invalid." });
    const origin = `${request.protocol}://${request.headers.host ?? "127.0.0.1"}`;
    return {
      dc,
      role: "owner",
      accountname: accountName,
      user_id: 1,
      login: {
        email: "owner@example.org",
        login_id: 1,
        login_name: "owner",
        login_email: "owner@example.org",
      },
      login_url: `${origin}/login`,
      api_endpoint: origin,
    };
  });

  // ---------------------------------------------------------------- rendering

  const links = (href: string): { rel: string; href: string; method: string }[] => [
    { rel: "self", href: `https://${dc}.api.mailchimp.com/3.0${href}`, method: "GET" },
  ];

  const fullName = (m: Member): string =>
    [m.merge_fields["FNAME"], m.merge_fields["LNAME"]].filter((x) => x !== undefined && x !== "").join(" ");

  const renderMember = (audience: Audience, m: Member): Record<string, unknown> => ({
    id: m.id,
    email_address: m.email_address,
    unique_email_id: m.unique_email_id,
    contact_id: m.contact_id,
    full_name: fullName(m),
    web_id: m.web_id,
    email_type: m.email_type,
    status: m.status,
    ...(m.status === "unsubscribed" && m.unsubscription ? { unsubscribe_reason: unsubscribeReason(m) } : {}),
    consents_to_one_to_one_messaging: true,
    merge_fields: { ...m.merge_fields },
    interests: { ...m.interests },
    stats: { avg_open_rate: 0, avg_click_rate: 0 },
    ip_signup: m.ip_signup,
    timestamp_signup: m.timestamp_signup,
    ip_opt: m.ip_opt,
    timestamp_opt: m.timestamp_opt,
    member_rating: 2,
    last_changed: m.last_changed,
    language: m.language,
    vip: m.vip,
    email_client: "",
    location: { latitude: 0, longitude: 0, gmtoff: 0, dstoff: 0, country_code: "", timezone: "", region: "" },
    marketing_permissions: audience.permissions.map((p) => ({
      marketing_permission_id: p.marketing_permission_id,
      text: p.text,
      enabled: m.marketing_permissions[p.marketing_permission_id] === true,
    })),
    source: m.source,
    tags_count: m.tags.size,
    // "Returns up to 50 tags applied to this member" (spec): the rest only from the member's tags.
    tags: [...m.tags.keys()]
      .slice(0, 50)
      .map((id) => ({ id, name: audience.tags.find((t) => t.id === id)?.name ?? "" })),
    list_id: audience.id,
    _links: links(`/lists/${audience.id}/members/${m.id}`),
  });

  /** Mailchimp's words for why a member left (UNVERIFIED wording beyond the documented admin one). */
  function unsubscribeReason(m: Member): string {
    const u = m.unsubscription!;
    if (u.reason === "abuse") return "Abuse (Reported as spam)";
    if (u.via === "admin") return "N/A (Unsubscribed by an admin)";
    if (u.via === "api") return "N/A (Unsubscribed via the API)";
    return u.text ?? "N/A (No reason given)";
  }

  /** The member as batch subscribe and tag batches render it (their schema has fewer fields). */
  /** Fields the batch answers' member schema does not have. */
  const NOT_IN_BATCH_MEMBER = new Set([
    "contact_id",
    "full_name",
    "web_id",
    "unsubscribe_reason",
    "consents_to_one_to_one_messaging",
    "marketing_permissions",
    "source",
  ]);

  /** The member as batch subscribe and tag batches render it (their schema has fewer fields). */
  const renderBatchMember = (audience: Audience, m: Member): Record<string, unknown> => {
    const full = renderMember(audience, m);
    const location = Object.entries(full["location"] as Record<string, unknown>).filter(
      ([k]) => k !== "region",
    );
    return {
      ...Object.fromEntries(Object.entries(full).filter(([k]) => !NOT_IN_BATCH_MEMBER.has(k))),
      status: m.status === "archived" ? (m.archived_from ?? "subscribed") : m.status,
      location: Object.fromEntries(location),
    };
  };

  const renderAudience = (a: Audience): Record<string, unknown> => {
    const members = [...a.members.values()];
    const count = (s: string) => members.filter((m) => m.status === s).length;
    return {
      id: a.id,
      web_id: a.web_id,
      name: a.name,
      contact: {
        company: accountName,
        address1: "1 Example Street",
        address2: "",
        city: "Springfield",
        state: "",
        zip: "00000",
        country: "US",
        phone: "",
      },
      permission_reminder: a.permission_reminder,
      use_archive_bar: true,
      campaign_defaults: { from_name: a.from_name, from_email: a.from_email, subject: "", language: "en" },
      notify_on_subscribe: "",
      notify_on_unsubscribe: "",
      date_created: a.date_created,
      list_rating: 0,
      email_type_option: false,
      subscribe_url_short: `http://eepurl.com/${a.web_id}`,
      subscribe_url_long: `https://example.${dc}.list-manage.com/subscribe?u=${accountId}&id=${a.id}`,
      beamer_address: `${a.id}@inbound.mailchimp.com`,
      visibility: "prv",
      double_optin: a.double_optin,
      has_welcome: false,
      marketing_permissions: a.marketing_permissions_enabled,
      modules: [],
      stats: {
        member_count: count("subscribed"),
        total_contacts: members.length,
        unsubscribe_count: count("unsubscribed"),
        cleaned_count: count("cleaned"),
        member_count_since_send: count("subscribed"),
        unsubscribe_count_since_send: count("unsubscribed"),
        cleaned_count_since_send: count("cleaned"),
        campaign_count: 0,
        campaign_last_sent: "",
        merge_field_count: a.merge_fields.length,
        avg_sub_rate: 0,
        avg_unsub_rate: 0,
        target_sub_rate: 0,
        open_rate: 0,
        click_rate: 0,
        last_sub_date: "",
        last_unsub_date: "",
      },
      _links: links(`/lists/${a.id}`),
    };
  };

  const renderHook = (h: Hook) => ({ ...h, _links: links(`/lists/${h.list_id}/webhooks/${h.id}`) });

  // ---------------------------------------------------------------- query parsing

  const query = (request: FastifyRequest): Record<string, string | undefined> =>
    request.query as Record<string, string | undefined>;

  const paging = (request: FastifyRequest): { count: number; offset: number } => {
    const q = query(request);
    const count = q.count === undefined ? 10 : Number(q.count);
    const offset = q.offset === undefined ? 0 : Number(q.offset);
    if (!Number.isInteger(count) || count < 1 || count > MAX_COUNT)
      throw new MailchimpError(400, "Invalid Resource", `count must be an integer from 1 to ${MAX_COUNT}.`, [
        { field: "count", message: `Must be at most ${MAX_COUNT}.` },
      ]);
    if (!Number.isInteger(offset) || offset < 0)
      throw new MailchimpError(400, "Invalid Resource", "offset must be a non-negative integer.", [
        { field: "offset", message: "Must be at least 0." },
      ]);
    return { count, offset };
  };

  const timeParam = (name: string, value: string | undefined): number | undefined => {
    if (value === undefined) return undefined;
    const t = Date.parse(value);
    if (Number.isNaN(t))
      throw new MailchimpError(
        400,
        "Invalid Resource",
        `${name} must be an ISO 8601 time, e.g. 2015-10-21T15:41:36+00:00.`,
        [{ field: name, message: "Invalid date" }],
      );
    return t;
  };

  const body = (request: FastifyRequest): Record<string, unknown> => {
    const b = request.body;
    if (b === null || typeof b !== "object" || Array.isArray(b))
      throw new MailchimpError(400, "Invalid Resource", "The request body must be a JSON object.");
    return b as Record<string, unknown>;
  };

  /** Every change through the API is the API's (Mailchimp's webhook source `api`). */
  const sourceOf = (_request: FastifyRequest): ChangeSource => "api";

  // ---------------------------------------------------------------- root, lists

  app.get(`${API}/`, async () => ({
    account_id: accountId,
    login_id: "1",
    account_name: accountName,
    email: "owner@example.org",
    first_name: "Account",
    last_name: "Owner",
    username: "owner",
    role: "owner",
    member_since: "2020-01-01T00:00:00+00:00",
    pricing_plan_type: "monthly",
    account_timezone: "UTC",
    account_industry: "Nonprofit",
    contact: {
      company: accountName,
      addr1: "1 Example Street",
      city: "Springfield",
      state: "",
      zip: "00000",
      country: "US",
    },
    total_subscribers: [...store.audiences.values()].reduce((n, a) => n + a.members.size, 0),
    _links: links("/"),
  }));
  app.get(`${API}/ping`, async () => ({ health_status: "Everything's Chimpy!" }));

  app.get(`${API}/lists`, async (request) => {
    const { count, offset } = paging(request);
    const all = [...store.audiences.values()];
    return {
      lists: all.slice(offset, offset + count).map(renderAudience),
      total_items: all.length,
      constraints: { may_create: true, max_instances: 100, current_total_instances: all.length },
      _links: links("/lists"),
    };
  });
  app.get(`${API}/lists/:list_id`, async (request) =>
    renderAudience(store.audience((request.params as { list_id: string }).list_id)),
  );

  // ---------------------------------------------------------------- members

  const listIdOf = (request: FastifyRequest): Audience =>
    store.audience((request.params as { list_id: string }).list_id);

  app.get(`${API}/lists/:list_id/members`, async (request) => {
    const audience = listIdOf(request);
    const q = query(request);
    const { count, offset } = paging(request);
    const statuses = ["subscribed", "unsubscribed", "cleaned", "pending", "transactional", "archived"];
    if (q.status !== undefined && !statuses.includes(q.status))
      throw new MailchimpError(400, "Invalid Resource", `status must be one of ${statuses.join(", ")}.`, [
        { field: "status", message: "Invalid status" },
      ]);
    const since = timeParam("since_last_changed", q.since_last_changed);
    const before = timeParam("before_last_changed", q.before_last_changed);
    const unsubSince = timeParam("unsubscribed_since", q.unsubscribed_since);
    let members = [...audience.members.values()].filter((m) =>
      q.status === undefined ? m.status !== "archived" : m.status === q.status,
    );
    if (since !== undefined) members = members.filter((m) => Date.parse(m.last_changed) > since);
    if (before !== undefined) members = members.filter((m) => Date.parse(m.last_changed) < before);
    if (unsubSince !== undefined)
      members = members.filter(
        (m) =>
          m.status === "unsubscribed" &&
          m.unsubscription !== null &&
          Date.parse(m.unsubscription.at) > unsubSince,
      );
    if (q.sort_field !== undefined) {
      const field = q.sort_field as "timestamp_opt" | "timestamp_signup" | "last_changed";
      if (!["timestamp_opt", "timestamp_signup", "last_changed"].includes(field))
        throw new MailchimpError(
          400,
          "Invalid Resource",
          "sort_field must be timestamp_opt, timestamp_signup or last_changed.",
        );
      const dir = q.sort_dir === "DESC" ? -1 : 1;
      members.sort((a, b) => (a[field] < b[field] ? -dir : a[field] > b[field] ? dir : 0));
    }
    return {
      members: members.slice(offset, offset + count).map((m) => renderMember(audience, m)),
      list_id: audience.id,
      total_items: members.length,
      _links: links(`/lists/${audience.id}/members`),
    };
  });

  app.get(`${API}/lists/:list_id/members/:hash`, async (request) => {
    const audience = listIdOf(request);
    return renderMember(audience, store.member(audience, (request.params as { hash: string }).hash));
  });

  const skipMerge = (request: FastifyRequest): boolean => query(request).skip_merge_validation === "true";

  app.post(`${API}/lists/:list_id/members`, async (request) => {
    const audience = listIdOf(request);
    const b = body(request) as MemberInput;
    if (typeof b.email_address !== "string" || typeof b.status !== "string")
      throw new MailchimpError(
        400,
        "Invalid Resource",
        "The resource submitted could not be validated. For field-specific details, see the 'errors' array.",
        [
          ...(typeof b.email_address !== "string"
            ? [{ field: "email_address", message: "This value should not be blank." }]
            : []),
          ...(typeof b.status !== "string"
            ? [{ field: "status", message: "This value should not be blank." }]
            : []),
        ],
      );
    const existing = store.findMember(audience, b.email_address);
    if (existing && existing.status !== "archived")
      throw new MailchimpError(
        400,
        "Member Exists",
        `${b.email_address} is already a list member. Use PUT to insert or update list members.`,
      );
    if (existing)
      return renderMember(audience, store.updateMember(audience, existing, b, { source: sourceOf(request) }));
    return renderMember(
      audience,
      store.addMember(
        audience,
        { ...b, email_address: b.email_address },
        {
          status: b.status,
          source: sourceOf(request),
          label: "API - Generic",
          skipMergeValidation: skipMerge(request),
        },
      ),
    );
  });

  app.put(`${API}/lists/:list_id/members/:hash`, async (request) => {
    const audience = listIdOf(request);
    const hash = (request.params as { hash: string }).hash;
    const b = body(request) as MemberInput;
    if (typeof b.email_address !== "string" || typeof b.status_if_new !== "string")
      throw new MailchimpError(
        400,
        "Invalid Resource",
        "The resource submitted could not be validated. For field-specific details, see the 'errors' array.",
        [
          ...(typeof b.email_address !== "string"
            ? [{ field: "email_address", message: "This value should not be blank." }]
            : []),
          ...(typeof b.status_if_new !== "string"
            ? [{ field: "status_if_new", message: "This value should not be blank." }]
            : []),
        ],
      );
    const existing = store.findMember(audience, hash);
    if (existing)
      return renderMember(audience, store.updateMember(audience, existing, b, { source: sourceOf(request) }));
    if (!hash.includes("@") && subscriberHash(b.email_address) !== hash.toLowerCase())
      throw new MailchimpError(
        400,
        "Invalid Resource",
        "The subscriber hash in the path is not the MD5 hash of the lower-cased email_address.",
      );
    return renderMember(
      audience,
      store.addMember(
        audience,
        { ...b, email_address: b.email_address },
        {
          status: b.status ?? b.status_if_new,
          source: sourceOf(request),
          label: "API - Generic",
          skipMergeValidation: skipMerge(request),
        },
      ),
    );
  });

  app.patch(`${API}/lists/:list_id/members/:hash`, async (request) => {
    const audience = listIdOf(request);
    const member = store.member(audience, (request.params as { hash: string }).hash);
    const b = body(request) as MemberInput;
    if (b.status === "transactional" || b.status === "archived")
      throw new MailchimpError(
        400,
        "Invalid Resource",
        "status must be subscribed, unsubscribed, cleaned or pending.",
        [{ field: "status", message: "Invalid status" }],
      );
    return renderMember(audience, store.updateMember(audience, member, b, { source: sourceOf(request) }));
  });

  app.delete(`${API}/lists/:list_id/members/:hash`, async (request, reply) => {
    const audience = listIdOf(request);
    const member = store.member(audience, (request.params as { hash: string }).hash);
    store.archive(audience, member, sourceOf(request));
    return reply.code(204).send();
  });

  app.post(`${API}/lists/:list_id/members/:hash/actions/delete-permanent`, async (request, reply) => {
    const audience = listIdOf(request);
    store.forget(audience, store.memberByHash(audience, (request.params as { hash: string }).hash));
    return reply.code(204).send();
  });

  app.get(`${API}/lists/:list_id/members/:hash/tags`, async (request) => {
    const audience = listIdOf(request);
    const member = store.member(audience, (request.params as { hash: string }).hash);
    const { count, offset } = paging(request);
    const tags = [...member.tags.entries()].map(([id, at]) => ({
      id,
      name: audience.tags.find((t) => t.id === id)?.name ?? "",
      date_added: at,
    }));
    return {
      tags: tags.slice(offset, offset + count),
      total_items: tags.length,
      _links: links(`/lists/${audience.id}/members/${member.id}/tags`),
    };
  });

  app.post(`${API}/lists/:list_id/members/:hash/tags`, async (request, reply) => {
    const audience = listIdOf(request);
    const member = store.memberByHash(audience, (request.params as { hash: string }).hash);
    const tags = body(request)["tags"];
    if (
      !Array.isArray(tags) ||
      tags.some((t) => typeof t?.name !== "string" || (t.status !== "active" && t.status !== "inactive"))
    )
      throw new MailchimpError(
        400,
        "Invalid Resource",
        'tags must be an array of {"name": string, "status": "active" | "inactive"}.',
        [{ field: "tags", message: "Invalid tags" }],
      );
    store.setTags(audience, member, tags as { name: string; status: string }[]);
    return reply.code(204).send();
  });

  // ---------------------------------------------------------------- batch subscribe

  app.post(`${API}/lists/:list_id`, async (request) => {
    const audience = listIdOf(request);
    const b = body(request);
    const members = b["members"];
    if (!Array.isArray(members))
      throw new MailchimpError(400, "Invalid Resource", "members must be an array.", [
        { field: "members", message: "Required" },
      ]);
    if (members.length > BATCH_SUBSCRIBE_MAX)
      throw new MailchimpError(
        400,
        "Invalid Resource",
        `You may only send up to ${BATCH_SUBSCRIBE_MAX} members per request.`,
        [{ field: "members", message: `Must have at most ${BATCH_SUBSCRIBE_MAX} items.` }],
      );
    const updateExisting = b["update_existing"] === true;
    const created: Member[] = [];
    const updated: Member[] = [];
    const errors: Record<string, unknown>[] = [];
    const seen = new Set<string>();
    for (const raw of members as MemberInput[]) {
      const email = typeof raw?.email_address === "string" ? raw.email_address.trim() : "";
      const fail = (
        error: string,
        code: "ERROR_CONTACT_EXISTS" | "ERROR_GENERIC",
        field = "",
        field_message = "",
      ) => errors.push({ email_address: email, error, error_code: code, field, field_message });
      if (email === "" || !isValidEmail(email)) {
        fail(
          `${email || "(no address)"} looks fake or invalid, please enter a real email address.`,
          "ERROR_GENERIC",
          "email_address",
          "Invalid email",
        );
        continue;
      }
      const hash = subscriberHash(email);
      if (seen.has(hash)) {
        fail(`${email} appears more than once in this batch.`, "ERROR_GENERIC", "email_address", "Duplicate");
        continue;
      }
      seen.add(hash);
      const existing = audience.members.get(hash);
      try {
        if (existing) {
          if (!updateExisting) {
            fail(
              `${email} is already a list member, do you want to update? please provide update_existing:true in the request body`,
              "ERROR_CONTACT_EXISTS",
            );
            continue;
          }
          updated.push(store.updateMember(audience, existing, raw, { source: "api" }));
        } else {
          if (typeof raw.status !== "string") {
            fail(`${email}: status is required for a new member.`, "ERROR_GENERIC", "status", "Required");
            continue;
          }
          created.push(
            store.addMember(
              audience,
              { ...raw, email_address: email },
              {
                status: raw.status,
                source: "api",
                label: "API - Generic",
                skipMergeValidation: skipMerge(request),
              },
            ),
          );
        }
      } catch (error) {
        if (!(error instanceof MailchimpError)) throw error;
        const first = error.errors?.[0];
        fail(error.detail, "ERROR_GENERIC", first?.field ?? "", first?.message ?? error.title);
      }
    }
    return {
      new_members: created.map((m) => renderBatchMember(audience, m)),
      updated_members: updated.map((m) => renderBatchMember(audience, m)),
      errors,
      total_created: created.length,
      total_updated: updated.length,
      error_count: errors.length,
      _links: links(`/lists/${audience.id}`),
    };
  });

  // ---------------------------------------------------------------- groups, tags, merge fields

  app.get(`${API}/lists/:list_id/interest-categories`, async (request) => {
    const audience = listIdOf(request);
    const { count, offset } = paging(request);
    return {
      list_id: audience.id,
      categories: audience.categories.slice(offset, offset + count).map((c) => ({
        list_id: audience.id,
        ...c,
        _links: links(`/lists/${audience.id}/interest-categories/${c.id}`),
      })),
      total_items: audience.categories.length,
      _links: links(`/lists/${audience.id}/interest-categories`),
    };
  });

  app.get(`${API}/lists/:list_id/interest-categories/:category_id/interests`, async (request) => {
    const audience = listIdOf(request);
    const categoryId = (request.params as { category_id: string }).category_id;
    if (!audience.categories.some((c) => c.id === categoryId))
      throw new MailchimpError(404, "Resource Not Found", "The requested resource could not be found.");
    const { count, offset } = paging(request);
    const interests = audience.interests.filter((i) => i.category_id === categoryId);
    return {
      interests: interests.slice(offset, offset + count).map((i) => ({
        category_id: i.category_id,
        list_id: audience.id,
        id: i.id,
        name: i.name,
        subscriber_count: String(
          [...audience.members.values()].filter(
            (m) => m.interests[i.id] === true && m.status === "subscribed",
          ).length,
        ),
        display_order: i.display_order,
        _links: links(`/lists/${audience.id}/interest-categories/${categoryId}/interests/${i.id}`),
      })),
      list_id: audience.id,
      category_id: categoryId,
      total_items: interests.length,
      _links: links(`/lists/${audience.id}/interest-categories/${categoryId}/interests`),
    };
  });

  const renderTag = (
    audience: Audience,
    t: { id: number; name: string; created_at: string; updated_at: string },
  ) => ({
    id: t.id,
    name: t.name,
    member_count: store.tagMembers(audience, t.id),
    type: "static",
    created_at: t.created_at,
    updated_at: t.updated_at,
    options: { match: "any", conditions: [] },
    list_id: audience.id,
    _links: links(`/lists/${audience.id}/segments/${t.id}`),
  });

  app.get(`${API}/lists/:list_id/segments`, async (request) => {
    const audience = listIdOf(request);
    const { count, offset } = paging(request);
    const q = query(request);
    // Tags are static segments; this emulator keeps no saved (condition) segments.
    const tags = q.type === undefined || q.type === "static" ? audience.tags : [];
    return {
      segments: tags.slice(offset, offset + count).map((t) => renderTag(audience, t)),
      list_id: audience.id,
      total_items: tags.length,
      _links: links(`/lists/${audience.id}/segments`),
    };
  });

  app.post(`${API}/lists/:list_id/segments`, async (request) => {
    const audience = listIdOf(request);
    const b = body(request);
    if (typeof b["name"] !== "string" || b["name"].trim() === "")
      throw new MailchimpError(400, "Invalid Resource", "name is required.", [
        { field: "name", message: "Required" },
      ]);
    const name = b["name"].trim();
    if (audience.tags.some((t) => t.name.toLowerCase() === name.toLowerCase()))
      throw new MailchimpError(400, "Invalid Resource", `A tag named ${name} already exists.`);
    const tag = store.tag(audience, name);
    for (const email of Array.isArray(b["static_segment"]) ? (b["static_segment"] as unknown[]) : []) {
      const m = typeof email === "string" ? store.findMember(audience, email) : undefined;
      if (m) store.setTags(audience, m, [{ name: tag.name, status: "active" }]);
    }
    return renderTag(audience, tag);
  });

  // A tag renamed or deleted (spec: PATCH / DELETE /lists/{list_id}/segments/{segment_id}); deleting
  // a tag takes it off its members, never the members themselves.
  const tagOf = (request: { params: unknown }, audience: ReturnType<typeof listIdOf>) => {
    const tag = audience.tags.find(
      (t) => String(t.id) === (request.params as { segment_id: string }).segment_id,
    );
    if (!tag)
      throw new MailchimpError(404, "Resource Not Found", "The requested resource could not be found.");
    return tag;
  };
  app.patch(`${API}/lists/:list_id/segments/:segment_id`, async (request) => {
    const audience = listIdOf(request);
    const tag = tagOf(request, audience);
    const b = body(request);
    if (typeof b["name"] !== "string" || b["name"].trim() === "")
      throw new MailchimpError(400, "Invalid Resource", "name is required.", [
        { field: "name", message: "Required" },
      ]);
    const name = b["name"].trim();
    if (audience.tags.some((t) => t !== tag && t.name.toLowerCase() === name.toLowerCase()))
      throw new MailchimpError(400, "Invalid Resource", `A tag named ${name} already exists.`);
    tag.name = name;
    return renderTag(audience, tag);
  });
  app.delete(`${API}/lists/:list_id/segments/:segment_id`, async (request, reply) => {
    const audience = listIdOf(request);
    const tag = tagOf(request, audience);
    for (const m of audience.members.values()) m.tags.delete(tag.id);
    audience.tags.splice(audience.tags.indexOf(tag), 1);
    return reply.code(204).send();
  });

  app.post(`${API}/lists/:list_id/segments/:segment_id`, async (request) => {
    const audience = listIdOf(request);
    const tag = audience.tags.find(
      (t) => String(t.id) === (request.params as { segment_id: string }).segment_id,
    );
    if (!tag)
      throw new MailchimpError(404, "Resource Not Found", "The requested resource could not be found.");
    const b = body(request);
    const add = Array.isArray(b["members_to_add"]) ? (b["members_to_add"] as unknown[]) : [];
    const remove = Array.isArray(b["members_to_remove"]) ? (b["members_to_remove"] as unknown[]) : [];
    if (add.length + remove.length > BATCH_SUBSCRIBE_MAX)
      throw new MailchimpError(
        400,
        "Invalid Resource",
        `You may only add or remove up to ${BATCH_SUBSCRIBE_MAX} members per request.`,
      );
    const added: Member[] = [];
    const removed: Member[] = [];
    const errors: { email_addresses: string[]; error: string }[] = [];
    const missing: string[] = [];
    for (const [list, out, status] of [
      [add, added, "active"],
      [remove, removed, "inactive"],
    ] as const) {
      for (const email of list) {
        const m = typeof email === "string" ? store.findMember(audience, email) : undefined;
        if (!m || m.status === "archived") {
          missing.push(String(email));
          continue;
        }
        const had = m.tags.has(tag.id);
        store.setTags(audience, m, [{ name: tag.name, status }]);
        if (had !== m.tags.has(tag.id)) out.push(m);
      }
    }
    if (missing.length > 0)
      errors.push({ email_addresses: missing, error: "Email addresses are not subscribed to the list" });
    return {
      members_added: added.map((m) => renderBatchMember(audience, m)),
      members_removed: removed.map((m) => renderBatchMember(audience, m)),
      errors,
      total_added: added.length,
      total_removed: removed.length,
      error_count: missing.length,
      _links: links(`/lists/${audience.id}/segments/${tag.id}`),
    };
  });

  app.get(`${API}/lists/:list_id/merge-fields`, async (request) => {
    const audience = listIdOf(request);
    const { count, offset } = paging(request);
    return {
      merge_fields: audience.merge_fields.slice(offset, offset + count).map((f) => ({
        ...f,
        options: {},
        help_text: "",
        list_id: audience.id,
        _links: links(`/lists/${audience.id}/merge-fields/${f.merge_id}`),
      })),
      list_id: audience.id,
      total_items: audience.merge_fields.length,
      _links: links(`/lists/${audience.id}/merge-fields`),
    };
  });

  // ---------------------------------------------------------------- webhooks

  app.get(`${API}/lists/:list_id/webhooks`, async (request) => {
    const audience = listIdOf(request);
    const mine = [...hooks.values()].filter((h) => h.list_id === audience.id);
    return {
      webhooks: mine.map(renderHook),
      list_id: audience.id,
      total_items: mine.length,
      _links: links(`/lists/${audience.id}/webhooks`),
    };
  });

  app.post(`${API}/lists/:list_id/webhooks`, async (request) => {
    const audience = listIdOf(request);
    const b = body(request);
    const url = b["url"];
    if (typeof url !== "string" || !/^https?:\/\//.test(url))
      throw new MailchimpError(
        400,
        "Invalid Resource",
        "The resource submitted could not be validated. For field-specific details, see the 'errors' array.",
        [{ field: "url", message: "Please enter a valid URL." }],
      );
    if ([...hooks.values()].some((h) => h.list_id === audience.id && h.url === url))
      throw new MailchimpError(
        400,
        "Invalid Resource",
        "A webhook with this URL already exists for this audience.",
      );
    if (options.validateWebhookUrls !== false) {
      // Mailchimp GETs the URL once and creates the webhook only if it answers.
      let answered: boolean;
      try {
        const res = await fetch(url, {
          method: "GET",
          headers: { "user-agent": "MailChimp.com WebHook Validator" },
          signal: AbortSignal.timeout(options.webhookTimeoutMs ?? 10_000),
        });
        await res.arrayBuffer();
        answered = res.ok;
      } catch {
        answered = false;
      }
      if (!answered)
        throw new MailchimpError(
          400,
          "Invalid Resource",
          "The resource submitted could not be validated. For field-specific details, see the 'errors' array.",
          [
            {
              field: "url",
              message: "We couldn't verify the URL is working. Please double check and try again.",
            },
          ],
        );
    }
    const flags = <K extends string>(
      given: unknown,
      keys: readonly K[],
      fallback: boolean,
    ): Record<K, boolean> => {
      const g = (given ?? {}) as Record<string, unknown>;
      return Object.fromEntries(keys.map((k) => [k, typeof g[k] === "boolean" ? g[k] : fallback])) as Record<
        K,
        boolean
      >;
    };
    const hook: Hook = {
      id: randomBytes(5).toString("hex"),
      url,
      events: flags(
        b["events"],
        ["subscribe", "unsubscribe", "profile", "cleaned", "upemail", "campaign"] as const,
        false,
      ),
      sources: flags(b["sources"], ["user", "admin", "api"] as const, false),
      list_id: audience.id,
    };
    if (b["events"] === undefined)
      for (const k of Object.keys(hook.events) as (keyof Hook["events"])[]) hook.events[k] = k !== "campaign";
    if (b["sources"] === undefined) hook.sources = { user: true, admin: true, api: false };
    hooks.set(hook.id, hook);
    return renderHook(hook);
  });

  app.delete(`${API}/lists/:list_id/webhooks/:webhook_id`, async (request, reply) => {
    const audience = listIdOf(request);
    const id = (request.params as { webhook_id: string }).webhook_id;
    const hook = hooks.get(id);
    if (!hook || hook.list_id !== audience.id)
      throw new MailchimpError(404, "Resource Not Found", "The requested resource could not be found.");
    hooks.delete(id);
    webhooks.dropHook(id);
    return reply.code(204).send();
  });

  // ---------------------------------------------------------------- batches

  const batches = new BatchRunner(app, now, API);
  /** Mailchimp's limit on batches not yet finished (release note, 2021-11-16). */
  const MAX_PENDING_BATCHES = 500;
  const renderBatch = (b: Batch) => ({
    ...Object.fromEntries(Object.entries(b).filter(([k]) => k !== "results")),
    _links: links(`/batches/${b.id}`),
  });
  app.post(`${API}/batches`, async (request, reply) => {
    const operations = parseOperations(request.body);
    if (typeof operations === "string")
      throw new MailchimpError(400, "Invalid Resource", operations, [
        { field: "operations", message: operations },
      ]);
    const pending = [...batches.batches.values()].filter((b) => b.status !== "finished").length;
    if (pending >= MAX_PENDING_BATCHES)
      return reply
        .code(429)
        .type("application/problem+json")
        .send(
          problem(429, "Too Many Requests", `You have more than ${MAX_PENDING_BATCHES} pending batches.`),
        );
    const origin = `${request.protocol}://${request.headers.host ?? "127.0.0.1"}`;
    return renderBatch(batches.submit(operations, request.headers.authorization ?? "", origin));
  });
  app.get(`${API}/batches`, async (request) => {
    const { count, offset } = paging(request);
    const all = [...batches.batches.values()];
    return {
      batches: all.slice(offset, offset + count).map(renderBatch),
      total_items: all.length,
      _links: links("/batches"),
    };
  });
  app.get(`${API}/batches/:batch_id`, async (request) => {
    const b = batches.batches.get((request.params as { batch_id: string }).batch_id);
    if (!b) throw new MailchimpError(404, "Resource Not Found", "The requested resource could not be found.");
    return renderBatch(b);
  });
  app.delete(`${API}/batches/:batch_id`, async (request, reply) => {
    const id = (request.params as { batch_id: string }).batch_id;
    if (!batches.batches.delete(id))
      throw new MailchimpError(404, "Resource Not Found", "The requested resource could not be found.");
    return reply.code(204).send();
  });
  // Where a finished batch's results download from (Mailchimp: a signed storage URL).
  app.get("/__emulator/batches/:batch_id/response.tar.gz", async (request, reply) => {
    const archive = batches.archive((request.params as { batch_id: string }).batch_id);
    if (!archive)
      return reply.code(404).send({ code: "not_found", message: "No finished batch with that id." });
    return reply.type("application/x-gzip").send(archive);
  });

  // ---------------------------------------------------------------- control API

  const controlError = (error: unknown): never => {
    if (error instanceof MailchimpError)
      throw new EmulatorControlError(error.title.toLowerCase().replace(/\s+/g, "_"), error.detail);
    throw error;
  };

  type SeedMember = {
    email: string;
    status: "subscribed" | "unsubscribed" | "cleaned" | "pending" | "transactional" | "archived";
    first_name?: string;
    last_name?: string;
    merge_fields?: Record<string, string>;
    interests?: string[];
    /** The GDPR marketing permissions given, by text or id (the audience's GDPR fields on). */
    marketing_permissions?: string[];
    tags?: string[];
    source?: string;
    timestamp_signup?: string;
    timestamp_opt?: string;
    last_changed?: string;
    unsubscribe?: {
      by: ChangeSource;
      via?: "link" | "one_click" | "spam_complaint" | "admin" | "api";
      reason?: string;
      at?: string;
    };
  };

  function seed(b: any): unknown {
    if (b === null || typeof b !== "object")
      throw new EmulatorControlError("invalid_seed", 'Seed with {"audience": {...}, "members": [...]}.');
    const created: Record<string, unknown> = {};
    if (b.audience !== undefined) {
      const a = b.audience;
      if (typeof a?.name !== "string")
        throw new EmulatorControlError("invalid_seed", '"audience.name" is required.');
      const existing = typeof a.id === "string" ? store.audiences.get(a.id) : undefined;
      if (existing) {
        existing.name = a.name;
        if (typeof a.double_optin === "boolean") existing.double_optin = a.double_optin;
        if (a.marketing_permissions === true) store.enableGdprFields(existing);
      }
      const audience = existing ?? store.createAudience(a);
      for (const c of Array.isArray(a.interest_categories) ? a.interest_categories : []) {
        const category = store.addCategory(audience, String(c.title), c.type ?? "checkboxes");
        for (const i of Array.isArray(c.interests) ? c.interests : [])
          store.addInterest(
            audience,
            category,
            String(typeof i === "string" ? i : i.name),
            typeof i === "object" ? i.id : undefined,
          );
      }
      // Merge fields an admin added to the audience (Audience fields and *|MERGE|* tags).
      for (const f of Array.isArray(a.merge_fields) ? a.merge_fields : []) {
        const tag = String(f?.tag ?? "");
        if (!/^[A-Z0-9_]{1,10}$/.test(tag))
          throw new EmulatorControlError(
            "invalid_seed",
            `Merge field tag ${JSON.stringify(tag)}: 1 to 10 of A-Z, 0-9, _.`,
          );
        if (audience.merge_fields.some((m) => m.tag === tag)) continue;
        audience.merge_fields.push({
          merge_id: Math.max(0, ...audience.merge_fields.map((m) => m.merge_id)) + 1,
          tag,
          name: String(f.name ?? tag),
          type: f.type === "url" ? "url" : "text",
          required: false,
          public: false,
          default_value: "",
          display_order: audience.merge_fields.length + 1,
        });
      }
      for (const t of Array.isArray(a.tags) ? a.tags : [])
        store.tag(
          audience,
          String(typeof t === "string" ? t : t.name),
          typeof t === "object" && typeof t.id === "number" ? t.id : undefined,
        );
      created["audience"] = {
        id: audience.id,
        name: audience.name,
        interests: audience.interests.map((i) => ({ id: i.id, name: i.name, category_id: i.category_id })),
        tags: audience.tags.map((t) => ({ id: t.id, name: t.name })),
      };
    }
    if (b.members !== undefined) {
      if (!Array.isArray(b.members))
        throw new EmulatorControlError("invalid_seed", '"members" must be an array.');
      const audience = b.list_id ? store.audiences.get(b.list_id) : [...store.audiences.values()][0];
      if (!audience) throw new EmulatorControlError("invalid_seed", "Seed an audience before its members.");
      const out: { id: string; email_address: string; contact_id: string }[] = [];
      for (const raw of b.members as SeedMember[]) {
        if (typeof raw?.email !== "string" || !isValidEmail(raw.email))
          throw new EmulatorControlError(
            "invalid_seed",
            `Member ${JSON.stringify(raw?.email)} needs a valid "email".`,
          );
        const hash = subscriberHash(raw.email);
        if (audience.members.has(hash))
          throw new EmulatorControlError("invalid_seed", `${raw.email} is already a member.`);
        const interestIds = (raw.interests ?? []).map((name) => {
          const found = audience.interests.find((i) => i.id === name || i.name === name);
          if (!found)
            throw new EmulatorControlError("invalid_seed", `No group (interest) "${name}" in the audience.`);
          return found.id;
        });
        const permissionIds = (raw.marketing_permissions ?? []).map((name) => {
          const found = audience.permissions.find(
            (p) => p.marketing_permission_id === name || p.text === name,
          );
          if (!found)
            throw new EmulatorControlError(
              "invalid_seed",
              `No marketing permission "${name}" in the audience (seed it with "marketing_permissions": true).`,
            );
          return found.marketing_permission_id;
        });
        let member: Member;
        try {
          member = store.addMember(
            audience,
            {
              email_address: raw.email,
              merge_fields: {
                ...(raw.first_name !== undefined ? { FNAME: raw.first_name } : {}),
                ...(raw.last_name !== undefined ? { LNAME: raw.last_name } : {}),
                ...(raw.merge_fields ?? {}),
              },
              interests: Object.fromEntries(interestIds.map((id) => [id, true])),
              marketing_permissions: permissionIds.map((id) => ({
                marketing_permission_id: id,
                enabled: true,
              })),
              tags: raw.tags ?? [],
              ...(raw.timestamp_signup !== undefined ? { timestamp_signup: raw.timestamp_signup } : {}),
            },
            {
              status: "transactional",
              source: "admin",
              label: raw.source ?? "Import",
              skipMergeValidation: true,
            },
          );
        } catch (error) {
          return controlError(error);
        }
        const at = raw.last_changed ?? member.last_changed;
        if (raw.status === "unsubscribed") {
          const u = raw.unsubscribe ?? { by: "user" as const };
          member.status = "unsubscribed";
          member.unsubscription = {
            source: u.by,
            reason: u.via === "spam_complaint" ? "abuse" : "manual",
            via: u.via ?? (u.by === "user" ? "link" : u.by),
            ...(u.reason !== undefined ? { text: u.reason } : {}),
            at: u.at ?? at,
          };
          member.compliance = u.via === "spam_complaint";
        } else if (raw.status === "archived") {
          member.archived_from = "subscribed";
          member.status = "archived";
        } else member.status = raw.status;
        member.timestamp_opt = raw.status === "subscribed" ? (raw.timestamp_opt ?? at) : "";
        member.last_changed = at;
        out.push({ id: member.id, email_address: member.email_address, contact_id: member.contact_id });
      }
      created["members"] = out;
    }
    return created;
  }

  function act(b: any): unknown {
    const audience = b?.list_id ? store.audiences.get(b.list_id) : [...store.audiences.values()][0];
    if (!audience) throw new EmulatorControlError("no_audience", "No audience: seed one first.");
    const email = typeof b?.email === "string" ? b.email : "";
    const member = (): Member => {
      const found = store.findMember(audience, email);
      if (!found)
        throw new EmulatorControlError("not_found", `No member ${email} in audience ${audience.id}.`);
      return found;
    };
    const answer = (m: Member) => ({ member: renderMember(audience, m) });
    try {
      switch (`${String(b?.as)}:${String(b?.action)}`) {
        case "contact:unsubscribe":
        case "contact:one_click_unsubscribe": {
          const m = member();
          if (m.status === "unsubscribed") return answer(m);
          store.setStatus(audience, m, "unsubscribed", "user", {
            unsubscription: {
              reason: "manual",
              via: b.action === "unsubscribe" ? "link" : "one_click",
              ...(typeof b.reason === "string" ? { text: b.reason } : {}),
              ...(typeof b.campaign_id === "string"
                ? { campaign_id: b.campaign_id }
                : { campaign_id: "c0ffee1234" }),
            },
          });
          return answer(m);
        }
        case "contact:spam_complaint": {
          const m = member();
          store.setStatus(audience, m, "unsubscribed", "user", {
            unsubscription: {
              reason: "abuse",
              via: "spam_complaint",
              campaign_id: typeof b.campaign_id === "string" ? b.campaign_id : "c0ffee1234",
            },
          });
          return answer(m);
        }
        case "contact:confirm_resubscribe":
        case "contact:confirm": {
          const m = member();
          if (m.status !== "pending" || m.confirmation_sent_at === null)
            throw new EmulatorControlError("not_pending", `${email} has no confirmation email waiting.`);
          // Mailchimp records the address the person confirmed from (spec: ip_opt).
          m.ip_opt = typeof b.ip === "string" ? b.ip : "203.0.113.9";
          store.setStatus(audience, m, "subscribed", "user", {});
          return answer(m);
        }
        case "contact:sign_up": {
          const existing = store.findMember(audience, email);
          const input: MemberInput = {
            merge_fields: {
              ...(b.first_name !== undefined ? { FNAME: String(b.first_name) } : {}),
              ...(b.last_name !== undefined ? { LNAME: String(b.last_name) } : {}),
            },
            interests: Object.fromEntries(
              ((b.interests ?? []) as string[]).map((id) => [
                audience.interests.find((i) => i.id === id || i.name === id)?.id ?? id,
                true,
              ]),
            ),
            tags: ((b.list_ids ?? b.tags ?? []) as string[]).map(
              (t) => audience.tags.find((x) => String(x.id) === t)?.name ?? t,
            ),
            ip_signup: "203.0.113.7",
            timestamp_signup: now().toISOString(),
          };
          const status = audience.double_optin ? "pending" : "subscribed";
          if (existing) {
            // A hosted form is the person's own act: it may bring back even an unsubscribed address.
            store.updateMember(audience, existing, input, { source: "user" });
            if (existing.status !== "subscribed") store.setStatus(audience, existing, status, "user", {});
            return answer(existing);
          }
          if (audience.forgotten.has(subscriberHash(email))) audience.forgotten.delete(subscriberHash(email));
          return answer(
            store.addMember(
              audience,
              { ...input, email_address: email },
              { status, source: "user", label: "Hosted Signup Form", skipMergeValidation: true },
            ),
          );
        }
        case "contact:update_profile": {
          const m = member();
          store.updateMember(
            audience,
            m,
            {
              ...(b.merge_fields !== undefined ? { merge_fields: b.merge_fields } : {}),
              ...(b.interests !== undefined ? { interests: b.interests } : {}),
              ...(b.marketing_permissions !== undefined
                ? { marketing_permissions: b.marketing_permissions }
                : {}),
            },
            { source: "user" },
          );
          return answer(m);
        }
        case "contact:change_email": {
          const m = member();
          store.changeEmail(audience, m, String(b.new_email ?? ""), "user");
          return answer(m);
        }
        case "admin:unsubscribe": {
          const m = member();
          store.setStatus(audience, m, "unsubscribed", "admin", {
            unsubscription: {
              reason: "manual",
              via: "admin",
              ...(typeof b.reason === "string" ? { text: b.reason } : {}),
            },
          });
          return answer(m);
        }
        case "admin:archive": {
          const m = member();
          store.archive(audience, m, "admin");
          return answer(m);
        }
        case "system:bounce": {
          const m = member();
          store.setStatus(audience, m, "cleaned", "api", { isNew: true });
          return answer(m);
        }
        default:
          throw new EmulatorControlError(
            "unknown_act",
            'Acts: contact unsubscribe | one_click_unsubscribe | spam_complaint | confirm | sign_up | update_profile | change_email; admin unsubscribe | archive; system bounce. Give {"as", "action", "email", ...}.',
          );
      }
    } catch (error) {
      return controlError(error);
    }
  }

  kit.registerControl({
    reset: () => {
      store.reset();
      store.createAudience(DEFAULT_AUDIENCE);
      oauth.reset();
      apiKeys.clear();
      hooks.clear();
      webhooks.reset();
      batches.reset();
      inFlight.clear();
    },
    seed: (b: any) => seed(b),
    token: (b: any) => {
      if (b?.kind === "oauth")
        return oauth.mint({ client_id: typeof b.client_id === "string" ? b.client_id : "concord" });
      return { api_key: newApiKey(), dc };
    },
    revoke: () => {
      const revoked = apiKeys.size;
      apiKeys.clear();
      return { ok: true, revoked_api_keys: revoked, ...oauth.revokeAll() };
    },
    act: (b: any) => act(b),
    state: () => ({
      account: { name: accountName, dc },
      audiences: [...store.audiences.values()].map((a) => ({
        ...renderAudience(a),
        interests: a.interests,
        categories: a.categories,
        tags: a.tags,
        members: [...a.members.values()].map((m) => ({
          ...renderMember(a, m),
          _emulator: {
            unsubscription: m.unsubscription,
            compliance: m.compliance,
            confirmation_sent_at: m.confirmation_sent_at,
          },
        })),
        forgotten: [...a.forgotten],
      })),
      confirmation_emails: store.confirmationEmails,
      webhooks: [...hooks.values()],
      deliveries: webhooks.deliveries,
      connections_in_flight: Object.fromEntries(inFlight),
    }),
  });
  app.post("/__emulator/webhooks/flush", async () => webhooks.flush());

  return { app, kit, store, webhooks, batches, newApiKey };
}

/** Starts the emulator on 127.0.0.1 (port 0 picks a free one) and returns its base URL. */
export async function startMailchimpEmulator(
  options: MailchimpEmulatorOptions & { port?: number } = {},
): Promise<StartedMailchimpEmulator> {
  const { port, ...rest } = options;
  const emulator = createMailchimpEmulator(rest);
  const baseUrl = await listenOnLoopback(emulator.app, port ?? 0);
  return {
    app: emulator.app,
    store: emulator.store,
    webhooks: emulator.webhooks,
    batches: emulator.batches,
    newApiKey: emulator.newApiKey,
    baseUrl,
    close: async () => {
      emulator.webhooks.close();
      await emulator.app.close();
    },
  };
}
