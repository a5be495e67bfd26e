/**
 * A typed client for the GrowthZone API endpoints Concord uses, over the shared HTTP client: the
 * `ApiKey` header, the base from the organisation's subdomain, OData-style `$top`/`$skip` paging
 * of the `{TotalRecordAvailable, Results}` envelope, and 429s followed by their `Retry-After`.
 */
import { z } from "zod";
import type { ConnectionSettings, ConnectorLimits, ConnectorResult, ConnectorRuntime } from "../connector";
import { createHttpClient, type HttpClient, type HttpRequest } from "../http/http-client";
import type { AuthProvider } from "../http/oauth2";
import { connectionBudget, connectionLimits, type CallPriority } from "../http/rate-limiter";
import { classifyStatus, parseRetryAfter } from "../http/retry-decision";
import { err, ok } from "../../core/result";

/** The API's base for an organisation's subdomain. */
export const growthZoneBaseUrl = (subdomain: string): string => `https://${subdomain}.growthzoneapp.com`;

export function baseUrlFromCredentials(c: Readonly<Record<string, string | undefined>>): string | undefined {
  const sub = c["subdomain"]?.trim().toLowerCase();
  return sub && /^[a-z0-9-]{1,63}$/.test(sub) ? growthZoneBaseUrl(sub) : undefined;
}

/** GrowthZone answers at most 100 rows a page (more is a 400). */
export const PAGE_MAX = 100;

const RestrictionSchema = z.enum(["None", "TransactionalOnly", "DoNotContact"]);
export type Restriction = z.infer<typeof RestrictionSchema>;

export const GzEmailSchema = z.looseObject({
  ContactEmailAddressId: z.number().int(),
  EmailAddress: z.string(),
  EmailAddressTypeId: z.number().int().optional(),
  IsDefault: z.boolean().optional(),
  // Required: an address whose restriction is not returned cannot be read as unrestricted (its
  // Do Not Contact would be lost); such an answer fails the read, saying so (QUIRKS.md).
  Restriction: RestrictionSchema,
});
export type GzEmail = z.infer<typeof GzEmailSchema>;

export const GzContactSchema = z.looseObject({
  ContactId: z.number().int(),
  SystemContactTypeId: z.number().int().optional(),
  FirstName: z.string().nullable().optional(),
  LastName: z.string().nullable().optional(),
  OrganizationName: z.string().nullable().optional(),
  DisplayName: z.string().nullable().optional(),
  // Required too: a detail without its addresses would read every contact as having none, and
  // skip each with its restriction unread (QUIRKS.md).
  Emails: z.array(GzEmailSchema),
  ModifiedDate: z.string(),
});
export type GzContact = z.infer<typeof GzContactSchema>;

const envelope = <T extends z.ZodType>(item: T) =>
  z.looseObject({ TotalRecordAvailable: z.number().int(), Results: z.array(item) });

const ContactItemSchema = z.looseObject({ ContactId: z.number().int(), ModifiedDate: z.string().optional() });
const DeltaItemSchema = z.looseObject({
  ContactId: z.number().int(),
  ModifiedDate: z.string(),
  IsDeleted: z.boolean().optional(),
});
export const GzGroupSchema = z.looseObject({
  GroupId: z.number().int(),
  Name: z.string(),
  Category: z.string().optional(),
  SyncWithNewsletter: z.boolean().optional(),
  MemberCount: z.number().int().optional(),
});
export type GzGroup = z.infer<typeof GzGroupSchema>;
// A membership's Do Not Contact is required: one not returned would read as cleared, and a cleared
// mark lifts the topic's opt-out it stood for (QUIRKS.md).
const MemberSchema = z.looseObject({ ContactId: z.number().int(), DoNotContact: z.boolean() });
export type GzMember = z.infer<typeof MemberSchema>;

const MISSING =
  "No GrowthZone API key: give api_key (issued by GrowthZone's WebSupport for the organisation's API configuration).";

function growthZoneAuth(settings: ConnectionSettings): AuthProvider {
  return {
    headers: async () => {
      const key = (await settings.credentials.get())["api_key"]?.trim();
      return key ? ok({ authorization: `ApiKey ${key}` }) : err({ code: "auth_missing", message: MISSING });
    },
    refresh: () =>
      Promise.resolve(
        err({
          code: "auth_invalid",
          message:
            "GrowthZone refused the API key (its API configuration was deleted or the key is wrong); give a new one in the connection's credentials.",
        }),
      ),
  };
}

