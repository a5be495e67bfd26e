/**
 * A real SMTP server for tests (smtp-server: STARTTLS with its throwaway certificate, AUTH): it
 * keeps every message it takes, with its envelope, headers and decoded text body.
 */
import type { AddressInfo } from "node:net";
import { SMTPServer } from "smtp-server";

export const SMTP_USER = "concord-alerts";
export const SMTP_PASSWORD = "smtp-Pa55word-xyz";

export type Mail = {
  from: string | undefined;
  to: string[];
  user: string | undefined;
  secure: boolean;
  raw: string;
  headers: Record<string, string>;
  body: string;
};

export type SmtpReceiver = { port: number; mails: Mail[]; authAttempts: number; close: () => Promise<void> };

export async function startSmtp(options: { starttls?: boolean } = {}): Promise<SmtpReceiver> {
  const mails: Mail[] = [];
  const receiver: SmtpReceiver = { port: 0, mails, authAttempts: 0, close: () => Promise.resolve() };
  const server = new SMTPServer({
    logger: false,
    ...(options.starttls === false ? { hideSTARTTLS: true, disabledCommands: ["STARTTLS"] } : {}),
    // Only so a server without STARTTLS would even take AUTH: Concord must still refuse to send.
    allowInsecureAuth: options.starttls === false,
    onAuth(auth, _session, callback) {
      receiver.authAttempts++;
      if (auth.username === SMTP_USER && auth.password === SMTP_PASSWORD)
        callback(null, { user: auth.username });
      else callback(new Error("Invalid username or password"));
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("end", () => {
        const raw = Buffer.concat(chunks).toString("utf8");
        const { headers, body } = parseMessage(raw);
        const mailFrom = session.envelope.mailFrom;
        mails.push({
          from: mailFrom === false ? undefined : mailFrom.address,
          to: session.envelope.rcptTo.map((r) => r.address),
          user: typeof session.user === "string" ? session.user : undefined,
          secure: session.secure,
          raw,
          headers,
          body,
        });
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  receiver.port = (server.server.address() as AddressInfo).port;
  receiver.close = () =>
    new Promise<void>((resolve) => {
      server.close(() => {
        resolve();
      });
    });
  return receiver;
}

/** RFC 2047 encoded words (`=?UTF-8?Q?…?=`, `=?UTF-8?B?…?=`) in a header, decoded. */
function decodeWords(value: string): string {
  return value
    .replace(/\?=\s+=\?/g, "?==?")
    .replace(/=\?utf-8\?([QB])\?([^?]*)\?=/gi, (_m, enc: string, text: string) =>
      enc.toUpperCase() === "B"
        ? Buffer.from(text, "base64").toString("utf8")
        : Buffer.from(
            text
              .replace(/_/g, " ")
              .replace(/=([0-9A-F]{2})/gi, (_h, hex: string) => String.fromCharCode(parseInt(hex, 16))),
            "latin1",
          ).toString("utf8"),
    );
}

/** Headers (unfolded, lower-cased names, encoded words decoded) and the quoted-printable text body of a single-part message. */
function parseMessage(raw: string): { headers: Record<string, string>; body: string } {
  const split = raw.indexOf("\r\n\r\n");
  const headers: Record<string, string> = {};
  for (const line of raw
    .slice(0, split)
    .replace(/\r\n[ \t]+/g, " ")
    .split("\r\n")) {
    const colon = line.indexOf(":");
    headers[line.slice(0, colon).toLowerCase()] = decodeWords(line.slice(colon + 1).trim());
  }
  let body = raw.slice(split + 4);
  if (/quoted-printable/i.test(headers["content-transfer-encoding"] ?? "")) {
    const bytes = body
      .replace(/=\r\n/g, "")
      .replace(/=([0-9A-F]{2})/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16)));
    body = Buffer.from(bytes, "latin1").toString("utf8");
  }
  return { headers, body: body.replace(/\r\n/g, "\n") };
}
