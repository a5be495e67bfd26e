/**
 * The *execute* stage (DESIGN.md §3): a stored plan's operations go to their connections, consent
 * operations first, in batches; each batch's outcomes, operation statuses and the links of records
 * it created commit in one transaction, so a crash loses at most the batch in flight, and re-running
 * re-applies only what has no outcome (every connector write is idempotent by design).
 */
import { normaliseEmail } from "../core/identity/normalise-email";
import type { OperationOutcome } from "../connectors/connector";
import type { Plan, PlannedOperation } from "../planner/plan";
import type { JsonValue, OutcomeStatus, StoreSession } from "../store/ports";
import type { OpenedConnection } from "../connections/open-connection";
import { withExclusiveNames } from "../store/advisory-lock";

/** An outcome's mark (in its detail) that its deferral stopped the rest of its connection's work. */
const STOPPED_CONNECTION = "stopped_connection";

/** Operations handed to one `apply` call: small enough that a crash repeats little, large enough to batch. */
export const APPLY_BATCH = 25;

export type ExecutionProgress = { done: number; total: number; connection_id: string };

export type ExecuteDeps = {
  store: StoreSession;
  connections: ReadonlyMap<string, OpenedConnection>;
  now: () => Date;
  onProgress?: (progress: ExecutionProgress) => void;
  /** Operations per `apply` call (default APPLY_BATCH). */
  batch_size?: number;
  /** Called after each committed batch: the crash-safety test stops the process here. */
  afterBatch?: (info: { connection_id: string; operations: number }) => Promise<void> | void;
};

/** A connection whose remaining work waits: its budget ran out, it is broken, or the vendor is down. */
export type Waiting = {
  connection_id: string;
  code: string;
  message: string;
  retry_at?: string;
  operations: number;
};

/** An item the system refused for good: reported with the skipped records. */
export type Rejection = {
  op_id: string;
  connection_id: string;
  contact_id: string | null;
  code: string;
  message: string;
};

export type ExecutionReport = {
  operations: { total: number; succeeded: number; failed: number; deferred: number; skipped: number };
  /** Items (contacts of bulk operations, or single operations) by outcome status. */
  items: Record<OperationOutcome["status"], number>;
  waiting: Waiting[];
  rejections: Rejection[];
  links_created: number;
  /** Contacts each connection's bulk imports took, to be claimed as Concord's once their records are linked. */
  imported: Record<string, string[]>;
};

/** The failed and the skipped items an outcome names, each with its reason (a bulk operation's first ones). */
const MAX_ITEM_NOTES = 100;

const emptyItems = (): ExecutionReport["items"] => ({
  succeeded: 0,
  failed: 0,
  deferred: 0,
  pending_contact_action: 0,
  skipped: 0,
});

/** Executes `operations` (from one plan) that are still pending in the store. */
export async function executePlan(
  deps: ExecuteDeps,
  plan: Pick<Plan, "operations">,
): Promise<ExecutionReport> {
  const report: ExecutionReport = {
    operations: { total: 0, succeeded: 0, failed: 0, deferred: 0, skipped: 0 },
    items: emptyItems(),
    waiting: [],
    rejections: [],
    links_created: 0,
    imported: {},
  };
  const pending = new Set<string>();
  /** Pending operations that stopped their connection in an earlier run (`stopped_connection`). */
  const stoppedBefore = new Set<string>();
  const ids = plan.operations.map((o) => o.op_id);
  for (let i = 0; i < ids.length; i += 500) {
    const rows = await deps.store.db
      .selectFrom("operations")
      .select("id")
      .where("id", "in", ids.slice(i, i + 500))
      .where("status", "=", "pending")
      .execute();
    for (const r of rows) pending.add(r.id);
  }
  // Which of the operations to run stopped their connection in an earlier run (one query a 500).
  const waiting = [...pending];
  for (let i = 0; i < waiting.length; i += 500)
    for (const r of await deps.store.db
      .selectFrom("outcomes")
      .select("operation_id")
      .distinct()
      .where("operation_id", "in", waiting.slice(i, i + 500))
      .where("detail_json", "like", `%"${STOPPED_CONNECTION}":true%`)
      .execute())
      stoppedBefore.add(r.operation_id);
  const byConnection = new Map<string, PlannedOperation[]>();
  for (const op of plan.operations) {
    if (!pending.has(op.op_id)) continue;
    const list = byConnection.get(op.connection_id) ?? [];
    list.push(op);
    byConnection.set(op.connection_id, list);
  }
  report.operations.total = pending.size;

  // Connections have their own budgets: they run side by side; within one, consent goes first.
  await Promise.all(
    [...byConnection].map(([connectionId, ops]) =>
      executeConnection(deps, connectionId, ops, stoppedBefore, report),
    ),
  );
  return report;
}

