/**
 * A reconciliation's differences as CSV (`concord reconcile --csv`, the API's reconciliation.csv):
 * one row per difference left (after a fix, the remaining ones), with the columns below.
 */
import { stringify } from "csv-stringify/sync";
import { spreadsheetSafe } from "../core/spreadsheet-safe";
import type { ReconcileReport } from "./reconcile";

export const DIFFERENCE_CSV_COLUMNS = [
  "pair_id",
  "email",
  "contact_id",
  "connection_id",
  "scope",
  "kind",
  "fixable",
  "system_shows",
  "rules_say",
  "cause",
] as const;

export function differencesCsv(
  reports: readonly Pick<ReconcileReport, "pair_id" | "differences" | "remaining">[],
): string {
  const rows = reports.flatMap((r) =>
    (r.remaining ?? r.differences).map((d) => [
      r.pair_id,
      d.email ?? "",
      d.contact_id,
      d.connection_id,
      d.scope.kind === "global" ? "global" : `topic:${d.scope.topic}`,
      d.kind,
      d.fixable ? "yes" : "no",
      d.system_shows,
      d.rules_say,
      d.cause,
    ]),
  );
  return stringify([[...DIFFERENCE_CSV_COLUMNS], ...rows], { cast: { string: spreadsheetSafe } });
}
