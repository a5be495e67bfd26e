/**
 * Pure translation between Raiser's Edge NXT shapes and Concord's canonical ones: constituents to
 * external records, the consent flags and consent-record history to consent observations with their
 * provenance, and Concord's operations to the request bodies SKY accepts.
 */
import type { Actor, Channel, Evidence, Mechanism } from "../../core/consent/consent-event";
import { constructScope, GLOBAL_OBSERVED } from "../../core/consent/system-consent";
import type {
  ConnectorOperation,
  ConsentFact,
  ConsentObservation,
  ExternalEmail,
  ExternalRecord,
  UnreadParts,
  ObservedScope,
  WebhookChange,
} from "../connector";
import type {
  ConsentAddBody,
  ConsentRecord,
  Constituent,
  ConstituentAddBody,
  ConstituentEditBody,
  ConstituentSolicitCode,
  CustomField,
  EmailAddress,
  LatestGift,
  Relationship,
} from "./schemas";

/** Every consent statement Concord writes starts with this, so reading it back is known as our echo. */
export const CONCORD_STATEMENT_PREFIX = "[Concord]";
const EVIDENCE_MAX = 4000;
/** SKY's documented limit on consent_statement and privacy_notice. */
const STATEMENT_MAX = 7999;

/**
 * ISO-8601 UTC with `Z`: SKY writes offsets ("+00:00", "-04:00") and up to 7 fractional digits. A
 * date and time without an offset (fields documented without one, such as a solicit code's start)
 * is read as UTC, not in the time zone the server runs in.
 */
export function toUtcIso(value: string): string {
  let trimmed = value.trim().replace(/(\.\d{3})\d+/, "$1");
  if (trimmed.includes("T") && !/(Z|[+-]\d\d:?\d\d)$/i.test(trimmed)) trimmed = `${trimmed}Z`;
  const ms = Date.parse(trimmed);
  if (Number.isNaN(ms)) throw new Error(`not an ISO-8601 date: ${value}`);
  return new Date(ms).toISOString();
}

/** `toUtcIso`, or undefined for a time SKY gave blank or unreadable: one bad date stops no read. */
export function readDate(value: string | null | undefined): string | undefined {
  if (value === null || value === undefined || value.trim() === "") return undefined;
  try {
    return toUtcIso(value);
  } catch {
    return undefined;
  }
}

/** `{ at }` for a time that can be read, else nothing: a fact's optional time. */
const atOf = (value: string | null | undefined): { at: string } | Record<string, never> => {
  const at = readDate(value);
  return at !== undefined ? { at } : {};
};

/** The first of the times that can be read, else undefined. */
const firstDate = (...values: (string | null | undefined)[]): string | undefined => {
  for (const v of values) {
    const at = readDate(v);
    if (at !== undefined) return at;
  }
  return undefined;
};

/**
 * When a solicit code took effect: the later of its start and when it was entered. A code entered
 * today with a start years back (a paper record typed in) is an act of today: dated by its start,
 * an opt-in the person made in between would come after it and lift it.
 */
const codeInForceSince = (code: ConstituentSolicitCode): string | undefined => {
  const times = [readDate(code.start_date), readDate(code.date_added)].filter(
    (t): t is string => t !== undefined,
  );
  return times.length === 0 ? undefined : times.reduce((a, b) => (Date.parse(a) >= Date.parse(b) ? a : b));
};

/** The stand-in time of a record whose own cannot be read: never taken as newer than anything. */
const NO_TIME = new Date(0).toISOString();

/**
 * Whether a Yes/No custom field is ticked: SKY's JSON gives a boolean, and its examples give
 * values as strings, so "true" and "Yes" are ticked too.
 */
export const isTicked = (value: unknown): boolean =>
  value === true || (typeof value === "string" && /^(true|yes)$/i.test(value.trim()));

/** The consent channel of a SKY channel name, or undefined for channels Concord does not sync (Phone, Mail…). */
export function channelOf(channel: string): Channel | undefined {
  const c = channel.trim().toLowerCase();
  if (c === "email" || c === "e-mail") return "email";
  if (c === "sms" || c === "text" || c === "text message") return "sms";
  return undefined;
}

type Provenance = { mechanism: Mechanism; actor: Actor };

/**
 * How a consent record's `source` (an entry of the organisation's Consent Sources table, so free text
 * across customers) tells who acted. Sources naming a person's own channel are the contact's act;
 * sources naming an import, an integration or staff are the account's, which never counts as a
 * qualifying opt-in. Words are matched whole ("Email import" names no letter or mail).
 */
