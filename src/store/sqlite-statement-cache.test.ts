import BetterSqlite3 from "better-sqlite3";
import { Kysely, SqliteDialect, sql } from "kysely";
import { afterEach, describe, expect, it } from "vitest";
import { withStatementCache } from "./sqlite-statement-cache";

let raw: BetterSqlite3.Database;

afterEach(() => {
  if (raw.open) raw.close();
});

describe("withStatementCache", () => {
  it("hands the same statement back for the same SQL, and prepares each text once", () => {
    raw = new BetterSqlite3(":memory:");
    let prepared = 0;
    const prepare = raw.prepare.bind(raw);
    raw.prepare = (text: string) => {
      prepared += 1;
      return prepare(text);
    };
    const db = withStatementCache(raw);
    const a = db.prepare("select 1 as x");
    expect(db.prepare("select 1 as x")).toBe(a);
    expect(db.prepare("select 2 as x")).not.toBe(a);
    expect(prepared).toBe(2);
  });

  it("prepares a fresh statement while the cached one is still iterating", () => {
    raw = new BetterSqlite3(":memory:");
    const db = withStatementCache(raw);
    const first = db.prepare("select 1 as x union all select 2");
    const rows = first.iterate([]);
    rows.next(); // mid-iteration: this statement is busy
    const second = db.prepare("select 1 as x union all select 2");
    expect(second).not.toBe(first);
    rows.return?.();
    expect(db.prepare("select 1 as x union all select 2")).toBe(first);
  });

  it("serves Kysely's queries and streams, and closes the database with it", async () => {
    raw = new BetterSqlite3(":memory:");
    const db = new Kysely<{ t: { n: number } }>({
      dialect: new SqliteDialect({ database: withStatementCache(raw) }),
    });
    await db.schema.createTable("t").addColumn("n", "integer").execute();
    for (const n of [1, 2, 3]) await db.insertInto("t").values({ n }).execute(); // one statement, three runs
    const query = db.selectFrom("t").select("n").orderBy("n");
    const streamed: number[] = [];
    for await (const row of query.stream()) streamed.push(row.n);
    expect(streamed).toEqual([1, 2, 3]);
    expect((await query.execute()).map((r) => r.n)).toEqual([1, 2, 3]);
    expect((await sql<{ c: number }>`select count(*) as c from t`.execute(db)).rows[0]?.c).toBe(3);
    await db.destroy();
    expect(raw.open).toBe(false);
  });

  it("forgets the least recently used statement beyond its size", () => {
    raw = new BetterSqlite3(":memory:");
    const db = withStatementCache(raw, 2);
    const one = db.prepare("select 1");
    const two = db.prepare("select 2");
    expect(db.prepare("select 1")).toBe(one); // now the most recent
    db.prepare("select 3"); // evicts "select 2"
    expect(db.prepare("select 1")).toBe(one);
    expect(db.prepare("select 2")).not.toBe(two);
  });
});
