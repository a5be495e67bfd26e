/** Personal links: a contact's links are revoked by moving their generation on (every older link fails). */
import type { Kysely } from "kysely";
import type { Migration } from "kysely/migration";

export const migration0009LinkRevocations: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable("link_generations")
      .addColumn("contact_id", "text", (c) => c.primaryKey())
      .addColumn("generation", "integer", (c) => c.notNull())
      .addColumn("revoked_at", "text", (c) => c.notNull())
      .execute();
  },
  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.dropTable("link_generations").execute();
  },
};
