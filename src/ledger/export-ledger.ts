/**
 * Exports the consent ledger as proof of consent (rule 7): JSONL or CSV, streamed page by page with
 * back-pressure. Each row carries its hashes, so the export can be re-verified without Concord's database.
 */
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { stringify } from "csv-stringify";
import { spreadsheetSafe } from "../core/spreadsheet-safe";
import { scopeKey } from "../core/consent/consent-event";
import type { ConsentEventRow, StoreSession } from "../store/ports";
import { ErasureRecordSchema, fromRow, isErasureRow, ledgerPages } from "./consent-ledger";

export type LedgerExportFormat = "jsonl" | "csv";

export type ExportLedgerOptions = {
  /** Only this contact's events (a subject-access or proof request). */
  contact_id?: string;
  page_size?: number;
  /** End the writable when done. Default true; pass false for process.stdout. */
  end?: boolean;
};

/** CSV columns: readable fields first, then what re-verification needs (`event_json`, digests, hashes). */
export const LEDGER_CSV_COLUMNS = [
  "seq",
  "id",
  "contact_id",
  "kind",
  "channel",
  "scope",
  "status",
  "basis",
  "mechanism",
  "actor_kind",
  "actor_user",
  "source_system",
  "source_connection",
  "occurred_at",
  "observed_at",
  "recorded_at",
  "evidence_json",
  "evidence_digest",
  "evidence_erased_at",
  "event_json",
  "prev_hash",
  "hash",
  "seal",
] as const;

type CsvRecord = Record<(typeof LEDGER_CSV_COLUMNS)[number], string | number>;

export async function exportLedger(
  store: StoreSession,
  format: LedgerExportFormat,
  writable: NodeJS.WritableStream,
  options: ExportLedgerOptions = {},
): Promise<{ count: number }> {
  let count = 0;
  const pageOptions = {
    ...(options.contact_id !== undefined && { contact_id: options.contact_id }),
    ...(options.page_size !== undefined && { page_size: options.page_size }),
  };
  async function* rows(): AsyncGenerator<ConsentEventRow> {
    for await (const page of ledgerPages(store, pageOptions)) {
      for (const row of page) {
        count += 1;
        yield row;
      }
    }
  }
  const end = options.end ?? true;

  if (format === "jsonl") {
    async function* lines(): AsyncGenerator<string> {
      for await (const row of rows()) yield `${JSON.stringify(toJsonlRecord(row))}\n`;
    }
    await pipeline(Readable.from(lines()), writable, { end });
  } else {
    async function* records(): AsyncGenerator<CsvRecord> {
      for await (const row of rows()) yield toCsvRecord(row);
    }
    await pipeline(
      Readable.from(records()),
      stringify({ header: true, columns: [...LEDGER_CSV_COLUMNS], cast: { string: spreadsheetSafe } }),
      writable,
      { end },
    );
  }
  return { count };
}

/** An erasure row: the chain's record that a contact's evidence was blanked (see `eraseEvidence`). */
const erasureOf = (row: ConsentEventRow) => ErasureRecordSchema.parse(JSON.parse(row.event_json));

function toJsonlRecord(row: ConsentEventRow) {
  const tail = {
    evidence_digest: row.evidence_digest,
    evidence_erased_at: row.evidence_erased_at,
    recorded_at: row.recorded_at,
    prev_hash: row.prev_hash,
    hash: row.hash,
    seal: row.seal,
  };
  if (isErasureRow(row)) return { seq: row.seq, erasure: erasureOf(row), ...tail };
  return { seq: row.seq, event: fromRow(row).event, ...tail };
}

function toCsvRecord(row: ConsentEventRow): CsvRecord {
  const common = {
    seq: row.seq,
    id: row.id,
    contact_id: row.contact_id,
    occurred_at: row.occurred_at,
    observed_at: row.observed_at,
    recorded_at: row.recorded_at,
    evidence_json: row.evidence_json,
    evidence_digest: row.evidence_digest,
    evidence_erased_at: row.evidence_erased_at ?? "",
    event_json: row.event_json,
    prev_hash: row.prev_hash,
    hash: row.hash,
    seal: row.seal ?? "",
  };
  if (isErasureRow(row)) {
    const erasure = erasureOf(row);
    return {
      ...common,
      kind: erasure.kind,
      channel: "",
      scope: "",
      status: `erased ${erasure.erased_contact_id} through seq ${erasure.through_seq}`,
      basis: "",
      mechanism: "",
      actor_kind: "",
      actor_user: "",
      source_system: "concord",
      source_connection: "",
    };
  }
  const { event } = fromRow(row);
  return {
    ...common,
    seq: row.seq,
    id: row.id,
    contact_id: row.contact_id,
    kind: event.kind,
    channel: event.channel,
    scope: event.kind === "deliverability" ? "" : scopeKey(event.scope),
    status: event.kind === "deliverability" ? event.status : "",
    basis: event.kind === "opt_in" ? event.basis : "",
    mechanism: event.mechanism,
    actor_kind: event.actor.kind,
    actor_user:
      event.actor.kind === "account" || event.actor.kind === "operator" ? (event.actor.user ?? "") : "",
    source_system: event.source.system,
    source_connection: event.source.connection,
  };
}
