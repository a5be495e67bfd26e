import { createHash } from "node:crypto";
import { gunzipSync } from "node:zlib";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { describeWithSpecs, SPECS_DIR, specsPresent } from "../../../../test/support/official-specs";
import { loadOpenApiValidator, type OpenApiValidator } from "../../contract/openapi-validator";
import {
  DEFAULT_AUDIENCE,
  startMailchimpEmulator,
  type MailchimpEmulatorOptions,
  type StartedMailchimpEmulator,
} from "./mailchimp-emulator";

let specs: OpenApiValidator[] = [];
beforeAll(async () => {
  if (!specsPresent) return;
  specs = await Promise.all(
    [
      "mailchimp-list-id-api-openapi.yml",
      "mailchimp-lists-api-openapi.yml",
      "mailchimp-batches-api-openapi.yml",
    ].map((f) => loadOpenApiValidator(join(SPECS_DIR, "mailchimp", f))),
  );
});

const running: { close: () => Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((r) => r.close()));
});

const md5 = (s: string) => createHash("md5").update(s.toLowerCase()).digest("hex");
type Res = { status: number; body: any; headers: Headers };

/**
 * The definition types every timestamp as `date-time`, but Mailchimp answers "" for one it has not
 * got (a member never signed up by a form has `timestamp_signup: ""`; QUIRKS.md). Those errors, and
 * only for values that are empty, are the definition's and not the emulator's.
 */
function withoutEmptyTimestampErrata(result: { ok: boolean; errors?: string[] }, body: unknown) {
  if (result.ok) return result;
  const errors = (result.errors ?? []).filter((e) => {
    const m = /: (\/[^ ]*) must match format "date-time"$/.exec(e);
    if (!m) return true;
    const value = m[1]!
      .split("/")
      .slice(1)
      .reduce<unknown>((v, k) => (v as Record<string, unknown> | undefined)?.[k], body);
    return value !== "";
  });
  return errors.length === 0 ? { ok: true } : { ok: false, errors };
}

