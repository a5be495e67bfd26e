/**
 * The consent ledger (DESIGN.md §2 rules 1, 7, 8): an append-only, hash-chained, idempotent record
 * of every consent observation, over the store. Consent state is a fold over what this returns.
 */
import { z } from "zod";
import {
  ConsentEventSchema,
  EvidenceSchema,
  type ConsentEvent,
  type ConsentEventId,
} from "../core/consent/consent-event";
import type { ConsentEventRow, LedgerHead, StoreSession } from "../store/ports";
import { canonicalJson } from "../core/canonical-json";
import { computeChainHash, evidenceDigest, withoutEvidence } from "./chain-hash";
import { consentEventId, type ConsentEventDraft } from "./consent-event-id";

/** An event as the ledger holds it: the event plus its place and proof in the chain. */
export type StoredConsentEvent = {
  seq: number;
  event: ConsentEvent;
  evidence_digest: string;
  /** Set once the evidence was blanked by an erasure; `event.evidence` is then `{}`. */
  evidence_erased_at: string | null;
  /** When Concord appended it (ISO-8601 UTC); `event.observed_at` is when it was first seen. */
  recorded_at: string;
  prev_hash: string;
  hash: string;
};

/** An event to append: with its id, or without (then `consentEventId` derives it). */
export type ConsentEventInput = ConsentEvent | (ConsentEventDraft & { id?: undefined });

/**
 * `contact_erased`: the event is of a contact Concord erased. Nothing more is recorded of them: an
 * act seen or made while the erasure ran (an override, a click on an old link) would otherwise keep
 * its evidence after the erasure blanked the rest.
 */
export type AppendRejectionCode = "invalid_event" | "id_mismatch" | "contact_erased";

export type AppendResult =
  | { kind: "appended"; appended: true; event: StoredConsentEvent }
  /** Already in the ledger (or earlier in the same batch): stored once, here is the stored one. */
  | { kind: "duplicate"; appended: false; existing: StoredConsentEvent }
  | { kind: "rejected"; appended: false; code: AppendRejectionCode; message: string };

/** Any syntactically valid id, so the schema can check everything else before the real id is derived. */
const PENDING_ID = "evt_pending_derivation";

/**
 * Appends a batch in one transaction (joining the caller's, if any, so data and checkpoints can
 * commit together). Results come back in input order. The chain head is locked for the whole
 * transaction, so concurrent appenders queue and never fork the chain.
 */
export async function appendConsentEvents(
  store: StoreSession,
  events: readonly ConsentEventInput[],
): Promise<AppendResult[]> {
  const prepared = events.map(prepare);
  const valid = prepared.filter((p): p is { kind: "valid"; event: ConsentEvent } => p.kind === "valid");
  if (valid.length === 0) return prepared.flatMap((p) => (p.kind === "rejected" ? [p.result] : []));

  return store.transaction(async (tx) => {
    // Lock first, then look for existing ids: a concurrent appender of the same event has committed by now.
    const head = await tx.consentEvents.lockHead();
    const ids = [...new Set(valid.map((p) => p.event.id))];
    const stored = new Map<ConsentEventId, StoredConsentEvent>();
    for (const row of await tx.consentEvents.findByIds(ids)) stored.set(row.id, fromRow(row));
    // Read under the head's lock, which an erasure holds from blanking the evidence to its commit:
    // an erasure committed before is seen here; one after this commits blanks what this appends.
    const erased = await tx.contacts.erasedAmong(valid.map((p) => p.event.contact_id));

    const recorded_at = tx.clock().toISOString();
    const rows: ConsentEventRow[] = [];
    let tip: LedgerHead = head;
    const results = prepared.map((p): AppendResult => {
      if (p.kind === "rejected") return p.result;
      if (erased.has(p.event.contact_id))
        return {
          kind: "rejected",
          appended: false,
          code: "contact_erased",
          message: `contact ${p.event.contact_id} was erased: nothing more is recorded of them`,
        };
      const existing = stored.get(p.event.id);
      if (existing !== undefined) return { kind: "duplicate", appended: false, existing };
      const row = sealed(tx, chainRow(tip, p.event, recorded_at));
      const entry = fromRow(row);
      rows.push(row);
      stored.set(p.event.id, entry);
      tip = { seq: row.seq, hash: row.hash };
      return { kind: "appended", appended: true, event: entry };
    });

    if (rows.length > 0) {
      await tx.consentEvents.insert(rows);
      await tx.consentEvents.setHead(tip);
    }
    return results;
  });
}

