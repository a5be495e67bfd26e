/**
 * The compliance report (DESIGN.md §2 rule 9): per legal clock, for a period, the opt-outs Concord
 * carried to another system, their lag in the clock's own unit (business days for CAN-SPAM and CASL),
 * the ones applied after the deadline, and those still pending with how many are past it.
 */
import {
  calendarOf,
  deadlineOf,
  elapsedDays,
  LEGAL_CLOCKS,
  standing,
  type LegalClock,
} from "../../core/legal-clocks";
import { pendingOptOuts } from "../../runs/watch-problems";
import type { StoreSession } from "../../store/ports";
import { optOutLags, percentile } from "./opt-out-lags";

export type ClockReport = {
  key: LegalClock["key"];
  name: string;
  days: number;
  unit: LegalClock["unit"];
  /** Opt-outs applied in another system during the period. */
  applied: number;
  /** Their lag in the clock's unit (days): median, 90th and 99th percentile, longest. */
  lag_days: { p50: number | null; p90: number | null; p99: number | null; max: number | null };
  /** Applied after the clock's deadline. */
  applied_late: number;
  /** Not applied yet (now), and of those how many are past the deadline already. */
  pending: number;
  pending_breached: number;
};

export type ComplianceReport = { from: string; to: string; generated_at: string; clocks: ClockReport[] };

const round = (n: number | null): number | null => (n === null ? null : Math.round(n * 100) / 100);

export async function complianceReport(
  store: StoreSession,
  options: { from: string; to: string; now: Date; holidays: readonly string[]; warn_ms: number },
): Promise<ComplianceReport> {
  const calendar = calendarOf(options.holidays);
  const applied = await optOutLags(store, options.from, options.to);
  const pending = await pendingOptOuts(store);
  const nowMs = options.now.getTime();
  const clocks = LEGAL_CLOCKS.map((clock): ClockReport => {
    const lags = applied.map((l) => {
      const done = Date.parse(l.recorded_at);
      return {
        days: elapsedDays(clock, done - l.lag_ms, done, calendar),
        late: done > deadlineOf(clock, done - l.lag_ms, calendar),
      };
    });
    const days = lags.map((l) => l.days);
    return {
      key: clock.key,
      name: clock.name,
      days: clock.days,
      unit: clock.unit,
      applied: applied.length,
      lag_days: {
        p50: round(percentile(days, 0.5)),
        p90: round(percentile(days, 0.9)),
        p99: round(percentile(days, 0.99)),
        max: round(days.length > 0 ? days.reduce((a, b) => Math.max(a, b)) : null),
      },
      applied_late: lags.filter((l) => l.late).length,
      pending: pending.length,
      pending_breached: pending.filter(
        (p) => standing(clock, p.clock_start, undefined, nowMs, options.warn_ms, calendar) === "breached",
      ).length,
    };
  });
  return { from: options.from, to: options.to, generated_at: options.now.toISOString(), clocks };
}

const CSV_COLUMNS = [
  "clock",
  "limit",
  "from",
  "to",
  "applied",
  "lag_p50_days",
  "lag_p90_days",
  "lag_p99_days",
  "lag_max_days",
  "applied_late",
  "pending",
  "pending_breached",
] as const;

const cell = (v: string | number | null): string => {
  const s = v === null ? "" : String(v);
  return /[",\n\r]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
};

export function complianceCsv(r: ComplianceReport): string {
  const rows = r.clocks.map((c) =>
    [
      c.key,
      `${c.days} ${c.unit === "business_days" ? "business days" : "days"}`,
      r.from,
      r.to,
      c.applied,
      c.lag_days.p50,
      c.lag_days.p90,
      c.lag_days.p99,
      c.lag_days.max,
      c.applied_late,
      c.pending,
      c.pending_breached,
    ]
      .map(cell)
      .join(","),
  );
  return `${[CSV_COLUMNS.join(","), ...rows].join("\n")}\n`;
}
