/**
 * The GrowthZone connector. GrowthZone pushes nothing Concord can rely on, so reads follow its
 * contacts delta (changed or deleted since a moment); each contact is read whole for its email
 * restrictions. Members are read per mapped list, and per list a topic stands for (its own Do Not
 * Contact). Writes: Transactional Only on the primary address for an opt-out from all email (no
 * mass email; invoices still go), a list's Do Not Contact for a topic, names, the primary address,
 * list membership.
 */
import { z } from "zod";
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
  ReadOptions,
  ReadPage,
  RecordsWithConsent,
} from "../connector";
import { err, ok } from "../../core/result";
import {
  applyConsentFirst,
  consentWriteRefusal,
  failureOf,
  optedOutSinceRead,
  succeeded,
  unsupported,
  type Outcome,
} from "../kit/apply-policy";
import { createWatermark, firstSeen, overlapSecondsOption, readStart } from "../kit/incremental-read";
import {
  createGrowthZoneClient,
  PAGE_MAX,
  type GrowthZoneClient,
  type GzContact,
  type GzGroup,
  type GzMember,
  type Restriction,
} from "./client";
import {
  consentObservations,
  deletedRecord,
  LIST,
  marksOfVersion,
  marksPart,
  membersOfVersion,
  membersPart,
  primaryEmail,
  toExternalRecord,
  toUtcIso,
  type TopicListState,
} from "./mapping";

export const GrowthZoneOptionsSchema = z.strictObject({
  /** Rows per page (GrowthZone's maximum is 100). */
  page_size: z.number().int().min(1).max(100).default(100),
  /** How far before the checkpoint the delta starts, for changes GrowthZone records late. */
  overlap_seconds: overlapSecondsOption(600),
  /** Contacts read at once (each is one call; the call budget still caps the rate). */
  concurrency: z.number().int().min(1).max(8).default(2),
});

/**
 * reference/apis-more.md §2.4: no published rate (429 seen at about 8 a second; about one call
 * every 2 s recommended); GrowthZone's own Constant Contact sync is capped at 10,000 records a day,
 * which Concord keeps as the connection's daily budget, consent first.
 */
export const GROWTHZONE_LIMITS: ConnectorLimits = {
  requests_per_second: 4,
  daily_quota: { calls: 10_000, reset: "utc_midnight" },
  max_concurrency: 2,
  batch: { read_page: PAGE_MAX, membership_ids: 1 },
};

/** Contacts of one listing whose details all answering 404 fails the read (`details`). */
const ALL_GONE_MIN = 3;
const VENDOR = "GrowthZone";
const STREAM = "contacts";
const EPOCH = "2000-01-01T00:00:00.000Z";

/**
 * A checkpoint: the delta's time, and the list Do Not Contact marks on the lists topics stand for as
 * last read (`<time> dnc=<list>:<contact>,…`). Setting a list's mark moves no contact's
 * ModifiedDate (QUIRKS.md), so the delta misses it; the marks are compared instead.
 */
function parseCheckpoint(value: string): { at: string; marks: Set<string> | undefined; held: boolean } {
  const [head = value, rest] = value.split(" dnc=");
  const [at = head, ...flags] = head.split(" ");
  return {
    at,
    marks: rest === undefined ? undefined : new Set(rest.split(",").filter((m) => m !== "")),
    held: flags.includes(HELD_FLAG),
  };
}
/** Marks a checkpoint the last read kept where it was (its delta kept changing under it). */
const HELD_FLAG = "held";
const checkpointValue = (at: string, marks: ReadonlySet<string> | undefined, held = false): string =>
  `${at}${held ? ` ${HELD_FLAG}` : ""}${marks === undefined ? "" : ` dnc=${[...marks].sort().join(",")}`}`;

