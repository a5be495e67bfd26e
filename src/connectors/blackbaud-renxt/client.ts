/**
 * The typed Blackbaud SKY API client for Raiser's Edge NXT: every call goes through the shared HTTP
 * client (limiter, OAuth 2.0, retry decision) with the `Bb-Api-Subscription-Key` header, and SKY's
 * failure answers are classified here (quota 403 versus permission 403, 429 with Retry-After).
 */
import type { z } from "zod";
import type { ConnectionSettings, ConnectorLimits, ConnectorResult, ConnectorRuntime } from "../connector";
import { createHttpClient, type HttpClient, type HttpResponse } from "../http/http-client";
import { createOAuth2Auth } from "../http/oauth2";
import type { CallBudget } from "../connector";
import { connectionBudget, connectionLimits, type CallPriority } from "../http/rate-limiter";
import { classifyStatus, parseRetryAfter, type FailureClass, type RetryRules } from "../http/retry-decision";
import { err, ok } from "../../core/result";
import {
  ConsentCollectionSchema,
  ConstituentCollectionSchema,
  ConstituentSchema,
  ConstituentSolicitCodeCollectionSchema,
  CreatedSchema,
  LatestGiftSchema,
  CustomFieldCategoryCollectionSchema,
  CustomFieldCollectionSchema,
  EmailAddressCollectionSchema,
  GatewayErrorSchema,
  ListCollectionSchema,
  ProblemDetailsSchema,
  RelationshipCollectionSchema,
  SearchResultCollectionSchema,
  SkyErrorSchema,
  SolicitCodeTableSchema,
  WebhookSubscriptionListSchema,
  WebhookSubscriptionSchema,
  type AppendIdsBody,
  type ConsentAddBody,
  type CustomField,
  type CustomFieldAddBody,
  type CustomFieldCollection,
  type CustomFieldEditBody,
  type ConsentRecord,
  type Constituent,
  type ConstituentAddBody,
  type ConstituentCollection,
  type ConstituentEditBody,
  type ConstituentSolicitCode,
  type EmailAddress,
  type EmailAddressAddBody,
  type EmailAddressEditBody,
  type LatestGift,
  type List,
  type Relationship,
  type SubscriptionAddBody,
  type WebhookSubscription,
} from "./schemas";

export const SKY_API_BASE_URL = "https://api.sky.blackbaud.com";
export const SKY_TOKEN_URL = "https://oauth2.sky.blackbaud.com/token";
export const SUBSCRIPTION_KEY_HEADER = "Bb-Api-Subscription-Key";

const DAY_MS = 86_400_000;
/** A guard on following `next_link`: 100,000 pages of 5,000 is far beyond any tenant. */
const MAX_PAGES = 100_000;
/** A Communication Preference list's page (`limit`): SKY's usual 500 (this API's own default is UNVERIFIED). */
const SKIP_PAGE = 500;
/**
 * Pages of one constituent's list read at most (10,000 records): a server that ignored `skip` would
 * otherwise answer the same full page until the day's quota was gone.
 */
const SKIP_PAGES_MAX = 20;

export type BlackbaudClientOptions = {
  settings: ConnectionSettings;
  runtime: ConnectorRuntime;
  limits: ConnectorLimits;
  rules?: RetryRules;
};

export type ConstituentQuery = {
  last_modified?: string;
  list_id?: string;
  limit: number;
};

