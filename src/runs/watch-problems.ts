/**
 * Problems beyond credentials, each alerted once per cause and once more when it is gone (the
 * health tracker's `raise`/`clear`): a connection's daily quota spent, a vendor failing longer than
 * `notifications.thresholds.outage`, an opt-out waiting longer than `stuck_opt_out` to be applied,
 * and opt-outs still pending close to (or past) a legal clock's deadline, counted in business days
 * with `compliance.holidays` (DESIGN.md §2 rule 9).
 */
import { z } from "zod";
import type { ConcordConfig } from "../config/concord-config";
import type { ConnectionHealthTracker } from "../connections/connection-health";
import { calendarOf, LEGAL_CLOCKS, standing, type ClockStanding } from "../core/legal-clocks";
import type { ExpressionBuilder } from "kysely";
import type { StoreSession } from "../store/ports";
import type { Database } from "../store/schema";
import type { SyncReport } from "./sync-pair";

export type ProblemWatchDeps = {
  store: StoreSession;
  config: ConcordConfig;
  now: () => Date;
  problems: Pick<ConnectionHealthTracker, "raise" | "clear">;
};

export type ProblemWatch = {
  /** After every run, and every poll that makes none: quotas spent and vendors failing, from the reads and waiting work. */
  afterRun: (report: Pick<SyncReport, "pulls" | "execution">) => Promise<void>;
  /** Opt-outs stuck, and opt-outs against the legal clocks, from the store. */
  check: () => Promise<void>;
};

const OUTAGE_CODES = new Set(["vendor_unavailable", "network_error"]);
const PayloadSchema = z.object({ operation: z.object({ occurred_at: z.string() }).loose() }).loose();

/** A pending opt-out as the watch sees it. */
export type PendingOptOut = {
  connection_id: string;
  planned_at: number;
  /** When the clocks started: the act, or the pair's first run for an act Concord was not there for. */
  clock_start: number;
};

export function problemWatch(deps: ProblemWatchDeps): ProblemWatch {
  const failingSince = new Map<string, number>();
  const thresholds = deps.config.notifications.thresholds;
  const calendar = calendarOf(deps.config.compliance.holidays);

  const afterRun = async (report: Pick<SyncReport, "pulls" | "execution">): Promise<void> => {
    const now = deps.now().getTime();
    const codes = new Map<string, { code: string; message: string; retry_at?: string | undefined }>();
    for (const p of report.pulls)
      if (p.error !== null) codes.set(p.connection_id, p.error);
      else if (!codes.has(p.connection_id)) codes.set(p.connection_id, { code: "ok", message: "" });
    for (const w of report.execution?.waiting ?? [])
      if (w.code === "quota_exceeded" || OUTAGE_CODES.has(w.code)) codes.set(w.connection_id, w);
    for (const [connection, e] of codes) {
      if (e.code === "quota_exceeded") {
        await deps.problems.raise({
          key: `quota:${connection}`,
          connection_id: connection,
          code: "quota_exhausted",
          message: `${connection}'s daily API quota is spent${e.retry_at !== undefined ? ` until ${e.retry_at}` : ""}: opt-outs still go out from the reserve, everything else waits for it. Lower the poll rate or raise limits.daily_quota to your tier if this happens daily.`,
        });
      } else if (e.code === "ok") {
        await deps.problems.clear(`quota:${connection}`, `${connection} has API calls to spend again.`);
      }
      if (OUTAGE_CODES.has(e.code)) {
        const since = failingSince.get(connection) ?? now;
        failingSince.set(connection, since);
        if (now - since >= thresholds.outage)
          await deps.problems.raise({
            key: `outage:${connection}`,
            connection_id: connection,
            code: "vendor_outage",
            message: `${connection} has failed since ${new Date(since).toISOString()} (${e.code}: ${e.message}). Its work waits and resumes on its own; check the vendor's status page.`,
          });
      } else if (e.code === "ok") {
        failingSince.delete(connection);
        await deps.problems.clear(`outage:${connection}`, `${connection} answers again.`);
      }
    }
  };

  const check = async (): Promise<void> => {
    const now = deps.now().getTime();
    const pending = await pendingOptOuts(deps.store);
    const byConnection = new Map<string, PendingOptOut[]>();
    // Grouped in place and folded without spreading: a platform down during a mass unsubscribe
    // leaves hundreds of thousands of opt-outs waiting, which is when this watch matters most.
    for (const p of pending) {
      const group = byConnection.get(p.connection_id);
      if (group === undefined) byConnection.set(p.connection_id, [p]);
      else group.push(p);
    }
    const connections = new Set([...deps.config.connections.map((c) => c.id), ...byConnection.keys()]);
    for (const connection of connections) {
      const ops = byConnection.get(connection) ?? [];
      const stuck = ops.filter((o) => now - o.planned_at >= thresholds.stuck_opt_out);
      const oldest = stuck.reduce((min, o) => Math.min(min, o.planned_at), Infinity);
      if (stuck.length > 0)
        await deps.problems.raise({
          key: `stuck_opt_out:${connection}`,
          connection_id: connection,
          code: "opt_out_stuck",
          message: `${stuck.length} opt-out(s) planned for ${connection} are not applied yet; the oldest has waited since ${new Date(oldest).toISOString()}. The runs page says why.`,
          path: "/runs",
        });
      else
        await deps.problems.clear(
          `stuck_opt_out:${connection}`,
          `Every opt-out for ${connection} is applied.`,
        );

      for (const level of ["breached", "due_soon"] as const) {
        const hits: string[] = [];
        for (const clock of LEGAL_CLOCKS) {
          const n = ops.filter((o) => clockStanding(clock, o, now) === level).length;
          if (n > 0) hits.push(`${n} against "${clock.name}"`);
        }
        const key = `legal_clock_${level}:${connection}`;
        if (hits.length > 0)
          await deps.problems.raise({
            key,
            connection_id: connection,
            code: level === "breached" ? "legal_clock_breached" : "legal_clock_due_soon",
            message:
              level === "breached"
                ? `Opt-outs not yet applied in ${connection} are past a legal deadline: ${hits.join("; ")}. Fix what holds them (the runs page says why).`
                : `Opt-outs not yet applied in ${connection} are close to a legal deadline: ${hits.join("; ")}.`,
            path: "/runs",
          });
        else
          await deps.problems.clear(
            key,
            `No opt-out for ${connection} is ${level === "breached" ? "past" : "close to"} a legal deadline any more.`,
          );
      }
    }
  };

  const clockStanding = (
    clock: (typeof LEGAL_CLOCKS)[number],
    o: PendingOptOut,
    now: number,
  ): ClockStanding => standing(clock, o.clock_start, undefined, now, thresholds.clock_warning, calendar);

  return { afterRun, check };
}

