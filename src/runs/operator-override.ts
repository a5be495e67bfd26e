/**
 * The operator override (DESIGN.md §2 rule 3; seed 003's third lawful way back): an operator records
 * that the person asked in writing to receive email again. It is an opt-in by the operator that
 * carries the person's request as evidence — a reference to the message (a ticket, a letter), its
 * words where given, who recorded it and when the person asked — and lifts the opt-outs made
 * before the request. Without a reference it is refused: an operator's word alone lifts nothing.
 * The next sync carries it to every system through each one's lawful path (a consent record in the
 * CRM; a platform's confirmation email where only the person may resubscribe).
 */
import { createHash } from "node:crypto";
import { z } from "zod";
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

/** The longest each field may be: the ledger keeps the evidence whole, never cut. */
const LIMITS = { request_reference: 500, request_text: 1000, recorded_by: 200 } as const;

/** When the person asked: a real date-time with its offset, never a guess at a local or loose date. */
const RequestedAt = z.iso.datetime({ offset: true });

/**
 * The source record id that makes the same request recorded twice one event: the reference itself,
 * or for a long one its start and a digest of the whole, so that two references alike for 180
 * characters stay two requests.
 */
const overrideRecordId = (reference: string): string =>
  reference.length <= 180
    ? `override:${reference}`
    : `override:${reference.slice(0, 130)}#${createHash("sha256").update(reference).digest("base64url").slice(0, 27)}`;

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
  const text = request.request_text?.trim();
  for (const [field, value] of [
    ["request_reference", reference],
    ["request_text", text],
    ["recorded_by", by],
  ] as const)
    if (value !== undefined && value.length > LIMITS[field])
      return {
        ok: false,
        code: "invalid_request",
        message: `${field}: at most ${LIMITS[field]} characters, found ${value.length}; the evidence is kept whole, so shorten it (a reference to where the rest is).`,
      };
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
  // A loose date would be read in the machine's zone, or month and day swapped (05/03/2026), or a
  // 30 February rolled into March: a request dated after the person's later opt-out would lift it.
  const askedAt = new Date(request.requested_at);
  if (!RequestedAt.safeParse(request.requested_at).success || askedAt.getTime() > now.getTime())
    return {
      ok: false,
      code: "invalid_request",
      message: `requested_at must be when the person asked, an ISO-8601 date-time with its offset (2026-12-01T09:30:00Z) no later than now, found ${JSON.stringify(request.requested_at.slice(0, 100))}.`,
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
    actor: { kind: "operator", user: by },
    occurred_at: askedAt.toISOString(),
    observed_at: asOf,
    evidence: {
      request_reference: reference,
      ...(text !== undefined && text !== "" ? { reason: text } : {}),
      source_record_id: overrideRecordId(reference),
    },
  };
  const [result] = await deps.store.transaction((tx) => appendConsentEvents(tx, [draft]));
  // Erased since it was looked up above (the ledger checks under its lock).
  if (result?.kind === "rejected" && result.code === "contact_erased")
    return { ok: false, code: "contact_not_found", message: `No contact ${contact.id} (it was erased).` };
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
