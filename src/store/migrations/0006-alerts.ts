/** Alerts raised once and kept until what caused them is fixed, so a restart does not repeat them. */
import type { Kysely } from "kysely";
import type { Migration } from "kysely/migration";

export const migration0006Alerts: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable("alerts")
      .addColumn("key", "text", (c) => c.primaryKey())
      .addColumn("connection_id", "text")
      .addColumn("code", "text", (c) => c.notNull())
      .addColumn("message", "text", (c) => c.notNull())
      .addColumn("opened_at", "text", (c) => c.notNull())
      .addColumn("resolved_at", "text")
      .execute();
  },
  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.dropTable("alerts").execute();
  },
};
