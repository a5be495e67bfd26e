/**
 * Which contacts changed since an instant (ADR 34), as an index range over the order contacts
 * change in (migration 0019), not a read of every contact. An instant is opaque text naming its
 * dialect: on PostgreSQL a snapshot (transaction ids are handed out at a transaction's first write,
 * not at its commit, so "after" means "not seen by the snapshot"); on SQLite the highest change
 * number committed (one writer commits at a time, so numbers rise in commit order).
 */
import { sql, type RawBuilder, type SqlBool } from "kysely";
import type { StoreSession } from "./ports";
import { errorCode } from "../core/error-code";

const PG = "pg:";
const SQLITE = "sqlite:";

/** The instant now: every change committed so far is at or before it. */
export async function changeInstant(store: Pick<StoreSession, "db" | "dialect">): Promise<string> {
  if (store.dialect === "postgres") {
    const r = await sql<{ at: string }>`select pg_current_snapshot()::text as at`.execute(store.db);
    return PG + (r.rows[0]?.at ?? "");
  }
  const r = await sql<{
    at: number | null;
  }>`select coalesce(max(changed_seq), 0) as at from contacts`.execute(store.db);
  return SQLITE + String(r.rows[0]?.at ?? 0);
}

/**
 * Whether any contact for which `relevant` holds changed after `since`, and the instant this was
 * decided at (one statement, so no change falls between the two). An instant of another dialect
 * or that cannot be read counts as a change.
 */
export async function changedSince(
  store: Pick<StoreSession, "db" | "dialect">,
  since: string,
  /** Of a contact row aliased `c`. */
  relevant: RawBuilder<SqlBool>,
): Promise<{ changed: boolean; at: string }> {
  /** What cannot be decided counts as a change, as of now. */
  const changedNow = async () => ({ changed: true, at: await changeInstant(store) });
  if (store.dialect === "postgres") {
    if (!since.startsWith(PG)) return changedNow();
    const snapshot = since.slice(PG.length);
    try {
      const r = await sql<{ at: string; changed: boolean }>`
        select pg_current_snapshot()::text as at, exists (
          select 1 from contacts c
          where c.changed_xid >= pg_snapshot_xmin(cast(${snapshot} as pg_snapshot))
            and not pg_visible_in_snapshot(c.changed_xid, cast(${snapshot} as pg_snapshot))
            and ${relevant}) as changed`.execute(store.db);
      const row = r.rows[0];
      return row === undefined ? await changedNow() : { changed: row.changed, at: PG + row.at };
    } catch (error) {
      if (isInvalidSnapshot(error)) return await changedNow();
      throw error;
    }
  }
  const seq = since.startsWith(SQLITE) ? Number(since.slice(SQLITE.length)) : Number.NaN;
  if (!Number.isSafeInteger(seq) || seq < 0) return changedNow();
  const r = await sql<{ at: number | null; changed: number }>`
    select coalesce((select max(changed_seq) from contacts), 0) as at, exists (
      select 1 from contacts c where c.changed_seq > ${seq} and ${relevant}) as changed`.execute(store.db);
  const row = r.rows[0];
  return row === undefined ? changedNow() : { changed: row.changed !== 0, at: SQLITE + String(row.at ?? 0) };
}

/** PostgreSQL's "invalid input syntax" (22P02) for a snapshot that is not one. */
const isInvalidSnapshot = (error: unknown): boolean => errorCode(error) === "22P02";