export function createGrowthZoneSession(
  settings: ConnectionSettings,
  runtime: ConnectorRuntime,
): ConnectorSession {
  const opts = GrowthZoneOptionsSchema.parse(settings.options ?? {});
  const client = createGrowthZoneClient(settings, runtime, GROWTHZONE_LIMITS);
  const top = Math.min(opts.page_size, settings.page_size ?? opts.page_size);
  const nowIso = () => runtime.now().toISOString();
  const topicRefs = (settings.constructs ?? []).filter((c) => c.type === LIST);

  /** The lists topics stand for, by id (a name is looked up among the lists). */
  const topicGroups = (groups: readonly GzGroup[]): { id: string; name: string }[] =>
    topicRefs.flatMap((ref) => {
      const g = groups.find(
        (x) =>
          (ref.id !== undefined && String(x.GroupId) === ref.id) ||
          (ref.name !== undefined && x.Name.toLowerCase() === ref.name.toLowerCase()),
      );
      return g ? [{ id: String(g.GroupId), name: g.Name }] : [];
    });

  type Lists = {
    /** Members of the lists asked for (not those with the list's own Do Not Contact). */
    members: Map<string, string[]> | undefined;
    /** Members of the lists asked for that the list's own Do Not Contact stops, by contact. */
    stopped: Map<string, string[]>;
    topics: { id: string; name: string; members: Map<string, boolean> }[];
  };

  const readLists = async (listIds: readonly string[]): Promise<ConnectorResult<Lists>> => {
    let topics: Lists["topics"] = [];
    if (topicRefs.length > 0) {
      const groups = await client.groups();
      if (!groups.ok) return groups;
      topics = topicGroups(groups.value).map((g) => ({ ...g, members: new Map() }));
    }
    const wanted = [...new Set([...listIds, ...topics.map((t) => t.id)])];
    const members = listIds.length > 0 ? new Map<string, string[]>() : undefined;
    const stopped = new Map<string, string[]>();
    const add = (to: Map<string, string[]>, cid: string, id: string) =>
      to.set(cid, [...(to.get(cid) ?? []), id]);
    for (const id of wanted) {
      const m = await client.members(id, "read");
      if (!m.ok) return m;
      const topic = topics.find((t) => t.id === id);
      for (const row of m.value) {
        const cid = String(row.ContactId);
        topic?.members.set(cid, row.DoNotContact);
        // A member with the list's own Do Not Contact is not emailed from it: not in it for sync,
        // and taken out of the platform's copy of it.
        if (members && listIds.includes(id)) add(row.DoNotContact ? stopped : members, cid, id);
      }
    }
    return ok({ members, stopped, topics });
  };

  const topicState = (lists: Lists, contactId: string): TopicListState[] =>
    lists.topics.map((t) => ({
      id: t.id,
      name: t.name,
      member: t.members.has(contactId),
      do_not_contact: t.members.get(contactId) === true,
    }));

  /** Contacts read whole (one call each), a few at once; a contact gone since is null. */
  const details = async (ids: readonly string[]): Promise<ConnectorResult<(GzContact | null)[]>> => {
    const out: (GzContact | null)[] = new Array<GzContact | null>(ids.length).fill(null);
    let failure: ConnectorError | undefined;
    let next = 0;
    const worker = async () => {
      while (failure === undefined && next < ids.length) {
        const i = next++;
        const r = await client.contact(ids[i]!, "read");
        if (!r.ok) failure ??= r.error;
        else out[i] = r.value;
      }
    };
    await Promise.all(Array.from({ length: Math.min(opts.concurrency, ids.length) }, worker));
    if (failure) return err(failure);
    // One contact gone between the listing and its detail is left for a later read; every one of
    // several gone is this installation answering the detail path otherwise (it is UNVERIFIED):
    // a read that went on would read no one, each time, and say it went well.
    if (ids.length >= ALL_GONE_MIN && out.every((c) => c === null))
      return err({
        code: "bad_response",
        message: `GrowthZone answered 404 for the detail (GET /api/contacts/{id}) of every one of ${ids.length} contacts its listing had just named: this installation may serve contacts at another path. Nothing was read as deleted.`,
      });
    return ok(out);
  };

  const toPage = (
    contacts: readonly (GzContact | null)[],
    ids: readonly string[],
    lists: Lists,
    checkpoint: string,
  ): ReadPage => {
    const records: ExternalRecord[] = [];
    const consent: ConsentObservation[] = [];
    contacts.forEach((c, i) => {
      if (!c) {
        records.push(deletedRecord(ids[i]!, nowIso()));
        return;
      }
      const id = String(c.ContactId);
      const topics = topicState(lists, id);
      records.push(
        toExternalRecord(
          c,
          topics,
          lists.members
            ? { list_ids: lists.members.get(id) ?? [], stopped: lists.stopped.get(id) ?? [] }
            : undefined,
        ),
      );
      consent.push(...consentObservations(c, topics, nowIso()));
    });
    return { records, consent, checkpoint: { stream: STREAM, value: checkpoint, taken_at: nowIso() } };
  };

  /** Listings of the delta a read makes at most while contacts change under it. */
  const MAX_DELTA_PASSES = 3;

  async function* read(
    checkpoint: Checkpoint | null,
    readOptions: ReadOptions = {},
  ): AsyncGenerator<ConnectorResult<ReadPage>> {
    const started = nowIso();
    const previous = checkpoint === null ? undefined : parseCheckpoint(checkpoint.value);
    const { full, since } = readStart(previous ? { ...checkpoint!, value: previous.at } : null, {
      ...(readOptions.full !== undefined ? { full: readOptions.full } : {}),
      overlap_ms: opts.overlap_seconds * 1000,
      epoch: EPOCH,
    });
    const lists = await readLists(readOptions.list_ids ?? []);
    if (!lists.ok) {
      yield lists;
      return;
    }
    const first = firstSeen();
    // Each version of a contact is read once (`id@ModifiedDate`).
    const version = firstSeen();
    const marks =
      lists.value.topics.length === 0
        ? undefined
        : new Set(
            lists.value.topics.flatMap((t) =>
              [...t.members].filter(([, dnc]) => dnc).map(([cid]) => `${t.id}:${cid}`),
            ),
          );
    const memberships = () =>
      lists.value.members
        ? {
            memberships: {
              list_ids: [...(readOptions.list_ids ?? [])],
              members: Object.fromEntries(lists.value.members),
              stopped: Object.fromEntries(lists.value.stopped),
            },
          }
        : {};
    let pageNo = 0;
    // Contacts whose list Do Not Contact mark changed since the last read: read first, under the old
    // checkpoint, so a stop before they are stored reads them again.
    if (!full && checkpoint !== null && marks !== undefined) {
      const before = previous?.marks ?? new Set<string>();
      const contactOf = (m: string) => m.slice(m.indexOf(":") + 1);
      const changed = [
        ...[...marks].filter((m) => !before.has(m)),
        ...[...before].filter((m) => !marks.has(m)),
      ];
      // Marks Concord's own writes changed after the last read (an opt-out or opt-in written to a
      // list) are not in that read's marks: the record Concord holds says what it last saw. So
      // does a contact added to a topic's list since (which moves no date either): its membership
      // is what a topic opt-out is written to.
      const marked = [...new Set([...marks, ...before].map(contactOf))];
      const members = [...new Set(lists.value.topics.flatMap((t) => [...t.members.keys()]))];
      const asked = [...new Set([...marked, ...members])];
      if (readOptions.held !== undefined && asked.length > 0) {
        const held = await readOptions.held(asked);
        for (const id of asked) {
          const heldVersion = held.get(id) ?? "";
          const state = topicState(lists.value, id);
          const heldMarks = marksOfVersion(heldVersion);
          const heldMembers = membersOfVersion(heldVersion);
          if (
            (heldMarks !== undefined && heldMarks !== marksPart(state)) ||
            (heldMembers !== undefined && heldMembers !== membersPart(state))
          )
            changed.push(`held:${id}`);
        }
      }
      const moved = changed.map(contactOf).filter((id) => first(id));
      if (moved.length > 0) {
        const read = await details(moved);
        if (!read.ok) {
          yield read;
          return;
        }
        // Read as they are now: the delta below does not read these versions again. One whose
        // detail answers 404 is left out (the delta says when a contact is deleted).
        for (const c of read.value) if (c) version(`${c.ContactId}@${c.ModifiedDate}`);
        const readable = found(moved, read.value);
        yield ok({
          ...toPage(readable.contacts, readable.ids, lists.value, checkpoint.value),
          ...memberships(),
        });
        pageNo += 1;
      }
    }
    // A full read's pages are by contact id, not by change: its checkpoint moves only at the end.
    const watermark = createWatermark(
      full ? "unordered" : "ascending",
      full ? (previous?.at ?? EPOCH) : previous?.at,
      started,
    );
    // Paged by position ($skip: the full listing, a delta GrowthZone would not order, a second
    // holding more than a page), a contact that changes while the read goes on moves to the end, and
    // the contact that moved into its place is skipped (its opt-out never read). So while a pass
    // that paged by position sees a contact changed during it, the delta is listed again (at most
    // MAX_DELTA_PASSES), and each version of a contact is read once.
    const began = Date.parse(started);
    // Contacts still changing under the last pass allowed: one may have been skipped.
    let unsettled = false;
    // A contact listed as there whose detail answered 404: not read, so not past.
    let unread = false;
    // The delta is asked for oldest first (a server that refuses the order, 400, is asked without
    // it). Its pages keep the checkpoint the read began from whatever the order: see below.
    let askOrder = !full;
    for (let pass = 0; pass < (full ? 1 : MAX_DELTA_PASSES); pass++) {
      // Changed during this pass (the second it began in too: GrowthZone's times may be whole
      // seconds): a change during an earlier pass is settled by this one listing it in place.
      const passBegan = pass === 0 ? began : runtime.now().getTime() - 1_000;
      let changedMeanwhile = false;
      // A page listed by position after a change may have skipped a row: only then does a change
      // during the pass call for another.
      let positional = false;
      // A contact deleted while the full listing is paged leaves it, and every row after moves up:
      // when the count drops, the listing goes back as many rows (what it lists twice is read once).
      let total: number | undefined;
      // The delta in the order of change is paged by time: each page lists from a second before the
      // last change the page before ended on (only a second holding more than a page goes by
      // position within it). A contact that changes meanwhile moves past the pages to come, where
      // this pass reads it, and none moves into a page already read; so each page's checkpoint is
      // its start, and a read stopped (the day's budget spent) goes on from there, not from the start.
      let from = since;
      let skip = 0;
      // What the pass listed by time: the count from its start, and the times of the rows listed.
      let countFromStart: number | undefined;
      const listed: number[] = [];
      /**
       * Whether a page listed by time is in the order of change: its rows ascending, and no row
       * before where it starts left unlisted (every row from the pass's start is still counted,
       * those listed before this page's start aside; a contact changed since only moves later).
       * A server that ignored the order fails it, at the latest on the page after its first.
       */
      const listedInOrder = (results: readonly unknown[], count: number): boolean => {
        const times = (results as { ModifiedDate?: string }[]).map((r) =>
          r.ModifiedDate ? Date.parse(toUtcIso(r.ModifiedDate)) : Number.NaN,
        );
        if (times.some((t) => Number.isNaN(t))) return false;
        for (let i = 1; i < times.length; i++) if (times[i]! < times[i - 1]!) return false;
        if (from === since && skip === 0) {
          countFromStart = count;
          return true;
        }
        const start = Date.parse(from);
        if (times.some((t) => t < start)) return false;
        const before = listed.filter((t) => t < start).length;
        return countFromStart !== undefined && count >= countFromStart - before;
      };
      for (;;) {
        let got = full
          ? await client.contactsPage(skip, top)
          : await client.deltaPage(askOrder ? from : since, skip, top, askOrder);
        if (!got.ok && askOrder && got.error.http_status === 400) {
          // Refused the order (at once, or part way): the pass starts again by position from its
          // first row, as for a server that ignores the order; an offset into the ordered listing
          // means nothing in the unordered one.
          askOrder = false;
          from = since;
          skip = 0;
          positional = true;
          total = undefined;
          got = await client.deltaPage(since, skip, top, false);
        }
        if (!got.ok) {
          yield got;
          return;
        }
        const count = got.value.TotalRecordAvailable;
        if (!full && askOrder && !listedInOrder(got.value.Results, count)) {
          // GrowthZone did not list in the order asked: the pass starts again by position, as for a
          // server that refuses the order (what it read already is not read again).
          askOrder = false;
          from = since;
          skip = 0;
          positional = true;
          total = undefined;
          continue;
        }
        const byTime = !full && askOrder;
        if (!byTime || skip > 0) positional = true;
        if (!byTime && total !== undefined && count < total && skip > 0) {
          skip = Math.max(0, skip - (total - count));
          total = count;
          continue;
        }
        total = count;
        const rows = got.value.Results as { ContactId: number; ModifiedDate?: string; IsDeleted?: boolean }[];
        const fresh = rows.filter((r) => version(`${r.ContactId}@${r.ModifiedDate ?? ""}`));
        const live = fresh.filter((r) => r.IsDeleted !== true).map((r) => String(r.ContactId));
        const read = await details(live);
        if (!read.ok) {
          yield read;
          return;
        }
        let last: number | undefined;
        for (const r of rows) {
          if (!r.ModifiedDate) continue;
          const at = toUtcIso(r.ModifiedDate);
          watermark.see(at);
          const t = Date.parse(at);
          if (t > passBegan) changedMeanwhile = true;
          if (!Number.isNaN(t) && (last === undefined || t > last)) last = t;
          if (!Number.isNaN(t)) listed.push(t);
        }
        const deleted = fresh.filter((r) => r.IsDeleted === true).map((r) => String(r.ContactId));
        // A contact the listing names as there whose detail answers 404 is never taken as deleted on
        // a path GrowthZone does not document (that would end them everywhere): left for a later read.
        const readable = found(live, read.value);
        if (readable.ids.length < live.length) unread = true;
        // Where the next page lists from, by time: a second before this page's last change.
        const next =
          byTime && last !== undefined && last - 1_000 > Date.parse(from)
            ? new Date(last - 1_000).toISOString()
            : undefined;
        const page = toPage(
          [...readable.contacts, ...deleted.map(() => null)],
          [...readable.ids, ...deleted],
          lists.value,
          // A full read's pages and a delta listed by position keep the checkpoint the read began
          // from, which moves once the read is complete: rows that crossed a page boundary while
          // contacts changed were skipped, and no page's own times say where they lie. A delta
          // listed by time keeps where this page starts, once the page showed the order held
          // (unless a contact listed was not read).
          checkpointValue(
            full
              ? watermark.value(false, started)
              : byTime && !positional && !unread
                ? from
                : (previous?.at ?? since),
            marks,
          ),
        );
        yield ok({ ...page, ...(pageNo === 0 ? memberships() : {}) });
        pageNo += 1;
        if (rows.length < top || skip + top >= got.value.TotalRecordAvailable) break;
        if (next !== undefined) {
          from = next;
          skip = 0;
        } else skip += top;
      }
      unsettled = changedMeanwhile && positional;
      if (!unsettled) break;
    }
    // Kept once, not again: a delta busy through every read would otherwise never move on (each
    // read listing more); the full read reads what a second busy read skipped. A contact whose
    // detail answered 404 is tried again the same way: the delta lists it again only from here.
    const hold = !full && (unsettled || unread) && previous?.held !== true;
    // The read is complete: its checkpoint moves to where it started (a full read) or to the newest
    // change; a delta whose contacts kept changing through its last pass (or left one unread) keeps the old checkpoint,
    // so the next read lists it again from there (a contact skipped is read then, not lost).
    yield ok({
      records: [],
      consent: [],
      checkpoint: {
        stream: STREAM,
        value: checkpointValue(
          full ? started : hold ? (previous?.at ?? since) : watermark.value(true, started),
          marks,
          hold,
        ),
        taken_at: nowIso(),
      },
      ...(pageNo === 0 ? memberships() : {}),
    });
  }

  const get = async (ids: readonly string[]): Promise<ConnectorResult<RecordsWithConsent>> => {
    const unique = [...new Set(ids)];
    const lists = await readLists([]);
    if (!lists.ok) return lists;
    const read = await details(unique);
    if (!read.ok) return read;
    // One whose detail answers 404 is left out, as a read leaves it: only the delta's IsDeleted
    // says a contact is deleted (a deleted record would end them everywhere).
    const readable = found(unique, read.value);
    const page = toPage(readable.contacts, readable.ids, lists.value, nowIso());
    return ok({ records: page.records, consent: page.consent });
  };

  return {
    check: async () => {
      const groups = await client.groups();
      if (!groups.ok) return groups;
      const missing = topicRefs.filter(
        (ref) =>
          topicGroups(groups.value).length === 0 ||
          !groups.value.some(
            (g) => String(g.GroupId) === ref.id || g.Name.toLowerCase() === (ref.name ?? "").toLowerCase(),
          ),
      );
      if (missing.length > 0)
        return err({
          code: "validation_failed",
          message: `topics[].constructs names ${missing.map((m) => `"${m.name ?? m.id ?? ""}"`).join(", ")} as a list, but GrowthZone has no list or committee by that name or id.`,
        });
      return ok({ account_label: `GrowthZone (${groups.value.length} lists and committees)` });
    },
    read: (checkpoint, o) => read(checkpoint, o),
    get,
    lists: async () => {
      const r = await client.groups();
      if (!r.ok) return r;
      return ok(
        r.value.map((g) => ({
          external_id: String(g.GroupId),
          name: g.Name,
          ...(g.MemberCount !== undefined ? { member_count: g.MemberCount } : {}),
          ...(g.SyncWithNewsletter !== undefined ? { newsletter_sync: g.SyncWithNewsletter } : {}),
        })),
      );
    },
    apply: (operations) => {
      // Each list's members are read once a batch, not once an operation: a list of 10,000 is
      // 100 calls, and a bulk unsubscribe of 100 people would otherwise spend the day's quota.
      const lists: ListMembers = new Map();
      return applyConsentFirst(VENDOR, operations, async (op) => [
        { op_id: op.op_id, ...(await applyOne(client, op, lists)) },
      ]);
    },
  };
}

