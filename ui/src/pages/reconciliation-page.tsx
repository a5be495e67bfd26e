/**
 * Reconciliation: the latest comparison of what every system shows about opting out with what the
 * consent rules decide; each difference with its cause, the fixable ones fixed from here, and the
 * list as CSV.
 */
import { useState, type ReactNode } from "react";
import { apiPost } from "../api";
import { isRecord, type Difference, type Reconciliation, type ReconciliationReport } from "../api-types";
import {
  Badge,
  Empty,
  ErrorNote,
  Facts,
  Loading,
  RunStatusBadge,
  Section,
  Time,
  type Tone,
} from "../components/common";
import { formatCount, humanize, plural } from "../format";
import { Link } from "../router";
import { useAction, useResource } from "../use-resource";

const KIND_TONE: Record<Difference["kind"], Tone> = {
  opt_out_missing: "bad",
  opt_in_missing: "warn",
  waiting_for_person: "info",
  platform_only_opt_out: "neutral",
  unlinked_opt_out_not_applied: "warn",
};

const KIND_MEANING: Record<Difference["kind"], string> = {
  opt_out_missing: "The rules say opted out; the system still shows the person subscribed.",
  opt_in_missing: "The person's own opt-in lifted an opt-out the system still shows.",
  waiting_for_person: "An admin asked to resubscribe; the confirmation email is out.",
  platform_only_opt_out: "Sendable by the rules, unsubscribed on a platform only the person can undo.",
  unlinked_opt_out_not_applied:
    "An opt-out on a record matched only by address, kept out of the CRM by policy.",
};

export function ReconciliationPage(): ReactNode {
  const latest = useResource<Reconciliation>("/api/reconciliation");
  const action = useAction<Reconciliation>();
  const [last, setLast] = useState<"run" | "fix">("run");
  const start = (fix: boolean): void => {
    setLast(fix ? "fix" : "run");
    void action
      .run(() => apiPost<Reconciliation>("/api/reconciliation", { fix }))
      .then(() => {
        latest.reload();
      });
  };
  const data = latest.data;
  const fixable = (data?.reports ?? []).reduce(
    (n, r) => n + (r.remaining ?? r.differences).filter((d) => d.fixable).length,
    0,
  );
  return (
    <>
      <div className="page-head">
        <h1>Reconciliation</h1>
        <span className="toolbar">
          <button
            type="button"
            onClick={() => {
              start(false);
            }}
            disabled={action.pending}
          >
            {action.pending && last === "run" ? "Reading every system…" : "Run reconciliation now"}
          </button>
          <button
            type="button"
            className="primary"
            onClick={() => {
              start(true);
            }}
            disabled={action.pending || fixable === 0}
          >
            {action.pending && last === "fix"
              ? "Fixing…"
              : `Fix what the rules allow${fixable > 0 ? ` (${formatCount(fixable)})` : ""}`}
          </button>
          <a className="button" href="/api/reconciliation.csv" download>
            Download CSV
          </a>
        </span>
      </div>
      <p className="muted">
        Every system is read again in full and what each shows about opting out is compared with what the
        consent rules decide from the ledger. A fix sends consent operations only; nothing is ever
        re-subscribed.
      </p>
      <ErrorNote
        error={action.error}
        title={last === "fix" ? "The fix failed" : "The reconciliation failed"}
      />
      <ErrorNote error={latest.error} />
      {data === undefined ? (
        latest.error ? null : (
          <Loading what="the latest reconciliation" />
        )
      ) : data.reports.length === 0 ? (
        <Empty>
          No reconciliation has run yet. Run one now, or wait for the scheduled full reconciliation.
        </Empty>
      ) : (
        data.reports.map((r) => <Report key={r.run_id} report={r} />)
      )}
    </>
  );
}

