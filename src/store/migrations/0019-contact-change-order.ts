/**
 * The order contacts change in (ADR 34): whenever a contact's plan revision moves on, the contact
 * also records where in the store's order of commits that change lies, in an indexed column, so
 * "which contacts changed since this instant" is an index range, not a read of every contact.
 *
 * - PostgreSQL: `changed_xid`, the id of the transaction that last wrote the contact row (every
 *   update of a contact row moves its revision on, ADR 30). Transaction ids are handed out when a
 *   transaction first writes, not when it commits, so an instant is a snapshot
 *   (`pg_current_snapshot()`), and a contact changed after it is one whose transaction the snapshot
 *   does not see (`pg_visible_in_snapshot`), all of them at or after the snapshot's `xmin`.
 * - SQLite: `changed_seq`, one more than the highest in the store, written by a trigger when the
 *   revision moves on. SQLite commits one writer at a time, each writing after the last commit,
 *   so the numbers rise in commit order and an instant is the highest number committed.
 *
 * Rows written before this migration have none (null): they changed before any instant taken
 * after it. A contact made and not yet linked has none on SQLite either: it belongs to no pair
 * until a link is written, which moves its revision on.
 */
import { PostgresAdapter, sql, type Kysely } from "kysely";
import type { Migration } from "kysely/migration";

export const migration0019ContactChangeOrder: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    const statements =
      db.getExecutor().adapter instanceof PostgresAdapter
        ? [
            // Nullable, so adding it rewrites nothing; new rows take their transaction's id.
            "alter table contacts add column changed_xid xid8",
            "alter table contacts alter column changed_xid set default pg_current_xact_id()",
            "create index contacts_changed_xid on contacts (changed_xid)",
            `create function concord_contact_changed() returns trigger language plpgsql as $$
             begin new.changed_xid := pg_current_xact_id(); return new; end $$`,
            `create trigger contacts_changed before update on contacts for each row
               execute function concord_contact_changed()`,
          ]
        : [
            "alter table contacts add column changed_seq integer",
            "create index contacts_changed_seq on contacts (changed_seq)",
            // Fired by every statement that moves a revision on (the contacts_plan_rev trigger and
            // each table's own); it writes only changed_seq, which fires none of them again.
            `create trigger contacts_changed after update of plan_rev on contacts for each row
               when new.plan_rev is not old.plan_rev
               begin update contacts set changed_seq = coalesce((select max(changed_seq) from contacts), 0) + 1
                 where id = new.id; end`,
          ];
    for (const statement of statements) await sql.raw(statement).execute(db);
  },
  async down(db: Kysely<unknown>): Promise<void> {
    const statements =
      db.getExecutor().adapter instanceof PostgresAdapter
        ? [
            "drop trigger if exists contacts_changed on contacts",
            "drop function if exists concord_contact_changed()",
            "drop index if exists contacts_changed_xid",
            "alter table contacts drop column changed_xid",
          ]
        : [
            "drop trigger if exists contacts_changed",
            "drop index if exists contacts_changed_seq",
            "alter table contacts drop column changed_seq",
          ];
    for (const statement of statements) await sql.raw(statement).execute(db);
  },
};
