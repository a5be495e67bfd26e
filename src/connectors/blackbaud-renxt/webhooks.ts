/**
 * Raiser's Edge NXT webhook intake and setup: answers the CloudEvents abuse-protection handshake,
 * verifies deliveries by the secret carried in the subscription URL (SKY signs nothing), parses
 * CloudEvents 1.0 into re-read hints, and creates, lists and deletes Webhook API subscriptions.
 */
import type {
  ConnectionSettings,
  ConnectorLimits,
  ConnectorResult,
  ConnectorRuntime,
  WebhookChange,
  WebhookHandling,
  WebhookRequest,
} from "../connector";
import { createHash } from "node:crypto";
import { err, ok } from "../../core/result";
import { secretMatches } from "../kit/webhook-secret";

export { secretMatches };
import type { WebhookRegistration } from "../manifest";
import { createBlackbaudClient, type BlackbaudClient } from "./client";
import { BLACKBAUD_LIMITS } from "./connector";
import { toUtcIso, webhookChangeKind } from "./mapping";
import { CloudEventSchema, type WebhookSubscription } from "./schemas";

/** The query parameter Blackbaud's webhook overview and tutorial use for the subscription secret. */
export const WEBHOOK_KEY_PARAM = "webhookKey";
export const EVENT_GRID_ORIGIN = "eventgrid.azure.net";

/**
 * Solicit code events (names from a third-party list, UNVERIFIED): subscribed to by default, and
 * left out without failing the registration when SKY refuses the type.
 */
const SOLICIT_CODE_EVENT_TYPES: readonly string[] = [
  "com.blackbaud.constituent.solicitcode.add.v1",
  "com.blackbaud.constituent.solicitcode.change.v1",
  "com.blackbaud.constituent.solicitcode.delete.v1",
];

/** The constituent events Concord subscribes to by default (names from Blackbaud's docs and tutorial). */
export const DEFAULT_EVENT_TYPES: readonly string[] = [
  "com.blackbaud.constituent.add.v1",
  "com.blackbaud.constituent.change.v1",
  "com.blackbaud.constituent.delete.v1",
  "com.blackbaud.constituent.emailaddress.add.v1",
  "com.blackbaud.constituent.emailaddress.change.v1",
  "com.blackbaud.constituent.emailaddress.delete.v1",
  // An opt-out solicit code ("Do not email") moves no constituent's date, so an incremental read
  // never lists it: only these events bring it within seconds rather than at the full read.
  ...SOLICIT_CODE_EVENT_TYPES,
];

const header = (req: WebhookRequest, name: string): string | undefined => {
  const wanted = name.toLowerCase();
  for (const [k, v] of Object.entries(req.headers)) if (k.toLowerCase() === wanted) return v;
  return undefined;
};

const rejected = (
  status: number,
  code: "webhook_unverified" | "webhook_invalid",
  message: string,
): WebhookHandling => ({ kind: "rejected", status, code, message });

/**
 * Handles one request to the Raiser's Edge NXT webhook endpoint. A wrong or missing key is refused
 * with 401 even on the handshake, so a subscription created with a wrong URL never provisions
 * (Blackbaud's tutorial answers 200 to hide the failure; Concord prefers a visible, failed setup).
 */
export function handleBlackbaudWebhook(request: WebhookRequest, secret: string): WebhookHandling {
  const method = request.method.toUpperCase();
  if (method !== "OPTIONS" && method !== "POST") {
    return rejected(405, "webhook_invalid", `Webhook endpoint accepts OPTIONS and POST, not ${method}.`);
  }
  if (!secretMatches(request.query[WEBHOOK_KEY_PARAM], secret)) {
    return rejected(401, "webhook_unverified", `Missing or wrong ${WEBHOOK_KEY_PARAM} in the webhook URL.`);
  }
  if (method === "OPTIONS") {
    const origin = header(request, "webhook-request-origin");
    if (!origin) {
      return rejected(400, "webhook_invalid", "Handshake without a WebHook-Request-Origin header.");
    }
    return {
      kind: "handshake",
      status: 200,
      headers: { "WebHook-Allowed-Origin": origin, "WebHook-Allowed-Rate": "*", Allow: "POST, OPTIONS" },
    };
  }
  return parseDelivery(request.raw_body);
}