const CONTACT_SOURCES: readonly { test: RegExp; mechanism: Mechanism }[] = [
  { test: /\bone[- ]?click\b|\blist-unsubscribe\b/i, mechanism: "one_click_header" },
  { test: /\b(spam|complaints?|abuse)\b/i, mechanism: "spam_complaint" },
  {
    test: /\bunsubscri(be|bed|bes|ption)\b|\bconstant contact\b|\bmailchimp\b|\bemail (platform|campaign)s?\b/i,
    mechanism: "unsubscribe_link",
  },
  { test: /\b(preferences?|profile|portal)\b/i, mechanism: "preference_page" },
  { test: /\bdouble opt|\bconfirm(ed|ation)?\b/i, mechanism: "double_opt_in_confirmation" },
  { test: /\b(web|online|forms?|sign ?ups?|website)\b/i, mechanism: "signup_form" },
  { test: /\b(phone|call|calls|telephone)\b/i, mechanism: "phone_request" },
  { test: /\b(letter|mail|written|post|in person|verbal|event)\b/i, mechanism: "written_request" },
];
/**
 * Mechanisms by which a person only ever leaves: a source naming one of them ("Constant Contact",
 * "Unsubscribe") on an OptIn record tells nothing of the person's own opt-in.
 */
const OPT_OUT_ONLY: ReadonlySet<Mechanism> = new Set([
  "one_click_header",
  "spam_complaint",
  "unsubscribe_link",
]);
const ACCOUNT_SOURCES: readonly { test: RegExp; mechanism: Mechanism }[] = [
  { test: /\b(import|imported|imports|upload|uploaded|bulk)\b/i, mechanism: "import" },
  { test: /\b(api|integration|sync|synced|synchroni[sz]ation)\b/i, mechanism: "api" },
  { test: /\b(staff|admin|administrator)\b/i, mechanism: "admin_edit" },
];

/**
 * Who acted, as a record's source tells, read to the stricter side for what the record says: an
 * opt-in is the person's only when its source names their own channel of signing up and no import,
 * integration or staff ("Web import" is an import; "Constant Contact", a way of leaving, is none, so
 * staff copying a platform's status by hand ask for a resubscribe); an opt-out is the person's unless its source names only the
 * account's ways (an opt-out the account may undo must be plainly the account's).
 */
export function provenanceOfSource(
  source: string | null | undefined,
  userName?: string | null,
  response: "OptIn" | "OptOut" = "OptOut",
): Provenance | undefined {
  if (!source) return undefined;
  const contact = CONTACT_SOURCES.find(
    (r) => r.test.test(source) && (response === "OptOut" || !OPT_OUT_ONLY.has(r.mechanism)),
  );
  const account = ACCOUNT_SOURCES.find((r) => r.test.test(source));
  const asContact = contact
    ? { mechanism: contact.mechanism, actor: { kind: "contact" } as const }
    : undefined;
  const asAccount = account ? { mechanism: account.mechanism, actor: accountActor(userName) } : undefined;
  return response === "OptIn" ? (asAccount ?? asContact) : (asContact ?? asAccount);
}

const accountActor = (userName?: string | null): Actor =>
  userName ? { kind: "account", user: userName.slice(0, 200) } : { kind: "account" };

const clip = (text: string | null | undefined, max = EVIDENCE_MAX): string | undefined =>
  text ? text.slice(0, max) : undefined;

/** The address consent observations are filed under: the primary active one, else any. */
export function primaryEmail(emails: readonly ExternalEmail[]): string {
  const pick = emails.find((e) => e.primary && !e.inactive) ?? emails.find((e) => !e.inactive) ?? emails[0];
  return pick ? pick.address : "";
}

/** The type name Raiser's Edge's consent categories have as topic constructs (the manifest's `topics`). */
export const CONSENT_CATEGORY = "consent_category";

/** The type name a Yes/No constituent custom field has as a topic construct: "Yes" is an opt-out. */
export const CUSTOM_FIELD = "custom_field";

/** The observed scope of an opt-out custom field: its category. */
export const customFieldScope = (category: string): ObservedScope => constructScope(CUSTOM_FIELD, category);

/** The observed scope of a consent record: its category, or all email when it has none. */
export const categoryScope = (category: string | null | undefined): ObservedScope =>
  category ? constructScope(CONSENT_CATEGORY, category) : GLOBAL_OBSERVED;

