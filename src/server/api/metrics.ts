/**
 * Prometheus metrics (`/metrics`), in a registry of their own per app. Counters are fed as things
 * happen (runs through the runtime's `onRun`, vendor calls through `openConnection`'s `onApiCall`);
 * gauges are read on each scrape (budgets from each connection's call budget; operations, health,
 * inbox and review queue from the store); applied opt-outs are observed into the lag histogram on
 * the scrape after their outcome is stored.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { ApiCall, OpenedConnection } from "../../connections/open-connection";
import type { SyncReport } from "../../runs/sync-pair";
import type { StoreSession } from "../../store/ports";
import { optOutLags } from "./opt-out-lags";
import { readPlanStandings, type PlanStanding } from "../../pipeline/plan-standing";

export type RunRecord = { pair_id: string; kind: "sync" | "dry_run" | "reconcile"; status: string };

export type ConcordMetrics = {
  registry: Registry;
  /** The runtime's `onRun`: counts a finished sync or dry run. */
  onRun: (report: SyncReport) => void;
  /** Counts a run the runtime did not report (a reconciliation, an applied plan). */
  recordRun: (run: RunRecord) => void;
  /** `openEngineContext({ onApiCall })`: counts a vendor call. */
  onApiCall: (connectionId: string, call: ApiCall) => void;
  /** Vendor calls per UTC day and connection, counted since this process started. */
  apiCallsByDay: () => ReadonlyMap<string, Readonly<Record<string, number>>>;
};

export type MetricsSources = {
  store: StoreSession;
  /** The configured pairs (a pair the config no longer has is not shown). */
  config: { pairs: readonly { id: string }[] };
  connections: ReadonlyMap<string, OpenedConnection>;
  version: string;
  /** Milliseconds on a monotonic clock, for reusing the store's counts (default: performance.now). */
  monotonic?: () => number;
};

/** Seconds; from "seconds" (webhooks) to the legal clocks (2 and 14 days). */
const LAG_BUCKETS = [1, 2, 5, 10, 30, 60, 300, 900, 3_600, 21_600, 86_400, 172_800, 604_800, 1_209_600];
const KEEP_DAYS = 90;

export function createConcordMetrics(options: { now: () => Date }): ConcordMetrics {
  const registry = new Registry();
  const runs = new Counter({
    name: "concord_runs_total",
    help: "Runs finished, by pair, kind (sync, dry_run, reconcile) and status.",
    labelNames: ["pair", "kind", "status"] as const,
    registers: [registry],
  });
  const calls = new Counter({
    name: "concord_api_calls_total",
    help: "Calls made to each connection's vendor API, by HTTP status.",
    labelNames: ["connection", "status"] as const,
    registers: [registry],
  });
  const byDay = new Map<string, Record<string, number>>();
  return {
    registry,
    onRun: (report) => {
      runs.inc({ pair: report.pair_id, kind: report.dry_run ? "dry_run" : "sync", status: report.status });
    },
    recordRun: (run) => {
      runs.inc({ pair: run.pair_id, kind: run.kind, status: run.status });
    },
    onApiCall: (connectionId, call) => {
      calls.inc({ connection: connectionId, status: String(call.status) });
      const day = options.now().toISOString().slice(0, 10);
      const counts = byDay.get(day) ?? {};
      counts[connectionId] = (counts[connectionId] ?? 0) + 1;
      byDay.set(day, counts);
      if (byDay.size > KEEP_DAYS) {
        const oldest = [...byDay.keys()].sort()[0];
        if (oldest !== undefined) byDay.delete(oldest);
      }
    },
    apiCallsByDay: () => byDay,
  };
}

/**
 * Adds the metrics read at scrape time to `metrics.registry`. Opt-outs applied from `since` on are
 * observed into the lag histogram once each.
 */
/**
 * What `/metrics` asks of a scraper: nothing (public), a bearer token, or — when the configured
 * token could not be resolved — refusal of everyone (closed, never open by mistake).
 */
export type MetricsAccess = { kind: "public" } | { kind: "token"; token: string } | { kind: "closed" };

export function metricsAllowed(access: MetricsAccess, authorization: string | undefined): boolean {
  if (access.kind === "public") return true;
  if (access.kind === "closed") return false;
  // Compared as digests, so neither the time nor an early return says how long the token is.
  const digest = (value: string) => createHash("sha256").update(value).digest();
  return timingSafeEqual(digest(authorization ?? ""), digest(`Bearer ${access.token}`));
}

/** How long the gauges read from the store are reused: scrapers in a burst cost one read. */
export const STORE_GAUGES_TTL_MS = 10_000;