async function executeConnection(
  deps: ExecuteDeps,
  connectionId: string,
  ops: PlannedOperation[],
  stoppedBefore: ReadonlySet<string>,
  report: ExecutionReport,
): Promise<void> {
  const opened = deps.connections.get(connectionId);
  if (!opened) throw new Error(`the plan targets ${connectionId}, which is not an open connection`);
  // An operation that stopped the connection before goes after the others of its kind: a record
  // the vendor keeps failing (a 5xx for that one record) then holds up no later opt-out, while a
  // real outage still stops the run at the first operation it meets.
  const stopped = (o: PlannedOperation): boolean => stoppedBefore.has(o.op_id);
  const consent = ops.filter((o) => o.priority === "consent");
  const rest = ops.filter((o) => o.priority !== "consent");
  const ordered = [
    ...consent.filter((o) => !stopped(o)),
    ...consent.filter(stopped),
    ...rest.filter((o) => !stopped(o)),
    ...rest.filter(stopped),
  ];
  const session = opened.session();
  let done = 0;
  const size = Math.max(1, deps.batch_size ?? APPLY_BATCH);
  for (let i = 0; i < ordered.length; i += size) {
    const batch = ordered.slice(i, i + size);
    // A record this batch creates may be another run's to create too (pairs sharing a CRM plan the
    // same person's record each): the batch holds its contacts' creation locks until their links
    // are stored, and sends no creation a run holding them before it has linked.
    const stop = await withExclusiveNames(deps.store, creationLockNames(connectionId, batch), () =>
      applyBatch(deps, connectionId, session, batch, report),
    );
    done += batch.length;
    deps.onProgress?.({ done, total: ordered.length, connection_id: connectionId });
    await deps.afterBatch?.({ connection_id: connectionId, operations: batch.length });
    if (stop) {
      // Auth, quota and outages stop the connection's work: the rest stays pending, visibly.
      stop.operations += ordered.length - done;
      report.waiting.push(stop);
      report.operations.deferred += ordered.length - done;
      return;
    }
  }
  await opened.healthy({ ok: true });
}

/** The creation locks of `batch`'s new records: the contact's and its address's, on the connection. */
function creationLockNames(connectionId: string, batch: readonly PlannedOperation[]): string[] {
  const names: string[] = [];
  for (const planned of batch) {
    const op = planned.operation;
    if (op.kind !== "create_contact") continue;
    for (const contactId of planned.contact_ids) names.push(`create:${connectionId}:contact:${contactId}`);
    const key = normaliseEmail(op.email);
    names.push(`create:${connectionId}:address:${key.ok ? key.match_key : op.email.trim().toLowerCase()}`);
  }
  return names;
}

/**
 * Applies one batch and records its outcomes in one transaction; returns why the connection must
 * wait, when it must (with its operations deferred in the batch). A creation whose contact is
 * linked on the connection already (another run created the record while this plan waited) is not
 * sent: it is skipped, pointing at that record.
 */
