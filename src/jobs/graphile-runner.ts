/**
 * The job catalogue on PostgreSQL, run by graphile-worker: jobs are rows in its schema beside the
 * store's, added by its `add_job` function inside the store's own transaction (a webhook's inbox
 * row and its job commit together), and taken by any number of worker processes, each running up
 * to `concurrency` jobs at once. A job that throws is retried by graphile-worker with its back-off;
 * one whose payload does not match the catalogue is dropped with the reason in the log. Each
 * process shows its workers alive by advisory locks on a connection of its own, so that the jobs a
 * killed process held are taken again within seconds (`releaseLost`), not graphile-worker's hours.
 */
import { EventEmitter } from "node:events";
import { sql } from "kysely";
import pg from "pg";
import {
  Logger as WorkerLogger,
  run,
  runMigrations,
  type Runner,
  type TaskList,
  type WorkerEvents,
} from "graphile-worker";
import { errorMessage } from "../core/error-code";
import type { Logger } from "../observability/logger";
import { IDLE_KEEPALIVE, NO_IDLE_SESSION_TIMEOUT } from "../store/open-store";
import type { StoreSession } from "../store/ports";
import { jobQueuePoolSize } from "./connection-budget";
import {
  JOB_NAMES,
  jobKey,
  parsePayload,
  type JobHandlers,
  type JobName,
  type JobQueue,
  type RunningJob,
} from "./catalogue";

/** A job that keeps failing is retried this many times (graphile-worker backs off exponentially). */
const MAX_ATTEMPTS = 10;

/** The job queue's schema: `graphile_worker`, or `<store schema>_jobs` beside a store in its own schema. */
export function jobSchemaFor(storeSchema: string | undefined): string {
  return storeSchema === undefined ? "graphile_worker" : `${storeSchema}_jobs`;
}

/** Adds jobs with graphile-worker's own SQL function, on the store's connection or transaction. */
export function graphileQueue(schema: string): JobQueue {
  const adding: JobQueue["adding"] = (name, payload, options = {}) => {
    const key = jobKey(name, payload);
    return sql`${sql.id(schema)}.add_job(
      identifier => ${name}::text,
      payload => ${JSON.stringify(payload)}::json,
      run_at => ${options.run_at?.toISOString() ?? null}::timestamptz,
      max_attempts => ${MAX_ATTEMPTS}::int,
      job_key => ${key ?? null}::text,
      job_key_mode => ${options.preserve_run_at === true ? "preserve_run_at" : "replace"}::text
    )`;
  };
  return {
    adding,
    async add(store: StoreSession, name, payload, options = {}) {
      await sql`select ${adding(name, payload, options)}`.execute(store.db);
    },
    async unattended(store, keys, stale_ms) {
      if (keys.length === 0) return [];
      const attended = await sql<{ key: string }>`
        select key from ${sql.id(schema)}.jobs
        where key = any(${[...keys]}::text[])
          and attempts < max_attempts
          and (locked_at is null or locked_at > now() - make_interval(secs => ${stale_ms / 1000}))`.execute(
        store.db,
      );
      const seen = new Set(attended.rows.map((r) => r.key));
      return keys.filter((k) => !seen.has(k));
    },
    async releaseLost(store, stale_ms) {
      // Each worker seen holding a job that long: alive while its process holds its lock.
      const holders = await sql<{ locked_by: string }>`
        select distinct locked_by from ${sql.id(schema)}.jobs
        where locked_by is not null
          and locked_at < now() - make_interval(secs => ${stale_ms / 1000})`.execute(store.db);
      const gone: string[] = [];
      for (const { locked_by } of holders.rows) {
        // Taken only to see that it is free, and let go in the same statement (one connection).
        const key = sql`hashtextextended(${workerLockName(locked_by)}, 0)`;
        const free = await sql<{ free: boolean }>`
          select case when pg_try_advisory_lock(${key}) then pg_advisory_unlock(${key}) else false end as free`.execute(
          store.db,
        );
        if (free.rows[0]?.free === true) gone.push(locked_by);
      }
      if (gone.length === 0) return [];
      await sql`select ${sql.id(schema)}.force_unlock_workers(${gone}::text[])`.execute(store.db);
      return gone;
    },
    async holdsKey(store, job, key) {
      const held = await sql<{ id: string }>`
        select id from ${sql.id(schema)}.jobs where id = ${job.id}::bigint and key = ${key}`.execute(
        store.db,
      );
      return held.rows.length > 0;
    },
  };
}

