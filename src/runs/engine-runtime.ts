/**
 * The engine as a long-running service (DESIGN.md §3 triggers): webhook deliveries are stored in a
 * durable inbox before they are acknowledged and then re-read and synced for just their contacts;
 * each pair is polled at its interval (Constant Contact has no contact webhooks); a full
 * reconciliation runs on its schedule; and manual runs queue behind whatever is running. Runs of
 * one pair never overlap.
 */
import { z } from "zod";
import { pairPollIntervalMs } from "../config/check-cross-references";
import type { Pair } from "../config/concord-config";
import { resolveSecretRef, type SecretSources } from "../config/resolve-secret-ref";
import { webhookSecretProblem } from "../config/check-config-against-env";
import type { WebhookChange, WebhookRequest } from "../connectors/connector";
import type { ConnectionHealthTracker } from "../connections/connection-health";
import { flushConnections } from "../connections/open-connection";
import { dropMarksOfOtherPairs } from "../pipeline/plan-marks";
import { HOUSEKEEPING_MS, jobKey, type JobHandlers, type JobPayload, type JobQueue } from "../jobs/catalogue";
import type { Logger } from "../observability/logger";
import { logThrottle } from "../observability/log-throttle";
import {
  drainLockName,
  pairLockName,
  pollLockName,
  withNamedLock,
  withNamedLocks,
} from "../store/advisory-lock";
import type { InboxItem, JsonValue, StoreSession } from "../store/ports";
import { errorMessage } from "../core/error-code";
import { recordAnnouncedOptOuts, recordWebhookChanges } from "../pipeline/pull-connection";
import { inboxWriter } from "./inbox-writer";
import { dueSignups, forgetOldSignups, placeConfirmedSignups, type PlacedSignup } from "./signup";
import { problemWatch } from "./watch-problems";
import {
  distinctChanges,
  MAX_EVENTS_PER_DELIVERY,
  recentReads,
  seenEvents,
  webhookShareSpent,
} from "./webhook-flood";
import {
  planKeyFor,
  pullPair,
  syncPair,
  type SyncDeps,
  type SyncOptions,
  type SyncReport,
} from "./sync-pair";
import { listChangesSeen, resolvePair, type ResolvedPair } from "../pipeline/resolve-pair";
import { planStands, recordPlanStanding } from "../pipeline/plan-standing";
import type { PullReport } from "../pipeline/pull-connection";
import type { RecordCounts } from "../pipeline/record-changes";

type HeldCounts = Pick<
  RecordCounts,
  "held_opt_ins" | "held_observations" | "ambiguous_records" | "records_refused_erased"
>;
const heldCounts = (c: HeldCounts): HeldCounts => ({
  held_opt_ins: c.held_opt_ins,
  held_observations: c.held_observations,
  ambiguous_records: c.ambiguous_records,
  records_refused_erased: c.records_refused_erased,
});
const addHeld = (into: HeldCounts, from: HeldCounts): void => {
  for (const key of Object.keys(into) as (keyof HeldCounts)[]) into[key] += from[key];
};

const FULL_RECONCILIATION_STREAM = "full_reconciliation";
const FULL_RECONCILIATION_FAILED_STREAM = "full_reconciliation_failed";
/** A full reconciliation that failed is tried again this long after (at most its own schedule). */
export const FULL_RETRY_AFTER_FAILURE_MS = 30 * 60_000;
/** What a poll that found its pair's plan standing gives instead of a run's report. */
const STANDS = "stands" as const;

/** A webhook delivery whose re-read keeps failing is given up after this many attempts. */
export const INBOX_MAX_ATTEMPTS = 8;
/**
 * A delivery whose re-read fails for a reason of the vendor or the connection (an outage, a spent
 * quota, credentials to renew), not of the delivery, is kept this long whatever its attempts: the
 * vendor would have resent it for about as long (Event Grid a day), had it not been acknowledged.
 */
export const INBOX_KEEP_THROUGH_OUTAGE_MS = 24 * 3_600_000;
const OUTAGE_CODES: ReadonlySet<string> = new Set([
  "vendor_unavailable",
  "network_error",
  "rate_limited",
  "quota_exceeded",
  "auth_invalid",
  "auth_missing",
]);
/** The pause after a delivery's first failed re-read; it doubles with each failure, up to the max. */
const INBOX_RETRY_BASE_MS = 10_000;
/** How long a resolved webhook secret is used before it is read again. */
const SECRET_CACHE_MS = 60_000;
const INBOX_RETRY_MAX_MS = 3_600_000;
/** Failures a later attempt may cure; any other (a 400, 403, 404 for the record) gives the delivery up. */
const RETRYABLE_CODES: ReadonlySet<string> = new Set([...OUTAGE_CODES, "bad_response"]);

export type WebhookResponse = {
  status: number;
  headers?: Record<string, string>;
  body?: Record<string, unknown>;
};

export type EngineRuntimeDeps = SyncDeps & {
  logger: Logger;
  /** Where webhook secrets (`{ env }`, `{ stored }`) are resolved from. */
  secrets: SecretSources;
  /** Called with every finished run (metrics, the UI's live view). */
  onRun?: (report: SyncReport) => void;
  /**
   * Raises and clears problems once each, on every alert channel (the connection health tracker):
   * lost webhook subscriptions, quotas spent, outages, stuck opt-outs, legal clocks.
   */
  problems?: Pick<ConnectionHealthTracker, "raise" | "clear">;
  /**
   * PostgreSQL with workers (src/jobs/): a webhook's delivery is stored with its job in one
   * transaction, polls and the installation's checks are self-rescheduling jobs any worker takes,
   * and a pair's lock holds across processes. Absent: the in-process runner of one process, whose
   * timer calls the same handlers.
   */
  jobs?: JobQueue;
};

/** What the webhook check found for one connection that pushes its changes. */
export type WebhookCheck = {
  connection_id: string;
  status: "registered" | "recreated" | "failed" | "not_registered";
  created: number;
  kept: number;
  message: string;
};

/** How often `serve` makes sure each pushing system still has its webhook subscriptions. */
export const WEBHOOK_CHECK_MS = 3_600_000;
/** How often the deliveries whose retention is over are deleted, and how many a statement, a turn. */
export const INBOX_PRUNE_MS = 600_000;
const INBOX_PRUNE_BATCH = 5_000;
const INBOX_PRUNE_TURN = 100_000;

export type PairStatus = {
  pair_id: string;
  poll_interval_ms: number;
  last_run_at: string | null;
  next_run_at: string | null;
  last_status: SyncReport["status"] | null;
  running: boolean;
};

export type EngineRuntime = {
  handleWebhook: (connectionId: string, request: WebhookRequest) => Promise<WebhookResponse>;
  /** Runs a sync of one pair (or all) now, queued behind any run of that pair. */
  syncNow: (pairId?: string, options?: SyncOptions) => Promise<SyncReport[]>;
  /** Processes stored webhook deliveries; returns how many were processed. */
  drainInbox: () => Promise<number>;
  /** Runs whatever is due (polls, the full reconciliation, inbox retries). The timer calls it. */
  tick: () => Promise<void>;
  start: (tickMs?: number) => void;
  stop: () => Promise<void>;
  /** Resolves once every queued run and delivery is done (tests, shutdown). */
  idle: () => Promise<void>;
  /**
   * Makes sure every connection with `webhooks.enabled` is subscribed at `server.public_url`: on
   * start, then every hour at a tick; a subscription the vendor dropped is made again and alerted.
   */
  ensureWebhooks: () => Promise<WebhookCheck[]>;
  status: () => PairStatus[];
  /**
   * Runs `fn` as a run of the pair: queued behind the pair's other runs and shown as running (the
   * API applies stored plans and reconciles through it, so those never overlap a sync either).
   */
  runExclusive: <T>(pairId: string, fn: () => Promise<T>) => Promise<T>;
  /**
   * Runs `fn` while no pair runs, in this process or (with workers) any other: behind every pair's
   * queued runs, holding every pair's lock. An erasure runs so, so no run in flight sends or stores
   * the person's data after Concord forgot them.
   */
  runBesideNoPair: <T>(fn: () => Promise<T>) => Promise<T>;
  /**
   * Adds confirmed sign-ups to the sign-up platform (as a run of its pair, so never beside a sync of
   * it) and carries each person's consent to every system now; a tick retries what failed.
   */
  placeSignups: (alsoSync?: readonly string[]) => Promise<PlacedSignup[]>;
  /** The job catalogue's handlers (src/jobs/catalogue.ts), which a worker runs. */
  handlers: JobHandlers;
};

