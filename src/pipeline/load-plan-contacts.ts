/**
 * Builds the planner's input from the store: every contact linked to a connection of the pair, with
 * its ledger events, each linked record as last read (its snapshot) and the pair's baselines.
 * Contacts stream in id order, a chunk of queries at a time, so memory stays flat however many.
 */
import { sql, type SqlBool } from "kysely";
import { z } from "zod";
import type { ConsentEvent } from "../core/consent/consent-event";
import type { CanonicalContact } from "../core/identity/canonical-contact";
import { fromRow } from "../ledger/consent-ledger";
import type { CrmRecordState, PlanContact, PlatformRecordState, RecordEmail } from "../planner/plan-input";
import type { StoreSession } from "../store/ports";
import { coreContactType } from "./store-match-index";
import { readSnapshotRecord, recordEmail, type SnapshotRecord } from "./stored-snapshot";
import type { ResolvedPair } from "./resolve-pair";
import type { Selectable } from "kysely";
import type { ConsentEventsTable, ContactsTable, PlatformRejectionsTable } from "../store/schema";
import { MarkReader, type PlanMarking, type PlanMarkRow } from "./plan-marks";
import type { ContactContribution } from "../planner/plan-pair";

const CHUNK = 500;

/** A linked record as planning reads it: the link and its snapshot. */
export type PlanLinkRow = {
  contact_id: string;
  connection_id: string;
  external_id: string;
  origin: string;
  payload_json: string;
};

/** One contact's rows, as stored: everything its plan is made from. */
export type ContactRows = {
  contact: Selectable<ContactsTable>;
  links: PlanLinkRow[];
  /** In ledger order. */
  events: Selectable<ConsentEventsTable>[];
  baseline?: string;
  /** Connections its confirmation email was already sent on. */
  resubscribed: string[];
  rejections: Selectable<PlatformRejectionsTable>[];
};

export const BaselinesSchema = z.record(z.string(), z.record(z.string(), z.string().nullable()));

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * A contact's stored baselines, as `BaselinesSchema` reads them, checked by hand: every contact of
 * a plan has some, and the schema's copy of each cost a first plan more than the check.
 */
export function readBaselines(json: string): z.infer<typeof BaselinesSchema> | undefined {
  const parsed: unknown = JSON.parse(json);
  if (!isPlainObject(parsed)) return undefined;
  for (const values of Object.values(parsed)) {
    if (!isPlainObject(values)) return undefined;
    for (const v of Object.values(values)) if (v !== null && typeof v !== "string") return undefined;
  }
  return parsed as z.infer<typeof BaselinesSchema>;
}
/** A contact's lifecycle flags as stored; unreadable flags read as none. */
const FlagsSchema = z.array(z.string()).catch([]);

/** The CRM record as last read: its profile, addresses, lifecycle and consent facts. */
export function crmState(r: SnapshotRecord): CrmRecordState {
  const emails: RecordEmail[] = r.emails
    .filter((e) => e.inactive !== true)
    .map((e) => ({ address: e.address, primary: e.primary }));
  return {
    ...profile(r),
    emails,
    ...(r.stopped_list_ids !== undefined && r.stopped_list_ids.length > 0
      ? { stopped_list_ids: r.stopped_list_ids }
      : {}),
    ...(r.inactive !== undefined ? { inactive: r.inactive } : {}),
    ...(r.deceased !== undefined ? { deceased: r.deceased } : {}),
    ...(r.consent_grounds !== undefined && r.consent_grounds.length > 0
      ? { consent_grounds: r.consent_grounds }
      : {}),
    consent_state: r.consent_state,
  };
}

/** A platform record as last read, and whether its confirmation email was already asked for. */
export function platformState(r: SnapshotRecord, resubscribeRequested: boolean): PlatformRecordState {
  return {
    ...profile(r),
    email: recordEmail(r.emails) ?? "",
    ...(r.inactive === true ? { inactive: true } : {}),
    consent_state: r.consent_state,
    resubscribe_requested: resubscribeRequested,
  };
}

function profile(r: SnapshotRecord): Omit<CrmRecordState, "emails" | "consent_state"> {
  return {
    external_id: r.external_id,
    ...(r.first_name !== undefined ? { first_name: r.first_name } : {}),
    ...(r.last_name !== undefined ? { last_name: r.last_name } : {}),
    fields: r.fields,
    list_ids: r.list_ids ?? [],
    ...(r.deleted === true ? { deleted: true } : {}),
    ...(r.updated_at !== undefined ? { updated_at: r.updated_at } : {}),
  };
}

