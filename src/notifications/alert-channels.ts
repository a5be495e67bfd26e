/**
 * The alert channels beyond the log: a JSON POST to every configured webhook URL (Slack and Teams
 * incoming webhooks read its `text`) and an email through the configured SMTP server. Each
 * channel's outcome is a value; a failing channel never stops another nor throws into the caller.
 */
import type { ConnectionOptions as TlsConnectionOptions } from "node:tls";
import { request } from "undici";
import type { Notifications, Smtp } from "../config/concord-config";
import { resolveSecretRef, type SecretSources } from "../config/resolve-secret-ref";
import type { SecretError } from "../config/secret-box";
import type { CredentialValue } from "../config/secret-ref";
import {
  classifyStatus,
  decideRetry,
  parseRetryAfter,
  type FailureClass,
  type RetryRules,
} from "../connectors/http/retry-decision";
import type { Logger } from "../observability/logger";
import { redactString } from "../observability/redact";
import type { ConnectionAlert } from "../connections/connection-health";
import { openSmtpTransport, smtpFailure, smtpTarget } from "./smtp-transport";

export type AlertChannel = "webhook" | "email";

export type AlertDeliveryErrorCode =
  | SecretError["code"] // the channel's secret reference did not resolve
  | "channel_misconfigured" // a referenced URL that is not http(s), a password without a username
  | "delivery_rejected" // a 4xx answer, an SMTP 5xx, refused authentication or no STARTTLS: not retried
  | "delivery_unavailable"; // 5xx, 429, timeouts or network errors on every attempt

export type AlertDeliveryError = { code: AlertDeliveryErrorCode; message: string };

/** One channel's outcome. `target` is safe to show: a webhook's scheme and host, an SMTP server's host and port. */
export type AlertDelivery =
  | { channel: AlertChannel; target: string; ok: true; attempts: number }
  | { channel: AlertChannel; target: string; ok: false; attempts: number; error: AlertDeliveryError };

export type AlertChannelDeps = {
  /** Where `{ env }` and `{ stored }` references in the notifications resolve. */
  secrets: SecretSources;
  logger: Logger;
  /** The email's Date header, and the base of a Retry-After date. Default: the system clock. */
  now?: () => Date;
  /** Per attempt: the whole HTTP exchange; the SMTP connection, greeting and socket idle time. Default 10 s. */
  timeoutMs?: number;
  /** Attempts per channel when the failure is transient (5xx, 429, timeout, network). Default 3. */
  attempts?: number;
  /** Waits between attempts (default: a timer). Tests pass one that returns at once. */
  sleep?: (ms: number) => Promise<void>;
  /**
   * TLS options for the SMTP connection, merged over the defaults: a private CA (`ca`) in
   * production, or `{ rejectUnauthorized: false }` in tests against a throwaway certificate.
   * STARTTLS stays required (unless `email.secure`, TLS from the first byte) whatever is set here.
   */
  smtpTls?: TlsConnectionOptions;
};

/** What a webhook receives: Slack and Teams show `text`; other receivers read `concord_alert`. */
export type AlertWebhookBody = { text: string; concord_alert: ConnectionAlert };

export type AlertEmail = { subject: string; text: string };

const DEFAULT_TIMEOUT_MS = 10_000;
const DEFAULT_ATTEMPTS = 3;
// Short waits: the health tracker awaits the channels before it handles the next report.
const BASE_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 5_000;
/** A receiver asking to wait longer than this (Retry-After) gets no further attempt. */
const MAX_WAIT_MS = 10_000;
/** How much of a rejecting receiver's body goes into the error (Slack says `invalid_token`, `no_service`). */
const ERROR_BODY_CHARS = 200;

const oneLine = (text: string): string => text.replace(/\s+/g, " ").trim();

