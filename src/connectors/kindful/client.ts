/**
 * A typed client for the Kindful API endpoints Concord uses, over the shared HTTP client: token
 * auth (`Authorization: Token token="…"`), contact queries paged by `query_token` (restarted once
 * when Kindful forgets an idle token), imports of at most 100 rows waited on until they complete,
 * linking, groups and the address lookup.
 */
import { z } from "zod";
import type { ConnectionSettings, ConnectorLimits, ConnectorResult, ConnectorRuntime } from "../connector";
import { createHttpClient, type HttpClient } from "../http/http-client";
import type { AuthProvider } from "../http/oauth2";
import { connectionBudget, connectionLimits, type CallPriority } from "../http/rate-limiter";
import { classifyStatus, parseRetryAfter } from "../http/retry-decision";
import { awaitJob } from "../kit/incremental-read";
import { err, ok } from "../../core/result";

export const KINDFUL_BASE_URL = "https://app.kindful.com";
export const KINDFUL_SANDBOX_URL = "https://app-sandbox.kindful.com";

/** Most rows one import or one link call takes, and most contacts one query page returns. */
export const IMPORT_ROWS_MAX = 100;
export const QUERY_PAGE_MAX = 50;

const text = z.string().nullable().optional();

/**
 * A Yes/No value as Kindful may give it: "Yes"/"No" in any case, y/n, true/false, 1/0, or a
 * boolean; blank is not set (null); anything else is undefined.
 */
export function readYesNo(v: unknown): "Yes" | "No" | null | undefined {
  if (v === null) return null;
  if (typeof v === "boolean") return v ? "Yes" : "No";
  if (typeof v === "number") return v === 1 ? "Yes" : v === 0 ? "No" : undefined;
  if (typeof v !== "string") return undefined;
  const t = v.trim().toLowerCase();
  if (t === "") return null;
  return ["yes", "y", "true", "1"].includes(t)
    ? "Yes"
    : ["no", "n", "false", "0"].includes(t)
      ? "No"
      : undefined;
}

/** A Yes/No column; a value `readYesNo` does not know still fails the read, naming the column. */
const yesNo = z.preprocess(
  (v) => {
    const read = readYesNo(v);
    return read === undefined ? v : read;
  },
  z.enum(["Yes", "No"]).nullable().optional(),
);

/** A custom field's value; a multiple-choice field's values as one text. */
const customValue = z
  .union([
    z.string(),
    z.number(),
    z.boolean(),
    z.array(z.union([z.string(), z.number(), z.boolean()])).transform((all) => all.join(", ")),
  ])
  .nullable();

export const KindfulContactSchema = z.looseObject({
  id: z.union([z.number().int(), z.string().regex(/^\d+$/).transform(Number)]),
  external_id: z
    .union([z.string(), z.number().transform(String)])
    .nullable()
    .optional(),
  sync_version: z.number().int().nullable().optional(),
  first_name: text,
  last_name: text,
  company_name: text,
  email: text,
  alt_email: text,
  email_opt_in: yesNo,
  email_deliverable: yesNo,
  email_deliverable_error_reason: text,
  addr1: text,
  addr2: text,
  city: text,
  state: text,
  postal: text,
  country: text,
  primary_phone: text,
  custom_fields: z.record(z.string(), customValue).optional(),
  created_at: z.string().optional(),
  /** ISO-8601, Kindful's own text form, or unix seconds; missing or blank: not given. */
  updated_at: z
    .union([z.string(), z.number().transform(String)])
    .nullable()
    .optional()
    .transform((v) => v ?? ""),
});
export type KindfulContact = z.infer<typeof KindfulContactSchema>;

const QueryPageSchema = z.looseObject({
  page: z.number().int().optional(),
  query_token: z.string(),
  results: z.array(KindfulContactSchema),
  has_more: z.boolean(),
});

const GroupsSchema = z.looseObject({
  results: z.array(
    z.looseObject({
      id: z.union([z.number().int(), z.string()]).transform(String),
      name: z.string(),
      count: z.number().int().optional(),
    }),
  ),
});

