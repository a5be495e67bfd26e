/**
 * One way to open an SMTP transport for Concord's own email (alerts, sign-up confirmations): the
 * password resolved from its secret reference, TLS always (STARTTLS required unless TLS from the
 * first byte), bounded waits, and a failure told as transient or permanent with the password
 * never in the message.
 */
import type { ConnectionOptions as TlsConnectionOptions } from "node:tls";
import nodemailer, { type Transporter } from "nodemailer";
import type { Smtp } from "../config/concord-config";
import { resolveSecretRef, type SecretSources } from "../config/resolve-secret-ref";
import type { SecretError } from "../config/secret-box";
import { err, ok, type Result } from "../core/result";

/** The SMTP server part of a config's email settings (an alert's `to` is not the transport's). */
export type SmtpServer = Omit<Smtp, "to">;

export type SmtpOpenError = {
  code: SecretError["code"] | "channel_misconfigured";
  message: string;
};

export type SmtpTransport = {
  transport: Transporter;
  /** Safe to show: `smtp://host:port`. */
  target: string;
  /** The resolved password, only to strip it from error messages. */
  password: string | undefined;
};

export const smtpTarget = (smtp: Pick<SmtpServer, "host" | "port">): string =>
  `smtp://${smtp.host}:${String(smtp.port)}`;

export async function openSmtpTransport(
  smtp: SmtpServer,
  options: { secrets: SecretSources; timeoutMs: number; tls?: TlsConnectionOptions; where: string },
): Promise<Result<SmtpTransport, SmtpOpenError>> {
  let password: string | undefined;
  if (smtp.password !== undefined) {
    const resolved = await resolveSecretRef(smtp.password, options.secrets);
    if (!resolved.ok)
      return err({
        code: resolved.error.code,
        message: `${options.where}.password: ${resolved.error.message}`,
      });
    password = resolved.value;
  }
  if (password !== undefined && smtp.username === undefined)
    return err({
      code: "channel_misconfigured",
      message: `${options.where}.password is set but ${options.where}.username is not`,
    });
  const secure = smtp.secure ?? smtp.port === 465;
  const transport = nodemailer.createTransport({
    host: smtp.host,
    port: smtp.port,
    secure,
    // Never send credentials or a message in the clear: fail when the server offers no STARTTLS.
    requireTLS: !secure,
    ...(smtp.username === undefined ? {} : { auth: { user: smtp.username, pass: password ?? "" } }),
    connectionTimeout: options.timeoutMs,
    greetingTimeout: options.timeoutMs,
    socketTimeout: options.timeoutMs,
    ...(options.tls === undefined ? {} : { tls: options.tls }),
  });
  return ok({ transport, target: smtpTarget(smtp), password });
}

// Nodemailer's codes for a connection that broke or never came up: worth another attempt.
const SMTP_TRANSIENT_CODES = new Set(["ECONNECTION", "ETIMEDOUT", "ESOCKET", "EDNS"]);

const oneLine = (text: string): string => text.replace(/\s+/g, " ").trim();

/** What a failed send means: worth another attempt (a 4xx reply, a broken connection) or not. */
export function smtpFailure(
  error: unknown,
  password: string | undefined,
): { transient: boolean; message: string } {
  const e = (typeof error === "object" && error !== null ? error : {}) as {
    code?: unknown;
    responseCode?: unknown;
    message?: unknown;
  };
  const code = typeof e.code === "string" ? e.code : undefined;
  const responseCode = typeof e.responseCode === "number" ? e.responseCode : undefined;
  let message = oneLine(typeof e.message === "string" ? e.message : String(error));
  if (password !== undefined && password !== "") message = message.split(password).join("[redacted]");
  message = code === undefined ? message : `${code}: ${message}`;
  if (code === "ETLS")
    message = `TLS with the server failed, and Concord sends no email without it (${message})`;
  const transient =
    (responseCode !== undefined && responseCode >= 400 && responseCode < 500) ||
    (code !== undefined && SMTP_TRANSIENT_CODES.has(code));
  return { transient, message };
}
