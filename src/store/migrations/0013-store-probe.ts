/** One row readiness writes to: `/readyz` proves the store takes writes (not locked, not full). */
import { sql, type Kysely } from "kysely";
import type { Migration } from "kysely/migration";

export const STORE_PROBE_ID = "readiness";

export const migration0013StoreProbe: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable("store_probe")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("checked_at", "text", (c) => c.notNull())
      .execute();
    await sql`insert into store_probe (id, checked_at) values (${STORE_PROBE_ID}, ${new Date(0).toISOString()})`.execute(
      db,
    );
  },
  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.dropTable("store_probe").execute();
  },
};
