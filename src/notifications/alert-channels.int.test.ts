/**
 * Alert channels against real local receivers: a node:http server takes the webhook POSTs and an
 * smtp-server (STARTTLS with its throwaway certificate, AUTH) takes the email; then both plugged
 * into the connection health tracker over a real store.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createNetServer, type AddressInfo } from "node:net";
import { Writable } from "node:stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { NotificationsSchema } from "../config/concord-config";
import { createLogger, type Logger } from "../observability/logger";
import { describeOnBackends } from "../../test/support/store-backends";
import { SMTP_PASSWORD, SMTP_USER, startSmtp, type SmtpReceiver } from "../../test/support/smtp-receiver";
import { alertEmail, alertNotifier, alertWebhookBody, type AlertChannelDeps } from "./alert-channels";
import { connectionHealthTracker, type ConnectionAlert } from "../connections/connection-health";

const TOKEN = "T0001/B0002/zSecretWebhookToken42";
const AT = "2026-03-01T12:00:00.000Z";

const BROKEN: ConnectionAlert = {
  connection_id: "cc-main",
  status: "broken",
  code: "auth_invalid",
  message:
    "auth_invalid: The refresh token was revoked. Renew the connection's credentials; queued work waits and resumes then.",
  at: AT,
};
const RECOVERED: ConnectionAlert = {
  connection_id: "cc-main",
  status: "ok",
  code: "recovered",
  message: "credentials accepted again",
  at: AT,
};

// ── receivers ────────────────────────────────────────────────────────────────────────────────

type Received = { method: string; url: string; headers: IncomingMessage["headers"]; body: string };

type Receiver = {
  url: string;
  origin: string;
  received: Received[];
  /** Statuses to answer in order; then 200. `"hang"` never answers. */
  answers: (number | "hang")[];
  close: () => Promise<void>;
};

async function startReceiver(): Promise<Receiver> {
  const received: Received[] = [];
  const answers: (number | "hang")[] = [];
  const hanging: ServerResponse[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      received.push({
        method: req.method ?? "",
        url: req.url ?? "",
        headers: req.headers,
        body: Buffer.concat(chunks).toString("utf8"),
      });
      const answer = answers.shift() ?? 200;
      if (answer === "hang") {
        hanging.push(res);
        return;
      }
      if (answer === 429) res.setHeader("retry-after", "0");
      res.statusCode = answer;
      res.end(answer < 300 ? "ok" : answer === 404 ? "no_service" : "server_error");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const origin = `http://127.0.0.1:${String(port)}`;
  return {
    url: `${origin}/services/${TOKEN}?token=${TOKEN}`,
    origin,
    received,
    answers,
    close: () =>
      new Promise<void>((resolve) => {
        for (const res of hanging) res.destroy();
        server.closeAllConnections();
        server.close(() => {
          resolve();
        });
      }),
  };
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve, reject) => {
    server.close((error) => {
      if (error) reject(error);
      else resolve();
    });
  });
  return port;
}

// ── deps ─────────────────────────────────────────────────────────────────────────────────────

let lines: string[];
let waits: number[];

function capture(): Logger {
  return createLogger({
    level: "info",
    destination: new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(chunk.toString("utf8"));
        done();
      },
    }),
  });
}

function deps(overrides: Partial<AlertChannelDeps> = {}): AlertChannelDeps {
  return {
    secrets: { env: { ALERT_WEBHOOK_URL: undefined, SMTP_PASSWORD } },
    logger: capture(),
    now: () => new Date(AT),
    sleep: async (ms) => {
      waits.push(ms);
    },
    // smtp-server's built-in certificate is self-signed (and expired): STARTTLS happens, unverified.
    smtpTls: { rejectUnauthorized: false },
    ...overrides,
  };
}

const warnings = (): { msg: string; channel: string; target: string; code: string }[] =>
  lines
    .map(
      (l) => JSON.parse(l) as { level: number; msg: string; channel: string; target: string; code: string },
    )
    .filter((l) => l.level === 40);

let receiver: Receiver;
beforeEach(async () => {
  lines = [];
  waits = [];
  receiver = await startReceiver();
});
afterEach(async () => {
  await receiver.close();
});

// ── webhook ──────────────────────────────────────────────────────────────────────────────────