/** An emulator with one audience, a clock the test moves, and calls checked against the spec where present. */
async function setup(options: MailchimpEmulatorOptions = {}) {
  let clock = new Date("2026-03-02T12:00:00.000Z");
  const emulator: StartedMailchimpEmulator = await startMailchimpEmulator({ now: () => clock, ...options });
  running.push(emulator);
  const control = async (path: string, body: unknown = {}): Promise<any> => {
    const get = path === "state" || path === "requests";
    const res = await fetch(`${emulator.baseUrl}/__emulator/${path}`, {
      method: get ? "GET" : "POST",
      ...(get ? {} : { headers: { "content-type": "application/json" }, body: JSON.stringify(body) }),
    });
    return res.json();
  };
  const { api_key: key } = await control("token");
  const seeded = await control("seed", {
    audience: {
      id: DEFAULT_AUDIENCE.id,
      name: "Supporters",
      double_optin: true,
      interest_categories: [
        { title: "Topics", interests: [{ id: "int0000001", name: "Appeals" }, "Events"] },
      ],
      tags: ["Newsletter"],
    },
  });
  const raw = async (
    method: string,
    path: string,
    body?: unknown,
    init: { auth?: string | null } = {},
  ): Promise<Res> => {
    const headers: Record<string, string> = {};
    const auth =
      init.auth === undefined ? `Basic ${Buffer.from(`anystring:${key}`).toString("base64")}` : init.auth;
    if (auth !== null) headers.authorization = auth;
    if (body !== undefined) headers["content-type"] = "application/json";
    const res = await fetch(`${emulator.baseUrl}${path}`, {
      method,
      headers,
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, body: text === "" ? undefined : JSON.parse(text), headers: res.headers };
  };
  /** Calls the API; every answer (errors too) must match the official definition where present. */
  const api = async (method: string, path: string, body?: unknown, init: { auth?: string | null } = {}) => {
    const res = await raw(method, path, body, init);
    if (specs.length > 0) {
      const bare = path.split("?")[0]!;
      const spec = specs.find((s) => s.findOperation(method, bare) !== undefined);
      expect(spec, `${method} ${bare} is in the official definition`).toBeDefined();
      if (body !== undefined)
        expect(spec!.validateRequest({ method, path: bare, body })).toEqual({ ok: true });
      if (res.status !== 204 && res.status !== 429 && res.status !== 401)
        expect(
          withoutEmptyTimestampErrata(
            spec!.validateResponse({ method, path: bare, status: res.status, body: res.body }),
            res.body,
          ),
          `${method} ${path} → ${res.status} ${JSON.stringify(res.body).slice(0, 400)}`,
        ).toEqual({ ok: true });
    }
    return res;
  };
  return {
    emulator,
    key,
    api,
    raw,
    control,
    list: seeded.audience.id as string,
    interest: "int0000001",
    advance: (ms: number) => {
      clock = new Date(clock.getTime() + ms);
    },
  };
}

describe("Mailchimp emulator: auth and limits", () => {
  it("refuses a wrong key with a 401 problem document, and takes any user name with the key", async () => {
    const t = await setup();
    const wrong = await t.raw("GET", "/3.0/lists", undefined, {
      auth: `Basic ${Buffer.from("user:0123456789abcdef0123456789abcdef-us6").toString("base64")}`,
    });
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get("content-type")).toMatch(/application\/problem\+json/);
    expect(wrong.body).toMatchObject({ title: "API Key Invalid", status: 401 });
    expect(typeof wrong.body.instance).toBe("string");
    expect((await t.raw("GET", "/3.0/lists", undefined, { auth: null })).status).toBe(401);
    expect(t.key).toMatch(/^[0-9a-f]{32}-us6$/);
    const ok = await t.api("GET", "/3.0/lists");
    expect(ok.status).toBe(200);
    expect(ok.body.lists.map((l: any) => l.name)).toEqual(["Supporters"]); // the account's one audience, renamed by the seed
  });

  it("grants OAuth tokens that never expire, and tells the account's data centre from metadata", async () => {
    const t = await setup();
    const authorize = await fetch(
      `${t.emulator.baseUrl}/oauth2/authorize?response_type=code&client_id=app1&redirect_uri=${encodeURIComponent("http://127.0.0.1:9/cb")}`,
      { redirect: "manual" },
    );
    expect(authorize.status).toBe(302);
    const code = new URL(authorize.headers.get("location")!).searchParams.get("code")!;
    const token = await fetch(`${t.emulator.baseUrl}/oauth2/token`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        grant_type: "authorization_code",
        client_id: "app1",
        client_secret: "s",
        code,
        redirect_uri: "http://127.0.0.1:9/cb",
      }),
    }).then((r) => r.json() as Promise<any>);
    expect(token).toMatchObject({ expires_in: 0, scope: null });
    expect(token.refresh_token).toBeUndefined();
    const metadata = await fetch(`${t.emulator.baseUrl}/oauth2/metadata`, {
      headers: { authorization: `OAuth ${token.access_token}` },
    }).then((r) => r.json() as Promise<any>);
    expect(metadata).toMatchObject({ dc: "us6", accountname: expect.any(String) });
    t.advance(400 * 86_400_000);
    expect(
      (await t.api("GET", "/3.0/lists", undefined, { auth: `OAuth ${token.access_token}` })).status,
    ).toBe(200);
    expect(
      (await t.api("GET", "/3.0/lists", undefined, { auth: `Bearer ${token.access_token}` })).status,
    ).toBe(200);
  });

  it("answers 429 to the eleventh simultaneous connection of one key", async () => {
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let holding = true;
    const t = await setup({ hold: () => (holding ? released : Promise.resolve()) });
    const held = Array.from({ length: 10 }, () => t.raw("GET", "/3.0/ping"));
    // Wait until all ten hold a connection (the emulator counts them), never for a time.
    while (Object.values((await t.control("state")).connections_in_flight)[0] !== 10)
      await new Promise((resolve) => setImmediate(resolve));
    const refused = await t.raw("GET", "/3.0/ping");
    expect(refused.status).toBe(429);
    expect(refused.body).toMatchObject({
      title: "Too Many Requests",
      detail: expect.stringContaining("10 simultaneous"),
    });
    holding = false;
    release();
    expect((await Promise.all(held)).map((a) => a.status)).toEqual(Array(10).fill(200));
    expect((await t.raw("GET", "/3.0/ping")).status).toBe(200);
  });
});