/** The addresses as SKY holds them: the full list when read, else the constituent's primary. */
function addressesOf(
  constituent: Constituent,
  addresses: readonly EmailAddress[] | undefined,
): EmailAddress[] {
  return [...(addresses ?? (constituent.email ? [constituent.email] : []))];
}

export function toExternalEmails(
  constituent: Constituent,
  addresses: readonly EmailAddress[] | undefined,
): ExternalEmail[] {
  return addressesOf(constituent, addresses).map((e) => ({
    address: e.address,
    primary: e.primary,
    ...(e.id ? { external_id: e.id } : {}),
    inactive: e.inactive,
  }));
}

/** The newest record per (channel, category), ordered by consent_date then date_added then id. */
export function latestConsents(records: readonly ConsentRecord[]): Map<string, ConsentRecord> {
  const latest = new Map<string, ConsentRecord>();
  for (const r of [...records].sort(compareConsent)) latest.set(consentKey(r.channel, r.category), r);
  return latest;
}

export const consentKey = (channel: string, category: string | null | undefined): string =>
  `${channel.trim().toLowerCase()}|${(category ?? "").trim().toLowerCase()}`;

function compareConsent(a: ConsentRecord, b: ConsentRecord): number {
  return (
    Date.parse(a.consent_date) - Date.parse(b.consent_date) ||
    Date.parse(a.date_added ?? "") - Date.parse(b.date_added ?? "") ||
    a.id.localeCompare(b.id, "en", { numeric: true })
  );
}

/** The parts of a constituent read in calls of their own: the record, and what it does not carry. */
export const DETAIL_PARTS = [
  "record",
  "emails",
  "consents",
  "relationships",
  "custom_fields",
  "latest_gift",
  "solicit_codes",
] as const;
export type DetailPart = (typeof DETAIL_PARTS)[number];

/** What each part, left unread, leaves to the last snapshot: record properties and consent facts by source. */
const UNREAD: Record<DetailPart, Omit<UnreadParts, "fact_order">> = {
  // The record itself (`GET /constituents/{id}`; a list item has no requests_no_email): all it gives.
  record: {
    properties: [
      "kind",
      "first_name",
      "last_name",
      "organisation_name",
      "fields",
      "inactive",
      "deceased",
      "updated_at",
      "version",
    ],
    consent_sources: ["requests_no_email"],
  },
  emails: { properties: ["emails"], consent_sources: ["emailaddress:"] },
  consents: { properties: [], consent_sources: ["consent_record"] },
  relationships: { properties: ["organisation_external_id"], consent_sources: [] },
  custom_fields: { properties: [], consent_sources: ["customfield:"] },
  latest_gift: { properties: ["consent_grounds"], consent_sources: [] },
  solicit_codes: { properties: ["do_not_contact"], consent_sources: ["solicitcode:"] },
};

/** The order `consentFacts` lists a constituent's facts in, by source. */
const FACT_ORDER = ["solicitcode:", "requests_no_email", "emailaddress:", "customfield:", "consent_record"];

/**
 * A record read in part keeps the version it was last read whole at: what it did not read may have
 * changed with the newer date_modified (an email event that never arrived), so the next poll reads
 * it whole rather than in part.
 */
const unreadParts = (parts: readonly DetailPart[]): UnreadParts => ({
  properties: [...new Set(["version" as const, ...parts.flatMap((p) => UNREAD[p].properties)])],
  consent_sources: [...new Set(parts.flatMap((p) => UNREAD[p].consent_sources))],
  fact_order: FACT_ORDER,
});

export type ConstituentDetail = {
  constituent: Constituent;
  /** All the constituent's email addresses, when read; else only its primary `email` is known. */
  emails?: readonly EmailAddress[];
  consents?: readonly ConsentRecord[];
  relationships?: readonly Relationship[];
  list_ids?: readonly string[];
  /**
   * The Yes/No custom fields topics stand for (an organisation's own opt-out checkbox), one entry per
   * configured category: the constituent's field, or none when it has no value in that category.
   */
  opt_out_fields?: readonly { category: string; field?: CustomField }[];
  /**
   * The opt-out solicit codes the tenant's table has (connection option `opt_out_solicit_codes`),
   * and those of them the constituent holds; absent when none are configured or in the table.
   */
  opt_out_codes?: { codes: readonly string[]; held: readonly ConstituentSolicitCode[]; read_at: string };
  /** The latest gift, when the connection reads it (`read.latest_gift`) and the constituent has one. */
  latest_gift?: LatestGift;
  /** The parts a partial re-read (after a webhook) left out; they keep their last known values. */
  unread?: readonly DetailPart[];
  /**
   * Addresses or relationships came from SKY's all-constituents lists, which lag behind writes: the
   * record gets no version, so the next incremental read reads it whole from current records.
   */
  from_lagging_lists?: true;
};

