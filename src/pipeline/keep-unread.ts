/**
 * A partial re-read (a webhook's, `GetOptions.changed`) names what it did not read. Those parts keep
 * their values from the record's last snapshot: a consent fact left unread never reads as cleared,
 * and it is still there to compare with when a later read does show it cleared.
 */
import type { ConsentFact, ExternalRecord } from "../connectors/connector";
import type { JsonValue } from "../store/ports";
import { StoredConsentStateSchema } from "./stored-snapshot";

const ALWAYS: ReadonlySet<string> = new Set(["emails", "kind", "fields", "updated_at"]);

const isObject = (value: JsonValue | undefined): value is { [key: string]: JsonValue } =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/**
 * The record completed from its last snapshot's payload, without `unread`; its facts in the
 * connector's order (`unread.fact_order`), so an unchanged record hashes as it did. Without a snapshot (the
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
    // What every record has (its addresses, kind, fields, last change) is replaced, never removed.
    if (ALWAYS.has(key) && (last === undefined || last === null)) continue;
    out[key] = last === null ? undefined : last;
  }
  for (const key of Object.keys(out)) if (out[key] === undefined) Reflect.deleteProperty(out, key);
  const unreadSource = (source: string): boolean =>
    unread.consent_sources.some((prefix) => source.startsWith(prefix));
  const kept = StoredConsentStateSchema.parse(previous["consent_state"]).filter((fact) =>
    unreadSource(fact.source),
  );
  out["consent_state"] = inConnectorOrder(
    [...read.consent_state.filter((fact) => !unreadSource(fact.source)), ...kept],
    unread.fact_order,
  );
  return out as ExternalRecord;
}

/** Facts in the connector's order of sources; within one source (and after the known ones), as given. */
function inConnectorOrder(facts: ConsentFact[], order: readonly string[]): ConsentFact[] {
  const rank = (source: string): number => {
    const i = order.findIndex((prefix) => source.startsWith(prefix));
    return i === -1 ? order.length : i;
  };
  // Array.prototype.sort is stable.
  return facts
    .map((fact) => ({ fact, rank: rank(fact.source) }))
    .sort((a, b) => a.rank - b.rank)
    .map((r) => r.fact);
}
