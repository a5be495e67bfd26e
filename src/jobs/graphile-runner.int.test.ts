/**
 * The job runner on PostgreSQL: a job whose payload no handler could take (written by another
 * version, or by hand) is dropped with its reason rather than retried ten times, and the jobs after
 * it run.
 */
import { randomBytes } from "node:crypto";
import { sql } from "kysely";
import { describe, expect, it } from "vitest";
import { createLogger } from "../observability/logger";
import { capturingLogger } from "../../test/support/capturing-logger";
import { gate } from "../../test/support/gate";
import { storeBackends } from "../../test/support/store-backends";
import type { JobHandlers } from "./catalogue";
import pg from "pg";
import { jobSchemaLockName, prepareJobSchema, startGraphileRunner } from "./graphile-runner";

const postgres = storeBackends().find((b) => b.name === "postgres");
const url = process.env["TEST_DATABASE_URL"] ?? "";

describe.skipIf(postgres?.skip_reason !== undefined)("the job runner (PostgreSQL)", () => {
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
    if (postgres === undefined) throw new Error("no PostgreSQL backend");
    const t = await postgres.create();
    const schema = `j_${randomBytes(6).toString("hex")}`;
    try {
      await prepareJobSchema(url, schema, createLogger({ level: "silent" }));
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
      const runner = await startGraphileRunner({
        connectionString: url,
        schema,
        concurrency: 1,
        handlers,
        logger,
        pollInterval: 100,
      });
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
    } finally {
      await sql`drop schema if exists ${sql.id(schema)} cascade`.execute(t.store.db);
      await t.cleanup();
    }
  });
});