const ImportSchema = z.looseObject({
  id: z.union([z.number().int(), z.string()]),
  status: z.string(),
  results: z
    .array(
      z.looseObject({
        row: z.number().int(),
        contact_id: z.number().int().nullable(),
        status: z.string(),
        error: z.string().optional(),
      }),
    )
    .optional(),
});
export type KindfulImport = z.infer<typeof ImportSchema>;

const EmailExistSchema = z.looseObject({ exist: z.boolean(), ids: z.array(z.number().int()).optional() });

export type ImportRequest = {
  action_type: "create" | "update";
  match_by: "id" | "email" | "external_id";
  data: Record<string, unknown>[];
  /** Group names whose yes/no columns the rows carry. */
  groups?: string[];
};

const MISSING = 'No Kindful API token: give api_token (Settings → API → "Token" in Kindful).';

function kindfulAuth(settings: ConnectionSettings): AuthProvider {
  return {
    headers: async () => {
      const token = (await settings.credentials.get())["api_token"]?.trim();
      return token
        ? ok({ authorization: `Token token="${token}"` })
        : err({ code: "auth_missing", message: MISSING });
    },
    refresh: () =>
      Promise.resolve(
        err({
          code: "auth_invalid",
          message:
            "Kindful refused the API token (revoked, or the integration was disconnected); give a new one in the connection's credentials.",
        }),
      ),
  };
}

export type KindfulClient = ReturnType<typeof createKindfulClient>;

