/** A run in a line: what it read, planned and applied, from its stored summary. */
import { asRunSummary, type RunSummary } from "./api-types";
import { formatCount, plural } from "./format";

/** A poll that found nothing and changed nothing: hidden by default so the list shows what happened. */
export function isIdleRun(run: RunSummary): boolean {
  if (run.status !== "succeeded") return false;
  const s = asRunSummary(run.summary);
  if (run.kind === "reconcile") return false;
  if (run.kind === "dry_run") return false;
  const changed = (s.pulls ?? []).some((p) => p.records_changed > 0 || p.consent_events_appended > 0);
  return !changed && (s.operations ?? 0) === 0 && (s.execution?.operations.total ?? 0) === 0;
}

export const RUN_KIND_LABEL: Record<RunSummary["kind"], string> = {
  sync: "sync",
  dry_run: "dry run",
  reconcile: "reconciliation",
};

export function describeRun(run: RunSummary): string {
  const s = asRunSummary(run.summary);
  const parts: string[] = [];
  if (run.status === "running") return "running…";
  if (typeof s.error === "string") parts.push(`error: ${s.error}`);
  else if (s.error !== undefined) parts.push(`${s.error.code}: ${s.error.message}`);
  // A scheduled full read is a reconcile run with a sync's summary; a reconciliation stores its report.
  if (run.kind === "reconcile" && s.contacts_compared !== undefined) {
    if (s.contacts_compared !== undefined) parts.push(`${plural(s.contacts_compared, "contact")} compared`);
    if (Array.isArray(s.differences)) parts.push(plural(s.differences.length, "difference"));
    if (Array.isArray(s.remaining)) parts.push(`${formatCount(s.remaining.length)} left after the fix`);
    return parts.join(", ");
  }
  const changed = (s.pulls ?? []).reduce((n, p) => n + p.records_changed, 0);
  const consent = (s.pulls ?? []).reduce((n, p) => n + p.consent_events_appended, 0);
  const pullErrors = (s.pulls ?? []).filter((p) => p.error !== null);
  if (changed > 0) parts.push(`${plural(changed, "record")} changed`);
  if (consent > 0) parts.push(plural(consent, "consent event"));
  for (const p of pullErrors) parts.push(`${p.connection_id}: ${p.error?.code ?? "error"}`);
  if (s.operations !== undefined && s.operations > 0)
    parts.push(`${plural(s.operations, "operation")} planned`);
  const gains = Object.entries(s.gains ?? {}).filter(([, n]) => n > 0);
  for (const [c, n] of gains) parts.push(`${c} +${formatCount(n)}`);
  const x = s.execution;
  if (x !== undefined && x.operations.total > 0) {
    parts.push(`${formatCount(x.operations.succeeded)} applied`);
    if (x.operations.failed > 0) parts.push(`${formatCount(x.operations.failed)} failed`);
    if (x.operations.deferred > 0) parts.push(`${formatCount(x.operations.deferred)} waiting`);
  }
  if (Array.isArray(s.stale) && s.stale.length > 0) parts.push(`${formatCount(s.stale.length)} stale`);
  return parts.length === 0 ? "nothing changed" : parts.join(", ");
}

export const runDuration = (run: RunSummary): number | null =>
  run.finished_at === null ? null : new Date(run.finished_at).getTime() - new Date(run.started_at).getTime();
