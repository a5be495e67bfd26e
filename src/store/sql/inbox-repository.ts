/** SQL implementation of `InboxRepository`: webhook deliveries stored before they are acknowledged. */
import type { Selectable } from "kysely";
import { newId } from "../new-id";
import { JsonValueSchema, type InboxItem, type InboxRepository } from "../ports";
import type { WebhookInboxTable } from "../schema";
import { isoNow, type SqlContext } from "./sql-context";

const toItem = (row: Selectable<WebhookInboxTable>): InboxItem => ({
  id: row.id,
  connection_id: row.connection_id,
  received_at: row.received_at,
  changes: JsonValueSchema.parse(JSON.parse(row.changes_json)),
  attempts: row.attempts,
  last_error: row.last_error,
  processed_at: row.processed_at,
});

export function inboxRepository(ctx: SqlContext): InboxRepository {
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
      };
      await db.insertInto("webhook_inbox").values(row).execute();
      return toItem(row);
    },
    async pending(limit, connection_id) {
      let q = db.selectFrom("webhook_inbox").selectAll().where("processed_at", "is", null);
      if (connection_id !== undefined) q = q.where("connection_id", "=", connection_id);
      const rows = await q.orderBy("received_at").orderBy("id").limit(limit).execute();
      return rows.map(toItem);
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
    async markFailed(id, error) {
      await db
        .updateTable("webhook_inbox")
        .set((eb) => ({ attempts: eb("attempts", "+", 1), last_error: error.slice(0, 2000) }))
        .where("id", "=", id)
        .execute();
    },
    async countPending() {
      const row = await db
        .selectFrom("webhook_inbox")
        .select((eb) => eb.fn.countAll<number | string>().as("n"))
        .where("processed_at", "is", null)
        .executeTakeFirstOrThrow();
      return Number(row.n);
    },
  };
}