/** A time as SKY gives it (an offset or none: UTC), in ms; NaN for one blank or unreadable. */
const instant = (value: string | null | undefined): number => {
  const at = readDate(value);
  return at === undefined ? Number.NaN : Date.parse(at);
};

/** Whether a constituent's solicit code is in force at `at`: started, and not ended. */
export function solicitCodeActive(code: ConstituentSolicitCode, at: number): boolean {
  if (code.start_date && instant(code.start_date) > at) return false;
  if (code.end_date && instant(code.end_date) <= at) return false;
  return true;
}

/**
 * The consent a constituent shows now, as typed facts:
 * - "Requests No Email" (a state SKY keeps no history of, so a cleared flag is seen only against the
 *   last snapshot: `unversioned`);
 * - the primary address's "Do not email" (the same);
 * - per consent category, its newest consent record (what RE NXT acts on for that category);
 * - the newest channel-wide consent record, a record beside the flag (not what RE NXT acts on).
 */
export function consentFacts(detail: ConstituentDetail): ConsentFact[] {
  const c = detail.constituent;
  const facts: ConsentFact[] = [];
  const now = Date.parse(detail.opt_out_codes?.read_at ?? "");
  for (const code of detail.opt_out_codes?.codes ?? []) {
    const mine = (detail.opt_out_codes?.held ?? []).filter(
      (h) => h.solicit_code.trim().toLowerCase() === code.trim().toLowerCase(),
    );
    const held = mine.some((h) => solicitCodeActive(h, now));
    // Since when: the newest start of a code in force; else the newest end of one that ended (a
    // code removed outright leaves no date: the engine uses when it saw the change).
    const newest = (dates: (string | null | undefined)[]): string | undefined =>
      dates
        .map(readDate)
        .filter((d): d is string => d !== undefined && Date.parse(d) <= now)
        .sort((a, b) => Date.parse(a) - Date.parse(b))
        .at(-1);
    const at = held
      ? newest(mine.filter((h) => solicitCodeActive(h, now)).map(codeInForceSince))
      : newest(mine.map((h) => h.end_date));
    facts.push({
      channel: "email",
      scope: GLOBAL_OBSERVED,
      status: held ? "opted_out" : "none",
      // A code ended or removed is seen only against the last snapshot: a request to resubscribe.
      source: `solicitcode:${code.toLowerCase()}`,
      label: `Solicit code "${code}": ${held ? "on the constituent" : "not held"}`,
      role: "state",
      unversioned: true,
      ...atOf(at),
    });
  }
  if (c.requests_no_email !== undefined)
    facts.push({
      channel: "email",
      scope: GLOBAL_OBSERVED,
      status: c.requests_no_email ? "opted_out" : "none",
      source: "requests_no_email",
      label: `Requests No Email: ${c.requests_no_email ? "yes" : "no"}`,
      role: "state",
      unversioned: true,
    });
  const primary = primaryAddress(detail);
  if (primary && primary.do_not_email !== undefined)
    facts.push({
      channel: "email",
      scope: GLOBAL_OBSERVED,
      status: primary.do_not_email ? "opted_out" : "none",
      source: `emailaddress:${primary.id ?? primary.address}.do_not_email`,
      label: `Do not email on ${primary.address}: ${primary.do_not_email ? "yes" : "no"}`,
      role: "state",
      unversioned: true,
    });
  for (const { category, field } of detail.opt_out_fields ?? []) {
    const yes = isTicked(field?.value);
    facts.push({
      channel: "email",
      scope: customFieldScope(category),
      status: yes ? "opted_out" : "none",
      // By category, not by field id: a field deleted after "Yes" reads as cleared.
      source: `customfield:${category}`,
      label: `${category}: ${yes ? "Yes" : field ? "No" : "not set"}`,
      role: "state",
      unversioned: true,
      ...atOf(field?.date_modified),
    });
  }
  for (const r of latestConsents(detail.consents ?? []).values()) {
    const channel = channelOf(r.channel);
    if (!channel || r.constituent_consent_response === "NoResponse") continue;
    facts.push({
      channel,
      scope: categoryScope(r.category),
      status: r.constituent_consent_response === "OptOut" ? "opted_out" : "opted_in",
      source: "consent_record",
      label: `${r.channel} consent, ${r.category ? `category "${r.category}"` : "all categories"}: ${r.constituent_consent_response}`,
      role: r.category ? "state" : "record",
      ...atOf(r.consent_date),
    });
  }
  return facts;
}

