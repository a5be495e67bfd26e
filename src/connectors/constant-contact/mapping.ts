/**
 * Pure translation between Constant Contact V3 payloads and Concord's connector shapes: contacts to
 * records and consent observations, and operations to the request bodies Constant Contact expects
 * (import chunks under its count and byte limits, whole-contact PUT bodies, membership activities).
 */
import { createHash } from "node:crypto";
import { isPlausibleEmail as plausible } from "../kit/upsert-items";
import { canonicalJson } from "../../core/canonical-json";
import type { Actor, Mechanism } from "../../core/consent/consent-event";
import { ACCOUNT_OBSERVED } from "../../core/consent/system-consent";
import type { ConsentFact, ConsentObservation, ConnectorOperation, ExternalRecord } from "../connector";
import type { CcContact, CcEmailAddress } from "./schemas";

/** Every opt-out reason Concord writes starts with this, so a read can recognise its own writes. */
export const CONCORD_REASON_PREFIX = "Concord:";

/** Sub-resources every read asks for: a PUT must send them back, and records carry lists and fields. */
export const CONTACT_INCLUDE = [
  "custom_fields",
  "list_memberships",
  "phone_numbers",
  "street_addresses",
  "taggings",
  "notes",
] as const;

const EPOCH = "1970-01-01T00:00:00.000Z";

/** ISO-8601 UTC with milliseconds, or undefined for a missing or unparseable value. */
export function toUtc(value: string | null | undefined): string | undefined {
  if (!value) return undefined;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? undefined : new Date(ms).toISOString();
}

/** The newest moment anything about the contact changed, for checkpoints. */
export function contactWatermark(contact: CcContact): string {
  const e = contact.email_address;
  const candidates = [
    contact.updated_at,
    contact.created_at,
    contact.deleted_at,
    e?.updated_at,
    e?.created_at,
    e?.opt_out_date,
    e?.opt_in_date,
  ];
  let best = Date.parse(EPOCH);
  for (const c of candidates) {
    const ms = c ? Date.parse(c) : Number.NaN;
    if (!Number.isNaN(ms) && ms > best) best = ms;
  }
  return new Date(best).toISOString();
}

export function contentHash(value: unknown): string {
  return createHash("sha256").update(canonicalJson(value)).digest("hex");
}

const PERMISSION_STATUS: Record<string, ConsentFact["status"]> = {
  unsubscribed: "opted_out",
  explicit: "opted_in",
  implicit: "opted_in",
  pending_confirmation: "pending",
  not_set: "none",
  temp_hold: "none",
};

/** The consent a contact shows now: its permission to send, for the whole account. */
export function contactConsentFacts(contact: CcContact): ConsentFact[] {
  const e = contact.email_address;
  if (!e?.permission_to_send) return [];
  const by =
    e.permission_to_send === "unsubscribed" && e.opt_out_source
      ? ` (opted out by ${e.opt_out_source === "Contact" ? "the contact" : "the account"})`
      : "";
  const at = e.permission_to_send === "unsubscribed" ? toUtc(e.opt_out_date) : toUtc(e.opt_in_date);
  return [
    {
      channel: "email",
      scope: ACCOUNT_OBSERVED,
      status: PERMISSION_STATUS[e.permission_to_send] ?? "none",
      source: "permission_to_send",
      label: `permission to send: ${e.permission_to_send}${by}`,
      role: "state",
      ...(at !== undefined ? { at } : {}),
    },
  ];
}