export function alertWebhookBody(alert: ConnectionAlert): AlertWebhookBody {
  const fix = alert.link !== undefined ? ` Fix it: ${alert.link}` : "";
  const text =
    alert.status === "broken"
      ? `Concord: connection ${alert.connection_id} is broken — ${alert.message}${fix}`
      : alert.status === "warning"
        ? `Concord: ${alert.connection_id} needs attention (${alert.code}) — ${alert.message}${fix}`
        : alert.status === "resolved"
          ? `Concord: ${alert.connection_id} is fine again (${alert.code}) — ${alert.message}`
          : `Concord: connection ${alert.connection_id} works again — ${alert.message}.`;
  return { text: oneLine(text), concord_alert: alert };
}

export function alertEmail(alert: ConnectionAlert): AlertEmail {
  const id = alert.connection_id;
  const fix = alert.link !== undefined ? ["", `Open: ${alert.link}`] : [];
  if (alert.status === "broken") {
    return {
      subject: `[Concord] ${id} is broken`,
      text: [
        `Connection ${id} is broken (${alert.code}) since ${alert.at}.`,
        "",
        `Why: ${oneLine(alert.message)}`,
        "",
        "What to do: renew the connection's credentials. For a stored secret run " +
          "`concord secrets set <name>`; for an environment variable, update it and restart Concord. " +
          `Work queued for ${id} waits meanwhile and resumes after its next successful call; ` +
          "you will get a message when it works again.",
        ...fix,
        "",
        "— Concord",
        "",
      ].join("\n"),
    };
  }
  if (alert.status === "warning") {
    return {
      subject: `[Concord] ${id}: ${alert.code.replaceAll("_", " ")}`,
      text: [
        `${id} needs attention (${alert.code}) since ${alert.at}.`,
        "",
        oneLine(alert.message),
        ...fix,
        "",
        "You will get one message when it is fine again.",
        "",
        "— Concord",
        "",
      ].join("\n"),
    };
  }
  if (alert.status === "resolved") {
    return {
      subject: `[Concord] ${id}: ${alert.code.replaceAll("_", " ")} resolved`,
      text: [`${id} is fine again since ${alert.at}.`, "", oneLine(alert.message), "", "— Concord", ""].join(
        "\n",
      ),
    };
  }
  return {
    subject: `[Concord] ${id} works again`,
    text: [
      `Connection ${id} works again since ${alert.at}.`,
      "",
      `Why: ${oneLine(alert.message)}.`,
      "",
      `What to do: nothing. Work queued for ${id} resumes on its own.`,
      "",
      "— Concord",
      "",
    ].join("\n"),
  };
}

export type AlertNotifier = {
  /** Sends the alert on every configured channel at once; how each went. Never throws. */
  send: (alert: ConnectionAlert) => Promise<AlertDelivery[]>;
  /** `send` for `connectionHealthTracker({ notify })`: failures are already logged as warnings. */
  notify: (alert: ConnectionAlert) => Promise<void>;
};

export function alertNotifier(notifications: Notifications, deps: AlertChannelDeps): AlertNotifier {
  const send = async (raw: ConnectionAlert): Promise<AlertDelivery[]> => {
    // A message may quote a vendor's answer (an error page, an echoed request): what leaves
    // Concord for a chat channel or a mailbox is redacted as a log line is.
    const alert: ConnectionAlert = { ...raw, message: redactString(raw.message) };
    const sends: Promise<AlertDelivery>[] = notifications.webhook_urls.map((url) =>
      guarded("webhook", refTarget(url), deps.logger, () => sendWebhook(url, alert, deps)),
    );
    const email = notifications.email;
    if (email !== undefined)
      sends.push(guarded("email", smtpTarget(email), deps.logger, () => sendEmail(email, alert, deps)));
    const deliveries = await Promise.all(sends);
    for (const d of deliveries) {
      if (d.ok) {
        deps.logger.info(
          { connection: alert.connection_id, channel: d.channel, target: d.target, attempts: d.attempts },
          `alert for ${alert.connection_id} sent by ${d.channel} to ${d.target}`,
        );
      } else {
        deps.logger.warn(
          {
            connection: alert.connection_id,
            channel: d.channel,
            target: d.target,
            attempts: d.attempts,
            code: d.error.code,
          },
          `alert for ${alert.connection_id} not sent by ${d.channel} to ${d.target}: ${d.error.message}`,
        );
      }
    }
    return deliveries;
  };
  return {
    send,
    notify: async (alert) => {
      await send(alert);
    },
  };
}

