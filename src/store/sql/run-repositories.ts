/** SQL implementations of the run-side repositories: runs, stored plans, operations and their outcomes. */
import type { Selectable } from "kysely";
import { newId } from "../new-id";
import {
  JsonValueSchema,
  OperationStatusSchema,
  OutcomeStatusSchema,
  PlanCountsSchema,
  RunKindSchema,
  RunStatusSchema,
  type Operation,
  type OperationRepository,
  type OutcomeRepository,
  type PlanRepository,
  type Run,
  type RunRepository,
  type StoredPlan,
} from "../ports";
import type { OperationsTable, PlansTable, RunsTable } from "../schema";
import { parseJsonColumn, toJsonColumn } from "./json-column";
import { affected, isoNow, type SqlContext } from "./sql-context";

const OPERATION_ID = /^op_[A-Za-z0-9_-]{8,}$/;
const CHUNK = 100;

const toRun = (row: Selectable<RunsTable>): Run => ({
  id: row.id,
  kind: RunKindSchema.parse(row.kind),
  pair_id: row.pair_id,
  status: RunStatusSchema.parse(row.status),
  started_at: row.started_at,
  finished_at: row.finished_at,
  summary:
    row.summary_json === null
      ? null
      : parseJsonColumn(JsonValueSchema, row.summary_json, "runs.summary_json"),
});

export function runRepository(ctx: SqlContext): RunRepository {
  const { db } = ctx;
  const get = async (id: string): Promise<Run | undefined> => {
    const row = await db.selectFrom("runs").selectAll().where("id", "=", id).executeTakeFirst();
    return row === undefined ? undefined : toRun(row);
  };
  return {
    async create(run) {
      const row: Selectable<RunsTable> = {
        id: run.id ?? newId("run", ctx.clock()),
        kind: run.kind,
        pair_id: run.pair_id ?? null,
        status: "running",
        started_at: isoNow(ctx),
        finished_at: null,
        summary_json: null,
      };
      await db.insertInto("runs").values(row).execute();
      return toRun(row);
    },

    async finish(id, status, summary) {
      await db
        .updateTable("runs")
        .set({
          status,
          finished_at: isoNow(ctx),
          ...(summary !== undefined && { summary_json: toJsonColumn(summary) }),
        })
        .where("id", "=", id)
        .execute();
      return get(id);
    },

    async interruptRunning(startedBefore, options = {}) {
      let q = db
        .selectFrom("runs")
        .select("id")
        .where("status", "=", "running")
        .where("started_at", "<", startedBefore);
      if (options.pair_id !== undefined) q = q.where("pair_id", "=", options.pair_id);
      const rows = await q.execute();
      for (const { id } of rows)
        await db
          .updateTable("runs")
          .set({
            status: "failed",
            finished_at: isoNow(ctx),
            summary_json: toJsonColumn({
              error: {
                code: "interrupted",
                message:
                  "The process running it stopped before it finished; what it had not committed is planned again by the next run.",
              },
            }),
          })
          .where("id", "=", id)
          .where("status", "=", "running")
          .execute();
      return rows.map((r) => r.id);
    },

    get,
  };
}

const toPlan = (row: Selectable<PlansTable>): StoredPlan => ({
  id: row.id,
  run_id: row.run_id,
  pair_id: row.pair_id,
  plan: parseJsonColumn(JsonValueSchema, row.plan_json, `plans.plan_json of ${row.id}`),
  counts: parseJsonColumn(PlanCountsSchema, row.counts_json, `plans.counts_json of ${row.id}`),
  created_at: row.created_at,
});

export function planRepository(ctx: SqlContext): PlanRepository {
  const { db } = ctx;
  return {
    async save(plan) {
      const row: Selectable<PlansTable> = {
        id: plan.id ?? newId("plan", ctx.clock()),
        run_id: plan.run_id,
        pair_id: plan.pair_id ?? null,
        plan_json: toJsonColumn(plan.plan),
        counts_json: toJsonColumn(PlanCountsSchema.parse(plan.counts)),
        created_at: isoNow(ctx),
      };
      await db.insertInto("plans").values(row).execute();
      return toPlan(row);
    },

    async get(id) {
      const row = await db.selectFrom("plans").selectAll().where("id", "=", id).executeTakeFirst();
      return row === undefined ? undefined : toPlan(row);
    },

    async forRun(run_id) {
      const rows = await db
        .selectFrom("plans")
        .selectAll()
        .where("run_id", "=", run_id)
        .orderBy("id")
        .execute();
      return rows.map(toPlan);
    },
  };
}