export function createKindfulClient(
  settings: ConnectionSettings,
  runtime: ConnectorRuntime,
  limits: ConnectorLimits,
) {
  const limiter = connectionBudget(runtime, connectionLimits(limits, settings.limits));
  const http: HttpClient = createHttpClient({
    base_url: settings.base_url ?? KINDFUL_BASE_URL,
    limiter,
    auth: kindfulAuth(settings),
    runtime,
    ...(settings.limits?.request_timeout_ms !== undefined
      ? { timeout_ms: settings.limits.request_timeout_ms }
      : {}),
    classify: (response) => {
      if (response.status === 429) {
        const after = parseRetryAfter(response.headers["retry-after"], runtime.now());
        return after !== undefined ? { kind: "throttled", retry_after_ms: after } : { kind: "throttled" };
      }
      return classifyStatus(response.status);
    },
    // Kindful publishes no daily quota.
    next_quota_reset: (now) => new Date(now.getTime() + 86_400_000),
  });

  const queryPage = (body: Record<string, unknown>, priority: CallPriority) =>
    http.request({
      method: "POST",
      path: "/api/v1/contacts/query",
      json: body,
      priority,
      schema: QueryPageSchema,
      accept: [400],
    });

  /**
   * Every contact a query matches, a page at a time: the next page is asked for only when the caller
   * wants it. Kindful forgets a query token after five idle minutes (a slow store between pages):
   * the query starts again once, and some contacts come twice (the caller keeps the first).
   */
  async function* query(
    terms: unknown[],
    priority: CallPriority,
    per_page = QUERY_PAGE_MAX,
  ): AsyncGenerator<ConnectorResult<KindfulContact[]>> {
    let restarts = 0;
    // Custom fields (a topic's Yes/No opt-out) come only when the query names them: all of them.
    const first = { query: terms, per_page, custom_fields: ["all"], columns: { contact: ["all"] } };
    let page = await queryPage(first, priority);
    for (let guard = 0; guard < 1_000_000; guard++) {
      if (!page.ok) {
        yield page;
        return;
      }
      if (page.value.status === 400) {
        const message = JSON.stringify(page.value.body).slice(0, 300);
        if (/query_token/i.test(message) && restarts++ === 0) {
          page = await queryPage(first, priority);
          continue;
        }
        yield err({
          code: "validation_failed",
          http_status: 400,
          message: `Kindful refused the contact query: ${message}`,
        });
        return;
      }
      const body = page.value.body;
      yield ok(body.results);
      if (!body.has_more || body.results.length === 0) return;
      page = await queryPage({ query_token: body.query_token }, priority);
    }
  }

  const getContact = async (
    id: string,
    priority: CallPriority,
  ): Promise<ConnectorResult<KindfulContact | null>> => {
    const r = await http.request({
      method: "GET",
      path: `/api/v1/contacts/${encodeURIComponent(id)}`,
      priority,
      schema: KindfulContactSchema,
      accept: [404],
    });
    if (!r.ok) return r;
    return ok(r.value.status === 404 ? null : r.value.body);
  };

  const link = async (
    contacts: readonly { id: number; sync_version: number; updated_at: string }[],
  ): Promise<ConnectorResult<void>> => {
    for (let i = 0; i < contacts.length; i += IMPORT_ROWS_MAX) {
      const r = await http.request({
        method: "POST",
        path: "/api/v1/contacts/link",
        json: {
          action_type: "update",
          data_type: "json",
          data: contacts.slice(i, i + IMPORT_ROWS_MAX).map((c) => ({
            id: c.id,
            external_id: `concord-${c.id}`,
            sync_version: c.sync_version,
            updated_at: c.updated_at,
          })),
        },
        priority: "read",
      });
      if (!r.ok) return r;
    }
    return ok(undefined);
  };

  /** Imports rows (at most 100) and waits for Kindful to process them. */
  const importRows = async (
    req: ImportRequest,
    priority: CallPriority,
  ): Promise<ConnectorResult<KindfulImport>> => {
    if (req.data.length > IMPORT_ROWS_MAX) throw new Error(`an import takes at most ${IMPORT_ROWS_MAX} rows`);
    const started = await http.request({
      method: "POST",
      path: "/api/v1/imports",
      json: {
        data_format: "contact",
        data_type: "json",
        action_type: req.action_type,
        // Groups are import columns: each row says "yes" or "no" under a group's name.
        match_by: { contact: req.match_by, ...(req.groups?.length ? { group: "name" } : {}) },
        ...(req.groups?.length ? { groups: req.groups } : {}),
        // Custom fields are row columns the import names: a row's own custom_fields object is
        // spread into it, and the names listed (as the import reference documents them).
        ...asImportColumns(req.data),
      },
      priority,
      schema: ImportSchema,
    });
    if (!started.ok) return started;
    return awaitJob(
      runtime,
      started.value.body,
      { first_ms: 200, max_ms: 5_000, max_total_ms: 120_000 },
      {
        ended: (job) => job.status === "complete" || job.status === "failed",
        reread: async (job) => {
          const r = await http.request({
            method: "GET",
            path: `/api/v1/import/${encodeURIComponent(String(job.id))}`,
            priority,
            schema: ImportSchema,
          });
          return r.ok ? ok(r.value.body) : r;
        },
        describe: (job) => `Kindful import ${String(job.id)}`,
      },
    );
  };

  return {
    query,
    getContact,
    link,
    importRows,
    groups: async (): Promise<
      ConnectorResult<{ id: string; name: string; count?: number | undefined }[]>
    > => {
      const r = await http.request({
        method: "GET",
        path: "/api/v1/groups",
        priority: "read",
        schema: GroupsSchema,
      });
      return r.ok ? ok(r.value.body.results) : r;
    },
    /** Whether a contact has the address, and the ids Kindful gives (it may say one exists and give none). */
    emailExists: async (
      email: string,
      priority: CallPriority,
    ): Promise<ConnectorResult<{ exist: boolean; ids: number[] }>> => {
      const r = await http.request({
        method: "GET",
        path: "/api/v1/contacts/email_exist",
        query: { email },
        priority,
        schema: EmailExistSchema,
      });
      return r.ok ? ok({ exist: r.value.body.exist, ids: r.value.body.ids ?? [] }) : r;
    },
    usage: () => limiter.usage(),
  };
}

/**
 * An import's rows as Kindful takes them: each custom field a column of its row (Concord keeps them
 * in a row's `custom_fields` object), and every such column named in the import's `custom_fields`.
 */
export function asImportColumns(rows: readonly Record<string, unknown>[]): {
  data: Record<string, unknown>[];
  custom_fields?: string[];
} {
  const names = new Set<string>();
  const data = rows.map((row) => {
    const { custom_fields: custom, ...rest } = row;
    if (custom === null || typeof custom !== "object") return row;
    for (const [name, value] of Object.entries(custom as Record<string, unknown>)) {
      names.add(name);
      rest[name] = value;
    }
    return rest;
  });
  return names.size > 0 ? { data, custom_fields: [...names] } : { data };
}