/** Whether an opt-out solicit code (connection option `opt_out_solicit_codes`) is in force on the constituent. */
const doNotContact = (detail: ConstituentDetail): boolean =>
  (detail.opt_out_codes?.held ?? []).some((h) =>
    solicitCodeActive(h, Date.parse(detail.opt_out_codes?.read_at ?? "")),
  );

/** The canonical record: profile fields of the manifest's catalogue, and consent as typed facts. */
export function toExternalRecord(detail: ConstituentDetail): ExternalRecord {
  const c = detail.constituent;
  const emails = toExternalEmails(c, detail.emails);
  const fields: Record<string, string | null> = { type: c.type };
  for (const name of READ_FIELDS) fields[name] = c[name] ?? null;
  // The preferred address and the primary phone, as the constituent carries them (no extra call).
  for (const part of ADDRESS_FIELDS) fields[part] = c.address?.[part] ?? null;
  fields["phone"] = c.phone?.number ?? null;
  const organisation =
    c.type === "Individual"
      ? detail.relationships?.find((r) => r.is_organization_contact && r.relation_id)?.relation_id
      : undefined;
  return {
    external_id: c.id,
    kind: c.type === "Organization" ? "organisation" : "individual",
    emails,
    ...(c.type === "Organization"
      ? { organisation_name: c.name ?? null }
      : { first_name: c.first ?? null, last_name: c.last ?? null }),
    fields,
    consent_state: consentFacts(detail),
    ...(detail.list_ids ? { list_ids: [...detail.list_ids] } : {}),
    inactive: c.inactive ?? false,
    deceased: c.deceased ?? false,
    ...(doNotContact(detail) ? { do_not_contact: true } : {}),
    ...(giftGround(detail.latest_gift) ?? {}),
    ...(organisation ? { organisation_external_id: organisation } : {}),
    updated_at: readDate(c.date_modified) ?? NO_TIME,
    ...(detail.from_lagging_lists ? {} : { version: c.date_modified.trim() }),
    ...unreadOf(detail),
  };
}

/** The active primary address, whose Do Not Email is the constituent's address-level opt-out. */
const primaryAddress = (detail: ConstituentDetail): EmailAddress | undefined =>
  addressesOf(detail.constituent, detail.emails).find((e) => e.primary && !e.inactive);

/**
 * What the read left to the last snapshot: the parts a partial re-read did not read, and a primary
 * address's Do Not Email when SKY sent the address without it (optional in EmailAddressRead).
 */
function unreadOf(detail: ConstituentDetail): { unread?: UnreadParts } {
  const primary = primaryAddress(detail);
  const silent =
    primary !== undefined && primary.do_not_email === undefined
      ? [`emailaddress:${primary.id ?? primary.address}.do_not_email`]
      : [];
  const parts = detail.unread ?? [];
  if (parts.length === 0 && silent.length === 0) return {};
  const read = unreadParts(parts);
  return {
    unread: {
      ...read,
      // Read whole but for that flag: the record keeps its new version.
      properties: parts.length === 0 ? [] : read.properties,
      consent_sources: [...read.consent_sources, ...silent],
    },
  };
}

/** The latest gift as the ground of implied consent from a donation; gift dates carry no offset (tenant time, read as UTC). */
function giftGround(gift: LatestGift | undefined): Pick<ExternalRecord, "consent_grounds"> | undefined {
  const at = readDate(gift?.date);
  if (gift === undefined || at === undefined) return undefined;
  return { consent_grounds: [{ kind: "donation", at, ...(gift.id ? { ref: `gift:${gift.id}` } : {}) }] };
}

/** A constituent that SKY no longer returns (404 or a delete event). */
export function deletedRecord(externalId: string, at: string): ExternalRecord {
  return {
    external_id: externalId,
    kind: "individual",
    emails: [],
    fields: {},
    consent_state: [],
    deleted: true,
    updated_at: at,
  };
}

