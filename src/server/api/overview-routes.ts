/** `/api/overview`: every connection's health, budget and queue; every pair's runs; opt-out lag beside the legal clocks. */
import { accountTopic } from "../../pipeline/resolve-observed-scope";
import { OverviewSchema, type ConnectionOverview, type PairOverview } from "../api-schemas";
import { defineRoute, type ApiRoute } from "./api-route";
import type { ApiContext } from "./api-deps";
import { calendarOf, deadlineOf, standing } from "../../core/legal-clocks";
import { pendingOptOuts } from "../../runs/watch-problems";
import { LEGAL_CLOCKS, optOutLags, percentile } from "./opt-out-lags";
import { listRuns } from "./run-rows";
import { readPlanStandings } from "../../pipeline/plan-standing";

const LAG_WINDOW_HOURS = 24;

export function overviewRoutes(ctx: ApiContext): ApiRoute[] {
  return [
    defineRoute({
      method: "GET",
      url: "/api/overview",
      tag: "overview",
      summary:
        "Connections (health, budget, queued operations), pairs (last and next run), opt-out lag, queues",
      access: "session",
      response: OverviewSchema,
      handler: async () => {
        const { store } = ctx;
        const queued = await store.db
          .selectFrom("operations")
          .select(["target_connection", (eb) => eb.fn.countAll<number | string>().as("n")])
          .where("status", "=", "pending")
          .groupBy("target_connection")
          .execute();
        const queuedBy = new Map(queued.map((r) => [r.target_connection, Number(r.n)]));
        const health = new Map((await store.health.list()).map((h) => [h.connection_id, h]));
        const connections: ConnectionOverview[] = ctx.config.connections.map((c) => {
          const opened = ctx.connections.get(c.id);
          const usage = opened?.budget.usage();
          const h = health.get(c.id);
          return {
            id: c.id,
            system: c.system,
            label: c.label ?? null,
            role: opened?.manifest.role ?? "crm",
            health: h
              ? { status: h.status, reason: h.reason, since: h.since }
              : { status: "unknown", reason: "No run has used this connection yet.", since: null },
            budget: {
              used_today: usage?.used_today ?? 0,
              remaining: usage?.remaining ?? null,
              daily_quota: usage?.daily_quota ?? null,
              resets_at: usage?.resets_at ?? null,
              paused_until: usage?.paused_until ?? null,
              in_flight: usage?.in_flight ?? 0,
              max_concurrency: usage?.max_concurrency ?? 0,
            },
            queued_operations: queuedBy.get(c.id) ?? 0,
            can_connect: opened?.manifest.oauth !== undefined,
          };
        });
        const status = new Map(ctx.runtime.status().map((s) => [s.pair_id, s]));
        const pairs: PairOverview[] = [];
        // Every pair's standing in one read, not one a pair.
        const standings = await readPlanStandings(store);
        for (const p of ctx.config.pairs) {
          const s = status.get(p.id);
          const [last] = await listRuns(store, { limit: 1, pair_id: p.id });
          const stood = standings.get(p.id);
          const checked =
            stood !== undefined && stood.checked_at > (last?.finished_at ?? last?.started_at ?? "")
              ? stood.checked_at
              : null;
          const lastPoll = checked ?? last?.finished_at ?? null;
          pairs.push({
            id: p.id,
            crm: p.crm,
            platforms: p.platforms.map((x) => ({
              connection: x.connection,
              topic: accountTopic(ctx.config.topics, x.connection) ?? null,
            })),
            // With workers in other processes, the store says what runs: the latest run's state.
            running: (s?.running ?? false) || last?.status === "running",
            last_run: last ?? null,
            last_checked_at: checked,
            contacts: stood?.contacts ?? null,
            next_run_at:
              s?.next_run_at ??
              (lastPoll !== null && s !== undefined
                ? new Date(Date.parse(lastPoll) + s.poll_interval_ms).toISOString()
                : null),
            poll_interval_ms: s?.poll_interval_ms ?? 0,
          });
        }
        const from = new Date(ctx.now().getTime() - LAG_WINDOW_HOURS * 3_600_000).toISOString();
        const applied = await optOutLags(store, from);
        const lags = applied.map((l) => l.lag_ms);
        const pending = await pendingOptOuts(store);
        const calendar = calendarOf(ctx.config.compliance.holidays);
        const nowMs = ctx.now().getTime();
        const reviewOpen = await store.db
          .selectFrom("review_items")
          .select((eb) => eb.fn.countAll<number | string>().as("n"))
          .where("status", "=", "open")
          .executeTakeFirst();
        return {
          connections,
          pairs,
          propagation_lag: {
            count: lags.length,
            before_watch: applied.filter((l) => l.before_watch).length,
            p50_ms: percentile(lags, 0.5),
            p99_ms: percentile(lags, 0.99),
            max_ms: lags.length > 0 ? lags.reduce((a, b) => Math.max(a, b), 0) : null,
            window_hours: LAG_WINDOW_HOURS,
          },
          legal_clocks: LEGAL_CLOCKS.map((c) => {
            const late = applied.filter((l) => {
              const done = Date.parse(l.recorded_at);
              return done > deadlineOf(c, done - l.lag_ms, calendar);
            }).length;
            const standings = pending.map((p) =>
              standing(
                c,
                p.clock_start,
                undefined,
                nowMs,
                ctx.config.notifications.thresholds.clock_warning,
                calendar,
              ),
            );
            return {
              name: c.name,
              limit_ms: c.limit_ms,
              days: c.days,
              unit: c.unit,
              applied_late: late,
              pending: pending.length,
              due_soon: standings.filter((x) => x === "due_soon").length,
              breached: standings.filter((x) => x === "breached").length,
            };
          }),
          inbox_pending: await store.inbox.countPending(),
          review_open: Number(reviewOpen?.n ?? 0),
        };
      },
    }),
  ];
}
