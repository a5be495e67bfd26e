/** Reading runs from the store as the API shows them. */
import type { Selectable } from "kysely";
import type { RunSummary } from "../api-schemas";
import { RunKindSchema, RunStatusSchema, type StoreSession } from "../../store/ports";
import type { RunsTable } from "../../store/schema";

export function runSummary(row: Selectable<RunsTable>): RunSummary {
  let summary: unknown = null;
  if (row.summary_json !== null)
    try {
      summary = JSON.parse(row.summary_json);
    } catch {
      summary = row.summary_json; // shown as stored rather than hiding the run
    }
  return {
    id: row.id,
    kind: RunKindSchema.parse(row.kind),
    pair_id: row.pair_id,
    status: RunStatusSchema.parse(row.status),
    started_at: row.started_at,
    finished_at: row.finished_at,
    summary,
  };
}

/** Runs newest first (by start, then id: ids are time-ordered). */
export async function listRuns(
  store: StoreSession,
  options: { limit: number; pair_id?: string; kind?: RunSummary["kind"] },
): Promise<RunSummary[]> {
  let q = store.db.selectFrom("runs").selectAll();
  if (options.pair_id !== undefined) q = q.where("pair_id", "=", options.pair_id);
  if (options.kind !== undefined) q = q.where("kind", "=", options.kind);
  const rows = await q.orderBy("started_at", "desc").orderBy("id", "desc").limit(options.limit).execute();
  return rows.map(runSummary);
}
