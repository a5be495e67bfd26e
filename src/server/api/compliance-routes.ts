/** `/api/compliance` and `/api/compliance.csv`: the report per legal clock for an auditor. */
import { z } from "zod";
import { ComplianceQuerySchema, ComplianceReportSchema } from "../api-schemas";
import { defineRoute, raw, type ApiRoute } from "./api-route";
import type { ApiContext } from "./api-deps";
import { complianceCsv, complianceReport } from "./compliance-report";

const DAY_MS = 86_400_000;

export function complianceRoutes(ctx: ApiContext): ApiRoute[] {
  const report = (days: number) => {
    const now = ctx.now();
    return complianceReport(ctx.store, {
      from: new Date(now.getTime() - days * DAY_MS).toISOString(),
      to: now.toISOString(),
      now,
      holidays: ctx.config.compliance.holidays,
      warn_ms: ctx.config.notifications.thresholds.clock_warning,
    });
  };
  return [
    defineRoute({
      method: "GET",
      url: "/api/compliance",
      tag: "overview",
      summary:
        "Per legal clock, for the last `days` days: opt-outs applied, their lag in the clock's unit (business days for CAN-SPAM and CASL), those applied late, and those pending and past the deadline",
      access: "session",
      query: ComplianceQuerySchema,
      response: ComplianceReportSchema,
      handler: async ({ query }) => report(query.days),
    }),
    defineRoute({
      method: "GET",
      url: "/api/compliance.csv",
      tag: "overview",
      summary: "The compliance report as CSV, one row per legal clock",
      description:
        "Columns: clock, limit, from, to, applied, lag_p50_days, lag_p90_days, lag_p99_days, lag_max_days, applied_late, pending, pending_breached.",
      access: "session",
      query: ComplianceQuerySchema,
      response: z.string(),
      produces: "text/csv",
      handler: async ({ query }) => {
        const r = await report(query.days);
        return raw("text/csv; charset=utf-8", complianceCsv(r), {
          "content-disposition": `attachment; filename="concord-compliance-${r.to.slice(0, 10)}.csv"`,
        });
      },
    }),
  ];
}
