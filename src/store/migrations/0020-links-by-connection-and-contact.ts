/**
 * Links by connection and contact: a whole-pair plan walks its pair's contact ids in order, page by
 * page, and with many pairs in one store (an installation serving many organisations) a walk of the
 * contact index meets every other pair's contacts too. With this index each connection's contacts
 * after a point are an index range, so a page costs its own contacts, not the store's.
 */
import type { Kysely } from "kysely";
import type { Migration } from "kysely/migration";

export const migration0020LinksByConnectionAndContact: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createIndex("links_connection_contact")
      .on("links")
      .columns(["connection_id", "contact_id"])
      .execute();
  },
  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.dropIndex("links_connection_contact").execute();
  },
};