async function applyBatch(
  deps: ExecuteDeps,
  connectionId: string,
  session: ReturnType<OpenedConnection["session"]>,
  batch: readonly PlannedOperation[],
  report: ExecutionReport,
): Promise<Waiting | undefined> {
  const linked = await linkedAlready(deps.store, connectionId, batch);
  const sent = batch.filter((p) => !linked.has(p.op_id));
  // The records these imports make are Concord's, stored before they are sent (an import does not
  // say which records it made; whichever read links them by address claims them).
  for (const p of sent)
    if (p.operation.kind === "upsert_contacts")
      await deps.store.links.intendClaims(
        connectionId,
        p.operation.items.map((it) => it.item_id),
      );
  const outcomes: OperationOutcome[] =
    sent.length > 0 ? await session.apply(sent.map((o) => o.operation)) : [];
  for (const [op_id, external_id] of linked)
    outcomes.push({
      op_id,
      status: "skipped",
      external_id,
      code: "already_applied",
      message: `Another run created this contact's record (${external_id}) while this plan waited: not created again.`,
    });
  const byOp = new Map<string, OperationOutcome[]>();
  for (const o of outcomes) {
    const list = byOp.get(o.op_id) ?? [];
    list.push(o);
    byOp.set(o.op_id, list);
  }
  let stop: Waiting | undefined;
  await deps.store.transaction(async (tx) => {
    for (const planned of batch) {
      const got = byOp.get(planned.op_id) ?? [
        {
          op_id: planned.op_id,
          status: "deferred" as const,
          code: "bad_response" as const,
          message: "The connector returned no outcome for this operation; it stays queued.",
        },
      ];
      // The first operation whose deferral stops the connection is marked: the next run puts it
      // after the others (`executeConnection`).
      const deferred = got.find((o) => o.status === "deferred");
      const stopsHere = stop === undefined && deferred !== undefined && deferred.code !== "bad_response";
      const result = await recordOutcomes(tx, planned, got, report, stopsHere);
      if (result.waiting && result.waiting.code === "bad_response") {
        // The operation's own answer could not be read: it is kept and tried again next run, and
        // the connection goes on with the rest (a record the vendor keeps answering badly must
        // not hold up every later opt-out).
        const kept = report.waiting.find(
          (w) => w.connection_id === connectionId && w.code === "bad_response",
        );
        if (kept) kept.operations += 1;
        else report.waiting.push({ ...result.waiting, connection_id: connectionId, operations: 1 });
      } else if (result.waiting && !stop)
        stop = { ...result.waiting, connection_id: connectionId, operations: 0 };
    }
  });
  if (stop) stop.operations = countDeferred(batch, byOp);
  return stop;
}

/** Creations in `batch` whose contact has a record on the connection already: op id → that record. */
async function linkedAlready(
  store: StoreSession,
  connectionId: string,
  batch: readonly PlannedOperation[],
): Promise<Map<string, string>> {
  const creations = batch.filter((p) => p.operation.kind === "create_contact" && p.contact_ids.length > 0);
  const found = new Map<string, string>();
  if (creations.length === 0) return found;
  const links = await store.links.forContacts(creations.flatMap((p) => p.contact_ids));
  for (const p of creations) {
    const link = p.contact_ids
      .flatMap((id) => links.get(id) ?? [])
      .find((l) => l.connection_id === connectionId);
    if (link) found.set(p.op_id, link.external_id);
  }
  return found;
}

const countDeferred = (batch: readonly PlannedOperation[], byOp: Map<string, OperationOutcome[]>): number =>
  batch.filter((p) => (byOp.get(p.op_id) ?? []).some((o) => o.status === "deferred")).length;