/**
 * Contact ids linked to any of `connections`, after `after`, in id order: for each connection an
 * index range from `after` (links by connection and contact), merged, never a read and sort of
 * every link of the connections for each page, nor a walk over other pairs' contacts.
 */
export async function contactIdsPage(
  store: Pick<StoreSession, "db">,
  connections: readonly string[],
  after: string,
  limit: number,
): Promise<string[]> {
  if (connections.length === 0) return [];
  const arms = connections.map(
    (connection, i) =>
      sql`select contact_id from (select contact_id from links where connection_id = ${connection}
        and contact_id > ${after} order by contact_id limit ${limit}) as ${sql.id(`c${i}`)}`,
  );
  const { rows } = await sql<{ contact_id: string }>`${sql.join(arms, sql` union `)}
    order by contact_id limit ${limit}`.execute(store.db);
  return rows.map((r) => r.contact_id);
}

/** A contact to plan (with its revision when the plan marks), or one its mark stands for. */
export type PlanItem =
  | { contact: PlanContact; plan_rev?: number }
  /** `until`: the mark's, the instant time alone could change the contribution. */
  | { marked: string; contribution: ContactContribution; until?: string };

/**
 * Streams the pair's contacts as the planner's input, in id order. With `marking`, each page's
 * contact revisions and marks are read first; a contact whose mark matches comes as what its mark
 * keeps (its part of the plan), its other rows never read (ADR 30, ADR 31), and the rest come with
 * the revision their rows were read after.
 */
