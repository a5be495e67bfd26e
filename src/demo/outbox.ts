/**
 * The demo's outbox: a real SMTP server on the loopback (smtp-server, STARTTLS with its throwaway
 * certificate, AUTH when credentials are given) that keeps the messages Concord sends, so the demo's
 * people can open the links Concord emails them. Tests take their email from it too.
 */
import type { AddressInfo } from "node:net";
import { SMTPServer } from "smtp-server";

export type Mail = {
  from: string | undefined;
  to: string[];
  user: string | undefined;
  secure: boolean;
  raw: string;
  headers: Record<string, string>;
  body: string;
};

export type Outbox = {
  port: number;
  /** Every message taken, oldest first (at most `keep`). */
  mails: Mail[];
  authAttempts: number;
  close: () => Promise<void>;
};

export type OutboxOptions = {
  /** Offer STARTTLS (default) or not (AUTH is then taken in the clear, for tests that refuse it). */
  starttls?: boolean;
  /** Accept only these credentials; none: no AUTH needed. */
  auth?: { username: string; password: string };
  /** Messages kept (the oldest go first). Default 500. */
  keep?: number;
};

export async function startOutbox(options: OutboxOptions = {}): Promise<Outbox> {
  const mails: Mail[] = [];
  const keep = options.keep ?? 500;
  const outbox: Outbox = { port: 0, mails, authAttempts: 0, close: () => Promise.resolve() };
  const auth = options.auth;
  const server = new SMTPServer({
    logger: false,
    ...(options.starttls === false ? { hideSTARTTLS: true, disabledCommands: ["STARTTLS"] } : {}),
    ...(auth === undefined ? { authOptional: true } : {}),
    // Only so a server without STARTTLS would even take AUTH: Concord must still refuse to send.
    allowInsecureAuth: options.starttls === false,
    onAuth(given, _session, callback) {
      outbox.authAttempts++;
      if (auth !== undefined && given.username === auth.username && given.password === auth.password)
        callback(null, { user: given.username });
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
        if (mails.length > keep) mails.splice(0, mails.length - keep);
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  outbox.port = (server.server.address() as AddressInfo).port;
  outbox.close = () =>
    new Promise<void>((resolve) => {
      server.close(() => {
        resolve();
      });
    });
  return outbox;
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
export function parseMessage(raw: string): { headers: Record<string, string>; body: string } {
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
