/**
 * The *pull* stage (DESIGN.md §3): reads a connection's changes since its checkpoint page by page and
 * records each page (snapshots, identity, consent events) with the checkpoint that covers it in one
 * store transaction; also the targeted re-read a webhook asks for.
 */
import { z } from "zod";
import type { ConcordConfig, Pair } from "../config/concord-config";
import type {
  Checkpoint,
  ConnectorError,
  ConnectorErrorCode,
  ReadOptions,
  WebhookChange,
} from "../connectors/connector";
import type { JsonValue, StoreSession } from "../store/ports";
import type { OpenedConnection } from "../connections/open-connection";
import { applyMemberships } from "./apply-memberships";
import { readAhead } from "./read-ahead";
import {
  addCounts,
  emptyCounts,
  recordChanges,
  type RecordContext,
  type RecordCounts,
} from "./record-changes";

/** The store checkpoint stream the pull keeps per connection; its value is the connector's checkpoint. */
export const PULL_CHECKPOINT_STREAM = "pull";

export type PullOptions = {
  /** Ignore the checkpoint's position and read everything (the scheduled full reconciliation). */
  full?: boolean;
  /** Lists whose memberships the read should carry. */
  list_ids?: string[];
};

export type RecordDeps = {
  store: StoreSession;
  connection: OpenedConnection;
  config: ConcordConfig;
  /** The pair the connection belongs to (its CRM or one of its platforms): it maps scopes to topics. */
  pair: Pair;
  now: () => Date;
};

export type PullDeps = RecordDeps & { options?: PullOptions };

/** Why a pull or re-read stopped early; the connector's code, with `retry_at` for quotas and limits. */
export type PullError = { code: ConnectorErrorCode; message: string; retry_at?: string };

export type RecordReport = RecordCounts & { connection_id: string; error: PullError | null };

export type PullReport = RecordReport & {
  pages: number;
  /** The connector's checkpoint value before the pull and after its last committed page (null: none yet). */
  checkpoint_before: string | null;
  checkpoint_after: string | null;
};

const StoredCheckpointSchema = z.object({ stream: z.string(), value: z.string(), taken_at: z.string() });

function recordContext(deps: RecordDeps): RecordContext {
  const { connection } = deps.connection;
  const inPair =
    deps.pair.crm === connection.id || deps.pair.platforms.some((p) => p.connection === connection.id);
  if (!inPair) throw new Error(`connection ${connection.id} is not part of pair ${deps.pair.id}`);
  return {
    connection_id: connection.id,
    system: connection.system,
    role: deps.connection.manifest.role,
    mapping: { connection_id: connection.id, topics: deps.config.topics },
    now: deps.now,
  };
}

const toPullError = (e: ConnectorError): PullError => ({
  code: e.code,
  message: e.message,
  ...(e.retry_at !== undefined ? { retry_at: e.retry_at } : {}),
});

/**
 * Pulls one connection. A page that fails stops the pull: what was committed stays committed, the
 * stored checkpoint is the last committed page's, and the next pull resumes there (snapshot puts and
 * ledger appends are idempotent, so re-reading an overlap repeats nothing).
 */
export async function pullConnection(deps: PullDeps): Promise<PullReport> {
  const ctx = recordContext(deps);
  const stored = await deps.store.checkpoints.get(ctx.connection_id, PULL_CHECKPOINT_STREAM);
  let checkpoint: Checkpoint | null =
    stored === undefined ? null : StoredCheckpointSchema.parse(stored.value);
  const report: PullReport = {
    connection_id: ctx.connection_id,
    ...emptyCounts(),
    error: null,
    pages: 0,
    checkpoint_before: checkpoint?.value ?? null,
    checkpoint_after: checkpoint?.value ?? null,
  };
  const options: ReadOptions = {
    ...(deps.options?.full === true ? { full: true } : { held: heldVersions(deps.store, ctx.connection_id) }),
    ...(deps.options?.list_ids !== undefined ? { list_ids: deps.options.list_ids } : {}),
  };

  // The next page is fetched while this one is recorded (vendors' rates bind a read, not the store).
  for await (const page of readAhead(deps.connection.session().read(checkpoint, options))) {
    if (!page.ok) {
      report.error = toPullError(page.error);
      break;
    }
    const { value } = page;
    const counts = await deps.store.transaction(async (tx) => {
      let memberships_changed = 0;
      // Memberships (a walk of the connection's snapshots) and the checkpoint are written before
      // the page's consent events, so that the ledger's head is held only for the append.
      const c = await recordChanges(tx, ctx, value, async () => {
        if (value.memberships)
          memberships_changed = await applyMemberships(tx, ctx.connection_id, value.memberships);
        await tx.checkpoints.set(ctx.connection_id, PULL_CHECKPOINT_STREAM, value.checkpoint);
      });
      return { ...c, memberships_changed };
    });
    addCounts(report, counts);
    report.pages += 1;
    checkpoint = value.checkpoint;
    report.checkpoint_after = checkpoint.value;
    // Stored: the system may now let go of what the page covered (a change feed it keeps itself).
    const acknowledged = await value.stored?.();
    if (acknowledged !== undefined && !acknowledged.ok) {
      report.error = toPullError(acknowledged.error);
      break;
    }
  }
  if (report.error === null) await deps.connection.healthy({ ok: true });
  return report;
}