/**
 * The consent facts one constituent shows, each with who acted and the evidence:
 * - `requests_no_email: true` → a global opt-out. SKY keeps no history or author for the flag, so it is
 *   the account's `admin_edit` unless the newest channel-wide Email consent record is an OptOut whose
 *   source says otherwise; its time is that record's consent_date, else the constituent's date_modified.
 * - an address's `do_not_email` → a global opt-out for that address (the account's admin edit).
 * - every Email/SMS consent record (the full history) → opt_out / opt_in in its category, or global
 *   when the record has no category. An OptIn is the contact's only when its source names the person's
 *   own act; otherwise it is a `resubscribe_requested` by the account: a staff-entered opt-in is a
 *   request, never a qualifying opt-in (DESIGN.md §2 rule 3).
 * A cleared flag yields nothing here (we cannot see that it changed); the record's consent facts
 * carry the current value and the engine compares them with its snapshot.
 */
export function consentObservations(
  detail: ConstituentDetail,
  /** When Concord read it: the time of an opt-out whose own time cannot be read (never 1970). */
  observed_at: string = new Date().toISOString(),
): ConsentObservation[] {
  const c = detail.constituent;
  const emails = toExternalEmails(c, detail.emails);
  const email = primaryEmail(emails);
  const records = [...(detail.consents ?? [])].sort(compareConsent);
  const out: ConsentObservation[] = [];
  // An opt-out SKY gave no readable time for is dated when Concord saw it (`time_unknown`).
  const dated = (at: string | undefined) =>
    at !== undefined ? { occurred_at: at } : { occurred_at: observed_at, time_unknown: true as const };

  if (c.requests_no_email === true) {
    // The newest channel-wide email record, whatever the tenant calls the channel ("E-mail").
    const latestGlobal = records.filter((r) => channelOf(r.channel) === "email" && !r.category).at(-1);
    const backing = latestGlobal?.constituent_consent_response === "OptOut" ? latestGlobal : undefined;
    const fromSource = backing ? recordProvenance(backing) : undefined;
    out.push({
      external_id: c.id,
      email,
      channel: "email",
      kind: "opt_out",
      scope: { kind: "global" },
      mechanism: fromSource?.mechanism ?? "admin_edit",
      actor: fromSource?.actor ?? { kind: "account" },
      occurred_at: firstDate(backing?.consent_date, c.date_modified) ?? observed_at,
      // Without a record to date it, the flag's moment is a bound (the last save of the constituent),
      // which every later save moves: it is the act already recorded while the constituent's last
      // word on all email is this opt-out, not a new opt-out at each save.
      ...(backing && readDate(backing.consent_date) !== undefined ? {} : { time_unknown: true as const }),
      evidence: {
        reason: "Requests no email is set on the constituent",
        source_record_id: backing ? backing.id : `constituent:${c.id}`,
      },
    });
  }

  for (const e of addressesOf(c, detail.emails)) {
    if (!e.do_not_email) continue;
    out.push({
      external_id: c.id,
      email: e.address,
      channel: "email",
      kind: "opt_out",
      scope: { kind: "global" },
      mechanism: "admin_edit",
      actor: { kind: "account" },
      ...dated(firstDate(e.date_modified, c.date_modified)),
      evidence: {
        reason: "Do not email is set on this email address",
        source_record_id: `emailaddress:${e.id ?? e.address}`,
      },
    });
  }

  for (const code of detail.opt_out_codes?.held ?? []) {
    if (!solicitCodeActive(code, Date.parse(detail.opt_out_codes?.read_at ?? ""))) continue;
    out.push({
      external_id: c.id,
      email,
      channel: "email",
      kind: "opt_out",
      scope: { kind: "global" },
      mechanism: "admin_edit",
      actor: { kind: "account" },
      ...dated(codeInForceSince(code) ?? readDate(c.date_modified)),
      evidence: {
        reason: `The solicit code "${code.solicit_code}" is on the constituent (connection option opt_out_solicit_codes)`,
        source_record_id: `solicitcode:${code.id}`,
      },
    });
  }

  for (const { category, field } of detail.opt_out_fields ?? []) {
    if (field === undefined || !isTicked(field.value)) continue;
    // SKY keeps no author for a custom field: the account's edit at the field's last change, or
    // Concord's own sync when its comment says so.
    const ours = field.comment?.startsWith(CONCORD_STATEMENT_PREFIX) === true;
    out.push({
      external_id: c.id,
      email,
      channel: "email",
      kind: "opt_out",
      scope: customFieldScope(category),
      mechanism: ours ? "sync" : "admin_edit",
      actor: ours ? { kind: "platform" } : { kind: "account" },
      ...dated(firstDate(field.date_modified, c.date_modified)),
      evidence: {
        reason: `The custom field "${category}" is Yes on the constituent`,
        source_record_id: `customfield:${field.id}`,
      },
    });
  }

  for (const r of records) {
    const channel = channelOf(r.channel);
    if (!channel || r.constituent_consent_response === "NoResponse") continue;
    const scope = categoryScope(r.category);
    const prov = recordProvenance(r);
    const evidence = recordEvidence(r);
    const at = readDate(r.consent_date);
    // A record whose date cannot be read is placed nowhere: an opt-out is dated when seen, and an
    // opt-in or a request, which could lift an opt-out made after it, is left out.
    if (at === undefined && r.constituent_consent_response !== "OptOut") continue;
    const base = {
      external_id: c.id,
      email,
      channel,
      scope,
      ...dated(at),
      evidence,
    };
    if (r.constituent_consent_response === "OptOut") {
      // An opt-out whose source says nothing is filed as the person's: a consent record is by definition
      // the constituent's response, and attributing it to the account would let the account undo it.
      out.push({
        ...base,
        kind: "opt_out",
        mechanism: prov?.mechanism ?? "unknown",
        actor: prov?.actor ?? { kind: "contact" },
      });
    } else if (prov?.actor.kind === "contact" || prov?.actor.kind === "platform") {
      out.push({ ...base, kind: "opt_in", basis: "express", mechanism: prov.mechanism, actor: prov.actor });
    } else {
      out.push({
        ...base,
        kind: "resubscribe_requested",
        mechanism: prov?.mechanism ?? "admin_edit",
        actor: prov?.actor ?? accountActor(r.user_name),
      });
    }
  }
  return out;
}

