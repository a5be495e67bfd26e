/**
 * A typed client for the Constant Contact V3 endpoints Concord uses, over the shared HTTP client:
 * OAuth2 with rotating refresh tokens, the declared rate limit and daily quota, and Constant
 * Contact's 429 bodies told apart (`throttled` waits, `quota_exceeded` defers to 00:00 UTC).
 */
import type { z } from "zod";
import type { ConnectionSettings, ConnectorLimits, ConnectorResult, ConnectorRuntime } from "../connector";
import { createHttpClient, type HttpClient, type HttpResponse } from "../http/http-client";
import { createOAuth2Auth } from "../http/oauth2";
import { connectionBudget, connectionLimits, type CallPriority, type QuotaUsage } from "../http/rate-limiter";
import { classifyStatus, parseRetryAfter, type FailureClass } from "../http/retry-decision";
import { ok } from "../../core/result";
import {
  CcActivitySchema,
  CcContactSchema,
  CcContactsPageSchema,
  CcCreatedContactSchema,
  CcListsPageSchema,
  CcTrackingPageSchema,
  errorItems,
  type CcActivity,
  type CcContact,
  type CcContactsPage,
} from "./schemas";

export const CONSTANT_CONTACT_BASE_URL = "https://api.cc.email/v3";
export const CONSTANT_CONTACT_TOKEN_URL = "https://authz.constantcontact.com/oauth2/default/v1/token";

/** Constant Contact's answer to "too many queued activities" carries no wait; a minute lets some drain. */
const QUEUED_ACTIVITIES_WAIT_MS = 60_000;

/** Reads a failed Constant Contact answer: both rate limits are 429, told apart by `error_key`. */
export function classifyConstantContact(response: HttpResponse, now: Date): FailureClass {
  if (response.status === 429) {
    const keys = errorItems(response.body).map((e) => e.error_key);
    if (keys.includes("quota_exceeded")) return { kind: "quota_exceeded" };
    const after = parseRetryAfter(response.headers["retry-after"], now);
    if (after !== undefined) return { kind: "throttled", retry_after_ms: after };
    if (/queued activities/i.test(response.text))
      return { kind: "throttled", retry_after_ms: QUEUED_ACTIVITIES_WAIT_MS };
    return { kind: "throttled" };
  }
  return classifyStatus(response.status);
}

/** The next 00:00:00 UTC, when Constant Contact's daily request count starts again. */
export function nextUtcMidnight(now: Date): Date {
  return new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1));
}

export type Answer<T> = { status: number; body: T };
export type ImportBody = { import_data: Record<string, string | number>[]; list_ids: string[] };
export type MembershipBody = { source: { contact_ids: string[] }; list_ids: string[] };