/** Parses a CloudEvents 1.0 body (one event, or a batch array) into re-read hints. */
export function parseDelivery(rawBody: string): WebhookHandling {
  let parsed: unknown;
  try {
    parsed = JSON.parse(rawBody);
  } catch {
    return rejected(400, "webhook_invalid", "Webhook body is not JSON.");
  }
  const events = Array.isArray(parsed) ? parsed : [parsed];
  const changes: WebhookChange[] = [];
  // One event that cannot be read costs only itself: the rest of its batch is kept.
  const skipped: string[] = [];
  for (const [index, raw] of events.entries()) {
    const event = CloudEventSchema.safeParse(raw);
    if (!event.success) {
      const issue = event.error.issues[0];
      const where = issue ? `${issue.path.join(".") || "event"}: ${issue.message}` : "invalid";
      skipped.push(`Event ${index} is not a CloudEvents 1.0 event (${where}).`);
      continue;
    }
    const e = event.data;
    const change = webhookChangeKind(e.type);
    if (!change) continue; // another product's event (gift, education…): nothing to re-read here
    // Constituent events carry the constituent in data.id; sub-record events (email address…) carry
    // their own id in data.id and the constituent in data.constituent_id.
    const topLevel =
      change === "deleted" || change === "test" || /^com\.blackbaud\.constituent\.[a-z]+\.v\d+$/.test(e.type);
    const externalId = topLevel ? e.data?.id : e.data?.constituent_id;
    if (!externalId && change !== "test") {
      skipped.push(
        `Event ${e.id} (${e.type}) names no constituent (data.${topLevel ? "id" : "constituent_id"} is missing).`,
      );
      continue;
    }
    let occurredAt: string;
    try {
      occurredAt = toUtcIso(e.time);
    } catch {
      skipped.push(`Event ${e.id} has an invalid time: ${e.time}.`);
      continue;
    }
    changes.push({
      event_id: e.id,
      type: e.type,
      external_id: externalId ?? "",
      occurred_at: occurredAt,
      change,
    });
  }
  // Nothing in it could be read: refused, so the sender sees it.
  if (changes.length === 0 && skipped.length > 0) return rejected(400, "webhook_invalid", skipped.join(" "));
  return { kind: "events", changes, ...(skipped.length > 0 ? { skipped } : {}) };
}

/** The credential holding a fingerprint of the secret the connection's subscriptions carry. */
const WEBHOOK_KEY_FINGERPRINT = "webhook_key_fingerprint";

/** The subscription URL: Concord's endpoint with the connection's secret in the documented query parameter. */
export function subscriptionUrl(endpoint: string, secret: string): string {
  const url = new URL(endpoint);
  url.searchParams.set(WEBHOOK_KEY_PARAM, secret);
  return url.toString();
}

/** Subscribes the endpoint to each event type not yet subscribed (SKY scopes one subscription per type). */
export async function ensureWebhookSubscriptions(
  client: BlackbaudClient,
  options: {
    endpoint: string;
    secret: string;
    event_types?: readonly string[];
    /** The receiver's subscriptions carry another secret than `secret`: made again, the old ones deleted. */
    replace?: boolean;
  },
): Promise<ConnectorResult<WebhookSubscription[]>> {
  const listed = await client.listSubscriptions();
  if (!listed.ok) return listed;
  const wantedUrl = new URL(options.endpoint);
  // GET answers never include the query string, so compare origin and path only.
  const same = (s: WebhookSubscription): boolean => {
    if (!s.webhook_url) return false;
    const u = new URL(s.webhook_url);
    return u.origin === wantedUrl.origin && u.pathname === wantedUrl.pathname;
  };
  let existing = listed.value;
  if (options.replace === true) {
    // Their deliveries carry the old secret, which the receiver refuses: each would be lost.
    for (const s of existing.filter(same)) {
      const gone = await client.deleteSubscription(s.id);
      if (!gone.ok && gone.error.code !== "not_found") return gone;
    }
    existing = existing.filter((s) => !same(s));
  }
  const out: WebhookSubscription[] = [];
  for (const type of options.event_types ?? DEFAULT_EVENT_TYPES) {
    const found = existing.find((s) => s.event_type === type && same(s));
    if (found) {
      out.push(found);
      continue;
    }
    const created = await client.createSubscription({
      webhook_url: subscriptionUrl(options.endpoint, options.secret),
      event_type: type,
    });
    // A type whose name SKY does not know: the others still come, and the full read covers it.
    if (!created.ok && SOLICIT_CODE_EVENT_TYPES.includes(type) && created.error.code === "validation_failed")
      continue;
    if (!created.ok) return created;
    out.push({ ...created.value, event_type: created.value.event_type ?? type });
  }
  return ok(out);
}

