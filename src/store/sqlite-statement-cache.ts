/**
 * Prepared statements kept for reuse. Kysely's SQLite driver prepares every query it runs, and
 * preparing costs more than running for the short queries the stages make (a profile of a
 * 20,000-contact first sync spent more time in `prepare` than in SQLite itself). The same SQL text
 * gets the same statement back, unless that one is busy (a streamed query still iterating), in
 * which case a fresh one is prepared. The least recently used statements go beyond `max`.
 */
import type BetterSqlite3 from "better-sqlite3";
import type { SqliteDatabase } from "kysely";

export function withStatementCache(db: BetterSqlite3.Database, max = 512): SqliteDatabase {
  const cache = new Map<string, BetterSqlite3.Statement>();
  return {
    close: () => {
      cache.clear();
      db.close();
    },
    prepare: (sql) => {
      const cached = cache.get(sql);
      if (cached !== undefined) {
        if (cached.busy) return db.prepare(sql);
        // Map order is insertion order: re-inserting marks it as the most recently used.
        cache.delete(sql);
        cache.set(sql, cached);
        return cached;
      }
      const statement = db.prepare(sql);
      cache.set(sql, statement);
      if (cache.size > max) {
        const oldest = cache.keys().next();
        if (oldest.done !== true) cache.delete(oldest.value);
      }
      return statement;
    },
  };
}
