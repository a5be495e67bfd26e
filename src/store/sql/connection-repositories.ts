/** SQL implementations of the per-connection repositories: health, stored (encrypted) credentials, API budgets, alerts. */
import { sql, type Kysely, type Selectable } from "kysely";
import {
  type ApiBudgetState,
  type HealthStatus,
  type SessionRepository,
  type SignInFailureRepository,
  type ConnectFlowRepository,
  type StoreDialect,
  HealthStatusSchema,
  type AlertRepository,
  type PlatformRejectionRepository,
  type BudgetRepository,
  type ConnectionHealth,
  type CredentialRepository,
  type HealthRepository,
} from "../ports";
import { nextCallTime } from "../../core/call-window";
import type { ConnectionsHealthTable, Database } from "../schema";
import { affected, isoNow, type SqlContext } from "./sql-context";

/** Tables kept to a number of rows, with the key of a row and the column that orders them by age. */
const KEPT = {
  sessions: { key: "id_hash", by: "last_seen" },
  connect_flows: { key: "state_hash", by: "expires_at" },
  sign_in_failures: { key: "client_group", by: "last_at" },
} as const;

/** Deletes the rows of `table` beyond its `keep` newest (at most 1,000 a call: it runs on every write). */
async function keepNewest(db: Kysely<Database>, table: keyof typeof KEPT, keep: number): Promise<void> {
  const { key, by } = KEPT[table];
  const beyond = await sql<{ key: string }>`
    select ${sql.ref(key)} as key from ${sql.table(table)}
    order by ${sql.ref(by)} desc, ${sql.ref(key)} limit 1000 offset ${keep}`.execute(db);
  if (beyond.rows.length > 0)
    await sql`delete from ${sql.table(table)} where ${sql.ref(key)} in (${sql.join(
      beyond.rows.map((r) => r.key),
    )})`.execute(db);
}

const toHealth = (row: Selectable<ConnectionsHealthTable>): ConnectionHealth => ({
  connection_id: row.connection_id,
  status: HealthStatusSchema.parse(row.status),
  reason: row.reason,
  since: row.since,
  checked_at: row.checked_at,
});