/** Records one operation's outcomes; returns why its connection must wait, when it must. */
async function recordOutcomes(
  tx: StoreSession,
  planned: PlannedOperation,
  outcomes: readonly OperationOutcome[],
  report: ExecutionReport,
  stoppedConnection = false,
): Promise<{ waiting?: Omit<Waiting, "connection_id" | "operations"> }> {
  for (const o of outcomes) report.items[o.status] += 1;
  const deferred = outcomes.find((o) => o.status === "deferred");
  const failed = outcomes.filter((o) => o.status === "failed");
  const op = planned.operation;

  // Records the system created for us: link them at once, so no later read creates a second contact.
  let links = 0;
  for (const o of outcomes) {
    if ((o.status !== "succeeded" && o.status !== "skipped") || o.external_id === undefined) continue;
    const contactId =
      op.kind === "upsert_contacts"
        ? (op.items.find((it) => it.item_id === o.item_id)?.item_id ?? null)
        : op.kind === "create_contact"
          ? (planned.contact_ids[0] ?? null)
          : null;
    if (contactId === null) continue;
    const existing = await tx.links.find(planned.connection_id, o.external_id);
    if (existing) continue;
    const created = await tx.links.create({
      connection_id: planned.connection_id,
      external_id: o.external_id,
      contact_id: contactId,
      origin: "concord",
    });
    if (created.kind === "created") links += 1;
  }
  report.links_created += links;

  if (op.kind === "upsert_contacts") {
    const took = outcomes.filter((o) => o.status === "succeeded" && o.item_id !== undefined);
    if (took.length > 0)
      (report.imported[planned.connection_id] ??= []).push(...took.map((o) => o.item_id ?? ""));
  }

  for (const f of failed) {
    const contactId =
      op.kind === "upsert_contacts" && f.item_id !== undefined ? f.item_id : (planned.contact_ids[0] ?? null);
    // A new contact the platform refused under its own rules: skipped there with its reason (not
    // retried every run) until the address changes.
    const item = op.kind === "upsert_contacts" ? op.items.find((it) => it.item_id === f.item_id) : undefined;
    const key = item ? normaliseEmail(item.email) : undefined;
    if (contactId !== null && item && (f.code === "validation_failed" || f.code === "cannot_add_to_list"))
      await tx.rejections.record({
        contact_id: contactId,
        connection_id: planned.connection_id,
        email_match_key: key?.ok === true ? key.match_key : item.email.trim().toLowerCase(),
        code: f.code,
        message: (f.message ?? "The system refused the address.").slice(0, 1000),
      });
    report.rejections.push({
      op_id: planned.op_id,
      connection_id: planned.connection_id,
      contact_id: contactId,
      code: f.code ?? "failed",
      message: f.message ?? "The system refused the operation.",
    });
  }

  const status: OutcomeStatus = deferred
    ? "retry"
    : failed.length > 0 && failed.length === outcomes.length
      ? "permanent_error"
      : outcomes.every((o) => o.status === "skipped")
        ? "skipped"
        : "succeeded";
  const detail: JsonValue = {
    items: outcomes.length,
    by_status: tally(outcomes),
    ...(deferred ? { code: deferred.code ?? null, message: deferred.message ?? null } : {}),
    ...(stoppedConnection ? { [STOPPED_CONNECTION]: true } : {}),
    ...(failed.length > 0
      ? {
          failures: failed.slice(0, MAX_ITEM_NOTES).map((f) => ({
            item_id: f.item_id ?? null,
            code: f.code ?? null,
            message: f.message ?? null,
          })),
        }
      : {}),
    // Every skipped item keeps its reason (a duplicate in the batch, a record another run created).
    ...(outcomes.some((o) => o.status === "skipped")
      ? {
          skips: outcomes
            .filter((o) => o.status === "skipped")
            .slice(0, MAX_ITEM_NOTES)
            .map((o) => ({ item_id: o.item_id ?? null, code: o.code ?? null, message: o.message ?? null })),
        }
      : {}),
    ...(outcomes.some((o) => o.status === "pending_contact_action")
      ? {
          pending_contact_action:
            outcomes.find((o) => o.status === "pending_contact_action")?.message ?? null,
        }
      : {}),
  };
  await tx.outcomes.record({
    operation_id: planned.op_id,
    status,
    detail,
    ...(deferred?.retry_at !== undefined ? { retry_at: deferred.retry_at } : {}),
  });
  if (status === "retry") {
    report.operations.deferred += 1;
    return {
      waiting: {
        code: deferred?.code ?? "deferred",
        message: deferred?.message ?? "The connection's work is waiting.",
        ...(deferred?.retry_at !== undefined ? { retry_at: deferred.retry_at } : {}),
      },
    };
  }
  await tx.operations.setStatus(
    planned.op_id,
    status === "permanent_error" ? "failed" : status === "skipped" ? "skipped" : "succeeded",
  );
  if (status === "permanent_error") report.operations.failed += 1;
  else if (status === "skipped") report.operations.skipped += 1;
  else report.operations.succeeded += 1;
  return {};
}

function tally(outcomes: readonly OperationOutcome[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const o of outcomes) out[o.status] = (out[o.status] ?? 0) + 1;
  return out;
}