/** Last line of defence: an unexpected throw becomes a failed delivery, logged with its stack. */
async function guarded(
  channel: AlertChannel,
  target: string,
  logger: Logger,
  send: () => Promise<AlertDelivery>,
): Promise<AlertDelivery> {
  try {
    return await send();
  } catch (error) {
    logger.error({ err: error, channel, target }, `alert channel ${channel} to ${target} threw`);
    return {
      channel,
      target,
      ok: false,
      attempts: 0,
      error: { code: "delivery_unavailable", message: "unexpected error (see the log)" },
    };
  }
}

// ── targets, never holding a token or password ───────────────────────────────────────────────

/** Before resolving: the URL's origin, or the reference's name. */
function refTarget(url: CredentialValue): string {
  return url.kind === "plain" ? urlOrigin(url.value) : `${url.kind}:${url.name}`;
}

/** Scheme, host and port only: a webhook's path and query usually carry its token. */
function urlOrigin(value: string): string {
  try {
    const url = new URL(value);
    return url.protocol === "http:" || url.protocol === "https:" ? url.origin : `${url.protocol}…`;
  } catch {
    return "(not a URL)";
  }
}

// ── attempts and retries ─────────────────────────────────────────────────────────────────────

type Attempt = { ok: true } | { ok: false; failure: FailureClass; message: string };

type Tried = { ok: true; attempts: number } | { ok: false; attempts: number; error: AlertDeliveryError };

/** Runs `attempt` until it succeeds or the shared retry decision says stop. */
async function withRetries(attempt: () => Promise<Attempt>, deps: AlertChannelDeps): Promise<Tried> {
  const rules: RetryRules = {
    max_attempts: Math.max(1, deps.attempts ?? DEFAULT_ATTEMPTS),
    base_backoff_ms: BASE_BACKOFF_MS,
    max_backoff_ms: MAX_BACKOFF_MS,
    default_throttle_ms: BASE_BACKOFF_MS,
  };
  const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms)));
  for (let n = 1; ; n++) {
    const result = await attempt();
    if (result.ok) return { ok: true, attempts: n };
    // The clock and quota reset only matter for quotas, which an alert receiver does not declare.
    const now = new Date(0);
    const decision = decideRetry(
      {
        failure: result.failure,
        attempt: n,
        refreshed: true,
        now,
        next_quota_reset: now,
      },
      rules,
    );
    if (decision.kind === "retry" && decision.after_ms <= MAX_WAIT_MS) {
      await sleep(decision.after_ms);
      continue;
    }
    const transient = result.failure.kind === "transient" || result.failure.kind === "throttled";
    const message = transient && n > 1 ? `${result.message} (after ${String(n)} attempts)` : result.message;
    return {
      ok: false,
      attempts: n,
      error: { code: transient ? "delivery_unavailable" : "delivery_rejected", message },
    };
  }
}

// ── webhook ──────────────────────────────────────────────────────────────────────────────────

async function sendWebhook(
  ref: CredentialValue,
  alert: ConnectionAlert,
  deps: AlertChannelDeps,
): Promise<AlertDelivery> {
  const refName = refTarget(ref);
  const resolved = await resolveSecretRef(ref, deps.secrets);
  if (!resolved.ok)
    return { channel: "webhook", target: refName, ok: false, attempts: 0, error: resolved.error };
  const url = resolved.value;
  const target = ref.kind === "plain" ? urlOrigin(url) : `${urlOrigin(url)} (${refName})`;
  if (!/^https?:$/.test(safeProtocol(url))) {
    return {
      channel: "webhook",
      target: refName,
      ok: false,
      attempts: 0,
      error: {
        code: "channel_misconfigured",
        message: `the webhook URL from ${refName} is not an http(s) URL`,
      },
    };
  }
  const body = JSON.stringify(alertWebhookBody(alert));
  const timeoutMs = deps.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const now = deps.now ?? (() => new Date());
  const tried = await withRetries(() => postOnce(url, body, timeoutMs, now), deps);
  return { channel: "webhook", target, ...tried };
}