function recordProvenance(r: ConsentRecord): Provenance | undefined {
  if (r.consent_statement?.startsWith(CONCORD_STATEMENT_PREFIX))
    return { mechanism: "sync", actor: { kind: "platform" } };
  return provenanceOfSource(
    r.source,
    r.user_name,
    r.constituent_consent_response === "OptIn" ? "OptIn" : "OptOut",
  );
}

function recordEvidence(r: ConsentRecord): Evidence {
  const evidence: Evidence = { source_record_id: r.id };
  const wording = clip(r.consent_statement);
  if (wording) evidence.form_wording = wording;
  const notice = clip(r.privacy_notice);
  if (notice) evidence.privacy_notice = notice;
  const why = [r.source ? `source: ${r.source}` : "", r.user_name ? `added by: ${r.user_name}` : ""]
    .filter((s) => s !== "")
    .join("; ");
  if (why) evidence.reason = why.slice(0, 1000);
  return evidence;
}

// ------------------------------------------------------------------ requests we build

type ConsentOp = Extract<ConnectorOperation, { kind: "record_opt_out" | "record_opt_in" }>;

/** The comment Concord writes on an opt-out custom field (SKY allows 50 characters): who set it, from where. */
export function customFieldComment(op: ConsentOp): string {
  const what = op.kind === "record_opt_out" ? "opt-out" : "opt-in";
  return `${CONCORD_STATEMENT_PREFIX} ${what} from ${op.origin.connection}`.slice(0, 50);
}

/** The statement written with every consent record Concord adds: who, where from, how, and why. */
export function consentStatement(op: ConsentOp): string {
  const o = op.origin;
  const act = op.kind === "record_opt_out" ? "Opt-out" : "Opt-in";
  const who =
    op.kind === "record_opt_out"
      ? ` initiated by the ${op.initiated_by}`
      : op.origin.actor !== undefined
        ? ` by the ${op.origin.actor}`
        : "";
  const parts = [
    `${CONCORD_STATEMENT_PREFIX} ${act} recorded by Concord from ${o.system} (connection ${o.connection}) via ${o.mechanism}${who} at ${op.occurred_at}.`,
    op.kind === "record_opt_out" && op.reason ? `Reason: ${op.reason}.` : "",
    o.statement ? `Statement: ${o.statement}` : "",
  ];
  return parts
    .filter((p) => p !== "")
    .join(" ")
    .slice(0, STATEMENT_MAX);
}

