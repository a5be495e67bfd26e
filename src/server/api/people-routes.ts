/** People: search contacts by name or address, and one contact's consent explained with its links and lists. */
import { sql, type RawBuilder } from "kysely";
import { explainContactById } from "../../explain/explain-by-id";
import { erasePerson } from "../../runs/erase-person";
import { recordOperatorOverride } from "../../runs/operator-override";
import { personalLinks } from "../../runs/personal-links";
import {
  ErasureRequestSchema,
  ErasureResponseSchema,
  IdParamsSchema,
  OverrideRequestSchema,
  OverrideResponseSchema,
  PersonalLinksSchema,
  PeopleQuerySchema,
  PeopleSchema,
  PersonSchema,
  type PersonHit,
} from "../api-schemas";
import { defineRoute, fail, type ApiRoute } from "./api-route";
import type { ApiContext } from "./api-deps";

/** `q` as a LIKE pattern matching anywhere, its own `%`, `_` and `\` taken literally. */
const containsPattern = (q: string): string => `%${q.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;

export function peopleRoutes(ctx: ApiContext): ApiRoute[] {
  const { store } = ctx;
  return [
    defineRoute({
      method: "GET",
      url: "/api/people",
      tag: "people",
      summary: "Search contacts by name (given, family, organisation) or email address, case-insensitively",
      access: "session",
      query: PeopleQuerySchema,
      response: PeopleSchema,
      handler: async ({ query }) => {
        const pattern = containsPattern(query.q);
        const like = (column: RawBuilder<unknown>) =>
          sql<boolean>`lower(${column}) like ${pattern} escape '\\'`;
        const rows = await store.db
          .selectFrom("contacts")
          .select(["id", "type", "given_name", "family_name", "organization_name", "primary_email"])
          .where("erased_at", "is", null)
          .where((eb) =>
            eb.or([
              like(sql.ref("given_name")),
              like(sql.ref("family_name")),
              like(sql.ref("organization_name")),
              like(sql`coalesce(given_name, '') || ' ' || coalesce(family_name, '')`),
              like(sql.ref("primary_email")),
              eb.exists(
                eb
                  .selectFrom("contact_emails")
                  .select("contact_emails.contact_id")
                  .whereRef("contact_emails.contact_id", "=", "contacts.id")
                  .where(sql<boolean>`lower(contact_emails.email) like ${pattern} escape '\\'`),
              ),
            ]),
          )
          .orderBy("family_name")
          .orderBy("given_name")
          .orderBy("id")
          .limit(query.limit)
          .execute();
        const people: PersonHit[] = rows.map((c) => ({
          contact_id: c.id,
          name:
            c.organization_name ??
            ([c.given_name, c.family_name].filter((s) => s !== null && s !== "").join(" ") || null),
          email: c.primary_email,
          type: c.type === "organization" ? "organization" : "person",
        }));
        return { people };
      },
    }),
    defineRoute({
      method: "GET",
      url: "/api/people/:id",
      tag: "people",
      summary:
        "One contact: the consent timeline across systems with the rule behind each state (explain), links and list memberships",
      access: "session",
      params: IdParamsSchema,
      response: PersonSchema,
      errors: [404],
      handler: async ({ params }) => {
        const result = await explainContactById(store, ctx.config, params.id);
        if (result.kind === "not_found") return fail(404, "contact_not_found", result.message);
        return {
          contact: result.contact,
          explanation: result.explanation,
          note: result.note,
          links: result.links,
          list_memberships: result.list_memberships,
        };
      },
    }),
    defineRoute({
      method: "GET",
      url: "/api/people/:id/links",
      tag: "people",
      summary:
        "The person's signed one-click unsubscribe URL and the List-Unsubscribe / List-Unsubscribe-Post header values for an email to them; 503 `links_unavailable` without CONCORD_SECRET_KEY or server.public_url",
      access: "session",
      params: IdParamsSchema,
      response: PersonalLinksSchema,
      errors: [404, 503],
      handler: async ({ params }) => {
        if (ctx.links === undefined || !ctx.links.ok)
          return fail(
            503,
            "links_unavailable",
            `Personal links are off: ${ctx.links?.ok === false ? ctx.links.error : "the server was started without them"}.`,
          );
        const links = await personalLinks(store, ctx.links.value, params.id, ctx.now());
        if (links === undefined)
          return fail(404, "contact_not_found", `No contact ${params.id} (or it was erased).`);
        return links;
      },
    }),
    defineRoute({
      method: "POST",
      url: "/api/people/:id/overrides",
      tag: "people",
      summary:
        "Record the person's written request to receive email again (all email, or `topic`): an operator override that lifts the opt-outs made before the request; refused without `request_reference`",
      access: "session",
      params: IdParamsSchema,
      body: OverrideRequestSchema,
      response: OverrideResponseSchema,
      errors: [400, 404],
      handler: async ({ params, body }) => {
        const result = await recordOperatorOverride(ctx.syncDeps, {
          contact_id: params.id,
          scope: body.topic === undefined ? { kind: "global" } : { kind: "topic", topic: body.topic },
          request_reference: body.request_reference,
          ...(body.request_text !== undefined ? { request_text: body.request_text } : {}),
          ...(body.requested_at !== undefined ? { requested_at: body.requested_at } : {}),
          recorded_by: body.recorded_by,
        });
        if (!result.ok)
          return fail(result.code === "contact_not_found" ? 404 : 400, result.code, result.message);
        const { ok: _ok, ...answer } = result;
        return answer;
      },
    }),
    defineRoute({
      method: "POST",
      url: "/api/erasures",
      tag: "people",
      summary:
        "Erase a person who asked to be forgotten (or preview with `dry_run`): deleted in every linked system as far as it allows, Concord's copy erased, their addresses kept only as a keyed hash so they are never imported again",
      access: "session",
      body: ErasureRequestSchema,
      response: ErasureResponseSchema,
      errors: [400],
      handler: async ({ body }) => {
        const result = await erasePerson(ctx.syncDeps, {
          email: body.email,
          requested_by: body.requested_by,
          ...(body.reference !== undefined ? { reference: body.reference } : {}),
          dry_run: body.dry_run,
        });
        if (!result.ok) return fail(400, result.code, result.message);
        return { report: result.report };
      },
    }),
  ];
}