const failed = (e: ConnectorError): Outcome => failureOf(VENDOR, e);

/** The contacts `details` found among `ids` (one answering 404 is null there), with their ids. */
const found = (
  ids: readonly string[],
  contacts: readonly (GzContact | null)[],
): { ids: string[]; contacts: GzContact[] } => ({
  ids: ids.filter((_, i) => contacts[i] !== null),
  contacts: contacts.filter((c) => c !== null),
});

/** How much email an address's restriction stops: none, mass email, or every email. */
const RESTRICTION_RANK: Readonly<Record<Restriction, number>> = {
  None: 0,
  TransactionalOnly: 1,
  DoNotContact: 2,
};

/** A batch's reads of each list's members, by list id (kept as the batch's writes change them). */
type ListMembers = Map<string, Promise<ConnectorResult<Map<string, GzMember>>>>;

async function applyOne(
  client: GrowthZoneClient,
  op: ConnectorOperation,
  lists: ListMembers,
): Promise<Outcome> {
  switch (op.kind) {
    case "record_opt_out":
    case "record_opt_in":
      return applyConsent(client, op, lists);
    case "update_contact": {
      const body: Record<string, string | null> = {};
      if (op.first_name !== undefined) body["FirstName"] = op.first_name;
      if (op.last_name !== undefined) body["LastName"] = op.last_name;
      const rejected: string[] = [];
      for (const [name, value] of Object.entries(op.fields ?? {})) {
        if (name === "FirstName" || name === "LastName" || name === "OrganizationName") body[name] = value;
        else rejected.push(name);
      }
      if (rejected.length > 0)
        return {
          status: "failed",
          code: "validation_failed",
          message: `GrowthZone has no writable contact field for: ${rejected.join(", ")}.`,
        };
      if (Object.keys(body).length === 0) return succeeded(op.external_id, "already_applied");
      const r = await client.request({
        method: "PUT",
        path: `/api/contacts/${encodeURIComponent(op.external_id)}`,
        json: body,
        priority: "write",
      });
      return r.ok ? succeeded(op.external_id) : failed(r.error);
    }
    case "change_email": {
      const c = await client.contact(op.external_id, "write");
      if (!c.ok) return failed(c.error);
      if (!c.value)
        return {
          status: "failed",
          code: "not_found",
          message: `GrowthZone contact ${op.external_id} is gone.`,
        };
      const primary = primaryEmail(c.value);
      if (primary?.EmailAddress.toLowerCase() === op.new_email.trim().toLowerCase())
        return succeeded(op.external_id, "already_applied");
      const existing = c.value.Emails.find(
        (e) => e.EmailAddress.toLowerCase() === op.new_email.trim().toLowerCase(),
      );
      // A restriction is kept on an address, not on the contact: the address made primary takes the
      // old primary's where it is stricter, or staff's Do Not Contact (or an opt-out) would stay on
      // an address no email goes to any more.
      const carried =
        primary !== undefined &&
        RESTRICTION_RANK[primary.Restriction] > RESTRICTION_RANK[existing?.Restriction ?? "None"]
          ? { Restriction: primary.Restriction }
          : {};
      const r = existing
        ? await client.request({
            method: "PUT",
            path: `/api/contacts/${encodeURIComponent(op.external_id)}/emails/${existing.ContactEmailAddressId}`,
            json: { IsDefault: true, ...carried },
            priority: "write",
          })
        : primary
          ? await client.request({
              method: "PUT",
              path: `/api/contacts/${encodeURIComponent(op.external_id)}/emails/${primary.ContactEmailAddressId}`,
              json: { EmailAddress: op.new_email.trim() },
              priority: "write",
            })
          : await client.request({
              method: "POST",
              path: `/api/contacts/${encodeURIComponent(op.external_id)}/emails`,
              json: { EmailAddress: op.new_email.trim(), IsDefault: true },
              priority: "write",
            });
      return r.ok ? succeeded(op.external_id) : failed(r.error);
    }
    case "add_list_members":
    case "remove_list_members": {
      for (const listId of op.list_ids)
        for (const id of new Set(op.external_ids)) {
          const r =
            op.kind === "add_list_members"
              ? await client.request({
                  method: "POST",
                  path: `/api/groups/${encodeURIComponent(listId)}/members`,
                  json: { ContactId: Number(id) },
                  priority: "write",
                })
              : await client.request({
                  method: "DELETE",
                  path: `/api/groups/${encodeURIComponent(listId)}/members/${encodeURIComponent(id)}`,
                  priority: "write",
                  accept: [404],
                });
          if (!r.ok) return failed(r.error);
        }
      return succeeded();
    }
    case "create_contact":
      return unsupported(
        "Concord does not create GrowthZone contacts: its API has no lookup by address, so a retried create could make a second one.",
      );
    case "upsert_contacts":
      return unsupported("GrowthZone has no bulk import; Concord writes its contacts one by one.");
    case "create_list":
    case "rename_list":
    case "delete_list":
      return unsupported("Concord follows GrowthZone's lists and committees and never changes them.");
    case "remove_contact":
      return unsupported("Concord never deletes CRM records; a contact ends in GrowthZone itself.");
    case "erase_contact":
      return unsupported(
        "GrowthZone's API has no contact deletion: delete the contact in GrowthZone. Concord keeps the suppression.",
      );
    case "request_resubscribe":
      return {
        status: "pending_contact_action",
        code: "consent_requires_contact_action",
        message: "GrowthZone sends no confirmation email: the person must opt in again themselves.",
      };
  }
}

