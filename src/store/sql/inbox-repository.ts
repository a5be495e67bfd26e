/** SQL implementation of `InboxRepository`: webhook deliveries stored before they are acknowledged. */
import { sql, type Kysely, type Selectable } from "kysely";
import { newId } from "../new-id";
import { JsonValueSchema, type InboxItem, type InboxRepository, type StoreDialect } from "../ports";
import type { Database, WebhookInboxTable } from "../schema";
import { isoNow, type SqlContext } from "./sql-context";

const toItem = (row: Selectable<WebhookInboxTable>): InboxItem => ({
  id: row.id,
  connection_id: row.connection_id,
  received_at: row.received_at,
  changes: JsonValueSchema.parse(JSON.parse(row.changes_json)),
  attempts: row.attempts,
  last_error: row.last_error,
  processed_at: row.processed_at,
  next_attempt_at: row.next_attempt_at,
  dead_at: row.dead_at,
});

/** Rows a statement: within SQLite's 32,766 bound parameters (9 a row), and PostgreSQL's 65,535. */
const ROWS_A_STATEMENT = 1_000;

export function inboxRepository(ctx: SqlContext, dialect: StoreDialect): InboxRepository {
  const { db } = ctx;
  return {
    async add(connection_id, changes) {
      const row: Selectable<WebhookInboxTable> = {
        id: newId("whk", ctx.clock()),
        connection_id,
        received_at: isoNow(ctx),
        changes_json: JSON.stringify(changes),
        attempts: 0,
        last_error: null,
        processed_at: null,
        next_attempt_at: null,
        dead_at: null,
      };
      await db.insertInto("webhook_inbox").values(row).execute();
      return toItem(row);
    },
    async addMany(deliveries, alongside = []) {
      const received_at = isoNow(ctx);
      const rows: Selectable<WebhookInboxTable>[] = deliveries.map((d) => ({
        id: newId("whk", ctx.clock()),
        connection_id: d.connection_id,
        received_at,
        changes_json: JSON.stringify(d.changes),
        attempts: 0,
        last_error: null,
        processed_at: null,
        next_attempt_at: null,
        dead_at: null,
      }));
      if (rows.length === 0 && alongside.length === 0) return;
      // One statement with no transaction of its own: a commit is the intake's main cost.
      if (
        dialect === "postgres" &&
        rows.length > 0 &&
        rows.length <= ROWS_A_STATEMENT &&
        alongside.length > 0
      ) {
        await db
          .with("stored", (w) => w.insertInto("webhook_inbox").values(rows))
          .selectNoFrom(alongside.map((expression, i) => sql`${expression}`.as(`alongside_${String(i)}`)))
          .execute();
        return;
      }
      if (rows.length <= ROWS_A_STATEMENT && alongside.length === 0) {
        if (rows.length > 0) await db.insertInto("webhook_inbox").values(rows).execute();
        return;
      }
      const write = async (tx: Kysely<Database>): Promise<void> => {
        for (let i = 0; i < rows.length; i += ROWS_A_STATEMENT)
          await tx
            .insertInto("webhook_inbox")
            .values(rows.slice(i, i + ROWS_A_STATEMENT))
            .execute();
        for (const expression of alongside) await sql`select ${expression}`.execute(tx);
      };
      if (db.isTransaction) await write(db);
      else await db.transaction().execute(write);
    },
    async pending(limit, options = {}) {
      const now = isoNow(ctx);
      let q = db
        .selectFrom("webhook_inbox")
        .selectAll()
        .where("processed_at", "is", null)
        .where("dead_at", "is", null)
        .where((eb) => eb.or([eb("next_attempt_at", "is", null), eb("next_attempt_at", "<=", now)]));
      if (options.connection_id !== undefined) q = q.where("connection_id", "=", options.connection_id);
      if (options.exclude !== undefined && options.exclude.length > 0)
        q = q.where("connection_id", "not in", [...options.exclude]);
      const rows = await q.orderBy("received_at").orderBy("id").limit(limit).execute();
      return rows.map(toItem);
    },
    async connectionsDue() {
      const now = isoNow(ctx);
      const rows = await db
        .selectFrom("webhook_inbox")
        .select("connection_id")
        .distinct()
        .where("processed_at", "is", null)
        .where("dead_at", "is", null)
        .where((eb) => eb.or([eb("next_attempt_at", "is", null), eb("next_attempt_at", "<=", now)]))
        .orderBy("connection_id")
        .execute();
      return rows.map((r) => r.connection_id);
    },
    async markProcessed(ids) {
      const at = isoNow(ctx);
      for (let i = 0; i < ids.length; i += 500)
        await db
          .updateTable("webhook_inbox")
          .set({ processed_at: at })
          .where("id", "in", ids.slice(i, i + 500))
          .execute();
    },
    async markFailed(id, error, next) {
      await db
        .updateTable("webhook_inbox")
        .set((eb) => ({
          attempts: eb("attempts", "+", 1),
          last_error: error.slice(0, 2000),
          ...(next === "dead" ? { dead_at: isoNow(ctx) } : { next_attempt_at: next.retry_at }),
        }))
        .where("id", "=", id)
        .execute();
    },
    async countPending() {
      const row = await db
        .selectFrom("webhook_inbox")
        .select((eb) => eb.fn.countAll<number | string>().as("n"))
        .where("processed_at", "is", null)
        .where("dead_at", "is", null)
        .executeTakeFirstOrThrow();
      return Number(row.n);
    },
    async countDead(since) {
      let q = db
        .selectFrom("webhook_inbox")
        .select((eb) => eb.fn.countAll<number | string>().as("n"))
        .where("dead_at", "is not", null);
      if (since !== undefined) q = q.where("dead_at", ">=", since);
      const row = await q.executeTakeFirstOrThrow();
      return Number(row.n);
    },
    async prune(before, limit) {
      // One statement a batch: a backlog is deleted in a few commits, not one per few hundred rows.
      const result = await db
        .deleteFrom("webhook_inbox")
        .where("id", "in", (eb) =>
          eb
            .selectFrom("webhook_inbox")
            .select("id")
            .where((w) =>
              w.or([
                w("processed_at", "<", before),
                w.and([w("processed_at", "is", null), w("dead_at", "<", before)]),
              ]),
            )
            .limit(limit),
        )
        .executeTakeFirst();
      return Number(result.numDeletedRows);
    },
  };
}
