/**
 * The shapes the admin UI reads, imported as types only from the server's API schemas and the
 * engine (nothing of src/ is bundled), plus guards for the fields the API declares as `unknown`.
 */
import type { PlanSummary } from "../../src/runs/sync-pair";
import type { Explanation } from "../../src/explain/explain-contact";

export type {
  ConnectionOverview,
  ComplianceReportView,
  DailySeries,
  Difference,
  ErrorBody,
  Overview,
  PairOverview,
  Person,
  PersonHit,
  Reconciliation,
  ReconciliationReport,
  ReviewItem,
  ReviewResolve,
  RunDetail,
  RunSummary,
  Session,
} from "../../src/server/api-schemas";
export type { PlanSummary, SyncReport } from "../../src/runs/sync-pair";
export type { ApplyStoredPlanReport } from "../../src/runs/apply-stored-plan";
export type { ErasureReport } from "../../src/runs/erase-person";
export type { ExecutionReport } from "../../src/executor/execute-plan";
export type { PullReport } from "../../src/pipeline/pull-connection";
export type {
  ConnectionState,
  Explanation,
  LinkView,
  OperationView,
  PairState,
  ScopeState,
  SystemShows,
  TimelineEntry,
} from "../../src/explain/explain-contact";
export type { SkipReason } from "../../src/planner/plan";

export const isRecord = (x: unknown): x is Record<string, unknown> =>
  typeof x === "object" && x !== null && !Array.isArray(x);

/** A stored plan or a sync report's plan: PlanSummary as the engine writes it (reconciliation plans are not). */
export function asPlanSummary(x: unknown): PlanSummary | null {
  if (!isRecord(x)) return null;
  const counts = x["counts"];
  if (!Array.isArray(x["operations"]) || !isRecord(counts) || !isRecord(x["gains"])) return null;
  if (!Array.isArray(x["skipped"]) || !Array.isArray(x["waiting"])) return null;
  if (!isRecord(counts["operations"]) || !isRecord(counts["skipped"])) return null;
  if (x["operations"].some((o) => !isRecord(o) || typeof o["op_id"] !== "string")) return null;
  // A plan stored before plans counted their skipped records listed every one of them.
  if (typeof counts["skipped_records"] !== "number")
    return { ...x, counts: { ...counts, skipped_records: x["skipped"].length } } as PlanSummary;
  return x as PlanSummary;
}

/** `explanation` of GET /api/people/:id: the engine's Explanation (null for a contact with no address). */
export function asExplanation(x: unknown): Explanation | null {
  if (!isRecord(x) || !Array.isArray(x["timeline"]) || !Array.isArray(x["pairs"])) return null;
  return x as Explanation;
}

/**
 * A run's stored summary as the engine writes it (sync-pair's and apply-stored-plan's `runSummary`;
 * a reconciliation stores its whole report). Every field is optional: older runs, failed runs and
 * reconciliations carry different subsets.
 */
export type StoredRunSummary = {
  dry_run?: boolean;
  error?: { code: string; message: string } | string;
  pulls?: {
    connection_id: string;
    records_seen: number;
    records_changed: number;
    consent_events_appended: number;
    error: { code: string; message: string } | null;
  }[];
  plan_id?: string;
  operations?: number;
  counts?: PlanSummary["counts"];
  gains?: Record<string, number>;
  skipped?: number | unknown[];
  waiting_for_contact?: number;
  execution?: {
    operations: { total: number; succeeded: number; failed: number; deferred: number; skipped: number };
    items?: Record<string, number>;
    waiting?: {
      connection_id: string;
      code: string;
      message: string;
      retry_at?: string;
      operations: number;
    }[];
    rejections?: number;
  };
  baselines_updated?: number;
  /**
   * Contacts planned; of them, those unchanged since their last plan, added as their marks keep them
   * and not planned again (`settled` in runs stored before it counted contacts with work too).
   */
  contacts?: { planned: number; unchanged?: number; settled?: number };
  /** Reconciliation runs. */
  contacts_compared?: number;
  differences?: unknown[];
  remaining?: unknown[];
  /** Applied plans. */
  stale?: unknown[];
  new_since_plan?: number;
};

export const asRunSummary = (x: unknown): StoredRunSummary => (isRecord(x) ? x : {});