describe("the webhook channel", () => {
  it("POSTs JSON with a one-line text for Slack and Teams and the structured alert", async () => {
    const notifications = NotificationsSchema.parse({ webhook_urls: [receiver.url] });
    const deliveries = await alertNotifier(notifications, deps()).send(BROKEN);

    expect(deliveries).toEqual([{ channel: "webhook", target: receiver.origin, ok: true, attempts: 1 }]);
    expect(receiver.received).toHaveLength(1);
    const req = receiver.received[0]!;
    expect(req.method).toBe("POST");
    expect(req.url).toBe(`/services/${TOKEN}?token=${TOKEN}`);
    expect(req.headers["content-type"]).toBe("application/json");
    const body = JSON.parse(req.body) as unknown;
    expect(body).toEqual({
      text: "Concord: connection cc-main is broken — auth_invalid: The refresh token was revoked. Renew the connection's credentials; queued work waits and resumes then.",
      concord_alert: BROKEN,
    });
    expect(body).toEqual(alertWebhookBody(BROKEN));
    expect(warnings()).toEqual([]);
  });

  it("sends a vendor's answer quoted in the message as a log line would show it: no token, key or address", async () => {
    const notifications = NotificationsSchema.parse({ webhook_urls: [receiver.url] });
    const quoted: typeof BROKEN = {
      ...BROKEN,
      status: "warning",
      code: "vendor_outage",
      message:
        "cc-main has failed (vendor_unavailable: GET /v3/contacts answered 502: <p>upstream sent Authorization: bearer abc.def.ghi for ada.lovelace@example.org to /hook?webhookKey=s3cr3t</p>)",
    };
    await alertNotifier(notifications, deps()).send(quoted);
    const body = receiver.received[0]!.body;
    for (const leak of ["abc.def.ghi", "ada.lovelace@", "s3cr3t"]) expect(body).not.toContain(leak);
    expect(body).toContain("answered 502");
  });

  it.each([
    ["a 500", 500],
    ["a 503", 503],
    ["a 429 with Retry-After: 0", 429],
  ])("retries %s, then delivers", async (_name, status) => {
    receiver.answers.push(status);
    const notifications = NotificationsSchema.parse({ webhook_urls: [receiver.url] });
    const [delivery] = await alertNotifier(notifications, deps()).send(RECOVERED);

    expect(delivery).toEqual({ channel: "webhook", target: receiver.origin, ok: true, attempts: 2 });
    expect(receiver.received).toHaveLength(2);
    expect(receiver.received[0]!.body).toBe(receiver.received[1]!.body);
    expect(JSON.parse(receiver.received[1]!.body)).toMatchObject({
      text: "Concord: connection cc-main works again — credentials accepted again.",
    });
    expect(waits).toHaveLength(1);
    expect(waits[0]).toBeGreaterThan(0);
  });

  it("gives up after the attempts on 5xx, as unavailable", async () => {
    receiver.answers.push(500, 502, 503, 504);
    const notifications = NotificationsSchema.parse({ webhook_urls: [receiver.url] });
    const [delivery] = await alertNotifier(notifications, deps()).send(BROKEN);

    expect(delivery).toMatchObject({
      ok: false,
      attempts: 3,
      error: { code: "delivery_unavailable", message: "HTTP 503: server_error (after 3 attempts)" },
    });
    expect(receiver.received).toHaveLength(3);
    expect(waits).toEqual([500, 1000]);
  });

  it("does not retry a 404, reports it and logs a warning without the URL's path or query", async () => {
    receiver.answers.push(404);
    const notifications = NotificationsSchema.parse({ webhook_urls: [receiver.url] });
    const [delivery] = await alertNotifier(notifications, deps()).send(BROKEN);

    expect(delivery).toEqual({
      channel: "webhook",
      target: receiver.origin,
      ok: false,
      attempts: 1,
      error: { code: "delivery_rejected", message: "HTTP 404: no_service" },
    });
    expect(receiver.received).toHaveLength(1);
    expect(waits).toEqual([]);
    expect(warnings()).toEqual([
      expect.objectContaining({
        channel: "webhook",
        target: receiver.origin,
        code: "delivery_rejected",
        msg: `alert for cc-main not sent by webhook to ${receiver.origin}: HTTP 404: no_service`,
      }),
    ]);
    expect(lines.join("")).not.toContain("zSecretWebhookToken42");
    expect(lines.join("")).not.toContain("/services");
  });

  it("gives up on a receiver that never answers after the timeout, on every attempt", async () => {
    receiver.answers.push("hang", "hang");
    const notifications = NotificationsSchema.parse({ webhook_urls: [receiver.url] });
    const [delivery] = await alertNotifier(notifications, deps({ timeoutMs: 100, attempts: 2 })).send(BROKEN);

    expect(delivery).toMatchObject({
      ok: false,
      attempts: 2,
      error: { code: "delivery_unavailable", message: "no answer within 100 ms (after 2 attempts)" },
    });
    expect(receiver.received).toHaveLength(2);
    expect(lines.join("")).not.toContain("zSecretWebhookToken42");
  });

  it("reports a network error without the URL", async () => {
    const url = `http://127.0.0.1:${String(await closedPort())}/hook/${TOKEN}`;
    const notifications = NotificationsSchema.parse({ webhook_urls: [url] });
    const [delivery] = await alertNotifier(notifications, deps()).send(BROKEN);

    expect(delivery).toMatchObject({
      ok: false,
      attempts: 3,
      error: { code: "delivery_unavailable", message: "network error: ECONNREFUSED (after 3 attempts)" },
    });
    expect(lines.join("")).not.toContain("zSecretWebhookToken42");
  });

  it("resolves a URL referenced as { env } from the given environment, and reports a missing one", async () => {
    const notifications = NotificationsSchema.parse({ webhook_urls: [{ env: "ALERT_WEBHOOK_URL" }] });
    const found = await alertNotifier(
      notifications,
      deps({ secrets: { env: { ALERT_WEBHOOK_URL: receiver.url } } }),
    ).send(BROKEN);
    expect(found).toEqual([
      { channel: "webhook", target: `${receiver.origin} (env:ALERT_WEBHOOK_URL)`, ok: true, attempts: 1 },
    ]);
    expect(receiver.received).toHaveLength(1);

    const missing = await alertNotifier(notifications, deps({ secrets: { env: {} } })).send(BROKEN);
    expect(missing).toEqual([
      {
        channel: "webhook",
        target: "env:ALERT_WEBHOOK_URL",
        ok: false,
        attempts: 0,
        error: {
          code: "secret_env_missing",
          message: expect.stringContaining("environment variable ALERT_WEBHOOK_URL is not set") as string,
        },
      },
    ]);
    expect(receiver.received).toHaveLength(1);
    expect(warnings()).toEqual([
      expect.objectContaining({
        channel: "webhook",
        target: "env:ALERT_WEBHOOK_URL",
        code: "secret_env_missing",
      }),
    ]);

    const notUrl = await alertNotifier(
      notifications,
      deps({ secrets: { env: { ALERT_WEBHOOK_URL: "ftp://files.example.org/x" } } }),
    ).send(BROKEN);
    expect(notUrl[0]).toMatchObject({ ok: false, error: { code: "channel_misconfigured" } });
  });
});