export type ConstantContactClient = {
  /** The cheapest authenticated call inside the `contact_data` scope the connector needs anyway. */
  probe: () => Promise<ConnectorResult<z.infer<typeof CcListsPageSchema>>>;
  /** One page of GET /contacts: the first from a query, later ones from `_links.next.href`. */
  /** A page of contacts; the opt-outs pass of a read asks at consent priority. */
  contactsPage: (
    from: { query: Record<string, string | number> } | { next: string },
    priority?: CallPriority,
  ) => Promise<ConnectorResult<CcContactsPage>>;
  /** GET /contacts/{id} with every sub-resource; `null` when the contact does not exist. */
  getContact: (id: string, priority: CallPriority) => Promise<ConnectorResult<CcContact | null>>;
  putContact: (
    id: string,
    body: Record<string, unknown>,
    priority: CallPriority,
  ) => Promise<ConnectorResult<Answer<unknown>>>;
  createContact: (
    body: Record<string, unknown>,
    priority: CallPriority,
  ) => Promise<ConnectorResult<Answer<unknown>>>;
  /** PUT /contacts/resubscribe/{id}; 400 and 409 come back as answers for the caller to read. */
  resubscribe: (id: string, listIds: readonly string[]) => Promise<ConnectorResult<Answer<unknown>>>;
  /** POST /contact_lists; PUT /contact_lists/{id} (name); DELETE /contact_lists/{id} (members keep their contacts). */
  createList: (name: string) => Promise<ConnectorResult<Answer<unknown>>>;
  renameList: (id: string, name: string) => Promise<ConnectorResult<Answer<unknown>>>;
  deleteList: (id: string) => Promise<ConnectorResult<Answer<unknown>>>;
  /** DELETE /contacts/{id}: a soft delete (the contact can be revived; its opt-out stays). 404: gone already. */
  deleteContact: (id: string) => Promise<ConnectorResult<Answer<unknown>>>;
  startImport: (body: ImportBody) => Promise<ConnectorResult<CcActivity>>;
  startMembership: (kind: "add" | "remove", body: MembershipBody) => Promise<ConnectorResult<CcActivity>>;
  getActivity: (id: string, priority: CallPriority) => Promise<ConnectorResult<CcActivity>>;
  /** The contact's `em_optouts` tracking activities, newest first (a consent read); null for an unknown contact. */
  optOutActivities: (
    contactId: string,
  ) => Promise<ConnectorResult<z.infer<typeof CcTrackingPageSchema>["tracking_activities"] | null>>;
  listsPage: (next?: string) => Promise<ConnectorResult<z.infer<typeof CcListsPageSchema>>>;
  usage: () => QuotaUsage;
};

export const CONTACT_SUBRESOURCES =
  "custom_fields,list_memberships,phone_numbers,street_addresses,taggings,notes";

