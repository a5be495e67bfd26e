/**
 * Webhook intake with the job queue (PostgreSQL): a verified delivery is stored together with the
 * job that drains it, in one transaction. When the job cannot be written the delivery is not
 * stored either and the sender is told to try again, so no delivery ever waits without a job.
 */
import { randomBytes } from "node:crypto";
import type { AddressInfo } from "node:net";
import type { FastifyInstance } from "fastify";
import { sql } from "kysely";
import { afterEach, beforeEach, describe, expect, it, onTestFinished } from "vitest";
import { createLogger } from "../observability/logger";
import { createEngineRuntime } from "../runs/engine-runtime";
import { buildServer } from "../server/app";
import { storeBackends } from "../../test/support/store-backends";
import { gate } from "../../test/support/gate";
import {
  beforeEachRead,
  runtimeDeps,
  startSyncHarness,
  type SyncHarness,
} from "../../test/support/sync-harness";
import { drainLockName, pairLockName, withNamedLock } from "../store/advisory-lock";
import { graphileQueue, prepareJobSchema } from "./graphile-runner";
import { workerAlive } from "../../test/support/job-workers";

const postgres = storeBackends().find((b) => b.name === "postgres");
const url = process.env["TEST_DATABASE_URL"] ?? "";
const SECRET = "intake-webhook-secret-51c0";