export function healthRepository(ctx: SqlContext, dialect: StoreDialect): HealthRepository {
  const { db } = ctx;
  const getOn = async (
    on: Kysely<Database>,
    connection_id: string,
  ): Promise<ConnectionHealth | undefined> => {
    const row = await on
      .selectFrom("connections_health")
      .selectAll()
      .where("connection_id", "=", connection_id)
      .executeTakeFirst();
    return row === undefined ? undefined : toHealth(row);
  };
  return {
    async report(connection_id, status, reason = null) {
      const now = isoNow(ctx);
      const run = async (tx: Kysely<Database>) => {
        // The first report makes the row; a second one at the same moment waits for it and updates.
        const made = await tx
          .insertInto("connections_health")
          .values({ connection_id, status, reason, since: now, checked_at: now })
          .onConflict((oc) => oc.column("connection_id").doNothing())
          .returning("connection_id")
          .executeTakeFirst();
        let previous: HealthStatus | null = null;
        if (made === undefined) {
          let q = tx
            .selectFrom("connections_health")
            .select("status")
            .where("connection_id", "=", connection_id);
          // SQLite writes one transaction at a time; PostgreSQL locks the row until the update.
          if (dialect === "postgres") q = q.forUpdate();
          const before = await q.executeTakeFirstOrThrow();
          previous = HealthStatusSchema.parse(before.status);
          // `since` moves only when the status changes, so "broken since 09:12" survives repeated checks.
          await tx
            .updateTable("connections_health")
            .set({ status, reason, checked_at: now, ...(previous === status ? {} : { since: now }) })
            .where("connection_id", "=", connection_id)
            .execute();
        }
        const health = await getOn(tx, connection_id);
        if (health === undefined) throw new Error("connections_health: row vanished after upsert");
        return { ...health, previous };
      };
      return db.isTransaction ? run(db) : db.transaction().execute(run);
    },

    get: (connection_id) => getOn(db, connection_id),

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

const later = (a: string | null, b: string | null): string | null =>
  a === null ? b : b === null ? a : a > b ? a : b;

export function budgetRepository(ctx: SqlContext, dialect: StoreDialect): BudgetRepository {
  const { db } = ctx;
  const get = async (connection_id: string): Promise<ApiBudgetState | undefined> => {
    const row = await db
      .selectFrom("api_budgets")
      .select(["period_start", "used", "blocked_until", "paused_until"])
      .where("connection_id", "=", connection_id)
      .executeTakeFirst();
    return row;
  };
  /** Runs `fn` on the connection's row, made first if it is missing and locked until `fn` ends. */
  const locked = <T>(
    connection_id: string,
    period_start: string,
    fn: (tx: Kysely<Database>, kept: LockedBudget, updated_at: string) => Promise<T>,
  ): Promise<T> => {
    const updated_at = isoNow(ctx);
    const run = async (tx: Kysely<Database>): Promise<T> => {
      const lock = () => {
        const q = tx
          .selectFrom("api_budgets")
          .select(["period_start", "used", "blocked_until", "paused_until", "recent_calls"])
          .where("connection_id", "=", connection_id);
        // SQLite writes one transaction at a time; PostgreSQL locks the row until the update.
        return (dialect === "postgres" ? q.forUpdate() : q).executeTakeFirst();
      };
      const kept = await lock();
      if (kept !== undefined) return fn(tx, kept, updated_at);
      // The first call: the row is made before it is locked, so two first calls never race on it.
      await tx
        .insertInto("api_budgets")
        .values({
          connection_id,
          period_start,
          used: 0,
          blocked_until: null,
          paused_until: null,
          recent_calls: null,
          updated_at,
        })
        .onConflict((oc) => oc.column("connection_id").doNothing())
        .execute();
      const made = await lock();
      if (made === undefined)
        throw new Error(`the API budget of connection ${connection_id} could not be made`);
      return fn(tx, made, updated_at);
    };
    return db.isTransaction ? run(db) : db.transaction().execute(run);
  };
  return {
    get,
    add(connection_id, change) {
      return locked(connection_id, change.period_start, async (tx, kept, updated_at) => {
        const keptStart = Date.parse(kept.period_start);
        const ownStart = Date.parse(change.period_start);
        // A period ends after its length, or when the vendor said its spent quota is replenished.
        const replenished = kept.blocked_until !== null && ownStart >= Date.parse(kept.blocked_until);
        const ended = Number.isNaN(keptStart) || ownStart >= keptStart + change.period_ms || replenished;
        const next: ApiBudgetState = {
          period_start: ended ? change.period_start : kept.period_start,
          used: (ended ? 0 : kept.used) + change.calls,
          blocked_until: replenished ? change.blocked_until : later(kept.blocked_until, change.blocked_until),
          paused_until: later(kept.paused_until, change.paused_until),
        };
        await tx
          .updateTable("api_budgets")
          .set({ ...next, updated_at })
          .where("connection_id", "=", connection_id)
          .execute();
        return next;
      });
    },
    reserveCall(connection_id, { now_ms, window }) {
      return locked(connection_id, new Date(now_ms).toISOString(), async (tx, kept, updated_at) => {
        const calls = nextCallTime(recentCalls(kept.recent_calls), now_ms, window);
        await tx
          .updateTable("api_budgets")
          .set({ recent_calls: JSON.stringify(calls.recent), updated_at })
          .where("connection_id", "=", connection_id)
          .execute();
        return calls.at;
      });
    },
  };
}

type LockedBudget = ApiBudgetState & { recent_calls: string | null };

/** The kept call times; anything else (a column never written, a damaged value) is no calls. */
function recentCalls(kept: string | null): number[] {
  if (kept === null) return [];
  try {
    const parsed: unknown = JSON.parse(kept);
    return Array.isArray(parsed)
      ? parsed.filter((t): t is number => typeof t === "number" && Number.isFinite(t))
      : [];
  } catch {
    return [];
  }
}

export function connectFlowRepository(ctx: SqlContext): ConnectFlowRepository {
  const { db } = ctx;
  return {
    async put(flow, at) {
      await db.deleteFrom("connect_flows").where("expires_at", "<=", at.now).execute();
      await keepNewest(db, "connect_flows", Math.max(0, at.keep - 1));
      await db.insertInto("connect_flows").values(flow).execute();
    },
    async take(state_hash) {
      return db
        .deleteFrom("connect_flows")
        .where("state_hash", "=", state_hash)
        .returningAll()
        .executeTakeFirst();
    },
  };
}

export function sessionRepository(ctx: SqlContext): SessionRepository {
  const { db } = ctx;
  return {
    async put(session) {
      await db.insertInto("sessions").values(session).execute();
    },
    async touch(id_hash, at) {
      const row = await db
        .selectFrom("sessions")
        .selectAll()
        .where("id_hash", "=", id_hash)
        .executeTakeFirst();
      if (row === undefined) return undefined;
      if (row.last_seen < at.idle_since || row.created_at < at.created_since) {
        await db.deleteFrom("sessions").where("id_hash", "=", id_hash).execute();
        return undefined;
      }
      await db.updateTable("sessions").set({ last_seen: at.now }).where("id_hash", "=", id_hash).execute();
      return { ...row, last_seen: at.now };
    },
    async remove(id_hash) {
      await db.deleteFrom("sessions").where("id_hash", "=", id_hash).execute();
    },
    async prune(at, keep) {
      await db
        .deleteFrom("sessions")
        .where((eb) => eb.or([eb("last_seen", "<", at.idle_since), eb("created_at", "<", at.created_since)]))
        .execute();
      await keepNewest(db, "sessions", keep);
    },
  };
}

export function alertRepository(ctx: SqlContext): AlertRepository {
  const { db } = ctx;
  const get = async (key: string) =>
    db.selectFrom("alerts").selectAll().where("key", "=", key).executeTakeFirst();
  return {
    async open(alert) {
      const opened_at = isoNow(ctx);
      // One statement: of two processes raising the same problem at once, exactly one is told it
      // opened it (and alerts); a row that is open already is left as it is.
      const opened = await db
        .insertInto("alerts")
        .values({ ...alert, opened_at, resolved_at: null })
        .onConflict((oc) =>
          oc
            .column("key")
            .doUpdateSet({ message: alert.message, code: alert.code, opened_at, resolved_at: null })
            .where("alerts.resolved_at", "is not", null),
        )
        .returning("key")
        .executeTakeFirst();
      if (opened !== undefined) return true;
      await db
        .updateTable("alerts")
        .set({ message: alert.message })
        .where("key", "=", alert.key)
        .where("resolved_at", "is", null)
        .execute();
      return false;
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

export function signInFailureRepository(ctx: SqlContext): SignInFailureRepository {
  const { db } = ctx;
  return {
    async of(group, forget_before) {
      const row = await db
        .selectFrom("sign_in_failures")
        .select(["failures", "last_at"])
        .where("client_group", "=", group)
        .where("last_at", ">", forget_before)
        .executeTakeFirst();
      return row === undefined ? undefined : { failures: row.failures, last_at: row.last_at };
    },
    async take(group, seen, next, forget_before) {
      if (seen === undefined) {
        // No row, or one forgotten: an insert, or an update of the forgotten row only.
        const result = await db
          .insertInto("sign_in_failures")
          .values({ client_group: group, failures: next.failures, last_at: next.last_at })
          .onConflict((oc) =>
            oc
              .column("client_group")
              .doUpdateSet((eb) => ({
                failures: eb.ref("excluded.failures"),
                last_at: eb.ref("excluded.last_at"),
              }))
              .where("sign_in_failures.last_at", "<=", forget_before),
          )
          .executeTakeFirst();
        return affected(result.numInsertedOrUpdatedRows) > 0;
      }
      const result = await db
        .updateTable("sign_in_failures")
        .set({ failures: next.failures, last_at: next.last_at })
        .where("client_group", "=", group)
        .where("failures", "=", seen.failures)
        .where("last_at", "=", seen.last_at)
        .executeTakeFirst();
      return affected(result.numUpdatedRows) > 0;
    },
    async clear(group) {
      await db.deleteFrom("sign_in_failures").where("client_group", "=", group).execute();
    },
    async countFailure(at) {
      await db
        .insertInto("sign_in_failure_windows")
        .values({ window_start: at.window_start, failures: 1 })
        .onConflict((oc) =>
          oc
            .column("window_start")
            .doUpdateSet((eb) => ({ failures: eb("sign_in_failure_windows.failures", "+", 1) })),
        )
        .execute();
      await db.deleteFrom("sign_in_failure_windows").where("window_start", "<", at.windows_before).execute();
      await db.deleteFrom("sign_in_failures").where("last_at", "<=", at.forget_before).execute();
      await keepNewest(db, "sign_in_failures", at.keep_groups);
    },
    async everyoneSince(since) {
      const row = await db
        .selectFrom("sign_in_failure_windows")
        .select((eb) => eb.fn.sum<number | string | null>("failures").as("n"))
        .where("window_start", ">=", since)
        .executeTakeFirst();
      return Number(row?.n ?? 0);
    },
  };
}
