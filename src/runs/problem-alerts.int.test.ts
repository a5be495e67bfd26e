/**
 * Alerts beyond credentials, through the engine as a service: a connection's quota spent, a vendor
 * failing longer than the threshold, an opt-out stuck, and opt-outs close to or past a legal clock —
 * each alerted once on every channel with a link to the UI, and once more when it is fixed.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { connectionHealthTracker, type ConnectionAlert } from "../connections/connection-health";
import { createLogger } from "../observability/logger";
import { createEngineRuntime, type EngineRuntime } from "./engine-runtime";
import { problemWatch } from "./watch-problems";
import {
  addToReList,
  individual,
  post,
  RE_LISTS,
  sqliteBackend,
  startSyncHarness,
  type SyncHarness,
} from "../../test/support/sync-harness";
import { TEST_ENV, TEST_KEY } from "../../test/support/test-credentials";

const PUBLIC_URL = "https://concord.example.org";
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

describe("problem alerts (SQLite)", () => {
  let h: SyncHarness;
  let runtime: EngineRuntime;
  let alerts: ConnectionAlert[];

  beforeEach(async () => {
    h = await startSyncHarness(sqliteBackend(), {
      configure: (raw) => {
        const main = (raw.connections as { id: string; limits?: unknown }[]).find((c) => c.id === "cc-main");
        if (main) main.limits = { daily_quota: 200 };
        raw.server = { public_url: PUBLIC_URL };
      },
    });
    alerts = [];
    const logger = createLogger({ level: "silent" });
    runtime = createEngineRuntime({
      store: h.store,
      config: h.config,
      connections: h.connections,
      now: h.now,
      logger,
      secrets: { env: TEST_ENV, key: TEST_KEY },
      problems: connectionHealthTracker({
        store: h.store,
        logger,
        now: h.now,
        notify: async (a) => {
          alerts.push(a);
        },
        public_url: PUBLIC_URL,
      }),
    });
    const ids = await h.seedRe(["ada", "bob"].map((n) => individual(`${n}@example.org`, n, "Example")));
    await addToReList(h, RE_LISTS.news, ids);
    await runtime.syncNow();
    h.advance(MINUTE);
  });
  afterEach(async () => {
    await runtime.stop();
    await h.close();
  });

  const codes = () => alerts.map((a) => `${a.status} ${a.code} ${a.connection_id}`);

  it("a quota spent is alerted once, with a link, and once more when the next day's calls work", async () => {
    const budget = () => h.connections.get("cc-main")!.budget;
    for (;;) {
      const slot = await budget().acquire("read");
      if (!slot.ok) break;
      slot.value();
    }
    await runtime.syncNow();
    await runtime.syncNow();
    expect(codes()).toEqual(["warning quota_exhausted cc-main"]);
    expect(alerts[0]?.link).toBe(`${PUBLIC_URL}/`);
    expect(alerts[0]?.message).toMatch(/opt-outs still go out from the reserve/);

    h.advance(24 * HOUR);
    await runtime.syncNow();
    expect(codes()).toEqual(["warning quota_exhausted cc-main", "resolved quota_exhausted cc-main"]);
  });

  it("a vendor failing longer than the threshold (30 minutes) is alerted once, and when it answers again", async () => {
    await post(h.ccMain.baseUrl, "/__emulator/faults", {
      status: 503,
      count: 100_000,
      path_prefix: "/v3/contacts",
    });
    await runtime.syncNow();
    expect(codes()).toEqual([]); // a blip is no outage
    h.advance(31 * MINUTE);
    await runtime.syncNow();
    await runtime.syncNow();
    expect(codes()).toEqual(["warning vendor_outage cc-main"]);
    h.ccMain.kit.faults.length = 0;
    h.advance(MINUTE);
    await runtime.syncNow();
    expect(codes()).toEqual(["warning vendor_outage cc-main", "resolved vendor_outage cc-main"]);
  });

  it("an opt-out that cannot be applied is alerted as stuck, then against the legal clocks in business days", async () => {
    await post(h.re.baseUrl, "/__emulator/oauth/revoke", {}); // someone disconnected the app
    await h.ccAct(h.ccMain, "unsubscribe", "ada@example.org");
    h.advance(1_000);
    await runtime.syncNow();
    await runtime.tick();
    expect(codes().filter((c) => !c.includes("broken"))).toEqual([]);

    h.advance(HOUR);
    await runtime.tick();
    expect(codes().filter((c) => c.startsWith("warning"))).toEqual(["warning opt_out_stuck re-nxt"]);
    expect(alerts.find((a) => a.code === "opt_out_stuck")?.link).toBe(`${PUBLIC_URL}/runs`);

    // A day after the act: within a day of the mailbox providers' 2-day clock.
    h.advance(24 * HOUR);
    await runtime.tick();
    expect(codes().filter((c) => c.startsWith("warning"))).toEqual([
      "warning opt_out_stuck re-nxt",
      "warning legal_clock_due_soon re-nxt",
    ]);
    // Past two days: breached for the mailbox providers; CAN-SPAM's 10 business days still run.
    h.advance(24 * HOUR);
    await runtime.tick();
    const breached = alerts.find((a) => a.code === "legal_clock_breached");
    expect(breached?.message).toMatch(/1 against "Mailbox providers/);
    expect(breached?.message).not.toMatch(/CAN-SPAM/);
    await runtime.tick();
    expect(alerts.filter((a) => a.status === "warning")).toHaveLength(3);

    // Connected again: the opt-out lands, and each alert is closed once.
    await h.storeRefreshToken("re-nxt");
    h.reopen();
    await runtime.syncNow();
    const ada = (await h.reGet(`/constituent/v1/constituents?limit=10`)).value.find(
      (c: { first?: string }) => c.first === "ada",
    );
    expect((await h.reGet(`/constituent/v1/constituents/${String(ada.id)}`)).requests_no_email).toBe(true);
    await runtime.tick();
    const closed = alerts.filter((a) => a.status === "resolved").map((a) => a.code);
    expect(closed.sort()).toEqual(["legal_clock_breached", "legal_clock_due_soon", "opt_out_stuck"]);
  });

  it("a backlog of 150,000 unapplied opt-outs on one connection is alerted like one", async () => {
    // A platform down through a mass unsubscribe: the watch must not fail on the size of its backlog.
    const at = new Date(h.now().getTime() - 2 * HOUR).toISOString();
    const backlog = 150_000;
    // Under the plan of the first sync (the operations name their plan).
    const plan = await h.store.db.selectFrom("plans").select("id").executeTakeFirstOrThrow();
    await h.store.transaction(async (tx) => {
      for (let from = 0; from < backlog; from += 2_000)
        await tx.db
          .insertInto("operations")
          .values(
            Array.from({ length: Math.min(2_000, backlog - from) }, (_, i) => ({
              id: `op-backlog-${String(from + i)}`,
              plan_id: plan.id,
              kind: "record_opt_out",
              target_connection: "re-nxt",
              contact_id: null,
              payload_json: JSON.stringify({ operation: { occurred_at: at } }),
              status: "pending",
              created_at: at,
              updated_at: at,
            })),
          )
          .execute();
    });
    const raised: { code: string; message: string }[] = [];
    const watch = problemWatch({
      store: h.store,
      config: h.config,
      now: h.now,
      problems: {
        raise: async (p) => {
          raised.push(p);
        },
        clear: async () => undefined,
      },
    });
    await watch.check();
    const stuck = raised.find((p) => p.code === "opt_out_stuck");
    expect(stuck?.message).toContain(
      `${String(backlog)} opt-out(s) planned for re-nxt are not applied yet; the oldest has waited since ${at}`,
    );
  });
});
