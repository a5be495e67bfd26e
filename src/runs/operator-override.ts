/**
 * The operator override (DESIGN.md §2 rule 3; seed 003's third lawful way back): an operator records
 * that the person asked in writing to receive email again. It is an opt-in by the operator that
 * carries the person's request as evidence — a reference to the message (a ticket, a letter), its
 * words where given, who recorded it and when the person asked — and lifts the opt-outs made
 * before the request. Without a reference it is refused: an operator's word alone lifts nothing.
 * The next sync carries it to every system through each one's lawful path (a consent record in the
 * CRM; a platform's confirmation email where only the person may resubscribe).
 */
import type { ConcordConfig } from "../config/concord-config";
import type { OptInEvent, Scope } from "../core/consent/consent-event";
import { decisionFor, foldChannelConsent } from "../core/consent/consent-state";
import { appendConsentEvents, eventsForContact } from "../ledger/consent-ledger";
import type { StoreSession } from "../store/ports";

export type OverrideRequest = {
  contact_id: string;
  /** All email, or one of the config's topics. */
  scope: Scope;
  /** Where the person's written request is: a ticket id, a letter's reference. Required. */
  request_reference: string;
  /** The request's words, or a summary of them. */
  request_text?: string;
  /** When the person asked (ISO-8601); now when absent. Only opt-outs before it are lifted. */
  requested_at: string;
  /** The operator recording it. */
  recorded_by: string;
};

export type OverrideResult =
  | {
      ok: true;
      event_id: string;
      /** `appended`, or `duplicate` when the same request was recorded already. */
      recorded: "appended" | "duplicate";
      /** The opt-outs in force before that this request lifts (their event ids). */
      lifted: string[];
      /** The scope's state now: sendable, and the rule that decides it. */
      now: { sendable: boolean; rule: string };
    }
  | {
      ok: false;
      code: "evidence_required" | "unknown_topic" | "contact_not_found" | "invalid_request";
      message: string;
    };

/** Records an operator override (see the module comment). */
export async function recordOperatorOverride(
  deps: { store: StoreSession; config: ConcordConfig; now: () => Date },
  request: OverrideRequest,
): Promise<OverrideResult> {
  const reference = request.request_reference.trim();
  if (reference === "")
    return {
      ok: false,
      code: "evidence_required",
      message:
        "An override needs the person's written request as evidence: expected request_reference naming where it is (a ticket, a letter, an email's id). An operator's word alone lifts no opt-out.",
    };
  const by = request.recorded_by.trim();
  if (by === "")
    return { ok: false, code: "invalid_request", message: "Expected recorded_by: who records the request." };
  if (request.scope.kind === "topic") {
    const topic = request.scope.topic;
    const keys = deps.config.topics.map((t) => t.key);
    if (!keys.includes(topic))
      return {
        ok: false,
        code: "unknown_topic",
        message: `No topic has the key "${topic}"; expected all email or one of: ${keys.join(", ") || "none configured"}.`,
      };
  }
  const now = deps.now();
  // When the person asked, never when it is recorded: a later opt-out of theirs stands.
  const askedAt = new Date(request.requested_at);
  if (Number.isNaN(askedAt.getTime()) || askedAt.getTime() > now.getTime())
    return {
      ok: false,
      code: "invalid_request",
      message: `requested_at must be a date-time no later than now (when the person asked), found ${JSON.stringify(request.requested_at)}.`,
    };
  const contact = await deps.store.contacts.get(request.contact_id);
  if (contact === undefined || contact.erased_at !== null)
    return {
      ok: false,
      code: "contact_not_found",
      message: `No contact ${request.contact_id}${contact?.erased_at ? " (it was erased)" : ""}.`,
    };

  const topics = deps.config.topics.map((t) => t.key);
  const before = (await eventsForContact(deps.store, contact.id)).map((s) => s.event);
  const asOf = now.toISOString();
  const openBefore = decisionFor(
    foldChannelConsent(before, "email", { as_of: asOf, topics }),
    request.scope,
  ).open_opt_outs;

  const draft: Omit<OptInEvent, "id"> = {
    kind: "opt_in",
    contact_id: contact.id,
    channel: "email",
    scope: request.scope,
    basis: "express",
    source: { system: "concord", connection: "operator" },
    mechanism: "written_request",
    actor: { kind: "operator", user: by.slice(0, 200) },
    occurred_at: askedAt.toISOString(),
    observed_at: asOf,
    evidence: {
      request_reference: reference.slice(0, 500),
      ...(request.request_text !== undefined && request.request_text.trim() !== ""
        ? { reason: request.request_text.trim().slice(0, 1000) }
        : {}),
      source_record_id: `override:${reference.slice(0, 180)}`,
    },
  };
  const [result] = await deps.store.transaction((tx) => appendConsentEvents(tx, [draft]));
  if (result === undefined || result.kind === "rejected")
    return {
      ok: false,
      code: "invalid_request",
      message: `The override could not be recorded${result?.kind === "rejected" ? `: ${result.message}` : ""}.`,
    };
  // The state after: the events before, and the one recorded (a duplicate is among them already).
  const recorded = (result.kind === "appended" ? result.event : result.existing).event;
  const after = result.kind === "appended" ? [...before, recorded] : before;
  const decision = decisionFor(foldChannelConsent(after, "email", { as_of: asOf, topics }), request.scope);
  const stillOpen = new Set(decision.open_opt_outs.map((o) => o.event_id));
  return {
    ok: true,
    event_id: recorded.id,
    recorded: result.kind === "appended" ? "appended" : "duplicate",
    lifted: openBefore.map((o) => o.event_id).filter((id) => !stillOpen.has(id)),
    now: { sendable: decision.sendable, rule: decision.rule },
  };
}