/** A contact as an ExternalRecord: profile fields of the manifest's catalogue, consent as typed facts. */
export function contactToRecord(contact: CcContact): ExternalRecord {
  const e = contact.email_address;
  const fields: Record<string, string | null> = {};
  const put = (key: string, value: string | number | null | undefined): void => {
    if (value !== undefined) fields[key] = value === null ? null : String(value);
  };
  put("job_title", contact.job_title);
  put("company_name", contact.company_name);
  put("birthday_month", contact.birthday_month);
  put("birthday_day", contact.birthday_day);
  put("anniversary", contact.anniversary);
  for (const cf of contact.custom_fields ?? []) put(`custom_field:${cf.custom_field_id}`, cf.value ?? null);
  for (const phone of contact.phone_numbers ?? []) {
    if (phone.phone_number) put(`phone:${phone.kind ?? "other"}`, phone.phone_number);
  }
  for (const a of contact.street_addresses ?? []) {
    put(`address:${a.kind}:street`, a.street);
    put(`address:${a.kind}:city`, a.city);
    put(`address:${a.kind}:state`, a.state);
    put(`address:${a.kind}:postal_code`, a.postal_code);
    put(`address:${a.kind}:country`, a.country);
  }
  const record: ExternalRecord = {
    external_id: contact.contact_id,
    kind: "individual",
    emails: e ? [{ address: e.address, primary: true }] : [],
    first_name: contact.first_name ?? null,
    last_name: contact.last_name ?? null,
    fields,
    consent_state: contactConsentFacts(contact),
    updated_at: contactWatermark(contact),
  };
  if (contact.list_memberships) record.list_ids = [...contact.list_memberships];
  if (contact.deleted_at) record.deleted = true;
  return record;
}

/** Who gave a permission: the person only when Constant Contact says so. */
const actorOf = (source: string | undefined): Actor =>
  source === "Contact" ? { kind: "contact" } : { kind: "account" };

/**
 * Who made an opt-out: the account only when Constant Contact says so. Any other source (none, or
 * a partner's `System`) is filed as the person's, the side the account cannot undo (rule 4).
 */
const optOutActorOf = (source: string | undefined): Actor =>
  source === "Account" ? { kind: "account" } : { kind: "contact" };

/**
 * What the contact report says of how a contact left (GET /reports/contact_reports/{id}/activity_details,
 * `em_optouts`): the campaign whose footer link or one-click header they used, or none at all —
 * which is what a spam complaint leaves, since Constant Contact counts complaints on the campaign
 * only. Absent when the report was not asked (an opt-out older than the look-back).
 */
export type OptOutActivity =
  | { kind: "campaign"; campaign_activity_id: string; campaign_activity_name?: string; at: string }
  | { kind: "none" };

/** The `em_optouts` activity that is this opt-out: the one at its opt-out date, give or take a day. */
export function matchOptOutActivity(
  optOutDate: string | undefined,
  activities: readonly {
    campaign_activity_id: string;
    campaign_activity_name?: string | undefined;
    created_time?: string | undefined;
  }[],
): OptOutActivity {
  const at = optOutDate === undefined ? NaN : Date.parse(optOutDate);
  for (const a of activities) {
    const t = a.created_time === undefined ? NaN : Date.parse(a.created_time);
    if (Number.isNaN(at) || Number.isNaN(t) || Math.abs(t - at) > 86_400_000) continue;
    return {
      kind: "campaign",
      campaign_activity_id: a.campaign_activity_id,
      ...(a.campaign_activity_name !== undefined ? { campaign_activity_name: a.campaign_activity_name } : {}),
      at: new Date(t).toISOString(),
    };
  }
  return { kind: "none" };
}

/** Whether a contact's opt-out is one the contact report can tell more about (QUIRKS.md). */
export const needsOptOutActivity = (contact: CcContact): boolean => {
  const e = contact.email_address;
  return e?.permission_to_send === "unsubscribed" && e.opt_out_source === "Contact" && !e.opt_out_reason;
};

type OptOutHow = { mechanism: Mechanism; global: boolean; note?: string };

/**
 * How a contact left, from what the API shows (QUIRKS.md "How a contact opted out"): our own write
 * echoed back is `sync`; the account's is an admin's edit; a reason typed on the unsubscribe page,
 * or an opt-out the contact report ties to a campaign, is the unsubscribe link (the footer link and
 * the one-click header leave the same trace); a contact's opt-out with no campaign behind it may be
 * a spam complaint, and is kept global as a complaint must be (DESIGN.md §2 rule 5).
 */
