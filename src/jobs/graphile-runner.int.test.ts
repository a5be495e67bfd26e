/**
 * The job runner on PostgreSQL: a job whose payload no handler could take (written by another
 * version, or by hand) is dropped with its reason rather than retried ten times, and the jobs after
 * it run. Workers keep taking jobs when another installation in the same database prepares its own
 * job queue, and say why they stop when their own queue's schema is beyond this version. A worker
 * that stops on an error is made up for; a stop asked for while the queue stops by itself waits for
 * the running jobs.
 */
import { randomBytes } from "node:crypto";
import { sql, type Kysely } from "kysely";
import { describe, expect, it } from "vitest";
import { createLogger, type Logger } from "../observability/logger";
import { capturingLogger } from "../../test/support/capturing-logger";
import { gate } from "../../test/support/gate";
import { storeBackends, type TestStore } from "../../test/support/store-backends";
import type { Database } from "../store/schema";
import type { JobHandlers } from "./catalogue";
import pg from "pg";
import { graphileQueue, jobSchemaLockName, prepareJobSchema, startGraphileRunner } from "./graphile-runner";

const postgres = storeBackends().find((b) => b.name === "postgres");
const url = process.env["TEST_DATABASE_URL"] ?? "";

/** Resolves when a line of the log matches, or fails after a generous while (no timing guessed). */
async function logged(lines: string[], pattern: RegExp): Promise<void> {
  const deadline = Date.now() + 120_000;
  while (!lines.some((l) => pattern.test((JSON.parse(l) as { msg?: string }).msg ?? ""))) {
    if (Date.now() > deadline) throw new Error(`never logged: ${pattern}\n${lines.join("")}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * Announces a migration as graphile-worker does on every migration it runs (the channel is the
 * database's, whatever the schema), again until `heard`: a worker begins to listen a moment after
 * it starts, and an announcement before that reaches nobody.
 */
async function announceUntil(
  db: Kysely<Database>,
  migration: { migrationNumber: number; breaking: boolean },
  heard: () => boolean,
): Promise<void> {
  const deadline = Date.now() + 120_000;
  while (!heard()) {
    if (Date.now() > deadline) throw new Error("the announcement was never heard");
    await sql`select pg_notify('worker:migrate', ${JSON.stringify(migration)})`.execute(db);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const handlersOpening = (open: () => void): JobHandlers => ({
  poll_pair: async () => {
    open();
  },
  sync_pair: async () => undefined,
  drain_inbox: async () => undefined,
  housekeeping: async () => undefined,
});

/** A test store and a job schema prepared on it, both gone once `fn` is done. */
async function withJobSchema(fn: (t: TestStore, schema: string) => Promise<void>): Promise<void> {
  if (postgres === undefined) throw new Error("no PostgreSQL backend");
  const t = await postgres.create();
  const schema = `j_${randomBytes(6).toString("hex")}`;
  try {
    await prepareJobSchema(url, schema, createLogger({ level: "silent" }));
    await fn(t, schema);
  } finally {
    await sql`drop schema if exists ${sql.id(schema)} cascade`.execute(t.store.db);
    await t.cleanup();
  }
}

/**
 * A runner on `schema` taking one job at a time, looking for due jobs every 100 ms; by default its
 * handlers do nothing and it logs nothing.
 */
const runnerOn = (
  schema: string,
  options: { handlers?: JobHandlers; logger?: Logger; onFailed?: (error: unknown) => void } = {},
): ReturnType<typeof startGraphileRunner> =>
  startGraphileRunner({
    connectionString: url,
    schema,
    concurrency: 1,
    handlers: options.handlers ?? handlersOpening(() => undefined),
    logger: options.logger ?? createLogger({ level: "silent" }),
    pollInterval: 100,
    ...(options.onFailed === undefined ? {} : { onFailed: options.onFailed }),
  });

describe.skipIf(postgres?.skip_reason !== undefined)("the job runner (PostgreSQL)", () => {
  it("keeps taking jobs when another installation in the same database prepares its job queue", async () => {
    if (postgres === undefined) throw new Error("no PostgreSQL backend");
    const t = await postgres.create();
    const ours = `j_${randomBytes(6).toString("hex")}`;
    const theirs = `j_${randomBytes(6).toString("hex")}`;
    const exitCode = process.exitCode;
    try {
      await prepareJobSchema(url, ours, createLogger({ level: "silent" }));
      const { logger, lines } = capturingLogger();
      const pollRan = gate();
      const failed: unknown[] = [];
      const runner = await startGraphileRunner({
        connectionString: url,
        schema: ours,
        concurrency: 1,
        handlers: handlersOpening(pollRan.open),
        logger,
        pollInterval: 100,
        onFailed: (error) => failed.push(error),
      });
      try {
        // The other installation's breaking migrations are announced to every worker of the
        // database; this one stops on the announcement, and starts again.
        await prepareJobSchema(url, theirs, createLogger({ level: "silent" }));
        const stoppedItself = /^the job queue stopped taking jobs without being asked/;
        await announceUntil(t.store.db, { migrationNumber: 1, breaking: true }, () =>
          lines.some((l) => stoppedItself.test((JSON.parse(l) as { msg?: string }).msg ?? "")),
        );
        await logged(lines, /^the job queue is taking jobs again$/);
        await sql`select ${sql.id(ours)}.add_job('poll_pair', ${JSON.stringify({ pair_id: "re-cc" })}::json)`.execute(
          t.store.db,
        );
        await pollRan.opened;
      } finally {
        await runner.stop();
      }
      expect(failed).toEqual([]);
      // graphile-worker's "breaking migration" exit code is not left on the process.
      expect(process.exitCode).toBe(exitCode);
    } finally {
      process.exitCode = exitCode;
      await sql`drop schema if exists ${sql.id(ours)} cascade`.execute(t.store.db);
      await sql`drop schema if exists ${sql.id(theirs)} cascade`.execute(t.store.db);
      await t.cleanup();
    }
  });

  it("says why when its own queue's schema was migrated beyond this version, and takes no jobs", async () => {
    const exitCode = process.exitCode;
    try {
      await withJobSchema(async (t, schema) => {
        const failed: unknown[] = [];
        const runner = await runnerOn(schema, {
          onFailed: (error) => {
            failed.push(error);
          },
        });
        try {
          // A newer version's breaking migration of this very schema, announced as it would be.
          await sql`insert into ${sql.id(schema, "migrations")} (id, breaking) values (999999, true)`.execute(
            t.store.db,
          );
          await announceUntil(
            t.store.db,
            { migrationNumber: 999999, breaking: true },
            () => failed.length > 0,
          );
        } finally {
          await runner.stop();
        }
        expect(failed).toHaveLength(1);
        expect(String(failed[0])).toContain("breaking migration 999999");
      });
    } finally {
      process.exitCode = exitCode;
    }
  });

  it("prepares a job schema one process at a time: one that starts while another prepares it waits", async () => {
    if (postgres === undefined) throw new Error("no PostgreSQL backend");
    const t = await postgres.create();
    const schema = `j_${randomBytes(6).toString("hex")}`;
    // Another process preparing the schema holds its lock.
    const other = new pg.Client({ connectionString: url });
    await other.connect();
    try {
      await other.query("select pg_advisory_lock(hashtext($1))", [jobSchemaLockName(schema)]);
      let done = false;
      const preparing = prepareJobSchema(url, schema, createLogger({ level: "silent" })).then(() => {
        done = true;
      });
      // Until it is seen waiting for that lock: then it has not touched the schema.
      // (Or until it is done: then it did not wait, and the test fails below.)
      while (!done) {
        const waiting = await other.query(
          "select count(*)::int as n from pg_stat_activity where wait_event = 'advisory' and query = 'select pg_advisory_lock(hashtext($1))' and pid <> pg_backend_pid()",
        );
        if ((waiting.rows[0] as { n: number }).n > 0) break;
        await new Promise((resolve) => setImmediate(resolve));
      }
      expect(done).toBe(false);
      const made = await sql<{
        n: number;
      }>`select count(*)::int as n from information_schema.schemata where schema_name = ${schema}`.execute(
        t.store.db,
      );
      expect(made.rows[0]?.n).toBe(0);
      await other.query("select pg_advisory_unlock(hashtext($1))", [jobSchemaLockName(schema)]);
      await preparing;
      const after = await sql<{
        n: number;
      }>`select count(*)::int as n from information_schema.schemata where schema_name = ${schema}`.execute(
        t.store.db,
      );
      expect(after.rows[0]?.n).toBe(1);
    } finally {
      await other.end();
      await sql`drop schema if exists ${sql.id(schema)} cascade`.execute(t.store.db);
      await t.cleanup();
    }
  });

  it("drops a job whose payload is not valid, saying why, and runs the next one", async () => {
    await withJobSchema(async (t, schema) => {
      const { logger, lines } = capturingLogger();
      const ran: unknown[] = [];
      const pollRan = gate();
      const handlers: JobHandlers = {
        poll_pair: async (payload) => {
          ran.push(payload);
          pollRan.open();
        },
        sync_pair: async (payload) => {
          ran.push(payload);
        },
        drain_inbox: async (payload) => {
          ran.push(payload);
        },
        housekeeping: async (payload) => {
          ran.push(payload);
        },
      };
      // One job at a time, oldest first: the bad one is taken before the good one.
      await sql`select ${sql.id(schema)}.add_job('sync_pair', ${JSON.stringify({ full: "yes" })}::json)`.execute(
        t.store.db,
      );
      await sql`select ${sql.id(schema)}.add_job('poll_pair', ${JSON.stringify({ pair_id: "re-cc" })}::json)`.execute(
        t.store.db,
      );
      const runner = await runnerOn(schema, { handlers, logger });
      try {
        await pollRan.opened;
      } finally {
        await runner.stop();
      }
      expect(ran).toEqual([{ pair_id: "re-cc" }]);
      // Ended, not waiting for a retry.
      const left = await sql<{ n: string }>`select count(*) as n from ${sql.id(schema)}.jobs`.execute(
        t.store.db,
      );
      expect(Number(left.rows[0]?.n)).toBe(0);
      const dropped = lines
        .map((l) => JSON.parse(l) as { msg?: string; job?: string })
        .filter((l) => l.msg?.startsWith("a job was dropped"));
      expect(dropped).toEqual([
        expect.objectContaining({
          job: "sync_pair",
          msg: expect.stringMatching(/^a job was dropped: job sync_pair: payload pair_id/),
        }),
      ]);
    });
  });

  it("frees the jobs of a worker whose process is gone, never a live worker's, however long its job runs", async () => {
    await withJobSchema(async (t, schema) => {
      const started = gate();
      const finish = gate();
      const handlers: JobHandlers = {
        ...handlersOpening(() => undefined),
        sync_pair: async () => {
          started.open();
          await finish.opened;
        },
      };
      const queue = graphileQueue(schema);
      const jobs = async (): Promise<{ task_identifier: string; locked_by: string | null }[]> =>
        (
          await sql<{ task_identifier: string; locked_by: string | null }>`
            select task_identifier, locked_by from ${sql.id(schema)}.jobs order by id`.execute(t.store.db)
        ).rows;
      const heldSince = (task: string, by: string, ago: string) =>
        sql`update ${sql.id(schema, "_private_jobs")} set locked_by = ${by}, locked_at = now() - ${ago}::interval
            where task_id = (select id from ${sql.id(schema, "_private_tasks")} where identifier = ${task})`.execute(
          t.store.db,
        );
      await sql`select ${sql.id(schema)}.add_job('sync_pair', ${JSON.stringify({ pair_id: "re-cc" })}::json)`.execute(
        t.store.db,
      );
      const runner = await runnerOn(schema, { handlers });
      try {
        await started.opened;
        const [running] = await jobs();
        const live = running?.locked_by ?? "";
        expect(live).not.toBe("");
        // As if its job had run for an hour: its process is alive, so it keeps it.
        await heldSince("sync_pair", live, "1 hour");
        expect(await queue.releaseLost(t.store, 10_000)).toEqual([]);

        // A job a process took before it was killed: no live process shows its worker.
        await sql`select ${sql.id(schema)}.add_job('drain_inbox', ${JSON.stringify({ connection_id: "cc-main" })}::json)`.execute(
          t.store.db,
        );
        await heldSince("drain_inbox", "worker-of-a-killed-process", "1 minute");
        expect(await queue.releaseLost(t.store, 10_000)).toEqual(["worker-of-a-killed-process"]);
        expect(await jobs()).toEqual([
          { task_identifier: "sync_pair", locked_by: live },
          { task_identifier: "drain_inbox", locked_by: null },
        ]);

        // Taken a moment ago, its worker is not asked after yet (a worker shows itself alive a
        // moment after it starts, and may take a job in that moment).
        await heldSince("drain_inbox", "worker-just-started", "1 second");
        expect(await queue.releaseLost(t.store, 10_000)).toEqual([]);
      } finally {
        finish.open();
        await runner.stop();
      }
    });
  });

  it("says it must stop when the connection that shows its workers alive is lost", async () => {
    await withJobSchema(async (t, schema) => {
      const failed: unknown[] = [];
      const stopped = gate();
      const runner = await runnerOn(schema, {
        onFailed: (error) => {
          failed.push(error);
          stopped.open();
        },
      });
      try {
        // Its jobs would now look like a dead process's to every other process.
        const ended = await sql<{ ok: boolean }>`
          select pg_terminate_backend(pid) as ok from pg_stat_activity
          where application_name = ${`concord job workers ${schema}`}`.execute(t.store.db);
        expect(ended.rows.map((r) => r.ok)).toEqual([true]);
        await stopped.opened;
      } finally {
        await runner.stop();
      }
      expect(String(failed[0])).toContain("the connection that shows its job workers alive was lost");
    });
  });

  it("starts its job queue again when a job worker stops on an error, and takes jobs as before", async () => {
    await withJobSchema(async (t, schema) => {
      // The end of the first job finished cannot be recorded: the database refuses it once (as a
      // connection reset under the worker would). graphile-worker's worker then stops for good.
      const db = t.store.db;
      await sql`create sequence ${sql.id(schema, "refuse_once")}`.execute(db);
      await sql`create function ${sql.id(schema, "refuse_once")}() returns trigger language plpgsql as $$
        begin
          if nextval(${sql.lit(`"${schema}".refuse_once`)}::regclass) = 1 then raise exception 'refused once'; end if;
          return old;
        end $$`.execute(db);
      await sql`create trigger refuse_once before delete on ${sql.id(schema, "_private_jobs")}
        for each row execute function ${sql.id(schema, "refuse_once")}()`.execute(db);
      const { logger, lines } = capturingLogger();
      const ran: string[] = [];
      const failed: unknown[] = [];
      const runner = await runnerOn(schema, {
        logger,
        onFailed: (error) => failed.push(error),
        handlers: {
          ...handlersOpening(() => undefined),
          poll_pair: async ({ pair_id }) => {
            ran.push(pair_id);
          },
        },
      });
      const add = (pair_id: string) =>
        sql`select ${sql.id(schema)}.add_job('poll_pair', ${JSON.stringify({ pair_id })}::json)`.execute(db);
      try {
        await add("first");
        await logged(lines, /committing seppuku/);
        // Its only worker gone, the runner is started again and takes the next job.
        await add("second");
        const deadline = Date.now() + 120_000;
        while (!ran.includes("second")) {
          if (Date.now() > deadline) throw new Error(`the next job was never taken\n${lines.join("")}`);
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        await logged(lines, /^a job worker stopped on an error \(refused once\)/);
      } finally {
        await runner.stop();
      }
      expect(ran).toEqual(["first", "second"]);
      expect(failed).toEqual([]);
    });
  });

  it("asked to stop while its queue stops by itself, waits for the running job, which ends recorded", async () => {
    await withJobSchema(async (t, schema) => {
      const started = gate();
      const finish = gate();
      const { logger, lines } = capturingLogger();
      const runner = await runnerOn(schema, {
        logger,
        handlers: {
          ...handlersOpening(() => undefined),
          sync_pair: async () => {
            started.open();
            await finish.opened;
          },
        },
      });
      await sql`select ${sql.id(schema)}.add_job('sync_pair', ${JSON.stringify({ pair_id: "re-cc" })}::json)`.execute(
        t.store.db,
      );
      await started.opened;
      // A breaking migration announced in the database: the queue stops by itself, waiting for
      // its running job.
      await announceUntil(t.store.db, { migrationNumber: 1, breaking: true }, () =>
        lines.some((l) => /detected breaking migration/.test((JSON.parse(l) as { msg?: string }).msg ?? "")),
      );
      // Asked to stop now (a signal), it must not end its connections under the job. It cannot
      // be done before the job is; a while later it must still be waiting.
      const stopping = runner.stop().then(() => "stopped" as const);
      const early = await Promise.race([
        stopping,
        new Promise<"waiting">((resolve) =>
          setTimeout(() => {
            resolve("waiting");
          }, 2_000),
        ),
      ]);
      finish.open();
      expect(await stopping).toBe("stopped");
      expect(early).toBe("waiting");
      // The job's end was recorded: it is gone from the queue, not left locked.
      const left = await sql<{ n: number }>`select count(*)::int as n from ${sql.id(schema)}.jobs`.execute(
        t.store.db,
      );
      expect(left.rows[0]?.n).toBe(0);
    });
  });
});