export async function* loadPlanContacts(
  store: StoreSession,
  resolved: ResolvedPair,
  marking?: PlanMarking,
): AsyncGenerator<PlanItem> {
  const pairId = resolved.pair.id;
  const crmId = resolved.pair.crm.connection_id;
  const platformIds = resolved.pair.platforms.map((p) => p.connection_id);
  const connections = [crmId, ...platformIds];
  const reader = new MarkReader();
  /**
   * Whether the last page was mostly settled by its marks: then the next page's contact rows are
   * not read with the revisions (a plan again reads a revision and a mark a contact, the rows of
   * the few it plans after them); a page mostly planned reads them together (a first plan).
   */
  let mostlyMarked = false;
  /**
   * Whether the pair's contacts lie sparse among the store's (other pairs' contacts between them):
   * then a page is read by lists of its ids, not as the range from its first id to its last, which
   * would read every contact between. Told by the first page (read as a range), kept for the rest.
   */
  let sparse = false;
  let after = "";
  for (;;) {
    const ids = await contactIdsPage(store, connections, after, CHUNK);
    if (ids.length === 0) return;
    after = ids[ids.length - 1] ?? after;
    if (marking === undefined) {
      const rows = sparse
        ? await readPlanRowsOf(store, pairId, connections, ids, undefined)
        : await readPlanRows(store, pairId, connections, { kind: "page", ids });
      if (!sparse) sparse = isSparse(rows.in_range, ids.length);
      for (const contact of groupRows(rows)) yield { contact: planContactOf(contact, crmId) };
    } else {
      // Revisions before rows: a write between the two moves the revision on past the mark's.
      const withRows = !mostlyMarked;
      const { states, in_range } = await readRevisions(store, pairId, ids, withRows, sparse);
      if (!sparse) sparse = isSparse(in_range, ids.length);
      /** The contact rows read with the revisions, when they were. */
      const rowsOf = (some: readonly string[]) => {
        if (!withRows) return undefined;
        return some.flatMap((id) => {
          const row = states.get(id)?.contact;
          return row === undefined ? [] : [row];
        });
      };
      const marked = new Map<string, { contribution: ContactContribution; until?: string }>();
      if (marking.reuse)
        for (const [id, state] of states) {
          const contribution = reader.contribution(
            id,
            state.mark,
            marking.key,
            state.plan_rev,
            marking.as_of,
          );
          const until = state.mark?.valid_until ?? undefined;
          if (contribution !== undefined)
            marked.set(id, until !== undefined ? { contribution, until } : { contribution });
        }
      const toPlan = marked.size === 0 ? ids : ids.filter((id) => !marked.has(id));
      const rowsRead = rowsOf(toPlan);
      const planned =
        toPlan.length === 0
          ? []
          : groupRows(
              toPlan.length === ids.length && !sparse
                ? await readPlanRows(store, pairId, connections, {
                    kind: "page",
                    ids,
                    ...(rowsRead !== undefined ? { contacts: rowsRead } : {}),
                  })
                : await readPlanRowsOf(store, pairId, connections, toPlan, rowsRead),
            );
      mostlyMarked = marked.size * 2 > ids.length;
      const byId = new Map(planned.map((c) => [c.contact.id, c]));
      // In the order the unmarked path gives (groupRows'), whatever order the database sorts ids in.
      for (const id of [...ids].sort(byCodeUnits)) {
        const mark = marked.get(id);
        if (mark !== undefined) {
          yield { marked: id, ...mark };
          continue;
        }
        const contact = byId.get(id);
        if (contact === undefined) continue;
        // The revision read before its rows (a contact row read with the rows may be newer).
        const planRev = states.get(id)?.plan_rev;
        if (planRev === undefined) continue;
        yield { contact: planContactOf(contact, crmId), plan_rev: planRev };
      }
    }
    // A synchronous store (SQLite) answers without letting the event loop turn: between pages it is
    // let go, so a plan of a million contacts never holds webhooks and the API for its whole length.
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/**
 * The rows of a scattered set of a page's contacts (those without a matching mark), by lists of
 * ids padded to a power of two (the last id repeated), so a handful of statements serve every page.
 */
async function readPlanRowsOf(
  store: Pick<StoreSession, "db">,
  pairId: string,
  connections: readonly string[],
  ids: readonly string[],
  contacts: readonly Selectable<ContactsTable>[] | undefined,
): Promise<PlanRows> {
  const read = contacts !== undefined ? { contacts } : {};
  return readPlanRows(store, pairId, connections, { kind: "some", ids: padded(ids), ...read });
}

/** `ids` padded to a power of two with its last id, so a handful of statement texts serve every list. */
function padded(ids: readonly string[]): readonly string[] {
  const last = ids.at(-1);
  if (last === undefined) return ids;
  let size = 1;
  while (size < ids.length) size *= 2;
  return size === ids.length ? ids : [...ids, ...Array<string>(size - ids.length).fill(last)];
}

/**
 * Whether a page whose id range held `inRange` contacts, `ids` of them the pair's, is sparse: at
 * most half of them the pair's (reading by lists of ids then reads less than the range would).
 */
const isSparse = (inRange: number | undefined, ids: number): boolean =>
  inRange !== undefined && inRange >= 2 * ids;

/** The same contacts as `loadPlanContacts`, for a known set of contact ids (a webhook's targets). */
export async function loadPlanContactsById(
  store: StoreSession,
  resolved: ResolvedPair,
  contactIds: readonly string[],
): Promise<PlanContact[]> {
  const crmId = resolved.pair.crm.connection_id;
  const connections = [crmId, ...resolved.pair.platforms.map((p) => p.connection_id)];
  const out: PlanContact[] = [];
  const unique = [...new Set(contactIds)].sort();
  for (let i = 0; i < unique.length; i += CHUNK) {
    const rows = await readPlanRows(store, resolved.pair.id, connections, {
      kind: "some",
      ids: unique.slice(i, i + CHUNK),
    });
    for (const contact of groupRows(rows)) out.push(planContactOf(contact, crmId));
  }
  return out;
}

/**
 * Which contacts a chunk holds. `page`: every contact of the pair from the first id to the last (a
 * page of `contactIdsPage`), read as ranges of ids, so each read is one fixed statement over an
 * index range; rows of contacts outside the pair in that range are dropped. `some`: a scattered
 * set (a webhook's targets), read by lists of ids.
 */
export type PlanChunk = {
  kind: "page" | "some";
  ids: readonly string[];
  /** The chunk's contact rows, when already read (with their revisions): not read again. */
  contacts?: readonly Selectable<ContactsTable>[];
};

/**
 * The rows a chunk of contacts is planned from, as stored: contacts, linked records with their
 * snapshots, consent events, baselines, resubscribe requests already sent, and addresses platforms
 * refused.
 */
export async function readPlanRows(
  store: Pick<StoreSession, "db">,
  pairId: string,
  connections: readonly string[],
  chunk: PlanChunk,
) {
  const { ids } = chunk;
  const first = ids[0];
  const last = ids.at(-1);
  if (first === undefined || last === undefined)
    return {
      contacts: [],
      links: [],
      events: [],
      baselines: [],
      resubscribes: [],
      rejections: [],
      in_range: undefined,
    };
  const byRange = chunk.kind === "page";
  // Each query applies the same contact filter to its own column.
  const contactsOf = (column: string) =>
    byRange
      ? sql<SqlBool>`${sql.ref(column)} between ${first} and ${last}`
      : sql<SqlBool>`${sql.ref(column)} in (${sql.join(ids)})`;
  const [contacts, links, events, baselines, resubscribes, rejections] = await Promise.all([
    chunk.contacts ?? store.db.selectFrom("contacts").selectAll().where(contactsOf("id")).execute(),
    store.db
      .selectFrom("links")
      .innerJoin("record_snapshots", (j) =>
        j
          .onRef("record_snapshots.connection_id", "=", "links.connection_id")
          .onRef("record_snapshots.external_id", "=", "links.external_id"),
      )
      .select([
        "links.contact_id",
        "links.connection_id",
        "links.external_id",
        "links.origin",
        "record_snapshots.payload_json",
      ])
      // By contact only: with a connection filter too, SQLite without statistics (a store nobody
      // analysed) reads every link of the connections through the primary key for each chunk.
      .where(contactsOf("links.contact_id"))
      .execute(),
    store.db
      .selectFrom("consent_events")
      .selectAll()
      .where(contactsOf("contact_id"))
      .orderBy("seq")
      .execute(),
    store.db
      .selectFrom("baselines")
      .select(["contact_id", "values_json"])
      .where("pair_id", "=", pairId)
      .where(contactsOf("contact_id"))
      .execute(),
    store.db
      .selectFrom("operations")
      .select(["contact_id", "target_connection"])
      .where("kind", "=", "request_resubscribe")
      .where("status", "=", "succeeded")
      .where(contactsOf("contact_id"))
      .execute(),
    store.db
      .selectFrom("platform_rejections")
      .selectAll()
      .where("connection_id", "in", connections)
      .where(contactsOf("contact_id"))
      .execute(),
  ]);
  const inPair = new Set(connections);
  const pairLinks = links.filter((l) => inPair.has(l.connection_id));
  if (!byRange)
    return {
      contacts,
      links: pairLinks,
      events,
      baselines,
      resubscribes,
      rejections,
      in_range: undefined as number | undefined,
    };
  const inChunk = new Set(ids);
  const keep = <R extends { contact_id: string | null }>(rows: R[]): R[] =>
    rows.filter((r) => r.contact_id !== null && inChunk.has(r.contact_id));
  return {
    contacts: contacts.filter((c) => inChunk.has(c.id)),
    /** Contacts of any pair between the chunk's first id and its last, when read as a range. */
    in_range: chunk.contacts === undefined ? contacts.length : undefined,
    links: pairLinks,
    events: keep(events),
    baselines: keep(baselines),
    resubscribes: keep(resubscribes),
    rejections: keep(rejections),
  };
}

type PlanRows = Awaited<ReturnType<typeof readPlanRows>>;

const byCodeUnits = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** The rows of each contact, contacts in id order. */
function groupRows(rows: PlanRows): ContactRows[] {
  const by = new Map<string, ContactRows>();
  for (const contact of [...rows.contacts].sort((a, b) => byCodeUnits(a.id, b.id)))
    by.set(contact.id, { contact, links: [], events: [], resubscribed: [], rejections: [] });
  for (const l of rows.links) by.get(l.contact_id)?.links.push(l);
  for (const e of rows.events) by.get(e.contact_id)?.events.push(e);
  for (const b of rows.baselines) {
    const c = by.get(b.contact_id);
    if (c) c.baseline = b.values_json;
  }
  for (const r of rows.resubscribes)
    if (r.contact_id !== null) by.get(r.contact_id)?.resubscribed.push(r.target_connection);
  for (const r of rows.rejections) by.get(r.contact_id)?.rejections.push(r);
  return [...by.values()];
}

/** A contact's revision, its row when read with it, and its mark for the pair. */
type ContactState = { plan_rev: number; contact?: Selectable<ContactsTable>; mark?: PlanMarkRow };

/**
 * Each contact's revision and its mark for the pair, for a page of contacts, with the contact's
 * row when `withRows`: one range read, before any other row of theirs.
 */
async function readRevisions(
  store: Pick<StoreSession, "db">,
  pairId: string,
  ids: readonly string[],
  withRows: boolean,
  /** Read by lists of ids, not as the range from the first to the last. */
  byList: boolean,
): Promise<{ states: Map<string, ContactState>; in_range?: number }> {
  const first = ids[0];
  const last = ids.at(-1);
  const out = new Map<string, ContactState>();
  if (first === undefined || last === undefined) return { states: out };
  const marks = [
    "plan_marks.plan_key as mark_key",
    "plan_marks.plan_rev as mark_rev",
    "plan_marks.outcome_json as mark_outcome_json",
    "plan_marks.valid_until as mark_valid_until",
  ] as const;
  const page = store.db
    .selectFrom("contacts")
    .leftJoin("plan_marks", (j) =>
      j.onRef("plan_marks.contact_id", "=", "contacts.id").on("plan_marks.pair_id", "=", pairId),
    )
    .select(marks)
    .where((eb) =>
      byList
        ? eb("contacts.id", "in", padded(ids))
        : eb.and([eb("contacts.id", ">=", first), eb("contacts.id", "<=", last)]),
    );
  const rows: (Partial<Selectable<ContactsTable>> & {
    id: string;
    plan_rev: number;
    mark_key: string | null;
    mark_rev: number | null;
    mark_outcome_json: string | null;
    mark_valid_until: string | null;
  })[] = withRows
    ? await page.selectAll("contacts").execute()
    : await page.select(["contacts.id", "contacts.plan_rev"]).execute();
  const inPage = new Set(ids);
  for (const r of rows) {
    if (!inPage.has(r.id)) continue;
    const { mark_key, mark_rev, mark_outcome_json, mark_valid_until, ...contact } = r;
    const state: ContactState = { plan_rev: r.plan_rev };
    if (withRows) state.contact = contact as Selectable<ContactsTable>;
    if (mark_key !== null && mark_rev !== null && mark_outcome_json !== null)
      state.mark = {
        plan_key: mark_key,
        plan_rev: mark_rev,
        outcome_json: mark_outcome_json,
        valid_until: mark_valid_until,
      };
    out.set(r.id, state);
  }
  return byList ? { states: out } : { states: out, in_range: rows.length };
}

/** One contact's planner input, from its rows. */
function planContactOf(rows: ContactRows, crmId: string): PlanContact {
  const row = rows.contact;
  type LinkedRecord = { record: SnapshotRecord; origin: string };
  const byConnection = new Map<string, LinkedRecord>();
  for (const link of rows.links) {
    const record = readSnapshotRecord(JSON.parse(link.payload_json));
    if (record === undefined) continue;
    const current = byConnection.get(link.connection_id);
    // Several records of one connection for one person (an old and a new address): the live, newest wins.
    if (current === undefined || prefer(record, current.record))
      byConnection.set(link.connection_id, { record, origin: link.origin });
  }
  const events: ConsentEvent[] = rows.events.map((e) => fromRow(e).event);
  const baseline = rows.baseline === undefined ? undefined : readBaselines(rows.baseline);
  const resubscribed = new Set(rows.resubscribed);
  const refused: Record<string, { code: string; message: string; email_match_key: string }> = {};
  for (const r of rows.rejections)
    refused[r.connection_id] = { code: r.code, message: r.message, email_match_key: r.email_match_key };

  const flags = row.flags_json === "[]" ? [] : FlagsSchema.parse(JSON.parse(row.flags_json));
  const crmRecord = byConnection.get(crmId)?.record;
  const contact: CanonicalContact = {
    id: row.id,
    type: coreContactType(row.type === "organization" ? "organization" : "person"),
    ...(row.given_name !== null ? { first_name: row.given_name } : {}),
    ...(row.family_name !== null ? { last_name: row.family_name } : {}),
    ...(row.organization_name !== null ? { organisation_name: row.organization_name } : {}),
    ...(row.primary_email !== null ? { primary_email: row.primary_email } : {}),
    other_emails: [],
    lifecycle: {
      inactive: crmRecord?.inactive === true || flags.includes("inactive"),
      deceased: crmRecord?.deceased === true || flags.includes("deceased"),
      erased: row.erased_at !== null,
    },
    do_not_contact: crmRecord?.do_not_contact === true || flags.includes("do_not_contact"),
  };
  const platforms: Record<string, PlatformRecordState> = {};
  for (const [connection, { record, origin }] of byConnection) {
    if (connection === crmId) continue;
    platforms[connection] = {
      ...platformState(record, resubscribed.has(connection)),
      ...(origin === "matched_by_email" && crmRecord !== undefined ? { matched_by_address: true } : {}),
      ...(origin === "concord" ? { created_by_concord: true } : {}),
    };
  }
  return {
    contact,
    events,
    ...(crmRecord !== undefined ? { crm: crmState(crmRecord) } : {}),
    platforms,
    ...(baseline !== undefined ? { baselines: baseline } : {}),
    ...(rows.rejections.length > 0 ? { rejections: refused } : {}),
  };
}

function prefer(candidate: SnapshotRecord, current: SnapshotRecord): boolean {
  if ((candidate.deleted === true) !== (current.deleted === true)) return current.deleted === true;
  return (candidate.updated_at ?? "") > (current.updated_at ?? "");
}