describe("Mailchimp emulator: members and the compliance rules", () => {
  it("keys members by the MD5 of the lower-cased address, and finds them by address or contact id too", async () => {
    const t = await setup();
    const created = await t.api("POST", `/3.0/lists/${t.list}/members`, {
      email_address: "Ada.Lovelace@Example.org",
      status: "subscribed",
      merge_fields: { FNAME: "Ada", LNAME: "Lovelace" },
    });
    expect(created.status).toBe(200);
    expect(created.body.id).toBe(md5("ada.lovelace@example.org"));
    expect(created.body).toMatchObject({
      status: "subscribed",
      full_name: "Ada Lovelace",
      source: "API - Generic",
    });
    for (const key of [
      created.body.id,
      encodeURIComponent("ada.lovelace@example.org"),
      created.body.contact_id,
    ])
      expect((await t.api("GET", `/3.0/lists/${t.list}/members/${key}`)).body.id).toBe(created.body.id);
    const again = await t.api("POST", `/3.0/lists/${t.list}/members`, {
      email_address: "ada.lovelace@example.org",
      status: "subscribed",
    });
    expect(again.status).toBe(400);
    expect(again.body.title).toBe("Member Exists");
    const missing = await t.api("GET", `/3.0/lists/${t.list}/members/${md5("nobody@example.org")}`);
    expect(missing.status).toBe(404);
  });

  it("refuses to subscribe someone who unsubscribed or was reported as spam; pending sends the confirmation instead", async () => {
    const t = await setup();
    await t.api("POST", `/3.0/lists/${t.list}/members`, {
      email_address: "grace@example.org",
      status: "subscribed",
    });
    await t.control("act", {
      as: "contact",
      action: "unsubscribe",
      email: "grace@example.org",
      reason: "Too many emails",
    });
    const member = await t.api("GET", `/3.0/lists/${t.list}/members/${md5("grace@example.org")}`);
    expect(member.body).toMatchObject({ status: "unsubscribed", unsubscribe_reason: "Too many emails" });

    for (const method of ["PATCH", "PUT"] as const) {
      const refused = await t.api(method, `/3.0/lists/${t.list}/members/${md5("grace@example.org")}`, {
        email_address: "grace@example.org",
        status: "subscribed",
        ...(method === "PUT" ? { status_if_new: "subscribed" } : {}),
      });
      expect(refused.status).toBe(400);
      expect(refused.body.title).toBe("Member In Compliance State");
    }
    const pending = await t.api("PATCH", `/3.0/lists/${t.list}/members/${md5("grace@example.org")}`, {
      status: "pending",
    });
    expect(pending.body.status).toBe("pending");
    const state = await t.control("state");
    expect(state.confirmation_emails).toEqual([
      expect.objectContaining({ email: "grace@example.org", kind: "resubscribe" }),
    ]);
    await t.control("act", { as: "contact", action: "confirm", email: "grace@example.org" });
    expect((await t.api("GET", `/3.0/lists/${t.list}/members/${md5("grace@example.org")}`)).body.status).toBe(
      "subscribed",
    );

    await t.control("act", { as: "contact", action: "spam_complaint", email: "grace@example.org" });
    const reported = await t.api("GET", `/3.0/lists/${t.list}/members/${md5("grace@example.org")}`);
    expect(reported.body.status).toBe("unsubscribed");
    const noPending = await t.api("PATCH", `/3.0/lists/${t.list}/members/${md5("grace@example.org")}`, {
      status: "pending",
    });
    expect(noPending.body.title).toBe("Member In Compliance State");
  });

  it("archives on DELETE, forgets on delete-permanent, and refuses to import a forgotten address", async () => {
    const t = await setup();
    const hash = md5("alan@example.org");
    await t.api("PUT", `/3.0/lists/${t.list}/members/${hash}`, {
      email_address: "alan@example.org",
      status_if_new: "subscribed",
    });
    expect((await t.raw("DELETE", `/3.0/lists/${t.list}/members/${hash}`)).status).toBe(204);
    expect((await t.api("GET", `/3.0/lists/${t.list}/members/${hash}`)).body.status).toBe("archived");
    const twice = await t.raw("DELETE", `/3.0/lists/${t.list}/members/${hash}`);
    expect(twice.status).toBe(405);
    expect(twice.headers.get("allow")).toBe("GET, PUT");
    expect((await t.api("GET", `/3.0/lists/${t.list}/members`)).body.total_items).toBe(0);
    expect((await t.api("GET", `/3.0/lists/${t.list}/members?status=archived`)).body.total_items).toBe(1);
    const back = await t.api("PUT", `/3.0/lists/${t.list}/members/${hash}`, {
      email_address: "alan@example.org",
      status_if_new: "subscribed",
      status: "subscribed",
    });
    expect(back.body.status).toBe("subscribed");

    // The spec names the member on this path by its subscriber hash alone.
    for (const other of [back.body.contact_id, "alan@example.org"])
      expect(
        (await t.raw("POST", `/3.0/lists/${t.list}/members/${String(other)}/actions/delete-permanent`))
          .status,
      ).toBe(404);
    expect(
      (await t.raw("POST", `/3.0/lists/${t.list}/members/${hash}/actions/delete-permanent`)).status,
    ).toBe(204);
    const reimport = await t.api("PUT", `/3.0/lists/${t.list}/members/${hash}`, {
      email_address: "alan@example.org",
      status_if_new: "subscribed",
    });
    expect(reimport.status).toBe(400);
    expect(reimport.body.title).toBe("Forgotten Email Not Subscribed");
  });

  it("lists members by status and since_last_changed, up to 1000 a page", async () => {
    const t = await setup();
    for (let i = 0; i < 5; i++) {
      await t.api("POST", `/3.0/lists/${t.list}/members`, {
        email_address: `p${i}@example.org`,
        status: i < 3 ? "subscribed" : "unsubscribed",
      });
      t.advance(60_000);
    }
    const page = await t.api("GET", `/3.0/lists/${t.list}/members?count=2&offset=0&status=subscribed`);
    expect(page.body.total_items).toBe(3);
    expect(page.body.members).toHaveLength(2);
    const since = await t.api(
      "GET",
      `/3.0/lists/${t.list}/members?since_last_changed=${encodeURIComponent("2026-03-02T12:02:30+00:00")}`,
    );
    expect(since.body.members.map((m: any) => m.email_address)).toEqual(["p3@example.org", "p4@example.org"]);
    const tooMany = await t.api("GET", `/3.0/lists/${t.list}/members?count=1001`);
    expect(tooMany.status).toBe(400);
  });

  it("validates merge fields and interests, and sets tags", async () => {
    const t = await setup();
    const bad = await t.api("POST", `/3.0/lists/${t.list}/members`, {
      email_address: "x@example.org",
      status: "subscribed",
      merge_fields: { NOPE: "1" },
      interests: { missing: true },
    });
    expect(bad.status).toBe(400);
    expect(bad.body.title).toBe("Invalid Resource");
    expect(bad.body.errors.map((e: any) => e.field)).toEqual(["merge_fields.NOPE", "interests.missing"]);
    const ok = await t.api("POST", `/3.0/lists/${t.list}/members`, {
      email_address: "x@example.org",
      status: "subscribed",
      interests: { [t.interest]: true },
      tags: ["Newsletter"],
    });
    expect(ok.body.interests[t.interest]).toBe(true);
    expect(ok.body.tags.map((x: any) => x.name)).toEqual(["Newsletter"]);
    // Tags are written through the subscriber hash alone (the spec's only name on this path).
    expect(
      (
        await t.raw("POST", `/3.0/lists/${t.list}/members/${String(ok.body.contact_id)}/tags`, {
          tags: [{ name: "VIP", status: "active" }],
        })
      ).status,
    ).toBe(404);
    expect(
      (
        await t.raw("POST", `/3.0/lists/${t.list}/members/${ok.body.id}/tags`, {
          tags: [
            { name: "Newsletter", status: "inactive" },
            { name: "VIP", status: "active" },
          ],
        })
      ).status,
    ).toBe(204);
    const tags = await t.api("GET", `/3.0/lists/${t.list}/members/${ok.body.id}/tags`);
    expect(tags.body.tags.map((x: any) => x.name)).toEqual(["VIP"]);
    const segments = await t.api("GET", `/3.0/lists/${t.list}/segments?type=static`);
    expect(segments.body.segments.map((s: any) => [s.name, s.member_count])).toEqual([
      ["Newsletter", 0],
      ["VIP", 1],
    ]);
    const categories = await t.api("GET", `/3.0/lists/${t.list}/interest-categories`);
    const interests = await t.api(
      "GET",
      `/3.0/lists/${t.list}/interest-categories/${categories.body.categories[0].id}/interests`,
    );
    expect(interests.body.interests.map((i: any) => i.name)).toEqual(["Appeals", "Events"]);
    const merge = await t.api("GET", `/3.0/lists/${t.list}/merge-fields`);
    expect(merge.body.merge_fields.map((f: any) => f.tag)).toContain("FNAME");
  });

  it("batch subscribe: at most 500, per-member errors, update_existing, never subscribes an unsubscribed member", async () => {
    const t = await setup();
    await t.api("POST", `/3.0/lists/${t.list}/members`, {
      email_address: "gone@example.org",
      status: "unsubscribed",
    });
    await t.api("POST", `/3.0/lists/${t.list}/members`, {
      email_address: "here@example.org",
      status: "subscribed",
    });
    const batch = await t.api("POST", `/3.0/lists/${t.list}`, {
      members: [
        { email_address: "new@example.org", status: "subscribed", merge_fields: { FNAME: "New" } },
        { email_address: "not-an-address", status: "subscribed" },
        { email_address: "here@example.org", status: "subscribed", merge_fields: { FNAME: "Here" } },
        { email_address: "gone@example.org", status: "subscribed" },
      ],
      update_existing: true,
    });
    expect(batch.status).toBe(200);
    expect(batch.body.total_created).toBe(1);
    expect(batch.body.total_updated).toBe(1);
    expect(batch.body.errors.map((e: any) => [e.email_address, e.error_code])).toEqual([
      ["not-an-address", "ERROR_GENERIC"],
      ["gone@example.org", "ERROR_GENERIC"],
    ]);
    expect(batch.body.errors[1].error).toMatch(/compliance state/);
    const noUpdate = await t.api("POST", `/3.0/lists/${t.list}`, {
      members: [{ email_address: "here@example.org", status: "subscribed" }],
    });
    expect(noUpdate.body.errors[0].error_code).toBe("ERROR_CONTACT_EXISTS");
    const tooBig = await t.api("POST", `/3.0/lists/${t.list}`, {
      members: Array.from({ length: 501 }, (_, i) => ({
        email_address: `b${i}@example.org`,
        status: "subscribed",
      })),
    });
    expect(tooBig.status).toBe(400);
  });
});

