/** "Apply this plan": executes a stored plan's operations that are still valid, and says what happened. */
import type { ReactNode } from "react";
import { apiPost } from "../api";
import type { ApplyStoredPlanReport } from "../api-types";
import { formatCount, plural } from "../format";
import { Link } from "../router";
import { Badge, ErrorNote, RunStatusBadge } from "./common";
import { useAction } from "../use-resource";

export function ApplyPlan({ planId, onApplied }: { planId: string; onApplied?: () => void }): ReactNode {
  const action = useAction<{ report: ApplyStoredPlanReport }>();
  const apply = (): void => {
    void action
      .run(() => apiPost(`/api/plans/${encodeURIComponent(planId)}/apply`))
      .then((r) => {
        if (r !== undefined) onApplied?.();
      });
  };
  const report = action.result?.report;
  return (
    <div className="apply">
      <button
        type="button"
        className="primary"
        onClick={apply}
        disabled={action.pending || report !== undefined}
      >
        {action.pending ? "Applying…" : report !== undefined ? "Applied" : "Apply this plan"}
      </button>
      <ErrorNote error={action.error} title="The plan was not applied" />
      {report !== undefined ? <ApplyResult report={report} /> : null}
    </div>
  );
}

function ApplyResult({ report }: { report: ApplyStoredPlanReport }): ReactNode {
  const x = report.execution;
  return (
    <div className="alert alert-info" role="status">
      <p>
        <RunStatusBadge status={report.status} /> Plan applied in run{" "}
        <Link to={{ page: "run", id: report.run_id }}>{report.run_id}</Link>:{" "}
        {plural(report.operations, "operation")} executed
        {x !== undefined ? (
          <>
            {" "}
            ({formatCount(x.operations.succeeded)} succeeded, {formatCount(x.operations.failed)} failed,{" "}
            {formatCount(x.operations.deferred)} waiting)
          </>
        ) : null}
        .
      </p>
      {report.error !== undefined ? (
        <p>
          <Badge tone="bad">{report.error.code}</Badge> {report.error.message}
        </p>
      ) : null}
      {report.stale.length > 0 ? (
        <details>
          <summary>
            {plural(report.stale.length, "operation")} of the plan no longer apply and were not executed
          </summary>
          <ul className="records">
            {report.stale.slice(0, 200).map((s) => (
              <li key={s.op_id}>
                <code>{s.kind ?? "operation"}</code> {s.connection_id ?? ""} — {s.message}
              </li>
            ))}
          </ul>
        </details>
      ) : null}
      {report.new_since_plan > 0 ? (
        <p className="muted">
          {plural(report.new_since_plan, "new operation")} appeared since the plan; the next sync does them.
        </p>
      ) : null}
      {(x?.waiting ?? []).map((w) => (
        <p key={`${w.connection_id}-${w.code}`} className="muted">
          {w.connection_id}: {plural(w.operations, "operation")} waiting ({w.code}) — {w.message}
        </p>
      ))}
    </div>
  );
}
