/**
 * Behaviours 9 (triggers) and 11 (connection health) over real HTTP on SQLite: Raiser's Edge NXT
 * webhooks delivered to the server, stored and acted on; Constant Contact polled at its interval; the
 * scheduled full reconciliation; manual runs queued; a revoked connection broken, alerted, and
 * resumed once its credentials are renewed.
 */
import type { AddressInfo } from "node:net";
import type { FastifyInstance } from "fastify";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { buildServer } from "../server/app";
import {
  createEngineRuntime,
  FULL_RETRY_AFTER_FAILURE_MS,
  INBOX_PRUNE_MS,
  type EngineRuntime,
} from "./engine-runtime";
import type { SyncReport } from "./sync-pair";
import type { Problem } from "../connections/connection-health";
import {
  addToReList,
  beforeEachGet,
  beforeEachRead,
  individual,
  post,
  RE_LISTS,
  runtimeDeps,
  sqliteBackend,
  startSyncHarness,
  TEST_ENV,
  type SyncHarness,
} from "../../test/support/sync-harness";
import { gate } from "../../test/support/gate";
import { readPlanStanding } from "../pipeline/plan-standing";
import { recordOneClick } from "./personal-links";

const WEBHOOK_SECRET = "re-webhook-secret-4b1f";

describe("the engine as a service (SQLite)", () => {
  let h: SyncHarness;
  let runtime: EngineRuntime;
  let server: FastifyInstance;
  let base: string;
  let runs: SyncReport[];
  let raised: Problem[];
  /** The keys of problems cleared, in order. */
  let cleared: string[];
  /** Set: every run the runtime makes ends in an error thrown after it (as a failing listener's). */
  let runsThrow = false;
  const re: Record<string, string> = {};

  /** What every engine runtime of these tests runs on. */
  const serviceDeps = () => runtimeDeps(h, { RE_WEBHOOK_SECRET: WEBHOOK_SECRET });

  beforeEach(async () => {
    h = await startSyncHarness(sqliteBackend(), {
      configure: (raw) => {
        raw["connections"][0].webhooks = { enabled: true, secret: { env: "RE_WEBHOOK_SECRET" } };
        raw["connections"][1].poll_interval = "60s";
      },
    });
    runs = [];
    runsThrow = false;
    raised = [];
    cleared = [];
    runtime = createEngineRuntime({
      ...serviceDeps(),
      onRun: (r) => {
        runs.push(r);
        if (runsThrow) throw new Error("a run's listener failed");
      },
      problems: {
        raise: async (p) => {
          raised.push(p);
        },
        clear: async (key) => {
          cleared.push(key);
        },
      },
    });
    server = buildServer({ version: "test", ready: async () => true, webhooks: runtime.handleWebhook });
    await server.listen({ port: 0, host: "127.0.0.1" });
    base = `http://127.0.0.1:${(server.server.address() as AddressInfo).port}`;
    const names = ["ada", "bob"];
    const ids = await h.seedRe(names.map((n) => individual(`${n}@example.org`, n, "Example")));
    for (const [i, n] of names.entries()) re[n] = ids[i] ?? "";
    await addToReList(h, RE_LISTS.news, ids);
  });
  afterEach(async () => {
    await runtime.stop();
    await server.close();
    await h.close();
  });

  /** Holds every read of the connection until `release`; `readStarted` resolves at the first. */
  const holdReads = (connectionId: string): { release: () => void; readStarted: Promise<void> } => {
    const released = gate();
    const started = gate();
    beforeEachRead(h, connectionId, async () => {
      started.open();
      await released.opened;
    });
    return { release: released.open, readStarted: started.opened };
  };

  const reApi = async (method: string, path: string, body?: unknown) => {
    const token = h.re.mintToken();
    const res = await fetch(`${h.re.baseUrl}${path}`, {
      method,
      headers: {
        "Bb-Api-Subscription-Key": TEST_ENV.RE_KEY,
        Authorization: `Bearer ${String(token.access_token)}`,
        "content-type": "application/json",
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: res.status, body: (await res.json().catch(() => undefined)) as any };
  };
  const flush = () =>
    fetch(`${h.re.baseUrl}/__emulator/webhooks/flush`, { method: "POST" }).then((r) => r.json());
  /** Subscribes the engine's receiver to constituent changes, as an integrator does, handshake done. */
  const subscribeToConstituentChanges = async () => {
    await reApi("POST", "/webhook/v1/subscriptions", {
      webhook_url: `${base}/webhooks/re-nxt?webhookKey=${WEBHOOK_SECRET}`,
      event_type: "com.blackbaud.constituent.change.v1",
    });
    await flush();
  };
  const permission = (emu: SyncHarness["ccMain"], name: string) =>
    h.ccContact(emu, `${name}@example.org`)?.email_address?.permission_to_send;

  it("9. a Raiser's Edge NXT webhook is verified, stored, re-read and synced for its contact alone", async () => {
    await runtime.syncNow();
    expect(permission(h.ccMain, "ada")).toBe("implicit");
    const sub = await reApi("POST", "/webhook/v1/subscriptions", {
      webhook_url: `${base}/webhooks/re-nxt?webhookKey=${WEBHOOK_SECRET}`,
      event_type: "com.blackbaud.constituent.change.v1",
    });
    expect(sub.status).toBe(200);
    const handshake = (await flush()) as { handshakes: { state: string }[] };
    expect(handshake.handshakes[0]?.state).toBe("Provisioned");

    await h.reAct({ action: "set_requests_no_email", constituent_id: re["ada"] });
    h.advance(1_000);
    await flush();
    await runtime.idle();
    expect(permission(h.ccMain, "ada")).toBe("unsubscribed");
    expect(permission(h.ccMain, "bob")).toBe("implicit");
    expect(await h.store.inbox.countPending()).toBe(0);
    const targeted = runs.at(-1);
    expect(targeted?.pulls).toEqual([]); // the webhook's re-read stood in for the pull
    expect(targeted?.plan?.operations.map((o) => o.kind)).toEqual(["record_opt_out"]);
  });

  it("9. a webhook's sync never waits for a poll's reads: it lands while the poll is still reading", async () => {
    await runtime.tick(); // the first run
    await subscribeToConstituentChanges();
    // The next poll's read of Constant Contact is held until the test lets it go.
    const { release, readStarted } = holdReads("cc-main");
    const before = runs.length;
    h.advance(61_000);
    const poll = runtime.tick();
    try {
      await readStarted;
      await h.reAct({ action: "set_requests_no_email", constituent_id: re["ada"] });
      await flush();
      // The opt-out lands and the webhook's run finishes (it goes on after its writes: re-reads,
      // baselines), while the poll, still reading, has not run yet.
      await vi.waitFor(
        () => {
          expect(permission(h.ccMain, "ada")).toBe("unsubscribed");
          expect(runs.slice(before).map((r) => r.pulls.length)).toEqual([0]);
        },
        {
          timeout: 20_000,
          interval: 20,
        },
      );
    } finally {
      release();
      await poll;
    }
    await runtime.idle();
    const polled = runs.at(-1);
    expect(polled?.pulls.map((p) => p.connection_id)).toEqual(["re-nxt", "cc-main", "cc-appeals"]);
    expect(polled?.status).toBe("succeeded");
  });

  it("a tick deletes the plan marks of pairs the config no longer has; the configured pair's stay", async () => {
    await runtime.tick(); // the first run marks the pair's contacts
    const pairId = h.config.pairs[0]?.id ?? "";
    const count = async (pair: string) =>
      (await h.store.db.selectFrom("plan_marks").select("contact_id").where("pair_id", "=", pair).execute())
        .length;
    const marked = await count(pairId);
    expect(marked).toBeGreaterThan(0);
    await h.store.db
      .insertInto("plan_marks")
      .values({
        pair_id: "a-removed-pair",
        contact_id: "c-1",
        plan_key: "k",
        plan_rev: 1,
        outcome_json: "{}",
        valid_until: null,
      })
      .execute();
    // A new process (the config has lost a pair since the last one ran) tidies at its first tick.
    const next = createEngineRuntime(serviceDeps());
    try {
      await next.tick();
    } finally {
      await next.stop();
    }
    expect(await count("a-removed-pair")).toBe(0);
    expect(await count(pairId)).toBe(marked);
  });

  it("a tick deletes webhook deliveries processed or given up longer ago than their retention, never pending ones", async () => {
    const processed = await h.store.inbox.add("re-nxt", [{ external_id: "1" }]);
    const dead = await h.store.inbox.add("re-nxt", [{ external_id: "2" }]);
    const retrying = await h.store.inbox.add("re-nxt", [{ external_id: "3" }]);
    await h.store.inbox.markProcessed([processed.id]);
    await h.store.inbox.markFailed(dead.id, "forbidden: 403", "dead");
    await h.store.inbox.markFailed(retrying.id, "vendor_unavailable", {
      retry_at: new Date(h.clock.now().getTime() + 30 * 86_400_000).toISOString(),
    });
    const stored = async () =>
      (await h.store.db.selectFrom("webhook_inbox").select("id").execute()).map((r) => r.id).sort();
    const retention = h.config.compliance.retention.webhook_deliveries;
    expect(retention).toBe(7 * 86_400_000);
    h.advance(retention - 60_000);
    await runtime.tick();
    expect(await stored()).toEqual([processed.id, dead.id, retrying.id].sort());
    h.advance(INBOX_PRUNE_MS + 60_000);
    await runtime.tick();
    expect(await stored()).toEqual([retrying.id]);
  });

  it("9. a pair is polled at its interval: the next poll is due an interval after the last started", async () => {
    await runtime.tick(); // the first run
    // The next poll's read takes 30 s of the clock.
    beforeEachRead(h, "cc-main", () => {
      h.advance(30_000);
    });
    h.advance(61_000);
    const started = h.now().getTime();
    const before = runs.length;
    await runtime.tick();
    expect(runs.length).toBe(before + 1);
    const status = runtime.status().find((s) => s.pair_id === runs[before]?.pair_id);
    expect(status?.next_run_at).toBe(new Date(started + 60_000).toISOString());
    // 31 s after it ended, 61 s after it started: due. Nothing changed since that run, so the poll
    // finds its plan standing and makes no run (ADR 33); it notes when it looked.
    h.advance(31_000);
    const looked = h.now().toISOString();
    await runtime.tick();
    expect(runs.length).toBe(before + 1);
    // (Its read took 30 s of the clock, as the first one's did.)
    expect((await readPlanStanding(h.store, "re-cc"))?.checked_at).toBe(h.now().toISOString());
    expect(h.now().getTime()).toBeGreaterThan(Date.parse(looked));
    const next = runtime.status().find((s) => s.pair_id === "re-cc")?.next_run_at;
    expect(next).toBe(new Date(Date.parse(looked) + 60_000).toISOString());
  });

  it("9. a poll makes no run while nothing changed; a change read from a system, or made in Concord, makes one", async () => {
    const poll = async (): Promise<SyncReport | undefined> => {
      const before = runs.length;
      h.advance(61_000);
      await runtime.tick();
      return runs.length > before ? runs.at(-1) : undefined;
    };
    await runtime.tick(); // the first run: everyone goes to Constant Contact
    // The next polls carry what that run left (links of the records it made); then the plan stands.
    let quiet = 0;
    for (let i = 0; i < 4 && quiet === 0; i += 1) if ((await poll()) === undefined) quiet += 1;
    expect(quiet).toBe(1);
    expect(await poll()).toBeUndefined();
    const standing = await readPlanStanding(h.store, "re-cc");
    expect(standing).toMatchObject({ operations: 0, contacts: 2, checked_at: h.now().toISOString() });

    // A read that fails makes a run all the same, which records why.
    h.ccMain.kit.faults.push({ status: 500, count: 1_000, path_prefix: "/v3/contacts", latency_ms: 0 });
    const failed = await poll();
    h.ccMain.kit.faults.length = 0;
    expect(failed).toBeDefined();
    expect(failed?.pulls.find((p) => p.connection_id === "cc-main")?.error).toMatchObject({
      code: expect.any(String),
    });
    while ((await poll()) !== undefined && runs.length < 20);

    // An outage longer than the threshold raises its alert from the failed polls' runs; once
    // Constant Contact answers again, a poll that makes no run clears it (its reads' health counts).
    h.ccMain.kit.faults.push({ status: 503, count: 1_000, path_prefix: "/v3/contacts", latency_ms: 0 });
    expect(await poll()).toBeDefined();
    h.advance(31 * 60_000);
    expect(await poll()).toBeDefined();
    h.ccMain.kit.faults.length = 0;
    expect(raised).toEqual([expect.objectContaining({ code: "vendor_outage", connection_id: "cc-main" })]);
    cleared = [];
    expect(await poll()).toBeUndefined();
    expect(cleared).toContain("outage:cc-main");

    // Bob unsubscribes in Constant Contact: the poll reads it and runs. Its run plans with the pair
    // as resolved for its reads: each system's lists are read once in the poll, not again.
    await h.ccAct(h.ccMain, "unsubscribe", "bob@example.org");
    const listReads = (): number[] => [
      h.re.kit.requests.filter((r) => r.method === "GET" && r.path.split("?")[0] === "/list/v1/lists").length,
      h.ccMain.kit.requests.filter((r) => r.method === "GET" && r.path.split("?")[0] === "/v3/contact_lists")
        .length,
    ];
    const listsBefore = listReads();
    expect((await poll())?.execution?.operations.succeeded).toBeGreaterThan(0);
    expect(listReads().map((n, i) => n - (listsBefore[i] ?? 0))).toEqual([1, 1]);
    expect((await h.reGet(`/constituent/v1/constituents/${re["bob"] ?? ""}`)).requests_no_email).toBe(true);
    while ((await poll()) !== undefined && runs.length < 20);
    expect(await poll()).toBeUndefined();

    // Ada opts out by her own link: nothing any system shows, only Concord's ledger; the poll runs.
    const [ada] = await h.store.contacts.findByMatchKey("ada@example.org");
    await recordOneClick(
      h.store,
      {
        contact_id: ada?.id ?? "",
        purpose: "unsubscribe",
        generation: 0,
        expires_at: "2099-01-01T00:00:00.000Z",
      },
      { token: "t".repeat(40) },
      h.now(),
      h.config,
    );
    expect(await poll()).toBeDefined();
    expect(h.ccContact(h.ccMain, "ada@example.org")?.email_address?.permission_to_send).toBe("unsubscribed");
    expect((await h.reGet(`/constituent/v1/constituents/${re["ada"] ?? ""}`)).requests_no_email).toBe(true);

    // A manual run always runs, standing plan or not.
    while ((await poll()) !== undefined && runs.length < 40);
    const before = runs.length;
    await runtime.syncNow("re-cc");
    expect(runs.length).toBe(before + 1);
  });

  it("9. stopping waits for a poll still reading, and for the run it then makes", async () => {
    await runtime.tick(); // the first run
    const { release, readStarted } = holdReads("cc-main");
    const before = runs.length;
    h.advance(61_000);
    const poll = runtime.tick();
    await readStarted;
    const order: string[] = [];
    const record = runs.push.bind(runs);
    runs.push = (...r: SyncReport[]) => {
      order.push("run");
      return record(...r);
    };
    const stopping = runtime.stop().then(() => order.push("stopped"));
    release();
    await Promise.all([stopping, poll]);
    // The poll's reads were not cut off by the stop: its run finished before stop returned.
    expect(order).toEqual(["run", "stopped"]);
    expect(runs.slice(before).map((r) => [r.status, r.pulls.map((p) => p.connection_id)])).toEqual([
      ["succeeded", ["re-nxt", "cc-main", "cc-appeals"]],
    ]);
  });

  it("9. a delivery whose re-read is refused for good is given up alone; an outage is retried after a pause", async () => {
    await runtime.syncNow();
    await subscribeToConstituentChanges();
    // Raiser's Edge NXT refuses every read of Ada's record (a 403 for that one constituent).
    await post(h.re.baseUrl, "/__emulator/faults", {
      status: 403,
      count: 10_000,
      path_prefix: `/constituent/v1/constituents/${re["ada"] ?? ""}`,
    });
    await h.reAct({ action: "set_requests_no_email", constituent_id: re["ada"] });
    await h.reAct({ action: "set_requests_no_email", constituent_id: re["bob"] });
    h.advance(1_000);
    await flush();
    await runtime.idle();
    // Bob's delivery was not held up by Ada's, and Ada's was given up at once, with an alert.
    expect(permission(h.ccMain, "bob")).toBe("unsubscribed");
    expect(permission(h.ccMain, "ada")).toBe("implicit");
    expect(await h.store.inbox.countPending()).toBe(0);
    expect(await h.store.inbox.countDead()).toBe(1);
    expect(raised).toEqual([
      expect.objectContaining({ code: "webhook_dead_letter", connection_id: "re-nxt" }),
    ]);
    const reads = (await (await fetch(`${h.re.baseUrl}/__emulator/requests`)).json()) as {
      requests: { path: string }[];
    };
    const adaReads = reads.requests.filter((r) =>
      r.path.startsWith(`/constituent/v1/constituents/${re["ada"] ?? ""}`),
    );
    expect(adaReads.length).toBeLessThanOrEqual(5); // not once a second, forever

    // The next poll reads Ada's record once Raiser's Edge NXT answers again.
    h.re.kit.faults.length = 0;
    h.advance(60_000);
    await runtime.syncNow();
    expect(permission(h.ccMain, "ada")).toBe("unsubscribed");

    // An outage: the delivery waits and is tried again after a pause, then carried.
    const cy = (await h.seedRe([individual("cy@example.org", "cy", "Example")]))[0] ?? "";
    await addToReList(h, RE_LISTS.news, [cy]);
    h.re.kit.faults.length = 0;
    await runtime.syncNow();
    await post(h.re.baseUrl, "/__emulator/faults", {
      status: 503,
      count: 10_000,
      path_prefix: "/constituent/",
    });
    await h.reAct({ action: "set_requests_no_email", constituent_id: cy });
    h.advance(1_000);
    await flush();
    await runtime.idle();
    const [waiting] = await h.store.db
      .selectFrom("webhook_inbox")
      .selectAll()
      .where("processed_at", "is", null)
      .where("dead_at", "is", null)
      .execute();
    expect(waiting).toMatchObject({ attempts: 1, next_attempt_at: expect.any(String) });
    expect(permission(h.ccMain, "cy")).toBe("implicit");
    h.re.kit.faults.length = 0;
    await runtime.drainInbox(); // not due yet: nothing is tried
    expect(permission(h.ccMain, "cy")).toBe("implicit");
    h.advance(11_000);
    await runtime.drainInbox();
    await runtime.idle();
    expect(permission(h.ccMain, "cy")).toBe("unsubscribed");
    expect(await h.store.inbox.countPending()).toBe(0);
  });

  it("a delivery is kept through a vendor outage longer than its retries, and carried once the vendor answers", async () => {
    await runtime.syncNow();
    await subscribeToConstituentChanges();
    await post(h.re.baseUrl, "/__emulator/faults", {
      status: 503,
      count: 1_000_000,
      path_prefix: "/constituent/",
    });
    await h.reAct({ action: "set_requests_no_email", constituent_id: re["ada"] });
    h.advance(1_000);
    await flush();
    await runtime.idle();
    const waiting = async () =>
      h.store.db
        .selectFrom("webhook_inbox")
        .selectAll()
        .where("processed_at", "is", null)
        .where("dead_at", "is", null)
        .executeTakeFirst();
    // Twelve attempts over more than three hours: more than a passing failure gets, less than a day.
    for (let attempt = 1; attempt < 12; attempt++) {
      const item = await waiting();
      expect(item, `attempt ${attempt}`).toMatchObject({ attempts: attempt });
      h.advance(Date.parse(item!.next_attempt_at!) - h.now().getTime() + 1_000);
      await runtime.drainInbox();
      await runtime.idle();
    }
    expect(await h.store.inbox.countDead()).toBe(0);
    expect(raised.filter((r) => r.code === "webhook_dead_letter")).toEqual([]);
    // Raiser's Edge NXT answers again: the delivery's next attempt carries Ada's opt-out.
    h.re.kit.faults.length = 0;
    h.advance(Date.parse((await waiting())!.next_attempt_at!) - h.now().getTime() + 1_000);
    await runtime.drainInbox();
    await runtime.idle();
    expect(permission(h.ccMain, "ada")).toBe("unsubscribed");
    expect(await h.store.inbox.countPending()).toBe(0);
  });

  it("a delivery whose re-read throws is tried again after a pause and holds up no delivery behind it", async () => {
    await runtime.syncNow();
    await subscribeToConstituentChanges();
    // Ada's re-read throws (a value the connector cannot read, a ledger refusal) until it is fixed.
    let adaThrows = true;
    beforeEachGet(h, "re-nxt", (ids) => {
      if (adaThrows && ids.includes(re["ada"] ?? "")) throw new Error("a value no one can read");
    });
    await h.reAct({ action: "set_requests_no_email", constituent_id: re["ada"] });
    h.advance(1_000);
    await h.reAct({ action: "set_requests_no_email", constituent_id: re["bob"] });
    h.advance(1_000);
    await flush();
    await runtime.idle();
    // Bob's delivery, behind Ada's, went through; Ada's waits for its retry, counted.
    expect(permission(h.ccMain, "bob")).toBe("unsubscribed");
    const [waiting] = await h.store.db
      .selectFrom("webhook_inbox")
      .selectAll()
      .where("processed_at", "is", null)
      .where("dead_at", "is", null)
      .execute();
    expect(waiting).toMatchObject({ attempts: 1, next_attempt_at: expect.any(String) });
    expect(waiting?.last_error).toContain("processing_failed");
    // Once the records read again, the retry carries Ada's opt-out.
    adaThrows = false;
    h.advance(11_000);
    await runtime.drainInbox();
    await runtime.idle();
    expect(permission(h.ccMain, "ada")).toBe("unsubscribed");
    expect(await h.store.inbox.countPending()).toBe(0);
  });

  it("a delivery with an unreadable event keeps the rest and says what it left out in the log", async () => {
    await runtime.syncNow();
    await h.reAct({ action: "set_requests_no_email", constituent_id: re["ada"] });
    h.advance(1_000);
    const answer = await fetch(`${base}/webhooks/re-nxt?webhookKey=${WEBHOOK_SECRET}`, {
      method: "POST",
      headers: { "content-type": "application/cloudevents+json" },
      body: JSON.stringify([
        {
          specversion: "1.0",
          type: "com.blackbaud.constituent.change.v1",
          source: "renxt",
          id: "readable-1",
          time: h.now().toISOString(),
          data: { id: re["ada"] },
        },
        { specversion: "1.0", type: "com.blackbaud.constituent.change.v1", id: "no-time-or-data" },
      ]),
    });
    expect(answer.status).toBe(200);
    expect(await answer.json()).toEqual({ accepted: 1, duplicates: 0 });
    const line = h.logs.find((l) => l.includes("could not be read and were left out"));
    expect(line).toBeDefined();
    expect(JSON.parse(line ?? "{}")).toMatchObject({
      level: 40,
      connection: "re-nxt",
      skipped: [expect.stringContaining("Event 1")],
    });
    await runtime.idle();
    expect(permission(h.ccMain, "ada")).toBe("unsubscribed");
  });

  it("a flood: too many events refused, repeats stored once, one re-read per record, polls never wait", async () => {
    await runtime.syncNow();
    const event = (id: string, constituent: string) => ({
      specversion: "1.0",
      type: "com.blackbaud.constituent.change.v1",
      source: "renxt",
      id,
      time: h.now().toISOString(),
      data: { id: constituent },
    });
    const deliver = (events: unknown[]) =>
      fetch(`${base}/webhooks/re-nxt?webhookKey=${WEBHOOK_SECRET}`, {
        method: "POST",
        headers: { "content-type": "application/cloudevents+json" },
        body: JSON.stringify(events),
      });
    const huge = await deliver(Array.from({ length: 1_001 }, (_, i) => event(`big-${i}`, re["ada"] ?? "")));
    expect(huge.status).toBe(413);
    expect(await huge.json()).toMatchObject({ code: "webhook_too_many_events" });
    expect(await h.store.inbox.countPending()).toBe(0);

    // A thousand events about two people: stored once each, re-read once each.
    await h.reAct({ action: "set_requests_no_email", constituent_id: re["ada"] });
    h.advance(1_000);
    const flood = Array.from({ length: 1_000 }, (_, i) =>
      event(`flood-${i}`, (i % 2 ? re["ada"] : re["bob"]) ?? ""),
    );
    const readsBefore = h.re.kit.requests.length;
    const first = await deliver(flood);
    expect(await first.json()).toEqual({ accepted: 1_000, duplicates: 0 });
    // The vendor's retry of the same delivery: nothing new to store.
    const retried = await deliver(flood);
    expect(await retried.json()).toEqual({ accepted: 0, duplicates: 1_000 });
    await runtime.idle();
    expect(permission(h.ccMain, "ada")).toBe("unsubscribed");
    const constituentReads = h.re.kit.requests
      .slice(readsBefore)
      .filter((r) => r.path.startsWith("/constituent/v1/constituents/"));
    // One targeted read of each record (a few calls each: details, emails, consents), not 500 each.
    expect(constituentReads.length).toBeGreaterThan(0);
    expect(constituentReads.length).toBeLessThanOrEqual(10);

    // A delivery whose re-read hangs: the tick's poll does not wait for it.
    await post(h.re.baseUrl, "/__emulator/faults", {
      latency_ms: 600_000,
      count: 1,
      path_prefix: `/constituent/v1/constituents/${re["bob"] ?? ""}`,
    });
    await h.reAct({ action: "set_requests_no_email", constituent_id: re["bob"] });
    h.advance(2_000);
    await deliver([event("late-1", re["bob"] ?? "")]);
    // The drain's re-read has reached the emulator and hangs there.
    await vi.waitFor(
      () => {
        expect(h.re.kit.faults[0]?.count).toBe(0);
      },
      { timeout: 60_000, interval: 5 },
    );
    h.advance(120_000);
    const before = runs.length;
    await runtime.tick();
    expect(runs.length).toBeGreaterThan(before);
    expect(await h.store.inbox.countPending()).toBe(1);
    // The hanging read fails; the delivery waits for its retry, and the poll already carried Bob.
    h.re.kit.app.server.closeAllConnections();
    await runtime.idle();
    expect(permission(h.ccMain, "bob")).toBe("unsubscribed");
  });

  it("a redelivery that arrives while the first is being stored is answered as that write went: never 200 for events lost", async () => {
    const deliver = () =>
      runtime.handleWebhook("re-nxt", {
        method: "POST",
        headers: { "content-type": "application/cloudevents+json" },
        query: { webhookKey: WEBHOOK_SECRET },
        raw_body: JSON.stringify([
          {
            specversion: "1.0",
            type: "com.blackbaud.constituent.change.v1",
            source: "renxt",
            id: "slow-1",
            time: h.now().toISOString(),
            data: { id: re["ada"] },
          },
        ]),
      });
    // The store is slow, then fails, for the first write.
    const writing = gate();
    const fail = gate();
    const addMany = h.store.inbox.addMany.bind(h.store.inbox);
    const spy = vi.spyOn(h.store.inbox, "addMany").mockImplementationOnce(async () => {
      writing.open();
      await fail.opened;
      throw new Error("the store went away");
    });
    const first = deliver().then(
      (r) => r.status,
      () => 500,
    );
    await writing.opened;
    // The vendor gave up waiting and sends the same delivery again; once its turn of the event
    // loop is over, it has taken its place behind the first write.
    const retry = deliver().then(
      (r) => r.status,
      () => 500,
    );
    await new Promise((resolve) => setImmediate(resolve));
    fail.open();
    expect(await first).toBe(500);
    // Not "accepted 0, duplicates 1": the event was never stored, so the retry must not be taken as delivered.
    expect(await retry).toBe(503);
    expect(await h.store.inbox.countPending()).toBe(0);
    // The vendor's next retry is taken and stored.
    spy.mockImplementation(addMany);
    const third = await deliver();
    expect(third).toMatchObject({ status: 200, body: { accepted: 1, duplicates: 0 } });
    expect(await h.store.inbox.countPending()).toBe(1);
  });

  it("a run a stopped process left running is marked interrupted when the service starts", async () => {
    const left = await h.store.runs.create({ kind: "sync", pair_id: "re-cc" });
    h.advance(1_000);
    const service = createEngineRuntime(serviceDeps());
    service.start(3_600_000);
    await service.idle();
    await service.stop();
    expect(await h.store.runs.get(left.id)).toMatchObject({
      status: "failed",
      summary: { error: { code: "interrupted" } },
    });
  });

  it("9. a delivery with a wrong key or to an unknown connection is refused and nothing is stored", async () => {
    const wrong = await fetch(`${base}/webhooks/re-nxt?webhookKey=guess`, {
      method: "POST",
      headers: { "content-type": "application/cloudevents+json" },
      body: "[]",
    });
    expect(wrong.status).toBe(401);
    expect(await wrong.json()).toMatchObject({ code: "webhook_unverified" });
    const unknown = await fetch(`${base}/webhooks/cc-main`, { method: "POST", body: "{}" });
    expect(unknown.status).toBe(404);
    expect(await h.store.inbox.countPending()).toBe(0);
  });

  it("9. polls at the interval, runs the full reconciliation on its schedule, and queues manual runs", async () => {
    await runtime.tick(); // nothing ran yet: a full reconciliation is due first
    expect(runs).toHaveLength(1);
    expect(runs[0]?.pulls[0]?.checkpoint_before).toBeNull();
    const fullAt = await h.store.checkpoints.get("pair:re-cc", "full_reconciliation");
    expect(fullAt).toBeDefined();

    await h.ccAct(h.ccMain, "unsubscribe", "bob@example.org");
    h.advance(30_000);
    await runtime.tick(); // not due: 30 s of a 60 s interval
    expect(runs).toHaveLength(1);
    h.advance(31_000);
    await runtime.tick();
    expect(runs).toHaveLength(2);
    expect((await h.reGet(`/constituent/v1/constituents/${re["bob"] ?? ""}`)).requests_no_email).toBe(true);

    h.advance(24 * 3_600_000);
    await runtime.tick();
    const after = await h.store.checkpoints.get("pair:re-cc", "full_reconciliation");
    expect(after?.updated_at).not.toBe(fullAt?.updated_at);

    // Manual runs queue behind each other: never two runs of a pair at once.
    await Promise.all([runtime.syncNow("re-cc"), runtime.syncNow("re-cc")]);
    const rows = await h.store.db.selectFrom("runs").selectAll().orderBy("started_at").execute();
    for (let i = 1; i < rows.length; i += 1)
      expect((rows[i]?.started_at ?? "") >= (rows[i - 1]?.finished_at ?? "")).toBe(true);
  });

  it("9. a full reconciliation that failed is tried again after a pause; the polls in between read what changed", async () => {
    await runtime.tick();
    const fullAt = () => h.store.checkpoints.get("pair:re-cc", "full_reconciliation");
    const first = await fullAt();
    expect(first).toBeDefined();
    // A day later the full read is due, and Raiser's Edge NXT fails it.
    h.advance(24 * 3_600_000 + 1_000);
    await post(h.re.baseUrl, "/__emulator/faults", {
      status: 500,
      count: 10_000,
      path_prefix: "/constituent/v1",
    });
    await runtime.tick();
    expect((await fullAt())?.updated_at).toBe(first?.updated_at);
    expect(await h.store.checkpoints.get("pair:re-cc", "full_reconciliation_failed")).toBeDefined();
    await fetch(`${h.re.baseUrl}/__emulator/faults`, { method: "DELETE" });

    // The next poll reads what changed, not everything again: Bob's opt-out goes across.
    await h.ccAct(h.ccMain, "unsubscribe", "bob@example.org");
    h.advance(61_000);
    await runtime.tick();
    expect((await h.reGet(`/constituent/v1/constituents/${re["bob"] ?? ""}`)).requests_no_email).toBe(true);
    expect((await fullAt())?.updated_at).toBe(first?.updated_at);

    // Half an hour after the failure the full read is tried again, and succeeds.
    h.advance(FULL_RETRY_AFTER_FAILURE_MS);
    await runtime.tick();
    const second = await fullAt();
    expect(second?.updated_at).not.toBe(first?.updated_at);

    // A full reconciliation that throws waits the same pause.
    h.advance(24 * 3_600_000 + 1_000);
    runsThrow = true;
    await expect(runtime.tick()).rejects.toThrow("a run's listener failed");
    runsThrow = false;
    const failedAt = (await h.store.checkpoints.get("pair:re-cc", "full_reconciliation_failed"))?.updated_at;
    expect(failedAt).toBe(h.now().toISOString());
    h.advance(61_000);
    await runtime.tick();
    expect((await fullAt())?.updated_at).toBe(second?.updated_at);
  });

  it("11. a revoked connection is marked broken and alerted, its work waits, and it resumes once renewed", async () => {
    await runtime.syncNow();
    await fetch(`${h.ccMain.baseUrl}/__emulator/oauth/revoke`, { method: "POST" });
    h.advance(25 * 3_600_000); // the access token has expired too: only the revoked refresh token is left
    h.reopen();
    await h.reAct({ action: "set_requests_no_email", constituent_id: re["bob"] });
    h.advance(1_000);

    const [broken] = await runtime.syncNow();
    expect(broken?.execution?.waiting).toEqual([
      expect.objectContaining({ connection_id: "cc-main", code: "auth_invalid" }),
    ]);
    expect((await h.store.health.get("cc-main"))?.status).toBe("broken");
    expect(h.alerts).toEqual([expect.objectContaining({ connection_id: "cc-main", status: "broken" })]);
    expect(permission(h.ccAppeals, "bob")).toBeUndefined(); // bob is only on the newsletter (cc-main)
    expect(permission(h.ccMain, "bob")).toBe("implicit");
    const pending = await h.store.db
      .selectFrom("operations")
      .select(["kind", "status"])
      .where("target_connection", "=", "cc-main")
      .where("status", "=", "pending")
      .execute();
    expect(pending).toEqual([{ kind: "record_opt_out", status: "pending" }]);
    for (const secret of h.secrets()) expect(h.logs.join("")).not.toContain(secret);

    // Someone renews the connection: the queued opt-out goes out at the next run.
    await h.storeRefreshToken("cc-main");
    h.reopen();
    h.advance(60_000);
    const [resumed] = await runtime.syncNow();
    expect(resumed?.execution?.waiting).toEqual([]);
    expect(permission(h.ccMain, "bob")).toBe("unsubscribed");
    expect((await h.store.health.get("cc-main"))?.status).toBe("ok");
    expect(h.alerts.map((a) => a.status)).toEqual(["broken", "ok"]);
  });
});
