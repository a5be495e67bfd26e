/**
 * The review queue: records Concord would not guess about (an address shared by several contacts,
 * conflicts). Each is resolved here: link the record to one candidate, keep it as a contact of its
 * own, or dismiss it. Linking or separating reads the record again so the consent it carries counts.
 */
import { useState, type ReactNode } from "react";
import { apiPost, query } from "../api";
import { isRecord, type PersonHit, type ReviewItem, type ReviewResolve } from "../api-types";
import { Badge, Empty, ErrorNote, Loading, Section, Time } from "../components/common";
import { humanize, plural } from "../format";
import { Link } from "../router";
import { useAction, useResource } from "../use-resource";

type Status = "open" | "resolved" | "dismissed";

/** Why a record went to review instead of being matched (core/identity/match-record.ts). */
const REASONS: Record<string, string> = {
  several_contacts_share_email: "Several contacts have this address.",
  contact_type_differs: "The address belongs to a contact of another type (a person and an organisation).",
  contact_already_linked_in_connection:
    "The contact with this address already has a record in this system: a duplicate there, or two people sharing an address.",
  email_is_another_contacts_secondary: "The address is another contact's secondary address.",
  signup_at_another_contacts_secondary:
    "A sign-up was confirmed from another contact's secondary address (perhaps an old mailbox someone else has now): its opt-in went to a contact of its own, not to them.",
  signup_at_shared_email:
    "A sign-up was confirmed from an address several contacts share: its opt-in went to a contact of its own, not to any of them.",
};

export function ReviewPage({ status }: { status: Status }): ReactNode {
  const items = useResource<{ items: ReviewItem[] }>(`/api/review${query({ status, limit: 200 })}`);
  return (
    <>
      <div className="page-head">
        <h1>Review queue</h1>
        <button type="button" onClick={items.reload}>
          Refresh
        </button>
      </div>
      <nav className="tabs" aria-label="Review items by status">
        {(["open", "resolved", "dismissed"] as const).map((s) => (
          <Link key={s} to={{ page: "review", status: s }} aria-current={s === status ? "page" : undefined}>
            {humanize(s)}
          </Link>
        ))}
      </nav>
      <ErrorNote error={items.error} />
      {items.data === undefined ? (
        items.error ? null : (
          <Loading what="review items" />
        )
      ) : items.data.items.length === 0 ? (
        <Empty>{status === "open" ? "Nothing waits for a decision." : `No ${status} item.`}</Empty>
      ) : (
        <>
          <p className="muted">
            {plural(items.data.items.length, `${status} item`)}
            {status === "open" ? ", oldest first. Concord never guesses who someone is: you decide." : "."}
          </p>
          {items.data.items.map((item) => (
            <ReviewCard key={item.id} item={item} onResolved={items.reload} />
          ))}
        </>
      )}
    </>
  );
}

function detailOf(item: ReviewItem): {
  reason: string | null;
  email: string | null;
  candidates: string[];
  recordKind: string | null;
  signup: boolean;
} {
  const d = isRecord(item.detail) ? item.detail : {};
  const str = (v: unknown): string | null => (typeof v === "string" ? v : null);
  const candidates = Array.isArray(d["candidate_contact_ids"])
    ? d["candidate_contact_ids"].filter((c): c is string => typeof c === "string")
    : [];
  return {
    reason: str(d["reason"]),
    email: str(d["email"]),
    candidates,
    recordKind: str(d["record_kind"]),
    signup: d["source"] === "signup",
  };
}