type Prepared = { kind: "valid"; event: ConsentEvent } | { kind: "rejected"; result: AppendResult };

function prepare(input: ConsentEventInput): Prepared {
  const parsed = ConsentEventSchema.safeParse({ ...input, id: input.id ?? PENDING_ID });
  if (!parsed.success) {
    return {
      kind: "rejected",
      result: {
        kind: "rejected",
        appended: false,
        code: "invalid_event",
        message: z.prettifyError(parsed.error),
      },
    };
  }
  const derived = consentEventId(parsed.data);
  // A caller-chosen id that differs from the content id would defeat idempotency across paths.
  if (input.id !== undefined && input.id !== derived) {
    return {
      kind: "rejected",
      result: {
        kind: "rejected",
        appended: false,
        code: "id_mismatch",
        message: `event id ${input.id} is not the content-derived id ${derived}; use consentEventId()`,
      },
    };
  }
  return { kind: "valid", event: { ...parsed.data, id: derived } };
}

/** The stored row of `event` chained after `prev` (what an append writes; bench data uses it too). */
export function chainRow(prev: LedgerHead, event: ConsentEvent, recorded_at: string): ConsentEventRow {
  const seq = prev.seq + 1;
  const chained = withoutEvidence(event);
  const evidence_digest = evidenceDigest(event.evidence);
  return {
    seq,
    id: event.id,
    contact_id: event.contact_id,
    occurred_at: event.occurred_at,
    observed_at: event.observed_at,
    event_json: canonicalJson(chained),
    evidence_json: canonicalJson(event.evidence),
    evidence_digest,
    evidence_erased_at: null,
    recorded_at,
    prev_hash: prev.hash,
    hash: computeChainHash(prev.hash, { seq, event: chained, evidence_digest, recorded_at }),
    seal: null,
  };
}

/** The row with its seal, when the store holds the ledger key. */
const sealed = (store: StoreSession, row: ConsentEventRow): ConsentEventRow =>
  store.sealer === undefined ? row : { ...row, seal: store.sealer.seal(row.hash) };

/** Reads a row back into a typed event; a row that no longer parses is corruption, so it throws. */
export function fromRow(row: ConsentEventRow): StoredConsentEvent {
  const event = ConsentEventSchema.safeParse({
    ...parseObject(row.event_json, row.seq),
    evidence: EvidenceSchema.parse(parseObject(row.evidence_json, row.seq)),
  });
  if (!event.success) {
    throw new Error(
      `consent ledger: row seq ${row.seq} is not a valid consent event: ${event.error.message}`,
    );
  }
  return {
    seq: row.seq,
    event: event.data,
    evidence_digest: row.evidence_digest,
    evidence_erased_at: row.evidence_erased_at,
    recorded_at: row.recorded_at,
    prev_hash: row.prev_hash,
    hash: row.hash,
  };
}

const JsonObjectSchema = z.record(z.string(), z.unknown());

function parseObject(text: string, seq: number): Record<string, unknown> {
  try {
    return JsonObjectSchema.parse(JSON.parse(text));
  } catch (error) {
    throw new Error(`consent ledger: row seq ${seq} holds malformed JSON`, { cause: error });
  }
}

/** Every event about a contact, in ledger order: the input of the consent fold and of `explain`. */
export async function eventsForContact(
  store: StoreSession,
  contact_id: string,
): Promise<StoredConsentEvent[]> {
  const rows = await store.consentEvents.forContact(contact_id);
  return rows.map(fromRow);
}

/** The next page of events after `seq` (exclusive), in order; feed the last seq back in to continue. */
export async function eventsSince(
  store: StoreSession,
  seq: number,
  limit = 500,
): Promise<StoredConsentEvent[]> {
  // Erasure rows are not consent events: skipped, reading on so that a page is never empty early.
  for (let after = seq; ;) {
    const rows = await store.consentEvents.page(after, limit);
    const events = rows.filter((row) => !isErasureRow(row));
    if (events.length > 0 || rows.length < limit) return events.map(fromRow);
    after = rows[rows.length - 1]?.seq ?? after;
  }
}