// ── email ────────────────────────────────────────────────────────────────────────────────────

describe("the email channel", () => {
  let smtp: SmtpReceiver;
  afterEach(async () => {
    await smtp.close();
  });

  const emailConfig = (port: number, password: unknown = { env: "SMTP_PASSWORD" }) =>
    NotificationsSchema.parse({
      email: {
        host: "127.0.0.1",
        port,
        username: SMTP_USER,
        password,
        from: "concord@example.org",
        to: ["ops@example.org", "oncall@example.org"],
      },
    });

  it("sends over STARTTLS, authenticated with the password from an { env } reference", async () => {
    smtp = await startSmtp();
    const deliveries = await alertNotifier(emailConfig(smtp.port), deps()).send(BROKEN);

    expect(deliveries).toEqual([
      { channel: "email", target: `smtp://127.0.0.1:${String(smtp.port)}`, ok: true, attempts: 1 },
    ]);
    expect(smtp.mails).toHaveLength(1);
    const mail = smtp.mails[0]!;
    expect(mail.secure).toBe(true);
    expect(mail.user).toBe(SMTP_USER);
    expect(mail.from).toBe("concord@example.org");
    expect(mail.to).toEqual(["ops@example.org", "oncall@example.org"]);
    expect(mail.headers["from"]).toBe("concord@example.org");
    expect(mail.headers["to"]).toBe("ops@example.org, oncall@example.org");
    expect(mail.headers["subject"]).toBe("[Concord] cc-main is broken");
    expect(mail.headers["content-type"]).toMatch(/^text\/plain/);
    expect(new Date(mail.headers["date"] ?? "").toISOString()).toBe(AT);
    expect(mail.body).toContain(`Connection cc-main is broken (auth_invalid) since ${AT}.`);
    expect(mail.body).toContain("Why: auth_invalid: The refresh token was revoked.");
    expect(mail.body).toContain("What to do: renew the connection's credentials.");
    expect(mail.body.trimEnd()).toBe(alertEmail(BROKEN).text.trimEnd());
    expect(mail.raw).not.toContain(SMTP_PASSWORD);
  });

  it("says when the connection works again", async () => {
    smtp = await startSmtp();
    const [delivery] = await alertNotifier(emailConfig(smtp.port), deps()).send(RECOVERED);
    expect(delivery?.ok).toBe(true);
    expect(smtp.mails[0]!.headers["subject"]).toBe("[Concord] cc-main works again");
    expect(smtp.mails[0]!.body).toContain("What to do: nothing.");
  });

  it("refuses a server without STARTTLS: nothing sent, not even the password", async () => {
    smtp = await startSmtp({ starttls: false });
    const [delivery] = await alertNotifier(emailConfig(smtp.port), deps()).send(BROKEN);

    expect(delivery).toMatchObject({
      channel: "email",
      ok: false,
      attempts: 1,
      error: { code: "delivery_rejected", message: expect.stringContaining("STARTTLS") as string },
    });
    expect(smtp.mails).toEqual([]);
    expect(smtp.authAttempts).toBe(0);
  });

  it("reports refused authentication without retrying and never logs the password", async () => {
    smtp = await startSmtp();
    const [delivery] = await alertNotifier(
      emailConfig(smtp.port),
      deps({ secrets: { env: { SMTP_PASSWORD: "wrong-password-123" } } }),
    ).send(BROKEN);

    expect(delivery).toMatchObject({ ok: false, attempts: 1, error: { code: "delivery_rejected" } });
    expect(smtp.authAttempts).toBe(1);
    expect(smtp.mails).toEqual([]);
    expect(warnings()).toHaveLength(1);
    expect(lines.join("")).not.toContain("wrong-password-123");
  });

  it("reports a password reference that does not resolve", async () => {
    smtp = await startSmtp();
    const [delivery] = await alertNotifier(emailConfig(smtp.port, { env: "NO_SUCH_VAR" }), deps()).send(
      BROKEN,
    );
    expect(delivery).toMatchObject({
      channel: "email",
      ok: false,
      attempts: 0,
      error: { code: "secret_env_missing", message: expect.stringContaining("NO_SUCH_VAR") as string },
    });
    expect(smtp.mails).toEqual([]);
  });
});