function safeProtocol(value: string): string {
  try {
    return new URL(value).protocol;
  } catch {
    return "";
  }
}

async function postOnce(url: string, body: string, timeoutMs: number, now: () => Date): Promise<Attempt> {
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    const response = await request(url, {
      method: "POST",
      headers: { "content-type": "application/json", "user-agent": "concord-alerts" },
      body,
      signal,
    });
    const status = response.statusCode;
    if (status >= 200 && status < 300) {
      await response.body.dump();
      return { ok: true };
    }
    const excerpt = oneLine((await readCapped(response.body, ERROR_BODY_CHARS)).trim());
    const message = `HTTP ${String(status)}${excerpt === "" ? "" : `: ${excerpt}`}`;
    if (status === 429) {
      const header = response.headers["retry-after"];
      const retryAfter = parseRetryAfter(typeof header === "string" ? header : undefined, now());
      return {
        ok: false,
        failure: { kind: "throttled", ...(retryAfter === undefined ? {} : { retry_after_ms: retryAfter }) },
        message,
      };
    }
    const failure = classifyStatus(status);
    // A 401 from a receiver is a bad URL or token: nothing to refresh.
    return {
      ok: false,
      failure: failure.kind === "auth" ? { kind: "permanent", code: "auth_invalid" } : failure,
      message,
    };
  } catch (error) {
    // Messages are ours, not the error's: some name the full URL, token included.
    if (signal.aborted)
      return {
        ok: false,
        failure: { kind: "transient" },
        message: `no answer within ${String(timeoutMs)} ms`,
      };
    return { ok: false, failure: { kind: "transient" }, message: `network error: ${errorCode(error)}` };
  }
}

async function readCapped(body: AsyncIterable<Buffer>, max: number): Promise<string> {
  let text = "";
  for await (const chunk of body) {
    text += chunk.toString("utf8");
    if (text.length >= max) break;
  }
  return text.slice(0, max);
}

function errorCode(error: unknown): string {
  if (typeof error === "object" && error !== null) {
    const code = (error as { code?: unknown }).code;
    if (typeof code === "string") return code;
    const cause = (error as { cause?: unknown }).cause;
    if (cause !== undefined) return errorCode(cause);
    if (error instanceof Error) return error.name;
  }
  return "unknown";
}

// ── email ────────────────────────────────────────────────────────────────────────────────────

async function sendEmail(smtp: Smtp, alert: ConnectionAlert, deps: AlertChannelDeps): Promise<AlertDelivery> {
  const opened = await openSmtpTransport(smtp, {
    secrets: deps.secrets,
    timeoutMs: deps.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    where: "email",
    ...(deps.smtpTls === undefined ? {} : { tls: deps.smtpTls }),
  });
  if (!opened.ok)
    return {
      channel: "email",
      target: smtpTarget(smtp),
      ok: false,
      attempts: 0,
      error: { code: opened.error.code, message: opened.error.message },
    };
  const { transport, target, password } = opened.value;
  const { subject, text } = alertEmail(alert);
  const message = { from: smtp.from, to: smtp.to, subject, text, date: (deps.now ?? (() => new Date()))() };
  try {
    const tried = await withRetries(async (): Promise<Attempt> => {
      try {
        await transport.sendMail(message);
        return { ok: true };
      } catch (error) {
        const failure = smtpFailure(error, password);
        return {
          ok: false,
          failure: failure.transient
            ? { kind: "transient" }
            : { kind: "permanent", code: "validation_failed" },
          message: failure.message,
        };
      }
    }, deps);
    return { channel: "email", target, ...tried };
  } finally {
    transport.close();
  }
}