export function addScrapeMetrics(metrics: ConcordMetrics, sources: MetricsSources, since: Date): void {
  const registers = [metrics.registry];
  const { store, connections } = sources;
  // The store's counts, read once for every gauge of a scrape and reused for a few seconds.
  let read: { at: number; facts: Promise<StoreFacts> } | undefined;
  const storeFacts = (): Promise<StoreFacts> => {
    const at = (sources.monotonic ?? (() => performance.now()))();
    if (read === undefined || at - read.at >= STORE_GAUGES_TTL_MS) {
      const facts = readStoreFacts(store);
      read = { at, facts };
      facts.catch(() => {
        if (read?.facts === facts) read = undefined;
      });
    }
    return read.facts;
  };
  new Gauge({
    name: "concord_build_info",
    help: "The running version (always 1).",
    labelNames: ["version"] as const,
    registers,
    collect() {
      this.set({ version: sources.version }, 1);
    },
  });
  const budgetGauge = (
    name: string,
    help: string,
    pick: (u: ReturnType<OpenedConnection["budget"]["usage"]>) => number | null,
  ) =>
    new Gauge({
      name,
      help,
      labelNames: ["connection"] as const,
      registers,
      collect() {
        this.reset();
        for (const [id, c] of connections) {
          // A vendor without a daily quota has no quota figures to report.
          const value = pick(c.budget.usage());
          if (value !== null) this.set({ connection: id }, value);
        }
      },
    });
  budgetGauge(
    "concord_api_budget_remaining",
    "Calls left in each connection's daily quota (the consent reserve included).",
    (u) => u.remaining,
  );
  budgetGauge(
    "concord_api_budget_used_today",
    "Calls counted against each connection's daily quota today.",
    (u) => u.used_today,
  );
  budgetGauge("concord_api_budget_daily_quota", "Each connection's daily quota.", (u) => u.daily_quota);
  budgetGauge(
    "concord_api_calls_in_flight",
    "Each connection's vendor calls in flight now.",
    (u) => u.in_flight,
  );

  new Gauge({
    name: "concord_operations",
    help: "Stored operations by target connection, kind and status (pending, succeeded, failed, skipped).",
    labelNames: ["connection", "kind", "status"] as const,
    registers,
    async collect() {
      const { operations } = await storeFacts();
      this.reset();
      for (const r of operations)
        this.set({ connection: r.target_connection, kind: r.kind, status: r.status }, Number(r.n));
    },
  });
  new Gauge({
    name: "concord_connection_health",
    help: "1 for each connection's current health status (ok, degraded, broken).",
    labelNames: ["connection", "status"] as const,
    registers,
    async collect() {
      const { health } = await storeFacts();
      this.reset();
      for (const h of health) this.set({ connection: h.connection_id, status: h.status }, 1);
    },
  });
  new Gauge({
    name: "concord_webhook_inbox_pending",
    help: "Webhook deliveries stored and not yet processed.",
    registers,
    async collect() {
      this.set((await storeFacts()).inbox_pending);
    },
  });
  new Gauge({
    name: "concord_pair_contacts",
    help: "Contacts each pair's last whole plan covered (a pair not planned yet is absent).",
    labelNames: ["pair"] as const,
    registers,
    async collect() {
      const { standings } = await storeFacts();
      this.reset();
      for (const { id } of sources.config.pairs) {
        const standing = standings.get(id);
        if (standing !== undefined) this.set({ pair: id }, standing.contacts);
      }
    },
  });
  new Gauge({
    name: "concord_review_items_open",
    help: "Open items in the review queue (ambiguous identities, conflicts).",
    registers,
    async collect() {
      this.set((await storeFacts()).review_open);
    },
  });

  let cursor = since.toISOString();
  const seenAtCursor = new Set<string>();
  new Histogram({
    name: "concord_opt_out_propagation_lag_seconds",
    help: "Time from a person's opt-out to another system's confirmation of it, per applied opt-out.",
    labelNames: ["connection"] as const,
    buckets: LAG_BUCKETS,
    registers,
    async collect() {
      for (const lag of await optOutLags(store, cursor)) {
        const key = `${lag.operation_id}#${lag.attempt}`;
        if (lag.recorded_at === cursor && seenAtCursor.has(key)) continue;
        if (lag.recorded_at !== cursor) {
          cursor = lag.recorded_at;
          seenAtCursor.clear();
        }
        seenAtCursor.add(key);
        this.observe({ connection: lag.connection_id }, lag.lag_ms / 1000);
      }
    },
  });
}

type StoreFacts = {
  operations: { target_connection: string; kind: string; status: string; n: number | string }[];
  health: { connection_id: string; status: string }[];
  inbox_pending: number;
  review_open: number;
  standings: ReadonlyMap<string, PlanStanding>;
};

async function readStoreFacts(store: MetricsSources["store"]): Promise<StoreFacts> {
  const operations = await store.db
    .selectFrom("operations")
    .select(["target_connection", "kind", "status", (eb) => eb.fn.countAll<number | string>().as("n")])
    .groupBy(["target_connection", "kind", "status"])
    .execute();
  const health = await store.health.list();
  const inbox_pending = await store.inbox.countPending();
  const review = await store.db
    .selectFrom("review_items")
    .select((eb) => eb.fn.countAll<number | string>().as("n"))
    .where("status", "=", "open")
    .executeTakeFirst();
  const standings = await readPlanStandings(store);
  return { operations, health, inbox_pending, review_open: Number(review?.n ?? 0), standings };
}
