/**
 * The per-second rate of each connection's API budget, shared by every process of an installation
 * (ADR 26): the times of its latest calls, so workers on several machines keep within the vendor's
 * per-second limit together rather than each of them on its own.
 */
import type { Kysely } from "kysely";
import type { Migration } from "kysely/migration";

export const migration0021SharedCallRate: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable("api_budgets").addColumn("recent_calls", "text").execute();
  },
  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable("api_budgets").dropColumn("recent_calls").execute();
  },
};
