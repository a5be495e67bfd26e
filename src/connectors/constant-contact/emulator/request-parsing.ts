/**
 * Parsing and validation of V3 request bodies and query strings for the Constant Contact emulator,
 * raising the documented 400s, plus the cursor format its collections page with.
 */
import type { FastifyRequest } from "fastify";
import { randomUUID } from "node:crypto";
import { EmulatorControlError } from "../../emulator-kit/emulator-kit";
import {
  MAX_LISTS_PER_CONTACT,
  PERMISSIONS,
  StoreError,
  SUB_RESOURCES,
  TOP_LEVEL_FIELDS,
  isOptedIn,
  type Permission,
  type Source,
  type StoredContact,
} from "./constant-contact-store";

export const bad = (message: string, key = "contacts.api.validation.error"): StoreError =>
  new StoreError(400, key, message);
export const notFound = (message: string, key = "contacts.api.not_found"): StoreError =>
  new StoreError(404, key, message);

export function pathOf(request: FastifyRequest): string {
  return request.url.split("?")[0] ?? request.url;
}

export function requireBody(body: unknown): Record<string, any> {
  return requireObject(body, "The request body");
}

export function requireObject(value: unknown, what: string): Record<string, any> {
  if (value === null || typeof value !== "object" || Array.isArray(value))
    throw bad(`${what} must be a JSON object.`);
  return value as Record<string, any>;
}

export function requireSource(value: unknown, field: string): Source {
  if (value !== "Account" && value !== "Contact")
    throw bad(`${field} is required and must be Account or Contact.`);
  return value;
}

export function requirePermission(value: unknown): Permission {
  if (!PERMISSIONS.includes(value as Permission)) {
    throw bad(`permission_to_send must be one of ${PERMISSIONS.join(", ")}.`);
  }
  return value as Permission;
}

export function requireIdArray(value: unknown, field: string, min: number, max: number): string[] {
  if (!Array.isArray(value) || value.some((v) => typeof v !== "string"))
    throw bad(`${field} must be an array of ids.`);
  if (value.length < min || value.length > max)
    throw bad(`${field} must contain between ${min} and ${max} ids.`);
  return [...new Set(value as string[])];
}

export function requireListName(value: unknown): string {
  if (typeof value !== "string" || value.trim() === "" || value.length > 255) {
    throw bad("name is required and must be at most 255 characters.", "contact_lists.api.validation.error");
  }
  return value;
}

export function optionalString(value: unknown, max: number): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== "string" || value.length > max)
    throw bad(`A text value must be at most ${max} characters.`);
  return value;
}

export function asArray(value: unknown, field: string): any[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new EmulatorControlError("invalid_seed", `"${field}" must be an array.`);
  return value;
}

export function checkTopLevel(body: Record<string, any>): void {
  for (const field of ["first_name", "last_name", "job_title", "company_name"]) {
    const v = body[field];
    if (v !== undefined && v !== null && (typeof v !== "string" || v.length > 50)) {
      throw bad(`${field} must be a string of at most 50 characters.`);
    }
  }
  if (
    body.anniversary !== undefined &&
    body.anniversary !== null &&
    (typeof body.anniversary !== "string" || body.anniversary.length > 10)
  ) {
    throw bad("anniversary must be a date string of at most 10 characters.");
  }
  const month = body.birthday_month;
  if (month !== undefined && month !== null && !(Number.isInteger(month) && month >= 1 && month <= 12)) {
    throw bad("birthday_month must be an integer from 1 to 12.");
  }
  const day = body.birthday_day;
  if (day !== undefined && day !== null && !(Number.isInteger(day) && day >= 1 && day <= 31)) {
    throw bad("birthday_day must be an integer from 1 to 31.");
  }
}

/** PUT replaces every top-level field (omitted ones become null); sign-up forms only merge. */
export function applyTopLevel(
  contact: StoredContact,
  body: Record<string, any>,
  mode: "replace" | "merge",
): void {
  for (const field of TOP_LEVEL_FIELDS) {
    if (body[field] !== undefined) contact.fields[field] = body[field];
    else if (mode === "replace") contact.fields[field] = null;
  }
}

export type ParsedSubs = Partial<Record<(typeof SUB_RESOURCES)[number] | "sms_channel", any>>;

export function parseSubResources(body: Record<string, any>): ParsedSubs {
  const out: ParsedSubs = {};
  const limits: Record<string, number> = {
    custom_fields: 25,
    phone_numbers: 3,
    street_addresses: 3,
    list_memberships: MAX_LISTS_PER_CONTACT,
    taggings: 50,
    notes: 150,
  };
  for (const sub of SUB_RESOURCES) {
    const value = body[sub];
    if (value === undefined) continue;
    if (!Array.isArray(value)) throw bad(`${sub} must be an array.`);
    if (value.length > (limits[sub] ?? 0)) throw bad(`${sub} accepts at most ${limits[sub]} items.`);
    out[sub] = value;
  }
  if (body.sms_channel !== undefined) out.sms_channel = body.sms_channel;
  return out;
}