describe.skipIf(postgres?.skip_reason !== undefined)("webhook intake with jobs (PostgreSQL)", () => {
  let h: SyncHarness;
  let server: FastifyInstance | undefined;
  const jobSchema = `j_${randomBytes(6).toString("hex")}`;

  beforeEach(async () => {
    if (postgres === undefined) throw new Error("no PostgreSQL backend");
    h = await startSyncHarness(postgres, {
      configure: (raw) => {
        raw["connections"][0].webhooks = { enabled: true, secret: { env: "RE_WEBHOOK_SECRET" } };
      },
    });
  });
  afterEach(async () => {
    await server?.close();
    await sql`drop schema if exists ${sql.id(jobSchema)} cascade`.execute(h.store.db);
    await h.close();
  });

  let runtime: ReturnType<typeof createEngineRuntime>;
  const serve = async (schema: string): Promise<string> => {
    runtime = createEngineRuntime({
      ...runtimeDeps(h, { RE_WEBHOOK_SECRET: SECRET }),
      jobs: graphileQueue(schema),
    });
    server = buildServer({ version: "test", ready: async () => true, webhooks: runtime.handleWebhook });
    await server.listen({ port: 0, host: "127.0.0.1" });
    return `http://127.0.0.1:${(server.server.address() as AddressInfo).port}`;
  };
  const deliver = (base: string, id: string) =>
    fetch(`${base}/webhooks/re-nxt?webhookKey=${SECRET}`, {
      method: "POST",
      headers: { "content-type": "application/cloudevents+json" },
      body: JSON.stringify([
        {
          specversion: "1.0",
          type: "com.blackbaud.constituent.change.v1",
          source: "renxt",
          id,
          time: h.now().toISOString(),
          data: { id: "c-1" },
        },
      ]),
    });
  const jobs = async () =>
    (
      await sql<{
        task_identifier: string;
        key: string | null;
      }>`select task_identifier, key from ${sql.id(jobSchema)}.jobs`.execute(h.store.db)
    ).rows;

  it("stores the delivery and its drain job together", async () => {
    await prepareJobSchema(url, jobSchema, createLogger({ level: "silent" }));
    const base = await serve(jobSchema);
    const first = await deliver(base, "evt-1");
    expect(first.status).toBe(200);
    expect(await h.store.inbox.countPending()).toBe(1);
    expect(await jobs()).toEqual([{ task_identifier: "drain_inbox", key: "inbox:re-nxt" }]);
    // A second delivery before the drain ran: stored, and the one waiting job drains both.
    expect((await deliver(base, "evt-2")).status).toBe(200);
    expect(await h.store.inbox.countPending()).toBe(2);
    expect(await jobs()).toHaveLength(1);
  });

  it("housekeeping gives a delivery whose drain job is gone a new one", async () => {
    await prepareJobSchema(url, jobSchema, createLogger({ level: "silent" }));
    const base = await serve(jobSchema);
    // Another connection's backlog, older and larger than any one page of deliveries.
    await h.store.inbox.addMany(
      Array.from({ length: 1_200 }, (_, i) => ({
        connection_id: "cc-main",
        changes: [{ external_id: `${i}` }],
      })),
    );
    h.advance(1_000);
    expect((await deliver(base, "evt-1")).status).toBe(200);
    // The job is lost (deleted by hand, or its attempts ran out): the delivery still waits.
    await sql`select ${sql.id(jobSchema)}.remove_job('inbox:re-nxt')`.execute(h.store.db);
    expect(await jobs()).toEqual([]);
    await runtime.handlers.housekeeping({});
    expect(await jobs()).toContainEqual({ task_identifier: "drain_inbox", key: "inbox:re-nxt" });
    expect(await jobs()).toContainEqual({ task_identifier: "drain_inbox", key: "inbox:cc-main" });
    expect(await h.store.inbox.countPending()).toBe(1_201);
  });

  it("housekeeping adds no drain beside one under way, however long it drains", async () => {
    await prepareJobSchema(url, jobSchema, createLogger({ level: "silent" }));
    const base = await serve(jobSchema);
    expect((await deliver(base, "evt-1")).status).toBe(200);
    // The drain's job, taken a while ago by a worker whose drain still holds the connection.
    const worker = await workerAlive(url, "worker-1");
    await sql`update ${sql.id(jobSchema)}._private_jobs
      set locked_at = now() - interval '1 minute', locked_by = 'worker-1'`.execute(h.store.db);
    const waiting = async (): Promise<number> =>
      (
        await sql<{ n: number }>`select count(*)::int as n from ${sql.id(jobSchema)}.jobs
          where task_identifier = 'drain_inbox' and locked_at is null`.execute(h.store.db)
      ).rows[0]?.n ?? -1;
    const release = gate();
    const held = gate();
    const drain = withNamedLock(h.store, drainLockName("re-nxt"), { wait: true }, async () => {
      held.open();
      await release.opened;
    });
    await held.opened;
    try {
      await runtime.handlers.housekeeping({});
      expect(await waiting()).toBe(0);
    } finally {
      release.open();
      await drain;
      await worker.end();
    }
    // The drain's worker is gone (its locks went with it) and the delivery still waits: its job is
    // taken again.
    await runtime.handlers.housekeeping({});
    expect(await waiting()).toBe(1);
  });

  it("housekeeping deletes the plan marks of pairs the config no longer has", async () => {
    await prepareJobSchema(url, jobSchema, createLogger({ level: "silent" }));
    await serve(jobSchema);
    const mark = (pair_id: string) => ({
      pair_id,
      contact_id: "c-1",
      plan_key: "k",
      plan_rev: 1,
      outcome_json: "{}",
      valid_until: null,
    });
    const pairId = h.config.pairs[0]?.id ?? "";
    await h.store.db
      .insertInto("plan_marks")
      .values([mark("a-removed-pair"), mark(pairId)])
      .execute();
    await runtime.handlers.housekeeping({});
    const left = await h.store.db.selectFrom("plan_marks").select("pair_id").execute();
    expect(left.map((r) => r.pair_id)).toEqual([pairId]);
  });

  it("housekeeping deletes deliveries processed longer ago than their retention", async () => {
    await prepareJobSchema(url, jobSchema, createLogger({ level: "silent" }));
    await serve(jobSchema);
    const old = await h.store.inbox.add("re-nxt", [{ external_id: "1" }]);
    await h.store.inbox.markProcessed([old.id]);
    h.advance(h.config.compliance.retention.webhook_deliveries + 1);
    const pending = await h.store.inbox.add("re-nxt", [{ external_id: "2" }]);
    await runtime.handlers.housekeeping({});
    const left = await h.store.db.selectFrom("webhook_inbox").select("id").execute();
    expect(left.map((r) => r.id)).toEqual([pending.id]);
  });

  it("a poll job schedules the next poll an interval after it started, not after it ended", async () => {
    await prepareJobSchema(url, jobSchema, createLogger({ level: "silent" }));
    await serve(jobSchema);
    const pair = h.config.pairs[0];
    if (pair === undefined) throw new Error("no pair");
    // The poll's read of Constant Contact takes 20 s of the clock.
    beforeEachRead(h, "cc-main", () => {
      h.advance(20_000);
    });
    const interval = runtime.status().find((s) => s.pair_id === pair.id)?.poll_interval_ms ?? 0;
    expect(interval).toBeGreaterThan(20_000);
    const started = h.now().getTime();
    await runtime.handlers.poll_pair({ pair_id: pair.id });
    const next = await sql<{
      run_at: Date;
    }>`select run_at from ${sql.id(jobSchema)}.jobs where key = ${`poll:${pair.id}`}`.execute(h.store.db);
    expect(next.rows.map((r) => new Date(r.run_at).getTime())).toEqual([started + interval]);
  });

  it("a poll job finding its pair run by another process runs nothing and comes again in 5 s", async () => {
    await prepareJobSchema(url, jobSchema, createLogger({ level: "silent" }));
    await serve(jobSchema);
    const pair = h.config.pairs[0];
    if (pair === undefined) throw new Error("no pair");
    const runsBefore = await h.store.db.selectFrom("runs").select("id").execute();
    // Another process holds the pair (its run is under way) for as long as the test says.
    const released = gate();
    const taken = gate();
    const other = withNamedLock(h.store, pairLockName(pair.id), { wait: true }, async () => {
      taken.open();
      await released.opened;
    });
    await taken.opened;
    const at = h.now().getTime();
    try {
      await runtime.handlers.poll_pair({ pair_id: pair.id });
    } finally {
      released.open();
      await other;
    }
    expect(await h.store.db.selectFrom("runs").select("id").execute()).toEqual(runsBefore);
    const next = await sql<{
      run_at: Date;
    }>`select run_at from ${sql.id(jobSchema)}.jobs where key = ${`poll:${pair.id}`}`.execute(h.store.db);
    expect(next.rows.map((r) => new Date(r.run_at).getTime())).toEqual([at + 5_000]);
  });

  it("housekeeping leaves a poll that is still reading alone, however long ago it was taken; a poll whose worker is gone is scheduled again", async () => {
    await prepareJobSchema(url, jobSchema, createLogger({ level: "silent" }));
    await serve(jobSchema);
    const pair = h.config.pairs[0];
    if (pair === undefined) throw new Error("no pair");
    await runtime.handlers.poll_pair({ pair_id: pair.id }); // the first poll: a full read, under the pair's lock
    // The poll's job, as a live worker holds it: taken a minute ago (longer than any lost poll is
    // given).
    const worker = await workerAlive(url, "worker-1");
    const takenLongAgo = async (): Promise<void> => {
      await sql`update ${sql.id(jobSchema)}._private_jobs
        set locked_at = now() - interval '1 minute', locked_by = 'worker-1', run_at = now()`.execute(
        h.store.db,
      );
    };
    const waitingPolls = async (): Promise<number> =>
      (
        await sql<{ n: number }>`select count(*)::int as n from ${sql.id(jobSchema)}.jobs
          where task_identifier = 'poll_pair' and locked_at is null`.execute(h.store.db)
      ).rows[0]?.n ?? -1;
    await takenLongAgo();
    expect(await waitingPolls()).toBe(0);
    // The next poll reads (outside the pair's lock) until the test lets it go.
    const reading = gate();
    const release = gate();
    beforeEachRead(h, "cc-main", async () => {
      reading.open();
      await release.opened;
    });
    h.advance(runtime.status().find((s) => s.pair_id === pair.id)?.poll_interval_ms ?? 60_000);
    const poll = runtime.handlers.poll_pair({ pair_id: pair.id });
    try {
      await reading.opened;
      await runtime.handlers.housekeeping({});
      // Not taken for lost: no second poll to read the same records again.
      expect(await waitingPolls()).toBe(0);
      // A second job of the pair's poll, taken meanwhile, reads nothing and comes again in 5 s.
      const at = h.now().getTime();
      await runtime.handlers.poll_pair({ pair_id: pair.id });
      const soon = await sql<{ run_at: Date }>`select run_at from ${sql.id(jobSchema)}.jobs
        where task_identifier = 'poll_pair' and locked_at is null`.execute(h.store.db);
      expect(soon.rows.map((r) => new Date(r.run_at).getTime())).toEqual([at + 5_000]);
    } finally {
      release.open();
      await poll;
      await worker.end();
    }
    // The poll scheduled its next one. Now a worker that took it is gone: the job is held by a
    // worker no process shows alive, the only job of the pair's poll.
    expect(await waitingPolls()).toBe(1);
    await sql`delete from ${sql.id(jobSchema)}._private_jobs`.execute(h.store.db);
    await sql`insert into ${sql.id(jobSchema)}._private_jobs (task_id, payload, key, locked_at, locked_by, max_attempts)
      select id, ${JSON.stringify({ pair_id: pair.id })}::json, ${`poll:${pair.id}`}, now() - interval '1 minute', 'worker-1', 10
      from ${sql.id(jobSchema)}._private_tasks where identifier = 'poll_pair'`.execute(h.store.db);
    await runtime.handlers.housekeeping({});
    expect(await waitingPolls()).toBe(1);
  });

  it("a poll job taken for lost that wakes after the poll housekeeping added ran reads nothing and keeps the next poll's time", async () => {
    await prepareJobSchema(url, jobSchema, createLogger({ level: "silent" }));
    await serve(jobSchema);
    const pair = h.config.pairs[0];
    if (pair === undefined) throw new Error("no pair");
    const key = `poll:${pair.id}`;
    await runtime.handlers.poll_pair({ pair_id: pair.id });
    // A worker, alive, took the next poll's job a minute ago and stalled before its poll began.
    const worker = await workerAlive(url, "worker-1");
    onTestFinished(() => worker.end());
    const stalled = await sql<{ id: string }>`update ${sql.id(jobSchema)}._private_jobs
      set locked_at = now() - interval '1 minute', locked_by = 'worker-1', run_at = now()
      where key = ${key} returning id::text as id`.execute(h.store.db);
    const first = stalled.rows[0];
    if (first === undefined) throw new Error("no poll job");
    const waiting = async () =>
      (
        await sql<{ id: string; run_at: Date }>`select id::text as id, run_at from ${sql.id(jobSchema)}.jobs
          where key = ${key} and locked_at is null`.execute(h.store.db)
      ).rows;
    // Housekeeping takes it for lost and adds the pair's poll again; that job polls.
    await runtime.handlers.housekeeping({});
    const added = (await waiting())[0];
    if (added === undefined) throw new Error("housekeeping added no poll");
    let reads = 0;
    beforeEachRead(h, "cc-main", () => {
      reads += 1;
    });
    h.advance(1_000);
    await runtime.handlers.poll_pair({ pair_id: pair.id }, { id: added.id });
    expect(reads).toBeGreaterThan(0);
    const next = await waiting();
    expect(next).toHaveLength(1);
    // The stalled worker wakes: its job no longer holds the pair's poll.
    reads = 0;
    h.advance(1_000);
    await runtime.handlers.poll_pair({ pair_id: pair.id }, { id: first.id });
    expect(reads).toBe(0);
    expect(await waiting()).toEqual(next);
  });

  it("stores nothing when its job cannot be written, and the sender is told to try again", async () => {
    // The job queue's schema is missing (never prepared): adding the job fails.
    const base = await serve(jobSchema);
    const answer = await deliver(base, "evt-1");
    expect(answer.status).toBeGreaterThanOrEqual(500);
    expect(await h.store.inbox.countPending()).toBe(0);
    // The sender's retry, once the queue is there, is taken: the event was not remembered as seen.
    await prepareJobSchema(url, jobSchema, createLogger({ level: "silent" }));
    expect((await deliver(base, "evt-1")).status).toBe(200);
    expect(await h.store.inbox.countPending()).toBe(1);
  });
});
