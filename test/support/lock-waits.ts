/** Waiting for an event, not a time: until another PostgreSQL session is blocked on a lock. */
import { sql, type Kysely } from "kysely";
import type { Database } from "../../src/store/schema";

/**
 * Resolves once a session of the current database waits on a lock: a row lock (`Lock`) whose
 * statement mentions `query_like`, or an advisory lock (`advisory`).
 */
export async function untilBlocked(
  db: Kysely<Database>,
  on: { row_lock_in: string } | { advisory: true },
): Promise<void> {
  for (;;) {
    const blocked =
      "advisory" in on
        ? await sql<{ n: number }>`
            select count(*)::int as n from pg_stat_activity
            where datname = current_database() and wait_event = 'advisory'`.execute(db)
        : await sql<{ n: number }>`
            select count(*)::int as n from pg_stat_activity
            where datname = current_database() and wait_event_type = 'Lock'
              and query like ${`%${on.row_lock_in}%`}`.execute(db);
    if ((blocked.rows[0]?.n ?? 0) > 0) return;
    await new Promise((resolve) => setImmediate(resolve));
  }
}
