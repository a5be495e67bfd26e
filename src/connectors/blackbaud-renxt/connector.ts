/**
 * The Raiser's Edge NXT connector: declares what SKY allows (limits, category-scoped consent) and
 * reads constituents, their email addresses, consent history and list memberships incrementally, and
 * applies Concord's operations as constituent edits and appended consent records.
 */
import type {
  Checkpoint,
  ConnectionSettings,
  ConnectorError,
  ConnectorLimits,
  ConnectorOperation,
  ConnectorResult,
  ConnectorRuntime,
  ConnectorSession,
  ConsentObservation,
  ExternalRecord,
  GetOptions,
  RecordsWithConsent,
  OperationOutcome,
  ReadOptions,
  ReadPage,
  WebhookChange,
} from "../connector";
import { sameEmail } from "../../core/identity/normalise-email";
import { err, ok } from "../../core/result";
import {
  applyConsentFirst,
  consentWriteRefusal,
  failureOf,
  isDeferrable,
  optedOutSinceRead,
  succeeded,
  type Outcome,
} from "../kit/apply-policy";
import { createWatermark, firstSeen, overlapSecondsOption, readStart } from "../kit/incremental-read";
import { createBlackbaudClient, type BlackbaudClient } from "./client";
import {
  CONSENT_CATEGORY,
  consentAddBody,
  consentKey,
  consentObservations,
  consentStatement,
  constituentAddBody,
  constituentEventParts,
  CUSTOM_FIELD,
  customFieldComment,
  constituentEditBody,
  deletedRecord,
  latestConsents,
  toExternalRecord,
  readDate,
  DETAIL_PARTS,
  isTicked,
  type ConstituentDetail,
  type DetailPart,
} from "./mapping";
import { z } from "zod";
import type { CallPriority } from "../http/rate-limiter";
import type { Constituent, CustomField, EmailAddress, Relationship } from "./schemas";

/** The opt-out solicit codes assumed when the config names none: likely names, not checked. */
const LIKELY_OPT_OUT_CODES = ["Do not contact", "Do not email"] as const;

/** `connections[].options` of a Raiser's Edge NXT connection (the manifest declares this schema). */
export const BlackbaudRenxtOptionsSchema = z.strictObject({
  /** Constituents per page (SKY's maximum is 5,000). */
  page_size: z.number().int().min(1).max(5000).default(5000),
  /** How far before the checkpoint an incremental read starts, to catch late-committed changes. */
  overlap_seconds: overlapSecondsOption(600),
  /** The consent channel written for email consent (an entry of the Consent Channels table). */
  consent_channel: z.string().trim().min(1).max(100).default("Email"),
  /** A Consent Sources table entry to put in `source` of records Concord writes; none when unset. */
  consent_source: z.string().trim().min(1).max(100).optional(),
  /** The Email Address Types entry used for new addresses. */
  email_type: z.string().trim().min(1).max(100).default("Email"),
  /** The Address Types entry for a preferred address Concord adds (when the constituent has none). */
  address_type: z.string().trim().min(1).max(100).default("Home"),
  /** The Phone Types entry for a primary phone Concord adds (when the constituent has none). */
  phone_type: z.string().trim().min(1).max(100).default("Home"),
  /** Reads per constituent beyond the list page; each costs one call per constituent. */
  read: z
    .strictObject({
      email_addresses: z.boolean().default(true),
      consents: z.boolean().default(true),
      relationships: z.boolean().default(true),
      /**
       * The latest gift's date (the giving summary), which grounds implied consent from a donation
       * under the config's `compliance.implied_consent` rules (CASL). Off by default: one call more
       * per constituent read.
       */
      latest_gift: z.boolean().default(false),
    })
    .prefault({}),
  /**
   * Solicit codes that mean "no email at all" (an entry of the tenant's Solicit Codes table, by
   * description): an active one on a constituent is a global opt-out. Codes the table does not have
   * are ignored, and when it has none of them no constituent's codes are read.
   */
  opt_out_solicit_codes: z
    .array(z.string().trim().min(1).max(100))
    .max(50)
    .default([...LIKELY_OPT_OUT_CODES]),
  /** Parallel enrichment calls (the call budget still caps calls per second and in flight). */
  concurrency: z.number().int().min(1).max(16).default(4),
});
export type BlackbaudRenxtOptions = z.infer<typeof BlackbaudRenxtOptionsSchema>;

/** reference/apis.md §3.1: 5 calls a second (2018 docs; the current rate is unpublished) and 25,000 a day (Customer tier). */
export const BLACKBAUD_LIMITS: ConnectorLimits = {
  requests_per_second: 5,
  daily_quota: { calls: 25_000, reset: "rolling_24h" },
  max_concurrency: 4,
  batch: { read_page: 5000, membership_ids: 100_000, membership_lists: 1 },
};

const sameCode = (a: string, b: string): boolean => a.trim().toLowerCase() === b.trim().toLowerCase();
const STREAM = "constituents";
/** SKY's all-constituents lists lag about 30 minutes behind writes (reference/apis.md §3): read 45 back. */
const ALL_CONSTITUENTS_LIST_LAG_MS = 45 * 60_000;
/**
 * A full read's page of at least this many constituents reads email addresses and relationships
 * from the all-constituents lists; below it a call per constituent costs about what the re-read
 * after the lists' lag would, and reads current records.
 */