function optOutHow(
  e: CcEmailAddress,
  activity: OptOutActivity | undefined,
  unread: string | undefined,
): OptOutHow {
  // Concord's own write read back, whoever it was written for (the person's request is theirs).
  if (e.opt_out_reason?.startsWith(CONCORD_REASON_PREFIX)) return { mechanism: "sync", global: false };
  if (e.opt_out_source === "Account") return { mechanism: "admin_edit", global: false };
  // Only the unsubscribe page a campaign's footer link opens asks the contact for a reason.
  if (e.opt_out_reason) return { mechanism: "unsubscribe_link", global: false };
  if (activity === undefined)
    return {
      mechanism: "unknown",
      global: false,
      note: `Constant Contact does not say how the contact opted out, and ${unread ?? "the opt-out is older than the contact report's look-back"}.`,
    };
  if (activity.kind === "campaign")
    return {
      mechanism: "unsubscribe_link",
      global: false,
      note: `Unsubscribed from the campaign ${activity.campaign_activity_name !== undefined ? `“${activity.campaign_activity_name}” ` : ""}(${activity.campaign_activity_id}) at ${activity.at}, by its footer link or the one-click header (Constant Contact does not say which).`,
    };
  return {
    mechanism: "unknown",
    global: true,
    note: "The contact opted out without a campaign's unsubscribe link: a spam complaint, or a request made to Constant Contact (its API does not say which). Kept as a global opt-out, as a complaint must be.",
  };
}

/** Consent facts a contact shows. `pending_confirmation`, `temp_hold` and `not_set` are no consent facts. */
export function contactToConsent(
  contact: CcContact,
  activity?: OptOutActivity,
  /** Why the contact report was not read for this opt-out, when it was asked for and failed. */
  unread?: string,
): ConsentObservation[] {
  const e = contact.email_address;
  if (!e) return [];
  const digest = contentHash({ contact_id: contact.contact_id, email_address: e });
  const base = {
    external_id: contact.contact_id,
    email: e.address,
    channel: "email" as const,
    scope: { kind: "account" as const },
  };
  switch (e.permission_to_send) {
    case "unsubscribed": {
      const evidence: ConsentObservation["evidence"] = {
        payload_sha256: digest,
        source_record_id: contact.contact_id,
      };
      const how = optOutHow(e, activity, unread);
      // The contact's own words (or our own write's provenance) when there are any, else what the
      // API does and does not tell of how they left.
      const said = e.opt_out_reason ? e.opt_out_reason : how.note;
      if (said !== undefined) evidence.reason = said.slice(0, 1000);
      return [
        {
          ...base,
          ...(how.global ? { scope: { kind: "global" as const } } : {}),
          kind: "opt_out",
          mechanism: how.mechanism,
          actor: optOutActorOf(e.opt_out_source),
          occurred_at:
            toUtc(e.opt_out_date) ??
            toUtc(e.updated_at) ??
            toUtc(contact.updated_at) ??
            contactWatermark(contact),
          evidence,
        },
      ];
    }
    case "explicit":
    case "implicit": {
      // The person's own acts (a sign-up form, a resubscribe confirmed) give explicit permission.
      // `opt_in_source` is set when the contact is made and never moves, so "Contact" on an
      // implicit permission says how the contact began, not who gave this permission: the account
      // lifting its own opt-out leaves it so. Only explicit permission from the person is theirs.
      const byContact = e.opt_in_source === "Contact" && e.permission_to_send === "explicit";
      return [
        {
          ...base,
          kind: "opt_in",
          mechanism: "unknown",
          actor: byContact ? actorOf(e.opt_in_source) : { kind: "account" },
          // Only the person's own explicit permission is express consent; anything the account added is implied.
          basis: byContact ? "express" : "implied",
          occurred_at:
            toUtc(e.opt_in_date) ??
            toUtc(e.created_at) ??
            toUtc(contact.created_at) ??
            contactWatermark(contact),
          evidence: { payload_sha256: digest, source_record_id: contact.contact_id },
        },
      ];
    }
    default:
      return [];
  }
}