/**
 * A poll job a worker took this long ago, whose poll lock and pair lock nobody holds, is taken for
 * lost (its worker was killed) and scheduled again. A live poll holds its poll lock from a few
 * milliseconds in, through its reads (made before it takes the pair) and its run.
 */
const POLL_LOST_MS = 10_000;
/**
 * A job a worker took this long ago, whose process no longer shows that worker alive, is freed to be
 * taken again (its process was killed mid-job). A worker's process asks for its lock as it makes
 * it, within milliseconds of its first job: a job taken less than this long ago is not asked after.
 */
const JOB_LOST_MS = 10_000;
/** A poll that found its pair run by another process comes again after this. */
const BUSY_RETRY_MS = 5_000;
/**
 * When the next poll is due: an interval after the last one started, so a pair is polled at its
 * interval however long its polls take (what the quota check of `poll_interval` counts on); at
 * once when a poll took longer than the interval.
 */
export const nextPollAt = (started: number, interval: number, now: Date): number =>
  Math.max(started + interval, now.getTime());

/** How often each process makes sure the installation's housekeeping job is scheduled. */
const HOUSEKEEPING_SEED_MS = 30_000;

/** The pair's poll interval (`pairPollIntervalMs`). */
export function pollIntervalOf(deps: Pick<SyncDeps, "config">, pair: Pair): number {
  return pairPollIntervalMs(deps.config, pair) ?? Number.POSITIVE_INFINITY;
}