export function applySubResources(contact: StoredContact, subs: ParsedSubs): void {
  const at = new Date(contact.updated_at).toISOString();
  if (subs.list_memberships) {
    for (const id of subs.list_memberships)
      if (typeof id !== "string") throw bad("list_memberships must hold list ids.");
    contact.list_memberships = [...new Set(subs.list_memberships as string[])];
  }
  if (subs.taggings) contact.taggings = subs.taggings;
  if (subs.custom_fields) {
    for (const cf of subs.custom_fields) {
      if (typeof cf?.custom_field_id !== "string") throw bad("custom_fields[].custom_field_id is required.");
    }
    contact.custom_fields = subs.custom_fields;
  }
  if (subs.phone_numbers) {
    contact.phone_numbers = subs.phone_numbers.map((p: any) => ({
      phone_number_id: typeof p?.phone_number_id === "string" ? p.phone_number_id : randomUUID(),
      phone_number: String(p?.phone_number ?? ""),
      kind: typeof p?.kind === "string" ? p.kind : "other",
      created_at: at,
      updated_at: at,
    }));
  }
  if (subs.street_addresses) {
    contact.street_addresses = subs.street_addresses.map((a: any) => {
      if (typeof a?.kind !== "string") throw bad("street_addresses[].kind is required.");
      return {
        street_address_id: randomUUID(),
        ...pick(a, ["kind", "street", "city", "state", "postal_code", "country"]),
        created_at: at,
        updated_at: at,
      };
    });
  }
  if (subs.notes) {
    contact.notes = subs.notes.map((n: any) => ({
      note_id: typeof n?.note_id === "string" ? n.note_id : randomUUID(),
      created_at: typeof n?.created_at === "string" ? n.created_at : at,
      content: String(n?.content ?? ""),
    }));
  }
  if (subs.sms_channel !== undefined) contact.sms_channel = subs.sms_channel;
}

/** sign_up_form's extra shapes: one phone_number, one street_address, appended custom fields. */
export function applySignUpExtras(contact: StoredContact, body: Record<string, any>): void {
  const at = contact.updated_at;
  if (
    typeof body.phone_number === "string" &&
    !contact.phone_numbers.some((p) => p.phone_number === body.phone_number)
  ) {
    if (contact.phone_numbers.length < 3) {
      contact.phone_numbers.push({
        phone_number_id: randomUUID(),
        phone_number: body.phone_number,
        kind: "home",
        created_at: at,
        updated_at: at,
      });
    }
  }
  if (body.street_address && typeof body.street_address === "object" && contact.street_addresses.length < 3) {
    contact.street_addresses.push({
      street_address_id: randomUUID(),
      kind: typeof body.street_address.kind === "string" ? body.street_address.kind : "home",
      ...pick(body.street_address, ["street", "city", "state", "postal_code", "country"]),
      created_at: at,
      updated_at: at,
    });
  }
  if (Array.isArray(body.custom_fields)) {
    const byId = new Map<string, unknown>(
      (contact.custom_fields as any[]).map((cf) => [cf.custom_field_id, cf]),
    );
    for (const cf of body.custom_fields)
      if (typeof cf?.custom_field_id === "string") byId.set(cf.custom_field_id, cf);
    contact.custom_fields = [...byId.values()];
  }
}

const IMPORT_PHONE_KINDS: Record<string, string> = {
  phone: "other",
  home_phone: "home",
  work_phone: "work",
  mobile_phone: "mobile",
  other_phone: "other",
};

