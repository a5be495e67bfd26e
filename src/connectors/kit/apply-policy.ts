/**
 * How every connector applies a batch of operations, in one place: consent operations go first (an
 * opt-out never waits behind field updates), each failure becomes an outcome that says whether the
 * work is kept for later, an account-wide failure (a spent quota, refused credentials) stops the
 * batch and keeps everything left, and a bug in one operation never hides the outcomes of the others.
 */
import type { ConnectorError, ConnectorErrorCode, ConnectorOperation, OperationOutcome } from "../connector";
import { isPersonsOwnOptIn } from "../../core/consent/consent-state";
import { errorMessage } from "../../core/error-code";

/** Failures after which no further call of this batch can succeed: the rest is kept for later. */
const STOPS_ALL: ReadonlySet<ConnectorErrorCode> = new Set([
  "quota_exceeded",
  "auth_invalid",
  "auth_missing",
]);

/**
 * Failures of the connection or the moment, not of the operation: it is kept (deferred) and retried.
 * An answer that cannot be read (a proxy's error page, a body cut short) says nothing about the
 * operation either: giving an opt-out up for it would lose the opt-out.
 */
const DEFERRABLE: ReadonlySet<ConnectorErrorCode> = new Set([
  ...STOPS_ALL,
  "rate_limited",
  "vendor_unavailable",
  "network_error",
  "bad_response",
]);

const CONSENT_KINDS: ReadonlySet<ConnectorOperation["kind"]> = new Set([
  "record_opt_out",
  "record_opt_in",
  "request_resubscribe",
]);

/** Whether a failure means no further call of this batch can succeed. */
export function stopsAll(error: ConnectorError): boolean {
  return STOPS_ALL.has(error.code);
}

/** Why an account-wide failure keeps the work, with the vendor named. */
function accountWide(vendor: string, error: Pick<ConnectorError, "code" | "retry_at">): string | undefined {
  if (error.code === "quota_exceeded")
    return `${vendor}'s daily request quota is spent; deferred until ${error.retry_at ?? "its reset"}.`;
  if (error.code === "auth_invalid" || error.code === "auth_missing")
    return `${vendor} refused the credentials after a token refresh; the operation is kept until the connection is authorised again.`;
  return undefined;
}

/** What a failure says to the person reading the outcome. */
function explain(vendor: string, error: ConnectorError): string {
  const why = accountWide(vendor, error);
  return why === undefined ? error.message : `${why} ${error.message}`;
}

/** What became of work whose call failed: kept for later (deferred) or failed for good. */
export function failureOf(vendor: string, error: ConnectorError): Omit<OperationOutcome, "op_id"> {
  return {
    status: isDeferrable(error) ? "deferred" : "failed",
    code: error.code,
    message: explain(vendor, error),
    ...(error.retry_at ? { retry_at: error.retry_at } : {}),
  };
}

/** Whether a failure is of the connection or the moment (kept and retried), not of the operation. */
export const isDeferrable = (error: ConnectorError): boolean => DEFERRABLE.has(error.code);

/** An operation's outcome without its id: what a connector's handler for one operation answers. */
export type Outcome = Omit<OperationOutcome, "op_id">;

/** Done (or found done already), on the record it touched. */
export const succeeded = (externalId?: string, code?: "already_applied"): Outcome => ({
  status: "succeeded",
  ...(externalId ? { external_id: externalId } : {}),
  ...(code ? { code } : {}),
});

/** What the system cannot do at all, with what to do instead. */
export const unsupported = (message: string): Outcome => ({ status: "failed", code: "unsupported", message });

/**
 * A consent write a CRM refuses before any call: a scope it keeps no consent in, or an opt-in
 * that is not the person's own (DESIGN.md §2 rule 3: no system is written an opt-in for an admin's
 * or a sync's act). Undefined when the write may go ahead.
 */
export function consentWriteRefusal(
  op: Extract<ConnectorOperation, { kind: "record_opt_out" | "record_opt_in" }>,
  keeps: { construct_types: readonly string[]; where: string; restores: string },
): Outcome | undefined {
  if (
    op.scope.kind === "account" ||
    (op.scope.kind === "construct" && !keeps.construct_types.includes(op.scope.construct.type))
  )
    return { status: "failed", code: "validation_failed", message: keeps.where };
  if (op.kind === "record_opt_in" && !isPersonsOwnOptIn(op.origin))
    return {
      status: "failed",
      code: "consent_requires_contact_action",
      message: `An opt-in from ${op.origin.mechanism} is not the person's own act; ${keeps.restores}`,
    };
  return undefined;
}

