/** Links say how they were made, so an opt-out from a record matched only by its address can be reported as such. */
import type { Kysely } from "kysely";
import type { Migration } from "kysely/migration";

export const migration0002LinkOrigin: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    // Existing links predate the distinction: "observed" claims nothing about who made the record.
    await db.schema
      .alterTable("links")
      .addColumn("origin", "text", (c) => c.notNull().defaultTo("observed"))
      .execute();
  },
  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable("links").dropColumn("origin").execute();
  },
};
