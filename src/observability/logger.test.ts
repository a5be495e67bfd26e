import { Writable } from "node:stream";
import { describe, expect, it } from "vitest";
import { createLogger, redactEmail, redactLogLine } from "./logger";
import { capturingLogger as capture } from "../../test/support/capturing-logger";
import { REDACTED, isPersonalKey, isSecretKey, redactString, redactValue } from "./redact";

const BEARER = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJlLXZhbHVl";
const OPAQUE_BEARER = "AT.0aB1cD2eF3gH4iJ5kL6";
const REFRESH = "rt_9f8e7d6c5b4a39281706";
const EMAIL = "jane.doe@example.org";

describe("the logger", () => {
  it("masks addresses in any script, and cuts query strings and webhook keys out of URLs and paths", () => {
    const { logger, lines } = capture();
    logger.warn(
      {
        url: "/webhooks/re-nxt?webhookKey=s3cr3t-hook",
        next: "https://api.example.net/v3/contacts?cursor=abc&email=zoe%40example.org",
        webhookKey: "s3cr3t-hook",
        note: "webhook_key=s3cr3t-hook",
      },
      "mail from zoë.müller@exämple.de and 用户@例子.中国 to https://us1.api.mailchimp.com/x?key=mc-s3cr3t",
    );
    const line = lines[0] ?? "";
    for (const secret of ["s3cr3t-hook", "mc-s3cr3t", "zoë.müller", "用户@", "cursor=abc", "zoe%40"])
      expect(line).not.toContain(secret);
    const parsed = JSON.parse(line);
    expect(parsed.url).toBe(`/webhooks/re-nxt?${REDACTED}`);
    expect(parsed.next).toBe(`https://api.example.net/v3/contacts?${REDACTED}`);
    expect(parsed.msg).toContain("z***@exämple.de");
  });

  it("cuts a person's link or confirmation token out of a logged path", () => {
    const { logger, lines } = capture();
    logger.error(
      { url: "/l/c/AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefg" },
      "request failed at /l/u/djF8dXwwfDEyMw.sig_sig_sig",
    );
    const parsed = JSON.parse(lines[0] ?? "{}");
    expect(parsed.url).toBe(`/l/c/${REDACTED}`);
    expect(parsed.msg).toBe(`request failed at /l/u/${REDACTED}`);
  });

  it("cuts the password out of a database URL, keeping its user and host", () => {
    const { logger, lines } = capture();
    logger.error(
      { url: "postgres://concord:s3cret-pw@db.internal:5432/concord" },
      "store at postgresql://ops:hunter2@10.0.0.5/c failed",
    );
    const parsed = JSON.parse(lines[0] ?? "{}");
    expect(parsed.url).toBe(`postgres://concord:${REDACTED}@db.internal:5432/concord`);
    expect(parsed.msg).toBe(`store at postgresql://ops:${REDACTED}@10.0.0.5/c failed`);
    expect(lines[0]).not.toMatch(/s3cret-pw|hunter2/);
  });

  it("writes a line with a bearer token, a refresh token and an email that contains none of them", () => {
    const { logger, lines } = capture();
    logger.info(
      {
        headers: { Authorization: `Bearer ${OPAQUE_BEARER}`, "Bb-Api-Subscription-Key": "sub-key-123" },
        refresh_token: REFRESH,
        body: `grant_type=refresh_token&refresh_token=${REFRESH}&client_id=abc`,
        contact: { email_address: EMAIL, first_name: "Jane", last_name: "Doe" },
      },
      `refreshed token for ${EMAIL} with Authorization: Bearer ${BEARER}`,
    );
    expect(lines).toHaveLength(1);
    const line = lines[0]!;
    for (const secret of [BEARER, OPAQUE_BEARER, REFRESH, EMAIL, "sub-key-123", "Jane", "Doe"])
      expect(line).not.toContain(secret);
    const parsed = JSON.parse(line);
    expect(parsed.msg).toBe(`refreshed token for j***@example.org with Authorization: Bearer ${REDACTED}`);
    expect(parsed.headers).toEqual({ Authorization: REDACTED, "Bb-Api-Subscription-Key": REDACTED });
    expect(parsed.refresh_token).toBe(REDACTED);
    expect(parsed.body).toBe(`grant_type=refresh_token&refresh_token=${REDACTED}&client_id=abc`);
    expect(parsed.contact).toEqual({
      email_address: "j***@example.org",
      first_name: REDACTED,
      last_name: REDACTED,
    });
    expect(parsed.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  });

  it("redacts child bindings and errors, which bypass pino's formatters", () => {
    const { logger, lines } = capture();
    const child = logger.child({ access_token: REFRESH, person: EMAIL });
    const error = new Error(`auth failed for ${EMAIL}: refresh_token=${REFRESH}`);
    child.error(error);
    child.warn({ err: error }, "call failed");
    expect(lines).toHaveLength(2);
    for (const line of lines) for (const secret of [REFRESH, EMAIL]) expect(line).not.toContain(secret);
    const first = JSON.parse(lines[0]!);
    expect(first.access_token).toBe(REDACTED);
    expect(first.person).toBe("j***@example.org");
    expect(first.msg).toBe(`auth failed for j***@example.org: refresh_token=${REDACTED}`);
    expect(first.err.message).toBe(first.msg);
    expect(first.err.stack).toContain("auth failed for j***@example.org");
  });

  it("redacts printf-style arguments and respects the level", () => {
    const { logger, lines } = capture("info");
    logger.debug("hidden %s", EMAIL);
    logger.info("unsubscribed %s via %s", EMAIL, "one-click");
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!).msg).toBe("unsubscribed j***@example.org via one-click");
  });

  it("adds bindings to every line", () => {
    const lines: string[] = [];
    const destination = new Writable({
      write: (c: Buffer, _e, done) => {
        lines.push(c.toString());
        done();
      },
    });
    createLogger({ destination, bindings: { service: "concord", client_secret: "cs" } }).info("up");
    expect(JSON.parse(lines[0]!)).toMatchObject({ service: "concord", client_secret: REDACTED, msg: "up" });
  });
});