const ALL_CONSTITUENTS_LISTS_FROM = 50;
/** Constituent ids per call of the all-constituents email list (about 2.5 KB of query string). */
const EMAIL_IDS_PER_CALL = 100;
/** Older than any RE NXT record: a full read still filters by last_modified to get stable paging. */
const EPOCH = "1900-01-01T00:00:00.000Z";

type Resolved = BlackbaudRenxtOptions & { overlap_ms: number };

/**
 * What a webhook's event can have touched beyond the constituent record, which is always read.
 * `constituent.add`/`change` is raised by the record's own fields, its preferred address and
 * primary phone, and the "Requests no email" code behind `requests_no_email` (QUIRKS.md); its
 * consent records are read too, as they say who asked for no email. Address and phone events touch
 * the record itself; email address events the addresses; solicit code and consent events the codes
 * and consent records; relationship events the relationships. Any other event reads everything.
 */
function partsOfChange(change: WebhookChange): readonly DetailPart[] {
  if (change.change === "email_changed") return ["emails"];
  if (change.change === "consent_changed") return ["consents", "solicit_codes"];
  if (change.change !== "changed") return DETAIL_PARTS;
  const [kind] = constituentEventParts(change.type) ?? [];
  if (kind === "add" || kind === "change") return ["consents"];
  if (kind === "address" || kind === "phone") return [];
  if (kind === "relationship") return ["relationships"];
  return DETAIL_PARTS;
}

/**
 * What an incremental read reads of a constituent Concord holds at its current date_modified: the
 * consent records and solicit codes, which change without moving it (QUIRKS.md); the record, its
 * addresses and the rest are as stored. Opt-out custom fields have a pass of their own.
 */
const UNMOVED_PARTS: ReadonlySet<DetailPart> = new Set(["consents", "solicit_codes"]);

/** The parts a re-read after these events reads; undefined (everything) when nothing was said. */
const partsFor = (changes: readonly WebhookChange[] | undefined): ReadonlySet<DetailPart> | undefined =>
  changes === undefined ? undefined : new Set(changes.flatMap(partsOfChange));

/** What a page's constituents were read with in bulk: list memberships, email addresses, relationships. */
type Known = {
  lists?: Map<string, string[]>;
  emails?: Map<string, EmailAddress[]>;
  organisation_contacts?: Map<string, Relationship[]>;
};

/** A session with one Raiser's Edge NXT environment (the manifest's `connect`). */
export function createBlackbaudRenxtSession(
  settings: ConnectionSettings,
  runtime: ConnectorRuntime,
): ConnectorSession {
  const options = BlackbaudRenxtOptionsSchema.parse(settings.options ?? {});
  return createSession(settings, runtime, { ...options, overlap_ms: options.overlap_seconds * 1000 });
}