/**
 * Records what a webhook announced. The change is only a hint: the records are re-read with
 * `session.get` and go through the same stages in one transaction, so a duplicate or out-of-order
 * delivery re-reads the current state and records nothing new. The checkpoint is left alone.
 * `record_ids` are the records read; `contact_ids` the contacts consent events were appended for.
 */
export async function recordWebhookChanges(
  deps: RecordDeps,
  changes: readonly WebhookChange[],
): Promise<RecordReport & { record_ids: string[]; contact_ids: string[] }> {
  const ctx = recordContext(deps);
  const report: RecordReport & { record_ids: string[]; contact_ids: string[] } = {
    connection_id: ctx.connection_id,
    ...emptyCounts(),
    error: null,
    record_ids: [],
    contact_ids: [],
  };
  const ids = [...new Set(changes.filter((c) => c.change !== "test").map((c) => c.external_id))];
  if (ids.length === 0) return report;
  const announced = new Map<string, WebhookChange[]>();
  for (const c of changes)
    if (c.change !== "test") announced.set(c.external_id, [...(announced.get(c.external_id) ?? []), c]);
  const read = await deps.connection
    .session()
    .get(ids, { changed: await changedParts(deps.store, ctx.connection_id, changes), announced });
  if (!read.ok) {
    report.error = toPullError(read.error);
    return report;
  }
  const appendedFor = new Set<string>();
  const counts = await deps.store.transaction((tx) => {
    appendedFor.clear(); // a transaction tried again starts over
    return recordChanges(tx, ctx, read.value, undefined, appendedFor);
  });
  addCounts(report, counts);
  // A system may name a record in its webhooks otherwise than in its reads (Mailchimp: the
  // subscriber hash, and the contact id): the records re-read say which records changed.
  report.record_ids = [...new Set([...ids, ...read.value.records.map((r) => r.external_id)])];
  report.contact_ids = [...appendedFor];
  await deps.connection.healthy({ ok: true });
  return report;
}

/**
 * Records the opt-outs a delivery announced, from the delivery alone, for one given up unread (its
 * system out of reach through every retry, or refusing the re-read): a later poll may never show
 * them (a Mailchimp member archived since). Nothing for a system whose deliveries say no more than
 * which record changed. `contact_ids` are the contacts consent events were appended for.
 */
export async function recordAnnouncedOptOuts(
  deps: RecordDeps,
  changes: readonly WebhookChange[],
): Promise<{ consent_events_appended: number; contact_ids: string[] }> {
  const observe = deps.connection.manifest.webhooks?.announcedOptOuts;
  const announced = changes.filter((c) => c.opt_out !== undefined);
  if (observe === undefined || announced.length === 0) return { consent_events_appended: 0, contact_ids: [] };
  const consent = observe(announced);
  if (consent.length === 0) return { consent_events_appended: 0, contact_ids: [] };
  const ctx = recordContext(deps);
  const appendedFor = new Set<string>();
  const counts = await deps.store.transaction((tx) => {
    appendedFor.clear(); // a transaction tried again starts over
    return recordChanges(tx, ctx, { records: [], consent }, undefined, appendedFor);
  });
  return { consent_events_appended: counts.consent_events_appended, contact_ids: [...appendedFor] };
}

/**
 * What the webhooks said changed, for the records Concord holds a live snapshot of: the connector
 * may re-read only those parts. A record never seen, or last seen deleted, is read whole.
 */
async function changedParts(
  store: RecordDeps["store"],
  connection_id: string,
  changes: readonly WebhookChange[],
): Promise<Map<string, WebhookChange[]>> {
  const named = changes.filter((c) => c.change !== "test");
  const held = await store.snapshots.getMany(connection_id, [...new Set(named.map((c) => c.external_id))]);
  const changed = new Map<string, WebhookChange[]>();
  for (const c of named)
    if (liveRecord(held.get(c.external_id)?.payload) !== undefined)
      changed.set(c.external_id, [...(changed.get(c.external_id) ?? []), c]);
  return changed;
}

/** A stored snapshot's payload as an object, unless it is missing or records a deletion. */
function liveRecord(payload: JsonValue | undefined): { [key: string]: JsonValue } | undefined {
  if (typeof payload !== "object" || payload === null || Array.isArray(payload)) return undefined;
  return payload["deleted"] === true ? undefined : payload;
}

/** The stored versions of a connection's records, for an incremental read to read in part what has not moved. */
const heldVersions =
  (store: RecordDeps["store"], connection_id: string) =>
  async (external_ids: readonly string[]): Promise<Map<string, string>> => {
    const held = await store.snapshots.getMany(connection_id, external_ids);
    const versions = new Map<string, string>();
    for (const [id, snapshot] of held) {
      const version = liveRecord(snapshot.payload)?.["version"];
      if (typeof version === "string") versions.set(id, version);
    }
    return versions;
  };
