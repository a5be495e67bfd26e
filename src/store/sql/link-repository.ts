/** SQL implementation of `LinkRepository`: which external record in which connection is which contact. */
import { sql } from "kysely";
import { CLAIM_LIFETIME_MS, LinkOriginSchema, type Link, type LinkRepository } from "../ports";
import type { LinksTable } from "../schema";
import { affected, inChunks, isoNow, type SqlContext } from "./sql-context";
import { unindexed } from "../unindexed";

export function linkRepository(ctx: SqlContext): LinkRepository {
  const { db } = ctx;
  const find = async (connection_id: string, external_id: string): Promise<Link | undefined> => {
    const row = await db
      .selectFrom("links")
      .selectAll()
      .where("connection_id", "=", connection_id)
      .where("external_id", "=", external_id)
      .executeTakeFirst();
    return row === undefined ? undefined : toLink(row);
  };

  const dropClaims = async (connection_id: string, contact_ids: readonly string[]): Promise<void> => {
    for (const chunk of inChunks([...new Set(contact_ids)]))
      await db
        .deleteFrom("import_claims")
        .where("connection_id", "=", connection_id)
        .where("contact_id", "in", chunk)
        .execute();
  };

  return {
    async create(link) {
      const now = isoNow(ctx);
      const row: Link = { ...link, origin: link.origin ?? "observed", created_at: now, updated_at: now };
      // A record linked by its address that Concord's import made (a claim stored before the
      // import was sent) is Concord's: decided in the insert itself, no read before it.
      const claimable = row.origin === "matched_by_email";
      // ON CONFLICT DO NOTHING rather than catching the violation: a failed statement would abort a PostgreSQL transaction.
      const inserted = await db
        .insertInto("links")
        .values({
          ...row,
          origin: claimable
            ? sql<string>`case when exists (select 1 from import_claims where connection_id = ${row.connection_id} and contact_id = ${row.contact_id}) then 'concord' else 'matched_by_email' end`
            : row.origin,
        })
        .onConflict((oc) => oc.columns(["connection_id", "external_id"]).doNothing())
        .returning("origin")
        .executeTakeFirst();
      if (inserted !== undefined) {
        const origin = LinkOriginSchema.parse(inserted.origin);
        if (claimable && origin === "concord") await dropClaims(row.connection_id, [row.contact_id]);
        return { kind: "created", link: { ...row, origin } };
      }
      const existing = await find(link.connection_id, link.external_id);
      if (existing === undefined) throw new Error("links: insert conflicted but no row was found");
      return { kind: "conflict", code: "link_exists", existing };
    },

    find,

    async forContact(contact_id) {
      const rows = await db
        .selectFrom("links")
        .selectAll()
        .where("contact_id", "=", contact_id)
        .orderBy("connection_id")
        .orderBy("external_id")
        .execute();
      return rows.map(toLink);
    },

    async findMany(connection_id, external_ids) {
      const found = new Map<string, Link>();
      for (const chunk of inChunks([...new Set(external_ids)]))
        for (const row of await db
          .selectFrom("links")
          .selectAll()
          .where("connection_id", "=", connection_id)
          .where("external_id", "in", chunk)
          .execute())
          found.set(row.external_id, toLink(row));
      return found;
    },

    async forContacts(contact_ids) {
      const links = new Map<string, Link[]>();
      for (const chunk of inChunks([...new Set(contact_ids)]))
        for (const row of await db
          .selectFrom("links")
          .selectAll()
          .where("contact_id", "in", chunk)
          .execute()) {
          const held = links.get(row.contact_id);
          if (held === undefined) links.set(row.contact_id, [toLink(row)]);
          else held.push(toLink(row));
        }
      for (const held of links.values()) held.sort(byConnectionAndRecord);
      return links;
    },

    async claim(connection_id, contact_ids) {
      let n = 0;
      for (const chunk of inChunks(contact_ids)) {
        const result = await db
          .updateTable("links")
          .set({ origin: "concord", updated_at: isoNow(ctx) })
          // The contacts are the selective condition (unindexed.ts).
          .where(unindexed("connection_id"), "=", connection_id)
          .where("contact_id", "in", chunk)
          .where("origin", "=", "matched_by_email")
          .executeTakeFirst();
        n += affected(result.numUpdatedRows);
      }
      await dropClaims(connection_id, contact_ids);
      const expired = new Date(ctx.clock().getTime() - CLAIM_LIFETIME_MS).toISOString();
      await db
        .deleteFrom("import_claims")
        .where("connection_id", "=", connection_id)
        .where("created_at", "<", expired)
        .execute();
      return n;
    },

    async intendClaims(connection_id, contact_ids) {
      const now = isoNow(ctx);
      for (const chunk of inChunks([...new Set(contact_ids)]))
        await db
          .insertInto("import_claims")
          .values(chunk.map((contact_id) => ({ connection_id, contact_id, created_at: now })))
          .onConflict((oc) => oc.columns(["connection_id", "contact_id"]).doUpdateSet({ created_at: now }))
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

const toLink = (row: LinksTable): Link => ({
  ...row,
  origin: LinkOriginSchema.catch("observed").parse(row.origin),
});

/** `order by connection_id, external_id`. */
const byConnectionAndRecord = (a: Link, b: Link): number =>
  a.connection_id < b.connection_id
    ? -1
    : a.connection_id > b.connection_id
      ? 1
      : a.external_id < b.external_id
        ? -1
        : a.external_id > b.external_id
          ? 1
          : 0;
