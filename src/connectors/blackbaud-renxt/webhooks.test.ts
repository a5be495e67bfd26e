import { describe, expect, it } from "vitest";
import type { WebhookRequest } from "../connector";
import { handleBlackbaudWebhook, secretMatches, subscriptionUrl } from "./webhooks";

const SECRET = "cILU*(em43sP%$(9d(8PX";
const event = (over: Record<string, unknown> = {}) => ({
  type: "com.blackbaud.constituent.change.v1",
  specversion: "1.0",
  source: "OAWVIVCLINWGMTCQJN",
  subject: "/environments/p-env",
  id: "575bca1a-7250-418e-a6ee-2472be4fd06c",
  time: "2020-04-22T23:39:33.6337487Z",
  data: { id: "7203" },
  ...over,
});
const post = (body: unknown, key: string | null = SECRET): WebhookRequest => ({
  method: "POST",
  headers: { "content-type": "application/cloudevents+json; charset=utf-8", origin: "eventgrid.azure.net" },
  query: key === null ? {} : { webhookKey: key },
  raw_body: typeof body === "string" ? body : JSON.stringify(body),
});

describe("handshake", () => {
  it("answers the abuse-protection OPTIONS with the allowed origin", () => {
    const h = handleBlackbaudWebhook(
      {
        method: "OPTIONS",
        headers: { "WebHook-Request-Origin": "eventgrid.azure.net" },
        query: { webhookKey: SECRET },
        raw_body: "",
      },
      SECRET,
    );
    expect(h).toMatchObject({
      kind: "handshake",
      status: 200,
      headers: { "WebHook-Allowed-Origin": "eventgrid.azure.net" },
    });
  });
  it("refuses a handshake with the wrong key, so a misconfigured subscription never provisions", () => {
    const h = handleBlackbaudWebhook(
      {
        method: "OPTIONS",
        headers: { "webhook-request-origin": "eventgrid.azure.net" },
        query: { webhookKey: "nope" },
        raw_body: "",
      },
      SECRET,
    );
    expect(h).toMatchObject({ kind: "rejected", status: 401, code: "webhook_unverified" });
  });
});

describe("deliveries", () => {
  it.each([
    ["missing key", null],
    ["wrong key", "guess"],
    ["empty key", ""],
  ])("rejects a %s with 401", (_n, key) => {
    expect(handleBlackbaudWebhook(post(event(), key), SECRET)).toMatchObject({
      kind: "rejected",
      status: 401,
      code: "webhook_unverified",
    });
  });
  it("rejects everything when no secret is configured", () => {
    expect(handleBlackbaudWebhook(post(event(), ""), "")).toMatchObject({ code: "webhook_unverified" });
  });
  it.each([
    ["not JSON", "{nope", /not JSON/],
    ["not CloudEvents", { hello: 1 }, /CloudEvents 1\.0/],
    ["wrong specversion", event({ specversion: "0.3" }), /specversion/],
    [
      "email event without constituent",
      event({ type: "com.blackbaud.constituent.emailaddress.change.v1", data: { id: "9" } }),
      /constituent_id/,
    ],
    ["bad time", event({ time: "soon" }), /invalid time/],
  ])("rejects %s with 400 and a clear message", (_n, body, message) => {
    const h = handleBlackbaudWebhook(post(body), SECRET);
    expect(h).toMatchObject({ kind: "rejected", status: 400, code: "webhook_invalid" });
    if (h.kind === "rejected") expect(h.message).toMatch(message);
  });
  it("parses constituent, email and delete events (single and batched)", () => {
    const h = handleBlackbaudWebhook(
      post([
        event(),
        event({
          id: "e2",
          type: "com.blackbaud.constituent.emailaddress.change.v1",
          data: { id: "55", constituent_id: "7203" },
        }),
        event({ id: "e3", type: "com.blackbaud.constituent.delete.v1", data: { id: "8" } }),
        event({ id: "e4", type: "com.blackbaud.gift.add.v1", data: { id: "1" } }),
      ]),
      SECRET,
    );
    expect(h.kind).toBe("events");
    if (h.kind === "events")
      expect(h.changes.map((c) => [c.event_id, c.external_id, c.change, c.occurred_at])).toEqual([
        ["575bca1a-7250-418e-a6ee-2472be4fd06c", "7203", "changed", "2020-04-22T23:39:33.633Z"],
        ["e2", "7203", "email_changed", "2020-04-22T23:39:33.633Z"],
        ["e3", "8", "deleted", "2020-04-22T23:39:33.633Z"],
      ]);
  });
  it("keeps a batch's readable events when one of them cannot be read, saying which and why", () => {
    const h = handleBlackbaudWebhook(
      post([
        { hello: 1 },
        event({
          id: "e2",
          type: "com.blackbaud.constituent.solicitcode.add.v1",
          data: { id: "70", constituent_id: "7203" },
        }),
        event({ id: "e3", time: "soon" }),
      ]),
      SECRET,
    );
    expect(h).toMatchObject({ kind: "events", changes: [{ event_id: "e2", external_id: "7203" }] });
    if (h.kind === "events") {
      expect(h.changes).toHaveLength(1);
      expect(h.skipped).toEqual([
        expect.stringMatching(/^Event 0 is not a CloudEvents 1\.0 event/),
        "Event e3 has an invalid time: soon.",
      ]);
    }
  });
  it("rejects other methods", () => {
    expect(handleBlackbaudWebhook({ ...post(event()), method: "GET" }, SECRET)).toMatchObject({
      status: 405,
    });
  });
});

describe("helpers", () => {
  it("compares secrets in constant time whatever their length", () => {
    expect(secretMatches(SECRET, SECRET)).toBe(true);
    expect(secretMatches(`${SECRET}x`, SECRET)).toBe(false);
  });
  it("puts the secret in the documented webhookKey parameter", () => {
    expect(subscriptionUrl("https://concord.example.org/hooks/renxt/conn_1", "a b&c")).toBe(
      "https://concord.example.org/hooks/renxt/conn_1?webhookKey=a+b%26c",
    );
  });
});