describe("Mailchimp emulator: batches", () => {
  it("runs a batch's operations in the background as the caller, and serves the results as a tar.gz", async () => {
    const t = await setup();
    const submitted = await t.api("POST", "/3.0/batches", {
      operations: [
        {
          method: "PUT",
          path: `/lists/${t.list}/members/${md5("batch@example.org")}`,
          operation_id: "put-1",
          body: JSON.stringify({ email_address: "batch@example.org", status_if_new: "subscribed" }),
        },
        {
          method: "GET",
          path: `/lists/${t.list}/members/${md5("nobody@example.org")}`,
          operation_id: "get-2",
        },
      ],
    });
    expect(submitted.status).toBe(200);
    expect(submitted.body).toMatchObject({ status: "pending", total_operations: 2 });
    await t.emulator.batches.idle();
    const done = await t.api("GET", `/3.0/batches/${submitted.body.id}`);
    expect(done.body).toMatchObject({ status: "finished", finished_operations: 2, errored_operations: 1 });
    const archive = Buffer.from(await (await fetch(done.body.response_body_url)).arrayBuffer());
    const tar = gunzipSync(archive);
    const size = parseInt(tar.subarray(124, 136).toString("ascii"), 8);
    const results = JSON.parse(tar.subarray(512, 512 + size).toString("utf8"));
    expect(results.map((r: any) => [r.operation_id, r.status_code])).toEqual([
      ["put-1", 200],
      ["get-2", 404],
    ]);
    expect(JSON.parse(results[0].response).email_address).toBe("batch@example.org");
    expect((await t.api("POST", "/3.0/batches", { operations: [] })).status).toBe(400);
  });
});

