/**
 * Mailchimp's push path through the engine as a service: Concord's receiver answers Mailchimp's
 * validator, a form-encoded delivery with the secret in its URL is verified, stored, re-read
 * through the connector and synced for that member alone: the unsubscribe reaches Raiser's Edge NXT
 * and Constant Contact without waiting for a poll. With workers (PostgreSQL), a delivery given up
 * unread records the opt-out it announced and leaves its sync in the job queue.
 */
import { randomBytes } from "node:crypto";
import type { AddressInfo } from "node:net";
import type { FastifyInstance } from "fastify";
import { sql } from "kysely";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { graphileQueue, prepareJobSchema } from "../jobs/graphile-runner";
import { createLogger } from "../observability/logger";
import { storeBackends } from "../../test/support/store-backends";
import { buildServer } from "../server/app";
import { eventsForContact } from "../ledger/consent-ledger";
import { capturingLogger } from "../../test/support/capturing-logger";
import { subscriberHash } from "../connectors/mailchimp/mapping";
import { sealSecret } from "../config/secret-box";
import { TEST_KEY } from "../../test/support/test-credentials";
import { createEngineRuntime, type EngineRuntime } from "./engine-runtime";
import { webhookShareSpent } from "./webhook-flood";
import type { SyncReport } from "./sync-pair";
import {
  addToReList,
  individual,
  post,
  RE_LISTS,
  runtimeDeps,
  sqliteBackend,
  startSyncHarness,
  type SyncHarness,
} from "../../test/support/sync-harness";

const SECRET = "mc-webhook-secret-7c2e";
const AUDIENCE = "a1b2c3d4e5";

