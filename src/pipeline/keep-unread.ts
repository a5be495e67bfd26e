/**
 * A partial re-read (a webhook's, `GetOptions.changed`) names what it did not read. Those parts keep
 * their values from the record's last snapshot: a consent fact left unread never reads as cleared,
 * and it is still there to compare with when a later read does show it cleared.
 */
import type { ConsentFact, ExternalRecord } from "../connectors/connector";
import type { JsonValue } from "../store/ports";
import { StoredConsentStateSchema } from "./stored-snapshot";

const isObject = (value: JsonValue | undefined): value is { [key: string]: JsonValue } =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/**
 * The record completed from its last snapshot's payload, without `unread`. Without a snapshot (the
 * record was erased meanwhile) it is the record as read: its unread facts are simply unknown, which
 * reads as no change, never as a cleared opt-out.
 */
export function keepUnread(record: ExternalRecord, previous: JsonValue | undefined): ExternalRecord {
  const { unread, ...read } = record;
  if (unread === undefined) return record;
  if (!isObject(previous)) return read;
  const out: Record<string, unknown> = { ...read };
  for (const key of unread.properties) {
    const last = previous[key];
    if (key === "emails" && !Array.isArray(last)) continue; // a record always has its addresses
    out[key] = last === null ? undefined : last;
  }
  for (const key of Object.keys(out)) if (out[key] === undefined) Reflect.deleteProperty(out, key);
  const unreadSource = (source: string): boolean =>
    unread.consent_sources.some((prefix) => source.startsWith(prefix));
  const last = StoredConsentStateSchema.parse(previous["consent_state"]);
  out["consent_state"] = inLastOrder(
    read.consent_state.filter((fact) => !unreadSource(fact.source)),
    last.filter((fact) => unreadSource(fact.source)),
    last,
  );
  return out as ExternalRecord;
}

/**
 * The facts read and the facts kept in the order the last snapshot had them (a source's place
 * there; a source new since then right after the fact read before it), so a record completed from
 * its snapshot hashes as the same record read whole would, and an unchanged record stays unchanged.
 */
function inLastOrder(read: ConsentFact[], kept: ConsentFact[], last: ConsentFact[]): ConsentFact[] {
  const place = new Map<string, number>();
  for (const [i, fact] of last.entries()) if (!place.has(fact.source)) place.set(fact.source, i);
  const ranked: { fact: ConsentFact; rank: number }[] = [];
  let previous = -1;
  for (const fact of read) {
    previous = place.get(fact.source) ?? previous + 1e-6;
    ranked.push({ fact, rank: previous });
  }
  for (const fact of kept) ranked.push({ fact, rank: place.get(fact.source) ?? last.length });
  // Array.prototype.sort is stable: facts of one rank keep their order (read, then kept).
  return ranked.sort((a, b) => a.rank - b.rank).map((r) => r.fact);
}
