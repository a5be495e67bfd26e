/** Deterministic operation ids: the same pair, connection and operation content always get the same `op_` id. */
import { canonicalJson } from "../core/canonical-json";
import type { ConnectorOperation } from "../core/operations";

/** A connector operation before its id is known: every member of the union without `op_id`. */
export type OperationDraft = ConnectorOperation extends infer O
  ? O extends ConnectorOperation
    ? Omit<O, "op_id">
    : never
  : never;

/**
 * The id hashes the pair, the connection and the whole draft (kind, external ids, payload), so
 * re-planning an unchanged state yields the same id and an executor can skip what it already did,
 * while any change to the payload yields a new one.
 */
export function operationId(
  hash: (text: string) => string,
  pairId: string,
  connectionId: string,
  draft: OperationDraft,
): string {
  return `op_${hash(canonicalJson({ pair: pairId, connection: connectionId, operation: draft }))}`;
}

export function withOperationId(draft: OperationDraft, opId: string): ConnectorOperation {
  return { ...draft, op_id: opId };
}
