/** SQL implementation of `LinkRepository`: which external record in which connection is which contact. */
import type { LinkRepository } from "../ports";
import { affected, isoNow, type SqlContext } from "./sql-context";

export function linkRepository(ctx: SqlContext): LinkRepository {
  const { db } = ctx;
  const find = (connection_id: string, external_id: string) =>
    db
      .selectFrom("links")
      .selectAll()
      .where("connection_id", "=", connection_id)
      .where("external_id", "=", external_id)
      .executeTakeFirst();

  return {
    async create(link) {
      const now = isoNow(ctx);
      const row = { ...link, created_at: now, updated_at: now };
      // ON CONFLICT DO NOTHING rather than catching the violation: a failed statement would abort a PostgreSQL transaction.
      const result = await db
        .insertInto("links")
        .values(row)
        .onConflict((oc) => oc.columns(["connection_id", "external_id"]).doNothing())
        .executeTakeFirst();
      if (affected(result.numInsertedOrUpdatedRows) === 1) return { kind: "created", link: row };
      const existing = await find(link.connection_id, link.external_id);
      if (existing === undefined) throw new Error("links: insert conflicted but no row was found");
      return { kind: "conflict", code: "link_exists", existing };
    },

    find,

    async forContact(contact_id) {
      return db
        .selectFrom("links")
        .selectAll()
        .where("contact_id", "=", contact_id)
        .orderBy("connection_id")
        .orderBy("external_id")
        .execute();
    },

    async moveTo(connection_id, external_id, contact_id) {
      const result = await db
        .updateTable("links")
        .set({ contact_id, updated_at: isoNow(ctx) })
        .where("connection_id", "=", connection_id)
        .where("external_id", "=", external_id)
        .executeTakeFirst();
      return affected(result.numUpdatedRows) > 0;
    },

    async remove(connection_id, external_id) {
      const result = await db
        .deleteFrom("links")
        .where("connection_id", "=", connection_id)
        .where("external_id", "=", external_id)
        .executeTakeFirst();
      return affected(result.numDeletedRows) > 0;
    },
  };
}
