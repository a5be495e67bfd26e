/** Each connection's API budget (calls used in the current quota period), kept across restarts. */
import type { Kysely } from "kysely";
import type { Migration } from "kysely/migration";

export const migration0005ApiBudgets: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable("api_budgets")
      .addColumn("connection_id", "text", (c) => c.primaryKey())
      .addColumn("period_start", "text", (c) => c.notNull())
      .addColumn("used", "integer", (c) => c.notNull())
      .addColumn("blocked_until", "text")
      .addColumn("updated_at", "text", (c) => c.notNull())
      .execute();
  },
  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.dropTable("api_budgets").execute();
  },
};