describe("Mailchimp emulator: webhooks", () => {
  let receiver: Server | undefined;
  afterEach(() => {
    receiver?.close();
    receiver = undefined;
  });

  /** A receiver that records what it is sent; `fail` makes it answer 500 that many times first. */
  async function listen(fail = 0) {
    const got: { method: string; ua: string; type: string; body: string }[] = [];
    let failures = fail;
    receiver = createServer((req: IncomingMessage, res) => {
      let body = "";
      req.on("data", (c: Buffer) => (body += c.toString("utf8")));
      req.on("end", () => {
        got.push({
          method: req.method ?? "",
          ua: req.headers["user-agent"] ?? "",
          type: req.headers["content-type"] ?? "",
          body,
        });
        if (req.method === "POST" && failures > 0) {
          failures--;
          res.statusCode = 500;
        }
        res.end("ok");
      });
    });
    await new Promise<void>((resolve) => receiver!.listen(0, "127.0.0.1", resolve));
    return { url: `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook?key=s3cret`, got };
  }

  it("validates the URL with a GET, then delivers form-encoded events filtered by source", async () => {
    const t = await setup({ autoDeliverWebhooks: false });
    const hook = await listen();
    const refused = await t.api("POST", `/3.0/lists/${t.list}/webhooks`, {
      url: "http://127.0.0.1:9/none",
      events: { unsubscribe: true },
      sources: { user: true },
    });
    expect(refused.status).toBe(400);
    const created = await t.api("POST", `/3.0/lists/${t.list}/webhooks`, {
      url: hook.url,
      events: {
        subscribe: true,
        unsubscribe: true,
        profile: true,
        cleaned: true,
        upemail: true,
        campaign: false,
      },
      sources: { user: true, admin: true, api: false },
    });
    expect(created.status).toBe(200);
    expect(hook.got).toEqual([
      expect.objectContaining({ method: "GET", ua: "MailChimp.com WebHook Validator" }),
    ]);
    expect((await t.api("GET", `/3.0/lists/${t.list}/webhooks`)).body.webhooks).toHaveLength(1);

    await t.api("POST", `/3.0/lists/${t.list}/members`, {
      email_address: "ann@example.org",
      status: "subscribed",
    }); // api: not sent
    await t.control("act", { as: "contact", action: "unsubscribe", email: "ann@example.org" });
    await t.control("act", { as: "contact", action: "spam_complaint", email: "ann@example.org" });
    await fetch(`${t.emulator.baseUrl}/__emulator/webhooks/flush`, { method: "POST" });
    const posts = hook.got.filter((g) => g.method === "POST");
    expect(posts).toHaveLength(2);
    expect(posts[0]!.type).toBe("application/x-www-form-urlencoded");
    const first = new URLSearchParams(posts[0]!.body);
    expect(first.get("type")).toBe("unsubscribe");
    expect(first.get("fired_at")).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
    expect(first.get("data[email]")).toBe("ann@example.org");
    // A member's 10-hex unique_email_id, as in Mailchimp's own example, not the subscriber hash.
    expect(first.get("data[id]")).toMatch(/^[0-9a-f]{10}$/);
    expect(first.get("data[id]")).not.toBe(md5("ann@example.org"));
    expect(first.get("data[action]")).toBe("unsub");
    expect(first.get("data[reason]")).toBe("manual");
    expect(first.get("data[campaign_id]")).toBeTruthy();
    expect(new URLSearchParams(posts[1]!.body).get("data[reason]")).toBe("abuse");
  });

  it("retries a failed delivery in the background until the receiver takes it", async () => {
    const t = await setup();
    const hook = await listen(2);
    await t.api("POST", `/3.0/lists/${t.list}/webhooks`, {
      url: hook.url,
      events: { unsubscribe: true },
      sources: { admin: true },
    });
    await t.api("POST", `/3.0/lists/${t.list}/members`, {
      email_address: "bo@example.org",
      status: "subscribed",
    });
    await t.control("act", { as: "admin", action: "unsubscribe", email: "bo@example.org" });
    for (;;) {
      const state = await t.control("state");
      if (state.deliveries[0]?.status === "delivered") {
        expect(state.deliveries[0].attempts.map((a: any) => a.status)).toEqual([500, 500, 200]);
        break;
      }
      await t.emulator.webhooks.idle();
    }
  });
});

describeWithSpecs("Mailchimp emulator: answers match the official definition", () => {
  it("checks every call of the suites above (they validate when the definition is present)", () => {
    expect(specs.length).toBe(3);
  });
});