function ReviewCard({ item, onResolved }: { item: ReviewItem; onResolved: () => void }): ReactNode {
  const detail = detailOf(item);
  const [note, setNote] = useState("");
  const action = useAction<{ item: ReviewItem; reread: { ok: boolean; message: string | null } | null }>();
  // The candidates share the address: one search names them all.
  const hits = useResource<{ people: PersonHit[] }>(
    detail.email !== null ? `/api/people${query({ q: detail.email, limit: 50 })}` : null,
  );
  const names = new Map((hits.data?.people ?? []).map((p) => [p.contact_id, p]));
  const resolve = (body: ReviewResolve): void => {
    void action.run(() => apiPost(`/api/review/${encodeURIComponent(item.id)}/resolve`, body));
  };
  const done = action.result;
  const candidates = [
    ...new Set([...detail.candidates, ...(item.contact_id !== null ? [item.contact_id] : [])]),
  ];
  return (
    <Section
      title={
        <>
          <Badge tone={item.status === "open" ? "warn" : "neutral"}>{humanize(item.kind)}</Badge>{" "}
          {detail.email ?? item.external_id ?? item.id}
        </>
      }
      id={`item-${item.id}`}
    >
      <p>
        {detail.reason !== null ? (REASONS[detail.reason] ?? humanize(detail.reason)) : null}{" "}
        {detail.signup ? (
          <>Keep it apart, or dismiss the item.</>
        ) : (
          <>
            A {detail.recordKind ?? "record"} <code>{item.external_id ?? "—"}</code> in{" "}
            <strong>{item.connection_id ?? "—"}</strong>
          </>
        )}{" "}
        <span className="muted">
          (opened <Time iso={item.created_at} />)
        </span>
      </p>
      <table className="data compact">
        <caption className="sr-only">Candidate contacts</caption>
        <thead>
          <tr>
            <th scope="col">Candidate contact</th>
            <th scope="col">Email</th>
            <th scope="col">Type</th>
            {item.status === "open" ? <th scope="col">Decide</th> : null}
          </tr>
        </thead>
        <tbody>
          {candidates.map((id) => {
            const hit = names.get(id);
            return (
              <tr key={id}>
                <td>
                  <Link to={{ page: "person", id }}>{hit?.name ?? id}</Link>
                  {id === item.contact_id ? (
                    <span className="muted small">
                      {" "}
                      (made for this {detail.signup ? "sign-up" : "record"})
                    </span>
                  ) : null}
                </td>
                <td>{hit?.email ?? "—"}</td>
                <td>{hit === undefined ? "—" : hit.type === "organization" ? "organisation" : "person"}</td>
                {item.status === "open" ? (
                  <td>
                    {detail.signup ? (
                      "—"
                    ) : (
                      <button
                        type="button"
                        onClick={() => {
                          resolve({ action: "link", contact_id: id });
                        }}
                        disabled={action.pending || done !== undefined}
                      >
                        Link to this contact
                      </button>
                    )}
                  </td>
                ) : null}
              </tr>
            );
          })}
        </tbody>
      </table>
      {item.status === "open" ? (
        <div className="toolbar">
          <button
            type="button"
            onClick={() => {
              resolve({ action: "separate" });
            }}
            disabled={action.pending || done !== undefined}
          >
            Keep as a contact of its own
          </button>
          <label className="inline">
            Note{" "}
            <input
              type="text"
              value={note}
              maxLength={1000}
              placeholder="why (optional)"
              onChange={(e) => {
                setNote(e.target.value);
              }}
            />
          </label>
          <button
            type="button"
            onClick={() => {
              resolve(note.trim() === "" ? { action: "dismiss" } : { action: "dismiss", note: note.trim() });
            }}
            disabled={action.pending || done !== undefined}
          >
            Dismiss
          </button>
        </div>
      ) : (
        <p className="small muted">
          {humanize(item.status)} <Time iso={item.resolved_at} />
          {isRecord(item.resolution) ? ` — ${describeResolution(item.resolution)}` : ""}
        </p>
      )}
      <ErrorNote error={action.error} title="Not resolved" />
      {done !== undefined ? (
        <div
          className={`alert ${done.reread === null || done.reread.ok ? "alert-ok" : "alert-warn"}`}
          role="status"
        >
          {humanize(done.item.status)}.
          {done.reread !== null
            ? done.reread.ok
              ? " The record was read again; its consent now counts."
              : ` ${done.reread.message ?? ""}`
            : ""}{" "}
          <button type="button" className="link" onClick={onResolved}>
            Refresh the queue
          </button>
        </div>
      ) : null}
    </Section>
  );
}

function describeResolution(r: Record<string, unknown>): string {
  const action = typeof r["action"] === "string" ? r["action"] : "resolved";
  if (action === "link") return `linked to ${String(r["contact_id"])}`;
  if (action === "separate") return `kept as contact ${String(r["contact_id"])}`;
  if (action === "dismiss") return typeof r["note"] === "string" ? `dismissed: ${r["note"]}` : "dismissed";
  return action;
}
