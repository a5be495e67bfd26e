/**
 * Applies a stored plan (STYLE.md rule 6: plans are data; `apply` executes a stored plan). The pair's
 * changes since the plan are read (as a sync reads them) and the pair is planned again; only the
 * stored plan's operations the fresh plan still contains (same deterministic id: the same change to
 * the same record) and that were not applied since are executed. An operation the state has moved
 * past is reported as stale and not executed; work the fresh plan adds is left for the next sync.
 * The post-steps are syncPair's own (`linkAndCommit`).
 */
import { z } from "zod";
import type { Pair } from "../config/concord-config";
import type { Plan } from "../planner/plan";
import type { StoreSession } from "../store/ports";
import { executePlan, type ExecutionReport } from "../executor/execute-plan";
import type { PullReport } from "../pipeline/pull-connection";
import { resolvePair } from "../pipeline/resolve-pair";
import {
  asJson,
  executionSummary,
  linkAndCommit,
  planFromStore,
  recordLapses,
  pullPair,
  savePlan,
  type SyncDeps,
} from "./sync-pair";
import { errorMessage } from "../core/error-code";

/** An operation of the stored plan that the fresh plan no longer contains: not executed. */
export type StaleOperation = {
  op_id: string;
  connection_id: string | null;
  kind: string | null;
  message: string;
};

export type ApplyStoredPlanReport = {
  /** The run that applied the plan (kind `sync`). */
  run_id: string;
  pair_id: string;
  /** The stored plan that was applied. */
  plan_id: string;
  /** The plan row this run stored: the operations it executed (those still valid). */
  executed_plan_id?: string;
  status: "succeeded" | "failed";
  error?: { code: string; message: string };
  /** Operations executed: in the stored plan and still in the fresh one. */
  operations: number;
  stale: StaleOperation[];
  /** Operations the fresh plan has that the stored one had not: left for the next sync. */
  new_since_plan: number;
  /** The reads of what changed since the plan (none with `pull: false`). */
  pulls: PullReport[];
  execution?: ExecutionReport;
  relinks: PullReport[];
  baselines_updated: number;
};

export type ApplyStoredPlanError = {
  code: "plan_not_found" | "pair_not_configured";
  message: string;
};

export type ApplyStoredPlanResult =
  { ok: true; report: ApplyStoredPlanReport } | { ok: false; error: ApplyStoredPlanError };

/** A plan's operation ids, as syncPair (PlanSummary) or reconcile (`{ reconcile, operations: [ids] }`) stored them. */
const StoredPlanOperationsSchema = z.object({
  operations: z.array(z.union([z.string(), z.object({ op_id: z.string() }).loose()])),
});

/** The pair a stored plan belongs to, or why it cannot be applied. */
export async function pairOfStoredPlan(
  deps: Pick<SyncDeps, "store" | "config">,
  planId: string,
): Promise<{ ok: true; pair: Pair } | { ok: false; error: ApplyStoredPlanError }> {
  const stored = await deps.store.plans.get(planId);
  if (!stored) return { ok: false, error: { code: "plan_not_found", message: `No stored plan ${planId}.` } };
  const pair = deps.config.pairs.find((p) => p.id === stored.pair_id);
  if (!pair)
    return {
      ok: false,
      error: {
        code: "pair_not_configured",
        message: `Plan ${planId} belongs to pair "${stored.pair_id ?? "(none)"}", which the config no longer has.`,
      },
    };
  return { ok: true, pair };
}

/**
 * Applies stored plan `planId`. Run it as a run of the pair (`EngineRuntime.runExclusive`) so it
 * never overlaps a sync; never throws for vendor or config trouble (the report says), only for bugs.
 */
