/** Small building blocks every page uses: badges, times, errors, loading and empty states. */
import type { ReactNode } from "react";
import type { ApiError } from "../api";
import { formatRelative, formatTime } from "../format";

export type Tone = "ok" | "warn" | "bad" | "neutral" | "info";

export function Badge({
  tone,
  children,
  title,
}: {
  tone: Tone;
  children: ReactNode;
  title?: string;
}): ReactNode {
  return (
    <span className={`badge badge-${tone}`} title={title}>
      {children}
    </span>
  );
}

const HEALTH_TONE: Record<string, Tone> = { ok: "ok", degraded: "warn", broken: "bad", unknown: "neutral" };

export function HealthBadge({ status }: { status: string }): ReactNode {
  return <Badge tone={HEALTH_TONE[status] ?? "neutral"}>{status}</Badge>;
}

const RUN_TONE: Record<string, Tone> = {
  succeeded: "ok",
  running: "info",
  failed: "bad",
  cancelled: "neutral",
};

export function RunStatusBadge({ status }: { status: string }): ReactNode {
  return <Badge tone={RUN_TONE[status] ?? "neutral"}>{status}</Badge>;
}

export function SendableBadge({ sendable }: { sendable: boolean }): ReactNode {
  return <Badge tone={sendable ? "ok" : "bad"}>{sendable ? "sendable" : "not sendable"}</Badge>;
}

/** A local time, its UTC ISO form on hover. */
export function Time({ iso, now }: { iso: string | null | undefined; now?: number }): ReactNode {
  if (iso === null || iso === undefined) return <span className="muted">—</span>;
  return (
    <time dateTime={iso} title={iso}>
      {now === undefined ? formatTime(iso) : formatRelative(iso, now)}
    </time>
  );
}

export function ErrorNote({ error, title }: { error: ApiError | undefined; title?: string }): ReactNode {
  if (error === undefined) return null;
  return (
    <div className="alert alert-bad" role="alert">
      {title !== undefined ? <strong>{title}: </strong> : null}
      {error.message} <code className="muted">{error.code}</code>
    </div>
  );
}

export function Loading({ what }: { what: string }): ReactNode {
  return (
    <p className="muted" role="status">
      Loading {what}…
    </p>
  );
}

export function Empty({ children }: { children: ReactNode }): ReactNode {
  return <p className="empty">{children}</p>;
}

export function Section({
  title,
  actions,
  children,
  id,
}: {
  title: ReactNode;
  actions?: ReactNode;
  children: ReactNode;
  id?: string;
}): ReactNode {
  return (
    <section className="panel" aria-labelledby={id}>
      <header className="panel-head">
        <h2 id={id}>{title}</h2>
        {actions !== undefined ? <div className="panel-actions">{actions}</div> : null}
      </header>
      {children}
    </section>
  );
}

/** Label–value pairs in a compact grid. */
export function Facts({ items }: { items: [ReactNode, ReactNode][] }): ReactNode {
  return (
    <dl className="facts">
      {items.map(([label, value], i) => (
        <div key={i}>
          <dt>{label}</dt>
          <dd>{value}</dd>
        </div>
      ))}
    </dl>
  );
}
