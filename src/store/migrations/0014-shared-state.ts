/**
 * State every process of one installation shares (ADR 26): operator sign-in sessions (by the hash
 * of their id, never the id itself), Connects waiting for the vendor's answer (by the hash of their
 * state, so the answer may come back to any server process), and the per-second pause a vendor
 * asked for on each connection's API budget, so a pause one worker was told of holds every worker
 * back.
 */
import type { Kysely } from "kysely";
import type { Migration } from "kysely/migration";

export const migration0014SharedState: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable("sessions")
      .addColumn("id_hash", "text", (c) => c.primaryKey())
      .addColumn("csrf_token", "text", (c) => c.notNull())
      .addColumn("created_at", "text", (c) => c.notNull())
      .addColumn("last_seen", "text", (c) => c.notNull())
      .execute();
    await db.schema.createIndex("sessions_last_seen").on("sessions").column("last_seen").execute();
    await db.schema
      .createTable("connect_flows")
      .addColumn("state_hash", "text", (c) => c.primaryKey())
      .addColumn("connection_id", "text", (c) => c.notNull())
      .addColumn("browser_hash", "text", (c) => c.notNull())
      .addColumn("redirect_uri", "text", (c) => c.notNull())
      .addColumn("verifier", "text")
      .addColumn("expires_at", "text", (c) => c.notNull())
      .execute();
    await db.schema.alterTable("api_budgets").addColumn("paused_until", "text").execute();
  },
  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable("api_budgets").dropColumn("paused_until").execute();
    await db.schema.dropTable("connect_flows").execute();
    await db.schema.dropTable("sessions").execute();
  },
};
