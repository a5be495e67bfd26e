/**
 * Webhook deliveries retried on their own: when a failed one may be tried again, and when it was
 * given up (a dead letter, left to the next poll).
 */
import type { Kysely } from "kysely";
import type { Migration } from "kysely/migration";

export const migration0011InboxRetries: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable("webhook_inbox").addColumn("next_attempt_at", "text").execute();
    await db.schema.alterTable("webhook_inbox").addColumn("dead_at", "text").execute();
  },
  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable("webhook_inbox").dropColumn("dead_at").execute();
    await db.schema.alterTable("webhook_inbox").dropColumn("next_attempt_at").execute();
  },
};
