/**
 * Reconciliation: the latest report of each pair (as its run stored it), a new reconciliation (with
 * `fix`, the fixable differences fixed), and the differences as CSV.
 */
import { z } from "zod";
import { differencesCsv } from "../../runs/differences-csv";
import { reconcilePair, type ReconcileReport } from "../../runs/reconcile";
import {
  DifferenceSchema,
  ReconcileRequestSchema,
  ReconciliationSchema,
  type Reconciliation,
  type ReconciliationReport,
} from "../api-schemas";
import { defineRoute, fail, raw, type ApiRoute } from "./api-route";
import type { ApiContext } from "./api-deps";

/** A reconcile run's summary, as reconcilePair stores it (the whole report); other keys are dropped. */
const StoredReportSchema = z.object({
  pair_id: z.string(),
  run_id: z.string(),
  status: z.enum(["succeeded", "failed"]),
  error: z.object({ code: z.string(), message: z.string() }).optional(),
  contacts_compared: z.number().int(),
  opt_outs_by_connection: z.record(z.string(), z.number().int()),
  differences: z.array(DifferenceSchema),
  fixed: z.unknown().optional(),
  remaining: z.array(DifferenceSchema).optional(),
});

/** How many recent reconcile runs of a pair are looked through for one with a stored report. */
const LOOK_BACK = 20;

function toApi(report: z.infer<typeof StoredReportSchema>, finished_at: string | null): ReconciliationReport {
  return {
    pair_id: report.pair_id,
    run_id: report.run_id,
    status: report.status,
    finished_at,
    error: report.error ?? null,
    contacts_compared: report.contacts_compared,
    opt_outs_by_connection: report.opt_outs_by_connection,
    differences: report.differences,
    fixed: report.fixed ?? null,
    remaining: report.remaining ?? null,
  };
}

function toEngine(r: ReconciliationReport): Pick<ReconcileReport, "pair_id" | "differences" | "remaining"> {
  return {
    pair_id: r.pair_id,
    differences: r.differences,
    ...(r.remaining ? { remaining: r.remaining } : {}),
  };
}

export function reconciliationRoutes(ctx: ApiContext): ApiRoute[] {
  const { store } = ctx;

  const latest = async (): Promise<Reconciliation> => {
    const reports: ReconciliationReport[] = [];
    for (const pair of ctx.config.pairs) {
      const rows = await store.db
        .selectFrom("runs")
        .select(["summary_json", "finished_at"])
        .where("pair_id", "=", pair.id)
        .where("kind", "=", "reconcile")
        .where("status", "!=", "running")
        .orderBy("started_at", "desc")
        .orderBy("id", "desc")
        .limit(LOOK_BACK)
        .execute();
      for (const row of rows) {
        if (row.summary_json === null) continue;
        let json: unknown;
        try {
          json = JSON.parse(row.summary_json);
        } catch {
          continue;
        }
        // Syncs run as part of the schedule are reconcile runs too; only a reconciliation stores a report.
        const parsed = StoredReportSchema.safeParse(json);
        if (!parsed.success) continue;
        reports.push(toApi(parsed.data, row.finished_at));
        break;
      }
    }
    const times = reports.map((r) => r.finished_at).filter((t): t is string => t !== null);
    return { reports, run_at: times.length > 0 ? (times.sort().at(-1) ?? null) : null };
  };

  return [
    defineRoute({
      method: "GET",
      url: "/api/reconciliation",
      tag: "reconciliation",
      summary:
        "The latest reconciliation of each pair: opt-out differences with their causes, fixable or not",
      access: "session",
      response: ReconciliationSchema,
      handler: latest,
    }),
    defineRoute({
      method: "POST",
      url: "/api/reconciliation",
      tag: "reconciliation",
      summary:
        "Reconcile each pair (or `pair`) now: read every system in full and compare; with `fix`, apply the fixable differences and compare again",
      access: "session",
      body: ReconcileRequestSchema,
      response: ReconciliationSchema,
      errors: [404],
      handler: async ({ body }) => {
        const pairs =
          body.pair === undefined ? ctx.config.pairs : ctx.config.pairs.filter((p) => p.id === body.pair);
        if (body.pair !== undefined && pairs.length === 0)
          return fail(404, "pair_not_found", `No pair "${body.pair}" in the config.`);
        const reports: ReconciliationReport[] = [];
        for (const pair of pairs) {
          const report = await ctx.runtime.runExclusive(pair.id, () =>
            reconcilePair(ctx.syncDeps, pair, body.fix ? { fix: true } : {}),
          );
          ctx.metrics.recordRun({ pair_id: pair.id, kind: "reconcile", status: report.status });
          const stored = await store.runs.get(report.run_id);
          reports.push(
            toApi(StoredReportSchema.parse(JSON.parse(JSON.stringify(report))), stored?.finished_at ?? null),
          );
        }
        return { reports, run_at: ctx.now().toISOString() };
      },
    }),
    defineRoute({
      method: "GET",
      url: "/api/reconciliation.csv",
      tag: "reconciliation",
      summary: "The latest reconciliation's differences as CSV (after a fix, the remaining ones)",
      description:
        "Columns: pair_id, email, contact_id, connection_id, scope, kind, fixable, system_shows, rules_say, cause (as `concord reconcile --csv`).",
      access: "session",
      response: z.string(),
      produces: "text/csv",
      handler: async () => {
        const { reports, run_at } = await latest();
        const day = (run_at ?? ctx.now().toISOString()).slice(0, 10);
        return raw("text/csv; charset=utf-8", differencesCsv(reports.map(toEngine)), {
          "content-disposition": `attachment; filename="concord-differences-${day}.csv"`,
        });
      },
    }),
  ];
}