async function applyConsent(
  client: GrowthZoneClient,
  op: Extract<ConnectorOperation, { kind: "record_opt_out" | "record_opt_in" }>,
  lists: ListMembers,
): Promise<Outcome> {
  const optOut = op.kind === "record_opt_out";
  const refused = consentWriteRefusal(op, {
    construct_types: [LIST],
    where:
      "GrowthZone keeps consent on an email address (all email) or on a list's membership, not by account.",
    restores: "Concord lifts a GrowthZone restriction only for the person's own.",
  });
  if (refused) return refused;
  if (op.scope.kind === "construct") {
    const listId = op.scope.construct.id;
    let read = lists.get(listId);
    if (read === undefined) {
      read = client
        .members(listId, "consent")
        .then((r) => (r.ok ? ok(new Map(r.value.map((x) => [String(x.ContactId), x]))) : r));
      lists.set(listId, read);
    }
    const members = await read;
    // A failed read is not kept: the next operation of the list reads it again.
    if (!members.ok) {
      lists.delete(listId);
      return failed(members.error);
    }
    const m = members.value.get(op.external_id);
    // Not a member: the list sends them nothing, and GrowthZone keeps no flag for non-members.
    if (!m)
      return {
        ...succeeded(op.external_id, "already_applied"),
        message: `Not a member of list ${listId}: nothing to mark.`,
      };
    if (m.DoNotContact === optOut) return succeeded(op.external_id, "already_applied");
    const since = optedOutSinceRead(VENDOR, op, m.DoNotContact, `Do Not Contact on list ${listId}`);
    if (since) return since;
    const r = await client.request({
      method: "PUT",
      path: `/api/groups/${encodeURIComponent(listId)}/members/${encodeURIComponent(op.external_id)}`,
      json: { DoNotContact: optOut },
      priority: "consent",
    });
    if (!r.ok) return failed(r.error);
    const what = `list ${listId}'s Do Not Contact`;
    if (!shows(r.value.body, "DoNotContact")) {
      // An answer that does not show the flag says nothing of the write: the list is read again.
      lists.delete(listId);
      const again = await client.members(listId, "consent");
      if (!again.ok) return failed(again.error);
      const fresh = new Map(again.value.map((x) => [String(x.ContactId), x]));
      lists.set(listId, Promise.resolve(ok(fresh)));
      const now = fresh.get(op.external_id);
      // Not a member any more: the list sends them nothing, as before the write.
      if (now === undefined) return succeeded(op.external_id, "already_applied");
      return (
        writeNotTaken({ DoNotContact: now.DoNotContact }, "DoNotContact", optOut, what, "read back") ??
        succeeded(op.external_id)
      );
    }
    const kept = writeNotTaken(r.value.body, "DoNotContact", optOut, what);
    if (kept) return kept;
    members.value.set(op.external_id, { ...m, DoNotContact: optOut });
    return succeeded(op.external_id);
  }
  const c = await client.contact(op.external_id, "consent");
  if (!c.ok) return failed(c.error);
  if (!c.value)
    return {
      status: "failed",
      code: "not_found",
      message: `GrowthZone contact ${op.external_id} does not exist.`,
    };
  const primary = primaryEmail(c.value);
  if (!primary)
    return {
      status: "failed",
      code: "validation_failed",
      message: `GrowthZone contact ${op.external_id} has no email address to restrict.`,
    };
  const restricted = primary.Restriction !== "None";
  if (restricted === optOut) return succeeded(op.external_id, "already_applied");
  const since = optedOutSinceRead(VENDOR, op, restricted, `${primary.Restriction} on the primary address`);
  if (since) return since;
  // Do Not Contact is staff's: it stops every email, invoices and receipts too, for reasons an
  // opt-in to marketing says nothing about. The person's opt-in lifts only no mass email.
  if (!optOut && primary.Restriction === "DoNotContact")
    return {
      status: "failed",
      code: "conflict",
      message: `Staff set Do Not Contact on the contact's primary address in GrowthZone, which stops every email, invoices too; the person has opted in since, and Concord lifts only Transactional Only (no mass email). Clear Do Not Contact in GrowthZone if they may be emailed.`,
    };
  // An opt-out is "Transactional Only": no mass email, while invoices and receipts still go.
  const wanted: Restriction = optOut ? "TransactionalOnly" : "None";
  const r = await client.request({
    method: "PUT",
    path: `/api/contacts/${encodeURIComponent(op.external_id)}/emails/${primary.ContactEmailAddressId}`,
    json: { Restriction: wanted },
    priority: "consent",
  });
  if (!r.ok) return failed(r.error);
  const what = "the primary address's restriction";
  if (!shows(r.value.body, "Restriction")) {
    // An answer that does not show the restriction says nothing of the write: the contact is read again.
    const again = await client.contact(op.external_id, "consent");
    if (!again.ok) return failed(again.error);
    const address = again.value?.Emails.find(
      (e) => e.ContactEmailAddressId === primary.ContactEmailAddressId,
    );
    if (address === undefined) return writeUnseen(what, "the address is gone from the contact");
    return (
      writeNotTaken({ Restriction: address.Restriction }, "Restriction", wanted, what, "read back") ??
      succeeded(op.external_id)
    );
  }
  const kept = writeNotTaken(r.value.body, "Restriction", wanted, what);
  return kept ?? succeeded(op.external_id);
}

