/**
 * A record as the store keeps its last read (the connector's ExternalRecord, as JSON), read back
 * leniently: a snapshot written by an earlier version, or with a field a later one dropped, still
 * parses, and what it lacks reads as absent (no consent facts, no lists).
 */
import { z } from "zod";
import type { ConsentFact } from "../core/consent/system-consent";
import type { ConsentGround } from "../core/consent/implied-consent";
import type { ExternalRecord } from "../connectors/connector";

const ScopeSchema = z.union([
  z.object({ kind: z.literal("global") }),
  z.object({ kind: z.literal("account") }),
  z.object({
    kind: z.literal("construct"),
    construct: z.object({ type: z.string(), id: z.string(), name: z.string().optional() }),
  }),
]);

const FactSchema = z
  .object({
    channel: z.enum(["email", "sms"]).catch("email"),
    scope: ScopeSchema,
    status: z.enum(["opted_out", "opted_in", "pending", "none"]),
    source: z.string(),
    label: z.string().catch(""),
    role: z.enum(["state", "record"]).catch("state"),
    unversioned: z.literal(true).optional(),
    account_may_lift: z.literal(true).optional(),
    requires_consent: z.literal(true).optional(),
    at: z.string().optional(),
  })
  .transform((f): ConsentFact => ({
    channel: f.channel,
    scope:
      f.scope.kind === "construct"
        ? {
            kind: "construct",
            construct: {
              type: f.scope.construct.type,
              id: f.scope.construct.id,
              ...(f.scope.construct.name !== undefined ? { name: f.scope.construct.name } : {}),
            },
          }
        : f.scope,
    status: f.status,
    source: f.source,
    label: f.label,
    role: f.role,
    ...(f.unversioned === true ? { unversioned: true as const } : {}),
    ...(f.account_may_lift === true ? { account_may_lift: true as const } : {}),
    ...(f.requires_consent === true ? { requires_consent: true as const } : {}),
    ...(f.at !== undefined ? { at: f.at } : {}),
  }));

/** A record's consent facts as stored; one it cannot read is dropped, never guessed. */
export const StoredConsentStateSchema = z
  .array(FactSchema.nullable().catch(null))
  .default([])
  .transform((facts) => facts.filter((f): f is ConsentFact => f !== null));

/** A stored snapshot's payload: the connector's ExternalRecord, read leniently. */
export const SnapshotRecordSchema = z.object({
  external_id: z.string(),
  kind: z.enum(["individual", "organisation"]).catch("individual"),
  emails: z
    .array(z.object({ address: z.string(), primary: z.boolean(), inactive: z.boolean().optional() }))
    .default([]),
  first_name: z.string().nullable().optional(),
  last_name: z.string().nullable().optional(),
  organisation_name: z.string().nullable().optional(),
  fields: z.record(z.string(), z.string().nullable()).default({}),
  consent_state: StoredConsentStateSchema,
  list_ids: z.array(z.string()).optional(),
  stopped_list_ids: z.array(z.string()).optional(),
  inactive: z.boolean().optional(),
  deceased: z.boolean().optional(),
  do_not_contact: z.boolean().optional(),
  consent_grounds: z
    .array(
      z
        .object({ kind: z.enum(["donation", "inquiry"]), at: z.string(), ref: z.string().optional() })
        .nullable()
        .catch(null),
    )
    .transform((g): ConsentGround[] =>
      g.flatMap((x) =>
        x === null ? [] : [{ kind: x.kind, at: x.at, ...(x.ref !== undefined ? { ref: x.ref } : {}) }],
      ),
    )
    .optional(),
  deleted: z.boolean().optional(),
  updated_at: z.string().optional(),
});
export type SnapshotRecord = z.infer<typeof SnapshotRecordSchema>;

/**
 * The form Concord writes a snapshot in today, checked strictly (no defaults, fallbacks or
 * rebuilding): the lenient schema's output for such a payload, at about a third of its cost.
 */
