/**
 * Integration tests of the emulated SKY Webhook API against a real local receiver: the validation
 * handshake, CloudEvents delivery, retries, duplicates, reordering and background delivery.
 */
import { afterEach, describe, expect, it } from "vitest";
import {
  startHarness,
  startReceiver,
  type Harness,
  type Receiver,
} from "../../../../test/support/connectors/blackbaud-renxt-emulator";

let h: Harness;
let rx: Receiver;
afterEach(async () => {
  await h.close();
  await rx.close();
});

async function setup(
  webhooks: Record<string, unknown> = {},
  eventType = "com.blackbaud.constituent.change.v1",
) {
  h = await startHarness({ webhooks: { autoDeliver: false, ...webhooks }, environmentId: "p-testEnv" });
  rx = await startReceiver();
  const sub = await h.call("POST", "/webhook/v1/subscriptions", {
    webhook_url: rx.url,
    event_type: eventType,
  });
  expect(sub.status).toBe(200);
  return sub.body.id as string;
}

const seedTwo = async () =>
  (
    await h.control("POST", "/__emulator/seed", {
      constituents: [
        { type: "Individual", last: "One", email: { address: "one@example.org", type: "Email" } },
        { type: "Individual", last: "Two" },
      ],
    })
  ).body.constituents.map((c: any) => c.id) as string[];

describe("subscription handshake", () => {
  it.each([
    ["ok", "Provisioned"],
    ["no-header", "Error"],
    ["500", "Error"],
  ] as const)("a receiver answering the OPTIONS handshake with %s ends %s", async (mode, state) => {
    h = await startHarness({ webhooks: { autoDeliver: false } });
    rx = await startReceiver();
    rx.handshake = mode;
    const { id } = (
      await h.call("POST", "/webhook/v1/subscriptions", {
        webhook_url: rx.url,
        event_type: "com.blackbaud.constituent.change.v1",
      })
    ).body;
    expect((await h.call("GET", `/webhook/v1/subscriptions/${id}`)).body.state).toBe("Provisioning");
    const flushed = (await h.control("POST", "/__emulator/webhooks/flush")).body;
    expect(flushed.handshakes).toEqual([{ subscription_id: id, state }]);
    const options = rx.received.find((r) => r.method === "OPTIONS")!;
    expect(options.headers["webhook-request-origin"]).toBe("eventgrid.azure.net");
    const listed = (await h.call("GET", "/webhook/v1/subscriptions")).body.value[0];
    expect(listed).toMatchObject({ id, state, event_type: "com.blackbaud.constituent.change.v1" });
    // The secret in the query string is not echoed back.
    expect(listed.webhook_url).not.toContain("webhookKey");
  });

  it.each([
    [{ webhook_url: "not a url", event_type: "com.blackbaud.constituent.change.v1" }],
    [{ webhook_url: "http://127.0.0.1:1/x", event_type: "com.blackbaud.constituent.sneeze.v1" }],
  ])("rejects %j with Problem Details", async (body) => {
    h = await startHarness();
    rx = await startReceiver();
    const res = await h.call("POST", "/webhook/v1/subscriptions", body);
    expect(res.status).toBe(400);
    expect(res.headers.get("content-type")).toMatch(/application\/problem\+json/);
    expect(res.body).toMatchObject({ status: 400, title: expect.any(String), detail: expect.any(String) });
  });
});