export type GraphileRunnerOptions = {
  connectionString: string;
  schema: string;
  /** Jobs this process runs at once. */
  concurrency: number;
  handlers: JobHandlers;
  logger: Logger;
  /** How often a worker looks for jobs that came due (new jobs wake it at once). Default 1000 ms. */
  pollInterval?: number;
};

/** The advisory lock that lets one process at a time prepare a job schema. */
export const jobSchemaLockName = (schema: string): string => `concord:job-schema:${schema}`;

/**
 * Creates or upgrades the job queue's schema; safe to call from every process at start. One process
 * at a time, so that processes starting together do not race to install the same schema.
 */
export async function prepareJobSchema(
  connectionString: string,
  schema: string,
  logger: Logger,
): Promise<void> {
  const client = new pg.Client({ connectionString });
  await client.connect();
  try {
    await client.query("select pg_advisory_lock(hashtext($1))", [jobSchemaLockName(schema)]);
    await runMigrations({ connectionString, schema, logger: workerLogger(logger) });
  } finally {
    // Ending the session releases its lock, whatever happened.
    await client.end();
  }
}

/** The advisory lock a live process holds for each of its job workers (graphile-worker's ids are random). */
export const workerLockName = (workerId: string): string => `concord:job-worker ${workerId}`;

type WorkerLocks = {
  hold: (workerId: string) => void;
  letGo: (workerId: string) => void;
  end: () => Promise<void>;
};

/**
 * Shows this process's job workers alive: one connection of its own holds a session advisory lock
 * for each, from its start to its stop, and the database lets them go with the connection when the
 * process dies. A job locked by a worker whose lock is free is a dead process's (`releaseLost`).
 * A connection lost while the process lives would show its running jobs as dead, to be taken again
 * elsewhere: `onLost` says so, and the process should stop taking jobs.
 */
async function workerLocks(
  connectionString: string,
  schema: string,
  onLost: (error: unknown) => void,
): Promise<WorkerLocks> {
  // Idle for the process's whole life: neither the network path nor the server may end it for that.
  // Named in pg_stat_activity as what it is.
  const client = new pg.Client({
    connectionString,
    ...IDLE_KEEPALIVE,
    application_name: `concord job workers ${schema}`.slice(0, 63),
  });
  await client.connect();
  await client.query(NO_IDLE_SESSION_TIMEOUT).catch(async (error: unknown) => {
    await client.end().catch(() => undefined);
    throw error;
  });
  let ended = false;
  let lost = false;
  const fail = (error: unknown): void => {
    if (ended || lost) return;
    lost = true;
    onLost(error);
  };
  client.on("error", fail);
  const query = (text: string, workerId: string): void => {
    if (ended || lost) return;
    client.query(text, [workerLockName(workerId)]).catch(fail);
  };
  return {
    hold: (workerId) => {
      query("select pg_advisory_lock(hashtextextended($1, 0))", workerId);
    },
    letGo: (workerId) => {
      query("select pg_advisory_unlock(hashtextextended($1, 0))", workerId);
    },
    end: async () => {
      ended = true;
      await client.end().catch(() => undefined);
    },
  };
}

/** A process's job taker: `stop()` lets the running jobs finish and takes no more. */
export type JobTaker = { stop: () => Promise<void> };

/** graphile-worker's exit code for "a breaking migration was seen". */
const BREAKING_MIGRATION_EXIT = 57;

/**
 * Starts taking jobs, and keeps taking them. graphile-worker stops every worker that listens on a
 * database when a breaking migration of a job schema is announced there, whichever schema it was:
 * the announcement does not name one. Another installation in the same database that prepares its
 * own queue would stop this one's workers for good. So a runner that stops without being asked is
 * started again; starting checks this schema's own migrations, and if they are really beyond what
 * this version supports, it fails and `onFailed` says why (the process should end: its supervisor
 * starts it again, and it fails at start with the same reason until it is upgraded).
 */