export function createEngineRuntime(deps: EngineRuntimeDeps): EngineRuntime {
  const queues = new Map<string, Promise<unknown>>();
  /** Runs that started before this runtime was made belong to a process that is gone. */
  const startedAt = deps.now().toISOString();
  const queuedPolls = new Set<string>();
  const state = new Map<string, PairStatus>();
  for (const pair of deps.config.pairs)
    state.set(pair.id, {
      pair_id: pair.id,
      poll_interval_ms: pollIntervalOf(deps, pair),
      last_run_at: null,
      next_run_at: null,
      last_status: null,
      running: false,
    });
  // Each connection's webhook secret, resolved at most once a minute: a delivery does not wait for
  // the store, and a secret replaced while Concord runs (`concord secrets set`) is the one checked,
  // and the old one refused, within a minute.
  const secretCache = new Map<string, { secret: string; until: number }>();
  /** Each connection's webhook secret as last resolved, to see it replaced. */
  const lastSecrets = new Map<string, string>();
  /** Connections whose webhook secret was replaced since their subscriptions were last made. */
  const rotatedSecrets = new Set<string>();
  const watch = deps.problems
    ? problemWatch({ store: deps.store, config: deps.config, now: deps.now, problems: deps.problems })
    : undefined;
  let draining: Promise<number> | undefined;
  const seen = seenEvents(deps.now);
  const reads = recentReads();
  // Connections whose webhook share of today's quota is spent, told once each.
  const shareSpentTold = new Set<string>();
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;

  const jobs = deps.jobs;
  const intake = inboxWriter(deps.store, jobs);
  /**
   * Runs `fn` as the pair's only run: behind this process's other runs of it, and, with workers,
   * holding the pair's lock that every process respects. A run a killed process left "running" is
   * marked interrupted once the lock is held (nothing else can be running it then).
   * `wait: false` gives up (undefined) when another process runs the pair.
   */
  /** Runs `fn` behind this process's queued runs of the pair, and makes the pair's later runs wait for it. */
  const enqueue = <T>(pairId: string, run: () => Promise<T>): Promise<T> => {
    const previous = queues.get(pairId) ?? Promise.resolve();
    const next = previous.then(run, run);
    queues.set(
      pairId,
      next.catch(() => undefined),
    );
    return next;
  };
  const exclusiveOr = <T>(pairId: string, wait: boolean, fn: () => Promise<T>): Promise<T | undefined> => {
    const locked =
      jobs === undefined
        ? fn
        : async (): Promise<T | undefined> => {
            const held = await withNamedLock(deps.store, pairLockName(pairId), { wait }, async () => {
              await deps.store.runs.interruptRunning(deps.now().toISOString(), { pair_id: pairId });
              return fn();
            });
            return held.acquired ? held.value : undefined;
          };
    return enqueue(pairId, locked);
  };
  /** Runs `fn` as every pair's only run: behind each pair's queue, then holding every pair's lock. */
  const besideNoPair = <T>(fn: () => Promise<T>): Promise<T> => {
    const ids = deps.config.pairs.map((p) => p.id).sort();
    const locked = (): Promise<T> =>
      jobs === undefined ? fn() : withNamedLocks(deps.store, ids.map(pairLockName), fn);
    // Nested in sorted order: each pair's queue waits for the next one's, the last runs `fn`.
    const nest = (i: number): Promise<T> =>
      i === ids.length ? locked() : enqueue(ids[i]!, () => nest(i + 1));
    return nest(0);
  };
  const exclusive = async <T>(pairId: string, fn: () => Promise<T>): Promise<T> =>
    (await exclusiveOr(pairId, true, fn)) as T;

  const runSync = (pair: Pair, options: SyncOptions): Promise<SyncReport> =>
    exclusive(pair.id, () => syncLocked(pair, options));
  const syncLocked = async (pair: Pair, options: SyncOptions): Promise<SyncReport> => {
    const s = state.get(pair.id);
    if (s) s.running = true;
    try {
      const report = await syncPair(deps, pair, options);
      logRun(deps.logger, report, options);
      deps.onRun?.(report);
      await watch?.afterRun(report).catch((error: unknown) => {
        deps.logger.error({ err: error }, "checking a run for problems failed");
      });
      if (s) {
        s.last_status = report.status;
        if (options.contact_ids === undefined) {
          s.last_run_at = deps.now().toISOString();
          s.next_run_at = new Date(deps.now().getTime() + s.poll_interval_ms).toISOString();
        }
      }
      return report;
    } finally {
      if (s) s.running = false;
    }
  };

  const pairsOf = (connectionId: string): Pair[] =>
    deps.config.pairs.filter(
      (p) => p.crm === connectionId || p.platforms.some((x) => x.connection === connectionId),
    );

  const webhookSecret = async (
    connectionId: string,
  ): Promise<{ ok: true; secret: string } | { ok: false; message: string }> => {
    const cached = secretCache.get(connectionId);
    if (cached !== undefined && deps.now().getTime() < cached.until)
      return { ok: true, secret: cached.secret };
    secretCache.delete(connectionId);
    const connection = deps.config.connections.find((c) => c.id === connectionId);
    const ref = connection?.webhooks.secret;
    if (!ref)
      return {
        ok: false,
        message: `connections.${connectionId}.webhooks.secret is not set: webhooks cannot be verified, so none are accepted.`,
      };
    const resolved = await resolveSecretRef(ref, deps.secrets);
    if (!resolved.ok) return { ok: false, message: resolved.error.message };
    const weak = webhookSecretProblem(resolved.value);
    if (weak !== undefined)
      return {
        ok: false,
        message: `connections.${connectionId}.webhooks.secret: ${weak}; none are accepted.`,
      };
    secretCache.set(connectionId, { secret: resolved.value, until: deps.now().getTime() + SECRET_CACHE_MS });
    const before = lastSecrets.get(connectionId);
    lastSecrets.set(connectionId, resolved.value);
    if (before !== undefined && before !== resolved.value) {
      // The vendor still delivers to the URLs with the old secret, refused from now on: the
      // subscriptions are made again with the new one now, not at the next hourly check.
      rotatedSecrets.add(connectionId);
      deps.logger.info(
        { connection: connectionId },
        `connections.${connectionId}.webhooks.secret was replaced: its webhook subscriptions are made again with it now`,
      );
      if (deps.config.server.public_url !== undefined) void ensureWebhooks().catch(() => undefined);
    }
    return { ok: true, secret: resolved.value };
  };

  /** Refused deliveries: one line a minute per connection and reason. */
  const rejectedLog = logThrottle(deps.now);
  const handleWebhook = async (connectionId: string, request: WebhookRequest): Promise<WebhookResponse> => {
    const connection = deps.config.connections.find((c) => c.id === connectionId);
    const opened = deps.connections.get(connectionId);
    const handler = opened?.manifest.webhooks;
    if (!connection || !opened || !handler || !connection.webhooks.enabled)
      return {
        status: 404,
        body: {
          code: "webhook_not_configured",
          message: `No webhook receiver for connection "${connectionId}": it does not exist, its system sends none, or webhooks.enabled is false.`,
        },
      };
    const secret = await webhookSecret(connectionId);
    if (!secret.ok) {
      // The why is the operator's (the log says it); the caller, whoever it is, learns only that.
      deps.logger.warn({ connection: connectionId }, `webhook refused: ${secret.message}`);
      return {
        status: 503,
        body: {
          code: "webhook_unavailable",
          message:
            "This receiver cannot verify deliveries yet, so none is stored; the operator's log says why. Retry later.",
        },
      };
    }
    const handling = handler.handle(request, secret.secret);
    switch (handling.kind) {
      case "handshake":
        return { status: handling.status, headers: handling.headers };
      case "rejected": {
        // Anyone may send these (a guesser, a scanner): one line a minute per connection and
        // reason, with how many were refused since, so they cannot flood the log.
        const line = rejectedLog(`${connectionId}\u0000${handling.code}`);
        if (line.log)
          deps.logger.warn(
            { connection: connectionId, code: handling.code, refused_since: line.held_back },
            `webhook rejected: ${handling.message}`,
          );
        return { status: handling.status, body: { code: handling.code, message: handling.message } };
      }
      case "events": {
        if (handling.skipped !== undefined)
          deps.logger.warn(
            { connection: connectionId, skipped: handling.skipped.slice(0, 5) },
            `webhook: ${handling.skipped.length} event(s) of a delivery could not be read and were left out; the rest is kept`,
          );
        const events = handling.changes.filter((c) => c.change !== "test");
        if (events.length > MAX_EVENTS_PER_DELIVERY) {
          const message = `A delivery may carry at most ${MAX_EVENTS_PER_DELIVERY} events; this one has ${events.length}. Nothing was stored; the records are read at the next poll.`;
          deps.logger.warn(
            { connection: connectionId, events: events.length },
            `webhook refused: ${message}`,
          );
          return { status: 413, body: { code: "webhook_too_many_events", message } };
        }
        const claim = seen.claim(connectionId, events);
        const { fresh } = claim;
        const changes = distinctChanges(fresh);
        const duplicates = events.length - fresh.length;
        // Stored before it is acknowledged: a crash after this answer loses nothing. Deliveries
        // arriving together commit together; with workers, with the job that drains them.
        try {
          if (changes.length > 0) await intake.add(connectionId, changes);
          claim.settle(true);
        } catch (error) {
          claim.settle(false);
          throw error;
        }
        // Events another delivery is storing (the vendor's retry of a slow answer) are acknowledged
        // only once stored: if that write failed, this delivery fails too, and the vendor sends again.
        if (!(await Promise.all(claim.elsewhere)).every(Boolean))
          return {
            status: 503,
            body: {
              code: "webhook_not_stored",
              message:
                "An earlier delivery of the same events could not be stored, so neither is this one; send it again.",
            },
          };
        if (changes.length === 0) return { status: 200, body: { accepted: 0, duplicates } };
        // In the background, on its own: the answer, polls and reconciliation never wait for it.
        if (jobs === undefined)
          void drainInbox().catch((error: unknown) => {
            deps.logger.error({ err: error }, "webhook inbox processing failed");
          });
        return { status: 200, body: { accepted: fresh.length, duplicates } };
      }
    }
  };

  /**
   * Re-reads what a delivery names. When the vendor refuses one record for good, the others are
   * re-read one by one, so only the refused ones are left to the next poll.
   */
  const reReadDelivery = async (
    recordDeps: Parameters<typeof recordWebhookChanges>[0],
    changes: Parameters<typeof recordWebhookChanges>[1],
    connectionId: string,
    label: string,
  ): Promise<Awaited<ReturnType<typeof recordWebhookChanges>>> => {
    let recorded = await recordWebhookChanges(recordDeps, changes);
    const ids = [...new Set(changes.map((c) => c.external_id))];
    if (recorded.error && !RETRYABLE_CODES.has(recorded.error.code) && ids.length > 1) {
      // The vendor refused one record for good: re-read the others one by one, so only the
      // refused ones are left to the next poll.
      const refused: string[] = [];
      const record_ids: string[] = [];
      const contact_ids: string[] = [];
      let passing: (typeof recorded)["error"] | null = null;
      const held = heldCounts(recorded);
      for (const id of ids) {
        const one = await recordWebhookChanges(
          recordDeps,
          changes.filter((c) => c.external_id === id),
        );
        addHeld(held, one);
        // An outage on the way is not a refusal: the whole delivery waits and is tried again.
        if (one.error && RETRYABLE_CODES.has(one.error.code)) {
          passing = one.error;
          break;
        }
        if (one.error) refused.push(id);
        else {
          record_ids.push(...one.record_ids);
          contact_ids.push(...one.contact_ids);
        }
      }
      if (passing !== null) recorded = { ...recorded, error: passing };
      else if (refused.length < ids.length) {
        deps.logger.warn(
          { connection: connectionId, refused: refused.length },
          `${label} refused the re-read of ${refused.length} record(s) of a webhook delivery; they are read at the next poll`,
        );
        recorded = { ...recorded, ...held, error: null, record_ids, contact_ids };
      }
    }
    return recorded;
  };

  /**
   * Processes due webhook deliveries one by one, so one that cannot be re-read never holds up the
   * others: a failure a retry may cure (an outage, a rate limit, a spent quota, refused credentials)
   * is tried again after a growing pause and stops that connection's other deliveries for this pass;
   * one the vendor refuses for good (a 400, 403 or 404 for its record), or that failed
   * `INBOX_MAX_ATTEMPTS` times, is given up (a dead letter, alerted once per connection) and its
   * records are left to the next poll. The contacts re-read are then synced, once per pass.
   */
  const drainOnce = async (connectionId?: string): Promise<number> => {
    let processed = 0;
    const down = new Set<string>();
    // Reads older than an hour cover no delivery still waiting that a retry would not re-read.
    reads.prune(deps.now().getTime() - 3_600_000);
    for (;;) {
      const items = await deps.store.inbox.pending(100, {
        exclude: [...down],
        ...(connectionId === undefined ? {} : { connection_id: connectionId }),
      });
      if (connectionId !== undefined && down.has(connectionId)) return processed;
      if (items.length === 0 || stopped) return processed;
      const synced = new Map<string, Set<string>>();
      for (const item of items) {
        if (down.has(item.connection_id) || stopped) continue;
        const pairs = pairsOf(item.connection_id);
        const opened = deps.connections.get(item.connection_id);
        const first = pairs[0];
        // Records re-read since this delivery arrived need no re-read: that read saw its changes.
        const changes = opened
          ? reads.uncovered(item.connection_id, item.received_at, parseChanges(item.changes))
          : [];
        if (!opened || !first || changes.length === 0) {
          await deps.store.inbox.markProcessed([item.id]);
          processed += 1;
          continue;
        }
        // An opt-out a delivery announced is consent, not a re-read to leave to the poll: a poll
        // may not show it (a Mailchimp member archived since); nor a change of consent records a
        // poll does not read (a Raiser's Edge NXT solicit code moves no constituent's date).
        if (
          webhookShareSpent(opened.budget.usage()) &&
          !changes.some((c) => c.opt_out !== undefined || c.change === "consent_changed")
        ) {
          // The rest of today's quota is for consent writes and polls; the poll reads these records.
          if (!shareSpentTold.has(item.connection_id)) {
            shareSpentTold.add(item.connection_id);
            deps.logger.warn(
              { connection: item.connection_id },
              `${opened.manifest.label}: webhook re-reads have used their share of today's quota; deliveries are left to the next poll until the quota resets`,
            );
          }
          await deps.store.inbox.markProcessed([item.id]);
          processed += 1;
          continue;
        }
        shareSpentTold.delete(item.connection_id);
        const recordDeps = {
          store: deps.store,
          connection: opened,
          config: deps.config,
          pair: first,
          now: deps.now,
        };
        const readAt = deps.now().getTime();
        let recorded: Awaited<ReturnType<typeof recordWebhookChanges>>;
        try {
          recorded = await reReadDelivery(recordDeps, changes, item.connection_id, opened.manifest.label);
        } catch (error) {
          // A re-read that throws (a value the connector cannot read, a ledger refusal) is this
          // delivery's failure alone: tried again after a pause, then given up with an alert,
          // while the deliveries behind it go on.
          await inboxFailure(
            item,
            { code: "processing_failed", message: errorMessage(error) },
            opened.manifest.label,
            { retryable: true, unread: { recordDeps, changes, synced } },
          );
          continue;
        }
        if (recorded.error) {
          await inboxFailure(item, recorded.error, opened.manifest.label, {
            unread: { recordDeps, changes, synced },
          });
          if (RETRYABLE_CODES.has(recorded.error.code)) down.add(item.connection_id);
          continue;
        }
        const read = new Set(recorded.record_ids);
        reads.record(
          item.connection_id,
          changes.filter((c) => read.has(c.external_id)),
          readAt,
        );
        tellHeld(item.connection_id, opened.manifest.label, recorded);
        // The records' contacts, and whoever else the consent read was recorded for (others at an
        // opted-out address; the people at the address of a record deleted for good).
        const contacts = new Set<string>(recorded.contact_ids);
        for (const id of recorded.record_ids) {
          const link = await deps.store.links.find(item.connection_id, id);
          if (link) contacts.add(link.contact_id);
        }
        if (jobs !== undefined) {
          // With workers, the delivery is done only together with the syncs it asks for: a worker
          // killed in between leaves the delivery to be re-read, never a re-read without its sync.
          await deps.store.transaction(async (tx) => {
            await tx.inbox.markProcessed([item.id]);
            await addSyncJobs(jobs, tx, item.connection_id, contacts);
          });
          processed += 1;
          continue;
        }
        await deps.store.inbox.markProcessed([item.id]);
        processed += 1;
        syncInPass(synced, item.connection_id, contacts);
      }
      for (const [connectionId, contacts] of synced)
        if (contacts.size > 0)
          for (const pair of pairsOf(connectionId))
            await runSync(pair, { pull: false, contact_ids: [...contacts] });
    }
  };

  /** With workers: a sync of `contacts` in every pair of the connection, as jobs added in `tx`. */
  const addSyncJobs = async (
    queue: JobQueue,
    tx: StoreSession,
    connectionId: string,
    contacts: Iterable<string>,
  ): Promise<void> => {
    const contact_ids = [...contacts];
    if (contact_ids.length === 0) return;
    for (const pair of pairsOf(connectionId))
      await queue.add(tx, "sync_pair", { pair_id: pair.id, contact_ids });
  };

  /** Without workers: `contacts` join the ones this pass syncs once its deliveries are done. */
  const syncInPass = (
    synced: Map<string, Set<string>>,
    connectionId: string,
    contacts: Iterable<string>,
  ): void => {
    const all = synced.get(connectionId) ?? new Set<string>();
    for (const id of contacts) all.add(id);
    synced.set(connectionId, all);
  };

  /**
   * What a delivery's re-read could not attribute, said in the log as a poll's run summary says
   * it for its reads: without it a webhook's held opt-in would leave no trace but a review item.
   */
  const tellHeld = (connectionId: string, label: string, recorded: HeldCounts): void => {
    const said = [
      [recorded.held_opt_ins, "opt-in(s) held, their record matching several people or nobody"],
      [
        recorded.held_observations,
        "other observation(s) held, their record matching several people or nobody",
      ],
      [recorded.ambiguous_records, "record(s) matching several contacts, in the review queue"],
      [recorded.records_refused_erased, "record(s) refused, at an erased address"],
    ] as const;
    if (said.every(([n]) => n === 0)) return;
    deps.logger.info(
      { connection: connectionId, ...heldCounts(recorded) },
      `${label}: a webhook delivery's re-read found ${said
        .filter(([n]) => n > 0)
        .map(([n, what]) => `${n} ${what}`)
        .join("; ")}`,
    );
  };

  /** A delivery's failed re-read: tried again after a pause that doubles, or given up and alerted. */
  const inboxFailure = async (
    item: InboxItem,
    error: { code: string; message: string; retry_at?: string },
    label: string,
    {
      retryable = RETRYABLE_CODES.has(error.code),
      unread,
    }: {
      retryable?: boolean;
      /** The delivery's changes, for the opt-outs it announced if it is given up unread. */
      unread?: {
        recordDeps: Parameters<typeof recordAnnouncedOptOuts>[0];
        changes: Parameters<typeof recordAnnouncedOptOuts>[1];
        /** The contacts this pass syncs, by connection (without workers). */
        synced: Map<string, Set<string>>;
      };
    } = {},
  ): Promise<void> => {
    const attempts = item.attempts + 1;
    const text = `${error.code}: ${error.message}`;
    const now = deps.now().getTime();
    const throughOutage =
      OUTAGE_CODES.has(error.code) && now - Date.parse(item.received_at) < INBOX_KEEP_THROUGH_OUTAGE_MS;
    if (retryable && (attempts < INBOX_MAX_ATTEMPTS || throughOutage)) {
      // Not before the vendor said it may answer again (a quota's reset, a Retry-After).
      const vendorSays = error.retry_at === undefined ? 0 : Date.parse(error.retry_at) - now;
      const pause = Math.max(
        Math.min(INBOX_RETRY_BASE_MS * 2 ** (attempts - 1), INBOX_RETRY_MAX_MS),
        Number.isFinite(vendorSays) ? vendorSays : 0,
      );
      await deps.store.inbox.markFailed(item.id, text, {
        retry_at: new Date(now + pause).toISOString(),
      });
      deps.logger.warn(
        { connection: item.connection_id, code: error.code, attempts },
        `a webhook delivery's re-read failed; it is tried again in ${Math.round(pause / 1000)} s`,
      );
      return;
    }
    // An opt-out the delivery announced is the person's act, which the next poll may never show
    // (a Mailchimp member archived meanwhile): recorded from the delivery's own word before it goes.
    let announced = "";
    if (unread !== undefined && unread.changes.some((c) => c.opt_out !== undefined)) {
      try {
        const kept = await recordAnnouncedOptOuts(unread.recordDeps, unread.changes);
        if (kept.consent_events_appended > 0)
          announced = ` ${kept.consent_events_appended} opt-out(s) it announced were recorded from the delivery alone.`;
        if (jobs !== undefined)
          await deps.store.transaction((tx) => addSyncJobs(jobs, tx, item.connection_id, kept.contact_ids));
        else syncInPass(unread.synced, item.connection_id, kept.contact_ids);
      } catch (failure) {
        announced = ` The opt-out(s) it announced could not be recorded (${errorMessage(failure)}).`;
      }
    }
    await deps.store.inbox.markFailed(item.id, text, "dead");
    const message = `${label} webhook delivery ${item.id} was given up after ${attempts} attempt(s) (${text}); the records it named are read at the next poll.${announced}`;
    deps.logger.warn({ connection: item.connection_id, code: error.code, attempts }, message);
    await deps.problems?.raise({
      key: `webhook_dead_letter:${item.connection_id}`,
      connection_id: item.connection_id,
      code: "webhook_dead_letter",
      message,
    });
  };

  /**
   * One drain at a time. Asked while one runs (a delivery arrived), the running drain makes one
   * more pass before it ends, so what arrived is processed before the promise resolves and a burst
   * of deliveries never queues a pass each.
   */
  let again = false;
  const drainInbox = (): Promise<number> => {
    if (draining) {
      again = true;
      return draining;
    }
    const run = (async () => {
      let processed = 0;
      do {
        again = false;
        processed += await drainOnce();
      } while (again && !stopped);
      return processed;
    })().finally(() => {
      draining = undefined;
    });
    draining = run;
    return run;
  };

  let webhooksCheckedAt: number | undefined;
  let webhooksChecking: Promise<WebhookCheck[]> | undefined;
  const checkWebhooks = async (initial?: boolean): Promise<WebhookCheck[]> => {
    // The first check made the subscriptions; a later one that has to make them found them dropped.
    const first = initial ?? webhooksCheckedAt === undefined;
    webhooksCheckedAt = deps.now().getTime();
    const checks: WebhookCheck[] = [];
    for (const connection of deps.config.connections) {
      const opened = deps.connections.get(connection.id);
      if (!connection.webhooks.enabled || !opened) continue;
      const key = `webhook_subscription:${connection.id}`;
      const publicUrl = deps.config.server.public_url;
      const register = opened.registerWebhooks;
      if (publicUrl === undefined || register === undefined) {
        const message =
          register === undefined
            ? `${opened.manifest.label} subscriptions are made in its own admin: point them at /webhooks/${connection.id} on this server.`
            : `server.public_url is not set, so ${connection.id}'s webhook subscriptions cannot point here; its changes arrive by poll only.`;
        if (first) deps.logger.warn({ connection: connection.id }, message);
        checks.push({ connection_id: connection.id, status: "not_registered", created: 0, kept: 0, message });
        continue;
      }
      const secret = await webhookSecret(connection.id);
      const url = new URL(
        `webhooks/${encodeURIComponent(connection.id)}`,
        publicUrl.endsWith("/") ? publicUrl : `${publicUrl}/`,
      ).toString();
      const result = secret.ok
        ? await register({ url, secret: secret.secret })
        : { ok: false as const, error: { code: "auth_missing" as const, message: secret.message } };
      if (!result.ok) {
        const message = `Concord could not make sure ${connection.id} pushes its changes to ${url} (${result.error.code}: ${result.error.message}). Its changes arrive by poll until this works.`;
        deps.logger.warn({ connection: connection.id, code: result.error.code }, message);
        await deps.problems?.raise({
          key,
          connection_id: connection.id,
          code: "webhook_subscription_failed",
          message,
        });
        checks.push({ connection_id: connection.id, status: "failed", created: 0, kept: 0, message });
        continue;
      }
      const { created, kept, removed = 0 } = result.value;
      if (removed > 0)
        deps.logger.info(
          { connection: connection.id, removed },
          `${removed} webhook subscription(s) of ${connection.id} that no longer apply (an older secret, another audience) were removed`,
        );
      // Made again for a replaced secret: expected, not the vendor dropping them.
      const renewed = rotatedSecrets.delete(connection.id);
      if (!first && created > 0 && !renewed) {
        // Made at start, gone now: the vendor dropped it (an app disconnected, a failing endpoint).
        const message = `${created} webhook subscription(s) of ${connection.id} were gone at the vendor; Concord made them again. Changes in between arrive by the next poll.`;
        deps.logger.warn({ connection: connection.id }, message);
        await deps.problems?.raise({
          key,
          connection_id: connection.id,
          code: "webhook_subscription_lost",
          message,
        });
        checks.push({ connection_id: connection.id, status: "recreated", created, kept, message });
        continue;
      }
      const message = `${connection.id} pushes its changes to ${url} (${created} subscription(s) made, ${kept} kept).`;
      if (first) deps.logger.info({ connection: connection.id, created, kept }, message);
      await deps.problems?.clear(key, `${connection.id}'s webhook subscriptions are in place.`);
      checks.push({ connection_id: connection.id, status: "registered", created, kept, message });
    }
    return checks;
  };
  const ensureWebhooks = (initial?: boolean): Promise<WebhookCheck[]> => {
    webhooksChecking ??= checkWebhooks(initial).finally(() => {
      webhooksChecking = undefined;
    });
    return webhooksChecking;
  };

  const signupPair = deps.config.pairs.find((p) =>
    p.platforms.some((pp) => pp.connection === deps.config.signup?.connection),
  );
  // Work started outside a pair's queue (placing sign-ups): idle and stop wait for it too.
  const inFlight = new Set<Promise<unknown>>();
  const track = <T>(work: Promise<T>): Promise<T> => {
    inFlight.add(work);
    void work.finally(() => inFlight.delete(work)).catch(() => undefined);
    return work;
  };
  let tickPlacing = false;
  let forgotAt = Number.NEGATIVE_INFINITY;
  /** From a tick: forgets old sign-ups, then places due ones without holding up the tick. */
  const placeDueSignups = async (): Promise<void> => {
    if (tickPlacing) return;
    const at = deps.now().getTime();
    if (at - forgotAt >= 3_600_000) {
      forgotAt = at;
      await forgetOldSignups(deps.store, deps.now());
    }
    if ((await dueSignups(deps.store, deps.now(), 1)).length === 0) return;
    tickPlacing = true;
    void placeSignups()
      .catch((error: unknown) => {
        deps.logger.error({ err: error }, "placing confirmed sign-ups failed; the next tick tries again");
      })
      .finally(() => {
        tickPlacing = false;
      });
  };
  const placeSignups = (alsoSync: readonly string[] = []): Promise<PlacedSignup[]> =>
    track(placeAndSync(alsoSync));
  const placeAndSync = async (alsoSync: readonly string[]): Promise<PlacedSignup[]> => {
    if (signupPair === undefined) return [];
    const placed = await exclusive(signupPair.id, () => placeConfirmedSignups(deps, deps.connections));
    for (const p of placed)
      if (p.status === "failed")
        deps.logger.warn(
          { signup: p.signup_id, contact: p.contact_id, reason: p.message },
          "a confirmed sign-up could not be added to the sign-up platform yet; it is tried again",
        );
      else if (p.status === "refused")
        deps.logger.warn(
          { signup: p.signup_id, contact: p.contact_id, reason: p.message },
          "the sign-up platform refused a confirmed sign-up; their consent is recorded and reaches every other system",
        );
      else if (p.status === "withdrawn")
        deps.logger.info(
          { signup: p.signup_id, contact: p.contact_id, reason: p.message },
          "a confirmed sign-up was not placed: the person left all email since confirming",
        );
    // A platform's bulk import names no ids: a poll of the pair links the new records now, and
    // those links are Concord's (its import made the records), as after a planned import.
    const unlinked = placed.filter((p) => p.status === "added" && !p.linked).map((p) => p.contact_id);
    if (unlinked.length > 0) {
      await runSync(signupPair, {});
      await deps.store.links.claim(deps.config.signup?.connection ?? "", unlinked);
    }
    const contactIds = [
      ...new Set([...alsoSync, ...placed.filter((p) => p.status !== "failed").map((p) => p.contact_id)]),
    ];
    if (contactIds.length > 0)
      await Promise.all(
        deps.config.pairs.map((pair) => runSync(pair, { pull: false, contact_ids: contactIds })),
      );
    return placed;
  };

  const lastFull = async (pair: Pair): Promise<number | undefined> => {
    const row = await deps.store.checkpoints.get(`pair:${pair.id}`, FULL_RECONCILIATION_STREAM);
    const parsed = z.object({ at: z.string() }).safeParse(row?.value);
    return parsed.success ? Date.parse(parsed.data.at) : undefined;
  };

  /**
   * Whether the pair's full reconciliation is due at `now`: on its schedule, unless one failed less
   * than `FULL_RETRY_AFTER_FAILURE_MS` ago (a spent quota, an outage, a read too long for the day's
   * budget). Until then the pair's polls read what changed: a full read tried again at every tick
   * would keep the deltas, and the opt-outs they bring, from running at all.
   */
  const fullDueAt = async (pair: Pair, now: number): Promise<boolean> => {
    const full = await lastFull(pair);
    if (full !== undefined && now - full < pair.schedule.full_reconciliation) return false;
    const row = await deps.store.checkpoints.get(`pair:${pair.id}`, FULL_RECONCILIATION_FAILED_STREAM);
    const failed = z.object({ at: z.string() }).safeParse(row?.value);
    const wait = Math.min(FULL_RETRY_AFTER_FAILURE_MS, pair.schedule.full_reconciliation);
    return !(failed.success && now - Date.parse(failed.data.at) < wait);
  };

  const tick = async (): Promise<void> => {
    if (stopped) return;
    // The inbox drains on its own: polls and reconciliation below never wait for it. A drain
    // under way takes what arrives meanwhile, so a tick starts one only when none runs.
    if (draining === undefined)
      void drainInbox().catch((error: unknown) => {
        deps.logger.error({ err: error }, "webhook inbox processing failed");
      });
    if (webhooksCheckedAt !== undefined && deps.now().getTime() - webhooksCheckedAt >= WEBHOOK_CHECK_MS)
      await ensureWebhooks();
    await watch?.check();
    await tidyMarks();
    await pruneInbox();
    // Sign-ups never hold up the polls below, even when the store answers badly.
    if (deps.config.signup !== undefined)
      await placeDueSignups().catch((error: unknown) => {
        deps.logger.error({ err: error }, "checking confirmed sign-ups failed; the next tick tries again");
      });
    const now = deps.now().getTime();
    await Promise.all(
      deps.config.pairs.map(async (pair) => {
        const s = state.get(pair.id);
        if (!s || queuedPolls.has(pair.id)) return;
        const fullDue = await fullDueAt(pair, now);
        const pollDue = s.next_run_at === null || now >= Date.parse(s.next_run_at);
        if (!fullDue && !pollDue) return;
        queuedPolls.add(pair.id);
        try {
          await pollOnce(pair, fullDue, true);
        } finally {
          queuedPolls.delete(pair.id);
        }
      }),
    );
  };

  /**
   * One poll of the pair (a full reconciliation when it is due), remembering a full one that read
   * everything. `wait: false` leaves it (false) when another process runs the pair now.
   */
  const pollOnce = (pair: Pair, fullDue: boolean, wait: boolean): Promise<boolean> =>
    // Its reads run outside the pair's queue: stop and idle wait for the poll through `track`.
    track(pollOf(pair, fullDue, wait));
  const pollOf = async (pair: Pair, fullDue: boolean, wait: boolean): Promise<boolean> => {
    // An ordinary poll reads before it takes the pair: a webhook's sync then waits only for a poll's
    // plan and writes, never for its reads (which the vendors' rates make the longest part). Reads
    // may run beside the pair's other work, as a webhook's re-read does: recording is per batch,
    // under the address locks, and repeats nothing.
    const started = deps.now().getTime();
    const ahead = fullDue ? undefined : await pullAhead(pair);
    const fullFailed = (runId: string | null) =>
      deps.store.checkpoints.set(`pair:${pair.id}`, FULL_RECONCILIATION_FAILED_STREAM, {
        at: deps.now().toISOString(),
        run_id: runId,
      } satisfies JsonValue);
    const report = await exclusiveOr(pair.id, wait, async () => {
      if (ahead === undefined)
        return fullDue
          ? // A full read that throws is tried again after the same pause as one that fails.
            syncLocked(pair, { full: true }).catch(async (error: unknown) => {
              await fullFailed(null).catch(() => undefined);
              throw error;
            })
          : syncLocked(pair, {});
      // The plan's standing is judged only with the pair as it is now resolved.
      const options = await afterPulls(pair, ahead);
      if (options.resolved !== undefined && (await standsStill(pair, options.resolved, ahead.pulls)))
        return STANDS;
      return syncLocked(pair, options);
    });
    if (report === undefined) return false;
    // Polls keep their pace: the next is due an interval after this one started, not after it ended.
    const s = state.get(pair.id);
    if (s) s.next_run_at = new Date(nextPollAt(started, s.poll_interval_ms, deps.now())).toISOString();
    if (report === STANDS) return true;
    if (fullDue && report.status === "succeeded" && report.pulls.every((p) => p.error === null))
      await deps.store.checkpoints.set(`pair:${pair.id}`, FULL_RECONCILIATION_STREAM, {
        at: deps.now().toISOString(),
        run_id: report.run_id,
      } satisfies JsonValue);
    // Tried again after a pause; the polls in between read what changed.
    else if (fullDue) await fullFailed(report.run_id);
    return true;
  };

  /** The connections whose lists some pair's list rules make, rename and delete. */
  const listsMadeOn = new Set(deps.config.pairs.flatMap((p) => p.list_sync.map((rule) => rule.platform)));
  const listsMadeFor = (pair: Pair): boolean => pair.platforms.some((p) => listsMadeOn.has(p.connection));
  /**
   * A poll's run after its pulls: they are the run's own, and so is the pair as resolved for them.
   * Where a pair's list rules act on one of its platforms, a run that took such a pair meanwhile
   * (this pair's or another's, in any process) may have made, renamed or deleted lists the resolved
   * pair names: the run resolves the pair again unless the store shows no list change since the
   * poll's reads began (`listChangesSeen`), so the lists are read once in a poll that nothing
   * overtook. Runs under the pair's lock.
   */
  const afterPulls = async (pair: Pair, ahead: Ahead): Promise<SyncOptions> => {
    // A store that cannot say counts as a change: the run reads the lists again.
    const stands =
      !listsMadeFor(pair) ||
      (ahead.lists_seen !== undefined &&
        (await listChangesSeen(deps.store, pair).catch(() => undefined)) === ahead.lists_seen);
    return { pulled: ahead.pulls, ...(stands ? { resolved: ahead.resolved } : {}) };
  };

  /** A poll's reads made before it takes the pair, and what the store showed of list changes first. */
  type Ahead = { resolved: ResolvedPair; pulls: PullReport[]; lists_seen?: string };

  /**
   * A poll's pulls, before it takes the pair; undefined when the pair cannot be resolved or the
   * pulls throw, and the run then reads inside itself and records why it failed.
   */
  const pullAhead = async (pair: Pair): Promise<Ahead | undefined> => {
    try {
      // Read before the lists are: a list change stored after this may be missing from them.
      const listsSeen = listsMadeFor(pair) ? await listChangesSeen(deps.store, pair) : undefined;
      const resolved = await resolvePair(deps.config, pair, deps.connections, deps.store);
      if (!resolved.ok) return undefined;
      return {
        resolved: resolved.value,
        pulls: await pullPair(deps, pair, resolved.value, false),
        ...(listsSeen !== undefined ? { lists_seen: listsSeen } : {}),
      };
    } catch (error) {
      deps.logger.warn(
        { err: error, pair: pair.id },
        "a poll's reads failed before its run; the run reads again",
      );
      return undefined;
    }
  };

  /**
   * Whether a poll whose reads all succeeded finds the pair's last whole plan standing (ADR 33):
   * then it makes no run, and notes when it looked. Runs under the pair's lock, so no run of the
   * pair writes meanwhile.
   */
  const standsStill = async (
    pair: Pair,
    resolved: ResolvedPair,
    pulls: readonly PullReport[],
  ): Promise<boolean> => {
    if (pulls.some((p) => p.error !== null)) return false;
    const now = deps.now().toISOString();
    const standing = await planStands(deps.store, resolved, await planKeyFor(deps, resolved), now);
    if (standing === undefined) return false;
    await recordPlanStanding(deps.store, pair.id, { ...standing, checked_at: now });
    // The reads' health counts as a run's would: a connection that answers again clears its alert.
    await watch?.afterRun({ pulls: [...pulls] }).catch((error: unknown) => {
      deps.logger.error({ err: error }, "checking a poll for problems failed");
    });
    return true;
  };

  const pairById = (id: string): Pair | undefined => deps.config.pairs.find((p) => p.id === id);
  const later = (ms: number): Date => new Date(deps.now().getTime() + ms);

  /**
   * The plan marks of pairs the config no longer has are deleted, once a process (they hold
   * personal data and would never be read again); a failure is logged and tried at the next turn.
   */
  let marksTidied = false;
  const tidyMarks = async (): Promise<void> => {
    if (marksTidied) return;
    try {
      const dropped = await dropMarksOfOtherPairs(
        deps.store,
        deps.config.pairs.map((p) => p.id),
      );
      marksTidied = true;
      if (dropped.length > 0)
        deps.logger.info({ pairs: dropped }, "deleted the plan marks of pairs the config no longer has");
    } catch (error) {
      deps.logger.error({ err: error }, "deleting the plan marks of removed pairs failed; tried again later");
    }
  };

  /**
   * Webhook deliveries processed or given up longer ago than `compliance.retention` are deleted,
   * every ten minutes, a bounded number a turn (a backlog goes over the next turns); a failure is
   * logged and tried at the next turn. Pending deliveries are never deleted.
   */
  let prunedAt: number | undefined;
  const pruneInbox = async (): Promise<void> => {
    const now = deps.now().getTime();
    if (prunedAt !== undefined && now - prunedAt < INBOX_PRUNE_MS) return;
    prunedAt = now;
    const before = new Date(now - deps.config.compliance.retention.webhook_deliveries).toISOString();
    let deleted = 0;
    try {
      for (let n = INBOX_PRUNE_BATCH; n === INBOX_PRUNE_BATCH && deleted < INBOX_PRUNE_TURN;) {
        n = await deps.store.inbox.prune(before, INBOX_PRUNE_BATCH);
        deleted += n;
      }
    } catch (error) {
      deps.logger.error({ err: error }, "deleting old webhook deliveries failed; tried again later");
    }
    if (deleted > 0)
      deps.logger.info({ deleted, before }, "deleted webhook deliveries whose retention is over");
  };

  /**
   * With workers: the jobs of killed processes freed, and a poll for each pair and a drain for each
   * connection with due deliveries that no job is waiting for and no live job holds the lock of.
   */
  const recoverJobs = async (): Promise<void> => {
    if (jobs === undefined) return;
    // Any job of a killed process (a webhook's sync, a drain, a poll) is taken again now, not after
    // the queue's own four hours: a webhook's opt-out would otherwise wait for the next poll.
    const freed = await jobs.releaseLost(deps.store, JOB_LOST_MS);
    if (freed.length > 0)
      deps.logger.warn(
        { workers: freed.length },
        "jobs held by job workers that are gone (their process stopped mid-job) are taken again",
      );
    const polls = new Map(deps.config.pairs.map((p) => [jobKey("poll_pair", { pair_id: p.id }) ?? "", p]));
    for (const key of await jobs.unattended(deps.store, [...polls.keys()], POLL_LOST_MS)) {
      const pair = polls.get(key);
      if (pair === undefined) continue;
      // Free locks, no job: its worker is gone. A live poll holds its poll lock all through, its
      // reads included; a run of the pair made otherwise (a webhook's, an operator's) holds the pair.
      // The job is added under the poll lock: a stalled poll taking it meanwhile would otherwise
      // still hold its key and poll, and the new job poll again right after it.
      await withNamedLock(deps.store, pollLockName(pair.id), { wait: false }, async () => {
        const pairFree = await withNamedLock(deps.store, pairLockName(pair.id), { wait: false }, () =>
          Promise.resolve(),
        );
        if (!pairFree.acquired) return;
        deps.logger.info(
          { pair: pair.id },
          "the pair's poll had no job waiting (a worker stopped); scheduled again",
        );
        await jobs.add(deps.store, "poll_pair", { pair_id: pair.id }, { preserve_run_at: true });
      });
    }
    // Every connection with deliveries due, however many the oldest connection holds.
    const due = await deps.store.inbox.connectionsDue();
    const drains = new Map(due.map((c) => [jobKey("drain_inbox", { connection_id: c }) ?? "", c]));
    for (const key of await jobs.unattended(deps.store, [...drains.keys()], 0)) {
      const connection_id = drains.get(key);
      if (connection_id === undefined) continue;
      // A drain under way holds its lock and drains until nothing is pending; what arrives
      // meanwhile comes with a job of its own.
      const free = await withNamedLock(deps.store, drainLockName(connection_id), { wait: false }, () =>
        Promise.resolve(),
      );
      if (free.acquired)
        await jobs.add(deps.store, "drain_inbox", { connection_id }, { preserve_run_at: true });
    }
  };

  /**
   * The installation's periodic checks, run by one worker at a time: with workers, the jobs of
   * killed processes and the polls and drains no job attends (`recoverJobs`); webhook subscriptions
   * every hour, problems, due sign-ups and old deliveries.
   */
  const housekeep = async (): Promise<void> => {
    // First: no other check's failure (a vendor down for the webhook check, a store error) may keep
    // a killed process's jobs from being taken again.
    await recoverJobs();
    await tidyMarks();
    await pruneInbox();
    const checked = await deps.store.checkpoints.get("installation", "webhooks_checked");
    const at = z.object({ at: z.string() }).safeParse(checked?.value);
    if (!at.success || deps.now().getTime() - Date.parse(at.data.at) >= WEBHOOK_CHECK_MS) {
      await deps.store.checkpoints.set("installation", "webhooks_checked", { at: deps.now().toISOString() });
      // The server made the subscriptions as it started: any made now were dropped by the vendor.
      if (at.success) await ensureWebhooks(false);
    }
    await watch?.check();
    if (deps.config.signup !== undefined) await placeDueSignups();
  };

  const handlers: JobHandlers = {
    poll_pair: async ({ pair_id }, job) => {
      const pair = pairById(pair_id);
      if (pair === undefined) {
        deps.logger.info({ pair: pair_id }, "a poll job names a pair the config no longer has; it ends");
        return;
      }
      const interval = pollIntervalOf(deps, pair);
      let busy = false;
      // The poll lock is held until the next poll is scheduled: housekeeping never sees this poll
      // without either its lock or its next job.
      const polled = await withNamedLock(deps.store, pollLockName(pair_id), { wait: false }, async () => {
        // Taken long before it got here (a stalled worker), housekeeping added the pair's poll again
        // and that job has polled: this one reads nothing and leaves that poll's next job as it is.
        const key = jobKey("poll_pair", { pair_id }) ?? "";
        if (job !== undefined && jobs !== undefined && !(await jobs.holdsKey(deps.store, job, key))) {
          deps.logger.info({ pair: pair_id }, "a poll job another poll of the pair replaced ends unread");
          return;
        }
        const started = deps.now().getTime();
        try {
          const fullDue = await fullDueAt(pair, started);
          // Another process runs the pair now: this poll comes again shortly rather than queueing.
          busy = !(await pollOnce(pair, fullDue, false));
        } finally {
          const run_at = busy
            ? later(Math.min(interval, BUSY_RETRY_MS))
            : new Date(nextPollAt(started, interval, deps.now()));
          await jobs?.add(deps.store, "poll_pair", { pair_id }, { run_at });
        }
      });
      // Another poll of the pair is under way (its job was added again while it read): this one
      // reads nothing and comes again shortly; when that poll ends, its next job replaces this one,
      // and a next job that poll has already scheduled keeps its time.
      if (!polled.acquired)
        await jobs?.add(
          deps.store,
          "poll_pair",
          { pair_id },
          { run_at: later(Math.min(interval, BUSY_RETRY_MS)), preserve_run_at: true },
        );
    },
    sync_pair: async ({ pair_id, full, contact_ids }: JobPayload<"sync_pair">) => {
      const pair = pairById(pair_id);
      if (pair === undefined) {
        deps.logger.info({ pair: pair_id }, "a sync job names a pair the config no longer has; it ends");
        return;
      }
      await runSync(pair, {
        ...(full === true ? { full } : {}),
        ...(contact_ids === undefined ? {} : { pull: false, contact_ids }),
      });
    },
    drain_inbox: async ({ connection_id }) => {
      const held = await withNamedLock(deps.store, drainLockName(connection_id), { wait: false }, () =>
        drainOnce(connection_id),
      );
      // Another worker drains this connection: what arrived meanwhile is drained right after.
      if (!held.acquired)
        await jobs?.add(deps.store, "drain_inbox", { connection_id }, { run_at: later(1_000) });
    },
    housekeeping: async () => {
      try {
        await withNamedLock(deps.store, "housekeeping", { wait: false }, housekeep);
      } finally {
        await jobs?.add(deps.store, "housekeeping", {}, { run_at: later(HOUSEKEEPING_MS) });
      }
    },
  };

  /** With workers: each process makes sure the housekeeping job is scheduled, now and every so often. */
  let seedTimer: NodeJS.Timeout | undefined;
  const seedHousekeeping = (): void => {
    if (jobs === undefined || stopped) return;
    void jobs
      .add(deps.store, "housekeeping", {}, { preserve_run_at: true })
      .catch((error: unknown) => {
        deps.logger.error({ err: error }, "scheduling the housekeeping job failed; tried again shortly");
      })
      .finally(() => {
        if (!stopped) seedTimer = setTimeout(seedHousekeeping, HOUSEKEEPING_SEED_MS);
      });
  };

  return {
    handleWebhook,
    syncNow: async (pairId, options = {}) => {
      const pairs =
        pairId === undefined ? deps.config.pairs : deps.config.pairs.filter((p) => p.id === pairId);
      return Promise.all(pairs.map((p) => runSync(p, options)));
    },
    drainInbox,
    tick,
    ensureWebhooks,
    start: (tickMs = 1_000) => {
      stopped = false;
      if (jobs !== undefined) {
        // Workers run the catalogue's jobs; this process only makes sure housekeeping is scheduled
        // (it schedules the polls) and its webhook subscriptions exist.
        seedHousekeeping();
        void ensureWebhooks(true).catch((error: unknown) => {
          deps.logger.error({ err: error }, "checking webhook subscriptions failed");
        });
        return;
      }
      // Runs a crashed process left "running" never finish: they are marked interrupted, once.
      void track(deps.store.runs.interruptRunning(startedAt))
        .then((ids) => {
          if (ids.length > 0)
            deps.logger.warn(
              { runs: ids },
              `${ids.length} run(s) left running by a process that stopped are marked interrupted`,
            );
        })
        .catch((error: unknown) => {
          deps.logger.error({ err: error }, "marking interrupted runs failed");
        });
      // The server listens by now: a vendor that checks the receiver (Mailchimp's GET) finds it.
      void ensureWebhooks().catch((error: unknown) => {
        deps.logger.error({ err: error }, "checking webhook subscriptions failed");
      });
      const loop = (): void => {
        timer = setTimeout(() => {
          tick()
            .catch((error: unknown) => {
              deps.logger.error({ err: error }, "engine tick failed");
            })
            .finally(() => {
              if (!stopped) loop();
            });
        }, tickMs);
      };
      loop();
    },
    stop: async () => {
      stopped = true;
      if (timer) clearTimeout(timer);
      if (seedTimer) clearTimeout(seedTimer);
      await Promise.all([...queues.values(), ...inFlight, draining ?? Promise.resolve(), webhooksChecking]);
      // Calls counted since the budgets' last save, and a renewed token still waiting for its save
      // (the store was busy), are kept now.
      await flushConnections(deps.connections.values(), deps.logger);
    },
    idle: async () => {
      // Work queued while waiting (a webhook's targeted sync) is waited for too.
      for (let round = 0; round < 1000; round += 1) {
        const before = [...queues.values()];
        await Promise.all([...before, ...inFlight, draining ?? Promise.resolve()]);
        const after = [...queues.values()];
        if (
          draining === undefined &&
          inFlight.size === 0 &&
          after.length === before.length &&
          after.every((p, i) => p === before[i])
        )
          return;
      }
    },
    status: () => [...state.values()].map((s) => ({ ...s })),
    placeSignups,
    handlers,
    runBesideNoPair: (fn) => track(besideNoPair(fn)),
    runExclusive: (pairId, fn) =>
      exclusive(pairId, async () => {
        const s = state.get(pairId);
        if (s) s.running = true;
        try {
          return await fn();
        } finally {
          if (s) s.running = false;
        }
      }),
  };
}

