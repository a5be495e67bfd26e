/**
 * Records as last read now carry consent as typed facts (`consent_state`) instead of the vendors'
 * fields. Snapshots stored before carry none, so every connection's next pull reads everything
 * again: its checkpoint is dropped, and the first sync after the upgrade refreshes every snapshot
 * before it plans (a full read's worth of calls, once).
 */
import { sql, type Kysely } from "kysely";
import type { Migration } from "kysely/migration";

export const migration0004TypedConsentSnapshots: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await sql`delete from checkpoints where stream = 'pull'`.execute(db);
  },
  async down(): Promise<void> {
    // Nothing to undo: a dropped checkpoint only means one full read.
  },
};
