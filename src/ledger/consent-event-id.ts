/**
 * Content-derived consent event ids: the same observation, however often and by whichever path it
 * arrives, gets the same `evt_…` id, which is what makes appending to the ledger idempotent.
 */
import { createHash } from "node:crypto";
import { scopeKey, type ConsentEvent, type ConsentEventId } from "../core/consent/consent-event";
import { canonicalJson } from "../core/canonical-json";

/** A consent event before it has an id. */
export type ConsentEventDraft = ConsentEvent extends infer E
  ? E extends ConsentEvent
    ? Omit<E, "id">
    : never
  : never;

/** Bump when the identity fields change; old ids stay valid because stored rows keep their id. */
const ID_VERSION = "concord.consent_event_id.v1";

/**
 * `evt_` + 32 lowercase base32 characters (160 bits of sha256) over the fields that identify the act:
 * contact, channel, kind, scope (or deliverability status), source system and connection, mechanism,
 * time of the act, and the source's record id, or the payload digest when there is no record id.
 * Actor and the rest of the evidence are deliberately left out: they describe the act, they don't
 * tell two acts apart, and a second path may carry less of them.
 */
export function consentEventId(observation: ConsentEventDraft | ConsentEvent): ConsentEventId {
  const { evidence } = observation;
  const identity = {
    version: ID_VERSION,
    contact_id: observation.contact_id,
    channel: observation.channel,
    kind: observation.kind,
    scope: observation.kind === "deliverability" ? null : scopeKey(observation.scope),
    status: observation.kind === "deliverability" ? observation.status : null,
    source_system: observation.source.system,
    source_connection: observation.source.connection,
    mechanism: observation.mechanism,
    occurred_at: normaliseInstant(observation.occurred_at),
    evidence_key:
      evidence.source_record_id !== undefined
        ? `record:${evidence.source_record_id}`
        : evidence.payload_sha256 !== undefined
          ? `payload:${evidence.payload_sha256}`
          : null,
  };
  const digest = createHash("sha256").update(canonicalJson(identity)).digest();
  return `evt_${base32(digest.subarray(0, 20))}`;
}

/**
 * `…:00Z`, `…:00.0Z` and `…:00.000Z` are one instant; sources differ in the precision they print,
 * so trailing fractional zeros are dropped before hashing (the stored value keeps the source's form).
 */
export function normaliseInstant(iso: string): string {
  const match = /^(.*?)(?:\.(\d+))?Z$/.exec(iso);
  if (match === null) return iso;
  const fraction = (match[2] ?? "").replace(/0+$/, "");
  return fraction === "" ? `${match[1] ?? ""}Z` : `${match[1] ?? ""}.${fraction}Z`;
}

const BASE32 = "abcdefghijklmnopqrstuvwxyz234567";

/** RFC 4648 base32, lowercase, unpadded: case-insensitive-safe in CSVs, URLs and file names. */
function base32(bytes: Uint8Array): string {
  let out = "";
  let buffer = 0;
  let bits = 0;
  for (const byte of bytes) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += BASE32.charAt((buffer >>> (bits - 5)) & 31);
      bits -= 5;
    }
    buffer &= (1 << bits) - 1;
  }
  if (bits > 0) out += BASE32.charAt((buffer << (5 - bits)) & 31);
  return out;
}
