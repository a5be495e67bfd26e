/**
 * Runs: a dry run (preview) or a sync of each pair on demand, with the plan and an "Apply this plan"
 * button, and every run newest first (polls that found nothing hidden unless asked for).
 */
import { useState, type ReactNode } from "react";
import { apiPost } from "../api";
import { asPlanSummary, type Overview, type RunDetail, type RunSummary, type SyncReport } from "../api-types";
import { ApplyPlan } from "../components/apply-plan";
import { Badge, Empty, ErrorNote, Loading, RunStatusBadge, Section, Time } from "../components/common";
import { PlanView } from "../components/plan-view";
import { formatDuration, plural } from "../format";
import { Link } from "../router";
import { describeRun, isIdleRun, RUN_KIND_LABEL, runDuration } from "../run-words";
import { useAction, useNow, useResource, type Resource } from "../use-resource";

export function RunsPage({ overview }: { overview: Resource<Overview> }): ReactNode {
  const pairs = overview.data?.pairs ?? [];
  return (
    <>
      <div className="page-head">
        <h1>Runs</h1>
      </div>
      <Section title="Run a pair now" id="run-now">
        {pairs.length === 0 ? (
          overview.error ? (
            <ErrorNote error={overview.error} />
          ) : (
            <Loading what="pairs" />
          )
        ) : (
          pairs.map((p) => <PairActions key={p.id} pairId={p.id} running={p.running} />)
        )}
      </Section>
      <RunList />
    </>
  );
}

function PairActions({ pairId, running }: { pairId: string; running: boolean }): ReactNode {
  const action = useAction<{ report: SyncReport | null }>();
  const [mode, setMode] = useState<"dry_run" | "sync">("dry_run");
  const start = (dryRun: boolean): void => {
    setMode(dryRun ? "dry_run" : "sync");
    void action.run(() => apiPost(`/api/pairs/${encodeURIComponent(pairId)}/sync`, { dry_run: dryRun }));
  };
  const report = action.result?.report ?? undefined;
  return (
    <div className="pair-actions">
      <div className="toolbar">
        <strong>{pairId}</strong>
        {running ? <Badge tone="info">running</Badge> : null}
        <button
          type="button"
          onClick={() => {
            start(true);
          }}
          disabled={action.pending}
        >
          {action.pending && mode === "dry_run" ? "Planning…" : "Dry run"}
        </button>
        <button
          type="button"
          onClick={() => {
            start(false);
          }}
          disabled={action.pending}
        >
          {action.pending && mode === "sync" ? "Syncing…" : "Sync now"}
        </button>
        <span className="muted small">
          A dry run reads every system and stores the plan without writing anything; apply it afterwards.
        </span>
      </div>
      <ErrorNote error={action.error} title={mode === "dry_run" ? "The dry run failed" : "The sync failed"} />
      {report === null ? <p className="muted">The pair did not run (it is not in the config).</p> : null}
      {report !== undefined && report !== null ? <SyncResult report={report} /> : null}
    </div>
  );
}

function SyncResult({ report }: { report: SyncReport }): ReactNode {
  const plan = asPlanSummary(report.plan);
  // The run's detail names the contacts the plan skips or waits for.
  const detail = useResource<RunDetail>(`/api/runs/${encodeURIComponent(report.run_id)}`);
  return (
    <section className="preview" aria-label={report.dry_run ? "Dry-run preview" : "Sync result"}>
      <h3 className="preview-title">
        <RunStatusBadge status={report.status} /> {report.dry_run ? "Dry run" : "Sync"} of {report.pair_id}:{" "}
        {report.plan_id !== undefined ? (
          <>
            plan <code>{report.plan_id}</code>
          </>
        ) : (
          "no plan"
        )}{" "}
        <Link to={{ page: "run", id: report.run_id }}>(run {report.run_id})</Link>
      </h3>
      {report.error !== undefined ? (
        <div className="alert alert-bad" role="alert">
          {report.error.code}: {report.error.message}
        </div>
      ) : null}
      <PullsTable pulls={report.pulls} />
      {plan !== null ? <PlanView plan={plan} names={detail.data?.contacts ?? {}} /> : null}
      {report.dry_run && report.plan_id !== undefined && plan !== null && plan.operations.length > 0 ? (
        <ApplyPlan planId={report.plan_id} />
      ) : null}
      {report.execution !== undefined ? (
        <p>
          Applied: {report.execution.operations.succeeded} succeeded, {report.execution.operations.failed}{" "}
          failed, {report.execution.operations.deferred} waiting, {report.execution.operations.skipped}{" "}
          skipped.
        </p>
      ) : null}
    </section>
  );
}

