/**
 * Operations looked up by contact: planning asks each chunk of contacts which confirmation emails
 * were already sent, and explain and erasure read a person's operations. Without this index each
 * of those reads every operation the store ever planned.
 */
import type { Kysely } from "kysely";
import type { Migration } from "kysely/migration";

export const migration0015OperationsByContact: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createIndex("operations_contact_kind")
      .on("operations")
      .columns(["contact_id", "kind"])
      .execute();
  },
  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.dropIndex("operations_contact_kind").execute();
  },
};
