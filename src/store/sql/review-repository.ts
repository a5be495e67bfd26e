/** SQL implementation of `ReviewRepository`: the queue of ambiguous identities and conflicts a person must decide. */
import type { Selectable } from "kysely";
import { newId } from "../new-id";
import {
  JsonValueSchema,
  ReviewKindSchema,
  ReviewStatusSchema,
  type ReviewItem,
  type ReviewRepository,
} from "../ports";
import type { ReviewItemsTable } from "../schema";
import { parseJsonColumn, toJsonColumn } from "./json-column";
import { affected, isoNow, type SqlContext } from "./sql-context";

const toItem = (row: Selectable<ReviewItemsTable>): ReviewItem => ({
  id: row.id,
  key: row.key,
  kind: ReviewKindSchema.parse(row.kind),
  status: ReviewStatusSchema.parse(row.status),
  contact_id: row.contact_id,
  connection_id: row.connection_id,
  external_id: row.external_id,
  detail: parseJsonColumn(JsonValueSchema, row.detail_json, `review_items.detail_json of ${row.id}`),
  resolution:
    row.resolution_json === null
      ? null
      : parseJsonColumn(JsonValueSchema, row.resolution_json, `review_items.resolution_json of ${row.id}`),
  created_at: row.created_at,
  resolved_at: row.resolved_at,
});

export function reviewRepository(ctx: SqlContext): ReviewRepository {
  const { db } = ctx;
  return {
    async open(item) {
      const row: Selectable<ReviewItemsTable> = {
        id: newId("rev", ctx.clock()),
        key: item.key,
        kind: item.kind,
        status: "open",
        contact_id: item.contact_id ?? null,
        connection_id: item.connection_id ?? null,
        external_id: item.external_id ?? null,
        detail_json: toJsonColumn(item.detail),
        resolution_json: null,
        created_at: isoNow(ctx),
        resolved_at: null,
      };
      const result = await db
        .insertInto("review_items")
        .values(row)
        .onConflict((oc) => oc.column("key").doNothing())
        .executeTakeFirst();
      if (affected(result.numInsertedOrUpdatedRows) === 1) return { kind: "opened", item: toItem(row) };
      const existing = await db
        .selectFrom("review_items")
        .selectAll()
        .where("key", "=", item.key)
        .executeTakeFirst();
      if (existing === undefined) throw new Error("review_items: insert conflicted but no row was found");
      return { kind: "existing", item: toItem(existing) };
    },

    async list(status = "open", limit = 100) {
      const rows = await db
        .selectFrom("review_items")
        .selectAll()
        .where("status", "=", status)
        .orderBy("created_at")
        .orderBy("id")
        .limit(limit)
        .execute();
      return rows.map(toItem);
    },

    async resolve(id, status, resolution) {
      // Only an open item: of two operators resolving one item at once, the second changes nothing.
      const closed = await db
        .updateTable("review_items")
        .set({ status, resolution_json: toJsonColumn(resolution), resolved_at: isoNow(ctx) })
        .where("id", "=", id)
        .where("status", "=", "open")
        .executeTakeFirst();
      if (Number(closed.numUpdatedRows) === 0) return undefined;
      const row = await db.selectFrom("review_items").selectAll().where("id", "=", id).executeTakeFirst();
      return row === undefined ? undefined : toItem(row);
    },
  };
}