describe("redactEmail", () => {
  it.each([
    ["jane@example.org", "j***@example.org"],
    ["J.Doe+news@mail.example.co.uk", "J***@mail.example.co.uk"],
    ["write to a@b.io or bob@example.org", "write to a***@b.io or b***@example.org"],
    ["GET /contacts?email=jane%40example.org", "GET /contacts?email=j***%40example.org"],
    ["j***@example.org", "j***@example.org"],
    ["no address here @ all", "no address here @ all"],
    ["version 1.2.3@beta", "version 1.2.3@beta"],
    // RFC 5322 allows more in a local part than letters and dots: all of it is masked.
    ["o'brien.jane@example.org", "o***@example.org"],
    ["jane.doe&smith@example.org", "j***@example.org"],
    ["{team}!~news@example.org", "{***@example.org"],
  ])("%s → %s", (input, output) => {
    expect(redactEmail(input)).toBe(output);
  });
});

describe("redactString", () => {
  it.each([
    [`Authorization: Bearer ${OPAQUE_BEARER}`, `Authorization: Bearer ${REDACTED}`],
    [`authorization=Basic dXNlcjpwYXNz`, `authorization=Basic ${REDACTED}`],
    [`token ${BEARER} expired`, `token ${REDACTED} expired`],
    [
      `{"access_token":"${REFRESH}","token_type":"Bearer","expires_in":86400}`,
      `{"access_token":"${REDACTED}","token_type":"Bearer","expires_in":86400}`,
    ],
    [
      `client_secret=abc&code_verifier=xyz&client_id=public`,
      `client_secret=${REDACTED}&code_verifier=${REDACTED}&client_id=public`,
    ],
    [`x-api-key: k-123`, `x-api-key: ${REDACTED}`],
    [`token_url=https://authz.example.org/token`, `token_url=https://authz.example.org/token`],
    [`synced 40 contacts`, `synced 40 contacts`],
    [`redis://:s3cret@cache:6379`, `redis://:${REDACTED}@cache:6379`],
    [`postgres://:pw@db:5432/concord`, `postgres://:${REDACTED}@db:5432/concord`],
    // The schemes Concord's own connectors send, in the case a header dump may give them.
    [`authorization: bearer ${OPAQUE_BEARER}`, `authorization: bearer ${REDACTED}`],
    [`Authorization: ApiKey 5f3c2a1b-dead-beef`, `Authorization: ApiKey ${REDACTED}`],
    [`authorization: Token token="kindfulsecret123"`, `authorization: Token ${REDACTED}`],
    [`token="kindfulsecret123" sent`, `token="${REDACTED}" sent`],
    [`the refresh token of cc-main could not be saved`, `the refresh token of cc-main could not be saved`],
  ])("%s → %s", (input, output) => {
    expect(redactString(input)).toBe(output);
  });
});

describe("keys", () => {
  it.each([
    ["access_token", true],
    ["refreshToken", true],
    ["client_secret", true],
    ["password", true],
    ["CONCORD_ADMIN_PASSWORD", true],
    ["Authorization", true],
    ["Bb-Api-Subscription-Key", true],
    ["x-api-key", true],
    ["apiKey", true],
    ["cookie", true],
    ["credentials", true],
    ["token_url", false],
    ["token_type", false],
    ["expires_in", false],
    ["secret_key_id", false],
    ["topic_key", false],
    ["key", false],
    ["author", false],
    ["oauth_state", false],
  ])("%s is secret: %s", (key, secret) => {
    expect(isSecretKey(key)).toBe(secret);
  });

  it.each([
    ["first_name", true],
    ["firstName", true],
    ["last", true],
    ["FNAME", true],
    ["preferred_name", true],
    ["phone_number", true],
    ["name", false],
    ["list_name", false],
  ])("%s is personal: %s", (key, personal) => {
    expect(isPersonalKey(key)).toBe(personal);
  });
});

describe("redactValue", () => {
  it("copies without mutating, and survives cycles, depth, buffers and dates", () => {
    const input: Record<string, unknown> = {
      password: "p",
      nested: { email: EMAIL },
      when: new Date(0),
      raw: Buffer.from("abc"),
      n: 10n,
    };
    input["self"] = input;
    const out = redactValue(input) as Record<string, unknown>;
    expect(input["password"]).toBe("p");
    expect(out).toEqual({
      password: REDACTED,
      nested: { email: "j***@example.org" },
      when: "1970-01-01T00:00:00.000Z",
      raw: "[3 bytes]",
      n: "10",
      self: "[circular]",
    });
    let deep: Record<string, unknown> = { leaf: true };
    for (let i = 0; i < 20; i++) deep = { d: deep };
    expect(JSON.stringify(redactValue(deep))).toContain("[too deep]");
  });

  it("leaves non-personal names and ids alone", () => {
    expect(
      redactValue({ list: { name: "Newsletter", id: "l1" }, connection: "cc-main", first_name: "" }),
    ).toEqual({
      list: { name: "Newsletter", id: "l1" },
      connection: "cc-main",
      first_name: "",
    });
  });
});

describe("redactLogLine", () => {
  it("falls back to text redaction for lines that are not JSON", () => {
    expect(redactLogLine(`plain ${EMAIL} refresh_token=${REFRESH}\n`)).toBe(
      `plain j***@example.org refresh_token=${REDACTED}\n`,
    );
  });
});