/** The consent record for an operation; a global scope is a channel-wide record (no category). */
export function consentAddBody(
  op: ConsentOp,
  options: { channel: string; source?: string | undefined },
): ConsentAddBody {
  return {
    constituent_id: op.external_id,
    channel: options.channel,
    ...(op.scope.kind === "construct" ? { category: op.scope.construct.id } : {}),
    ...(options.source ? { source: options.source } : {}),
    constituent_consent_response: op.kind === "record_opt_out" ? "OptOut" : "OptIn",
    consent_date: op.occurred_at,
    consent_statement: consentStatement(op),
  };
}

/** Canonical field names Concord may write, by the ConstituentEdit property they land on. */
const EDITABLE_FIELDS: Record<string, Exclude<keyof ConstituentEditBody, "requests_no_email">> = {
  lookup_id: "lookup_id",
  preferred_name: "preferred_name",
  middle: "middle",
  former_name: "former_name",
  suffix: "suffix",
  title: "title",
  name: "name",
};

/** Constituent fields a record carries for field mappings (the manifest's catalogue, beyond the name slots). */
const READ_FIELDS = [
  "lookup_id",
  "middle",
  "preferred_name",
  "former_name",
  "suffix",
  "title",
  "name",
  "gender",
] as const;

/** The preferred address's parts, as fields of the constituent. */
export const ADDRESS_FIELDS = ["address_lines", "city", "state", "postal_code", "country"] as const;
export type AddressField = (typeof ADDRESS_FIELDS)[number];

export type EditBuild = {
  body: ConstituentEditBody;
  /** Parts of the preferred address to write (PATCH /addresses/{id}, or a new preferred address). */
  address: Partial<Record<AddressField, string | null>>;
  /** The primary phone's number to write, when the update names it. */
  phone?: string | null;
  rejected: string[];
};

/** The PATCH body for update_contact; fields RE NXT cannot take this way are returned, not dropped. */
export function constituentEditBody(op: Extract<ConnectorOperation, { kind: "update_contact" }>): EditBuild {
  const body: ConstituentEditBody = {};
  const address: EditBuild["address"] = {};
  let phone: string | null | undefined;
  const rejected: string[] = [];
  if (op.first_name !== undefined) body.first = op.first_name ?? "";
  if (op.last_name !== undefined) body.last = op.last_name ?? "";
  for (const [key, value] of Object.entries(op.fields ?? {})) {
    if ((ADDRESS_FIELDS as readonly string[]).includes(key)) {
      address[key as AddressField] = value;
      continue;
    }
    if (key === "phone") {
      phone = value;
      continue;
    }
    const target = EDITABLE_FIELDS[key];
    if (!target) rejected.push(key);
    else body[target] = value ?? "";
  }
  return { body, address, ...(phone !== undefined ? { phone } : {}), rejected };
}

export function constituentAddBody(
  op: Extract<ConnectorOperation, { kind: "create_contact" }>,
  emailType: string,
): ConstituentAddBody {
  const email = {
    address: op.email.trim(),
    type: emailType,
    primary: true,
    do_not_email: false,
    inactive: false,
  };
  if (op.kind_of_record === "organisation") {
    const name = [op.first_name, op.last_name].filter((s) => s).join(" ") || op.email;
    return { type: "Organization", name, email };
  }
  return {
    type: "Individual",
    ...(op.first_name ? { first: op.first_name } : {}),
    // SKY requires a last name for individuals; the address keeps the record identifiable.
    last: op.last_name && op.last_name.trim() !== "" ? op.last_name : op.email.trim(),
    email,
  };
}

// ------------------------------------------------------------------ webhook events

const EVENT_PREFIX = "com.blackbaud.constituent.";

/**
 * The parts of a constituent event's type after `com.blackbaud.constituent.`: `["change", "v1"]`,
 * `["emailaddress", "add", "v1"]`; undefined for other types.
 */
export function constituentEventParts(type: string): string[] | undefined {
  return type.startsWith(EVENT_PREFIX) ? type.slice(EVENT_PREFIX.length).split(".") : undefined;
}

/** What a CloudEvent type means for a re-read; undefined for types that do not concern constituents. */
export function webhookChangeKind(type: string): WebhookChange["change"] | undefined {
  if (type === "com.blackbaud.utility.testpayload.v1") return "test";
  const rest = constituentEventParts(type);
  if (rest === undefined) return undefined;
  const [first, second] = rest;
  if (rest.length === 2 && first === "delete") return "deleted";
  if (rest.length === 2) return "changed";
  if (first === "emailaddress" || first === "email") return "email_changed";
  if (first === "solicitcode" || first === "consent" || first === "communicationpreference")
    return "consent_changed";
  return second ? "changed" : undefined;
}
