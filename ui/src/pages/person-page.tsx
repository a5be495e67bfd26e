/**
 * One person: whether each connection may email them and the rule and event that decide it, their
 * consent timeline across every system (the `explain` view), their links with what each system
 * shows, their list memberships, open review items and recent operations.
 */
import { useState, type ReactNode } from "react";
import {
  asExplanation,
  type Explanation,
  type Person,
  type SystemShows,
  type TimelineEntry,
} from "../api-types";
import {
  Badge,
  Empty,
  ErrorNote,
  Facts,
  Loading,
  Section,
  SendableBadge,
  Time,
  type Tone,
} from "../components/common";
import { humanize } from "../format";
import { apiPost } from "../api";
import type { ErasureReport } from "../api-types";
import { plural } from "../format";
import { Link } from "../router";
import { useAction, useResource } from "../use-resource";

export function PersonPage({ id }: { id: string }): ReactNode {
  const person = useResource<Person>(`/api/people/${encodeURIComponent(id)}`);
  const p = person.data;
  return (
    <>
      <div className="page-head">
        <h1>{p === undefined ? "Person" : (p.contact.name ?? p.contact.primary_email ?? p.contact.id)}</h1>
        <span className="toolbar">
          <button type="button" onClick={person.reload}>
            Refresh
          </button>
          <Link to={{ page: "people", q: "" }}>← Search</Link>
        </span>
      </div>
      <ErrorNote error={person.error} />
      {p === undefined ? (
        person.error ? null : (
          <Loading what="the person" />
        )
      ) : (
        <PersonBody person={p} onChanged={person.reload} />
      )}
    </>
  );
}

function PersonBody({ person: p, onChanged }: { person: Person; onChanged: () => void }): ReactNode {
  const x = asExplanation(p.explanation);
  // The address as first shown: the erasure's result stays on the page once the reload shows the contact erased.
  const [erasable] = useState(p.contact.erased ? null : p.contact.primary_email);
  return (
    <>
      <Section title="Contact" id="contact">
        <Facts
          items={[
            ["Email", p.contact.primary_email ?? <span className="muted">none</span>],
            ["Type", p.contact.type === "organization" ? "organisation" : "person"],
            ["Contact id", <code key="id">{p.contact.id}</code>],
            ...(x !== null && x.contact.other_emails.length > 0
              ? ([["Other addresses", x.contact.other_emails.join(", ")]] as [ReactNode, ReactNode][])
              : []),
            ...(x !== null && x.contact.flags.length > 0
              ? ([["Flags", x.contact.flags.map(humanize).join(", ")]] as [ReactNode, ReactNode][])
              : []),
            ...(p.contact.erased
              ? ([
                  [
                    "Erased",
                    <Badge key="e" tone="bad">
                      erased
                    </Badge>,
                  ],
                ] as [ReactNode, ReactNode][])
              : []),
          ]}
        />
        {p.note !== null ? <p className="muted">{p.note}</p> : null}
        <p className="toolbar">
          Proof for an auditor:{" "}
          <a
            href={`/api/people/${encodeURIComponent(p.contact.id)}/proof.html`}
            target="_blank"
            rel="noreferrer"
          >
            printable page
          </a>{" "}
          ·{" "}
          <a href={`/api/people/${encodeURIComponent(p.contact.id)}/proof`} download>
            signed bundle (JSON)
          </a>
        </p>
      </Section>
      {x !== null ? <CurrentState explanation={x} /> : null}
      {x !== null ? <Timeline entries={x.timeline} /> : null}
      <Links person={p} explanation={x} />
      <Lists person={p} />
      {x !== null && x.review_items.length > 0 ? (
        <Section title="Open review items" id="review-items">
          <ul className="records">
            {x.review_items.map((r) => (
              <li key={r.id}>
                <Link to={{ page: "review", status: "open" }}>{humanize(r.kind)}</Link> — {r.summary}{" "}
                <span className="muted">
                  (<Time iso={r.created_at} />)
                </span>
              </li>
            ))}
          </ul>
        </Section>
      ) : null}
      {x !== null ? <RecentOperations explanation={x} /> : null}
      {x !== null && !p.contact.erased ? (
        <RecordOverride contactId={p.contact.id} explanation={x} onRecorded={onChanged} />
      ) : null}
      {erasable !== null ? <ErasePerson email={erasable} onErased={onChanged} /> : null}
    </>
  );
}

