/**
 * The engine's runtime for `serve` and `worker`, from an opened engine: on SQLite the in-process
 * runner (one process does everything); on PostgreSQL the job queue (graphile-worker in the same
 * database), with this process running up to `workers` jobs at once (0: it only takes webhooks and
 * serves the API and UI, and other processes run `concord worker`). ADR 26.
 */
import type { Env } from "./config/load-env";
import type { SecretSources } from "./config/resolve-secret-ref";
import { connectionLimits, shortOfConnections } from "./jobs/connection-budget";
import { graphileQueue, jobSchemaFor, prepareJobSchema, startGraphileRunner } from "./jobs/graphile-runner";
import type { EngineContext } from "./open-engine";
import { createEngineRuntime, type EngineRuntime } from "./runs/engine-runtime";
import type { SyncReport } from "./runs/sync-pair";
import { errorMessage } from "./core/error-code";

export type RunningEngine = {
  runtime: EngineRuntime;
  /** Whether the work runs as jobs that other processes may take (PostgreSQL). */
  jobs: boolean;
  /** Starts the runtime (the in-process timer, or scheduling housekeeping) and this process's workers. */
  start: () => Promise<void>;
  /** Lets running jobs finish, takes no more, and stops the runtime. */
  stop: () => Promise<void>;
};

export async function engineRuntimeFor(
  context: EngineContext,
  options: {
    env: Pick<Env, "DATABASE_URL" | "DATABASE_SCHEMA">;
    workers: number;
    secrets: SecretSources;
    onRun?: (report: SyncReport) => void;
    /** This process's workers stopped and could not start again (the message says why). */
    onJobsFailed?: (message: string) => void;
  },
): Promise<RunningEngine> {
  const url = options.env.DATABASE_URL;
  const base = {
    ...context.syncDeps(),
    logger: context.logger,
    secrets: options.secrets,
    ...(options.onRun === undefined ? {} : { onRun: options.onRun }),
    problems: context.health,
  };
  if (url === undefined || url === "" || context.store.dialect !== "postgres") {
    const runtime = createEngineRuntime(base);
    return {
      runtime,
      jobs: false,
      start: () => {
        runtime.start();
        return Promise.resolve();
      },
      stop: () => runtime.stop(),
    };
  }
  const schema = jobSchemaFor(options.env.DATABASE_SCHEMA);
  await prepareJobSchema(url, schema, context.logger).catch((error: unknown) => {
    throw new Error(`the job queue's schema "${schema}" could not be prepared: ${errorMessage(error)}`, {
      cause: error,
    });
  });
  // Room for what this process may open (its pools grow as work comes): said once, at start. The
  // connection asking is this process's own, already counted as in use.
  // A check that cannot be made does not stop the start: the pools meet the limits either way.
  const short = await connectionLimits(context.store.db).then(
    (limits) => shortOfConnections(options.workers, limits, 1),
    (error: unknown) => `the database's connection limits could not be read: ${errorMessage(error)}`,
  );
  if (short !== undefined) context.logger.warn(short);
  const runtime = createEngineRuntime({ ...base, jobs: graphileQueue(schema) });
  let runner: Awaited<ReturnType<typeof startGraphileRunner>> | undefined;
  return {
    runtime,
    jobs: true,
    start: async () => {
      runtime.start();
      if (options.workers > 0)
        runner = await startGraphileRunner({
          connectionString: url,
          schema,
          concurrency: options.workers,
          handlers: runtime.handlers,
          logger: context.logger,
          onFailed: (error) =>
            options.onJobsFailed?.(
              `the job queue in "${schema}" stopped and could not start again: ${errorMessage(error)}`,
            ),
        }).catch((error: unknown) => {
          throw new Error(`the job queue in "${schema}" could not start: ${errorMessage(error)}`, {
            cause: error,
          });
        });
    },
    stop: async () => {
      await runner?.stop();
      await runtime.stop();
    },
  };
}