function Report({ report: r }: { report: ReconciliationReport }): ReactNode {
  const [kind, setKind] = useState<"" | Difference["kind"]>("");
  const [fixableOnly, setFixableOnly] = useState(false);
  const current = r.remaining ?? r.differences;
  const shown = current.filter((d) => (kind === "" || d.kind === kind) && (!fixableOnly || d.fixable));
  const byKind = new Map<string, number>();
  for (const d of current) byKind.set(d.kind, (byKind.get(d.kind) ?? 0) + 1);
  const fixed = isRecord(r.fixed) && isRecord(r.fixed["operations"]) ? r.fixed["operations"] : null;
  const count = (v: unknown): number => (typeof v === "number" ? v : 0);
  return (
    <Section
      title={
        <>
          Pair {r.pair_id} <RunStatusBadge status={r.status} />
        </>
      }
      id={`report-${r.pair_id}`}
    >
      <Facts
        items={[
          ["Finished", <Time key="f" iso={r.finished_at} />],
          [
            "Run",
            <Link key="r" to={{ page: "run", id: r.run_id }}>
              {r.run_id}
            </Link>,
          ],
          ["Contacts compared", formatCount(r.contacts_compared)],
          [
            "Opted out, as each system shows it",
            Object.entries(r.opt_outs_by_connection)
              .map(([c, n]) => `${c} ${formatCount(n)}`)
              .join(" · "),
          ],
          [
            r.remaining !== null ? "Left after the fix" : "Differences",
            <strong key="d">{formatCount(current.length)}</strong>,
          ],
        ]}
      />
      {r.error !== null ? (
        <div className="alert alert-bad" role="alert">
          {r.error.code}: {r.error.message}
        </div>
      ) : null}
      {fixed !== null ? (
        <div className="alert alert-ok" role="status">
          Fixed {plural(r.differences.length - current.length, "difference")}: {count(fixed["succeeded"])}{" "}
          operations succeeded, {count(fixed["failed"])} failed, {count(fixed["deferred"])} waiting.
        </div>
      ) : null}
      {current.length === 0 ? (
        <Empty>No differences: every system shows what the consent rules decide.</Empty>
      ) : (
        <>
          <div className="toolbar">
            {[...byKind.entries()].map(([k, n]) => (
              <span key={k} title={KIND_MEANING[k as Difference["kind"]]}>
                <Badge tone={KIND_TONE[k as Difference["kind"]]}>{humanize(k)}</Badge> {formatCount(n)}
              </span>
            ))}
            <span className="spacer" />
            <label className="inline">
              Kind{" "}
              <select
                value={kind}
                onChange={(e) => {
                  setKind(e.target.value as typeof kind);
                }}
              >
                <option value="">all</option>
                {[...byKind.keys()].map((k) => (
                  <option key={k} value={k}>
                    {humanize(k)}
                  </option>
                ))}
              </select>
            </label>
            <label className="inline">
              <input
                type="checkbox"
                checked={fixableOnly}
                onChange={(e) => {
                  setFixableOnly(e.target.checked);
                }}
              />{" "}
              fixable only
            </label>
          </div>
          <table className="data">
            <thead>
              <tr>
                <th scope="col">Person</th>
                <th scope="col">In</th>
                <th scope="col">Difference</th>
                <th scope="col">System shows</th>
                <th scope="col">Rules say</th>
                <th scope="col">Cause</th>
              </tr>
            </thead>
            <tbody>
              {shown.slice(0, 500).map((d, i) => (
                <tr key={`${d.contact_id}-${d.connection_id}-${i}`}>
                  <td>
                    <Link to={{ page: "person", id: d.contact_id }}>{d.email ?? d.contact_id}</Link>
                  </td>
                  <td>
                    {d.connection_id}
                    <div className="muted small">
                      {d.scope.kind === "global" ? "all email" : `topic ${d.scope.topic}`}
                    </div>
                  </td>
                  <td>
                    <Badge tone={KIND_TONE[d.kind]} title={KIND_MEANING[d.kind]}>
                      {humanize(d.kind)}
                    </Badge>
                    <div className="small">
                      {d.fixable ? (
                        <Badge tone="ok">fixable</Badge>
                      ) : (
                        <span className="muted">not fixable</span>
                      )}
                    </div>
                  </td>
                  <td className="small">{d.system_shows}</td>
                  <td className="small">{d.rules_say}</td>
                  <td className="small">{d.cause}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {shown.length > 500 ? (
            <p className="muted">The first 500 of {formatCount(shown.length)}; the CSV has all.</p>
          ) : null}
        </>
      )}
    </Section>
  );
}
