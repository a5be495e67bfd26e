/**
 * The records Concord's imports are about to make, kept until they are linked: a bulk import does
 * not say which records it made, so the platform is read back and each new record is linked by its
 * address. Stored before the import is sent, the claim survives a crash between the import and that
 * read: whichever read links the record (the same run's, the next poll's, a webhook's) links it as
 * Concord's, never as an upload it only matched by address.
 */
import type { Kysely } from "kysely";
import type { Migration } from "kysely/migration";

export const migration0023ImportClaims: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable("import_claims")
      .addColumn("connection_id", "text", (c) => c.notNull())
      .addColumn("contact_id", "text", (c) => c.notNull())
      .addColumn("created_at", "text", (c) => c.notNull())
      .addPrimaryKeyConstraint("import_claims_pk", ["connection_id", "contact_id"])
      .execute();
  },
  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.dropTable("import_claims").execute();
  },
};