const CurrentSnapshotSchema = z.object({
  external_id: z.string(),
  kind: z.enum(["individual", "organisation"]),
  emails: z.array(
    z.object({ address: z.string(), primary: z.boolean(), inactive: z.boolean().exactOptional() }),
  ),
  first_name: z.string().nullable().exactOptional(),
  last_name: z.string().nullable().exactOptional(),
  organisation_name: z.string().nullable().exactOptional(),
  fields: z.record(z.string(), z.string().nullable()),
  consent_state: z.array(
    z.object({
      channel: z.enum(["email", "sms"]),
      scope: z.union([
        z.object({ kind: z.literal("global") }),
        z.object({ kind: z.literal("account") }),
        z.object({
          kind: z.literal("construct"),
          construct: z.object({ type: z.string(), id: z.string(), name: z.string().exactOptional() }),
        }),
      ]),
      status: z.enum(["opted_out", "opted_in", "pending", "none"]),
      source: z.string(),
      label: z.string(),
      role: z.enum(["state", "record"]),
      unversioned: z.literal(true).exactOptional(),
      account_may_lift: z.literal(true).exactOptional(),
      requires_consent: z.literal(true).exactOptional(),
      at: z.string().exactOptional(),
    }),
  ),
  list_ids: z.array(z.string()).exactOptional(),
  stopped_list_ids: z.array(z.string()).exactOptional(),
  inactive: z.boolean().exactOptional(),
  deceased: z.boolean().exactOptional(),
  do_not_contact: z.boolean().exactOptional(),
  consent_grounds: z
    .array(
      z.object({ kind: z.enum(["donation", "inquiry"]), at: z.string(), ref: z.string().exactOptional() }),
    )
    .exactOptional(),
  deleted: z.boolean().exactOptional(),
  updated_at: z.string().exactOptional(),
});

/**
 * Today's form is what the record stage stores: a connector's record as JSON. This stops compiling
 * when the two drift apart (a snapshot of a new shape would be read by the slow lenient path).
 */
const _todaysForm = (record: ExternalRecord): z.input<typeof CurrentSnapshotSchema> => record;

/**
 * A stored snapshot's payload as a record: checked in today's form first, then read leniently
 * (`SnapshotRecordSchema`); undefined when it cannot be read at all.
 */
export function readSnapshotRecord(payload: unknown): SnapshotRecord | undefined {
  const today = inTodaysForm(payload);
  if (today !== undefined) return today;
  const current = CurrentSnapshotSchema.safeParse(payload);
  if (current.success) return current.data;
  const lenient = SnapshotRecordSchema.safeParse(payload);
  return lenient.success ? lenient.data : undefined;
}

/**
 * `CurrentSnapshotSchema`'s reading of a payload in today's form, without its copying: a first plan
 * reads every snapshot of the pair, and checking them took a tenth of its time. The payload's own
 * parts are kept (a payload is parsed afresh for each read), so any part with a key the schema
 * would drop, or a value it would refuse, leaves the payload to the schemas, which decide.
 */
function inTodaysForm(p: unknown): SnapshotRecord | undefined {
  if (!isObject(p)) return undefined;
  const { external_id, kind, emails, fields, consent_state } = p;
  if (typeof external_id !== "string" || (kind !== "individual" && kind !== "organisation")) return undefined;
  if (!everyOne(emails, isEmail) || !isFields(fields) || !everyOne(consent_state, isFact)) return undefined;
  const out: SnapshotRecord = { external_id, kind, emails, fields, consent_state };
  for (const key of ["first_name", "last_name", "organisation_name"] as const) {
    const value = p[key];
    if (value === undefined) continue;
    if (value !== null && typeof value !== "string") return undefined;
    out[key] = value;
  }
  for (const key of ["inactive", "deceased", "do_not_contact", "deleted"] as const) {
    const value = p[key];
    if (value === undefined) continue;
    if (typeof value !== "boolean") return undefined;
    out[key] = value;
  }
  const { list_ids, stopped_list_ids, consent_grounds, updated_at } = p;
  if (list_ids !== undefined) {
    if (!everyOne(list_ids, isString)) return undefined;
    out.list_ids = list_ids;
  }
  if (stopped_list_ids !== undefined) {
    if (!everyOne(stopped_list_ids, isString)) return undefined;
    out.stopped_list_ids = stopped_list_ids;
  }
  if (consent_grounds !== undefined) {
    if (!everyOne(consent_grounds, isGround)) return undefined;
    out.consent_grounds = consent_grounds;
  }
  if (updated_at !== undefined) {
    if (typeof updated_at !== "string") return undefined;
    out.updated_at = updated_at;
  }
  return out;
}