/** Walks the ledger page by page, so callers hold one page in memory however long the ledger is. */
export async function* ledgerPages(
  store: StoreSession,
  options: { after_seq?: number; page_size?: number; contact_id?: string; until_seq?: number } = {},
): AsyncGenerator<ConsentEventRow[]> {
  const page_size = options.page_size ?? 500;
  let after = options.after_seq ?? 0;
  for (;;) {
    const filter = options.contact_id === undefined ? undefined : { contact_id: options.contact_id };
    let rows = await store.consentEvents.page(after, page_size, filter);
    if (options.until_seq !== undefined) {
      const until = options.until_seq;
      rows = rows.filter((row) => row.seq <= until);
    }
    if (rows.length === 0) return;
    yield rows;
    const last = rows[rows.length - 1];
    if (last === undefined || rows.length < page_size) return;
    after = last.seq;
  }
}

/**
 * Erasure (rule 8): blanks the evidence of a contact's events and keeps its digest, so the chain
 * still verifies. The one mutation the ledger allows; the events themselves (the facts) stay.
 * The erasure itself is appended to the chain in the same transaction (an erasure row), so blank
 * evidence without one is tampering that `verifyLedger` reports.
 */
export async function eraseEvidence(
  store: StoreSession,
  contact_id: string,
  options: { erasure_id?: string } = {},
): Promise<{ erased: number }> {
  return store.transaction(async (tx) => {
    const head = await tx.consentEvents.lockHead();
    const erased = await tx.consentEvents.eraseEvidence(contact_id, canonicalJson({}), head.seq);
    if (erased > 0) await appendErasureRow(tx, head, contact_id, options.erasure_id);
    return { erased };
  });
}

/**
 * Records in the chain that `contact_id`'s evidence up to the head is blank. `eraseEvidence` does
 * it with every erasure; `concord ledger seal --record-erasures` does it for erasures made before
 * erasures were chained. `head` is the locked head (the caller's transaction).
 */
export async function appendErasureRow(
  tx: StoreSession,
  head: LedgerHead,
  contact_id: string,
  erasure_id: string | undefined,
): Promise<LedgerHead> {
  const row = sealed(tx, erasureRow(head, contact_id, erasure_id, tx.clock().toISOString()));
  await tx.consentEvents.insert([row]);
  const tip = { seq: row.seq, hash: row.hash };
  await tx.consentEvents.setHead(tip);
  return tip;
}

/**
 * Erasure rows are filed under this contact id, which no contact has, so the per-contact reads
 * (the consent fold, explain, proof) never meet them; walks by seq (verify, export) do.
 */
export const ERASURE_ROW_CONTACT = "concord:erasure";

/** What an erasure row's `event_json` holds. */
export const ErasureRecordSchema = z
  .object({
    kind: z.literal("evidence_erasure"),
    id: z.string(),
    contact_id: z.literal(ERASURE_ROW_CONTACT),
    /** Whose evidence was blanked, and up to which seq. */
    erased_contact_id: z.string(),
    through_seq: z.number().int().nonnegative(),
    erasure_id: z.string().nullable(),
    occurred_at: z.string(),
    observed_at: z.string(),
  })
  .strict();
export type ErasureRecord = z.infer<typeof ErasureRecordSchema>;

export const isErasureRow = (row: Pick<ConsentEventRow, "contact_id">): boolean =>
  row.contact_id === ERASURE_ROW_CONTACT;

function erasureRow(
  prev: LedgerHead,
  contact_id: string,
  erasure_id: string | undefined,
  at: string,
): ConsentEventRow {
  const seq = prev.seq + 1;
  const record: ErasureRecord = {
    kind: "evidence_erasure",
    id: `erasure_${seq}`,
    contact_id: ERASURE_ROW_CONTACT,
    erased_contact_id: contact_id,
    through_seq: prev.seq,
    erasure_id: erasure_id ?? null,
    occurred_at: at,
    observed_at: at,
  };
  const evidence_digest = evidenceDigest({});
  return {
    seq,
    id: record.id,
    contact_id: ERASURE_ROW_CONTACT,
    occurred_at: at,
    observed_at: at,
    event_json: canonicalJson(record),
    evidence_json: canonicalJson({}),
    evidence_digest,
    evidence_erased_at: null,
    recorded_at: at,
    prev_hash: prev.hash,
    hash: computeChainHash(prev.hash, { seq, event: record, evidence_digest, recorded_at: at }),
    seal: null,
  };
}