// ---------------------------------------------------------------------------------------------
// Requests

export const IMPORT_EMAIL_MAX = 50; // import_data[].email maxLength in the spec
export const CONTACT_EMAIL_MAX = 80; // email_address.address maxLength in the spec

/** An address Constant Contact may take (at most 80 characters); it has the last word. */
export const isPlausibleEmail = (email: string): boolean => plausible(email, CONTACT_EMAIL_MAX);

/** Keys `contacts_json_import` accepts as contact properties besides `cf:<custom field name>`. */
const IMPORT_KEYS = new Set([
  "job_title",
  "company_name",
  "birthday_month",
  "birthday_day",
  "anniversary",
  "phone",
  "home_phone",
  "work_phone",
  "mobile_phone",
  "other_phone",
  "street",
  "street2",
  "city",
  "state",
  "zip",
  "country",
  "home_street",
  "home_street2",
  "home_city",
  "home_state",
  "home_zip",
  "work_street",
  "work_street2",
  "work_city",
  "work_state",
  "work_zip",
  "work_country",
  "other_street",
  "other_street2",
  "other_city",
  "other_state",
  "other_zip",
  "other_country",
]);

type UpsertItem = Extract<ConnectorOperation, { kind: "upsert_contacts" }>["items"][number];
export type ImportRow = Record<string, string | number>;

/**
 * One import row. Nulls are left out: an import only updates the properties it carries, so it
 * cannot clear a value (update_contact can).
 */
export function importRow(item: UpsertItem): ImportRow {
  const row: ImportRow = { email: item.email.trim() };
  if (item.first_name) row.first_name = item.first_name;
  if (item.last_name) row.last_name = item.last_name;
  for (const [key, value] of Object.entries(item.fields ?? {})) {
    if (value === null) continue;
    if (key === "birthday_month" || key === "birthday_day") {
      const n = Number(value);
      if (Number.isInteger(n)) row[key] = n;
    } else if (IMPORT_KEYS.has(key) || key.startsWith("cf:")) row[key] = value;
    else {
      const column = importColumnOf(key);
      if (column !== undefined && IMPORT_KEYS.has(column)) row[column] = value;
    }
  }
  return row;
}

const PHONE_FIELD = /^phone:(home|work|mobile|fax|other)$/;
const ADDRESS_FIELD = /^address:(home|work|other):(street|city|state|postal_code|country)$/;

/** The import column of a phone or address field (`phone:home` → `home_phone`, `address:work:postal_code` → `work_zip`). */
function importColumnOf(key: string): string | undefined {
  const phone = PHONE_FIELD.exec(key);
  if (phone) return `${phone[1] ?? ""}_phone`;
  const address = ADDRESS_FIELD.exec(key);
  if (!address) return undefined;
  // A home address goes in the plain columns (the spec has no home_country); the others are prefixed.
  const part = address[2] === "postal_code" ? "zip" : (address[2] ?? "");
  return address[1] === "home" ? part : `${address[1] ?? ""}_${part}`;
}

export type ImportChunk<T> = { rows: ImportRow[]; items: T[]; bytes: number };

/**
 * Splits rows into `contacts_json_import` bodies under both limits, measuring the serialised JSON:
 * at most `maxContacts` rows and strictly fewer than `maxBytes` bytes per body (Constant Contact
 * silently drops whatever lies past 4 MB, so the margin is ours to keep).
 */
