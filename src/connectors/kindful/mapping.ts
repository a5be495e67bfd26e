/**
 * Kindful contacts in Concord's terms: a person, or an organisation (a contact with a company
 * name); the primary and alternate addresses; "Integration Email Opt-in" as the opt-out from all
 * email, a Yes/No custom field as a topic's opt-out; "Email Deliverable" as a profile field (it is
 * not consent); and the import rows Concord writes back.
 */
import type { ConsentFact, ConsentObservation, ExternalEmail, ExternalRecord } from "../connector";
import { constructScope, GLOBAL_OBSERVED } from "../../core/consent/system-consent";
import { readYesNo, type KindfulContact } from "./client";

export const CUSTOM_FIELD = "custom_field";
/** How a pair's field mappings name a Kindful custom field. */
export const CUSTOM_FIELD_PREFIX = "custom_field:";
/** The contact columns Concord reads and writes as profile fields, by their Kindful names. */
export const PROFILE_COLUMNS = [
  "first_name",
  "last_name",
  "company_name",
  "addr1",
  "addr2",
  "city",
  "state",
  "postal",
  "country",
  "primary_phone",
  "email_deliverable",
  "email_deliverable_error_reason",
] as const;

/**
 * Kindful's contact columns (the import's and the query's, apis-more.md §1.2): an import writes a
 * custom field as a column of its row, so one named like these would write that column instead
 * (`id` another contact, `email` the address). Such a name is no custom field Concord can write.
 */
const CONTACT_COLUMN_NAMES = [
  ...PROFILE_COLUMNS,
  ...["id", "external_id", "sync_version", "title", "gender", "birthday", "employer"],
  ...["retired_or_not_employed", "occupation", "email", "alt_email", "email_opt_in", "alt_phone"],
  ...["fax_phone", "spouse_first", "spouse_last", "created_at", "updated_at", "custom_fields", "record_type"],
];
/** How a pair's field mappings name a Kindful custom field: any name but a contact column's. */
export const CUSTOM_FIELD_FORM = new RegExp(
  `^custom_field:(?!(?:${CONTACT_COLUMN_NAMES.join("|")})$)[^\\s].{0,99}$`,
  "i",
);

const blank = (v: string | null | undefined): v is null | undefined =>
  v === null || v === undefined || v.trim() === "";

/**
 * Kindful's times: `2015-10-13 18:56:12 UTC`, an offset (`-0500`, `-05:00`), ISO-8601 (UTC when it
 * names no zone), or unix seconds. Undefined when none of those.
 */
export function parseKindfulTime(at: string | null | undefined): string | undefined {
  const s = (at ?? "").trim();
  if (s === "") return undefined;
  if (/^\d{9,11}$/.test(s)) return new Date(Number(s) * 1000).toISOString();
  const iso = s
    .replace(/ UTC$/, "Z")
    .replace(/^(\d{4})\/(\d\d)\/(\d\d)/, "$1-$2-$3")
    .replace(/^(\d{4}-\d\d-\d\d) /, "$1T")
    .replace(/ ?([+-]\d\d):?(\d\d)$/, "$1:$2");
  // Only ISO-8601 is read; anything else is no time (dated when seen), never a guess of the host's
  // local time, which would date an opt-out by wherever Concord runs, possibly before an opt-in it
  // came after. A time of day with no zone is Kindful's UTC.
  const m = /^\d{4}-\d\d-\d\d(T\d\d:\d\d(:\d\d(\.\d+)?)?)?(Z|[+-]\d\d:\d\d)?$/.exec(iso);
  if (m === null) return undefined;
  const t = Date.parse(m[1] !== undefined && m[4] === undefined ? `${iso}Z` : iso);
  return Number.isNaN(t) ? undefined : new Date(t).toISOString();
}

/** As `parseKindfulTime`; an unreadable time is the epoch (for a checkpoint's order only). */
export function toUtcIso(at: string): string {
  return parseKindfulTime(at) ?? new Date(0).toISOString();
}

export const customFieldScope = (name: string) => constructScope(CUSTOM_FIELD, name, name);

/** A custom field's name as Kindful may write it otherwise (case, spaces around it). */
export const sameFieldName = (a: string, b: string): boolean =>
  a.trim().toLowerCase() === b.trim().toLowerCase();

/**
 * A custom field's value, its name matched as Kindful may write it otherwise than the config: a
 * topic's field named "No appeals email" in Kindful and "No Appeals Email" in the config is the same
 * field, never "not set".
 */
export function customFieldValue(
  c: Pick<KindfulContact, "custom_fields">,
  name: string,
): string | number | boolean | null | undefined {
  const fields = c.custom_fields ?? {};
  if (name in fields) return fields[name];
  const key = Object.keys(fields).find((k) => sameFieldName(k, name));
  return key === undefined ? undefined : fields[key];
}

/** A Yes/No value that reads Yes (`readYesNo`). */
export const isYes = (v: unknown): boolean => readYesNo(v) === "Yes";

/**
 * The primary address, and the alternate beside it for matching. A contact with only an alternate
 * address has none Concord sends to: Kindful's primary email is the one it receipts to (seed 002).
 */
function emailsOf(c: KindfulContact): ExternalEmail[] {
  const out: ExternalEmail[] = [];
  if (blank(c.email)) return out;
  out.push({ address: c.email.trim(), primary: true });
  if (!blank(c.alt_email) && c.alt_email.trim().toLowerCase() !== (c.email ?? "").trim().toLowerCase())
    out.push({ address: c.alt_email.trim(), primary: false });
  return out;
}

