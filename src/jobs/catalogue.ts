/**
 * The job catalogue: every kind of work the engine runs, with its payload's schema and how its jobs
 * are keyed. One catalogue, two runners: graphile-worker on PostgreSQL (any number of `concord
 * worker` processes) and the in-process runner of a single process on SQLite, which calls the same
 * handlers from its timer (ADR 26).
 *
 * - `poll_pair`: polls one pair (a full reconciliation when it is due), then schedules its own next
 *   run at the pair's interval. Keyed `poll:<pair>`: one scheduled poll per pair.
 * - `sync_pair`: runs one pair now (a manual run, or the contacts a delivery named).
 * - `drain_inbox`: re-reads and syncs one connection's stored webhook deliveries. Keyed
 *   `inbox:<connection>`: deliveries arriving together are drained by one job.
 * - `housekeeping`: the installation's periodic checks (webhook subscriptions, problems, sign-ups,
 *   polls and deliveries no job is waiting for and no live job holds the lock of), then schedules
 *   itself again. Keyed
 *   `housekeeping`: one for the whole installation.
 *
 * A pair's runs never overlap: whatever runs a pair holds the pair's lock (`pair:<id>`), which
 * every process respects (src/store/advisory-lock.ts).
 */
import type { RawBuilder } from "kysely";
import { z } from "zod";
import { err, ok, type Result } from "../core/result";
import type { StoreSession } from "../store/ports";

const Id = z.string().min(1).max(200);

export const JOB_PAYLOADS = {
  poll_pair: z.strictObject({ pair_id: Id }),
  sync_pair: z.strictObject({
    pair_id: Id,
    full: z.boolean().optional(),
    contact_ids: z.array(Id).max(10_000).optional(),
  }),
  drain_inbox: z.strictObject({ connection_id: Id }),
  housekeeping: z.strictObject({}),
} as const;

export type JobName = keyof typeof JOB_PAYLOADS;
export type JobPayload<N extends JobName> = z.infer<(typeof JOB_PAYLOADS)[N]>;
export const JOB_NAMES = Object.keys(JOB_PAYLOADS) as JobName[];

/** How often the installation's housekeeping runs. */
export const HOUSEKEEPING_MS = 5_000;

/** The key that makes a job one of its kind: a later add replaces the waiting job (or its time). */
export function jobKey<N extends JobName>(name: N, payload: JobPayload<N>): string | undefined {
  switch (name) {
    case "poll_pair":
      return `poll:${(payload as JobPayload<"poll_pair">).pair_id}`;
    case "drain_inbox":
      return `inbox:${(payload as JobPayload<"drain_inbox">).connection_id}`;
    case "housekeeping":
      return "housekeeping";
    default:
      return undefined;
  }
}

/** A job's payload as stored, checked against its schema; a clear error names the job and field. */
export function parsePayload<N extends JobName>(name: N, payload: unknown): Result<JobPayload<N>, string> {
  const parsed = JOB_PAYLOADS[name].safeParse(payload);
  if (parsed.success) return ok(parsed.data as JobPayload<N>);
  const issue = parsed.error.issues[0];
  return err(
    `job ${name}: payload ${issue?.path.join(".") || "(root)"}: ${issue?.message ?? "invalid"}; expected ${JSON.stringify(z.toJSONSchema(JOB_PAYLOADS[name]).properties ?? {})}`,
  );
}

/** The job a handler runs for, where the runner has job rows (graphile-worker): its id. */
export type RunningJob = { id: string };

/** The handlers a runner calls, one per job in the catalogue. */
export type JobHandlers = { [N in JobName]: (payload: JobPayload<N>, job?: RunningJob) => Promise<void> };

export type AddJobOptions = { run_at?: Date; preserve_run_at?: boolean };

/** Where jobs are added: in the store's transaction, so a job and the row it is about commit together. */
export type JobQueue = {
  add<N extends JobName>(
    store: StoreSession,
    name: N,
    payload: JobPayload<N>,
    options?: AddJobOptions,
  ): Promise<void>;
  /**
   * The SQL expression that adds the job, for a statement of the caller's: rows written by that
   * statement and the job commit together without a transaction of their own (the webhook intake
   * stores a batch of deliveries and their drain jobs in one statement).
   */
  adding<N extends JobName>(name: N, payload: JobPayload<N>, options?: AddJobOptions): RawBuilder<unknown>;
  /**
   * Of these job keys, those no job is waiting under and none runs under that took its job less
   * than `stale_ms` ago: a job a killed worker held looks like this, and is added again.
   */
  unattended(store: StoreSession, keys: readonly string[], stale_ms: number): Promise<string[]>;
  /**
   * Frees the jobs of workers that are gone: a worker seen holding a job for more than `stale_ms`
   * whose process no longer shows it alive (a process killed mid-job). Its jobs are taken again at
   * once, not after the queue's own four hours. Says which workers' jobs were freed.
   */
  releaseLost(store: StoreSession, stale_ms: number): Promise<string[]>;
  /**
   * Whether the job still holds its key. It does not once a job was added under the key while it
   * ran (housekeeping took it for lost): that newer job does the work, and this one is stale.
   */
  holdsKey(store: StoreSession, job: RunningJob, key: string): Promise<boolean>;
};