export function chunkImport<T>(
  entries: readonly { row: ImportRow; item: T }[],
  listIds: readonly string[],
  maxContacts: number,
  maxBytes: number,
): ImportChunk<T>[] {
  const overhead = Buffer.byteLength(JSON.stringify({ import_data: [], list_ids: listIds }));
  const chunks: ImportChunk<T>[] = [];
  let current: ImportChunk<T> = { rows: [], items: [], bytes: overhead };
  for (const { row, item } of entries) {
    const rowBytes = Buffer.byteLength(JSON.stringify(row));
    if (overhead + rowBytes >= maxBytes) {
      throw new Error(`one import row is ${rowBytes} bytes, too large for the ${maxBytes}-byte body limit`);
    }
    let added = rowBytes + (current.rows.length > 0 ? 1 : 0); // the comma between rows
    if (current.rows.length >= maxContacts || current.bytes + added >= maxBytes) {
      chunks.push(current);
      current = { rows: [], items: [], bytes: overhead };
      added = rowBytes;
    }
    current.bytes += added;
    current.rows.push(row);
    current.items.push(item);
  }
  if (current.rows.length > 0) chunks.push(current);
  return chunks;
}

export function chunk<T>(values: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < values.length; i += size) out.push(values.slice(i, i + size));
  return out;
}

/** The body of one membership activity (add or remove): `contact_ids` ≤ 500, `list_ids` ≤ 50. */
export function membershipBody(
  contactIds: readonly string[],
  listIds: readonly string[],
): { source: { contact_ids: string[] }; list_ids: string[] } {
  return { source: { contact_ids: [...contactIds] }, list_ids: [...listIds] };
}

export type ContactPut = Record<string, unknown> & { update_source: "Account" | "Contact" };

/**
 * A PUT /contacts/{id} body that sends the contact back whole: Constant Contact's PUT nulls every
 * top-level property it is not given, so each one read is repeated. Sub-resources are repeated
 * without their read-only ids, except list memberships (below). `sms_channel` is left out: omitted sub-resources are kept, and
 * sending it back would re-assert SMS consent, which only the person may give.
 */
export function wholeContactPut(
  contact: CcContact,
  emailAddress: Record<string, unknown> | undefined,
): ContactPut {
  const body: ContactPut = { update_source: "Account" };
  const copy = (key: keyof CcContact): void => {
    const value = contact[key];
    if (value !== undefined && value !== null) body[key] = value;
  };
  copy("first_name");
  copy("last_name");
  copy("job_title");
  copy("company_name");
  copy("birthday_month");
  copy("birthday_day");
  copy("anniversary");
  if (emailAddress) body.email_address = emailAddress;
  if (contact.custom_fields)
    body.custom_fields = contact.custom_fields.map((cf) => ({
      custom_field_id: cf.custom_field_id,
      ...(cf.value !== undefined && cf.value !== null ? { value: cf.value } : {}),
      ...(cf.choice_ids ? { choice_ids: cf.choice_ids } : {}),
    }));
  if (contact.phone_numbers)
    body.phone_numbers = contact.phone_numbers.map((p) => ({
      ...(p.kind ? { kind: p.kind } : {}),
      ...(p.phone_number ? { phone_number: p.phone_number } : {}),
    }));
  if (contact.street_addresses)
    body.street_addresses = contact.street_addresses.map((a) => {
      const out: Record<string, string> = { kind: a.kind };
      for (const k of ["street", "city", "state", "postal_code", "country"] as const) {
        const v = a[k];
        if (v) out[k] = v;
      }
      return out;
    });
  // Lists are a sub-resource: left out, they are kept as they are then, not as they were read (a
  // list the person left in between is not rejoined). Only a write about lists sends them.
  if (contact.taggings) body.taggings = [...contact.taggings];
  if (contact.notes) body.notes = contact.notes.map((n) => ({ ...n }));
  return body;
}

/** The email object as read, reduced to what a PUT may carry, so consent is sent back unchanged. */
export function unchangedEmail(e: CcEmailAddress, address = e.address): Record<string, unknown> {
  const out: Record<string, unknown> = { address };
  if (e.permission_to_send) out.permission_to_send = e.permission_to_send;
  if (e.permission_to_send === "unsubscribed" && e.opt_out_reason) out.opt_out_reason = e.opt_out_reason;
  return out;
}

