/**
 * The review queue: ambiguous identities and conflicts a person decides. Resolving an ambiguous
 * identity links the record to one candidate contact, or keeps it as a contact of its own; either
 * way the record is read again, so the consent it carries (an unsubscribe found on it) now counts.
 */
import { z } from "zod";
import { normaliseEmail } from "../../core/identity/normalise-email";
import { recordWebhookChanges } from "../../pipeline/pull-connection";
import {
  JsonValueSchema,
  ReviewKindSchema,
  ReviewStatusSchema,
  type JsonValue,
  type ReviewItem as StoredReviewItem,
} from "../../store/ports";
import {
  IdParamsSchema,
  ReviewListSchema,
  ReviewQuerySchema,
  ReviewResolvedSchema,
  ReviewResolveSchema,
  type ReviewItem,
} from "../api-schemas";
import { defineRoute, fail, type ApiRoute, type Failure } from "./api-route";
import type { ApiContext } from "./api-deps";

/** A stored record its system deleted. */
const DeletedSchema = z.looseObject({ deleted: z.literal(true) });

const DetailSchema = z
  .object({
    candidate_contact_ids: z.array(z.string()).optional(),
    email: z.string().nullable().optional(),
    record_kind: z.string().optional(),
    /** `signup`: a confirmed sign-up at an address others hold, not a system's record. */
    source: z.string().optional(),
  })
  .loose();

const NamesSchema = z
  .object({
    first_name: z.string().nullable().optional(),
    last_name: z.string().nullable().optional(),
    organisation_name: z.string().nullable().optional(),
  })
  .loose();

const toApi = (item: StoredReviewItem): ReviewItem => ({
  id: item.id,
  kind: item.kind,
  status: item.status,
  contact_id: item.contact_id,
  connection_id: item.connection_id,
  external_id: item.external_id,
  detail: item.detail,
  resolution: item.resolution,
  created_at: item.created_at,
  resolved_at: item.resolved_at,
});