/**
 * The manifest's `register`: makes sure every constituent event type is subscribed to the receiver
 * through the connection's own client (its budget and credentials); subscriptions found are kept.
 */
export async function registerBlackbaudWebhooks(
  settings: ConnectionSettings,
  runtime: ConnectorRuntime,
  receiver: { url: string; secret: string },
): Promise<ConnectorResult<WebhookRegistration>> {
  const client = createBlackbaudClient({ settings, runtime, limits: BLACKBAUD_LIMITS });
  const before = await client.listSubscriptions();
  if (!before.ok) return before;
  // SKY never shows a subscription's query string, so which secret a subscription carries is known
  // only from the last registration: a fingerprint of it, kept with the connection's credentials.
  // Another one (the secret rotated) or none (a connection registered before it was kept) makes
  // the receiver's subscriptions again, with this secret.
  const fingerprint = createHash("sha256").update(receiver.secret).digest("hex").slice(0, 16);
  const held = (await settings.credentials.get())[WEBHOOK_KEY_FINGERPRINT];
  const made = await ensureWebhookSubscriptions(client, {
    endpoint: receiver.url,
    secret: receiver.secret,
    replace: held !== fingerprint,
  });
  if (!made.ok) return made;
  if (held !== fingerprint) await settings.credentials.save({ [WEBHOOK_KEY_FINGERPRINT]: fingerprint });
  const known = new Set(before.value.map((s) => s.id));
  const created = made.value.filter((s) => !known.has(s.id)).length;
  return ok({ created, kept: made.value.length - created });
}

/**
 * Subscribes a receiver to the constituent events through the Webhook API with its own client, as
 * an integrator does once, and waits (up to about ten seconds) for the handshake to provision them.
 */
export async function subscribeAndWait(
  endpoints: { base_url: string; token_url: string },
  credentials: Record<string, string>,
  receiverUrl: string,
  secret: string,
): Promise<boolean> {
  let held = { ...credentials };
  const settings: ConnectionSettings = {
    connection_id: "webhook-setup",
    ...endpoints,
    credentials: {
      get: async () => ({ ...held }),
      save: async (changes) => {
        held = { ...held, ...changes };
      },
    },
  };
  const runtime: ConnectorRuntime = {
    now: () => new Date(),
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  };
  const client = createBlackbaudClient({ settings, runtime, limits: SETUP_LIMITS });
  const made = await ensureWebhookSubscriptions(client, { endpoint: receiverUrl, secret });
  if (!made.ok) return false;
  for (let i = 0; i < 100; i += 1) {
    const listed = await client.listSubscriptions();
    if (!listed.ok) return false;
    const states = listed.value.map((s) => s.state ?? s.provisioning_status ?? "");
    if (states.length > 0 && states.every((s) => s === "Provisioned")) return true;
    if (states.includes("Error")) return false;
    await runtime.sleep(100);
  }
  return false;
}

/** Setting up webhooks is a handful of calls, made once. */
const SETUP_LIMITS: ConnectorLimits = { requests_per_second: 5, max_concurrency: 1, batch: {} };

export const listWebhookSubscriptions = (
  client: BlackbaudClient,
): Promise<ConnectorResult<WebhookSubscription[]>> => client.listSubscriptions();

/** Deletes subscriptions by id; a subscription already gone counts as deleted. */
export async function deleteWebhookSubscriptions(
  client: BlackbaudClient,
  ids: readonly string[],
): Promise<ConnectorResult<void>> {
  for (const id of ids) {
    const res = await client.deleteSubscription(id);
    if (!res.ok && res.error.code !== "not_found") return err(res.error);
  }
  return ok(undefined);
}
