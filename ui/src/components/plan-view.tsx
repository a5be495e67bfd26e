/**
 * A stored plan as an operator reads it before and after applying: what each platform would gain,
 * the operations by connection, kind and reason, every skipped record grouped by why, who waits for
 * their own confirmation, and opt-outs found on records matched only by address.
 */
import type { ReactNode } from "react";
import type { PlanSummary, SkipReason } from "../api-types";
import { formatCount, humanize, plural } from "../format";
import { Link } from "../router";
import { Badge, Empty, Time } from "./common";

export type ContactNames = Record<string, { name: string | null; email: string | null }>;

/** Why an operation is in a plan (docs/sync.md). */
export const OPERATION_REASONS: Record<string, string> = {
  opt_out_to_platform: "The rules say not sendable; the platform still shows the person subscribed",
  opt_out_to_crm: "An opt-out seen outside the CRM that the CRM does not show yet",
  opt_in_to_crm: "The person's own opt-in lifted an opt-out the CRM still shows",
  resubscribe_requested: "An admin asked to resubscribe: the platform's confirmation email",
  new_contacts: "Eligible CRM contacts the platform does not hold yet",
  create_in_crm: "A platform contact with no CRM record",
  list_membership_added: "In the source list, not yet in the mapped list",
  list_membership_removed: "Left the source list; the delete policy removes the membership",
  list_membership_stopped: "The source list's own Do Not Contact: taken out of the mapped list",
  email_changed_in_crm: "The CRM's primary email changed: the platform follows",
  email_changed_on_platform: "The platform's email changed: the CRM follows",
  profile_fields_changed: "Profile fields changed; each field follows its owner",
};

/** Why a record is not sent to a platform (docs/sync.md). */
export const SKIP_REASONS: Record<string, string> = {
  opted_out: "Opted out of this platform's scope",
  pending_resubscribe: "Waiting for the person to confirm a resubscribe",
  no_primary_email: "No primary email address",
  invalid_email: "The address cannot receive email",
  deceased: "Deceased",
  inactive: "Inactive in the CRM",
  do_not_contact: "Flagged do not contact",
  erased: "Erased",
  undeliverable: "Undeliverable (hard bounce or cleaned)",
  no_consent_basis: "No consent basis on record (the pair requires one)",
  consent_expired: "Implied consent has lapsed",
  not_in_synced_audience: "Not in any synced list",
  rejected_by_platform: "Refused by the platform",
  deleted_on_platform: "Deleted on the platform; not re-created",
  inactive_on_platform: "Archived on the platform; only opt-outs are written there",
  deleted_in_crm: "Deleted in the CRM",
};

export function describeSkip(reason: SkipReason): string {
  switch (reason.code) {
    case "opted_out":
      return `opted out (${humanize(reason.rule)}${reason.scope.kind === "topic" ? `, topic ${reason.scope.topic}` : ""})`;
    case "invalid_email":
      return `invalid email (${humanize(reason.email_reason)})`;
    case "undeliverable":
      return `undeliverable (${humanize(reason.status)})`;
    case "rejected_by_platform":
      return `refused by the platform: ${reason.platform_code}${reason.message !== undefined ? ` — ${reason.message}` : ""}`;
    case "pending_resubscribe":
      return `waiting for their confirmation since ${reason.requested_at}`;
    default:
      return humanize(reason.code);
  }
}

const MAX_LISTED = 200;

export function PersonName({ id, names }: { id: string; names: ContactNames | undefined }): ReactNode {
  const known = names?.[id];
  const label = known?.name ?? known?.email ?? id;
  return (
    <Link to={{ page: "person", id }} title={id}>
      {label}
      {known?.name !== null && known?.email !== null && known?.email !== undefined ? (
        <span className="muted"> &lt;{known.email}&gt;</span>
      ) : null}
    </Link>
  );
}