export function reviewRoutes(ctx: ApiContext): ApiRoute[] {
  const { store } = ctx;

  const find = async (id: string): Promise<StoredReviewItem | undefined> => {
    const row = await store.db.selectFrom("review_items").selectAll().where("id", "=", id).executeTakeFirst();
    if (!row) return undefined;
    const json = (text: string | null): JsonValue | null =>
      text === null ? null : JsonValueSchema.parse(JSON.parse(text));
    return {
      id: row.id,
      key: row.key,
      kind: ReviewKindSchema.parse(row.kind),
      status: ReviewStatusSchema.parse(row.status),
      contact_id: row.contact_id,
      connection_id: row.connection_id,
      external_id: row.external_id,
      detail: json(row.detail_json),
      resolution: json(row.resolution_json),
      created_at: row.created_at,
      resolved_at: row.resolved_at,
    };
  };

  /** The pair a connection's records are read and resolved in (its first). */
  const pairOf = (connectionId: string | null) =>
    connectionId === null
      ? undefined
      : ctx.config.pairs.find(
          (p) => p.crm === connectionId || p.platforms.some((x) => x.connection === connectionId),
        );

  /**
   * Reads the record again in its pair, so its consent is recorded on its contact. Called within a
   * run of that pair (the resolution's).
   */
  const reread = async (
    connectionId: string,
    externalId: string,
  ): Promise<{ ok: boolean; message: string | null }> => {
    const opened = ctx.connections.get(connectionId);
    const pair = pairOf(connectionId);
    if (!opened || !pair)
      return { ok: false, message: `Connection ${connectionId} is not in any pair; nothing was read.` };
    const report = await recordWebhookChanges(
      { store, connection: opened, config: ctx.config, pair, now: ctx.now },
      [
        {
          event_id: `review:${externalId}`,
          type: "review_resolved",
          external_id: externalId,
          occurred_at: ctx.now().toISOString(),
          change: "changed",
        },
      ],
    );
    return report.error
      ? { ok: false, message: `${report.error.code}: ${report.error.message} The next full read records it.` }
      : { ok: true, message: null };
  };

  /** Another record of the item's system that `contactId` holds and that is not deleted there. */
  const liveRecordThere = async (contactId: string, item: StoredReviewItem): Promise<string | undefined> => {
    const connectionId = item.connection_id;
    if (connectionId === null) return undefined;
    for (const link of await store.links.forContact(contactId)) {
      if (link.connection_id !== connectionId || link.external_id === item.external_id) continue;
      const snapshot = await store.snapshots.get(connectionId, link.external_id);
      if (!DeletedSchema.safeParse(snapshot?.payload).success) return link.external_id;
    }
    return undefined;
  };

  /** Links the item's record to `contactId` (moving an existing link); the previous contact, if any. */
  const linkTo = async (
    item: StoredReviewItem,
    contactId: string,
  ): Promise<{ previous: string | null } | Failure> => {
    if (item.connection_id === null || item.external_id === null)
      return fail(409, "review_item_has_no_record", "This item names no record to link.");
    const existing = await store.links.find(item.connection_id, item.external_id);
    if (existing) {
      if (existing.contact_id !== contactId)
        await store.links.moveTo(item.connection_id, item.external_id, contactId);
      return { previous: existing.contact_id };
    }
    const created = await store.links.create({
      connection_id: item.connection_id,
      external_id: item.external_id,
      contact_id: contactId,
      origin: "matched_by_email",
    });
    return { previous: created.kind === "conflict" ? created.existing.contact_id : null };
  };

  return [
    defineRoute({
      method: "GET",
      url: "/api/review",
      tag: "review",
      summary: "Review items (ambiguous identities, conflicts) by status, oldest first",
      access: "session",
      query: ReviewQuerySchema,
      response: ReviewListSchema,
      handler: async ({ query }) => ({
        items: (await store.reviewItems.list(query.status, query.limit)).map(toApi),
      }),
    }),
    defineRoute({
      method: "POST",
      url: "/api/review/:id/resolve",
      tag: "review",
      summary:
        "Resolve a review item: link its record to a candidate contact, keep it as a contact of its own, or dismiss it",
      access: "session",
      params: IdParamsSchema,
      body: ReviewResolveSchema,
      response: ReviewResolvedSchema,
      errors: [404, 409],
      handler: async ({ params, body }) => {
        const found = await find(params.id);
        if (!found) return fail(404, "review_item_not_found", `No review item ${params.id}.`);
        // As a run of the record's pair: never beside a sync that reads it or links it, and one
        // operator's resolution at a time (the second finds the item closed, and changes nothing).
        const pair = pairOf(found.connection_id);
        return pair === undefined
          ? resolveItem(params.id, body)
          : ctx.runtime.runExclusive(pair.id, () => resolveItem(params.id, body));
      },
    }),
  ];

  async function resolveItem(id: string, body: z.infer<typeof ReviewResolveSchema>) {
    const item = await find(id);
    if (!item) return fail(404, "review_item_not_found", `No review item ${id}.`);
    if (item.status !== "open")
      return fail(409, "review_item_closed", `Review item ${item.id} is already ${item.status}.`);
    const detail = DetailSchema.safeParse(item.detail);
    const candidates = detail.success ? (detail.data.candidate_contact_ids ?? []) : [];

    if (body.action === "dismiss") {
      const resolved = await store.reviewItems.resolve(item.id, "dismissed", {
        action: "dismiss",
        note: body.note ?? null,
      });
      if (resolved === undefined)
        return fail(409, "review_item_closed", `Review item ${item.id} was resolved meanwhile.`);
      return { item: toApi(resolved), reread: null };
    }

    let resolution: Record<string, string | null>;
    if (body.action === "link" && detail.success && detail.data.source === "signup")
      // The person who confirmed holds the mailbox; whether they are one of the candidates is
      // theirs to say (a sign-up from the address they use), never the queue's.
      return fail(
        409,
        "signup_stays_apart",
        "A confirmed sign-up's opt-in stays with the contact made for it: keep it as a contact of its own, or dismiss the item.",
      );
    if (body.action === "link") {
      if (
        candidates.length > 0 &&
        !candidates.includes(body.contact_id) &&
        body.contact_id !== item.contact_id
      )
        return fail(
          409,
          "not_a_candidate",
          `Contact ${body.contact_id} is not one of this item's candidates (${candidates.join(", ")}).`,
        );
      const target = await store.contacts.get(body.contact_id);
      if (!target) return fail(404, "contact_not_found", `No contact ${body.contact_id}.`);
      // Linking a record to an erased person would store their data again, out of erasure's reach.
      if (target.erased_at !== null)
        return fail(
          409,
          "contact_erased",
          `Contact ${body.contact_id} was erased; link the record to another contact, or keep it apart.`,
        );
      // A contact holds one live record of a system: two there are two people (the CRM's
      // duplicates are reported, never merged), and a contact's plan follows one record a system.
      const other = await liveRecordThere(body.contact_id, item);
      if (other !== undefined)
        return fail(
          409,
          "contact_has_record_there",
          `Contact ${body.contact_id} already holds ${item.connection_id ?? ""} record ${other}: two records of one system are two people. Keep this record apart, or merge the two records in that system first.`,
        );
      const linked = await linkTo(item, body.contact_id);
      if ("kind" in linked) return linked;
      resolution = { action: "link", contact_id: body.contact_id, previous_contact_id: linked.previous };
    } else {
      // A contact of its own: the one made for it already (a CRM record), else a new one.
      let own = item.contact_id;
      if (own === null) {
        if (item.connection_id === null || item.external_id === null)
          return fail(409, "review_item_has_no_record", "This item names no record to keep apart.");
        const email = detail.success ? (detail.data.email ?? null) : null;
        const normalised = email === null ? undefined : normaliseEmail(email);
        const snapshot = await store.snapshots.get(item.connection_id, item.external_id);
        const names = NamesSchema.safeParse(snapshot?.payload);
        const organisation = detail.success && detail.data.record_kind === "organisation";
        const created = await store.transaction(async (tx) => {
          const contact = await tx.contacts.create({
            type: organisation ? "organization" : "person",
            given_name: names.success ? (names.data.first_name ?? null) : null,
            family_name: names.success ? (names.data.last_name ?? null) : null,
            organization_name: names.success ? (names.data.organisation_name ?? null) : null,
            primary_email: email,
            email_match_key: normalised?.ok === true ? normalised.match_key : null,
          });
          if (email !== null && normalised?.ok === true)
            await tx.contacts.addEmail(contact.id, email, normalised.match_key);
          return contact;
        });
        const linked = await linkTo(item, created.id);
        if ("kind" in linked) return linked;
        own = created.id;
      }
      resolution = { action: "separate", contact_id: own };
    }
    const resolved = await store.reviewItems.resolve(item.id, "resolved", resolution);
    if (resolved === undefined)
      return fail(409, "review_item_closed", `Review item ${item.id} was resolved meanwhile.`);
    const again =
      item.connection_id !== null && item.external_id !== null
        ? await reread(item.connection_id, item.external_id)
        : null;
    return { item: toApi(resolved), reread: again };
  }
}
