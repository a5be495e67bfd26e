/**
 * A seal on every ledger row: a keyed MAC of the row's hash under a key kept outside the database
 * (derived from CONCORD_SECRET_KEY), so someone who can edit the database cannot rewrite the chain
 * unnoticed. Null on rows written without a key.
 */
import type { Kysely } from "kysely";
import type { Migration } from "kysely/migration";

export const migration0012LedgerSeals: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable("consent_events").addColumn("seal", "text").execute();
  },
  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable("consent_events").dropColumn("seal").execute();
  },
};