export function PullsTable({
  pulls,
}: {
  pulls: {
    connection_id: string;
    records_seen: number;
    records_changed: number;
    consent_events_appended: number;
    error: { code: string; message: string } | null;
  }[];
}): ReactNode {
  if (pulls.length === 0) return null;
  return (
    <table className="data compact">
      <caption className="sr-only">What each system read</caption>
      <thead>
        <tr>
          <th scope="col">Read</th>
          <th scope="col" className="num">
            Records
          </th>
          <th scope="col" className="num">
            Changed
          </th>
          <th scope="col" className="num">
            Consent events recorded
          </th>
          <th scope="col">Problem</th>
        </tr>
      </thead>
      <tbody>
        {pulls.map((p) => (
          <tr key={p.connection_id}>
            <td>{p.connection_id}</td>
            <td className="num">{p.records_seen}</td>
            <td className="num">{p.records_changed}</td>
            <td className="num">{p.consent_events_appended}</td>
            <td>
              {p.error === null ? <span className="muted">—</span> : `${p.error.code}: ${p.error.message}`}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function RunList(): ReactNode {
  const [showIdle, setShowIdle] = useState(false);
  const [kind, setKind] = useState<"" | RunSummary["kind"]>("");
  const runs = useResource<{ runs: RunSummary[] }>("/api/runs?limit=200", 5_000);
  const now = useNow();
  const all = runs.data?.runs ?? [];
  const shown = all.filter((r) => (kind === "" || r.kind === kind) && (showIdle || !isIdleRun(r)));
  const idle = all.filter((r) => isIdleRun(r)).length;
  return (
    <Section
      title="Runs"
      id="runs"
      actions={
        <>
          <label className="inline">
            Kind{" "}
            <select
              value={kind}
              onChange={(e) => {
                setKind(e.target.value as typeof kind);
              }}
            >
              <option value="">all</option>
              <option value="sync">sync</option>
              <option value="dry_run">dry run</option>
              <option value="reconcile">reconciliation</option>
            </select>
          </label>
          <label className="inline">
            <input
              type="checkbox"
              checked={showIdle}
              onChange={(e) => {
                setShowIdle(e.target.checked);
              }}
            />{" "}
            show polls that found nothing ({idle})
          </label>
        </>
      }
    >
      <ErrorNote error={runs.error} />
      {runs.data === undefined ? (
        runs.error ? null : (
          <Loading what="runs" />
        )
      ) : shown.length === 0 ? (
        <Empty>No run to show.</Empty>
      ) : (
        <table className="data">
          <thead>
            <tr>
              <th scope="col">Started</th>
              <th scope="col">Pair</th>
              <th scope="col">Kind</th>
              <th scope="col">Status</th>
              <th scope="col" className="num">
                Took
              </th>
              <th scope="col">What happened</th>
            </tr>
          </thead>
          <tbody>
            {shown.map((r) => (
              <tr key={r.id}>
                <td>
                  <Link to={{ page: "run", id: r.id }}>
                    <Time iso={r.started_at} />
                  </Link>
                  <div className="muted small">
                    <Time iso={r.started_at} now={now} />
                  </div>
                </td>
                <td>{r.pair_id ?? "—"}</td>
                <td>{RUN_KIND_LABEL[r.kind]}</td>
                <td>
                  <RunStatusBadge status={r.status} />
                </td>
                <td className="num">{formatDuration(runDuration(r))}</td>
                <td>{describeRun(r)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {all.length > 0 ? (
        <p className="small muted">The latest {plural(all.length, "run")}; refreshes every 5 s.</p>
      ) : null}
    </Section>
  );
}