export type GrowthZoneClient = ReturnType<typeof createGrowthZoneClient>;

export function createGrowthZoneClient(
  settings: ConnectionSettings,
  runtime: ConnectorRuntime,
  limits: ConnectorLimits,
) {
  const limiter = connectionBudget(runtime, connectionLimits(limits, settings.limits));
  let resolved = settings.base_url;
  const http: HttpClient = createHttpClient({
    base_url:
      resolved !== undefined
        ? resolved
        : async () => {
            resolved ??= baseUrlFromCredentials(await settings.credentials.get());
            return resolved !== undefined
              ? ok(resolved)
              : err({
                  code: "auth_missing",
                  message: "No GrowthZone subdomain: give subdomain (the part before .growthzoneapp.com).",
                });
          },
    limiter,
    auth: growthZoneAuth(settings),
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
    next_quota_reset: (now) =>
      new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() + 1)),
  });

  const request = async <T>(req: HttpRequest<T>) => {
    const r = await http.request(req);
    return r.ok ? ok({ status: r.value.status, body: r.value.body }) : r;
  };

  /** Every row of a paged list, page by page (`onPage` is awaited before the next page). */
  const pages = async <T>(
    path: string,
    query: Record<string, string>,
    item: z.ZodType<T>,
    priority: CallPriority,
    onPage: (rows: T[]) => Promise<ConnectorResult<void>>,
    top = PAGE_MAX,
  ): Promise<ConnectorResult<void>> => {
    for (let skip = 0; skip < 10_000_000; skip += top) {
      const r = await request({
        method: "GET",
        path,
        query: { ...query, $top: top, $skip: skip },
        priority,
        schema: envelope(item),
      });
      if (!r.ok) return r;
      const done = await onPage(r.value.body.Results);
      if (!done.ok) return done;
      if (r.value.body.Results.length < top || skip + top >= r.value.body.TotalRecordAvailable) break;
    }
    return ok(undefined);
  };

  return {
    request,
    usage: () => limiter.usage(),
    /** One page of every contact, by id. */
    contactsPage: async (skip: number, top: number) => {
      const r = await request({
        method: "GET",
        path: "/api/contacts/all",
        query: { $top: top, $skip: skip },
        priority: "read",
        schema: envelope(ContactItemSchema),
      });
      return r.ok ? ok(r.value.body) : r;
    },
    /**
     * One page of the contacts changed (or deleted) since a moment: oldest first when `ordered`
     * asks for it (`$orderby=ModifiedDate`); in GrowthZone's own order otherwise.
     */
    deltaPage: async (since: string, skip: number, top: number, ordered = true) => {
      const r = await request({
        method: "GET",
        path: "/api/contacts/delta",
        query: {
          modifiedSince: since,
          $top: top,
          $skip: skip,
          ...(ordered ? { $orderby: "ModifiedDate" } : {}),
        },
        priority: "read",
        schema: envelope(DeltaItemSchema),
      });
      return r.ok ? ok(r.value.body) : r;
    },
    contact: async (id: string, priority: CallPriority): Promise<ConnectorResult<GzContact | null>> => {
      const r = await request({
        method: "GET",
        path: `/api/contacts/${encodeURIComponent(id)}`,
        priority,
        schema: GzContactSchema,
        accept: [404],
      });
      if (!r.ok) return r;
      return ok(r.value.status === 404 ? null : r.value.body);
    },
    groups: async (): Promise<ConnectorResult<GzGroup[]>> => {
      const out: GzGroup[] = [];
      const r = await pages("/api/groups/all", {}, GzGroupSchema, "read", async (rows) => {
        out.push(...rows);
        return ok(undefined);
      });
      return r.ok ? ok(out) : r;
    },
    members: async (groupId: string, priority: CallPriority): Promise<ConnectorResult<GzMember[]>> => {
      const out: GzMember[] = [];
      const r = await pages(
        `/api/groups/${encodeURIComponent(groupId)}/members`,
        {},
        MemberSchema,
        priority,
        async (rows) => {
          out.push(...rows);
          return ok(undefined);
        },
      );
      return r.ok ? ok(out) : r;
    },
  };
}
