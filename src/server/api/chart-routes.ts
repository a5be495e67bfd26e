/** Chart series: operations applied per day by kind, opt-outs applied and their lag, vendor calls per connection. */
import { sql } from "kysely";
import { DailyQuerySchema, DailySeriesSchema } from "../api-schemas";
import { defineRoute, type ApiRoute } from "./api-route";
import type { ApiContext } from "./api-deps";
import { optOutLags, percentile } from "./opt-out-lags";

const DAY_MS = 86_400_000;

export function chartRoutes(ctx: ApiContext): ApiRoute[] {
  return [
    defineRoute({
      method: "GET",
      url: "/api/charts/daily",
      tag: "charts",
      summary:
        "Per UTC day, oldest first: operations applied by kind, opt-outs applied with lag p50/p99, vendor calls by connection",
      access: "session",
      query: DailyQuerySchema,
      response: DailySeriesSchema,
      handler: async ({ query }) => {
        const today = Math.floor(ctx.now().getTime() / DAY_MS) * DAY_MS;
        const dates = Array.from({ length: query.days }, (_, i) =>
          new Date(today - (query.days - 1 - i) * DAY_MS).toISOString().slice(0, 10),
        );
        const from = `${dates[0] ?? ""}T00:00:00.000Z`;
        const day = sql<string>`substr(outcomes.recorded_at, 1, 10)`;
        const rows = await ctx.store.db
          .selectFrom("outcomes")
          .innerJoin("operations", "operations.id", "outcomes.operation_id")
          .select([day.as("day"), "operations.kind", (eb) => eb.fn.countAll<number | string>().as("n")])
          .where("outcomes.status", "=", "succeeded")
          .where("outcomes.recorded_at", ">=", from)
          .groupBy([day, "operations.kind"])
          .execute();
        const lags = new Map<string, number[]>();
        for (const l of await optOutLags(ctx.store, from)) {
          const d = l.recorded_at.slice(0, 10);
          const list = lags.get(d) ?? [];
          list.push(l.lag_ms);
          lags.set(d, list);
        }
        const calls = ctx.metrics.apiCallsByDay();
        return {
          days: dates.map((date) => {
            const operations: Record<string, number> = {};
            for (const r of rows) if (r.day === date) operations[r.kind] = Number(r.n);
            const dayLags = lags.get(date) ?? [];
            return {
              date,
              operations,
              opt_outs_applied: dayLags.length,
              lag_p50_ms: percentile(dayLags, 0.5),
              lag_p99_ms: percentile(dayLags, 0.99),
              api_calls: { ...(calls.get(date) ?? {}) },
            };
          }),
        };
      },
    }),
  ];
}