function createSession(
  settings: ConnectionSettings,
  runtime: ConnectorRuntime,
  opts: Resolved,
): ConnectorSession {
  const client = createBlackbaudClient({ settings, runtime, limits: BLACKBAUD_LIMITS });
  /** Whether the config names the opt-out solicit codes (the default names are only likely ones). */
  const codesNamed =
    opts.opt_out_solicit_codes.length !== LIKELY_OPT_OUT_CODES.length ||
    opts.opt_out_solicit_codes.some((code, i) => code !== LIKELY_OPT_OUT_CODES[i]);
  /** The Yes/No custom fields topics stand for: read with every constituent, written for opt-outs. */
  const optOutCategories = [
    ...new Set(
      (settings.constructs ?? [])
        .filter((c) => c.type === CUSTOM_FIELD)
        .map((c) => c.name ?? c.id ?? "")
        .filter((name) => name !== ""),
    ),
  ];
  const pageSize = Math.min(5000, Math.max(1, settings.page_size ?? opts.page_size));
  /**
   * The configured opt-out solicit codes the tenant's table has, asked once per session: a tenant
   * without any of them pays no call per constituent for them.
   */
  let optOutCodes: Promise<ConnectorResult<string[]>> | undefined;
  const activeOptOutCodes = (): Promise<ConnectorResult<string[]>> => {
    if (opts.opt_out_solicit_codes.length === 0) return Promise.resolve(ok([]));
    optOutCodes ??= client.solicitCodeTable().then((table) => {
      if (!table.ok) {
        optOutCodes = undefined; // asked again next time
        return table;
      }
      // An entry retired from the table (inactive) is still on the constituents who hold it, and
      // still says not to email them.
      const known = new Map(table.value.map((t) => [t.description.trim().toLowerCase(), t.description]));
      return ok(opts.opt_out_solicit_codes.flatMap((code) => known.get(code.toLowerCase()) ?? []));
    });
    return optOutCodes;
  };
  const nowIso = (): string => runtime.now().toISOString();

  /**
   * Fetches what one list page does not carry; the list item has no requests_no_email. What
   * `known` holds (read for a whole page from the all-constituents lists) costs no call here.
   */
  const enrich = async (
    constituent: Constituent,
    priority: CallPriority,
    known: Known,
    parts?: ReadonlySet<DetailPart>,
  ): Promise<ConnectorResult<ConstituentDetail | null>> => {
    const unread: DetailPart[] = [];
    /** Whether to read a part the options ask for; one a partial read leaves out is noted. */
    const reads = (part: DetailPart): boolean => {
      if (parts === undefined || parts.has(part)) return true;
      unread.push(part);
      return false;
    };
    let c = constituent;
    if (c.requests_no_email === undefined && reads("record")) {
      const full = await client.getConstituent(c.id, priority);
      if (!full.ok) return full;
      if (!full.value) return ok(null);
      c = full.value;
    }
    const detail: ConstituentDetail = { constituent: c };
    if (opts.read.email_addresses && reads("emails")) {
      if (known.emails) detail.emails = known.emails.get(c.id) ?? [];
      else {
        const emails = await client.listEmailAddresses(c.id, priority);
        if (!emails.ok) return emails;
        detail.emails = emails.value;
      }
    }
    if (opts.read.consents && reads("consents")) {
      const consents = await client.listConsents(c.id, false, priority);
      if (!consents.ok) return consents;
      detail.consents = consents.value;
    }
    if (opts.read.relationships && c.type === "Individual" && reads("relationships")) {
      if (known.organisation_contacts) detail.relationships = known.organisation_contacts.get(c.id) ?? [];
      else {
        const rel = await client.listRelationships(c.id, priority);
        if (!rel.ok) return rel;
        detail.relationships = rel.value;
      }
    }
    if (optOutCategories.length > 0 && reads("custom_fields")) {
      const fields = await client.listCustomFields(c.id, priority);
      if (!fields.ok) return fields;
      detail.opt_out_fields = optOutCategories.map((category) => {
        const field = newestField(fields.value, category);
        return field ? { category, field } : { category };
      });
    }
    if (opts.read.latest_gift && reads("latest_gift")) {
      const gift = await client.latestGift(c.id, priority);
      if (!gift.ok) return gift;
      if (gift.value) detail.latest_gift = gift.value;
    }
    const codes =
      opts.opt_out_solicit_codes.length > 0 && reads("solicit_codes") ? await activeOptOutCodes() : ok([]);
    if (!codes.ok) return codes;
    if (codes.value.length > 0) {
      const held = await client.listSolicitCodes(c.id, priority);
      if (!held.ok) return held;
      detail.opt_out_codes = {
        codes: codes.value,
        held: held.value.filter((h) => codes.value.some((code) => sameCode(code, h.solicit_code))),
        read_at: nowIso(),
      };
    }
    if (known.lists) detail.list_ids = known.lists.get(c.id) ?? [];
    if (unread.length > 0) detail.unread = unread;
    if ((known.emails && detail.emails) || (known.organisation_contacts && detail.relationships))
      detail.from_lagging_lists = true;
    return ok(detail);
  };

  const enrichAll = async (
    constituents: readonly Constituent[],
    priority: CallPriority,
    knownOf: (c: Constituent) => Known,
    partsOf: (c: Constituent) => ReadonlySet<DetailPart> | undefined = () => undefined,
  ): Promise<ConnectorResult<ConstituentDetail[]>> => {
    const results: (ConstituentDetail | null)[] = new Array<ConstituentDetail | null>(
      constituents.length,
    ).fill(null);
    let failure: ConnectorError | undefined;
    let next = 0;
    const worker = async (): Promise<void> => {
      while (failure === undefined && next < constituents.length) {
        const i = next++;
        const c = constituents[i]!;
        const r = await enrich(c, priority, knownOf(c), partsOf(c));
        if (!r.ok) failure ??= r.error;
        else results[i] = r.value;
      }
    };
    await Promise.all(Array.from({ length: Math.min(opts.concurrency, constituents.length) }, worker));
    if (failure) return err(failure);
    return ok(results.filter((d): d is ConstituentDetail => d !== null));
  };

  const readMemberships = async (
    listIds: readonly string[],
  ): Promise<ConnectorResult<Map<string, string[]>>> => {
    const members = new Map<string, string[]>();
    for (const listId of listIds) {
      let page = await client.listConstituents({ query: { list_id: listId, limit: pageSize } }, "read");
      for (let guard = 0; ; guard++) {
        if (!page.ok) return page;
        for (const c of page.value.value) {
          const ids = members.get(c.id) ?? [];
          if (!ids.includes(listId)) ids.push(listId);
          members.set(c.id, ids);
        }
        const link = page.value.next_link;
        if (!link || page.value.value.length === 0 || guard > 10_000) break;
        page = await client.listConstituents({ next_link: link }, "read");
      }
    }
    return ok(members);
  };

  /** The constituents whose opt-out custom fields changed since a moment, one category at a time. */
  const constituentsWithChangedFields = async (since: string): Promise<ConnectorResult<string[]>> => {
    const ids = new Set<string>();
    for (const category of optOutCategories) {
      let page = await client.listAllCustomFields({
        query: { category, last_modified: since, limit: pageSize },
      });
      for (let guard = 0; ; guard++) {
        if (!page.ok) return page;
        for (const f of page.value.value) if (f.parent_id) ids.add(f.parent_id);
        const link = page.value.next_link;
        if (!link || page.value.value.length === 0 || guard > 100_000) break;
        page = await client.listAllCustomFields({ next_link: link });
      }
    }
    return ok([...ids]);
  };

  /** The email addresses of a page of constituents, from the all-constituents list in batches. */
  const emailsOfPage = async (
    ids: readonly string[],
  ): Promise<ConnectorResult<Map<string, EmailAddress[]>>> => {
    const byConstituent = new Map<string, EmailAddress[]>();
    for (let i = 0; i < ids.length; i += EMAIL_IDS_PER_CALL) {
      const batch = ids.slice(i, i + EMAIL_IDS_PER_CALL);
      const rows = await client.listEmailAddressesOf(batch, "read");
      if (!rows.ok) return rows;
      for (const e of rows.value) {
        if (!e.constituent_id) continue;
        const list = byConstituent.get(e.constituent_id) ?? [];
        list.push(e);
        byConstituent.set(e.constituent_id, list);
      }
    }
    return ok(byConstituent);
  };

  /**
   * Every constituent's organisation-contact relationships (the only ones the mapping uses), from
   * one pass over the all-constituents relationship list.
   */
  const organisationContacts = async (): Promise<ConnectorResult<Map<string, Relationship[]>>> => {
    const byConstituent = new Map<string, Relationship[]>();
    const read = await client.forEachRelationship((rows) => {
      for (const r of rows) {
        if (!r.is_organization_contact || !r.relation_id) continue;
        const list = byConstituent.get(r.constituent_id) ?? [];
        list.push(r);
        byConstituent.set(r.constituent_id, list);
      }
    }, "read");
    return read.ok ? ok(byConstituent) : read;
  };

  async function* read(checkpoint: Checkpoint | null, options: ReadOptions = {}) {
    const { full, since } = readStart(checkpoint, {
      ...(options.full !== undefined ? { full: options.full } : {}),
      overlap_ms: opts.overlap_ms,
      epoch: EPOCH,
    });
    let lists: Map<string, string[]> | undefined;
    if (options.list_ids && options.list_ids.length > 0) {
      const m = await readMemberships(options.list_ids);
      if (!m.ok) {
        yield m;
        return;
      }
      lists = m.value;
    }
    const first = firstSeen();
    // A custom field's change does not move the constituent's date_modified (QUIRKS.md): an
    // incremental read first asks which constituents' opt-out fields changed, with a wider overlap
    // for the lag of SKY's all-constituents lists, and reads those constituents whole.
    if (!full && checkpoint !== null && optOutCategories.length > 0) {
      const changed = await constituentsWithChangedFields(
        new Date(
          Date.parse(checkpoint.value) - Math.max(opts.overlap_ms, ALL_CONSTITUENTS_LIST_LAG_MS),
        ).toISOString(),
      );
      if (!changed.ok) {
        yield changed;
        return;
      }
      const ids = changed.value.filter((id) => first(id));
      for (let i = 0; i < ids.length; i += pageSize) {
        const got = await get(ids.slice(i, i + pageSize));
        if (!got.ok) {
          yield got;
          return;
        }
        // These pages leave the checkpoint where it was: the constituent pass below moves it.
        yield ok({
          ...got.value,
          checkpoint: { stream: STREAM, value: checkpoint.value, taken_at: nowIso() },
        });
      }
    }
    // SKY returns constituents changed since a moment oldest first (QUIRKS.md), which is
    // UNVERIFIED: each page is checked for it (`inOrder`) before the checkpoint moves past it.
    const began = nowIso();
    const watermark = createWatermark("ascending", full ? undefined : checkpoint?.value, began);
    // The newest change on the pages before this one, and whether every page so far came after it.
    let before: number | undefined;
    let inOrder = true;
    // A full read takes a large page's email addresses and relationships from SKY's
    // all-constituents lists (a call per 100 constituents, a pass per read) instead of a call per
    // constituent for each. Those lists lag behind writes, so such a read's checkpoint stays
    // before the moment the lag could hide a change: the next incremental read reads what changed
    // after it constituent by constituent, from the current records.
    let organisations: Map<string, Relationship[]> | undefined;
    let currentBefore: number | undefined;
    /**
     * A read complete moves the checkpoint to its newest change. A read in progress moves it only
     * as far as the pages before this one, and only while every page came in the order of change:
     * a page listed out of order may be followed by older changes not read yet, and a read stopped
     * there (the day's quota spent) must list them again.
     */
    const checkpointValue = (complete: boolean): string => {
      const value = complete
        ? watermark.value(true, nowIso())
        : !inOrder || before === undefined
          ? (checkpoint?.value ?? since)
          : new Date(Math.min(before, Date.parse(began))).toISOString();
      if (currentBefore === undefined || Date.parse(value) <= currentBefore) return value;
      return new Date(currentBefore).toISOString();
    };
    // SKY's constituent list lags writes too ("an average latency of about 30 minutes"): a change
    // listed late is older than changes listed before it, and the checkpoint (their newest) has
    // passed it. An incremental read lists back the lists' lag as well; a constituent listed there
    // before the overlap window at the version Concord holds was read already, and is left.
    const lagged =
      !full && checkpoint !== null
        ? Date.parse(checkpoint.value) - Math.max(opts.overlap_ms, ALL_CONSTITUENTS_LIST_LAG_MS)
        : undefined;
    const listFrom =
      lagged !== undefined && lagged < Date.parse(since) ? new Date(lagged).toISOString() : since;
    let page = await client.listConstituents({ query: { last_modified: listFrom, limit: pageSize } }, "read");
    for (let guard = 0; ; guard++) {
      if (!page.ok) {
        yield page;
        return;
      }
      // The overlap window and SKY's sort_token can repeat a constituent across pages: each version
      // is read once. One saved while the read goes on comes again behind the cursor with its new
      // date, and is read again: its first copy may predate an opt-out the checkpoint now passes.
      let fresh = page.value.value.filter((c) => first(`${c.id}@${c.date_modified.trim()}`));
      // The overlap window lists again what Concord holds at its current version (SKY's
      // date_modified to 100 ns, which every save of the record, its addresses and its "Requests
      // no email" code moves): of those only what changes without moving it is read. Listed from
      // before the window (for the lag), such a constituent is not read at all.
      let unmoved: ReadonlySet<string> = new Set();
      if (!full && options.held && fresh.length > 0) {
        const held = await options.held(fresh.map((c) => c.id));
        const current = (c: Constituent): boolean => held.get(c.id) === c.date_modified.trim();
        const beforeWindow = (c: Constituent): boolean =>
          Date.parse(readDate(c.date_modified) ?? "") < Date.parse(since);
        fresh = fresh.filter((c) => !(current(c) && beforeWindow(c)));
        unmoved = new Set(fresh.filter(current).map((c) => c.id));
      }
      const known: Known = lists ? { lists } : {};
      if (full && fresh.length >= ALL_CONSTITUENTS_LISTS_FROM) {
        currentBefore ??= runtime.now().getTime() - ALL_CONSTITUENTS_LIST_LAG_MS;
        if (opts.read.email_addresses) {
          const emails = await emailsOfPage(fresh.map((c) => c.id));
          if (!emails.ok) {
            yield emails;
            return;
          }
          known.emails = emails.value;
        }
        if (opts.read.relationships && fresh.some((c) => c.type === "Individual")) {
          if (!organisations) {
            const contacts = await organisationContacts();
            if (!contacts.ok) {
              yield contacts;
              return;
            }
            organisations = contacts.value;
          }
          known.organisation_contacts = organisations;
        }
      }
      // A constituent saved within the lists' lag may show there as it was before the save: an
      // address's Do Not Email ticked minutes ago would read as cleared, which is a resubscribe
      // request no one made. Its addresses and relationships are read from its current record.
      const own: Known = lists ? { lists } : {};
      const savedWithinLag = (c: Constituent): boolean =>
        currentBefore !== undefined && Date.parse(readDate(c.date_modified) ?? "") >= currentBefore;
      const details = await enrichAll(
        fresh,
        "read",
        (c) => (savedWithinLag(c) ? own : known),
        (c) => (unmoved.has(c.id) ? UNMOVED_PARTS : undefined),
      );
      if (!details.ok) {
        yield details;
        return;
      }
      let newest = before;
      for (const c of page.value.value) {
        const at = readDate(c.date_modified);
        if (at === undefined) continue;
        watermark.see(at);
        const t = Date.parse(at);
        if (newest !== undefined && t < newest) inOrder = false;
        newest = newest === undefined ? t : Math.max(newest, t);
      }
      const complete = !page.value.next_link || page.value.value.length === 0;
      const result: ReadPage = {
        records: details.value.map(toExternalRecord),
        consent: details.value.flatMap((d) => consentObservations(d, nowIso())),
        checkpoint: { stream: STREAM, value: checkpointValue(complete), taken_at: nowIso() },
      };
      before = newest;
      if (lists && guard === 0)
        result.memberships = {
          list_ids: [...(options.list_ids ?? [])],
          members: Object.fromEntries(lists),
        };
      yield ok(result);
      const link = page.value.next_link;
      if (!link || page.value.value.length === 0 || guard > 100_000) break;
      page = await client.listConstituents({ next_link: link }, "read");
    }
  }

  const get = async (
    ids: readonly string[],
    options: GetOptions = {},
  ): Promise<ConnectorResult<RecordsWithConsent>> => {
    const unique = [...new Set(ids)];
    const records: ExternalRecord[] = [];
    const consent: ConsentObservation[] = [];
    for (const id of unique) {
      const c = await client.getConstituent(id, "read");
      if (!c.ok) return c;
      if (!c.value) {
        records.push(deletedRecord(id, nowIso()));
        continue;
      }
      const detail = await enrich(c.value, "read", {}, partsFor(options.changed?.get(id)));
      if (!detail.ok) return detail;
      if (!detail.value) {
        records.push(deletedRecord(id, nowIso()));
        continue;
      }
      records.push(toExternalRecord(detail.value));
      consent.push(...consentObservations(detail.value, nowIso()));
    }
    return ok({ records, consent });
  };

  return {
    check: async () => {
      const res = await client.listConstituents({ query: { limit: 1 } }, "consent");
      if (!res.ok) return res;
      if (optOutCategories.length > 0) {
        const categories = await client.customFieldCategories();
        if (!categories.ok) return categories;
        const yesNo = categories.value.filter((c) => c.type === "Boolean").map((c) => c.name);
        const missing = optOutCategories.filter((name) => !yesNo.includes(name));
        if (missing.length > 0)
          return err({
            code: "validation_failed",
            message: `topics[].constructs names ${missing.map((m) => `"${m}"`).join(", ")} as a custom_field, but Raiser's Edge NXT has no Yes/No (Boolean) constituent custom field category by that name; its Yes/No categories are: ${yesNo.length > 0 ? yesNo.map((n) => `"${n}"`).join(", ") : "none"}.`,
          });
      }
      if (codesNamed && opts.opt_out_solicit_codes.length > 0) {
        // A code the config names that the table does not have is never read: whatever it was
        // meant to catch would be lost unseen. (The default names are only likely names.)
        const table = await client.solicitCodeTable();
        if (!table.ok) return table;
        const names = new Set(table.value.map((t) => t.description.trim().toLowerCase()));
        const missing = opts.opt_out_solicit_codes.filter((code) => !names.has(code.trim().toLowerCase()));
        if (missing.length > 0)
          return err({
            code: "validation_failed",
            message: `options.opt_out_solicit_codes names ${missing.map((m) => `"${m}"`).join(", ")}, but Raiser's Edge NXT's Solicit Codes table has no such entry; its entries are: ${table.value.length > 0 ? table.value.map((t) => `"${t.description}"`).join(", ") : "none"}.`,
          });
      }
      return ok({
        account_label: `Raiser's Edge NXT (${res.value.count ?? res.value.value.length} constituents)`,
      });
    },
    read: (checkpoint, options) => read(checkpoint, options),
    get,
    lists: async () => {
      const res = await client.listLists();
      if (!res.ok) return res;
      return ok(
        res.value.map((l) => ({
          external_id: l.id,
          name: l.name,
          ...(typeof l.record_count === "number" ? { member_count: l.record_count } : {}),
        })),
      );
    },
    apply: (operations) => applyAll(client, operations, opts),
  };
}

