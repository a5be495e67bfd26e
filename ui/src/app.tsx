/**
 * The admin UI's shell: the session (sign in, sign out, back to sign-in when it lapses), the
 * navigation, a red banner on every page while a connection is broken, and the page for the route.
 */
import { useEffect, useState, type ReactNode } from "react";
import { ApiError, apiDelete, apiGet, onSessionLost, setCsrfToken } from "./api";
import type { Overview, Session } from "./api-types";
import { ErrorNote, Loading } from "./components/common";
import { formatCount } from "./format";
import { OverviewPage } from "./pages/overview-page";
import { PeoplePage } from "./pages/people-page";
import { PersonPage } from "./pages/person-page";
import { ReconciliationPage } from "./pages/reconciliation-page";
import { ReviewPage } from "./pages/review-page";
import { RunPage } from "./pages/run-page";
import { RunsPage } from "./pages/runs-page";
import { SignInPage } from "./pages/sign-in-page";
import { Link, useRoute, type Route } from "./router";
import { toApiError, useResource, type Resource } from "./use-resource";

type SessionState =
  | { kind: "checking" }
  | { kind: "signed_out"; notice?: string }
  | { kind: "signed_in" }
  | { kind: "unavailable"; error: ApiError };

export function App(): ReactNode {
  const [session, setSession] = useState<SessionState>({ kind: "checking" });

  useEffect(() => {
    onSessionLost(() => {
      setCsrfToken(null);
      setSession({ kind: "signed_out", notice: "Your session ended. Sign in again." });
    });
    let cancelled = false;
    apiGet<Session>("/api/session").then(
      (s) => {
        if (cancelled) return;
        setCsrfToken(s.csrf_token);
        setSession(s.signed_in ? { kind: "signed_in" } : { kind: "signed_out" });
      },
      (error: unknown) => {
        if (!cancelled) setSession({ kind: "unavailable", error: toApiError(error) });
      },
    );
    return () => {
      cancelled = true;
      onSessionLost(undefined);
    };
  }, []);

  switch (session.kind) {
    case "checking":
      return (
        <main className="sign-in">
          <Loading what="Concord" />
        </main>
      );
    case "unavailable":
      return (
        <main className="sign-in">
          <div className="sign-in-card">
            <h1>Concord</h1>
            <ErrorNote error={session.error} title="The admin API is not available" />
            <p className="muted">
              Fix what the message says on the server, restart it, then reload this page.
            </p>
          </div>
        </main>
      );
    case "signed_out":
      return (
        <SignInPage
          notice={session.notice}
          onSignedIn={(s) => {
            setCsrfToken(s.csrf_token);
            setSession({ kind: "signed_in" });
          }}
        />
      );
    case "signed_in":
      return (
        <Shell
          onSignOut={() => {
            void apiDelete("/api/session")
              .catch(() => undefined)
              .then(() => {
                setCsrfToken(null);
                setSession({ kind: "signed_out", notice: "You are signed out." });
              });
          }}
        />
      );
  }
}

const NAV: { label: string; to: Route; pages: Route["page"][] }[] = [
  { label: "Overview", to: { page: "overview" }, pages: ["overview"] },
  { label: "Runs", to: { page: "runs" }, pages: ["runs", "run"] },
  { label: "People", to: { page: "people", q: "" }, pages: ["people", "person"] },
  { label: "Reconciliation", to: { page: "reconciliation" }, pages: ["reconciliation"] },
  { label: "Review queue", to: { page: "review", status: "open" }, pages: ["review"] },
];

const TITLES: Record<Route["page"], string> = {
  overview: "Overview",
  runs: "Runs",
  run: "Run",
  people: "People",
  person: "Person",
  reconciliation: "Reconciliation",
  review: "Review queue",
  not_found: "Not found",
};

function Shell({ onSignOut }: { onSignOut: () => void }): ReactNode {
  const route = useRoute();
  // One overview for the whole shell: the broken-connection banner, the review badge, the Overview page.
  const overview = useResource<Overview>("/api/overview", 5_000);
  const broken = (overview.data?.connections ?? []).filter((c) => c.health.status === "broken");
  const reviewOpen = overview.data?.review_open ?? 0;

  useEffect(() => {
    document.title = `${TITLES[route.page]} · Concord`;
  }, [route.page]);

  return (
    <>
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <Link to={{ page: "overview" }} className="brand">
          <span className="brand-mark" aria-hidden="true">
            ◆
          </span>{" "}
          Concord
        </Link>
        <nav aria-label="Main">
          {NAV.map((n) => (
            <Link key={n.label} to={n.to} aria-current={n.pages.includes(route.page) ? "page" : undefined}>
              {n.label}
              {n.label === "Review queue" && reviewOpen > 0 ? (
                <span className="count" aria-label={`${reviewOpen} open`}>
                  {formatCount(reviewOpen)}
                </span>
              ) : null}
            </Link>
          ))}
        </nav>
        <button type="button" className="signout" onClick={onSignOut}>
          Sign out
        </button>
      </header>
      {broken.length > 0 ? (
        <div className="banner-broken" role="alert">
          <strong>
            {broken.length === 1 ? "A connection is broken" : `${broken.length} connections are broken`}:
          </strong>{" "}
          {broken.map((c) => (
            <span key={c.id} className="banner-item">
              <strong>{c.label ?? c.id}</strong> — {c.health.reason ?? "no reason given"}.
            </span>
          ))}{" "}
          Its work waits (nothing is lost); renew the credential (
          <code>concord secrets set &lt;connection&gt;.refresh_token</code>) and the next run resumes.
        </div>
      ) : null}
      <main id="main" className="page">
        <Page route={route} overview={overview} />
      </main>
    </>
  );
}

function Page({ route, overview }: { route: Route; overview: Resource<Overview> }): ReactNode {
  switch (route.page) {
    case "overview":
      return <OverviewPage overview={overview} />;
    case "runs":
      return <RunsPage overview={overview} />;
    case "run":
      return <RunPage key={route.id} id={route.id} />;
    case "people":
      return <PeoplePage q={route.q} />;
    case "person":
      return <PersonPage key={route.id} id={route.id} />;
    case "reconciliation":
      return <ReconciliationPage />;
    case "review":
      return <ReviewPage key={route.status} status={route.status} />;
    case "not_found":
      return (
        <>
          <h1>Not found</h1>
          <p>
            There is no page at <code>{route.path}</code>.{" "}
            <Link to={{ page: "overview" }}>Go to the overview</Link>.
          </p>
        </>
      );
  }
}