type OptOutOp = Extract<ConnectorOperation, { kind: "record_opt_out" }>;

/** Whether an opt_out_reason is Concord's write of the person's own request (`optOutReason`). */
export const writtenForThePerson = (reason: string | null | undefined): boolean =>
  reason?.startsWith(`${CONCORD_REASON_PREFIX} ${PERSONS_REQUEST} `) === true;

const PERSONS_REQUEST = "the person's request";

/** The opt_out_reason Concord writes: where the opt-out came from, within the 255-character limit. */
export function optOutReason(op: OptOutOp): string {
  const who = op.initiated_by === "contact" ? PERSONS_REQUEST : "the account's decision";
  const parts = [
    `${CONCORD_REASON_PREFIX} ${who} recorded in ${op.origin.system} (${op.origin.connection}) via ${op.origin.mechanism} at ${op.occurred_at}`,
  ];
  if (op.reason) parts.push(op.reason);
  if (op.origin.statement) parts.push(op.origin.statement);
  const text = parts.join(". ");
  return text.length <= 255 ? text : `${text.slice(0, 254)}…`;
}

/**
 * PUT body that unsubscribes the contact, everything else sent back as read. The person's own
 * request is written as theirs (`update_source: Contact`, as Constant Contact asks when the contact
 * made the request), so the account cannot re-add them there (rule 4); a deleted contact can be
 * revived only by the account.
 */
export function optOutPut(contact: CcContact, op: OptOutOp): ContactPut {
  const address = contact.email_address?.address ?? op.email;
  const body = wholeContactPut(contact, {
    address,
    permission_to_send: "unsubscribed",
    opt_out_reason: optOutReason(op),
  });
  if (op.initiated_by === "contact" && (contact.deleted_at ?? null) === null) body.update_source = "Contact";
  return body;
}

/** PUT body that takes the contact out of one list, everything else (consent included) as read. */
export function leaveListPut(contact: CcContact, listId: string): ContactPut {
  const body = wholeContactPut(
    contact,
    contact.email_address ? unchangedEmail(contact.email_address) : undefined,
  );
  body.list_memberships = (contact.list_memberships ?? []).filter((id) => id !== listId);
  return body;
}

type UpdateOp = Extract<ConnectorOperation, { kind: "update_contact" }>;

const TOP_LEVEL_FIELDS = new Set(["job_title", "company_name", "anniversary"]);

/** PUT body applying profile changes; consent and sub-resources go back as read. */
export function updatePut(contact: CcContact, op: UpdateOp): ContactPut {
  const body = wholeContactPut(
    contact,
    contact.email_address ? unchangedEmail(contact.email_address) : undefined,
  );
  const set = (key: string, value: string | number | null | undefined): void => {
    if (value === undefined) return;
    // Leaving a top-level property out is how a Constant Contact PUT clears it.
    if (value === null) Reflect.deleteProperty(body, key);
    else body[key] = value;
  };
  set("first_name", op.first_name);
  set("last_name", op.last_name);
  const customFields = new Map(
    ((body.custom_fields as { custom_field_id: string }[] | undefined) ?? []).map((cf) => [
      cf.custom_field_id,
      cf,
    ]),
  );
  let customChanged = false;
  const phones = ((body.phone_numbers as { kind?: string; phone_number?: string }[] | undefined) ?? []).map(
    (p) => ({ ...p }),
  );
  const addresses = ((body.street_addresses as Record<string, string>[] | undefined) ?? []).map((a) => ({
    ...a,
  }));
  let phonesChanged = false;
  let addressesChanged = false;
  for (const [key, value] of Object.entries(op.fields ?? {})) {
    const phone = PHONE_FIELD.exec(key);
    const address = ADDRESS_FIELD.exec(key);
    if (phone) {
      // The phone of that kind: replaced, added, or removed when cleared.
      const kind = phone[1] ?? "other";
      const at = phones.findIndex((p) => p.kind === kind);
      if (value === null) {
        if (at >= 0) phones.splice(at, 1);
      } else if (at >= 0) phones[at] = { kind, phone_number: value };
      else phones.push({ kind, phone_number: value });
      phonesChanged = true;
    } else if (address) {
      const kind = address[1] ?? "other";
      const part = address[2] ?? "street";
      let entry = addresses.find((a) => a.kind === kind);
      if (!entry && value !== null) {
        entry = { kind };
        addresses.push(entry);
      }
      if (entry) {
        if (value === null) Reflect.deleteProperty(entry, part);
        else entry[part] = value;
      }
      addressesChanged = true;
    } else if (TOP_LEVEL_FIELDS.has(key)) set(key, value);
    else if (key === "birthday_month" || key === "birthday_day")
      set(key, value === null ? null : Number.isInteger(Number(value)) ? Number(value) : undefined);
    else if (key.startsWith("custom_field:")) {
      const id = key.slice("custom_field:".length);
      customChanged = true;
      if (value === null) customFields.delete(id);
      else customFields.set(id, { custom_field_id: id, value } as { custom_field_id: string });
    }
  }
  if (customChanged) body.custom_fields = [...customFields.values()];
  if (phonesChanged) body.phone_numbers = phones;
  // An address with nothing left but its kind is no address.
  if (addressesChanged) body.street_addresses = addresses.filter((a) => Object.keys(a).length > 1);
  return body;
}