/** The start of the pair's first run, beside each of its operations: since when Concord has been watching. */
export const watchingSince = (eb: ExpressionBuilder<Database, "plans">) =>
  eb
    .selectFrom("runs")
    .select((r) => r.fn.min("runs.started_at").as("first"))
    .whereRef("runs.pair_id", "=", "plans.pair_id")
    .as("watching_since");

/**
 * When an opt-out's clocks start: the act (the operation's `occurred_at`), or the pair's first run
 * for an act made before Concord could have seen it (`before_watch`); undefined for a payload
 * without an act time.
 */
export function optOutClockStart(
  payloadJson: string,
  watchingSinceIso: string | null,
): { start: number; before_watch: boolean } | undefined {
  let acted = Number.NaN;
  try {
    const parsed = PayloadSchema.safeParse(JSON.parse(payloadJson));
    if (parsed.success) acted = Date.parse(parsed.data.operation.occurred_at);
  } catch {
    return undefined;
  }
  if (Number.isNaN(acted)) return undefined;
  const watching = watchingSinceIso === null ? Number.NaN : Date.parse(watchingSinceIso);
  const beforeWatch = !Number.isNaN(watching) && acted < watching;
  return { start: beforeWatch ? watching : acted, before_watch: beforeWatch };
}

/** Opt-outs planned and not yet applied in their system (waiting, or refused and tried again), with when each clock started. */
export async function pendingOptOuts(store: StoreSession): Promise<PendingOptOut[]> {
  const rows = await store.db
    .selectFrom("operations")
    .innerJoin("plans", "plans.id", "operations.plan_id")
    .select([
      "operations.target_connection",
      "operations.created_at",
      "operations.payload_json",
      watchingSince,
    ])
    .where("operations.kind", "=", "record_opt_out")
    // A refused one is still wanted while failed (a plan that no longer makes it supersedes it),
    // and is tried again hourly: unapplied all the same, against the same clocks.
    .where("operations.status", "in", ["pending", "failed"])
    .execute();
  return rows.map((row) => {
    const planned = Date.parse(row.created_at);
    // A payload without an act time: its clock starts when it was planned.
    const start = optOutClockStart(row.payload_json, row.watching_since)?.start ?? planned;
    return { connection_id: row.target_connection, planned_at: planned, clock_start: start };
  });
}
