/**
 * Verifies the consent ledger's hash chain page by page (bounded memory) and reports the first row
 * that breaks it: an edited, deleted, reordered or forged row, or a head that does not match.
 */
import { z } from "zod";
import type { ConsentEventRow, LedgerHead, StoreSession } from "../store/ports";
import { canonicalJson } from "../core/canonical-json";
import { computeChainHash, evidenceDigest, LEDGER_GENESIS_HASH } from "./chain-hash";
import { ledgerPages } from "./consent-ledger";

export type LedgerBreak =
  | "seq_gap" // a row is missing (deleted) at first_broken_seq
  | "prev_hash_mismatch" // the row does not point at its predecessor's hash
  | "hash_mismatch" // the row's content no longer produces its hash (edited)
  | "evidence_digest_mismatch" // the evidence was edited (or left on a row marked erased)
  | "column_mismatch" // an indexed column disagrees with the hashed event
  | "unreadable_row" // the row's JSON does not parse
  | "head_mismatch"; // the chain head disagrees with the last row (tail deleted or head edited)

export type VerifyResult =
  | { ok: true; count: number; head: LedgerHead }
  | { ok: false; first_broken_seq: number; reason: LedgerBreak; detail: string };

const RowEventSchema = z.looseObject({
  id: z.string(),
  contact_id: z.string(),
  occurred_at: z.string(),
  observed_at: z.string(),
});

/**
 * Checks every row up to the head as it was when verification started; rows appended meanwhile are
 * left for the next run. The head hash returned is what to record elsewhere (an external anchor)
 * to detect a rewrite of the whole chain.
 */
export async function verifyLedger(
  store: StoreSession,
  options: { page_size?: number } = {},
): Promise<VerifyResult> {
  const head = await store.consentEvents.readHead();
  let prev: LedgerHead = { seq: 0, hash: LEDGER_GENESIS_HASH };
  const pages = ledgerPages(store, {
    until_seq: head.seq,
    ...(options.page_size !== undefined && { page_size: options.page_size }),
  });
  for await (const page of pages) {
    for (const row of page) {
      const broken = checkRow(prev, row);
      if (broken !== undefined) return { ok: false, ...broken };
      prev = { seq: row.seq, hash: row.hash };
    }
  }
  if (prev.seq < head.seq) {
    return {
      ok: false,
      first_broken_seq: prev.seq + 1,
      reason: "seq_gap",
      detail: `the head is at seq ${head.seq} but the last row is seq ${prev.seq}`,
    };
  }
  if (prev.hash !== head.hash) {
    return {
      ok: false,
      first_broken_seq: head.seq,
      reason: "head_mismatch",
      detail: "the chain head's hash differs from the last row's hash",
    };
  }
  return { ok: true, count: head.seq, head };
}

type Broken = { first_broken_seq: number; reason: LedgerBreak; detail: string };

/** One link of the chain; exported so an exported ledger can be checked the same way. */
export function checkRow(prev: LedgerHead, row: ConsentEventRow): Broken | undefined {
  const at = (reason: LedgerBreak, detail: string, seq = row.seq): Broken => ({
    first_broken_seq: seq,
    reason,
    detail,
  });
  if (row.seq !== prev.seq + 1)
    return at("seq_gap", `expected seq ${prev.seq + 1}, found ${row.seq}`, prev.seq + 1);
  if (row.prev_hash !== prev.hash)
    return at("prev_hash_mismatch", "prev_hash does not match the previous row's hash");

  let event: z.infer<typeof RowEventSchema>;
  let evidence: Record<string, unknown>;
  try {
    event = RowEventSchema.parse(JSON.parse(row.event_json));
    evidence = z.record(z.string(), z.unknown()).parse(JSON.parse(row.evidence_json));
  } catch {
    return at("unreadable_row", "event_json or evidence_json is not a JSON object of the expected shape");
  }

  const hash = computeChainHash(row.prev_hash, {
    seq: row.seq,
    event,
    evidence_digest: row.evidence_digest,
    recorded_at: row.recorded_at,
  });
  if (hash !== row.hash) return at("hash_mismatch", "the row's content does not produce its hash");

  if (
    event.id !== row.id ||
    event.contact_id !== row.contact_id ||
    event.occurred_at !== row.occurred_at ||
    event.observed_at !== row.observed_at
  ) {
    return at("column_mismatch", "id, contact_id, occurred_at or observed_at differs from the hashed event");
  }

  if (row.evidence_erased_at === null) {
    if (evidenceDigest(evidence) !== row.evidence_digest) {
      return at("evidence_digest_mismatch", "the evidence does not match its digest");
    }
  } else if (canonicalJson(evidence) !== "{}") {
    return at("evidence_digest_mismatch", "the row is marked erased but still carries evidence");
  }
  return undefined;
}
