/**
 * Verifies the consent ledger's hash chain page by page (bounded memory) and reports the first row
 * that breaks it: an edited, deleted, reordered or forged row, or a head that does not match.
 *
 * The chain alone cannot stop someone who can write to the database: they can edit a row and
 * recompute every hash after it. Three checks close that: with the ledger key every row's seal
 * must be the key's (the key is not in the database); `expect_head`, a seq and hash recorded
 * elsewhere earlier, must still be in the chain (a truncated or rewritten history drops it); and
 * blank evidence must be covered by an erasure row appended when Concord erased it.
 */
import { z } from "zod";
import type { ConsentEventRow, LedgerHead, LedgerSealer, StoreSession } from "../store/ports";
import { canonicalJson } from "../core/canonical-json";
import { computeChainHash, evidenceDigest, LEDGER_GENESIS_HASH } from "./chain-hash";
import { ErasureRecordSchema, isErasureRow, ledgerPages } from "./consent-ledger";
import { checkSeal } from "./ledger-seal";

export type LedgerBreak =
  | "seq_gap" // a row is missing (deleted) at first_broken_seq
  | "prev_hash_mismatch" // the row does not point at its predecessor's hash
  | "hash_mismatch" // the row's content no longer produces its hash (edited)
  | "evidence_digest_mismatch" // the evidence was edited (or left on a row marked erased)
  | "column_mismatch" // an indexed column disagrees with the hashed event
  | "unreadable_row" // the row's JSON does not parse
  | "head_mismatch" // the chain head disagrees with the last row (tail deleted or head edited)
  | "erasure_unrecorded" // evidence is blank but no erasure row covers it (wiped outside Concord)
  | "unsealed_row" // a row has no seal although the ledger key is given
  | "seal_other_key" // a row is sealed by another key than the one given
  | "seal_mismatch" // a row's seal is not the key's seal of its hash (rewritten without the key)
  | "anchor_missing" // the chain is shorter than the expected head (tail truncated)
  | "anchor_mismatch"; // the row at the expected head's seq has another hash (history rewritten)

export type VerifyOptions = {
  page_size?: number;
  /** Check every row's seal with this key; without it seals are not checked (`sealed: false`). */
  sealer?: LedgerSealer | undefined;
  /** A head recorded elsewhere earlier (`ledger verify` prints it): it must still be in the chain. */
  expect_head?: LedgerHead | undefined;
  /** Report blank evidence without an erasure row in `unrecorded_erasures` instead of failing. */
  list_unrecorded_erasures?: boolean;
  /** With `sealer`: report rows without a seal in `unsealed` instead of failing (`ledger seal`). */
  list_unsealed?: boolean;
};

export type VerifyResult =
  | {
      ok: true;
      count: number;
      head: LedgerHead;
      /** Whether every row's seal was checked with the ledger key. */
      sealed: boolean;
      /** Erasure rows met (each covering one contact's blank evidence). */
      erasures: number;
      /** With `list_unrecorded_erasures`: contacts whose blank evidence no erasure row covers. */
      unrecorded_erasures?: string[];
      /** With `list_unsealed`: the rows without a seal, and whether one comes after a sealed row. */
      unsealed?: { count: number; first_seq: number | null; after_sealed: number | null };
    }
  | { ok: false; first_broken_seq: number; reason: LedgerBreak; detail: string };