export async function applyStoredPlan(
  deps: SyncDeps,
  planId: string,
  options: { pull?: boolean } = {},
): Promise<ApplyStoredPlanResult> {
  const found = await pairOfStoredPlan(deps, planId);
  if (!found.ok) return found;
  const pair = found.pair;
  const storedIds = await storedOperationIds(deps.store, planId);

  const run = await deps.store.runs.create({ kind: "sync", pair_id: pair.id });
  const report: ApplyStoredPlanReport = {
    run_id: run.id,
    pair_id: pair.id,
    plan_id: planId,
    status: "succeeded",
    operations: 0,
    stale: [],
    new_since_plan: 0,
    pulls: [],
    relinks: [],
    baselines_updated: 0,
  };
  const finish = async (): Promise<ApplyStoredPlanResult> => {
    await Promise.all([...deps.connections.values()].map((c) => c.settled()));
    await deps.store.runs.finish(run.id, report.status, asJson(runSummary(report)));
    return { ok: true, report };
  };
  try {
    const resolved = await resolvePair(deps.config, pair, deps.connections, deps.store);
    if (!resolved.ok) {
      report.status = "failed";
      report.error = { code: resolved.error.code, message: resolved.error.message };
      return await finish();
    }
    const r = resolved.value;
    if (options.pull !== false) report.pulls = await pullPair(deps, pair, r, false);
    const { plan, baselines } = await recordLapses(deps, pair, await planFromStore(deps, r), (lapses) =>
      planFromStore(deps, r, { lapses: lapses ? "act" : "defer" }),
    );
    // Applied (or refused for good) since the plan was stored: not again, even where a system's
    // change has not been read back yet.
    const done = new Set<string>();
    for (let i = 0; i < storedIds.length; i += 500) {
      const rows = await deps.store.db
        .selectFrom("operations")
        .select("id")
        .where("id", "in", storedIds.slice(i, i + 500))
        .where("status", "in", ["succeeded", "failed"])
        .execute();
      for (const row of rows) done.add(row.id);
    }
    const fresh = new Set(plan.operations.map((o) => o.op_id));
    const wanted = new Set(storedIds.filter((id) => !done.has(id)));
    const still: Plan["operations"] = plan.operations.filter((o) => wanted.has(o.op_id));
    const inStored = new Set(storedIds);
    report.new_since_plan = plan.operations.filter((o) => !inStored.has(o.op_id)).length;
    const staleIds = storedIds.filter((id) => !fresh.has(id) || done.has(id));
    report.stale = await describeStale(deps.store, planId, staleIds);

    const subset = restrictPlan(plan, still);
    report.executed_plan_id = await savePlan(deps.store, run.id, pair.id, subset, baselines, true);
    report.baselines_updated = baselines.size;
    // What the stored plan left pending and is no longer valid leaves the queue.
    if (staleIds.length > 0)
      for (let i = 0; i < staleIds.length; i += 500)
        await deps.store.db
          .updateTable("operations")
          .set({ status: "skipped", updated_at: deps.store.clock().toISOString() })
          .where("id", "in", staleIds.slice(i, i + 500))
          .where("plan_id", "=", planId)
          .where("status", "=", "pending")
          .execute();

    report.operations = still.length;
    report.execution = await executePlan(
      {
        store: deps.store,
        connections: deps.connections,
        now: deps.now,
        ...(deps.onProgress ? { onProgress: deps.onProgress } : {}),
        ...(deps.batch_size !== undefined ? { batch_size: deps.batch_size } : {}),
      },
      subset,
    );
    const after = await linkAndCommit(deps, pair, r, still, report.execution, run.id);
    report.relinks = after.relinks;
    report.baselines_updated += after.baselines_updated;
    return await finish();
  } catch (error) {
    await deps.store.runs.finish(run.id, "failed", {
      error: errorMessage(error),
    });
    throw error;
  }
}

/** The plan with only `operations`: its operation counts and gains follow; skips and waits stay as planned. */
function restrictPlan(plan: Plan, operations: Plan["operations"]): Plan {
  const counts: Plan["counts"]["operations"] = {};
  const gains: Plan["gains"] = Object.fromEntries(Object.keys(plan.gains).map((k) => [k, 0]));
  for (const o of operations) {
    const byKind = (counts[o.connection_id] ??= {});
    const c = (byKind[o.operation.kind] ??= { operations: 0, contacts: 0 });
    c.operations += 1;
    c.contacts += o.contact_ids.length;
    if (o.operation.kind === "upsert_contacts")
      gains[o.connection_id] = (gains[o.connection_id] ?? 0) + o.contact_ids.length;
  }
  return { ...plan, operations, counts: { ...plan.counts, operations: counts }, gains };
}

async function storedOperationIds(store: StoreSession, planId: string): Promise<string[]> {
  const stored = await store.plans.get(planId);
  const parsed = StoredPlanOperationsSchema.safeParse(stored?.plan);
  if (parsed.success) return parsed.data.operations.map((o) => (typeof o === "string" ? o : o.op_id));
  // A plan document of another shape: its operation rows are what it holds.
  return (await store.operations.forPlan(planId)).map((o) => o.id);
}

async function describeStale(
  store: StoreSession,
  planId: string,
  ids: readonly string[],
): Promise<StaleOperation[]> {
  const out: StaleOperation[] = [];
  for (const id of ids) {
    const row = await store.operations.get(id);
    const moved = row !== undefined && row.plan_id !== planId;
    out.push({
      op_id: id,
      connection_id: row?.target_connection ?? null,
      kind: row?.kind ?? null,
      message:
        row?.status === "succeeded"
          ? "Already applied since the plan was made."
          : row?.status === "failed"
            ? "The system refused it for good; it is not retried."
            : moved
              ? "A later plan superseded it and the state has moved on: planning now no longer yields it."
              : "Planning now no longer yields it: the records or the ledger changed since the plan was made.",
    });
  }
  return out;
}

function runSummary(report: ApplyStoredPlanReport): Record<string, unknown> {
  return {
    applied_plan_id: report.plan_id,
    ...(report.executed_plan_id !== undefined ? { plan_id: report.executed_plan_id } : {}),
    ...(report.error ? { error: report.error } : {}),
    pulls: report.pulls.map((p) => ({
      connection_id: p.connection_id,
      records_seen: p.records_seen,
      records_changed: p.records_changed,
      consent_events_appended: p.consent_events_appended,
      error: p.error,
    })),
    operations: report.operations,
    stale: report.stale.length,
    new_since_plan: report.new_since_plan,
    ...(report.execution ? { execution: executionSummary(report.execution) } : {}),
    baselines_updated: report.baselines_updated,
  };
}
