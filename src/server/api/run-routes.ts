/** Runs and plans: the run list, one run with its stored plan, a sync (or dry run) now, and applying a stored plan. */
import { z } from "zod";
import { applyStoredPlan, pairOfStoredPlan } from "../../runs/apply-stored-plan";
import {
  ApplyResponseSchema,
  IdParamsSchema,
  RunDetailSchema,
  RunListSchema,
  RunsQuerySchema,
  SyncRequestSchema,
  SyncResponseSchema,
} from "../api-schemas";
import { defineRoute, fail, type ApiRoute } from "./api-route";
import type { ApiContext } from "./api-deps";
import { listRuns, runSummary } from "./run-rows";

/** Names shown beside a plan's skipped and waiting records. */
const MAX_NAMED_CONTACTS = 1_000;

const PlanContactsSchema = z.object({
  skipped: z.array(z.object({ contact_id: z.string() }).loose()).optional(),
  waiting: z.array(z.object({ contact_id: z.string() }).loose()).optional(),
});

export function runRoutes(ctx: ApiContext): ApiRoute[] {
  const { store } = ctx;
  return [
    defineRoute({
      method: "GET",
      url: "/api/runs",
      tag: "runs",
      summary: "Runs, newest first",
      access: "session",
      query: RunsQuerySchema,
      response: RunListSchema,
      handler: async ({ query }) => ({
        runs: await listRuns(store, {
          limit: query.limit,
          ...(query.pair !== undefined ? { pair_id: query.pair } : {}),
        }),
      }),
    }),
    defineRoute({
      method: "GET",
      url: "/api/runs/:id",
      tag: "runs",
      summary:
        "One run with its stored plan (counts by operation and reason, gains, skips) and the plan's operations by status",
      access: "session",
      params: IdParamsSchema,
      response: RunDetailSchema,
      errors: [404],
      handler: async ({ params }) => {
        const row = await store.db
          .selectFrom("runs")
          .selectAll()
          .where("id", "=", params.id)
          .executeTakeFirst();
        if (!row) return fail(404, "run_not_found", `No run ${params.id}.`);
        const plans = await store.plans.forRun(row.id);
        const plan = plans.at(-1);
        const outcomes: Record<string, number> = {};
        const contacts: Record<string, { name: string | null; email: string | null }> = {};
        if (plan) {
          const byStatus = await store.db
            .selectFrom("operations")
            .select(["status", (eb) => eb.fn.countAll<number | string>().as("n")])
            .where("plan_id", "=", plan.id)
            .groupBy("status")
            .execute();
          for (const r of byStatus) outcomes[r.status] = Number(r.n);
          const named = PlanContactsSchema.safeParse(plan.plan);
          const ids = named.success
            ? [
                ...new Set([
                  ...(named.data.skipped ?? []).map((s) => s.contact_id),
                  ...(named.data.waiting ?? []).map((s) => s.contact_id),
                ]),
              ].slice(0, MAX_NAMED_CONTACTS)
            : [];
          for (let i = 0; i < ids.length; i += 500) {
            const rows = await store.db
              .selectFrom("contacts")
              .select(["id", "given_name", "family_name", "organization_name", "primary_email"])
              .where("id", "in", ids.slice(i, i + 500))
              .execute();
            for (const c of rows)
              contacts[c.id] = {
                name:
                  c.organization_name ??
                  ([c.given_name, c.family_name].filter((s) => s !== null && s !== "").join(" ") || null),
                email: c.primary_email,
              };
          }
        }
        return {
          run: runSummary(row),
          plan: plan
            ? {
                id: plan.id,
                created_at: plan.created_at,
                summary: plan.plan,
                pending_operations: outcomes["pending"] ?? 0,
              }
            : null,
          outcomes,
          contacts,
        };
      },
    }),
    defineRoute({
      method: "POST",
      url: "/api/pairs/:id/sync",
      tag: "runs",
      summary:
        "Run a sync of the pair now (queued behind its running run); `dry_run` stops once the plan is stored",
      access: "session",
      params: IdParamsSchema,
      body: SyncRequestSchema,
      response: SyncResponseSchema,
      errors: [404],
      handler: async ({ params, body }) => {
        if (!ctx.config.pairs.some((p) => p.id === params.id))
          return fail(404, "pair_not_found", `No pair "${params.id}" in the config.`);
        const [report] = await ctx.runtime.syncNow(params.id, { dry_run: body.dry_run });
        return { report: report ?? null };
      },
    }),
    defineRoute({
      method: "POST",
      url: "/api/plans/:id/apply",
      tag: "runs",
      summary:
        "Apply a stored plan (a dry run's): its operations still valid now are executed, the others reported as stale",
      access: "session",
      params: IdParamsSchema,
      response: ApplyResponseSchema,
      errors: [404, 409],
      handler: async ({ params }) => {
        const found = await pairOfStoredPlan(ctx.syncDeps, params.id);
        if (!found.ok)
          return fail(
            found.error.code === "plan_not_found" ? 404 : 409,
            found.error.code,
            found.error.message,
          );
        const result = await ctx.runtime.runExclusive(found.pair.id, () =>
          applyStoredPlan(ctx.syncDeps, params.id),
        );
        if (!result.ok)
          return fail(
            result.error.code === "plan_not_found" ? 404 : 409,
            result.error.code,
            result.error.message,
          );
        ctx.metrics.recordRun({ pair_id: result.report.pair_id, kind: "sync", status: result.report.status });
        return { report: result.report };
      },
    }),
  ];
}
