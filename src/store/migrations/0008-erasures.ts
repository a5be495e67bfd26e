/**
 * Erasure (DESIGN.md §2 rule 8): the instance's settings (the suppression list's salt) and one row per
 * erasure request, which keeps what was done in each system and no personal data.
 */
import type { Kysely } from "kysely";
import type { Migration } from "kysely/migration";

export const migration0008Erasures: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable("settings")
      .addColumn("key", "text", (c) => c.primaryKey())
      .addColumn("value", "text", (c) => c.notNull())
      .addColumn("updated_at", "text", (c) => c.notNull())
      .execute();
    await db.schema
      .createTable("erasures")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("address_hashes_json", "text", (c) => c.notNull())
      .addColumn("contact_ids_json", "text", (c) => c.notNull())
      .addColumn("requested_by", "text", (c) => c.notNull())
      .addColumn("reference", "text")
      .addColumn("status", "text", (c) => c.notNull())
      .addColumn("systems_json", "text", (c) => c.notNull())
      .addColumn("requested_at", "text", (c) => c.notNull())
      .addColumn("completed_at", "text")
      .execute();
  },
  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.dropTable("erasures").execute();
    await db.schema.dropTable("settings").execute();
  },
};