function CurrentState({ explanation: x }: { explanation: Explanation }): ReactNode {
  return (
    <Section title="Can each system email them?" id="state">
      {x.pairs.length === 0 ? <Empty>The contact is in no configured pair.</Empty> : null}
      {x.pairs.map((pair) => (
        <table className="data" key={pair.pair_id}>
          <caption>
            Pair <strong>{pair.pair_id}</strong>
            {pair.require_consent_basis ? " (requires a consent basis)" : ""}
          </caption>
          <thead>
            <tr>
              <th scope="col">Connection</th>
              <th scope="col">Scope</th>
              <th scope="col">State</th>
              <th scope="col">Rule</th>
              <th scope="col">Decided by</th>
            </tr>
          </thead>
          <tbody>
            {pair.connections.map((c) => (
              <tr key={`${c.connection_id}-${c.scope_label}`}>
                <td>
                  {c.connection_id}
                  <div className="muted small">{c.role === "crm" ? "CRM" : "platform"}</div>
                </td>
                <td>
                  {c.scope_label}
                  {c.construct !== null ? <div className="muted small">{c.construct}</div> : null}
                </td>
                <td>
                  <SendableBadge sendable={c.sendable} />
                  {c.pending_resubscribe !== null ? (
                    <div className="small">
                      <Badge tone="warn">waiting for their confirmation</Badge>
                    </div>
                  ) : null}
                  {c.left_list_since !== null ? (
                    <div className="small">
                      <Badge tone="warn">out of the topic's list</Badge> <Time iso={c.left_list_since} />
                      <div className="muted">put back only for their own opt-in to the topic</div>
                    </div>
                  ) : null}
                </td>
                <td>
                  <code>{c.rule}</code>
                  <div className="small">{c.rule_explanation}</div>
                </td>
                <td className="small">{c.decided_by?.description ?? <span className="muted">—</span>}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ))}
      <p className="small">
        Deliverability: <strong>{humanize(x.deliverability.status)}</strong>
        {x.deliverability.since !== null ? (
          <>
            {" "}
            since <Time iso={x.deliverability.since} />
          </>
        ) : null}{" "}
        <span className="muted">(tracked beside consent; it never decides consent)</span>
      </p>
    </Section>
  );
}

const KIND_TONE: Record<string, Tone> = { opt_out: "bad", opt_in: "ok", deliverability: "warn" };

function Timeline({ entries }: { entries: TimelineEntry[] }): ReactNode {
  // The fold's order is oldest first; operators look for the latest act first.
  const newestFirst = [...entries].reverse();
  return (
    <Section title="Consent timeline" id="timeline">
      {entries.length === 0 ? (
        <Empty>No consent event is recorded for this person.</Empty>
      ) : (
        <ol className="timeline" aria-label="Consent events, newest first">
          {newestFirst.map((e) => (
            <li
              key={e.event_id}
              className={`timeline-item timeline-${e.kind}${e.counted ? "" : " not-counted"}`}
            >
              <div className="timeline-when">
                <Time iso={e.occurred_at} />
              </div>
              <div className="timeline-body">
                <div className="timeline-head">
                  <Badge tone={KIND_TONE[e.kind] ?? "neutral"}>{humanize(e.kind)}</Badge>{" "}
                  <strong>{e.scope_label ?? humanize(e.deliverability_status ?? "deliverability")}</strong> ·{" "}
                  {e.mechanism_label} · {e.source.system_label}{" "}
                  <span className="muted">({e.source.connection})</span>
                </div>
                <div className="small">
                  {e.actor_label.charAt(0).toUpperCase() + e.actor_label.slice(1)}
                  {e.initiated_by !== null ? ` (counts as the ${e.initiated_by}'s act)` : ""}
                  {e.basis !== null ? ` · ${e.basis} consent` : ""}
                  {e.expires_at !== null ? (
                    <>
                      {" "}
                      · expires <Time iso={e.expires_at} />
                    </>
                  ) : null}
                </div>
                <div className="small muted">
                  Evidence: {e.evidence_summary}
                  {e.evidence_erased_at !== null ? " (erased)" : ""} · observed <Time iso={e.observed_at} /> ·
                  ledger #{e.ledger.seq} <code title={e.ledger.hash}>{e.ledger.hash_prefix}</code> ·{" "}
                  <code>{e.event_id}</code>
                </div>
              </div>
            </li>
          ))}
        </ol>
      )}
    </Section>
  );
}

function describeShows(shows: SystemShows): ReactNode {
  if (shows.kind === "unparsed") return <span className="muted">unreadable: {shows.problem}</span>;
  const flags = [
    shows.deleted ? "deleted" : null,
    shows.inactive ? "inactive" : null,
    shows.deceased ? "deceased" : null,
  ].filter((f): f is string => f !== null);
  return (
    <>
      {flags.length > 0 ? <div>{flags.join(", ")}</div> : null}
      {shows.consent.map((f) => (
        <div key={`${f.source}:${f.scope_label}`} className="small">
          {f.label}
          {f.role === "record" ? <span className="muted"> (on record)</span> : null}
        </div>
      ))}
    </>
  );
}

function Links({
  person: p,
  explanation: x,
}: {
  person: Person;
  explanation: Explanation | null;
}): ReactNode {
  const views = new Map((x?.links ?? []).map((l) => [`${l.connection_id}:${l.external_id}`, l]));
  return (
    <Section title="Linked records" id="links">
      {p.links.length === 0 ? (
        <Empty>No record in any system is linked to this contact.</Empty>
      ) : (
        <table className="data">
          <thead>
            <tr>
              <th scope="col">Connection</th>
              <th scope="col">Record id</th>
              <th scope="col">Linked</th>
              <th scope="col">What the system shows (as last read)</th>
            </tr>
          </thead>
          <tbody>
            {p.links.map((l) => {
              const view = views.get(`${l.connection_id}:${l.external_id}`);
              return (
                <tr key={`${l.connection_id}:${l.external_id}`}>
                  <td>
                    {l.connection_id}
                    {view?.system_label !== null && view?.system_label !== undefined ? (
                      <div className="muted small">{view.system_label}</div>
                    ) : null}
                  </td>
                  <td>
                    <code>{l.external_id}</code>
                  </td>
                  <td>
                    {humanize(l.origin)}
                    <div className="muted small">
                      <Time iso={l.linked_at} />
                    </div>
                  </td>
                  <td>
                    {view?.snapshot !== null && view?.snapshot !== undefined ? (
                      <>
                        {describeShows(view.snapshot.shows)}
                        <div className="muted small">
                          read <Time iso={view.snapshot.observed_at} />
                        </div>
                      </>
                    ) : (
                      <span className="muted">not read yet</span>
                    )}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </Section>
  );
}

function Lists({ person: p }: { person: Person }): ReactNode {
  return (
    <Section title="List memberships" id="lists">
      {p.list_memberships.length === 0 ? (
        <Empty>In no list, as last read.</Empty>
      ) : (
        <table className="data">
          <thead>
            <tr>
              <th scope="col">Connection</th>
              <th scope="col">List</th>
              <th scope="col">Record id</th>
            </tr>
          </thead>
          <tbody>
            {p.list_memberships.map((m) => (
              <tr key={`${m.connection_id}:${m.external_id}:${m.list_id}`}>
                <td>{m.connection_id}</td>
                <td>
                  {m.list_name ?? <span className="muted">(name not read)</span>}{" "}
                  <span className="muted small">
                    <code>{m.list_id}</code>
                  </span>
                  {m.do_not_contact ? (
                    <>
                      {" "}
                      <Badge tone="warn" title="The list's own flag: not emailed through this list">
                        Do Not Contact on this list
                      </Badge>
                    </>
                  ) : null}
                </td>
                <td>
                  <code>{m.external_id}</code>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </Section>
  );
}

function RecentOperations({ explanation: x }: { explanation: Explanation }): ReactNode {
  if (x.recent_operations.length === 0) return null;
  return (
    <Section title="Recent operations" id="operations">
      <table className="data">
        <thead>
          <tr>
            <th scope="col">When</th>
            <th scope="col">Connection</th>
            <th scope="col">Operation</th>
            <th scope="col">Status</th>
            <th scope="col">Why</th>
          </tr>
        </thead>
        <tbody>
          {x.recent_operations.map((o) => (
            <tr key={o.id}>
              <td>
                <Time iso={o.updated_at} />
              </td>
              <td>{o.target_connection}</td>
              <td>
                <code>{o.kind}</code>
                {o.contact_count > 1 ? <span className="muted small"> (bulk, {o.contact_count})</span> : null}
              </td>
              <td>
                <Badge tone={o.status === "succeeded" ? "ok" : o.status === "failed" ? "bad" : "neutral"}>
                  {o.status}
                </Badge>
                {o.last_outcome?.message !== null && o.last_outcome?.message !== undefined ? (
                  <div className="small muted">{o.last_outcome.message}</div>
                ) : null}
              </td>
              <td className="small">
                {o.reason ?? (o.reason_code !== null ? humanize(o.reason_code) : "—")}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </Section>
  );
}

/**
 * Erasure on the person's own request: who records it and the request's reference, a preview of
 * what each system would delete, then the erasure itself and what each system did.
 */
function ErasePerson({ email, onErased }: { email: string; onErased: () => void }): ReactNode {
  const action = useAction<{ report: ErasureReport }>();
  const [by, setBy] = useState("");
  const [reference, setReference] = useState("");
  const [previewed, setPreviewed] = useState<ErasureReport | undefined>(undefined);
  // Several contacts at the address (a shared mailbox, a person and their organisation): each is
  // erased only once the operator says every one of them is the person who asked.
  const holders = previewed?.contact_ids.length ?? 0;
  const [allHolders, setAllHolders] = useState(false);
  const send = (dry: boolean): void => {
    void action
      .run(() =>
        apiPost<{ report: ErasureReport }>("/api/erasures", {
          email,
          requested_by: by.trim(),
          ...(reference.trim() !== "" ? { reference: reference.trim() } : {}),
          dry_run: dry,
          ...(!dry && holders > 1 ? { all_holders: allHolders } : {}),
        }),
      )
      .then((r) => {
        if (r === undefined) return;
        if (dry) setPreviewed(r.report);
        else if (r.report.status === "completed") onErased();
      });
  };
  const report = action.result?.report;
  return (
    <Section title="Erase this person" id="erase">
      <details>
        <summary>The person asked to be forgotten…</summary>
        <p className="muted">
          Deletes them in every linked system as far as it allows, erases Concord&apos;s copy (the ledger
          keeps its proof without their data) and keeps their addresses only as a keyed hash, so no system
          brings them back. It cannot be undone.
        </p>
        <form
          className="inline-form"
          onSubmit={(e) => {
            e.preventDefault();
            send(previewed === undefined);
          }}
        >
          <TextField label="Recorded by" value={by} onChange={setBy} maxLength={200} required />
          <TextField
            label={"The person's request (reference)"}
            value={reference}
            onChange={setReference}
            maxLength={500}
          />
          {holders > 1 ? (
            <label className="inline">
              <input
                type="checkbox"
                checked={allHolders}
                required
                onChange={(e) => {
                  setAllHolders(e.target.checked);
                }}
              />{" "}
              {`All ${holders} contacts at this address are the person who asked: erase every one`}
            </label>
          ) : null}
          <button
            type="submit"
            className={previewed === undefined ? undefined : "danger"}
            disabled={action.pending || report?.status === "completed"}
          >
            {action.pending
              ? "Working…"
              : previewed === undefined
                ? "Preview the erasure"
                : "Erase everywhere"}
          </button>
        </form>
        <ErrorNote error={action.error} title="The erasure was not done" />
        {report !== undefined ? <ErasureResult report={report} /> : null}
      </details>
    </Section>
  );
}

function ErasureResult({ report }: { report: ErasureReport }): ReactNode {
  const tone: Tone = report.status === "completed" ? "ok" : report.status === "planned" ? "neutral" : "warn";
  return (
    <div className="alert alert-info" role="status" aria-label="Erasure">
      <p>
        <Badge tone={tone}>{report.status}</Badge>{" "}
        {report.dry_run
          ? `Preview: ${plural(report.contact_ids.length, "contact")} with this address${report.contact_ids.length > 1 ? ` (${report.contact_ids.join(", ")}: each is erased, the other people sharing it too)` : ""}, ${plural(report.systems.length, "record")} in linked systems; nothing was changed.`
          : report.status === "completed"
            ? `Erased. ${plural(report.addresses_suppressed, "address", "addresses")} kept only as a keyed hash: never imported again.`
            : "Not finished: a system could not delete its record yet. Concord keeps its copy; erase again to retry."}
      </p>
      <ul className="records">
        {report.systems.map((s) => (
          <li key={`${s.connection_id}-${s.external_id}`}>
            <strong>{s.connection_id}</strong> record <code>{s.external_id}</code>{" "}
            <Badge tone={s.status === "failed" ? "bad" : "neutral"}>{s.status}</Badge> {s.message}
          </li>
        ))}
      </ul>
    </div>
  );
}

type OverrideAnswer = {
  event_id: string;
  recorded: "appended" | "duplicate";
  lifted: string[];
  now: { sendable: boolean; rule: string };
};

/**
 * The operator override (seed 003's third way back): the person asked in writing to receive email
 * again; the request's reference is required, and it lifts only opt-outs made before the request.
 */
function RecordOverride({
  contactId,
  explanation: x,
  onRecorded,
}: {
  contactId: string;
  explanation: Explanation;
  onRecorded: () => void;
}): ReactNode {
  const action = useAction<OverrideAnswer>();
  const topics = [
    ...new Set(
      x.pairs.flatMap((pair) =>
        pair.connections.flatMap((c) => (c.scope.kind === "topic" ? [c.scope.topic] : [])),
      ),
    ),
  ].sort();
  const [topic, setTopic] = useState("");
  const [reference, setReference] = useState("");
  const [text, setText] = useState("");
  const [by, setBy] = useState("");
  // When the person asked (local time, as the operator reads it on the letter): never "now" by
  // default, since a request lifts only the opt-outs made before it.
  const [askedAt, setAskedAt] = useState("");
  const send = (): void => {
    void action
      .run(() =>
        apiPost<OverrideAnswer>(`/api/people/${encodeURIComponent(contactId)}/overrides`, {
          ...(topic !== "" ? { topic } : {}),
          request_reference: reference.trim(),
          ...(text.trim() !== "" ? { request_text: text.trim() } : {}),
          requested_at: new Date(askedAt).toISOString(),
          recorded_by: by.trim(),
        }),
      )
      .then((r) => {
        if (r !== undefined) onRecorded();
      });
  };
  const answer = action.result;
  return (
    <Section title="The person asked in writing to receive email again" id="override">
      <details>
        <summary>Record their written request…</summary>
        <p className="muted">
          An operator override lifts the opt-outs made before the request (when they asked, not when it is
          recorded: an opt-out of theirs since stands), with the request as evidence. Each system follows by
          its lawful path: the CRM records the opt-in; a platform where only the person may resubscribe sends
          its confirmation email.
        </p>
        <form
          className="inline-form"
          onSubmit={(e) => {
            e.preventDefault();
            send();
          }}
        >
          <label>
            Receive
            <select
              value={topic}
              onChange={(e) => {
                setTopic(e.target.value);
              }}
            >
              <option value="">all email</option>
              {topics.map((t) => (
                <option key={t} value={t}>
                  topic {t}
                </option>
              ))}
            </select>
          </label>
          <TextField
            label="Where the request is (reference)"
            value={reference}
            onChange={setReference}
            maxLength={500}
            required
          />
          <TextField label="Its words" value={text} onChange={setText} maxLength={1000} />
          <label>
            When they asked
            <input
              type="datetime-local"
              step={1}
              value={askedAt}
              onChange={(e) => {
                setAskedAt(e.target.value);
              }}
              required
            />
          </label>
          <TextField label="Recorded by" value={by} onChange={setBy} maxLength={200} required />
          <button type="submit" className="primary" disabled={action.pending}>
            {action.pending ? "Recording…" : "Record the request"}
          </button>
        </form>
        <ErrorNote error={action.error} title="The request was not recorded" />
        {answer !== undefined ? (
          <div className="alert alert-info" role="status" aria-label="Override">
            <p>
              {answer.recorded === "duplicate" ? "Already recorded" : "Recorded"} ({answer.event_id}):{" "}
              {plural(answer.lifted.length, "opt-out")} lifted;{" "}
              {topic === "" ? "all email" : `topic ${topic}`} is{" "}
              {answer.now.sendable ? "sendable" : "not sendable"} now (<code>{answer.now.rule}</code>). The
              next sync carries it to each system.
            </p>
          </div>
        ) : null}
      </details>
    </Section>
  );
}

/** A labelled one-line text input of the person page's forms. */
function TextField(props: {
  label: string;
  value: string;
  onChange: (value: string) => void;
  maxLength: number;
  required?: boolean;
}): ReactNode {
  return (
    <label>
      {props.label}
      <input
        value={props.value}
        onChange={(e) => {
          props.onChange(e.target.value);
        }}
        maxLength={props.maxLength}
        required={props.required === true}
      />
    </label>
  );
}
