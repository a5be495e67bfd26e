/**
 * Failed sign-ins, shared by every server process of an installation (ADR 26): each client group's
 * failures and the time of its last one, and the failures from everyone counted in windows of ten
 * seconds. Several servers behind a load balancer slow a password guesser down together, and a
 * restart does not forget a guesser.
 */
import type { Kysely } from "kysely";
import type { Migration } from "kysely/migration";

export const migration0018SignInFailures: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable("sign_in_failures")
      .addColumn("client_group", "text", (c) => c.primaryKey())
      .addColumn("failures", "integer", (c) => c.notNull())
      .addColumn("last_at", "text", (c) => c.notNull())
      .execute();
    await db.schema
      .createIndex("sign_in_failures_last_at")
      .on("sign_in_failures")
      .column("last_at")
      .execute();
    await db.schema
      .createTable("sign_in_failure_windows")
      .addColumn("window_start", "text", (c) => c.primaryKey())
      .addColumn("failures", "integer", (c) => c.notNull())
      .execute();
  },
  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.dropTable("sign_in_failure_windows").execute();
    await db.schema.dropTable("sign_in_failures").execute();
  },
};