const toOperation = (row: Selectable<OperationsTable>): Operation => ({
  id: row.id,
  plan_id: row.plan_id,
  kind: row.kind,
  target_connection: row.target_connection,
  contact_id: row.contact_id,
  payload: parseJsonColumn(JsonValueSchema, row.payload_json, `operations.payload_json of ${row.id}`),
  status: OperationStatusSchema.parse(row.status),
  created_at: row.created_at,
  updated_at: row.updated_at,
});

export function operationRepository(ctx: SqlContext): OperationRepository {
  const { db } = ctx;
  return {
    async insertMany(operations) {
      const now = isoNow(ctx);
      const rows = operations.map((op): Selectable<OperationsTable> => {
        if (!OPERATION_ID.test(op.id)) throw new Error(`operations: id ${op.id} is not an op_ id`);
        return {
          id: op.id,
          plan_id: op.plan_id,
          kind: op.kind,
          target_connection: op.target_connection,
          contact_id: op.contact_id ?? null,
          payload_json: toJsonColumn(op.payload),
          status: "pending",
          created_at: now,
          updated_at: now,
        };
      });
      let inserted = 0;
      for (let i = 0; i < rows.length; i += CHUNK) {
        const result = await db
          .insertInto("operations")
          .values(rows.slice(i, i + CHUNK))
          .onConflict((oc) => oc.column("id").doNothing())
          .executeTakeFirst();
        inserted += affected(result.numInsertedOrUpdatedRows);
      }
      return { inserted };
    },

    async get(id) {
      const row = await db.selectFrom("operations").selectAll().where("id", "=", id).executeTakeFirst();
      return row === undefined ? undefined : toOperation(row);
    },

    async forPlan(plan_id, status) {
      let query = db.selectFrom("operations").selectAll().where("plan_id", "=", plan_id);
      if (status !== undefined) query = query.where("status", "=", status);
      const rows = await query.orderBy("id").execute();
      return rows.map(toOperation);
    },

    async setStatus(id, status) {
      const result = await db
        .updateTable("operations")
        .set({ status, updated_at: isoNow(ctx) })
        .where("id", "=", id)
        .executeTakeFirst();
      return affected(result.numUpdatedRows) > 0;
    },
  };
}

export function outcomeRepository(ctx: SqlContext): OutcomeRepository {
  const { db } = ctx;
  return {
    async record(outcome) {
      const last = await db
        .selectFrom("outcomes")
        .select((eb) => eb.fn.max("attempt").as("attempt"))
        .where("operation_id", "=", outcome.operation_id)
        .executeTakeFirst();
      const row = {
        operation_id: outcome.operation_id,
        attempt: (last?.attempt ?? 0) + 1,
        status: outcome.status,
        detail_json: toJsonColumn(outcome.detail),
        retry_at: outcome.retry_at ?? null,
        recorded_at: isoNow(ctx),
      };
      await db.insertInto("outcomes").values(row).execute();
      return {
        operation_id: row.operation_id,
        attempt: row.attempt,
        status: outcome.status,
        detail: outcome.detail,
        retry_at: row.retry_at,
        recorded_at: row.recorded_at,
      };
    },

    async forOperation(operation_id) {
      const rows = await db
        .selectFrom("outcomes")
        .selectAll()
        .where("operation_id", "=", operation_id)
        .orderBy("attempt")
        .execute();
      return rows.map((row) => ({
        operation_id: row.operation_id,
        attempt: row.attempt,
        status: OutcomeStatusSchema.parse(row.status),
        detail: parseJsonColumn(JsonValueSchema, row.detail_json, "outcomes.detail_json"),
        retry_at: row.retry_at,
        recorded_at: row.recorded_at,
      }));
    },
  };
}