export async function startGraphileRunner(
  options: GraphileRunnerOptions & { onFailed?: (error: unknown) => void },
): Promise<JobTaker> {
  const taskList: TaskList = {};
  for (const name of JOB_NAMES)
    taskList[name] = (payload, helpers) =>
      handle(options.handlers, name, payload, { id: helpers.job.id }, options.logger);
  const locks = await workerLocks(options.connectionString, options.schema, (error) => {
    options.logger.error(
      { schema: options.schema },
      `the connection that shows this process's job workers alive was lost (${errorMessage(error)}); its running jobs may be taken again by other processes`,
    );
    options.onFailed?.(
      new Error(`the connection that shows its job workers alive was lost: ${errorMessage(error)}`, {
        cause: error,
      }),
    );
  });
  // One emitter for every runner this process starts: each worker is shown alive from its creation
  // (its lock asked for as it is made, a moment before its first job could be taken: housekeeping
  // asks after no worker that took its job less than 10 s ago) until it has stopped, its last job
  // done.
  const events: WorkerEvents = new EventEmitter();
  events.on("worker:create", ({ worker }) => {
    locks.hold(worker.workerId);
  });
  // The current runner's pool stopping by itself (a breaking migration announced in the database):
  // asked to stop then, the runner would end its connections under the jobs still running.
  events.on("pool:gracefulShutdown", () => {
    poolStopping = true;
  });
  events.on("worker:stop", ({ worker, error }) => {
    locks.letGo(worker.workerId);
    // A worker that could not record its job's end (a connection reset under it) stops for good,
    // and its pool never starts another: the process would take fewer jobs, in the end none, while
    // it looks alive. The runner is started again once its other jobs are done.
    const runner = current;
    if (error === undefined || stopping || poolStopping || runner === undefined || renewing === runner)
      return;
    renewing = runner;
    options.logger.error(
      { schema: options.schema, worker: worker.workerId },
      `a job worker stopped on an error (${errorMessage(error)}); the job queue is started again once its running jobs are done`,
    );
    void runner.stop().catch(() => undefined);
  });
  const start = async (): Promise<Runner> => {
    const exitCode = process.exitCode;
    poolStopping = false;
    const runner = await run({
      events,
      connectionString: options.connectionString,
      schema: options.schema,
      concurrency: options.concurrency,
      maxPoolSize: jobQueuePoolSize(options.concurrency),
      pollInterval: options.pollInterval ?? 1_000,
      noHandleSignals: true,
      logger: workerLogger(options.logger),
      taskList,
      // No cron items: graphile-worker would otherwise read a file named `crontab` in the working
      // directory. Concord schedules its own work (polls reschedule themselves, housekeeping).
      parsedCronItems: [],
    });
    const stoppedItself = (): void => {
      // The exit code it sets on the way is the process's to decide, not the runner's.
      if (process.exitCode === BREAKING_MIGRATION_EXIT) process.exitCode = exitCode;
      if (stopping) return;
      if (renewing === runner)
        options.logger.info(
          { schema: options.schema },
          "the job queue stopped after a job worker's error; starting it again",
        );
      else
        options.logger.warn(
          { schema: options.schema },
          "the job queue stopped taking jobs without being asked (a job schema in the same database was migrated); starting it again",
        );
      restarting = start().then(
        () => {
          options.logger.info({ schema: options.schema }, "the job queue is taking jobs again");
        },
        (error: unknown) => {
          current = undefined;
          options.onFailed?.(error);
        },
      );
    };
    runner.promise.then(stoppedItself, stoppedItself);
    current = runner;
    return runner;
  };
  let stopping = false;
  let poolStopping = false;
  let current: Runner | undefined;
  /** The runner stopped because one of its workers stopped on an error, to be started again. */
  let renewing: Runner | undefined;
  let restarting: Promise<void> | undefined;
  try {
    await start();
  } catch (error) {
    await locks.end();
    throw error;
  }
  return {
    stop: async () => {
      stopping = true;
      await restarting;
      const runner = current;
      current = undefined;
      if (runner !== undefined) {
        // A runner stopping by itself already (its pool shutting down, or being started again after
        // a worker's error): asked to stop, it would end its connections at once, under the jobs
        // still running; wait for it to be done instead. Only then are its workers shown gone.
        if (poolStopping) await runner.promise.catch(() => undefined);
        else await runner.stop().catch(() => runner.promise.catch(() => undefined));
      }
      await locks.end();
    },
  };
}

async function handle(
  handlers: JobHandlers,
  name: JobName,
  payload: unknown,
  job: RunningJob,
  logger: Logger,
): Promise<void> {
  const parsed = parsePayload(name, payload);
  if (!parsed.ok) {
    // No retry can make the payload valid: the job ends here, with the reason, and nothing runs.
    logger.error({ job: name }, `a job was dropped: ${parsed.error}`);
    return;
  }
  await (handlers[name] as (p: unknown, j: RunningJob) => Promise<void>)(parsed.value, job);
}

/** graphile-worker's log lines through Concord's logger (its debug chatter at debug). */
function workerLogger(logger: Logger): WorkerLogger {
  return new WorkerLogger((scope) => (level, message, meta) => {
    const fields = { job_queue: scope.label, task: scope.taskIdentifier, job: scope.jobId, ...meta };
    const said: string = level;
    if (said === "error") logger.error(fields, message);
    else if (said === "warning") logger.warn(fields, message);
    else if (said === "info") logger.info(fields, message);
    else logger.debug(fields, message);
  });
}
