/** Addresses a platform refused for good, per contact: skipped with the platform's reason, not retried each run. */
import type { Kysely } from "kysely";
import type { Migration } from "kysely/migration";

export const migration0007PlatformRejections: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable("platform_rejections")
      .addColumn("contact_id", "text", (c) => c.notNull())
      .addColumn("connection_id", "text", (c) => c.notNull())
      .addColumn("email_match_key", "text", (c) => c.notNull())
      .addColumn("code", "text", (c) => c.notNull())
      .addColumn("message", "text", (c) => c.notNull())
      .addColumn("rejected_at", "text", (c) => c.notNull())
      .addPrimaryKeyConstraint("platform_rejections_pk", ["contact_id", "connection_id"])
      .execute();
  },
  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.dropTable("platform_rejections").execute();
  },
};