// ------------------------------------------------------------------ apply

const VENDOR = "Raiser's Edge NXT";

function applyAll(
  client: BlackbaudClient,
  operations: readonly ConnectorOperation[],
  opts: Resolved,
): Promise<OperationOutcome[]> {
  return applyConsentFirst(VENDOR, operations, async (op) => [
    { op_id: op.op_id, ...(await applyOne(client, op, opts)) },
  ]);
}

/** A failed call's outcome: the connection's trouble (refused credentials, quotas, outages) keeps the operation. */
const failed = (e: ConnectorError): Outcome => failureOf(VENDOR, e);

async function applyOne(client: BlackbaudClient, op: ConnectorOperation, opts: Resolved): Promise<Outcome> {
  switch (op.kind) {
    case "record_opt_out":
    case "record_opt_in":
      return applyConsent(client, op, opts);
    case "update_contact": {
      const { body, rejected } = constituentEditBody(op);
      if (rejected.length > 0) {
        return {
          status: "failed",
          code: "validation_failed",
          message: `Raiser's Edge NXT cannot write these fields through a constituent edit: ${rejected.join(", ")}.`,
        };
      }
      const { address, phone } = constituentEditBody(op);
      const addressParts = Object.keys(address).length > 0;
      if (Object.keys(body).length === 0 && !addressParts && phone === undefined)
        return succeeded(op.external_id, "already_applied");
      if (Object.keys(body).length > 0) {
        const res = await client.editConstituent(op.external_id, body, "write");
        if (!res.ok) return failed(res.error);
      }
      if (addressParts || phone !== undefined) {
        // The preferred address and the primary phone live in their own records.
        const current = await client.getConstituent(op.external_id, "write");
        if (!current.ok) return failed(current.error);
        if (!current.value)
          return { status: "failed", code: "not_found", message: `Constituent ${op.external_id} is gone.` };
        if (addressParts) {
          const id = current.value.address?.id;
          const res = id
            ? await client.editAddress(id, address)
            : await client.createAddress({
                constituent_id: op.external_id,
                type: opts.address_type,
                preferred: true,
                ...address,
              });
          if (!res.ok) return failed(res.error);
        }
        if (phone !== undefined && phone !== null && phone.trim() !== "") {
          const id = current.value.phone?.id;
          const res = id
            ? await client.editPhone(id, { number: phone })
            : await client.createPhone({
                constituent_id: op.external_id,
                type: opts.phone_type,
                number: phone,
                primary: true,
              });
          if (!res.ok) return failed(res.error);
        }
      }
      return succeeded(op.external_id);
    }
    case "change_email": {
      const emails = await client.listEmailAddresses(op.external_id, "write");
      if (!emails.ok) return failed(emails.error);
      const current = emails.value.find((e) => sameEmail(e.address, op.new_email));
      if (current?.primary) return succeeded(op.external_id, "already_applied");
      const old = emails.value.find((e) => sameEmail(e.address, op.old_email));
      if (current?.id) {
        const res = await client.editEmailAddress(current.id, { primary: true });
        return res.ok ? succeeded(op.external_id) : failed(res.error);
      }
      if (old?.id) {
        const res = await client.editEmailAddress(old.id, { address: op.new_email.trim() });
        return res.ok ? succeeded(op.external_id) : failed(res.error);
      }
      const res = await client.createEmailAddress({
        address: op.new_email.trim(),
        constituent_id: op.external_id,
        type: opts.email_type,
        primary: true,
      });
      return res.ok ? succeeded(op.external_id) : failed(res.error);
    }
    case "create_contact": {
      // A retry after a lost answer must not create a second constituent: look the address up first.
      const found = await client.searchByEmail(op.email.trim(), "write");
      if (!found.ok) return failed(found.error);
      const ids = [...new Set(found.value)];
      if (ids.length === 1) return succeeded(ids[0], "already_applied");
      if (ids.length > 1) {
        return {
          status: "failed",
          code: "conflict",
          message: `${ids.length} constituents already have ${op.email}; Concord will not guess which one (${ids.join(", ")}).`,
        };
      }
      const res = await client.createConstituent(constituentAddBody(op, opts.email_type));
      return res.ok ? succeeded(res.value) : failed(res.error);
    }
    case "add_list_members": {
      const ids = [...new Set(op.external_ids)];
      for (const listId of op.list_ids) {
        for (let i = 0; i < ids.length; i += 100_000) {
          const res = await client.appendIdsToList({
            list_id: listId,
            list_type: "Constituent",
            ids: ids.slice(i, i + 100_000),
          });
          if (!res.ok) return failed(res.error);
        }
      }
      return succeeded();
    }
    case "remove_list_members":
      return {
        status: "failed",
        code: "unsupported",
        message:
          "The SKY List API documents creating a static list and appending ids, but no way to remove ids.",
      };
    case "upsert_contacts":
      return {
        status: "failed",
        code: "unsupported",
        message:
          "Raiser's Edge NXT has no bulk import endpoint; send create_contact and update_contact instead.",
      };
    case "create_list":
    case "rename_list":
    case "delete_list":
      return {
        status: "failed",
        code: "unsupported",
        message:
          "Concord follows the CRM's lists and never changes them; lists are made in Raiser's Edge NXT.",
      };
    case "remove_contact":
      return {
        status: "failed",
        code: "unsupported",
        message: "Concord never deletes CRM records; a constituent ends in Raiser's Edge NXT itself.",
      };
    case "erase_contact": {
      // The person asked to be erased: the constituent is deleted (DeleteConstituent), unless the
      // config keeps this system's records (compliance.erasure.keep_records_in).
      const res = await client.deleteConstituent(op.external_id);
      if (!res.ok && res.error.code !== "not_found") return failed(res.error);
      return {
        ...succeeded(op.external_id, res.ok ? undefined : "already_applied"),
        message: "Deleted the constituent with its email addresses, addresses and phones.",
      };
    }
    case "request_resubscribe":
      return {
        status: "pending_contact_action",
        code: "consent_requires_contact_action",
        message:
          "Raiser's Edge NXT sends no confirmation email: the person must opt in again themselves (a form, a call, a letter), recorded as a consent record.",
      };
  }
}

