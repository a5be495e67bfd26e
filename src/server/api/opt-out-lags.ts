/**
 * Opt-out propagation lag (DESIGN.md rule 9): for each opt-out Concord carried to another system,
 * the time from the person's act (the operation's `occurred_at`) to that system's confirmation (the
 * succeeded outcome's `recorded_at`). Read from the store, for the overview, the charts and metrics.
 *
 * An act older than the pair's first run (an opt-out made before Concord was installed, found by its
 * first read) is measured from that first run instead: what it shows is Concord's delay, not the
 * organisation's history. Such opt-outs are flagged `before_watch` so they can be counted apart.
 */
import { LEGAL_CLOCKS as CORE_CLOCKS } from "../../core/legal-clocks";
import { optOutClockStart, watchingSince } from "../../runs/watch-problems";
import type { StoreSession } from "../../store/ports";

export type OptOutLag = {
  operation_id: string;
  attempt: number;
  connection_id: string;
  recorded_at: string;
  lag_ms: number;
  /** The act predates the pair's first run: `lag_ms` counts from that run's start. */
  before_watch: boolean;
};

/** The legal clocks as the charts draw them: 10 business days shown as 14 calendar days. */
export const LEGAL_CLOCKS = CORE_CLOCKS.map((c) => ({
  ...c,
  limit_ms: (c.unit === "calendar_days" ? c.days : Math.ceil((c.days * 7) / 5)) * 86_400_000,
}));

/** Opt-outs applied with `recorded_at` in [from, to), oldest first. */
export async function optOutLags(store: StoreSession, from: string, to?: string): Promise<OptOutLag[]> {
  let q = store.db
    .selectFrom("outcomes")
    .innerJoin("operations", "operations.id", "outcomes.operation_id")
    .innerJoin("plans", "plans.id", "operations.plan_id")
    .select([
      "outcomes.operation_id",
      "outcomes.attempt",
      "outcomes.recorded_at",
      "operations.target_connection",
      "operations.payload_json",
      watchingSince,
    ])
    .where("operations.kind", "=", "record_opt_out")
    .where("outcomes.status", "=", "succeeded")
    .where("outcomes.recorded_at", ">=", from);
  if (to !== undefined) q = q.where("outcomes.recorded_at", "<", to);
  const rows = await q.orderBy("outcomes.recorded_at").orderBy("outcomes.operation_id").execute();
  const out: OptOutLag[] = [];
  for (const row of rows) {
    // A corrupt payload has no act time to measure from.
    const clock = optOutClockStart(row.payload_json, row.watching_since);
    const confirmed = Date.parse(row.recorded_at);
    if (clock === undefined || Number.isNaN(confirmed)) continue;
    out.push({
      operation_id: row.operation_id,
      attempt: row.attempt,
      connection_id: row.target_connection,
      recorded_at: row.recorded_at,
      lag_ms: Math.max(0, confirmed - clock.start),
      before_watch: clock.before_watch,
    });
  }
  return out;
}

/** The nearest-rank percentile of `values` (p in 0..1); null when there are none. */
export function percentile(values: readonly number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil(p * sorted.length)));
  return sorted[rank - 1] ?? null;
}
