/**
 * The job catalogue on PostgreSQL, run by graphile-worker: jobs are rows in its schema beside the
 * store's, added by its `add_job` function inside the store's own transaction (a webhook's inbox
 * row and its job commit together), and taken by any number of worker processes, each running up
 * to `concurrency` jobs at once. A job that throws is retried by graphile-worker with its back-off;
 * one whose payload does not match the catalogue is dropped with the reason in the log.
 */
import { sql } from "kysely";
import pg from "pg";
import { Logger as WorkerLogger, run, runMigrations, type Runner, type TaskList } from "graphile-worker";
import type { Logger } from "../observability/logger";
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
  const start = async (): Promise<Runner> => {
    const exitCode = process.exitCode;
    const runner = await run({
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
  let current: Runner | undefined;
  let restarting: Promise<void> | undefined;
  await start();
  return {
    stop: async () => {
      stopping = true;
      await restarting;
      const runner = current;
      current = undefined;
      // A runner that is stopping by itself already: wait for it to be done.
      if (runner !== undefined) await runner.stop().catch(() => runner.promise.catch(() => undefined));
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