async function applyConsent(
  client: BlackbaudClient,
  op: Extract<ConnectorOperation, { kind: "record_opt_out" | "record_opt_in" }>,
  opts: Resolved,
): Promise<Outcome> {
  // A consent record states the constituent's own response; writing OptIn for an admin or a sync
  // would forge one (DESIGN.md §2 rule 3).
  const refused = consentWriteRefusal(op, {
    construct_types: [CONSENT_CATEGORY, CUSTOM_FIELD],
    where:
      "Raiser's Edge NXT scopes consent globally, by consent category or by a Yes/No custom field, not by account or list.",
    restores: "Raiser's Edge NXT records only the constituent's response.",
  });
  if (refused) return refused;
  const optOut = op.kind === "record_opt_out";
  if (op.scope.kind === "construct" && op.scope.construct.type === CUSTOM_FIELD)
    return applyCustomField(client, op, op.scope.construct.name ?? op.scope.construct.id, optOut);
  // A global opt-out is the flag's above all: when its consent record cannot be read or written for
  // good (a consent source or channel the tenant refuses, no permission for the consent API), the
  // flag is set all the same, and the outcome says what is missing. A passing failure waits, as
  // every other.
  const flagAlone = (e: ConnectorError): boolean => optOut && op.scope.kind === "global" && !isDeferrable(e);
  const latest = await client.listConsents(op.external_id, true, "consent");
  if (!latest.ok && !flagAlone(latest.error)) return failed(latest.error);
  let recordProblem: { error: ConnectorError; doing: string } | undefined = latest.ok
    ? undefined
    : { error: latest.error, doing: "read" };
  const category = op.scope.kind === "construct" ? op.scope.construct.id : undefined;
  const newest = latestConsents(latest.ok ? latest.value : []).get(
    consentKey(opts.consent_channel, category),
  );
  const recordInPlace = newest?.constituent_consent_response === (optOut ? "OptOut" : "OptIn");
  // An OptOut record dated after the opt-in (staff recording a phoned-in request while the flag was
  // set already, so nothing else moved) is the newer act: it stands, whatever the plan saw.
  if (
    !optOut &&
    newest?.constituent_consent_response === "OptOut" &&
    Date.parse(newest.consent_date) > Date.parse(op.occurred_at)
  )
    return {
      status: "skipped",
      code: "conflict",
      message: `${VENDOR} holds an OptOut consent record dated ${newest.consent_date}, after this opt-in (${op.occurred_at}): the newer act stands. Concord wrote nothing; its next read records it.`,
    };

  if (op.scope.kind === "global") {
    const c = await client.getConstituent(op.external_id, "consent");
    if (!c.ok) return failed(c.error);
    if (!c.value)
      return {
        status: "failed",
        code: "not_found",
        message: `Constituent ${op.external_id} does not exist.`,
      };
    const flag = c.value.requests_no_email === true;
    const since = optedOutSinceRead(VENDOR, op, flag, "Requests No Email");
    if (since) return since;
    // Opted out already (whatever its records say), or opted in with the person's OptIn on record: an
    // admin's cleared flag is no record of the person's own act, so the OptIn is still written then.
    const alreadyApplied = optOut ? flag : !flag && newest?.constituent_consent_response === "OptIn";
    if (alreadyApplied) {
      return succeeded(op.external_id, "already_applied");
    }
    // The record first, then the flag: two calls cannot be one transaction, so a retry after a crash
    // between them finds the record in place and only sets the flag; the other order would leave a
    // flag no record explains, and the retry would take it as already applied. The record in place
    // is this act's (its statement) or one made since: an older record of the same response tells of
    // an earlier act, so the flag changed over it would be explained by that one, dated then.
    const thisAct =
      recordInPlace &&
      (newest.consent_statement === consentStatement(op) ||
        Date.parse(newest.consent_date) >= Date.parse(op.occurred_at));
    if (!thisAct) {
      const created = await client.createConsent(
        consentAddBody(op, { channel: opts.consent_channel, source: opts.consent_source }),
      );
      // Added (whatever the listing said), or not, for good.
      if (!created.ok && !flagAlone(created.error)) return failed(created.error);
      recordProblem = created.ok ? undefined : { error: created.error, doing: "added" };
    }
    if (flag !== optOut) {
      const patched = await client.editConstituent(op.external_id, { requests_no_email: optOut }, "consent");
      if (!patched.ok) return failed(patched.error);
    }
    if (recordProblem !== undefined)
      return {
        ...succeeded(op.external_id),
        message: `Requests No Email is set; the OptOut consent record could not be ${recordProblem.doing}: ${failed(recordProblem.error).message}`,
      };
    return succeeded(op.external_id);
  }
  if (recordInPlace) return succeeded(op.external_id, "already_applied");
  const since = optedOutSinceRead(
    VENDOR,
    op,
    newest?.constituent_consent_response === "OptOut",
    `an OptOut consent record in category "${category ?? ""}"`,
  );
  if (since) return since;
  const created = await client.createConsent(
    consentAddBody(op, { channel: opts.consent_channel, source: opts.consent_source }),
  );
  return created.ok ? succeeded(op.external_id) : failed(created.error);
}