/**
 * An opt-in planned over a record that showed no opt-out in its scope, which shows one now: made
 * after the plan read it (staff, the person, another pair's run), that opt-out stands. The opt-in
 * is skipped, nothing written; the next read records the opt-out, and the ledger decides between
 * the two by when each was made. Undefined when the write may go ahead.
 */
export function optedOutSinceRead(
  vendor: string,
  op: Extract<ConnectorOperation, { kind: "record_opt_out" | "record_opt_in" }>,
  showsOptOut: boolean,
  where: string,
): Outcome | undefined {
  if (op.kind !== "record_opt_in" || op.read_opted_out !== false || !showsOptOut) return undefined;
  return {
    status: "skipped",
    code: "conflict",
    message: `${vendor} shows an opt-out (${where}) that it did not show when the opt-in was planned: made since, it stands. Concord wrote nothing; its next read records the opt-out.`,
  };
}

/** The outcome of an operation (or one item of it) whose call failed. */
export function outcomeOfError(
  vendor: string,
  op_id: string,
  error: ConnectorError,
  extra: { item_id?: string } = {},
): OperationOutcome {
  return { op_id, ...extra, ...failureOf(vendor, error) };
}

/** One outcome per item of a bulk operation, one for any other. */
function outcomesForAll(
  op: ConnectorOperation,
  make: (extra: { item_id?: string }) => OperationOutcome,
): OperationOutcome[] {
  return op.kind === "upsert_contacts" ? op.items.map((i) => make({ item_id: i.item_id })) : [make({})];
}

/** The failure that stops the batch, read back from outcomes (a deferred, account-wide failure). */
function stoppingFailure(vendor: string, outcomes: readonly OperationOutcome[]): ConnectorError | undefined {
  for (const o of outcomes) {
    if (o.status !== "deferred" || o.code === undefined || !STOPS_ALL.has(o.code as ConnectorErrorCode))
      continue;
    const failure = { code: o.code as ConnectorErrorCode, ...(o.retry_at ? { retry_at: o.retry_at } : {}) };
    return { ...failure, message: `Not attempted: ${accountWide(vendor, failure) ?? o.code}` };
  }
  return undefined;
}

/**
 * Applies operations one after another, consent first, through `run` (the connector's own work for
 * one operation). Outcomes come back in the order the operations were given.
 */
export async function applyConsentFirst(
  vendor: string,
  operations: readonly ConnectorOperation[],
  run: (op: ConnectorOperation) => Promise<OperationOutcome[]>,
): Promise<OperationOutcome[]> {
  const ordered = [
    ...operations.filter((o) => CONSENT_KINDS.has(o.kind)),
    ...operations.filter((o) => !CONSENT_KINDS.has(o.kind)),
  ];
  const byOp = new Map<ConnectorOperation, OperationOutcome[]>();
  let stop: ConnectorError | undefined;
  for (const op of ordered) {
    if (stop) {
      const why = stop;
      byOp.set(
        op,
        outcomesForAll(op, (extra) => ({
          op_id: op.op_id,
          ...extra,
          status: "deferred",
          code: why.code,
          message: why.message,
          ...(why.retry_at ? { retry_at: why.retry_at } : {}),
        })),
      );
      continue;
    }
    let outcomes: OperationOutcome[];
    try {
      outcomes = await run(op);
    } catch (error) {
      // A bug in our code must not hide the outcomes of the operations already done.
      const message = `${vendor}: ${errorMessage(error)}`;
      outcomes = outcomesForAll(op, (extra) => ({
        op_id: op.op_id,
        ...extra,
        status: "failed",
        code: "bad_response",
        message,
      }));
    }
    byOp.set(op, outcomes);
    stop = stoppingFailure(vendor, outcomes);
  }
  return operations.flatMap((op) => byOp.get(op) ?? []);
}

/** A connector's work for each kind of operation: every kind must have one (the type checks it). */
export type OperationHandlers = {
  [K in ConnectorOperation["kind"]]: (
    op: Extract<ConnectorOperation, { kind: K }>,
  ) => Promise<OperationOutcome[]>;
};

/** One `run` for `applyConsentFirst` from a handler per operation kind. */
export function runByKind(
  handlers: OperationHandlers,
): (op: ConnectorOperation) => Promise<OperationOutcome[]> {
  return (op) => (handlers[op.kind] as (o: ConnectorOperation) => Promise<OperationOutcome[]>)(op);
}
