/**
 * Sign-ups waiting for their confirmation (double opt-in). A request is not consent: it holds the
 * address only until it is confirmed, expires, or the address is erased.
 */
import type { Kysely } from "kysely";
import type { Migration } from "kysely/migration";

export const migration0010Signups: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable("signups")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("token_hash", "text", (c) => c.notNull().unique())
      .addColumn("email", "text", (c) => c.notNull())
      .addColumn("match_key", "text", (c) => c.notNull())
      .addColumn("first_name", "text")
      .addColumn("last_name", "text")
      .addColumn("topics_json", "text", (c) => c.notNull())
      .addColumn("lang", "text", (c) => c.notNull())
      .addColumn("wording", "text", (c) => c.notNull())
      .addColumn("request_ip", "text")
      .addColumn("request_user_agent", "text")
      .addColumn("requested_at", "text", (c) => c.notNull())
      .addColumn("expires_at", "text", (c) => c.notNull())
      .addColumn("status", "text", (c) => c.notNull())
      .addColumn("confirmed_at", "text")
      .addColumn("contact_id", "text")
      .addColumn("placed_at", "text")
      .addColumn("place_error", "text")
      .addColumn("place_attempted_at", "text")
      .execute();
    await db.schema.createIndex("signups_match_key").on("signups").column("match_key").execute();
    await db.schema.createIndex("signups_requested_at").on("signups").column("requested_at").execute();
    await db.schema.createIndex("signups_status").on("signups").column("status").execute();
  },
  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.dropTable("signups").execute();
  },
};
