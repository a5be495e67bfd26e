/** Three-way merge of profile fields between a CRM record and a platform record against their last agreed baseline. */
import { canonicalJson, type JsonValue } from "../canonical-json";

export type MergeSide = "crm" | "platform";
/** Who wins a conflict on a field: a side, or the most recent change. */
export type FieldOwner = MergeSide | "latest";

export type SideValue = {
  /** The side's current value; null when it holds none. */
  value: JsonValue;
  /** When this side last changed the field (ISO-8601 UTC), when the system says. */
  changed_at?: string;
};

export type FieldMergeInput = {
  owner: FieldOwner;
  /** The value both sides last agreed on; omitted when they never have (first sync). */
  baseline?: JsonValue;
  crm: SideValue;
  platform: SideValue;
};

export type FieldMergeOutcome =
  | "unchanged" // neither side moved from the baseline
  | "crm_changed" // only the CRM moved: the platform follows
  | "platform_changed" // only the platform moved: the CRM follows
  | "converged" // both moved to the same value
  | "conflict"; // both moved to different values: resolved by owner, else latest

export type ConflictResolution =
  | "owner_crm"
  | "owner_platform"
  | "latest_crm"
  | "latest_platform"
  /** Equal or unknown change times: the CRM, as system of record, wins. */
  | "latest_tie_crm";

export type FieldConflict = {
  crm: JsonValue;
  platform: JsonValue;
  winner: MergeSide;
  resolution: ConflictResolution;
};

export type FieldMerge = {
  value: JsonValue;
  outcome: FieldMergeOutcome;
  /** Sides whose current value differs from the merged value and must be written. */
  update: MergeSide[];
  conflict?: FieldConflict;
};

export type FieldsMerge<K extends string> = {
  fields: Record<K, FieldMerge>;
  crm_updates: Partial<Record<K, JsonValue>>;
  platform_updates: Partial<Record<K, JsonValue>>;
  conflicts: (FieldConflict & { field: K })[];
};

/**
 * Canonical names of consent fields. Consent never follows "last writer wins" (DESIGN.md §3): it is
 * folded from the ledger, so these never enter this merge.
 */
export const CONSENT_FIELD_NAMES = [
  "consent",
  "consents",
  "email_consent",
  "email_opt_in",
  "email_opt_out",
  "opt_in",
  "opt_out",
  "subscribed",
  "unsubscribed",
  "subscription_status",
  "email_subscription_status",
  "do_not_contact",
  "topics",
] as const;
export type ConsentFieldName = (typeof CONSENT_FIELD_NAMES)[number];

// Vendor-ish spellings too (HasOptedOutOfEmail, emailOptIn, SUBSCRIPTION_STATUS…), by snake-cased token.
const CONSENT_TOKEN =
  /(^|_)(consents?|opt_?(in|out)|opted_?(in|out)(_of)?|un_?subscribed?|subscribed?|subscriptions?|suppress(ed|ion)?|permissions?|do_not_(e_?mail|mail|contact|solicit)|no_?e_?mail|e?mail_status)(_|$)/;

const snake = (name: string): string =>
  name
    .replace(/([a-z0-9])([A-Z])/g, "$1_$2")
    .replace(/[^A-Za-z0-9]+/g, "_")
    .toLowerCase();

/** Whether a field name denotes consent; config validation uses it to refuse such mappings early. */
export function isConsentField(name: string): boolean {
  return (CONSENT_FIELD_NAMES as readonly string[]).includes(name) || CONSENT_TOKEN.test(snake(name));
}

const same = (a: JsonValue, b: JsonValue): boolean => canonicalJson(a) === canonicalJson(b);
const empty = (v: JsonValue): boolean => v === null || v === "";

/** Merges one field. */
export function mergeField(input: FieldMergeInput): FieldMerge {
  const { crm, platform } = input;
  let crmMoved: boolean;
  let platformMoved: boolean;
  if (input.baseline === undefined) {
    // First sync: a side holding nothing has not "cleared" the field; the other side fills it.
    crmMoved = !empty(crm.value);
    platformMoved = !empty(platform.value);
    if (same(crm.value, platform.value)) crmMoved = platformMoved = false;
    // Both empty in different spellings (null and ""): nothing to write on either side.
    if (!crmMoved && !platformMoved) return { value: crm.value, outcome: "unchanged", update: [] };
  } else {
    crmMoved = !same(crm.value, input.baseline);
    platformMoved = !same(platform.value, input.baseline);
  }

  if (!crmMoved && !platformMoved) return finish(input.baseline ?? crm.value, "unchanged", input);
  if (crmMoved && !platformMoved) return finish(crm.value, "crm_changed", input);
  if (!crmMoved && platformMoved) return finish(platform.value, "platform_changed", input);
  if (same(crm.value, platform.value)) return finish(crm.value, "converged", input);

  const { winner, resolution } = resolve(input);
  const conflict: FieldConflict = { crm: crm.value, platform: platform.value, winner, resolution };
  return { ...finish(input[winner].value, "conflict", input), conflict };
}

function resolve(input: FieldMergeInput): { winner: MergeSide; resolution: ConflictResolution } {
  if (input.owner === "crm") return { winner: "crm", resolution: "owner_crm" };
  if (input.owner === "platform") return { winner: "platform", resolution: "owner_platform" };
  const c = input.crm.changed_at === undefined ? NaN : Date.parse(input.crm.changed_at);
  const p = input.platform.changed_at === undefined ? NaN : Date.parse(input.platform.changed_at);
  if (Number.isNaN(c) || Number.isNaN(p) || c === p) return { winner: "crm", resolution: "latest_tie_crm" };
  return c > p
    ? { winner: "crm", resolution: "latest_crm" }
    : { winner: "platform", resolution: "latest_platform" };
}

function finish(value: JsonValue, outcome: FieldMergeOutcome, input: FieldMergeInput): FieldMerge {
  const update: MergeSide[] = [];
  if (!same(input.crm.value, value)) update.push("crm");
  if (!same(input.platform.value, value)) update.push("platform");
  return { value, outcome, update };
}

/** A compile-time refusal: a record naming a consent field does not type-check. */
export type NoConsentFields<K extends string> = string extends K
  ? unknown // names known only at run time (from config): the run-time check below refuses them
  : { [F in K & ConsentFieldName]: never };

/**
 * Merges a record's profile fields. Consent fields are a bug here (config validation refuses them
 * with `isConsentField`), so they throw rather than return a value.
 */
export function mergeFields<K extends string>(
  fields: Record<K, FieldMergeInput> & NoConsentFields<K>,
): FieldsMerge<K> {
  const names = Object.keys(fields).sort() as K[];
  const refused = names.filter(isConsentField);
  if (refused.length > 0)
    throw new TypeError(`consent fields never go through the profile merge: ${refused.join(", ")}`);
  const result: FieldsMerge<K> = {
    fields: {} as Record<K, FieldMerge>,
    crm_updates: {},
    platform_updates: {},
    conflicts: [],
  };
  for (const name of names) {
    const merged = mergeField(fields[name]);
    result.fields[name] = merged;
    if (merged.update.includes("crm")) result.crm_updates[name] = merged.value;
    if (merged.update.includes("platform")) result.platform_updates[name] = merged.value;
    if (merged.conflict) result.conflicts.push({ field: name, ...merged.conflict });
  }
  return result;
}