const WebhookChangesSchema = z.array(
  z.object({
    event_id: z.string(),
    type: z.string(),
    external_id: z.string(),
    occurred_at: z.string(),
    change: z.enum(["changed", "deleted", "email_changed", "consent_changed", "test"]),
    opt_out: z
      .object({
        reason: z.string().optional(),
        actor: z.literal("account").optional(),
        email: z.string().optional(),
      })
      .optional(),
  }),
);

function parseChanges(value: JsonValue): WebhookChange[] {
  const parsed = WebhookChangesSchema.safeParse(value);
  if (!parsed.success) return [];
  return parsed.data.map(({ opt_out, ...change }) =>
    opt_out === undefined
      ? change
      : {
          ...change,
          opt_out: {
            ...(opt_out.reason !== undefined ? { reason: opt_out.reason } : {}),
            ...(opt_out.actor !== undefined ? { actor: opt_out.actor } : {}),
            ...(opt_out.email !== undefined ? { email: opt_out.email } : {}),
          },
        },
  );
}

function logRun(logger: Logger, report: SyncReport, options: SyncOptions): void {
  const fields = {
    pair: report.pair_id,
    run: report.run_id,
    trigger:
      options.contact_ids !== undefined ? "webhook" : options.full === true ? "full_reconciliation" : "poll",
    operations: report.plan?.operations.length ?? 0,
    contacts: report.contacts,
    succeeded: report.execution?.operations.succeeded ?? 0,
    refused: report.execution?.operations.failed ?? 0,
    waiting: report.execution?.waiting.map((w) => `${w.connection_id}:${w.code}`) ?? [],
    pull_errors: report.pulls
      .filter((p) => p.error !== null)
      .map((p) => `${p.connection_id}:${p.error?.code ?? ""}`),
  };
  if (report.status === "failed") logger.warn({ ...fields, error: report.error?.code }, "sync failed");
  else if (fields.operations > 0 || fields.pull_errors.length > 0) logger.info(fields, "sync ran");
  else logger.debug(fields, "sync found nothing to do");
}
