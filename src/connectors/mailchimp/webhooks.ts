/**
 * Mailchimp audience webhooks: Mailchimp signs nothing, so the secret lives in the URL Concord
 * registers (`?key=<secret>`) and every request is checked against it; the validator's GET is
 * answered; a delivery (`application/x-www-form-urlencoded`: `type`, `fired_at`, `data[...]`)
 * becomes a hint to re-read the member, never trusted as state.
 */
import { createHash } from "node:crypto";
import type { WebhookChange, WebhookHandling, WebhookRequest } from "../connector";
import { secretMatches } from "../kit/webhook-secret";
import { subscriberHash } from "./mapping";

/** The query parameter that carries the webhook secret in the registered URL. */
export const WEBHOOK_KEY_PARAM = "key";
/**
 * The query parameter that says whose acts a webhook carries: Concord registers one webhook for the
 * people's own (`user`) and one for the account's users (`admin`), since a delivery does not say.
 */
export const WEBHOOK_BY_PARAM = "by";
export const WEBHOOK_ACTORS = ["user", "admin"] as const;

/** What Concord subscribes to, and from which sources (`api` is Concord's own writes: left out). */
export const WEBHOOK_EVENTS = {
  subscribe: true,
  unsubscribe: true,
  profile: true,
  cleaned: true,
  upemail: true,
  campaign: false,
};
export const WEBHOOK_SOURCES = { user: true, admin: true, api: false };

const rejected = (
  status: number,
  code: "webhook_unverified" | "webhook_invalid",
  message: string,
): WebhookHandling => ({
  kind: "rejected",
  status,
  code,
  message,
});

const CHANGE: Record<string, WebhookChange["change"]> = {
  subscribe: "consent_changed",
  unsubscribe: "consent_changed",
  cleaned: "consent_changed",
  profile: "changed",
  upemail: "email_changed",
};

/** `fired_at` (`2026-03-02 12:00:00`, UTC) as ISO-8601. */
function firedAt(value: string | null): string | undefined {
  if (!value || !/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/.test(value)) return undefined;
  const t = Date.parse(`${value.replace(" ", "T")}Z`);
  return Number.isNaN(t) ? undefined : new Date(t).toISOString();
}

/** Handles one request to a Mailchimp connection's webhook endpoint. */
export function handleMailchimpWebhook(request: WebhookRequest, secret: string): WebhookHandling {
  const method = request.method.toUpperCase();
  if (method !== "GET" && method !== "POST")
    return rejected(
      405,
      "webhook_invalid",
      `The Mailchimp webhook endpoint takes GET (Mailchimp's check) and POST, not ${method}.`,
    );
  if (!secretMatches(request.query[WEBHOOK_KEY_PARAM], secret))
    return rejected(401, "webhook_unverified", `Missing or wrong ${WEBHOOK_KEY_PARAM} in the webhook URL.`);
  // Mailchimp's validator GETs the URL before it creates the webhook: a 200 is all it needs.
  if (method === "GET") return { kind: "handshake", status: 200, headers: {} };
  const form = new URLSearchParams(request.raw_body);
  const type = form.get("type");
  if (!type)
    return rejected(
      400,
      "webhook_invalid",
      "The delivery has no `type` field (expected a form-encoded Mailchimp webhook).",
    );
  const change = CHANGE[type];
  // A campaign event names no member: nothing to re-read.
  if (!change) return { kind: "events", changes: [] };
  // The member is re-read by its subscriber hash, made from the address the delivery names (the
  // address after the change, for an email change): what `data[id]` holds is not documented, and
  // Mailchimp's own example of it has the length of a member's `unique_email_id`, which the member
  // endpoints do not take. Without an address, the id the delivery gives.
  const address = form.get(type === "upemail" ? "data[new_email]" : "data[email]")?.trim();
  const id = address ? subscriberHash(address) : form.get(type === "upemail" ? "data[new_id]" : "data[id]");
  if (!id)
    return rejected(
      400,
      "webhook_invalid",
      `The ${type} delivery names no member (data[${type === "upemail" ? "new_email" : "email"}] and data[${type === "upemail" ? "new_id" : "id"}] are missing).`,
    );
  const occurred = firedAt(form.get("fired_at"));
  if (!occurred)
    return rejected(
      400,
      "webhook_invalid",
      `The ${type} delivery has no valid fired_at (expected "YYYY-MM-DD HH:MM:SS").`,
    );
  // Deliveries carry no id; the same content is the same event (a retry).
  const event_id = createHash("sha256").update(request.raw_body).digest("hex").slice(0, 32);
  const listId = form.get("data[list_id]")?.trim();
  const list = listId ? { list_id: listId } : {};
  const action = type === "unsubscribe" ? form.get("data[action]") : null;
  // An archive comes as an unsubscribe whose action is `delete`: a change of the record, not of
  // consent. An `unsub` is the person leaving, said here once: a member archived before Concord
  // re-reads it shows only as archived, so the delivery's word is kept for that re-read.
  if (action === "delete")
    return {
      kind: "events",
      changes: [{ event_id, type, external_id: id, occurred_at: occurred, change: "changed", ...list }],
    };
  const reason = form.get("data[reason]");
  // A member cleaned for an abuse report: a spam complaint, which the re-read shows only as
  // cleaned (deliverability). The delivery's word is kept for that re-read.
  const complaint = type === "cleaned" && reason === "abuse";
  return {
    kind: "events",
    changes: [
      {
        event_id,
        type,
        external_id: id,
        occurred_at: occurred,
        change,
        ...list,
        ...(action === "unsub"
          ? {
              opt_out: {
                ...(reason ? { reason: reason.slice(0, 100) } : {}),
                // The webhook it came by says who: an account user's, or (a person's, or a webhook
                // registered for both by an earlier Concord) the person's.
                ...(request.query[WEBHOOK_BY_PARAM] === "admin" ? { actor: "account" as const } : {}),
                ...(address ? { email: address } : {}),
              },
            }
          : complaint
            ? { opt_out: { reason: "abuse", ...(address ? { email: address } : {}) } }
            : {}),
      },
    ],
  };
}
