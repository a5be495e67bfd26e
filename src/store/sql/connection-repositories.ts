/** SQL implementations of the per-connection repositories: health, stored (encrypted) credentials, API budgets, alerts. */
import type { Selectable } from "kysely";
import {
  HealthStatusSchema,
  type AlertRepository,
  type PlatformRejectionRepository,
  type BudgetRepository,
  type ConnectionHealth,
  type CredentialRepository,
  type HealthRepository,
} from "../ports";
import type { ConnectionsHealthTable } from "../schema";
import { affected, isoNow, type SqlContext } from "./sql-context";

const toHealth = (row: Selectable<ConnectionsHealthTable>): ConnectionHealth => ({
  connection_id: row.connection_id,
  status: HealthStatusSchema.parse(row.status),
  reason: row.reason,
  since: row.since,
  checked_at: row.checked_at,
});

export function healthRepository(ctx: SqlContext): HealthRepository {
  const { db } = ctx;
  const get = async (connection_id: string): Promise<ConnectionHealth | undefined> => {
    const row = await db
      .selectFrom("connections_health")
      .selectAll()
      .where("connection_id", "=", connection_id)
      .executeTakeFirst();
    return row === undefined ? undefined : toHealth(row);
  };
  return {
    async report(connection_id, status, reason = null) {
      const now = isoNow(ctx);
      // `since` moves only when the status changes, so "broken since 09:12" survives repeated checks.
      await db
        .insertInto("connections_health")
        .values({ connection_id, status, reason, since: now, checked_at: now })
        .onConflict((oc) =>
          oc.column("connection_id").doUpdateSet((eb) => ({
            status: eb.ref("excluded.status"),
            reason: eb.ref("excluded.reason"),
            checked_at: eb.ref("excluded.checked_at"),
            since: eb
              .case()
              .when("connections_health.status", "=", eb.ref("excluded.status"))
              .then(eb.ref("connections_health.since"))
              .else(eb.ref("excluded.since"))
              .end(),
          })),
        )
        .execute();
      const health = await get(connection_id);
      if (health === undefined) throw new Error("connections_health: row vanished after upsert");
      return health;
    },

    get,

    async list() {
      const rows = await db.selectFrom("connections_health").selectAll().orderBy("connection_id").execute();
      return rows.map(toHealth);
    },
  };
}

export function credentialRepository(ctx: SqlContext): CredentialRepository {
  const { db } = ctx;
  return {
    async put(connection_id, ciphertext, key_id = null) {
      await db
        .insertInto("credentials")
        .values({ connection_id, ciphertext, key_id, updated_at: isoNow(ctx) })
        .onConflict((oc) =>
          oc.column("connection_id").doUpdateSet((eb) => ({
            ciphertext: eb.ref("excluded.ciphertext"),
            key_id: eb.ref("excluded.key_id"),
            updated_at: eb.ref("excluded.updated_at"),
          })),
        )
        .execute();
    },

    async get(connection_id) {
      return db
        .selectFrom("credentials")
        .selectAll()
        .where("connection_id", "=", connection_id)
        .executeTakeFirst();
    },

    async remove(connection_id) {
      const result = await db
        .deleteFrom("credentials")
        .where("connection_id", "=", connection_id)
        .executeTakeFirst();
      return affected(result.numDeletedRows) > 0;
    },
  };
}

export function budgetRepository(ctx: SqlContext): BudgetRepository {
  const { db } = ctx;
  return {
    async get(connection_id) {
      const row = await db
        .selectFrom("api_budgets")
        .select(["period_start", "used", "blocked_until"])
        .where("connection_id", "=", connection_id)
        .executeTakeFirst();
      return row === undefined
        ? undefined
        : { period_start: row.period_start, used: row.used, blocked_until: row.blocked_until };
    },
    async put(connection_id, state) {
      const updated_at = isoNow(ctx);
      await db
        .insertInto("api_budgets")
        .values({ connection_id, ...state, updated_at })
        .onConflict((oc) =>
          oc.column("connection_id").doUpdateSet({
            period_start: state.period_start,
            used: state.used,
            blocked_until: state.blocked_until,
            updated_at,
          }),
        )
        .execute();
    },
  };
}

export function alertRepository(ctx: SqlContext): AlertRepository {
  const { db } = ctx;
  const get = async (key: string) =>
    db.selectFrom("alerts").selectAll().where("key", "=", key).executeTakeFirst();
  return {
    async open(alert) {
      const before = await get(alert.key);
      const opened_at = isoNow(ctx);
      await db
        .insertInto("alerts")
        .values({ ...alert, opened_at, resolved_at: null })
        .onConflict((oc) =>
          oc
            .column("key")
            .doUpdateSet(
              before === undefined || before.resolved_at !== null
                ? { message: alert.message, code: alert.code, opened_at, resolved_at: null }
                : { message: alert.message },
            ),
        )
        .execute();
      return before === undefined || before.resolved_at !== null;
    },
    async resolve(key) {
      const result = await db
        .updateTable("alerts")
        .set({ resolved_at: isoNow(ctx) })
        .where("key", "=", key)
        .where("resolved_at", "is", null)
        .executeTakeFirst();
      return affected(result.numUpdatedRows) > 0;
    },
    get,
    async listOpen() {
      return db
        .selectFrom("alerts")
        .selectAll()
        .where("resolved_at", "is", null)
        .orderBy("opened_at")
        .execute();
    },
  };
}

export function platformRejectionRepository(ctx: SqlContext): PlatformRejectionRepository {
  const { db } = ctx;
  return {
    async record(r) {
      const rejected_at = isoNow(ctx);
      await db
        .insertInto("platform_rejections")
        .values({ ...r, rejected_at })
        .onConflict((oc) =>
          oc.columns(["contact_id", "connection_id"]).doUpdateSet({
            email_match_key: r.email_match_key,
            code: r.code,
            message: r.message,
            rejected_at,
          }),
        )
        .execute();
    },
    async all() {
      return db
        .selectFrom("platform_rejections")
        .selectAll()
        .orderBy("contact_id")
        .orderBy("connection_id")
        .execute();
    },
  };
}