/**
 * An opt-out kept in an organisation's own Yes/No custom field: "Yes" is opted out. SKY keeps no
 * history of the field, so the comment says who set it (at most 50 characters).
 */
async function applyCustomField(
  client: BlackbaudClient,
  op: Extract<ConnectorOperation, { kind: "record_opt_out" | "record_opt_in" }>,
  category: string,
  optOut: boolean,
): Promise<Outcome> {
  const fields = await client.listCustomFields(op.external_id, "consent");
  if (!fields.ok) return failed(fields.error);
  const field = newestField(fields.value, category);
  const isYes = isTicked(field?.value);
  if (isYes === optOut) return succeeded(op.external_id, "already_applied");
  const since = optedOutSinceRead(VENDOR, op, isYes, `custom field "${category}" set to Yes`);
  if (since) return since;
  const comment = customFieldComment(op);
  // The field's date takes no offset (spec: `x-supports-datetime-offset: false`): UTC's wall time,
  // which a read takes back as UTC.
  const date = new Date(op.occurred_at).toISOString().slice(0, 19);
  const written = field
    ? await client.editCustomField(field.id, { value: optOut, date, comment })
    : await client.createCustomField({ parent_id: op.external_id, category, value: optOut, date, comment });
  return written.ok ? succeeded(op.external_id) : failed(written.error);
}

/** The field of a category on a constituent; the newest where a category allows several. */
function newestField(fields: readonly CustomField[], category: string): CustomField | undefined {
  return fields
    .filter((f) => f.category === category)
    .sort((a, b) => Date.parse(b.date_modified ?? "") - Date.parse(a.date_modified ?? ""))[0];
}
