/**
 * Overview: every connection's health, budget and queue; every pair's last and next run; opt-out
 * propagation lag beside the legal clocks; recent activity and the daily charts. Refreshes itself.
 */
import { useState, type ReactNode } from "react";
import { apiPost } from "../api";
import type {
  ComplianceReportView,
  ConnectionOverview,
  DailySeries,
  Overview,
  RunSummary,
} from "../api-types";
import { BudgetBars, LagChart, StackedBars } from "../components/charts";
import {
  Badge,
  Empty,
  ErrorNote,
  HealthBadge,
  Loading,
  RunStatusBadge,
  Section,
  Time,
} from "../components/common";
import { formatCount, formatDuration, plural } from "../format";
import { Link } from "../router";
import { describeRun, isIdleRun, RUN_KIND_LABEL } from "../run-words";
import { useNow, useResource, type Resource } from "../use-resource";

const REFRESH_MS = 5_000;

export function OverviewPage({ overview }: { overview: Resource<Overview> }): ReactNode {
  const now = useNow();
  const runs = useResource<{ runs: RunSummary[] }>("/api/runs?limit=100", REFRESH_MS);
  const daily = useResource<DailySeries>("/api/charts/daily?days=14", 10_000);
  const o = overview.data;

  return (
    <>
      <div className="page-head">
        <h1>Overview</h1>
        <span className="live" aria-live="off">
          <span className={`live-dot${overview.error ? " live-dot-bad" : ""}`} aria-hidden="true" />
          {overview.receivedAt !== undefined ? (
            <>updated {formatDuration(Math.max(0, now - overview.receivedAt))} ago · refreshes every 5 s</>
          ) : (
            "connecting…"
          )}
        </span>
      </div>
      <ErrorNote error={overview.error} title="The overview could not be refreshed" />
      {o !== undefined ? <ConnectNotice ids={o.connections.map((c) => c.id)} /> : null}
      {o === undefined ? (
        overview.error === undefined ? (
          <Loading what="the overview" />
        ) : null
      ) : (
        <>
          <div className="cards" role="group" aria-label="Connections">
            {o.connections.map((c) => (
              <ConnectionCard key={c.id} connection={c} now={now} />
            ))}
          </div>

          <div className="two-col">
            <Section title="Pairs" id="pairs">
              <table className="data">
                <thead>
                  <tr>
                    <th scope="col">Pair</th>
                    <th scope="col">Connections</th>
                    <th scope="col">Last run</th>
                    <th scope="col">Next run</th>
                  </tr>
                </thead>
                <tbody>
                  {o.pairs.map((p) => (
                    <tr key={p.id}>
                      <td>
                        <strong>{p.id}</strong>
                        {p.running ? (
                          <>
                            {" "}
                            <Badge tone="info">running</Badge>
                          </>
                        ) : null}
                        {p.contacts === null ? null : (
                          <div className="muted small">{plural(p.contacts, "contact")}</div>
                        )}
                      </td>
                      <td>
                        {p.crm} ⇄{" "}
                        {p.platforms
                          .map((x) => (x.topic === null ? x.connection : `${x.connection} (${x.topic})`))
                          .join(", ")}
                      </td>
                      <td>
                        {p.last_run === null ? (
                          <span className="muted">none yet</span>
                        ) : (
                          <>
                            <RunStatusBadge status={p.last_run.status} />{" "}
                            <Link to={{ page: "run", id: p.last_run.id }}>
                              {RUN_KIND_LABEL[p.last_run.kind]}
                            </Link>{" "}
                            <Time iso={p.last_run.started_at} now={now} />
                          </>
                        )}
                        {p.last_checked_at === null ? null : (
                          <div className="muted small">
                            checked <Time iso={p.last_checked_at} now={now} />: nothing new to do
                          </div>
                        )}
                      </td>
                      <td>
                        {p.running ? "running now" : <Time iso={p.next_run_at} now={now} />}
                        <div className="muted small">polls every {formatDuration(p.poll_interval_ms)}</div>
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
              <p className="small muted">
                Webhook deliveries waiting: <strong>{formatCount(o.inbox_pending)}</strong> · Review items
                open:{" "}
                <Link to={{ page: "review", status: "open" }}>
                  <strong>{formatCount(o.review_open)}</strong>
                </Link>
              </p>
            </Section>

            <Section title="Opt-out propagation, last 24 h" id="lag">
              <LagSummary overview={o} />
            </Section>
          </div>
        </>
      )}

      <div className="two-col">
        <Section
          title="Recent activity"
          id="activity"
          actions={<Link to={{ page: "runs" }}>All runs →</Link>}
        >
          <RecentActivity runs={runs} now={now} />
        </Section>
        <Section title="API budget used today" id="budget">
          {o === undefined ? null : (
            <BudgetBars
              rows={o.connections.map((c) => ({
                id: c.id,
                label: c.label ?? c.id,
                used: c.budget.used_today,
                quota: c.budget.daily_quota,
                pausedUntil: c.budget.paused_until,
              }))}
            />
          )}
        </Section>
      </div>

      <DailyCharts daily={daily} clocks={o?.legal_clocks ?? []} />
      <ComplianceReport />
    </>
  );
}

/** The compliance report for an auditor: per legal clock over 30 days, with its CSV. */
function ComplianceReport(): ReactNode {
  const report = useResource<ComplianceReportView>("/api/compliance?days=30");
  const r = report.data;
  const days = (n: number | null): string => (n === null ? "—" : n.toFixed(2));
  return (
    <Section title="Compliance report (30 days)" id="compliance">
      <p className="toolbar">
        <a className="button" href="/api/compliance.csv?days=30" download>
          Download CSV
        </a>
      </p>
      <ErrorNote error={report.error} />
      {r === undefined ? null : (
        <table className="data">
          <caption className="sr-only">Compliance per legal clock</caption>
          <thead>
            <tr>
              <th scope="col">Legal clock</th>
              <th scope="col" className="num">
                Opt-outs applied
              </th>
              <th scope="col" className="num">
                Lag p50 / p90 / p99 (days)
              </th>
              <th scope="col" className="num">
                Applied late
              </th>
              <th scope="col" className="num">
                Pending (past the deadline)
              </th>
            </tr>
          </thead>
          <tbody>
            {r.clocks.map((c) => (
              <tr key={c.key}>
                <td>
                  {c.name}
                  <div className="muted small">
                    {c.unit === "business_days" ? "in business days" : "in days"}
                  </div>
                </td>
                <td className="num">{formatCount(c.applied)}</td>
                <td className="num">
                  {days(c.lag_days.p50)} / {days(c.lag_days.p90)} / {days(c.lag_days.p99)}
                </td>
                <td className="num">
                  {c.applied_late > 0 ? <Badge tone="bad">{formatCount(c.applied_late)}</Badge> : "0"}
                </td>
                <td className="num">
                  {formatCount(c.pending)} (
                  {c.pending_breached > 0 ? <Badge tone="bad">{formatCount(c.pending_breached)}</Badge> : "0"}
                  )
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </Section>
  );
}

/** What each Connect failure code means (the overview shows only these sentences, never text from the URL). */
const CONNECT_ERRORS: Record<string, string> = {
  connect_state_invalid:
    "the answer does not match a Connect started in this browser in the last 10 minutes. Press Connect again.",
  connect_refused: "the vendor did not authorise the connection. Nothing changed.",
  connect_no_code: "the vendor answered without an authorization code. Nothing changed.",
  not_oauth: "this connection does not authorise by OAuth.",
  connect_unreachable: "the vendor's token endpoint could not be reached. Nothing changed.",
  connect_exchange_failed: "the vendor refused the authorization code. Nothing changed.",
  connect_metadata_failed: "the vendor's account details could not be read. Nothing changed.",
  connect_cannot_seal: "the tokens could not be sealed: is CONCORD_SECRET_KEY set? Nothing was kept.",
  connect_check_failed: "the tokens are saved, but the connection's check failed: see its card.",
};

/** What the vendor's answer to Connect came to (the callback returns here with a code), for the connections this overview lists. */
function ConnectNotice({ ids }: { ids: readonly string[] }): ReactNode {
  const params = new URLSearchParams(window.location.search);
  const connected = params.get("connected");
  const code = params.get("connect_error");
  const connection = params.get("connection");
  if (connected !== null && ids.includes(connected))
    return (
      <p className="notice notice-ok" role="status">
        Connected {connected}: its tokens are sealed and its queued work resumes with the next run.
      </p>
    );
  const sentence = code !== null ? CONNECT_ERRORS[code] : undefined;
  if (sentence !== undefined && connection !== null && ids.includes(connection)) {
    const vendor = params.get("vendor_error");
    return (
      <p className="notice notice-bad" role="alert">
        Connecting {connection} failed: {sentence}
        {vendor !== null && /^[a-z_]{1,40}$/.test(vendor) ? ` (${vendor})` : ""}
      </p>
    );
  }
  return null;
}

/** Sends the browser to the vendor's authorization page (Connect, or Reconnect when broken). */
function ConnectButton({ connection: c }: { connection: ConnectionOverview }): ReactNode {
  const [busy, setBusy] = useState(false);
  const [failed, setFailed] = useState<string | undefined>(undefined);
  const reconnect = c.health.status === "broken";
  const focus = new URLSearchParams(window.location.search).get("reconnect") === c.id;
  return (
    <div className="card-actions">
      <button
        type="button"
        className={reconnect ? "primary" : ""}
        disabled={busy}
        autoFocus={focus}
        onClick={() => {
          setBusy(true);
          setFailed(undefined);
          apiPost<{ authorize_url: string }>(`/api/connections/${encodeURIComponent(c.id)}/connect`)
            .then((r) => {
              window.location.assign(r.authorize_url);
            })
            .catch((e: unknown) => {
              setBusy(false);
              setFailed(e instanceof Error ? e.message : String(e));
            });
        }}
      >
        {reconnect ? "Reconnect" : "Connect"}
      </button>
      {failed !== undefined ? <span className="card-reason">{failed}</span> : null}
    </div>
  );
}

function ConnectionCard({ connection: c, now }: { connection: ConnectionOverview; now: number }): ReactNode {
  return (
    <article className={`card card-${c.health.status}`} aria-label={`Connection ${c.id}`}>
      <header className="card-head">
        <div>
          <h2 className="card-title">{c.label ?? c.id}</h2>
          <div className="muted small">
            {c.id} · {c.system} · {c.role === "crm" ? "CRM" : "email platform"}
          </div>
        </div>
        <HealthBadge status={c.health.status} />
      </header>
      {c.health.reason !== null && c.health.status !== "ok" ? (
        <p className="card-reason">{c.health.reason}</p>
      ) : null}
      <dl className="card-facts">
        <div>
          <dt>Since</dt>
          <dd>
            <Time iso={c.health.since} now={now} />
          </dd>
        </div>
        <div>
          <dt>Queued</dt>
          <dd>{plural(c.queued_operations, "operation")}</dd>
        </div>
        <div>
          <dt>Budget today</dt>
          <dd>
            {c.budget.daily_quota === null
              ? `${formatCount(c.budget.used_today)} calls (no daily quota)`
              : `${formatCount(c.budget.used_today)} of ${formatCount(c.budget.daily_quota)}`}
          </dd>
        </div>
        <div>
          <dt>Resets</dt>
          <dd>
            <Time iso={c.budget.resets_at} now={now} />
          </dd>
        </div>
      </dl>
      {c.budget.paused_until !== null ? (
        <p className="card-reason">
          Out of budget: non-consent work waits until <Time iso={c.budget.paused_until} />.
        </p>
      ) : null}
      {c.can_connect ? <ConnectButton connection={c} /> : null}
    </article>
  );
}

function LagSummary({ overview: o }: { overview: Overview }): ReactNode {
  const lag = o.propagation_lag;
  return (
    <>
      <div className="stats">
        <Stat label="opt-outs applied" value={formatCount(lag.count)} />
        <Stat label="p50" value={formatDuration(lag.p50_ms)} />
        <Stat label="p99" value={formatDuration(lag.p99_ms)} />
        <Stat label="slowest" value={formatDuration(lag.max_ms)} />
      </div>
      {lag.before_watch > 0 ? (
        <p className="muted">
          {formatCount(lag.before_watch)} of them were made before Concord first read these systems; their lag
          counts from that first read.
        </p>
      ) : null}
      <table className="data">
        <caption className="sr-only">Legal clocks</caption>
        <thead>
          <tr>
            <th scope="col">Legal clock</th>
            <th scope="col" className="num">
              Limit
            </th>
            <th scope="col">Applied in the window</th>
            <th scope="col">Still pending</th>
          </tr>
        </thead>
        <tbody>
          {o.legal_clocks.map((c) => {
            const worst = lag.max_ms;
            return (
              <tr key={c.name}>
                <td>{c.name}</td>
                <td className="num">
                  {c.unit === "business_days" ? `${c.days} business days` : formatDuration(c.limit_ms)}
                </td>
                <td>
                  {worst === null ? (
                    <span className="muted">no opt-out applied in the window</span>
                  ) : c.applied_late > 0 ? (
                    <Badge tone="bad">{formatCount(c.applied_late)} applied late</Badge>
                  ) : (
                    <Badge tone="ok">all within it</Badge>
                  )}
                </td>
                <td>
                  {c.pending === 0 ? (
                    <span className="muted">none</span>
                  ) : c.breached > 0 ? (
                    <Badge tone="bad">
                      {formatCount(c.breached)} past the deadline of {formatCount(c.pending)} pending
                    </Badge>
                  ) : c.due_soon > 0 ? (
                    <Badge tone="warn">
                      {formatCount(c.due_soon)} due soon of {formatCount(c.pending)} pending
                    </Badge>
                  ) : (
                    <span>{formatCount(c.pending)} pending, in time</span>
                  )}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </>
  );
}

function Stat({ label, value }: { label: string; value: string }): ReactNode {
  return (
    <div className="stat">
      <div className="stat-value">{value}</div>
      <div className="stat-label">{label}</div>
    </div>
  );
}

function RecentActivity({ runs, now }: { runs: Resource<{ runs: RunSummary[] }>; now: number }): ReactNode {
  if (runs.data === undefined) return runs.error ? <ErrorNote error={runs.error} /> : <Loading what="runs" />;
  const busy = runs.data.runs.filter((r) => !isIdleRun(r)).slice(0, 12);
  const idle = runs.data.runs.length - runs.data.runs.filter((r) => !isIdleRun(r)).length;
  return (
    <>
      {busy.length === 0 ? (
        <Empty>No run has changed anything yet.</Empty>
      ) : (
        <ul className="activity">
          {busy.map((r) => (
            <li key={r.id}>
              <Time iso={r.started_at} now={now} /> <RunStatusBadge status={r.status} />{" "}
              <Link to={{ page: "run", id: r.id }}>
                {r.pair_id ?? "—"} {RUN_KIND_LABEL[r.kind]}
              </Link>{" "}
              <span className="muted">{describeRun(r)}</span>
            </li>
          ))}
        </ul>
      )}
      {idle > 0 ? (
        <p className="small muted">{plural(idle, "poll")} that found nothing new are not shown.</p>
      ) : null}
    </>
  );
}

function DailyCharts({
  daily,
  clocks,
}: {
  daily: Resource<DailySeries>;
  clocks: { name: string; limit_ms: number }[];
}): ReactNode {
  const days = daily.data?.days ?? [];
  const kinds = [...new Set(days.flatMap((d) => Object.keys(d.operations)))].sort();
  const connections = [...new Set(days.flatMap((d) => Object.keys(d.api_calls)))].sort();
  return (
    <div className="three-col">
      <Section title="Opt-out lag per day" id="chart-lag">
        {daily.data === undefined ? (
          <ErrorNote error={daily.error} />
        ) : (
          <LagChart
            points={days.map((d) => ({
              date: d.date,
              p50_ms: d.lag_p50_ms,
              p99_ms: d.lag_p99_ms,
              count: d.opt_outs_applied,
            }))}
            clocks={clocks}
          />
        )}
      </Section>
      <Section title="Operations applied per day" id="chart-ops">
        {daily.data === undefined ? (
          <ErrorNote error={daily.error} />
        ) : (
          <StackedBars
            days={days.map((d) => d.date)}
            series={kinds.map((k) => ({ key: k, label: k }))}
            valueOf={(i, k) => days[i]?.operations[k] ?? 0}
            unit="operations"
          />
        )}
      </Section>
      <Section title="API calls per day" id="chart-calls">
        {daily.data === undefined ? (
          <ErrorNote error={daily.error} />
        ) : (
          <StackedBars
            days={days.map((d) => d.date)}
            series={connections.map((c) => ({ key: c, label: c }))}
            valueOf={(i, c) => days[i]?.api_calls[c] ?? 0}
            unit="API calls"
          />
        )}
      </Section>
    </div>
  );
}