/** Whether a write's answer shows `field` (GrowthZone's answers to a write are UNVERIFIED). */
const shows = (body: unknown, field: string): boolean =>
  body !== null && typeof body === "object" && field in body;

/** A consent write whose read back cannot show it took: not done, and said so. */
const writeUnseen = (what: string, why: string): Outcome => ({
  status: "failed",
  code: "conflict",
  message: `GrowthZone accepted the write of ${what}, but reading it back could not show it took (${why}).`,
});

/**
 * A consent write GrowthZone answered 2xx but whose answer shows the field with another value than
 * the one written: not done (a field GrowthZone does not know is ignored, not refused; the names
 * are UNVERIFIED), and said so. An answer that does not show the field is checked by reading the
 * record back (`shows`), never taken as done.
 */
function writeNotTaken(
  body: unknown,
  field: string,
  written: unknown,
  what: string,
  seen: "answered" | "read back" = "answered",
): Outcome | undefined {
  if (body === null || typeof body !== "object" || !(field in body)) return undefined;
  const shown = (body as Record<string, unknown>)[field];
  if (shown === written) return undefined;
  return {
    status: "failed",
    code: "validation_failed",
    message: `GrowthZone accepted the write of ${what} but ${seen} with ${field} ${JSON.stringify(shown)}, not ${JSON.stringify(written)}: it did not take. Check the field's name for this GrowthZone version.`,
  };
}