describe("Mailchimp webhooks through the engine (SQLite)", () => {
  let h: SyncHarness;
  let runtime: EngineRuntime;
  let server: FastifyInstance;
  let base: string;
  let runs: SyncReport[];
  /** What the runtime logged. */
  let logs: string[];
  const re: Record<string, string> = {};

  beforeEach(async () => {
    h = await startSyncHarness(sqliteBackend(), {
      mailchimp: true,
      configure: (raw) => {
        const mc = (raw["connections"] as Record<string, unknown>[]).find((c) => c["id"] === "mc")!;
        mc["webhooks"] = { enabled: true, secret: { env: "MC_WEBHOOK_SECRET" } };
        mc["poll_interval"] = "1h";
        // A small daily budget, so that a test can spend the share webhook re-reads may use.
        mc["limits"] = { daily_quota: 200 };
      },
    });
    runs = [];
    const captured = capturingLogger();
    logs = captured.lines;
    runtime = createEngineRuntime({
      ...runtimeDeps(h, { MC_WEBHOOK_SECRET: SECRET }),
      logger: captured.logger,
      onRun: (r) => runs.push(r),
    });
    server = buildServer({ version: "test", ready: async () => true, webhooks: runtime.handleWebhook });
    await server.listen({ port: 0, host: "127.0.0.1" });
    base = `http://127.0.0.1:${(server.server.address() as AddressInfo).port}`;
    const ids = await h.seedRe(["ada", "bob"].map((n) => individual(`${n}@example.org`, n, "Example")));
    re["ada"] = ids[0] ?? "";
    re["bob"] = ids[1] ?? "";
    await addToReList(h, RE_LISTS.news, ids);
  });
  afterEach(async () => {
    await runtime.stop();
    await server.close();
    await h.close();
  });

  const mcApi = async (method: string, path: string, body?: unknown) => {
    const { api_key } = await post<{ api_key: string }>(h.mcOrigin!, "/__emulator/token", {});
    const res = await fetch(`${h.mcOrigin!}/3.0${path}`, {
      method,
      headers: {
        authorization: `Basic ${Buffer.from(`test:${api_key}`).toString("base64")}`,
        "content-type": "application/json",
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: res.status, body: (await res.json().catch(() => undefined)) as any };
  };

  it("answers the validator, then carries a pushed unsubscribe to the CRM and Constant Contact at once", async () => {
    await runtime.syncNow();
    const hook = await mcApi("POST", `/lists/${AUDIENCE}/webhooks`, {
      url: `${base}/webhooks/mc?key=${SECRET}`,
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
    expect(hook.status, JSON.stringify(hook.body)).toBe(200);
    const refused = await mcApi("POST", `/lists/${AUDIENCE}/webhooks`, {
      url: `${base}/webhooks/mc?key=guess`,
    });
    expect(refused.status).toBe(400); // the validator's GET got a 401: no webhook with a wrong key

    const before = runs.length;
    await post(h.mcOrigin!, "/__emulator/act", {
      list_id: AUDIENCE,
      as: "contact",
      action: "unsubscribe",
      email: "ada@example.org",
    });
    h.advance(1_000);
    await post(h.mcOrigin!, "/__emulator/webhooks/flush", {});
    await runtime.idle();
    expect((await h.reGet(`/constituent/v1/constituents/${re["ada"] ?? ""}`)).requests_no_email).toBe(true);
    expect(h.ccContact(h.ccMain, "ada@example.org")?.email_address?.permission_to_send).toBe("unsubscribed");
    expect((await h.reGet(`/constituent/v1/constituents/${re["bob"] ?? ""}`)).requests_no_email).toBe(false);
    expect(await h.store.inbox.countPending()).toBe(0);
    const pushed = runs.slice(before);
    expect(pushed.length).toBeGreaterThan(0);
    expect(pushed.every((r) => r.pulls.length === 0)).toBe(true); // the re-read stood in for a pull
  });

  /** Concord's webhook on the audience, for every source but the API. */
  const subscribe = async () => {
    const hook = await mcApi("POST", `/lists/${AUDIENCE}/webhooks`, {
      url: `${base}/webhooks/mc?key=${SECRET}`,
      sources: { user: true, admin: true, api: false },
    });
    expect(hook.status, JSON.stringify(hook.body)).toBe(200);
  };
  const mcAct = (as: string, action: string, email: string, extra: Record<string, unknown> = {}) =>
    post(h.mcOrigin!, "/__emulator/act", { list_id: AUDIENCE, as, action, email, ...extra });
  /** Mailchimp delivers what it holds; Concord has done what the deliveries ask once this resolves. */
  const deliver = async () => {
    h.advance(1_000);
    await post(h.mcOrigin!, "/__emulator/webhooks/flush", {});
    await runtime.idle();
  };
  const requestsNoEmail = async (constituentId: string | undefined) =>
    (await h.reGet(`/constituent/v1/constituents/${constituentId ?? ""}`)).requests_no_email;
  const mcOptOutOf = async (email: string) => {
    const [contact] = await h.store.contacts.findByMatchKey(email);
    return (await eventsForContact(h.store, contact!.id))
      .map((e) => e.event)
      .find((e) => e.kind === "opt_out" && e.source.connection === "mc");
  };

  /** Opt-ins from Mailchimp in the ledger, of every contact at the address. */
  const optInsAt = async (email: string) => {
    const out: string[] = [];
    for (const contact of await h.store.contacts.findByMatchKey(email))
      for (const { event } of await eventsForContact(h.store, contact.id))
        if (event.kind === "opt_in" && event.source.connection === "mc") out.push(event.id);
    return out;
  };

  /** Ada's own opt-out, as the delivery said it, reached the CRM and Constant Contact; Bob is as he was. */
  const expectOnlyAdasOptOut = async (reason: RegExp) => {
    expect(await requestsNoEmail(re["ada"])).toBe(true);
    expect(h.ccContact(h.ccMain, "ada@example.org")?.email_address?.permission_to_send).toBe("unsubscribed");
    expect(await requestsNoEmail(re["bob"])).toBe(false);
    expect(await mcOptOutOf("ada@example.org")).toMatchObject({
      actor: { kind: "contact" },
      evidence: { reason: expect.stringMatching(reason) },
    });
  };

  it("an unsubscribe whose member is archived before Concord re-reads it still reaches the CRM: the delivery's word stands", async () => {
    await runtime.syncNow();
    await subscribe();
    // Ada leaves by the footer link and an admin archives her at once; Bob is only archived.
    await mcAct("contact", "unsubscribe", "ada@example.org");
    await mcAct("admin", "archive", "ada@example.org");
    await mcAct("admin", "archive", "bob@example.org");
    const ada = await mcApi("GET", `/lists/${AUDIENCE}/members/ada@example.org`);
    expect(ada.body.status).toBe("archived"); // all a re-read can see
    await deliver();

    // An archive alone is no opt-out.
    await expectOnlyAdasOptOut(/unsubscribe webhook.*archived before it was read/);
  });

  it("an unsubscribe whose member reads pending, or subscribed again by the person, when Concord re-reads it is still recorded", async () => {
    await runtime.syncNow();
    await subscribe();
    // Ada leaves by the footer link, and the account asks her back at once (a confirmation email she
    // has not answered: pending). Bob leaves too, and a minute later signs up again on the form.
    await mcAct("contact", "unsubscribe", "ada@example.org");
    await mcAct("contact", "unsubscribe", "bob@example.org");
    const asked = await mcApi("PATCH", `/lists/${AUDIENCE}/members/${subscriberHash("ada@example.org")}`, {
      status: "pending",
    });
    expect(asked.status, JSON.stringify(asked.body)).toBe(200);
    h.advance(60_000);
    await mcAct("contact", "sign_up", "bob@example.org");
    if ((await mcApi("GET", `/lists/${AUDIENCE}/members/bob@example.org`)).body.status === "pending")
      await mcAct("contact", "confirm", "bob@example.org");
    expect((await mcApi("GET", `/lists/${AUDIENCE}/members/bob@example.org`)).body.status).toBe("subscribed");
    await deliver();

    // Neither re-read shows the opt-out; each delivery's word is recorded. Ada stays out; Bob's own
    // sign-up, a minute after his unsubscribe, brings him back.
    for (const [name, status] of [
      ["ada", "pending"],
      ["bob", "subscribed"],
    ] as const)
      expect(await mcOptOutOf(`${name}@example.org`)).toMatchObject({
        actor: { kind: "contact" },
        evidence: { reason: expect.stringMatching(new RegExp(`unsubscribe webhook.*reads ${status} since`)) },
      });
    expect(await requestsNoEmail(re["ada"])).toBe(true);
    expect(h.ccContact(h.ccMain, "ada@example.org")?.email_address?.permission_to_send).toBe("unsubscribed");
    expect(await requestsNoEmail(re["bob"])).toBe(false);
  });

  it("an unsubscribe whose re-read Mailchimp refuses is given up, yet the opt-out it announced reaches the CRM: the poll would never show it", async () => {
    await runtime.syncNow();
    await subscribe();
    // Ada leaves by the footer link and an admin archives her at once; then Mailchimp refuses the re-read.
    await mcAct("contact", "unsubscribe", "ada@example.org");
    await mcAct("admin", "archive", "ada@example.org");
    await post(h.mcOrigin!, "/__emulator/faults", {
      status: 403,
      count: 1,
      path_prefix: `/3.0/lists/${AUDIENCE}/members/`,
    });
    await deliver();

    const [row] = await h.store.db.selectFrom("webhook_inbox").select(["dead_at", "last_error"]).execute();
    expect(row).toMatchObject({
      dead_at: expect.any(String),
      last_error: expect.stringMatching(/403|forbidden/i),
    });
    await expectOnlyAdasOptOut(/unsubscribe webhook.*could not be re-read/);
    expect(
      logs.some((l) => /given up.*1 opt-out\(s\) it announced were recorded from the delivery alone/.test(l)),
    ).toBe(true);
  });

  it("an unsubscribe whose member is deleted for good before Concord re-reads it still reaches the CRM, for the address it named", async () => {
    await runtime.syncNow();
    await subscribe();
    // Ada leaves by the footer link, then the account deletes her for good; Bob is only deleted.
    await mcAct("contact", "unsubscribe", "ada@example.org");
    for (const name of ["ada", "bob"]) {
      const gone = await mcApi(
        "POST",
        `/lists/${AUDIENCE}/members/${subscriberHash(`${name}@example.org`)}/actions/delete-permanent`,
        {},
      );
      expect(gone.status, JSON.stringify(gone.body)).toBe(204);
    }
    expect((await mcApi("GET", `/lists/${AUDIENCE}/members/ada@example.org`)).status).toBe(404);
    await deliver();

    // A deletion alone is no opt-out.
    await expectOnlyAdasOptOut(/unsubscribe webhook.*deleted for good before it was read/);
    // The member is gone, not a second record of Ada's: nothing is linked to it or sent to review.
    const [contact] = await h.store.contacts.findByMatchKey("ada@example.org");
    expect(
      (await h.store.links.forContact(contact!.id)).filter((l) => l.connection_id === "mc"),
    ).toHaveLength(1);
    expect(await h.store.reviewItems.list("open")).toEqual([]);
    expect(await h.store.inbox.countPending()).toBe(0);
  });

  it("once webhook re-reads have used their share of today's quota, a plain change waits for the poll but an announced opt-out is still read", async () => {
    await runtime.syncNow();
    await subscribe();
    const mc = h.connections.get("mc")!;
    while (!webhookShareSpent(mc.budget.usage())) expect((await mc.session().check()).ok).toBe(true);
    const reread: string[] = [];
    h.connections.set("mc", {
      ...mc,
      session: () => {
        const session = mc.session();
        return {
          ...session,
          get: (ids, options) => {
            reread.push(...ids);
            return session.get(ids, options);
          },
        };
      },
    });
    await mcAct("contact", "update_profile", "bob@example.org", { merge_fields: { FNAME: "Robert" } });
    await mcAct("contact", "unsubscribe", "ada@example.org");
    await deliver();

    expect(await requestsNoEmail(re["ada"])).toBe(true);
    expect(reread).toEqual([subscriberHash("ada@example.org")]);
    expect(await h.store.inbox.countPending()).toBe(0);
  });

  /** Staff enter Ada a second time (the same address, in the newsletter); synced, webhook on. */
  const twinOfAda = async (): Promise<string> => {
    const [twin] = await h.seedRe([individual("ada@example.org", "Ada", "Duplicate")]);
    await addToReList(h, RE_LISTS.news, [twin!]);
    await runtime.syncNow();
    await subscribe();
    return twin!;
  };

  it("a pushed unsubscribe of an address two CRM records share reaches both at once, though the member links to neither", async () => {
    const twin = await twinOfAda();
    await mcAct("contact", "unsubscribe", "ada@example.org");
    await deliver();
    for (const id of [re["ada"], twin]) expect(await requestsNoEmail(id)).toBe(true);
    expect(await requestsNoEmail(re["bob"])).toBe(false);
  });

  /** The account deletes the member for good: Mailchimp answers 404 for it from then on. */
  const deleteForGood = async (email: string) => {
    const gone = await mcApi(
      "POST",
      `/lists/${AUDIENCE}/members/${subscriberHash(email)}/actions/delete-permanent`,
      {},
    );
    expect(gone.status, JSON.stringify(gone.body)).toBe(204);
  };

  it("an unsubscribe whose member is deleted for good before the re-read reaches every CRM record at its address", async () => {
    const twin = await twinOfAda();
    await mcAct("contact", "unsubscribe", "ada@example.org");
    await deleteForGood("ada@example.org");
    await deliver();
    for (const id of [re["ada"], twin]) expect(await requestsNoEmail(id)).toBe(true);
    expect(await requestsNoEmail(re["bob"])).toBe(false);
    expect(await h.store.inbox.countPending()).toBe(0);
  });

  it("an unsubscribe whose member nobody in Concord holds is deleted for good before the re-read: the delivery is done, nobody is made or changed", async () => {
    await runtime.syncNow();
    await subscribe();
    // Someone added straight to the audience, never in the CRM, leaves and is deleted for good.
    await mcAct("contact", "sign_up", "stranger@example.org");
    await mcAct("contact", "unsubscribe", "stranger@example.org");
    await deleteForGood("stranger@example.org");
    await deliver();
    expect(await h.store.contacts.findByMatchKey("stranger@example.org")).toEqual([]);
    expect(await h.store.reviewItems.list("open")).toEqual([]);
    for (const name of ["ada", "bob"]) expect(await requestsNoEmail(re[name])).toBe(false);
    // Done, not left to be tried again: the opt-out has nobody to reach.
    expect(await h.store.inbox.countPending()).toBe(0);
    const rows = await h.store.db
      .selectFrom("webhook_inbox")
      .select(["processed_at", "last_error", "dead_at"])
      .execute();
    expect(rows.length).toBeGreaterThan(0);
    for (const row of rows)
      expect(row).toMatchObject({ processed_at: expect.any(String), last_error: null, dead_at: null });
    // The log says what the re-read held, as a poll's run summary would.
    expect(logs.join("")).toContain(
      "Mailchimp: a webhook delivery's re-read found 1 other observation(s) held, their record matching several people or nobody",
    );
  });

  it("a pushed sign-up of an address two CRM records share is held, not credited to either, and the log says so", async () => {
    const twin = await twinOfAda();
    await mcAct("contact", "unsubscribe", "ada@example.org");
    await deliver();
    for (const id of [re["ada"], twin]) expect(await requestsNoEmail(id)).toBe(true);
    const optInsBefore = await optInsAt("ada@example.org");
    // Ada signs up again on the form: whose opt-in it is, Mailchimp cannot say.
    await mcAct("contact", "sign_up", "ada@example.org");
    await mcAct("contact", "confirm", "ada@example.org");
    await deliver();
    expect(await optInsAt("ada@example.org")).toEqual(optInsBefore);
    for (const id of [re["ada"], twin]) expect(await requestsNoEmail(id)).toBe(true);
    expect(logs.join("")).toMatch(
      /Mailchimp: a webhook delivery's re-read found 1 opt-in\(s\) held, their record matching several people or nobody; 1 record\(s\) matching several contacts, in the review queue/,
    );
  });

  it("an archived member's announced opt-out is credited by the webhook it came by: a person's, or an account user's", async () => {
    await runtime.syncNow();
    for (const by of ["user", "admin"] as const) {
      const hook = await mcApi("POST", `/lists/${AUDIENCE}/webhooks`, {
        url: `${base}/webhooks/mc?key=${SECRET}&by=${by}`,
        sources: { user: by === "user", admin: by === "admin", api: false },
      });
      expect(hook.status, JSON.stringify(hook.body)).toBe(200);
    }
    // Ada leaves by the footer link; an admin unsubscribes Bob; both are archived before the flush.
    await mcAct("contact", "unsubscribe", "ada@example.org");
    await mcAct("admin", "unsubscribe", "bob@example.org");
    await mcAct("admin", "archive", "ada@example.org");
    await mcAct("admin", "archive", "bob@example.org");
    await deliver();
    expect(await mcOptOutOf("ada@example.org")).toMatchObject({ actor: { kind: "contact" } });
    expect(await mcOptOutOf("bob@example.org")).toMatchObject({
      actor: { kind: "account" },
      mechanism: "admin_edit",
    });
    // Both stop everywhere: the account's opt-out is one all the same.
    expect(await requestsNoEmail(re["bob"])).toBe(true);
  });

  it("a secret short enough to guess verifies nothing: deliveries are refused, saying only that to the caller", async () => {
    const weak = createEngineRuntime(runtimeDeps(h, { MC_WEBHOOK_SECRET: "7" }));
    try {
      const answer = await weak.handleWebhook("mc", {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        query: { key: "7" },
        raw_body: "type=unsubscribe&fired_at=2026-06-01+12%3A00%3A00&data%5Bid%5D=abc&data%5Baction%5D=unsub",
      });
      expect(answer.status).toBe(503);
      expect(answer.body).toMatchObject({ code: "webhook_unavailable" });
      expect(JSON.stringify(answer.body)).not.toMatch(/MC_WEBHOOK_SECRET|characters/);
      expect(await h.store.inbox.countPending()).toBe(0);
    } finally {
      await weak.stop();
    }
  });

  it("logs refused deliveries once a minute per reason, counting the rest, so guessers cannot flood the log", async () => {
    const { logger, lines } = capturingLogger();
    const guarded = createEngineRuntime({ ...runtimeDeps(h, { MC_WEBHOOK_SECRET: SECRET }), logger });
    try {
      const guess = (key: string) =>
        guarded.handleWebhook("mc", {
          method: "POST",
          headers: { "content-type": "application/x-www-form-urlencoded" },
          query: { key },
          raw_body: "type=profile&fired_at=2026-06-01+12%3A00%3A00&data%5Bid%5D=abc",
        });
      for (const key of ["a", "b", "c"]) expect((await guess(key)).status).toBe(401);
      const refused = () => lines.filter((l) => l.includes("webhook rejected"));
      expect(refused()).toHaveLength(1);
      h.advance(60_000);
      expect((await guess("d")).status).toBe(401);
      expect(refused()).toHaveLength(2);
      expect(refused()[1]).toContain('"refused_since":2');
    } finally {
      await guarded.stop();
    }
  });

  it("refuses a delivery with a wrong key and stores nothing", async () => {
    const wrong = await fetch(`${base}/webhooks/mc?key=guess`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: "type=unsubscribe&fired_at=2026-06-01+12%3A00%3A00&data%5Bid%5D=abc",
    });
    expect(wrong.status).toBe(401);
    expect(await h.store.inbox.countPending()).toBe(0);
  });
});

const postgres = storeBackends().find((b) => b.name === "postgres");

describe.skipIf(postgres?.skip_reason !== undefined)("Mailchimp webhooks with workers (PostgreSQL)", () => {
  it("a delivery given up unread records the opt-out it announced and queues its sync with the dead letter", async () => {
    if (postgres === undefined) throw new Error("no PostgreSQL backend");
    const h = await startSyncHarness(postgres, {
      mailchimp: true,
      configure: (raw) => {
        const mc = (raw["connections"] as Record<string, unknown>[]).find((c) => c["id"] === "mc")!;
        mc["webhooks"] = { enabled: true, secret: { env: "MC_WEBHOOK_SECRET" } };
        mc["poll_interval"] = "1h";
      },
    });
    const jobSchema = `j_${randomBytes(6).toString("hex")}`;
    let server: FastifyInstance | undefined;
    try {
      await prepareJobSchema(
        process.env["TEST_DATABASE_URL"] ?? "",
        jobSchema,
        createLogger({ level: "silent" }),
      );
      const runtime = createEngineRuntime({
        ...runtimeDeps(h, { MC_WEBHOOK_SECRET: SECRET }),
        jobs: graphileQueue(jobSchema),
      });
      server = buildServer({ version: "test", ready: async () => true, webhooks: runtime.handleWebhook });
      await server.listen({ port: 0, host: "127.0.0.1" });
      const base = `http://127.0.0.1:${(server.server.address() as AddressInfo).port}`;
      const [ada, bob] = await h.seedRe(
        ["ada", "bob"].map((n) => individual(`${n}@example.org`, n, "Example")),
      );
      await addToReList(h, RE_LISTS.news, [ada!, bob!]);
      await runtime.syncNow();
      const { api_key } = await post<{ api_key: string }>(h.mcOrigin!, "/__emulator/token", {});
      const hook = await fetch(`${h.mcOrigin!}/3.0/lists/${AUDIENCE}/webhooks`, {
        method: "POST",
        headers: {
          authorization: `Basic ${Buffer.from(`test:${api_key}`).toString("base64")}`,
          "content-type": "application/json",
        },
        body: JSON.stringify({
          url: `${base}/webhooks/mc?key=${SECRET}`,
          sources: { user: true, admin: true, api: false },
        }),
      });
      expect(hook.status).toBe(200);

      // Ada leaves by the footer link, an admin archives her, and Mailchimp refuses every re-read.
      for (const [as, action] of [
        ["contact", "unsubscribe"],
        ["admin", "archive"],
      ] as const)
        await post(h.mcOrigin!, "/__emulator/act", {
          list_id: AUDIENCE,
          as,
          action,
          email: "ada@example.org",
        });
      await post(h.mcOrigin!, "/__emulator/faults", {
        status: 403,
        count: 100,
        path_prefix: `/3.0/lists/${AUDIENCE}/members/`,
      });
      h.advance(1_000);
      await post(h.mcOrigin!, "/__emulator/webhooks/flush", {});
      // The server stored the delivery with its drain job; a worker takes it.
      await runtime.handlers.drain_inbox({ connection_id: "mc" });
      // Every re-read refused: each delivery (the unsubscribe, the archive) is given up unread.
      const rows = await h.store.db.selectFrom("webhook_inbox").select(["dead_at"]).execute();
      expect(rows.length).toBeGreaterThan(0);
      expect(rows.every((r) => r.dead_at !== null)).toBe(true);

      // The opt-out is in the ledger, and its sync waits in the queue for a worker.
      const [contact] = await h.store.contacts.findByMatchKey("ada@example.org");
      const optOut = (await eventsForContact(h.store, contact!.id))
        .map((e) => e.event)
        .find((e) => e.kind === "opt_out" && e.source.connection === "mc");
      expect(optOut).toMatchObject({ actor: { kind: "contact" } });
      const queued = (
        await sql<{
          payload: { pair_id: string; contact_ids?: string[] };
        }>`select j.payload from ${sql.id(jobSchema, "_private_jobs")} j join ${sql.id(jobSchema, "_private_tasks")} t on t.id = j.task_id where t.identifier = 'sync_pair'`.execute(
          h.store.db,
        )
      ).rows.map((r) => r.payload);
      expect(queued).toEqual([{ pair_id: expect.any(String), contact_ids: [contact!.id] }]);
      for (const payload of queued) await runtime.handlers.sync_pair(payload);
      expect((await h.reGet(`/constituent/v1/constituents/${ada ?? ""}`)).requests_no_email).toBe(true);
      expect((await h.reGet(`/constituent/v1/constituents/${bob ?? ""}`)).requests_no_email).toBe(false);
      await runtime.stop();
    } finally {
      await server?.close();
      await sql`drop schema if exists ${sql.id(jobSchema)} cascade`.execute(h.store.db);
      await h.close();
    }
  });
});

describe("a stored webhook secret replaced while Concord runs", () => {
  it("is the one checked within a minute, and the old one is refused from then on", async () => {
    const h = await startSyncHarness(sqliteBackend(), {
      mailchimp: true,
      configure: (raw) => {
        const mc = (raw["connections"] as Record<string, unknown>[]).find((c) => c["id"] === "mc")!;
        mc["webhooks"] = { enabled: true, secret: { stored: "mc.webhook_secret" } };
      },
    });
    const runtime = createEngineRuntime({
      ...runtimeDeps(h, {}),
      secrets: { key: TEST_KEY, stored: async (name) => (await h.store.credentials.get(name))?.ciphertext },
    });
    try {
      const store = async (secret: string) => {
        const sealed = sealSecret(secret, TEST_KEY, "mc.webhook_secret");
        if (!sealed.ok) throw new Error(sealed.error.message);
        await h.store.credentials.put("mc.webhook_secret", sealed.value, TEST_KEY.id);
      };
      // Mailchimp's validator: a GET with the key in the URL.
      const validates = async (key: string) =>
        (await runtime.handleWebhook("mc", { method: "GET", headers: {}, query: { key }, raw_body: "" }))
          .status;
      const first = "first-secret-4f1c9a7e2b";
      const second = "second-secret-8d3e6b1a0c";
      await store(first);
      expect(await validates(first)).toBe(200);
      // A leaked secret replaced (`concord secrets set`) while the receiver runs.
      await store(second);
      h.advance(61_000);
      expect(await validates(first)).toBe(401);
      expect(await validates(second)).toBe(200);
    } finally {
      await runtime.stop();
      await h.close();
    }
  });
});