/** PUT body moving the contact to a new address; consent goes back as read. */
export function changeEmailPut(contact: CcContact, newEmail: string): ContactPut {
  const e = contact.email_address;
  return wholeContactPut(contact, e ? unchangedEmail(e, newEmail.trim()) : { address: newEmail.trim() });
}

type CreateOp = Extract<ConnectorOperation, { kind: "create_contact" }>;

/**
 * POST /contacts body. `create_source: "Account"` because Concord adds people on the account's
 * behalf; no `permission_to_send`, so Concord never claims a permission the person did not give.
 */
export function createBody(op: CreateOp): Record<string, unknown> {
  const body: Record<string, unknown> = {
    email_address: { address: op.email.trim() },
    create_source: "Account",
  };
  if (op.first_name) body.first_name = op.first_name;
  if (op.last_name) body.last_name = op.last_name;
  return body;
}

/** POST /contacts body for one upsert item the bulk import cannot carry. */
export function createBodyFromItem(item: UpsertItem): Record<string, unknown> {
  const body: Record<string, unknown> = {
    email_address: { address: item.email.trim() },
    create_source: "Account",
  };
  if (item.first_name) body.first_name = item.first_name;
  if (item.last_name) body.last_name = item.last_name;
  for (const [key, value] of Object.entries(item.fields ?? {})) {
    if (value !== null && TOP_LEVEL_FIELDS.has(key)) body[key] = value;
  }
  return body;
}

/**
 * Characters an address may hold around its `@`, so a match inside a longer address is not it;
 * quotes are left out, since messages quote addresses with them.
 */
const ADDRESS_CHAR = /[a-z0-9!#$%&*+/=?^_{|}~.@-]/i;

/**
 * Whether an import activity's error message names this address: as a whole address, so a message
 * about joann@example.org is not taken for ann@example.org. A full stop after it ends a sentence.
 */
export function messageNamesAddress(message: string, address: string): boolean {
  const text = message.toLowerCase();
  const needle = address.trim().toLowerCase();
  if (needle === "") return false;
  for (let at = text.indexOf(needle); at >= 0; at = text.indexOf(needle, at + 1)) {
    const before = at === 0 ? "" : text[at - 1]!;
    const end = at + needle.length;
    const after = text[end] ?? "";
    const afterEndsSentence = after === "." && !ADDRESS_CHAR.test(text[end + 1] ?? "");
    if (!ADDRESS_CHAR.test(before) && (after === "" || !ADDRESS_CHAR.test(after) || afterEndsSentence))
      return true;
  }
  return false;
}
