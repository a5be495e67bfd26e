/**
 * What a whole-pair plan found for each contact it had nothing to do for: the fingerprint of the
 * rows and settings it was planned from, the records it skipped and why, and until when that holds.
 * A later plan of the same pair skips a contact whose fingerprint is unchanged (ADR 29).
 */
import type { Kysely } from "kysely";
import type { Migration } from "kysely/migration";

export const migration0016PlanMarks: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable("plan_marks")
      .addColumn("pair_id", "text", (c) => c.notNull())
      .addColumn("contact_id", "text", (c) => c.notNull())
      .addColumn("fingerprint", "text", (c) => c.notNull())
      .addColumn("skipped_json", "text", (c) => c.notNull())
      .addColumn("valid_until", "text")
      .addPrimaryKeyConstraint("plan_marks_pk", ["pair_id", "contact_id"])
      .execute();
  },
  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.dropTable("plan_marks").execute();
  },
};