export type BlackbaudClient = {
  /** Whether a subscription key is stored; SKY refuses every call without one. */
  hasSubscriptionKey: () => Promise<boolean>;
  listConstituents: (
    page: { query: ConstituentQuery } | { next_link: string },
    priority: CallPriority,
  ) => Promise<ConnectorResult<ConstituentCollection>>;
  getConstituent: (id: string, priority: CallPriority) => Promise<ConnectorResult<Constituent | null>>;
  searchByEmail: (email: string, priority: CallPriority) => Promise<ConnectorResult<string[]>>;
  createConstituent: (body: ConstituentAddBody) => Promise<ConnectorResult<string>>;
  editConstituent: (
    id: string,
    body: ConstituentEditBody,
    priority: CallPriority,
  ) => Promise<ConnectorResult<void>>;
  listEmailAddresses: (
    constituentId: string,
    priority: CallPriority,
  ) => Promise<ConnectorResult<EmailAddress[]>>;
  createEmailAddress: (body: EmailAddressAddBody) => Promise<ConnectorResult<string>>;
  editEmailAddress: (id: string, body: EmailAddressEditBody) => Promise<ConnectorResult<void>>;
  /** A postal address (Constituent API AddressAdd / AddressEdit). */
  createAddress: (body: Record<string, string | boolean | null>) => Promise<ConnectorResult<string>>;
  editAddress: (id: string, body: Record<string, string | boolean | null>) => Promise<ConnectorResult<void>>;
  /** A phone (PhoneAdd / PhoneEdit). */
  createPhone: (body: Record<string, string | boolean>) => Promise<ConnectorResult<string>>;
  editPhone: (id: string, body: Record<string, string | boolean>) => Promise<ConnectorResult<void>>;
  listRelationships: (
    constituentId: string,
    priority: CallPriority,
  ) => Promise<ConnectorResult<Relationship[]>>;
  /**
   * The email addresses of some constituents, inactive ones too, from the all-constituents list
   * (`GET /emailaddresses?constituent_id=…`, every page): one call for many constituents, behind
   * writes by that list's latency.
   */
  listEmailAddressesOf: (
    constituentIds: readonly string[],
    priority: CallPriority,
  ) => Promise<ConnectorResult<EmailAddress[]>>;
  /**
   * Every relationship row of every constituent from the all-constituents list (`GET /relationships`,
   * 5,000 a page), handed to `each` page by page; behind writes by that list's latency.
   */
  forEachRelationship: (
    each: (rows: readonly Relationship[]) => void,
    priority: CallPriority,
  ) => Promise<ConnectorResult<void>>;
  listConsents: (
    constituentId: string,
    mostRecentOnly: boolean,
    priority: CallPriority,
  ) => Promise<ConnectorResult<ConsentRecord[]>>;
  createConsent: (body: ConsentAddBody) => Promise<ConnectorResult<string>>;
  /** The tenant's Solicit Codes table (active entries). */
  solicitCodeTable: () => Promise<ConnectorResult<{ description: string; inactive?: boolean | undefined }[]>>;
  listSolicitCodes: (
    constituentId: string,
    priority: CallPriority,
  ) => Promise<ConnectorResult<ConstituentSolicitCode[]>>;
  listCustomFields: (
    constituentId: string,
    priority: CallPriority,
  ) => Promise<ConnectorResult<CustomField[]>>;
  /** The constituent's latest gift (giving summary), or null when it has none. */
  latestGift: (constituentId: string, priority: CallPriority) => Promise<ConnectorResult<LatestGift | null>>;
  /** Deletes the constituent (Constituent API DeleteConstituent). */
  deleteConstituent: (id: string) => Promise<ConnectorResult<void>>;
  /** Custom fields of every constituent changed since a moment, in one category (SKY lags ~30 min here). */
  listAllCustomFields: (
    page: { query: { category: string; last_modified: string; limit: number } } | { next_link: string },
  ) => Promise<ConnectorResult<CustomFieldCollection>>;
  customFieldCategories: () => Promise<ConnectorResult<{ name: string; type?: string | null | undefined }[]>>;
  createCustomField: (body: CustomFieldAddBody) => Promise<ConnectorResult<string>>;
  editCustomField: (id: string, body: CustomFieldEditBody) => Promise<ConnectorResult<void>>;
  listLists: () => Promise<ConnectorResult<List[]>>;
  appendIdsToList: (body: AppendIdsBody) => Promise<ConnectorResult<void>>;
  listSubscriptions: () => Promise<ConnectorResult<WebhookSubscription[]>>;
  createSubscription: (body: SubscriptionAddBody) => Promise<ConnectorResult<WebhookSubscription>>;
  deleteSubscription: (id: string) => Promise<ConnectorResult<void>>;
  limiter: CallBudget;
};