export function createConstantContactClient(
  settings: ConnectionSettings,
  runtime: ConnectorRuntime,
  limits: ConnectorLimits,
): ConstantContactClient {
  const limiter = connectionBudget(runtime, connectionLimits(limits, settings.limits));
  const auth = createOAuth2Auth({
    token_url: settings.token_url ?? CONSTANT_CONTACT_TOKEN_URL,
    credentials: settings.credentials,
    runtime,
    client_auth: "basic",
  });
  const http: HttpClient = createHttpClient({
    base_url: settings.base_url ?? CONSTANT_CONTACT_BASE_URL,
    limiter,
    auth,
    runtime,
    ...(settings.limits?.request_timeout_ms !== undefined
      ? { timeout_ms: settings.limits.request_timeout_ms }
      : {}),
    classify: (response) => classifyConstantContact(response, runtime.now()),
    next_quota_reset: nextUtcMidnight,
  });

  const answer = async (
    req: Parameters<HttpClient["request"]>[0],
  ): Promise<ConnectorResult<Answer<unknown>>> => {
    const r = await http.request(req);
    return r.ok ? ok({ status: r.value.status, body: r.value.body }) : r;
  };

  return {
    probe: async () => {
      const r = await http.request({
        method: "GET",
        path: "/contact_lists",
        query: { limit: 1 },
        priority: "read",
        schema: CcListsPageSchema,
      });
      return r.ok ? ok(r.value.body) : r;
    },
    contactsPage: async (from, priority = "read") => {
      const r = await http.request({
        method: "GET",
        path: "next" in from ? from.next : "/contacts",
        ...("query" in from ? { query: from.query } : {}),
        priority,
        schema: CcContactsPageSchema,
      });
      return r.ok ? ok(r.value.body) : r;
    },
    getContact: async (id, priority) => {
      const r = await http.request({
        method: "GET",
        path: `/contacts/${encodeURIComponent(id)}`,
        query: { include: CONTACT_SUBRESOURCES },
        priority,
        accept: [404],
      });
      if (!r.ok) return r;
      if (r.value.status === 404) return ok(null);
      const parsed = CcContactSchema.safeParse(r.value.body);
      if (parsed.success) return ok(parsed.data);
      return {
        ok: false,
        error: {
          code: "bad_response",
          message: `GET /contacts/${id} answered a contact we do not understand: ${parsed.error.issues
            .slice(0, 3)
            .map((i) => `${i.path.join(".")}: ${i.message}`)
            .join("; ")}`,
          http_status: r.value.status,
        },
      };
    },
    putContact: (id, body, priority) =>
      answer({ method: "PUT", path: `/contacts/${encodeURIComponent(id)}`, json: body, priority }),
    createContact: (body, priority) =>
      answer({ method: "POST", path: "/contacts", json: body, priority, accept: [409] }).then((r) => {
        if (!r.ok || r.value.status !== 201) return r;
        const created = CcCreatedContactSchema.safeParse(r.value.body);
        return created.success
          ? r
          : {
              ok: false as const,
              error: {
                code: "bad_response" as const,
                message: "POST /contacts answered without a contact_id.",
              },
            };
      }),
    resubscribe: (id, listIds) =>
      answer({
        method: "PUT",
        path: `/contacts/resubscribe/${encodeURIComponent(id)}`,
        json: { list_ids: [...listIds] },
        priority: "consent",
        accept: [400, 409],
      }),
    createList: (name) =>
      answer({ method: "POST", path: "/contact_lists", json: { name }, priority: "write", accept: [409] }),
    renameList: (id, name) =>
      answer({
        method: "PUT",
        path: `/contact_lists/${encodeURIComponent(id)}`,
        json: { name },
        priority: "write",
        accept: [404, 409],
      }),
    deleteList: (id) =>
      answer({
        method: "DELETE",
        path: `/contact_lists/${encodeURIComponent(id)}`,
        priority: "write",
        accept: [404],
      }),
    deleteContact: (id) =>
      answer({
        method: "DELETE",
        path: `/contacts/${encodeURIComponent(id)}`,
        priority: "write",
        accept: [404],
      }),
    startImport: async (body) => {
      const r = await http.request({
        method: "POST",
        path: "/activities/contacts_json_import",
        json: body,
        priority: "write",
        // An import sent twice adds or updates the same contacts by address.
        idempotent: true,
        schema: CcActivitySchema,
      });
      return r.ok ? ok(r.value.body) : r;
    },
    startMembership: async (kind, body) => {
      const r = await http.request({
        method: "POST",
        path: kind === "add" ? "/activities/add_list_memberships" : "/activities/remove_list_memberships",
        json: body,
        priority: "write",
        idempotent: true,
        schema: CcActivitySchema,
      });
      return r.ok ? ok(r.value.body) : r;
    },
    getActivity: async (id, priority) => {
      const r = await http.request({
        method: "GET",
        path: `/activities/${encodeURIComponent(id)}`,
        priority,
        schema: CcActivitySchema,
      });
      return r.ok ? ok(r.value.body) : r;
    },
    optOutActivities: async (contactId) => {
      const r = await http.request({
        method: "GET",
        path: `/reports/contact_reports/${encodeURIComponent(contactId)}/activity_details`,
        query: { tracking_activities_list: "em_optouts", include_campaign_activity_names: "true", limit: 20 },
        priority: "consent",
        accept: [404],
      });
      if (!r.ok) return r;
      if (r.value.status === 404) return ok(null);
      const parsed = CcTrackingPageSchema.safeParse(r.value.body);
      return parsed.success
        ? ok(parsed.data.tracking_activities)
        : {
            ok: false,
            error: {
              code: "bad_response",
              message: `The contact report of ${contactId} is not what we expected: ${parsed.error.issues
                .slice(0, 3)
                .map((i) => `${i.path.join(".")}: ${i.message}`)
                .join("; ")}`,
            },
          };
    },
    listsPage: async (next) => {
      const r = await http.request({
        method: "GET",
        path: next ?? "/contact_lists",
        ...(next ? {} : { query: { limit: 500, include_membership_count: "all", status: "active" } }),
        priority: "read",
        schema: CcListsPageSchema,
      });
      return r.ok ? ok(r.value.body) : r;
    },
    usage: () => limiter.usage(),
  };
}