/** Consent as the contact shows it: Integration Email Opt-in, and each topic's Yes/No custom field. */
export function consentFacts(c: KindfulContact, topicFields: readonly string[]): ConsentFact[] {
  const facts: ConsentFact[] = [];
  if (c.email_opt_in !== undefined && c.email_opt_in !== null)
    facts.push({
      channel: "email",
      scope: GLOBAL_OBSERVED,
      // "Yes" is Kindful's default, not a record of the person's consent.
      status: c.email_opt_in === "No" ? "opted_out" : "none",
      source: "email_opt_in",
      label: `Integration Email Opt-in: ${c.email_opt_in}`,
      role: "state",
      unversioned: true,
    });
  // A contact read without its custom fields (a re-read by id, which may not carry them) says
  // nothing of the topics' fields: their last known state stands (`toExternalRecord`'s `unread`).
  if (c.custom_fields === undefined) return facts;
  for (const name of topicFields) {
    const value = customFieldValue(c, name);
    facts.push({
      channel: "email",
      scope: customFieldScope(name),
      status: isYes(value) ? "opted_out" : "none",
      source: `${CUSTOM_FIELD_PREFIX}${name}`,
      label: `${name}: ${value === undefined || value === null ? "not set" : String(value)}`,
      role: "state",
      unversioned: true,
    });
  }
  return facts;
}

/**
 * The opt-outs a contact shows now, as observations the ledger records once (`time_unknown`: while
 * the record's last word on the scope is that opt-out, not again at each read or edit), dated by the
 * contact's last change, a bound that every later edit moves; when Kindful's time cannot be read,
 * when Concord saw them (`observed_at`), never an older moment an earlier opt-in could come after.
 */
export function consentObservations(
  c: KindfulContact,
  topicFields: readonly string[],
  observed_at: string,
): ConsentObservation[] {
  // The address the opt-out is about: the primary, else the alternate (a contact with only one).
  const email = (blank(c.email) ? c.alt_email?.trim() : c.email.trim()) ?? "";
  const known = parseKindfulTime(c.updated_at);
  const dated = { occurred_at: known ?? observed_at, time_unknown: true as const };
  const out: ConsentObservation[] = [];
  if (c.email_opt_in === "No")
    out.push({
      external_id: String(c.id),
      email,
      channel: "email",
      kind: "opt_out",
      scope: GLOBAL_OBSERVED,
      mechanism: "admin_edit",
      actor: { kind: "account" },
      ...dated,
      evidence: {
        reason: "Integration Email Opt-in is No on the contact",
        source_record_id: `contact:${c.id}:email_opt_in`,
      },
    });
  for (const name of topicFields) {
    if (!isYes(customFieldValue(c, name))) continue;
    out.push({
      external_id: String(c.id),
      email,
      channel: "email",
      kind: "opt_out",
      scope: customFieldScope(name),
      mechanism: "admin_edit",
      actor: { kind: "account" },
      ...dated,
      evidence: {
        reason: `The custom field "${name}" is Yes on the contact`,
        source_record_id: `contact:${c.id}:custom_field:${name}`,
      },
    });
  }
  return out;
}

export function toExternalRecord(
  c: KindfulContact,
  topicFields: readonly string[],
  listIds?: readonly string[],
): ExternalRecord {
  const organisation = !blank(c.company_name);
  const fields: Record<string, string | null> = {};
  for (const col of PROFILE_COLUMNS) fields[col] = c[col] ?? null;
  for (const [name, value] of Object.entries(c.custom_fields ?? {}))
    fields[`${CUSTOM_FIELD_PREFIX}${name}`] = value === null ? null : String(value);
  return {
    external_id: String(c.id),
    kind: organisation ? "organisation" : "individual",
    emails: emailsOf(c),
    first_name: c.first_name ?? null,
    last_name: c.last_name ?? null,
    ...(organisation ? { organisation_name: c.company_name ?? null } : {}),
    fields,
    consent_state: consentFacts(c, topicFields),
    ...(listIds ? { list_ids: [...listIds] } : {}),
    updated_at: toUtcIso(c.updated_at),
    ...(c.custom_fields === undefined && topicFields.length > 0
      ? {
          unread: {
            properties: [],
            consent_sources: topicFields.map((name) => `${CUSTOM_FIELD_PREFIX}${name}`),
            fact_order: ["email_opt_in", CUSTOM_FIELD_PREFIX],
          },
        }
      : {}),
  };
}

export function deletedRecord(id: string, at: string): ExternalRecord {
  return {
    external_id: id,
    kind: "individual",
    emails: [],
    fields: {},
    consent_state: [],
    deleted: true,
    updated_at: at,
  };
}

/**
 * An import row of profile changes: the canonical name slots and the catalogue's fields. A custom
 * field goes under `custom_fields`; anything else is refused with its name.
 */
export function profileRow(changes: {
  first_name?: string | null;
  last_name?: string | null;
  fields?: Record<string, string | null>;
}): { row: Record<string, unknown>; rejected: string[] } {
  const row: Record<string, unknown> = {};
  const custom: Record<string, string | null> = {};
  const rejected: string[] = [];
  if (changes.first_name !== undefined) row["first_name"] = changes.first_name;
  if (changes.last_name !== undefined) row["last_name"] = changes.last_name;
  for (const [name, value] of Object.entries(changes.fields ?? {})) {
    if ((PROFILE_COLUMNS as readonly string[]).includes(name)) {
      if (name === "email_deliverable" && value !== "Yes" && value !== "No") {
        rejected.push(`${name} (expected Yes or No, found ${JSON.stringify(value)})`);
        continue;
      }
      row[name] = value;
    } else if (name.startsWith(CUSTOM_FIELD_PREFIX)) custom[name.slice(CUSTOM_FIELD_PREFIX.length)] = value;
    else rejected.push(name);
  }
  if (Object.keys(custom).length > 0) row["custom_fields"] = custom;
  return { row, rejected };
}
