/**
 * The ledger's hash chain: `hash = sha256(prev_hash ‖ canonical JSON of the row's chained fields)`.
 * Evidence enters only as its digest, so erasing evidence (rule 8) leaves every hash intact.
 */
import { createHash } from "node:crypto";
import type { ConsentEvent, Evidence } from "../core/consent/consent-event";
import { canonicalJson } from "../core/canonical-json";

export { LEDGER_GENESIS_HASH } from "../store/migrations/0001-initial";

/** Version tag inside every hashed body, so a future change of the chained fields is explicit. */
export const CHAIN_VERSION = 1;

/** The event's fields without its evidence: the part of the event the chain covers directly. */
export type ChainedEvent = Omit<ConsentEvent, "evidence">;

export type ChainedFields = {
  seq: number;
  event: ChainedEvent | Record<string, unknown>;
  evidence_digest: string;
  recorded_at: string;
};

export const sha256Hex = (text: string): string => createHash("sha256").update(text, "utf8").digest("hex");

export const evidenceDigest = (evidence: Evidence | Record<string, unknown>): string =>
  sha256Hex(canonicalJson(evidence));

export function withoutEvidence(event: ConsentEvent): ChainedEvent {
  const { evidence: _evidence, ...rest } = event;
  return rest;
}

/** `prev_hash` is fixed-width hex, so concatenating it with the body is unambiguous. */
export function computeChainHash(prev_hash: string, fields: ChainedFields): string {
  const body = canonicalJson({
    v: CHAIN_VERSION,
    seq: fields.seq,
    event: fields.event,
    evidence_digest: fields.evidence_digest,
    recorded_at: fields.recorded_at,
  });
  return sha256Hex(prev_hash + body);
}