/** Reads SKY's failure answers into a retry class (pure; `now` turns "replenished in 00:06:46" into a time). */
export function classifyBlackbaudFailure(response: HttpResponse, now: Date): FailureClass {
  const message = failureMessage(response.body) ?? response.text;
  const retryAfter = parseRetryAfter(response.headers["retry-after"], now);
  if (response.status === 429) {
    const fromText = /try again in (\d+) second/i.exec(message);
    const ms = retryAfter ?? (fromText ? Number(fromText[1]) * 1000 : undefined);
    return ms === undefined ? { kind: "throttled" } : { kind: "throttled", retry_after_ms: ms };
  }
  if (
    response.status === 403 &&
    /call volume quota|quota will be replenished|out of .*quota/i.test(message)
  ) {
    const fromText = /replenished in (\d+):(\d{2}):(\d{2})/i.exec(message);
    const ms =
      retryAfter ??
      (fromText
        ? (Number(fromText[1]) * 3600 + Number(fromText[2]) * 60 + Number(fromText[3])) * 1000
        : undefined);
    return ms === undefined
      ? { kind: "quota_exceeded" }
      : { kind: "quota_exceeded", retry_at: new Date(now.getTime() + ms).toISOString() };
  }
  // A missing or wrong subscription key is a 401 too, but refreshing the token cannot fix it.
  if (response.status === 401 && /subscription key/i.test(message))
    return { kind: "permanent", code: "auth_invalid" };
  if (response.status === 415) return { kind: "permanent", code: "validation_failed" };
  return classifyStatus(response.status);
}

function failureMessage(body: unknown): string | undefined {
  const gateway = GatewayErrorSchema.safeParse(body);
  if (gateway.success) return gateway.data.message;
  if (Array.isArray(body)) {
    const first = SkyErrorSchema.safeParse(body[0]);
    if (first.success) return first.data.message ?? first.data.error_name ?? undefined;
  }
  const problem = ProblemDetailsSchema.safeParse(body);
  if (problem.success) return problem.data.detail ?? problem.data.title ?? undefined;
  return undefined;
}

/** Keeps a vendor `next_link` on our configured origin, so a token is never sent to another host. */
export function onBaseOrigin(baseUrl: string, link: string): string {
  const target = new URL(link, baseUrl);
  const base = new URL(baseUrl);
  return `${base.origin}${target.pathname}${target.search}`;
}