/** `SEQ:HASH`, as `ledger verify` prints the head, parsed; undefined when it is not that shape. */
export function parseLedgerHead(text: string): LedgerHead | undefined {
  const match = /^(\d{1,15}):([0-9a-f]{64})$/.exec(text.trim());
  if (match?.[1] === undefined || match[2] === undefined) return undefined;
  return { seq: Number(match[1]), hash: match[2] };
}

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
export async function verifyLedger(store: StoreSession, options: VerifyOptions = {}): Promise<VerifyResult> {
  const head = await store.consentEvents.readHead();
  let prev: LedgerHead = { seq: 0, hash: LEDGER_GENESIS_HASH };
  const pages = ledgerPages(store, {
    until_seq: head.seq,
    ...(options.page_size !== undefined && { page_size: options.page_size }),
  });
  const expect = options.expect_head;
  const unsealed = { count: 0, first_seq: null as number | null, after_sealed: null as number | null };
  let sawSealed = false;
  // Contacts whose blank evidence waits for its erasure row: contact id → first blank seq.
  const unrecorded = new Map<string, number>();
  let erasures = 0;
  for await (const page of pages) {
    for (const row of page) {
      const sealBroken = options.sealer === undefined ? undefined : checkRowSeal(options.sealer, row);
      if (sealBroken?.reason === "unsealed_row" && options.list_unsealed === true) {
        unsealed.count += 1;
        unsealed.first_seq ??= row.seq;
        if (sawSealed) unsealed.after_sealed ??= row.seq;
      } else if (options.sealer !== undefined && sealBroken === undefined) sawSealed = true;
      const broken =
        checkRow(prev, row) ??
        (sealBroken?.reason === "unsealed_row" && options.list_unsealed === true ? undefined : sealBroken) ??
        (expect !== undefined && row.seq === expect.seq && row.hash !== expect.hash
          ? {
              first_broken_seq: row.seq,
              reason: "anchor_mismatch" as const,
              detail: `the expected head says seq ${expect.seq} has hash ${expect.hash}; the chain has ${row.hash}: the history up to it was rewritten`,
            }
          : undefined);
      if (broken !== undefined) return { ok: false, ...broken };
      if (isErasureRow(row)) {
        erasures += 1;
        const record = ErasureRecordSchema.parse(JSON.parse(row.event_json));
        const first = unrecorded.get(record.erased_contact_id);
        if (first !== undefined && first <= record.through_seq) unrecorded.delete(record.erased_contact_id);
      } else if (row.evidence_erased_at !== null && !unrecorded.has(row.contact_id)) {
        unrecorded.set(row.contact_id, row.seq);
      }
      prev = { seq: row.seq, hash: row.hash };
    }
  }
  // An erasure committed while we walked covers rows we saw blank: its row lies past our head.
  if (unrecorded.size > 0)
    for await (const page of ledgerPages(store, { after_seq: head.seq })) {
      for (const row of page) {
        if (!isErasureRow(row)) continue;
        const record = ErasureRecordSchema.parse(JSON.parse(row.event_json));
        const first = unrecorded.get(record.erased_contact_id);
        if (first !== undefined && first <= record.through_seq) unrecorded.delete(record.erased_contact_id);
      }
      if (unrecorded.size === 0) break;
    }
  if (unrecorded.size > 0 && options.list_unrecorded_erasures !== true) {
    const first = [...unrecorded.values()].reduce((a, b) => Math.min(a, b));
    return {
      ok: false,
      first_broken_seq: first,
      reason: "erasure_unrecorded",
      detail: `the evidence of ${unrecorded.size} contact(s) is blank with no erasure recorded in the chain (first at seq ${first}): it was wiped outside Concord. A store that erased people before erasures were chained records them once with \`concord ledger seal\``,
    };
  }
  if (expect !== undefined && prev.seq < expect.seq) {
    return {
      ok: false,
      first_broken_seq: prev.seq + 1,
      reason: "anchor_missing",
      detail: `the expected head is seq ${expect.seq} but the chain ends at seq ${prev.seq}: rows were removed from its end`,
    };
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
  return {
    ok: true,
    count: head.seq,
    head,
    sealed: options.sealer !== undefined,
    erasures,
    ...(options.list_unrecorded_erasures === true && { unrecorded_erasures: [...unrecorded.keys()].sort() }),
    ...(options.list_unsealed === true && { unsealed }),
  };
}

function checkRowSeal(sealer: LedgerSealer, row: ConsentEventRow): Broken | undefined {
  const at = (reason: LedgerBreak, detail: string): Broken => ({ first_broken_seq: row.seq, reason, detail });
  switch (checkSeal(sealer, row.hash, row.seal)) {
    case "ok":
      return undefined;
    case "unsealed":
      return at(
        "unsealed_row",
        "the row has no seal. Rows written while CONCORD_SECRET_KEY was not set are sealed with `concord ledger seal`; unsealed rows after sealed ones are what a rewrite looks like, and `ledger seal` refuses them",
      );
    case "other_key":
      return at(
        "seal_other_key",
        `the row is sealed by key ${row.seal?.split(":")[0] ?? "?"}, not by CONCORD_SECRET_KEY's key ${sealer.key_id}: verify with the key it was sealed with`,
      );
    case "forged":
      return at(
        "seal_mismatch",
        "the row's seal is not the ledger key's seal of its hash: it was rewritten without the key",
      );
  }
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

  if (isErasureRow(row)) {
    const record = ErasureRecordSchema.safeParse(event);
    if (!record.success || record.data.through_seq >= row.seq)
      return at("unreadable_row", "an erasure row that is not a valid erasure record of earlier rows");
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