/** Import rows are flat; only the supplied properties change an existing contact. */
export function applyImportRow(contact: StoredContact, row: Record<string, unknown>): void {
  for (const field of TOP_LEVEL_FIELDS)
    if (row[field] !== undefined) contact.fields[field] = row[field] as string;
  const at = contact.updated_at;
  for (const [key, kind] of Object.entries(IMPORT_PHONE_KINDS)) {
    const value = row[key];
    if (typeof value !== "string" || value === "") continue;
    const existing = contact.phone_numbers.find((p) => p.kind === kind);
    if (existing) existing.phone_number = value;
    else if (contact.phone_numbers.length < 3) {
      contact.phone_numbers.push({
        phone_number_id: randomUUID(),
        phone_number: value,
        kind,
        created_at: at,
        updated_at: at,
      });
    }
  }
  for (const prefix of ["", "home_", "work_", "other_"]) {
    const street = row[`${prefix}street`];
    const city = row[`${prefix}city`];
    if (street === undefined && city === undefined) continue;
    const kind = prefix === "" ? "home" : prefix.slice(0, -1);
    const address = {
      kind,
      street: row[`${prefix}street`],
      city,
      state: row[`${prefix}state`],
      postal_code: row[`${prefix}zip`],
      country: row[`${prefix}country`],
    };
    const existing = contact.street_addresses.findIndex((a) => a.kind === kind);
    const stored = {
      street_address_id: randomUUID(),
      ...dropUndefined(address),
      created_at: at,
      updated_at: at,
    };
    if (existing >= 0)
      contact.street_addresses[existing] = { ...contact.street_addresses[existing], ...stored };
    else if (contact.street_addresses.length < 3) contact.street_addresses.push(stored);
  }
}

export function pick(obj: Record<string, unknown>, keys: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of keys) if (obj[k] !== undefined && obj[k] !== null) out[k] = obj[k];
  return out;
}

export function dropUndefined(obj: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined));
}

export function parseLimit(value: string | undefined, max: number): number {
  if (value === undefined || value === "") return 50;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > max) throw bad(`limit must be an integer from 1 to ${max}.`);
  return n;
}

export function parseCsv(
  value: string | undefined,
  allowed: readonly string[],
  field: string,
): string[] | undefined {
  if (value === undefined || value === "") return undefined;
  const parts = value
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  for (const p of parts) {
    if (!allowed.includes(p))
      throw bad(`${field} does not have a valid value: "${p}" (allowed: ${allowed.join(", ")}).`);
  }
  return parts;
}

export function parseDate(value: string | undefined, field: string): number | undefined {
  if (value === undefined || value === "") return undefined;
  const ms = Date.parse(value);
  if (Number.isNaN(ms)) throw bad(`${field} must be an ISO-8601 date-time.`);
  return ms;
}

export function matchesStatus(c: StoredContact, statuses: string[] | undefined): boolean {
  const deleted = c.deleted_at !== null;
  if (!statuses) return !deleted;
  const permission = c.email_address?.permission_to_send;
  return statuses.some((s) => {
    if (s === "all") return true;
    if (s === "deleted") return deleted;
    if (deleted) return false;
    if (s === "active") return isOptedIn(permission);
    return permission === s;
  });
}

/** Cursors are base64 of the query that produced the page plus the last item seen ("next"). */
export function encodeCursor(
  params: Record<string, string | undefined>,
  limit: number,
  next: number,
): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && k !== "cursor" && k !== "next" && k !== "limit") q.set(k, v);
  }
  q.set("limit", String(limit));
  q.set("next", String(next));
  return Buffer.from(q.toString()).toString("base64");
}

export function withCursor(query: Record<string, string | undefined>): Record<string, string | undefined> {
  if (query.cursor === undefined) return query;
  // "+" in an unencoded cursor arrives as a space after query-string decoding.
  const raw = Buffer.from(query.cursor.replace(/ /g, "+"), "base64").toString("utf8");
  const decoded = Object.fromEntries(new URLSearchParams(raw));
  if (decoded.next === undefined || !/^\d+$/.test(decoded.next)) throw bad("cursor is not valid.");
  const { cursor: _c, ...rest } = query;
  return { ...decoded, ...rest, next: decoded.next };
}

/** One page from a seq-ordered array: binary search to the cursor, then scan only as far as needed. */
export function scanPage<T extends { seq: number }>(
  ordered: readonly T[],
  params: Record<string, string | undefined>,
  limit: number,
  matches: (item: T) => boolean,
): { items: T[]; next: number | null } {
  const after = params.next === undefined ? 0 : Number(params.next);
  let lo = 0;
  let hi = ordered.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (ordered[mid]!.seq <= after) lo = mid + 1;
    else hi = mid;
  }
  const items: T[] = [];
  for (let i = lo; i < ordered.length; i += 1) {
    const item = ordered[i]!;
    if (!matches(item)) continue;
    if (items.length === limit) return { items, next: items.at(-1)!.seq };
    items.push(item);
  }
  return { items, next: null };
}

export function pageAfter<T extends { seq: number }>(
  all: T[],
  params: Record<string, string | undefined>,
  limit: number,
): { items: T[]; next: number | null } {
  const after = params.next === undefined ? 0 : Number(params.next);
  const remaining = all.filter((x) => x.seq > after);
  const items = remaining.slice(0, limit);
  const last = items.at(-1);
  return { items, next: remaining.length > limit && last ? last.seq : null };
}