export function PlanView({ plan, names }: { plan: PlanSummary; names?: ContactNames }): ReactNode {
  const gains = Object.entries(plan.gains);
  const byKind = Object.entries(plan.counts.operations).flatMap(([connection, kinds]) =>
    Object.entries(kinds).map(([kind, c]) => ({
      connection,
      kind,
      operations: c.operations,
      contacts: c.contacts,
    })),
  );
  const byReason = new Map<string, PlanSummary["operations"]>();
  for (const op of plan.operations)
    byReason.set(op.reason.code, [...(byReason.get(op.reason.code) ?? []), op]);
  const skippedGroups = Object.entries(plan.counts.skipped).flatMap(([connection, reasons]) =>
    Object.entries(reasons).map(([code, n]) => ({ connection, code, n })),
  );
  skippedGroups.sort((a, b) => a.connection.localeCompare(b.connection) || b.n - a.n);
  const unlinked = plan.unlinked_opt_outs;

  return (
    <div className="plan">
      <div className="gains" role="group" aria-label="What the plan adds up to">
        {gains.length === 0 ? (
          <span className="muted">No platform gains contacts.</span>
        ) : (
          gains.map(([connection, n]) => (
            <div className="gain" key={connection}>
              <span className="gain-n">+{formatCount(n)}</span>
              <span className="gain-label">
                contacts for <strong>{connection}</strong>
              </span>
            </div>
          ))
        )}
        <div className="gain">
          <span className="gain-n">{formatCount(plan.operations.length)}</span>
          <span className="gain-label">operations</span>
        </div>
        <div className="gain">
          <span className="gain-n">{formatCount(plan.counts.skipped_records)}</span>
          <span className="gain-label">skipped records</span>
        </div>
        <div className="gain">
          <span className="gain-n">{formatCount(plan.waiting.length)}</span>
          <span className="gain-label">waiting for the person</span>
        </div>
      </div>

      <h3>Changes planned</h3>
      {byKind.length === 0 ? (
        <Empty>Nothing to change: every system already agrees.</Empty>
      ) : (
        <table className="data">
          <caption className="sr-only">Operations by connection and kind</caption>
          <thead>
            <tr>
              <th scope="col">Connection</th>
              <th scope="col">Operation</th>
              <th scope="col" className="num">
                Operations
              </th>
              <th scope="col" className="num">
                Contacts
              </th>
            </tr>
          </thead>
          <tbody>
            {byKind.map((r) => (
              <tr key={`${r.connection}-${r.kind}`}>
                <td>{r.connection}</td>
                <td>
                  <code>{r.kind}</code>
                </td>
                <td className="num">{formatCount(r.operations)}</td>
                <td className="num">{formatCount(r.contacts)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}

      {byReason.size > 0 ? (
        <>
          <h3>Why</h3>
          <div className="groups">
            {[...byReason.entries()].map(([code, ops]) => (
              <details key={code} className="group">
                <summary>
                  <code>{code}</code> — {OPERATION_REASONS[code] ?? humanize(code)}
                  <span className="muted">
                    {" "}
                    · {plural(ops.length, "operation")},{" "}
                    {plural(
                      ops.reduce((s, o) => s + o.contacts, 0),
                      "contact",
                    )}
                  </span>
                </summary>
                <table className="data">
                  <thead>
                    <tr>
                      <th scope="col">Connection</th>
                      <th scope="col">Operation</th>
                      <th scope="col">Priority</th>
                      <th scope="col" className="num">
                        Contacts
                      </th>
                      <th scope="col">Reason</th>
                    </tr>
                  </thead>
                  <tbody>
                    {ops.slice(0, MAX_LISTED).map((o) => (
                      <tr key={o.op_id}>
                        <td>{o.connection_id}</td>
                        <td>
                          <code title={o.op_id}>{o.kind}</code>
                        </td>
                        <td>
                          <Badge tone={o.priority === "consent" ? "info" : "neutral"}>{o.priority}</Badge>
                        </td>
                        <td className="num">{formatCount(o.contacts)}</td>
                        <td>{o.reason.message}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
                {ops.length > MAX_LISTED ? (
                  <p className="muted">…and {formatCount(ops.length - MAX_LISTED)} more.</p>
                ) : null}
              </details>
            ))}
          </div>
        </>
      ) : null}

      <h3>Skipped records, by reason</h3>
      {skippedGroups.length === 0 ? (
        <Empty>No record is skipped.</Empty>
      ) : (
        <div className="groups">
          {skippedGroups.map((g) => {
            const records = plan.skipped.filter(
              (s) => s.connection_id === g.connection && s.reasons.some((r) => r.code === g.code),
            );
            return (
              <details key={`${g.connection}-${g.code}`} className="group">
                <summary>
                  <strong>{g.connection}</strong> · <code>{g.code}</code> —{" "}
                  {SKIP_REASONS[g.code] ?? humanize(g.code)}
                  <span className="muted"> · {plural(g.n, "record")}</span>
                </summary>
                <ul className="records">
                  {records.slice(0, MAX_LISTED).map((s) => (
                    <li key={s.contact_id}>
                      <PersonName id={s.contact_id} names={names} />{" "}
                      <span className="muted">— {s.reasons.map(describeSkip).join("; ")}</span>
                    </li>
                  ))}
                </ul>
                {g.n > Math.min(records.length, MAX_LISTED) ? (
                  <p className="muted">
                    …and {formatCount(g.n - Math.min(records.length, MAX_LISTED))} more.
                  </p>
                ) : null}
              </details>
            );
          })}
        </div>
      )}

      {plan.waiting.length > 0 ? (
        <>
          <h3>Waiting for the person</h3>
          <p className="muted">
            An admin asked to resubscribe them; only their own confirmation makes them sendable again.
          </p>
          <table className="data">
            <thead>
              <tr>
                <th scope="col">Person</th>
                <th scope="col">Connection</th>
                <th scope="col">Asked</th>
                <th scope="col">Confirmation email</th>
              </tr>
            </thead>
            <tbody>
              {plan.waiting.slice(0, MAX_LISTED).map((w) => (
                <tr key={`${w.contact_id}-${w.connection_id}`}>
                  <td>
                    <PersonName id={w.contact_id} names={names} />
                  </td>
                  <td>{w.connection_id}</td>
                  <td>
                    <Time iso={w.requested_at} />
                  </td>
                  <td>{w.requested_now ? "sent by this plan" : "already sent"}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      ) : null}

      {unlinked.length > 0 ? (
        <>
          <h3>Opt-outs on records matched only by address</h3>
          <table className="data">
            <thead>
              <tr>
                <th scope="col">Person</th>
                <th scope="col">Seen in</th>
                <th scope="col">Scope</th>
                <th scope="col">Applied to the CRM</th>
              </tr>
            </thead>
            <tbody>
              {unlinked.slice(0, MAX_LISTED).map((u) => (
                <tr key={`${u.contact_id}-${u.event_id}`}>
                  <td>
                    <PersonName id={u.contact_id} names={names} />
                  </td>
                  <td>{u.connection_id}</td>
                  <td>{u.scope.kind === "global" ? "all email" : `topic ${u.scope.topic}`}</td>
                  <td>{u.applied ? "yes" : "no (report only)"}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      ) : null}
    </div>
  );
}