export function createBlackbaudClient(options: BlackbaudClientOptions): BlackbaudClient {
  const { settings, runtime, limits } = options;
  const baseUrl = settings.base_url ?? SKY_API_BASE_URL;
  const limiter = connectionBudget(runtime, connectionLimits(limits, settings.limits));
  const auth = createOAuth2Auth({
    token_url: settings.token_url ?? SKY_TOKEN_URL,
    credentials: settings.credentials,
    runtime,
    client_auth: "basic",
  });
  // Asked once a client (a session), not twice a call: the key changes only when an administrator
  // sets a new one, which the next session reads.
  let keyOfSession: Promise<string | undefined> | undefined;
  const subscriptionKey = (): Promise<string | undefined> =>
    (keyOfSession ??= settings.credentials.get().then(
      (creds) => {
        const key = creds["subscription_key"];
        return key && key.trim() !== "" ? key : undefined;
      },
      (error: unknown) => {
        keyOfSession = undefined;
        throw error;
      },
    ));
  const http: HttpClient = createHttpClient({
    base_url: baseUrl,
    limiter,
    auth,
    runtime,
    ...(settings.limits?.request_timeout_ms !== undefined
      ? { timeout_ms: settings.limits.request_timeout_ms }
      : {}),
    classify: (response) => classifyBlackbaudFailure(response, runtime.now()),
    headers: async () => {
      const key = await subscriptionKey();
      return key ? { [SUBSCRIPTION_KEY_HEADER]: key } : {};
    },
    ...(options.rules ? { rules: options.rules } : {}),
    next_quota_reset: (now) => new Date(now.getTime() + DAY_MS),
  });

  /** Every call first checks the subscription key: without it SKY answers 401 to everything. */
  const call = async <T>(
    req: Parameters<HttpClient["request"]>[0] & { schema?: z.ZodType<T> },
  ): Promise<ConnectorResult<{ status: number; body: T }>> => {
    if (!(await subscriptionKey())) {
      return err({
        code: "auth_invalid",
        message:
          "No Bb-Api-Subscription-Key is configured for this connection (credential subscription_key).",
      });
    }
    const res = await http.request<T>(req);
    return res.ok ? ok({ status: res.value.status, body: res.value.body }) : res;
  };

  const created = async (
    path: string,
    json: unknown,
    priority: CallPriority,
  ): Promise<ConnectorResult<string>> => {
    const res = await call({ method: "POST", path, json, priority, schema: CreatedSchema });
    return res.ok ? ok(res.value.body.id) : res;
  };
  const done = async (
    method: "PATCH" | "DELETE" | "POST",
    path: string,
    json: unknown,
    priority: CallPriority,
  ): Promise<ConnectorResult<void>> => {
    const res = await call({ method, path, ...(json === undefined ? {} : { json }), priority });
    return res.ok ? ok(undefined) : res;
  };
  const enc = encodeURIComponent;
  /** Reads a SKY collection to its end, following `next_link` (kept on the configured origin). */
  const everyPage = async <T>(
    path: string,
    query: NonNullable<Parameters<HttpClient["request"]>[0]["query"]>,
    priority: CallPriority,
    schema: z.ZodType<{ value: T[]; next_link?: string | null | undefined }>,
    each: (rows: readonly T[]) => void,
  ): Promise<ConnectorResult<void>> => {
    let res = await call({ method: "GET", path, query, priority, schema });
    for (let pages = 1; ; pages++) {
      if (!res.ok) return res;
      each(res.value.body.value);
      const link = res.value.body.next_link;
      if (!link || res.value.body.value.length === 0 || pages >= MAX_PAGES) return ok(undefined);
      res = await call({ method: "GET", path: onBaseOrigin(baseUrl, link), priority, schema });
    }
  };

  /**
   * Every page of a Communication Preference list (`limit`/`skip`, `count` before them): a long
   * history (a person who changed their mind each year for decades, a tenant's imported records)
   * must not hide a record past the first page. One call for almost every constituent.
   */
  const everySkipPage = async <T>(
    path: string,
    query: NonNullable<Parameters<HttpClient["request"]>[0]["query"]>,
    priority: CallPriority,
    schema: z.ZodType<{ value: T[]; count?: number | undefined }>,
  ): Promise<ConnectorResult<T[]>> => {
    const rows: T[] = [];
    for (let pages = 0; pages < SKIP_PAGES_MAX; pages++) {
      const res = await call({
        method: "GET",
        path,
        query: { ...query, limit: SKIP_PAGE, skip: rows.length },
        priority,
        schema,
      });
      if (!res.ok) return res;
      const page = res.value.body;
      rows.push(...page.value);
      if (page.value.length < SKIP_PAGE || (page.count !== undefined && rows.length >= page.count)) break;
    }
    return ok(rows);
  };

  return {
    limiter,
    hasSubscriptionKey: async () => (await subscriptionKey()) !== undefined,
    listConstituents: async (page, priority) => {
      const res =
        "next_link" in page
          ? await call({
              method: "GET",
              path: onBaseOrigin(baseUrl, page.next_link),
              priority,
              schema: ConstituentCollectionSchema,
            })
          : await call({
              method: "GET",
              path: "/constituent/v1/constituents",
              query: {
                ...(page.query.list_id
                  ? { list_id: page.query.list_id }
                  : {
                      include_inactive: true,
                      include_deceased: true,
                      ...(page.query.last_modified ? { last_modified: page.query.last_modified } : {}),
                    }),
                limit: page.query.limit,
              },
              priority,
              schema: ConstituentCollectionSchema,
            });
      return res.ok ? ok(res.value.body) : res;
    },
    getConstituent: async (id, priority) => {
      const res = await call({
        method: "GET",
        path: `/constituent/v1/constituents/${enc(id)}`,
        priority,
        schema: ConstituentSchema,
      });
      if (!res.ok) return res.error.code === "not_found" ? ok(null) : res;
      return ok(res.value.body);
    },
    searchByEmail: async (email, priority) => {
      const res = await call({
        method: "GET",
        path: "/constituent/v1/constituents/search",
        // Constituents only (by default an email search also returns non-constituent records), and
        // no names that merely sound like the text.
        query: {
          search_text: email,
          search_field: "email_address",
          include_inactive: true,
          include_non_constituents: false,
          strict_search: true,
          limit: 25,
        },
        priority,
        schema: SearchResultCollectionSchema,
      });
      // SKY answers 200 with an empty list for no match; a 404 (e.g. a gateway without the search
      // route) is read the same way rather than blocking every create.
      if (!res.ok) return res.error.code === "not_found" ? ok([]) : res;
      // A result whose address is another is not this person's record.
      const wanted = email.trim().toLowerCase();
      return ok(
        res.value.body.value
          .filter((r) => r.email === undefined || r.email === null || r.email.trim().toLowerCase() === wanted)
          .map((r) => r.id),
      );
    },
    createConstituent: (body) => created("/constituent/v1/constituents", body, "write"),
    editConstituent: (id, body, priority) =>
      done("PATCH", `/constituent/v1/constituents/${enc(id)}`, body, priority),
    listEmailAddresses: async (constituentId, priority) => {
      const res = await call({
        method: "GET",
        path: `/constituent/v1/constituents/${enc(constituentId)}/emailaddresses`,
        query: { include_inactive: true },
        priority,
        schema: EmailAddressCollectionSchema,
      });
      return res.ok ? ok(res.value.body.value) : res;
    },
    listEmailAddressesOf: async (constituentIds, priority) => {
      const rows: EmailAddress[] = [];
      // The spec's form: the parameter repeated ("constituent_id=280&constituent_id=1232").
      const ids = constituentIds.map((id) => `constituent_id=${enc(id)}`).join("&");
      const read = await everyPage(
        `/constituent/v1/emailaddresses?${ids}`,
        { include_inactive: true, limit: 5000 },
        priority,
        EmailAddressCollectionSchema,
        (page) => rows.push(...page),
      );
      return read.ok ? ok(rows) : read;
    },
    forEachRelationship: (each, priority) =>
      everyPage(
        "/constituent/v1/relationships",
        { limit: 5000 },
        priority,
        RelationshipCollectionSchema,
        each,
      ),
    createEmailAddress: (body) => created("/constituent/v1/emailaddresses", body, "write"),
    editEmailAddress: (id, body) => done("PATCH", `/constituent/v1/emailaddresses/${enc(id)}`, body, "write"),
    createAddress: (body) => created("/constituent/v1/addresses", body, "write"),
    editAddress: (id, body) => done("PATCH", `/constituent/v1/addresses/${enc(id)}`, body, "write"),
    createPhone: (body) => created("/constituent/v1/phones", body, "write"),
    editPhone: (id, body) => done("PATCH", `/constituent/v1/phones/${enc(id)}`, body, "write"),
    listRelationships: async (constituentId, priority) => {
      const res = await call({
        method: "GET",
        path: `/constituent/v1/constituents/${enc(constituentId)}/relationships`,
        query: { limit: 5000 },
        priority,
        schema: RelationshipCollectionSchema,
      });
      return res.ok ? ok(res.value.body.value) : res;
    },
    listConsents: (constituentId, mostRecentOnly, priority) =>
      everySkipPage(
        `/commpref/v1/constituents/${enc(constituentId)}/consents`,
        { most_recent_only: mostRecentOnly },
        priority,
        ConsentCollectionSchema,
      ),
    createConsent: (body) => created("/commpref/v1/consent/consents", body, "consent"),
    solicitCodeTable: async () => {
      const res = await call({
        method: "GET",
        path: "/commpref/v1/solicitcodes",
        // Retired entries too: a constituent who holds one still holds it.
        query: { include_inactive: true },
        priority: "read",
        schema: SolicitCodeTableSchema,
      });
      return res.ok ? ok(res.value.body.value) : res;
    },
    latestGift: async (constituentId, priority) => {
      const res = await call({
        method: "GET",
        path: `/constituent/v1/constituents/${enc(constituentId)}/givingsummary/latest`,
        priority,
        schema: LatestGiftSchema,
      });
      if (!res.ok) return res;
      const gift = res.value.body;
      return ok(typeof gift.date === "string" && gift.date !== "" ? gift : null);
    },
    deleteConstituent: (id) =>
      done("DELETE", `/constituent/v1/constituents/${enc(id)}`, undefined, "consent"),
    listSolicitCodes: (constituentId, priority) =>
      everySkipPage(
        `/commpref/v1/constituents/${enc(constituentId)}/constituentsolicitcodes`,
        {},
        priority,
        ConstituentSolicitCodeCollectionSchema,
      ),
    listCustomFields: async (constituentId, priority) => {
      const res = await call({
        method: "GET",
        path: `/constituent/v1/constituents/${enc(constituentId)}/customfields`,
        priority,
        schema: CustomFieldCollectionSchema,
      });
      return res.ok ? ok(res.value.body.value) : res;
    },
    listAllCustomFields: async (page) => {
      const res =
        "next_link" in page
          ? await call({
              method: "GET",
              path: onBaseOrigin(baseUrl, page.next_link),
              priority: "read",
              schema: CustomFieldCollectionSchema,
            })
          : await call({
              method: "GET",
              path: "/constituent/v1/constituents/customfields",
              query: page.query,
              priority: "read",
              schema: CustomFieldCollectionSchema,
            });
      return res.ok ? ok(res.value.body) : res;
    },
    customFieldCategories: async () => {
      const res = await call({
        method: "GET",
        path: "/constituent/v1/constituents/customfields/categories/details",
        priority: "read",
        schema: CustomFieldCategoryCollectionSchema,
      });
      return res.ok ? ok(res.value.body.value) : res;
    },
    createCustomField: (body) => created("/constituent/v1/constituents/customfields", body, "consent"),
    editCustomField: (id, body) =>
      done("PATCH", `/constituent/v1/constituents/customfields/${enc(id)}`, body, "consent"),
    listLists: async () => {
      const lists: List[] = [];
      let next: string | undefined;
      for (let guard = 0; guard < 1000; guard++) {
        const res = next
          ? await call({
              method: "GET",
              path: onBaseOrigin(baseUrl, next),
              priority: "read",
              schema: ListCollectionSchema,
            })
          : await call({
              method: "GET",
              path: "/list/v1/lists",
              query: { list_type: "Constituent", limit: 5000 },
              priority: "read",
              schema: ListCollectionSchema,
            });
        if (!res.ok) return res;
        lists.push(...res.value.body.value);
        next = res.value.body.next_link ?? undefined;
        if (!next || res.value.body.value.length === 0) break;
      }
      return ok(lists);
    },
    appendIdsToList: (body) => done("POST", "/list/v1/appendidstolist", body, "write"),
    listSubscriptions: async () => {
      const res = await call({
        method: "GET",
        path: "/webhook/v1/subscriptions",
        priority: "read",
        schema: WebhookSubscriptionListSchema,
      });
      return res.ok ? ok(res.value.body) : res;
    },
    createSubscription: async (body) => {
      const res = await call({
        method: "POST",
        path: "/webhook/v1/subscriptions",
        json: body,
        priority: "write",
        schema: WebhookSubscriptionSchema,
      });
      return res.ok ? ok(res.value.body) : res;
    },
    deleteSubscription: (id) => done("DELETE", `/webhook/v1/subscriptions/${enc(id)}`, undefined, "write"),
  };
}
