/** People: search contacts by name or address, and one contact's consent explained with its links and lists. */
import { sql, type RawBuilder } from "kysely";
import { explainContactById } from "../../explain/explain-by-id";
import { erasePerson } from "../../runs/erase-person";
import { recordOperatorOverride } from "../../runs/operator-override";
import { personalLinks } from "../../runs/personal-links";
import { proofBundle, signProof, type SignedProof } from "../../runs/proof-bundle";
import { z } from "zod";
import { escapeHtml } from "../escape-html";
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
import { defineRoute, fail, raw, type ApiRoute } from "./api-route";
import type { ApiContext } from "./api-deps";

/** `q` as a LIKE pattern matching anywhere, its own `%`, `_` and `\` taken literally. */
const containsPattern = (q: string): string => `%${q.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;

export function peopleRoutes(ctx: ApiContext): ApiRoute[] {
  const { store } = ctx;
  const signedProof = async (id: string) => {
    if (ctx.proofKey === undefined || !ctx.proofKey.ok)
      return {
        ok: false as const,
        failure: fail(
          503,
          "proof_unavailable",
          `Proof bundles cannot be signed: ${ctx.proofKey?.ok === false ? ctx.proofKey.error : "the server was started without a signing key"}.`,
        ),
      };
    const bundle = await proofBundle(store, ctx.config, id, ctx.now());
    if (bundle === undefined)
      return { ok: false as const, failure: fail(404, "contact_not_found", `No contact ${id}.`) };
    return { ok: true as const, value: signProof(bundle, ctx.proofKey.value) };
  };
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
      url: "/api/people/:id/proof",
      tag: "people",
      summary:
        "Proof for an auditor: the person's every consent event with its evidence and chain hash, and the state the rules decide now, signed with Ed25519 (`concord proof --verify` checks it)",
      access: "session",
      params: IdParamsSchema,
      response: z.unknown(),
      errors: [404, 503],
      handler: async ({ params }) => {
        const signed = await signedProof(params.id);
        if (!signed.ok) return signed.failure;
        return raw("application/json; charset=utf-8", JSON.stringify(signed.value, null, 2), {
          "content-disposition": `attachment; filename="concord-proof-${params.id}.json"`,
        });
      },
    }),
    defineRoute({
      method: "GET",
      url: "/api/people/:id/proof.html",
      tag: "people",
      summary: "The same proof as a printable page, with the bundle's signature",
      access: "session",
      params: IdParamsSchema,
      response: z.string(),
      produces: "text/html",
      errors: [404, 503],
      handler: async ({ params }) => {
        const signed = await signedProof(params.id);
        if (!signed.ok) return signed.failure;
        return raw("text/html; charset=utf-8", proofPage(signed.value));
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
          requested_at: body.requested_at,
          recorded_by: body.recorded_by,
        });
        if (!result.ok)
          return fail(result.code === "contact_not_found" ? 404 : 400, result.code, result.message);
        // Carried to every system now, by each one's lawful path, not at the next poll.
        if (result.recorded === "appended")
          ctx.runtime
            .syncNow(undefined, { pull: false, contact_ids: [params.id] })
            .catch((error: unknown) => {
              ctx.logger?.error(
                { err: error, contact: params.id },
                "carrying an operator override failed; the next run carries it",
              );
            });
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
      errors: [400, 409],
      handler: async ({ body }) => {
        // As every pair's only run: no run in flight sends or stores the person's data after
        // Concord forgot them (a plan already made goes first; later plans find them erased).
        const result = await ctx.runtime.runBesideNoPair(() =>
          erasePerson(ctx.syncDeps, {
            email: body.email,
            requested_by: body.requested_by,
            ...(body.reference !== undefined ? { reference: body.reference } : {}),
            dry_run: body.dry_run,
            all_holders: body.all_holders,
          }),
        );
        if (!result.ok)
          return fail(result.code === "several_holders" ? 409 : 400, result.code, result.message);
        return { report: result.report };
      },
    }),
  ];
}

/** The printable proof: who, what the rules decide, every event with its evidence, and the signature. */
function proofPage(p: SignedProof): string {
  const b = p.bundle;
  const rows = b.events
    .map((e) => {
      const ev = e.event;
      const scope =
        "scope" in ev ? (ev.scope.kind === "global" ? "all email" : `topic ${ev.scope.topic}`) : ev.status;
      const evidence =
        e.evidence_erased_at !== null ? `erased ${e.evidence_erased_at}` : JSON.stringify(ev.evidence);
      return `<tr><td>${e.seq}</td><td>${escapeHtml(ev.occurred_at)}</td><td>${escapeHtml(ev.kind)}</td><td>${escapeHtml(scope)}</td><td>${escapeHtml(ev.mechanism)}</td><td>${escapeHtml(ev.actor.kind)}${ev.actor.kind === "operator" || ev.actor.kind === "account" ? ` ${escapeHtml(ev.actor.user ?? "")}` : ""}</td><td>${escapeHtml(ev.source.system)} / ${escapeHtml(ev.source.connection)}</td><td class="mono">${escapeHtml(evidence)}</td><td class="mono">${escapeHtml(e.hash.slice(0, 16))}…</td></tr>`;
    })
    .join("\n");
  const state = b.state
    .map(
      (s) =>
        `<tr><td>${escapeHtml(s.scope)}</td><td>${s.sendable ? "sendable" : "not sendable"}</td><td>${escapeHtml(s.rule)}</td><td class="mono">${escapeHtml(s.decided_by ?? "—")}</td></tr>`,
    )
    .join("\n");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Proof of consent — ${escapeHtml(b.contact.name ?? b.contact.id)}</title>
<style>body{font:12px/1.45 system-ui,sans-serif;margin:2rem;color:#111}h1{font-size:18px}table{border-collapse:collapse;width:100%;margin:.5rem 0 1.5rem}
th,td{border:1px solid #999;padding:3px 5px;text-align:left;vertical-align:top}.mono{font-family:ui-monospace,monospace;word-break:break-all}
@media print{body{margin:0}}</style></head><body>
<h1>Proof of consent</h1>
<p>Contact <strong>${escapeHtml(b.contact.name ?? "—")}</strong> (${escapeHtml(b.contact.primary_email ?? "no address")}${b.contact.erased ? ", erased" : ""}), id <span class="mono">${escapeHtml(b.contact.id)}</span>. Generated ${escapeHtml(b.generated_at)} by Concord (${escapeHtml(b.format)}).</p>
<h2>What the consent rules decide now</h2>
<table><thead><tr><th>Scope</th><th>State</th><th>Rule</th><th>Decided by</th></tr></thead><tbody>${state}</tbody></table>
<h2>Every consent event, in ledger order</h2>
<table><thead><tr><th>Seq</th><th>When</th><th>Kind</th><th>Scope</th><th>How</th><th>Who</th><th>Source</th><th>Evidence</th><th>Chain hash</th></tr></thead><tbody>${rows}</tbody></table>
<h2>Signature</h2>
<p>Ed25519 over the canonical JSON of the bundle (download it as JSON from the same page's API, <span class="mono">/api/people/${escapeHtml(b.contact.id)}/proof</span>; check it with <span class="mono">concord proof --verify FILE</span>).</p>
<p class="mono">public key ${escapeHtml(p.signature.public_key)}<br>signature ${escapeHtml(p.signature.value)}</p>
</body></html>`;
}
