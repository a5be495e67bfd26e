/** A durable inbox for webhook deliveries: a delivery is stored before it is acknowledged, then processed. */
import type { Kysely } from "kysely";
import type { Migration } from "kysely/migration";

export const migration0003WebhookInbox: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable("webhook_inbox")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("connection_id", "text", (c) => c.notNull())
      .addColumn("received_at", "text", (c) => c.notNull())
      .addColumn("changes_json", "text", (c) => c.notNull())
      .addColumn("attempts", "integer", (c) => c.notNull().defaultTo(0))
      .addColumn("last_error", "text")
      .addColumn("processed_at", "text")
      .execute();
    await db.schema
      .createIndex("webhook_inbox_pending")
      .on("webhook_inbox")
      .columns(["processed_at", "received_at"])
      .execute();
  },
  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.dropTable("webhook_inbox").execute();
  },
};