// ── channels together ────────────────────────────────────────────────────────────────────────

describe("every channel", () => {
  it("still delivers the webhook when the SMTP server is down", async () => {
    const port = await closedPort();
    const notifications = NotificationsSchema.parse({
      webhook_urls: [receiver.url],
      email: { host: "127.0.0.1", port, from: "concord@example.org", to: ["ops@example.org"] },
    });
    const notifier = alertNotifier(notifications, deps());
    const deliveries = await notifier.send(BROKEN);

    expect(deliveries).toEqual([
      { channel: "webhook", target: receiver.origin, ok: true, attempts: 1 },
      {
        channel: "email",
        target: `smtp://127.0.0.1:${String(port)}`,
        ok: false,
        attempts: 3,
        error: { code: "delivery_unavailable", message: expect.stringContaining("ECONNREFUSED") as string },
      },
    ]);
    expect(receiver.received).toHaveLength(1);
    expect(warnings()).toEqual([expect.objectContaining({ channel: "email", code: "delivery_unavailable" })]);
    await expect(notifier.notify(BROKEN)).resolves.toBeUndefined();
  });
});

describeOnBackends("alerts from the connection health tracker", (backend) => {
  it("alerts the webhook once for two auth failures, then says it works again", async () => {
    const testStore = await backend.create();
    const store = testStore.store;
    try {
      const logger = capture();
      const notifications = NotificationsSchema.parse({ webhook_urls: [receiver.url] });
      const health = connectionHealthTracker({
        store,
        logger,
        now: () => new Date(AT),
        notify: alertNotifier(notifications, deps({ logger })).notify,
      });
      const revoked = { code: "auth_invalid" as const, message: "The refresh token was revoked." };
      await health.succeeded("cc-main");
      await health.authFailed("cc-main", revoked);
      await health.authFailed("cc-main", revoked);
      await health.delivered(); // alerts go out in the background
      expect(receiver.received).toHaveLength(1);
      expect(JSON.parse(receiver.received[0]!.body)).toEqual({
        text: "Concord: connection cc-main is broken — auth_invalid: The refresh token was revoked. Renew the connection's credentials; queued work waits and resumes then.",
        concord_alert: {
          connection_id: "cc-main",
          status: "broken",
          code: "auth_invalid",
          message:
            "auth_invalid: The refresh token was revoked. Renew the connection's credentials; queued work waits and resumes then.",
          at: AT,
        },
      });

      await health.succeeded("cc-main");
      await health.succeeded("cc-main");
      await health.delivered();
      expect(receiver.received).toHaveLength(2);
      expect(JSON.parse(receiver.received[1]!.body)).toMatchObject({
        text: "Concord: connection cc-main works again — credentials accepted again.",
        concord_alert: { status: "ok", code: "recovered" },
      });
      expect((await store.health.get("cc-main"))?.status).toBe("ok");
    } finally {
      await testStore.cleanup();
    }
  });
});