type JsonObject = Record<string, unknown>;

const isObject = (v: unknown): v is JsonObject => typeof v === "object" && v !== null && !Array.isArray(v);
const isString = (v: unknown): v is string => typeof v === "string";

function everyOne<T>(v: unknown, each: (item: unknown) => item is T): v is T[] {
  if (!Array.isArray(v)) return false;
  for (const item of v) if (!each(item)) return false;
  return true;
}

/** An object with only these keys (the schema would drop any other, so the payload's is not its reading). */
function onlyKeys(o: JsonObject, keys: ReadonlySet<string>): boolean {
  for (const key in o) if (!keys.has(key)) return false;
  return true;
}

const optional = (v: unknown, is: (v: unknown) => boolean): boolean => v === undefined || is(v);

const EMAIL_KEYS = new Set(["address", "primary", "inactive"]);
const isEmail = (e: unknown): e is SnapshotRecord["emails"][number] =>
  isObject(e) &&
  onlyKeys(e, EMAIL_KEYS) &&
  typeof e.address === "string" &&
  typeof e.primary === "boolean" &&
  (e.inactive === undefined || typeof e.inactive === "boolean");

function isFields(v: unknown): v is Record<string, string | null> {
  if (!isObject(v)) return false;
  for (const key in v) {
    const value = v[key];
    if (value !== null && typeof value !== "string") return false;
  }
  return true;
}

const FACT_KEYS = new Set([
  "channel",
  "scope",
  "status",
  "source",
  "label",
  "role",
  "unversioned",
  "account_may_lift",
  "requires_consent",
  "at",
]);
const STATUSES = new Set(["opted_out", "opted_in", "pending", "none"]);
const isFact = (f: unknown): f is ConsentFact =>
  isObject(f) &&
  onlyKeys(f, FACT_KEYS) &&
  (f.channel === "email" || f.channel === "sms") &&
  isScope(f.scope) &&
  typeof f.status === "string" &&
  STATUSES.has(f.status) &&
  typeof f.source === "string" &&
  typeof f.label === "string" &&
  (f.role === "state" || f.role === "record") &&
  (f.unversioned === undefined || f.unversioned === true) &&
  (f.account_may_lift === undefined || f.account_may_lift === true) &&
  (f.requires_consent === undefined || f.requires_consent === true) &&
  optional(f.at, isString);

const KIND_KEYS = new Set(["kind"]);
const CONSTRUCT_SCOPE_KEYS = new Set(["kind", "construct"]);
const CONSTRUCT_KEYS = new Set(["type", "id", "name"]);
function isScope(s: unknown): boolean {
  if (!isObject(s)) return false;
  if (s.kind === "global" || s.kind === "account") return onlyKeys(s, KIND_KEYS);
  if (s.kind !== "construct" || !onlyKeys(s, CONSTRUCT_SCOPE_KEYS)) return false;
  const c = s.construct;
  return (
    isObject(c) &&
    onlyKeys(c, CONSTRUCT_KEYS) &&
    typeof c.type === "string" &&
    typeof c.id === "string" &&
    optional(c.name, isString)
  );
}

const GROUND_KEYS = new Set(["kind", "at", "ref"]);
const isGround = (g: unknown): g is ConsentGround =>
  isObject(g) &&
  onlyKeys(g, GROUND_KEYS) &&
  (g.kind === "donation" || g.kind === "inquiry") &&
  typeof g.at === "string" &&
  optional(g.ref, isString);

/** The address a record is matched and filed by: its active primary, else any active one, else any. */
export function recordEmail(
  emails: readonly { address: string; primary: boolean; inactive?: boolean | undefined }[],
): string | undefined {
  return (
    emails.find((e) => e.primary && e.inactive !== true) ??
    emails.find((e) => e.inactive !== true) ??
    emails[0]
  )?.address;
}