describe("delivery", () => {
  it("delivers a CloudEvents 1.0 POST with Blackbaud's headers for a constituent change", async () => {
    await setup();
    const [a] = await seedTwo();
    await h.control("POST", "/__emulator/webhooks/flush");
    await h.call("PATCH", `/constituent/v1/constituents/${a}`, { first: "Changed" });
    const report = (await h.control("POST", "/__emulator/webhooks/flush")).body;
    expect(report.attempts).toHaveLength(1);
    expect(report.attempts[0]).toMatchObject({ outcome: "delivered", status: 200, aeg_delivery_count: 0 });
    const [post] = rx.posts();
    expect(post!.url).toBe("/bb/handler?webhookKey=s3cret");
    expect(post!.headers["content-type"]).toBe("application/cloudevents+json; charset=utf-8");
    expect(post!.headers.origin).toBe("eventgrid.azure.net");
    expect(post!.headers["aeg-delivery-count"]).toBe("0");
    expect(post!.body).toEqual({
      type: "com.blackbaud.constituent.change.v1",
      specversion: "1.0",
      source: expect.any(String),
      subject: "/environments/p-testEnv",
      id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      time: "2026-03-02T12:00:00.000Z",
      data: { id: a, last_changed_by_id: expect.any(String) },
    });
  });

  it("raises emailaddress events with the email and constituent ids, from the admin act route too", async () => {
    await setup({}, "com.blackbaud.constituent.emailaddress.change.v1");
    const [a] = await seedTwo();
    await h.control("POST", "/__emulator/webhooks/flush");
    await h.control("POST", "/__emulator/act", {
      as: "admin",
      action: "set_do_not_email",
      constituent_id: a,
    });
    await h.control("POST", "/__emulator/webhooks/flush");
    const emailId = (await h.call("GET", `/constituent/v1/constituents/${a}`)).body.email.id;
    expect(rx.posts().map((p) => p.body.data)).toEqual([{ id: emailId, constituent_id: a }]);
  });

  it("retries non-2xx answers, counting in aeg-delivery-count, and gives up after 10 attempts", async () => {
    await setup();
    const [a, b] = await seedTwo();
    await h.control("POST", "/__emulator/webhooks/flush");
    rx.script = [500, 503, 200];
    await h.call("PATCH", `/constituent/v1/constituents/${a}`, { first: "x" });
    const outcomes: string[] = [];
    for (let i = 0; i < 3; i += 1) {
      const r = (await h.control("POST", "/__emulator/webhooks/flush")).body;
      outcomes.push(...r.attempts.map((x: any) => `${x.outcome}:${x.status}`));
    }
    expect(outcomes).toEqual(["failed:500", "failed:503", "delivered:200"]);
    expect(rx.posts().map((p) => p.headers["aeg-delivery-count"])).toEqual(["0", "1", "2"]);
    expect(new Set(rx.posts().map((p) => p.body.id)).size).toBe(1);

    rx.script = Array.from({ length: 12 }, () => 500);
    await h.call("PATCH", `/constituent/v1/constituents/${b}`, { first: "y" });
    for (let i = 0; i < 12; i += 1) await h.control("POST", "/__emulator/webhooks/flush");
    const deliveries = (await h.control("GET", "/__emulator/webhooks")).body.deliveries;
    const dead = deliveries.find((d: any) => d.event.data.id === b);
    expect(dead.status).toBe("dead");
    expect(dead.attempts).toHaveLength(10);
  });

  it("treats a timeout as a failure", async () => {
    await setup({ timeoutMs: 50 });
    const [a] = await seedTwo();
    await h.control("POST", "/__emulator/webhooks/flush");
    await rx.close();
    rx = await startReceiver();
    // Point the subscription at a port that accepts nothing: the attempt fails without waiting long.
    const sub = (await h.control("GET", "/__emulator/webhooks")).body.subscriptions[0];
    h.emu.webhooks.subscriptions.get(sub.id)!.webhook_url = "http://127.0.0.1:9/unreachable";
    await h.call("PATCH", `/constituent/v1/constituents/${a}`, { first: "t" });
    const r = (await h.control("POST", "/__emulator/webhooks/flush")).body;
    expect(r.attempts[0]).toMatchObject({ outcome: "failed", error: expect.any(String) });
    expect(r.pending).toBe(1);
  });

  it("delivers each event twice when duplicate is on", async () => {
    await setup({ duplicate: true });
    const [a] = await seedTwo();
    await h.control("POST", "/__emulator/webhooks/flush");
    await h.call("PATCH", `/constituent/v1/constituents/${a}`, { first: "d" });
    const r = (await h.control("POST", "/__emulator/webhooks/flush")).body;
    expect(r.attempts.map((x: any) => x.duplicate === true)).toEqual([false, true]);
    const posts = rx.posts();
    expect(posts).toHaveLength(2);
    expect(posts[0]!.body.id).toBe(posts[1]!.body.id);
    expect(posts.map((p) => p.headers["aeg-delivery-count"])).toEqual(["0", "1"]);
  });

  it("delivers a batch out of order when reorder is on", async () => {
    await setup({ reorder: true });
    const [a, b] = await seedTwo();
    await h.control("POST", "/__emulator/webhooks/flush");
    await h.call("PATCH", `/constituent/v1/constituents/${a}`, { first: "first" });
    h.clock.advance(1000);
    await h.call("PATCH", `/constituent/v1/constituents/${b}`, { first: "second" });
    await h.control("POST", "/__emulator/webhooks/flush");
    expect(rx.posts().map((p) => p.body.data.id)).toEqual([b, a]);
    // The receiver can still put them back in order by time.
    const times = rx.posts().map((p) => p.body.time);
    expect(times[0] > times[1]!).toBe(true);
  });

  it("sends the test payload synchronously", async () => {
    const id = await setup();
    await h.control("POST", "/__emulator/webhooks/flush");
    const res = await h.call("POST", `/webhook/v1/subscriptions/${id}/testpayload`);
    expect(res.status).toBe(200);
    expect(rx.posts()[0]!.body.type).toBe("com.blackbaud.utility.testpayload.v1");
  });

  it("delivers in the background when autoDeliver is on, retrying with compressed backoff", async () => {
    h = await startHarness({ webhooks: { autoDeliver: true, backoffScale: 0.0001 } });
    rx = await startReceiver();
    rx.script = [500];
    await h.call("POST", "/webhook/v1/subscriptions", {
      webhook_url: rx.url,
      event_type: "com.blackbaud.constituent.add.v1",
    });
    await h.emu.webhooks.idle();
    const created = await h.call("POST", "/constituent/v1/constituents", { type: "Individual", last: "Bg" });
    const posts = await rx.waitForPosts(2);
    expect(posts.map((p) => p.body.data.id)).toEqual([created.body.id, created.body.id]);
    expect(posts.map((p) => p.headers["aeg-delivery-count"])).toEqual(["0", "1"]);
  });

  it("deletes subscriptions when the application is disconnected", async () => {
    await setup();
    await h.control("POST", "/__emulator/webhooks/flush");
    const r = (await h.control("POST", "/__emulator/act", { as: "admin", action: "disconnect_application" }))
      .body;
    expect(r.deleted_subscriptions).toBe(1);
    expect((await h.call("GET", "/webhook/v1/subscriptions")).status).toBe(401);
  });
});
