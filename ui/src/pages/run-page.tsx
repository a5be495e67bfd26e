/** One run: what it read, its stored plan (counts, reasons, skips, waits), its outcomes, and applying what is left. */
import type { ReactNode } from "react";
import { asPlanSummary, asRunSummary, type RunDetail } from "../api-types";
import { ApplyPlan } from "../components/apply-plan";
import { Badge, ErrorNote, Facts, Loading, RunStatusBadge, Section, Time } from "../components/common";
import { PlanView } from "../components/plan-view";
import { formatCount, formatDuration, humanize, plural } from "../format";
import { Link } from "../router";
import { describeRun, RUN_KIND_LABEL, runDuration } from "../run-words";
import { useResource } from "../use-resource";
import { PullsTable } from "./runs-page";

export function RunPage({ id }: { id: string }): ReactNode {
  const detail = useResource<RunDetail>(`/api/runs/${encodeURIComponent(id)}`);
  const d = detail.data;
  return (
    <>
      <div className="page-head">
        <h1>
          Run <code>{id}</code>
        </h1>
        <Link to={{ page: "runs" }}>← All runs</Link>
      </div>
      <ErrorNote error={detail.error} />
      {d === undefined ? (
        detail.error ? null : (
          <Loading what="the run" />
        )
      ) : (
        <RunBody detail={d} reload={detail.reload} />
      )}
    </>
  );
}

function RunBody({ detail: d, reload }: { detail: RunDetail; reload: () => void }): ReactNode {
  const s = asRunSummary(d.run.summary);
  const plan = d.plan === null ? null : asPlanSummary(d.plan.summary);
  const outcomes = Object.entries(d.outcomes);
  const error =
    typeof s.error === "string"
      ? s.error
      : s.error !== undefined
        ? `${s.error.code}: ${s.error.message}`
        : null;
  return (
    <>
      <Section title="Run" id="run">
        <Facts
          items={[
            ["Pair", d.run.pair_id ?? "—"],
            ["Kind", RUN_KIND_LABEL[d.run.kind]],
            ["Status", <RunStatusBadge key="s" status={d.run.status} />],
            ["Started", <Time key="t" iso={d.run.started_at} />],
            ["Took", formatDuration(runDuration(d.run))],
            ["In short", describeRun(d.run)],
            ...(s.contacts !== undefined
              ? [
                  [
                    "Contacts",
                    `${formatCount(s.contacts.planned)} in the plan; ${formatCount(s.contacts.unchanged ?? s.contacts.settled ?? 0)} of them unchanged since they were last planned, so not planned again`,
                  ] as [ReactNode, ReactNode],
                ]
              : []),
          ]}
        />
        {error !== null ? (
          <div className="alert alert-bad" role="alert">
            {error}
          </div>
        ) : null}
        <PullsTable pulls={s.pulls ?? []} />
        {s.execution !== undefined ? (
          <p>
            Executed: {formatCount(s.execution.operations.succeeded)} succeeded,{" "}
            {formatCount(s.execution.operations.failed)} failed,{" "}
            {formatCount(s.execution.operations.deferred)} waiting,{" "}
            {formatCount(s.execution.operations.skipped)} skipped
            {s.execution.rejections !== undefined && s.execution.rejections > 0
              ? `; ${plural(s.execution.rejections, "record")} refused`
              : ""}
            .
          </p>
        ) : null}
        {(s.execution?.waiting ?? []).map((w) => (
          <div key={`${w.connection_id}-${w.code}`} className="alert alert-warn">
            {w.connection_id}: {plural(w.operations, "operation")} waiting ({w.code})
            {w.retry_at !== undefined ? (
              <>
                {" "}
                until <Time iso={w.retry_at} />
              </>
            ) : null}{" "}
            — {w.message}
          </div>
        ))}
        {d.run.kind === "reconcile" ? (
          <p>
            <Link to={{ page: "reconciliation" }}>Open the latest reconciliation report →</Link>
          </p>
        ) : null}
      </Section>

      {d.plan !== null ? (
        <Section
          title={
            <>
              Plan <code>{d.plan.id}</code>
            </>
          }
          id="plan"
          actions={
            d.plan.pending_operations > 0 ? (
              <ApplyPlan planId={d.plan.id} onApplied={reload} />
            ) : (
              <span className="muted small">nothing of this plan is left to apply</span>
            )
          }
        >
          <p className="small muted">
            Stored <Time iso={d.plan.created_at} />. Operations by status:{" "}
            {outcomes.length === 0
              ? "none"
              : outcomes.map(([status, n], i) => (
                  <span key={status}>
                    {i > 0 ? ", " : ""}
                    <Badge
                      tone={
                        status === "succeeded"
                          ? "ok"
                          : status === "failed"
                            ? "bad"
                            : status === "pending"
                              ? "info"
                              : "neutral"
                      }
                    >
                      {humanize(status)}
                    </Badge>{" "}
                    {formatCount(n)}
                  </span>
                ))}
            .
          </p>
          {plan !== null ? (
            <PlanView plan={plan} names={d.contacts} />
          ) : (
            <p className="muted">
              This plan holds the reconciliation's fixes: see the reconciliation report.
            </p>
          )}
        </Section>
      ) : null}
    </>
  );
}
