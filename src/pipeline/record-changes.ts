/**
 * The *record* stage (DESIGN.md §3): one batch of external records and consent observations becomes
 * snapshots, identity (links, new contacts, review items) and consent ledger events, all inside the
 * caller's transaction so they commit with the checkpoint that covers them.
 */
import { z } from "zod";
import { scopeKey, type ConsentEvent, type Scope } from "../core/consent/consent-event";
import { decisionFor, foldChannelConsent } from "../core/consent/consent-state";
import { sameObservedScope, type ObservedScope } from "../core/consent/system-consent";
import { endingClearedEventId, endingEventId } from "../core/consent/record-ending";
import { normaliseEmail } from "../core/identity/normalise-email";
import { matchRecord, type AmbiguityReason } from "../core/identity/match-record";
import type { ConnectorRole, ConsentObservation, ExternalRecord } from "../connectors/connector";
import { appendConsentEvents, eventsForContact, type ConsentEventInput } from "../ledger/consent-ledger";
import type { ConsentEventDraft } from "../ledger/consent-event-id";
import { JsonValueSchema, type JsonValue, type StoreSession } from "../store/ports";
import { contentHash } from "./content-hash";
import { keepUnread } from "./keep-unread";
import { addressHash, suppressionSalt } from "./suppression-hash";
import { resolveObservedScope, type ScopeMapping } from "./resolve-observed-scope";
import { loadMatchIndex, PageFacts, storeContactType } from "./store-match-index";
import { recordEmail, StoredConsentStateSchema } from "./stored-snapshot";
import { lockForTransaction } from "../store/advisory-lock";

/** Who is recording: the connection, its system and role, and the pair's topic mapping. */
export type RecordContext = {
  connection_id: string;
  system: string;
  role: ConnectorRole;
  mapping: ScopeMapping;
  now: () => Date;
};

/** What one or more batches did; every count is per batch entry, not per distinct person. */
export type RecordCounts = {
  records_seen: number;
  records_changed: number;
  records_unchanged: number;
  contacts_created: number;
  links_by_email: number;
  /** Linked records whose primary address changed: the contact's primary moved, the old one kept. */
  email_changes: number;
  review_items_opened: number;
  /** Records that matched several contacts (or another's address) and stayed unlinked. */
  ambiguous_records: number;
  consent_events_appended: number;
  consent_events_duplicate: number;
  /** `resubscribe_requested` events derived from an opt-out cleared on a record (a flag the system keeps no history of). */
  resubscribe_requests: number;
  /** Opt-ins of ambiguous records, not attributed to anyone (an opt-in must never be guessed). */
  held_opt_ins: number;
  /**
   * Other non-opt-out observations of ambiguous records (resubscribe requests, deliverability), and
   * observations of a record gone for good whose address nobody in Concord holds.
   */
  held_observations: number;
  /** Constructs (CRM consent categories…) with no configured topic, recorded under their slug. */
  unmapped_constructs: string[];
  /** Stored records whose list memberships a membership read changed. */
  memberships_changed: number;
  /**
   * Records at an erased address (the suppression list) that no contact is linked to: refused, never
   * imported again (DESIGN.md §2 rule 8); skip reason `erased`.
   */
  records_refused_erased: number;
  /**
   * Records older, by their system's own modification time, than the snapshot already stored (a
   * poll's page read before a webhook's re-read of the same record and recorded after it): they
   * change nothing back; their opt-outs are still recorded.
   */
  records_stale: number;
};

export const emptyCounts = (): RecordCounts => ({
  records_seen: 0,
  records_changed: 0,
  records_unchanged: 0,
  contacts_created: 0,
  links_by_email: 0,
  email_changes: 0,
  review_items_opened: 0,
  ambiguous_records: 0,
  consent_events_appended: 0,
  consent_events_duplicate: 0,
  resubscribe_requests: 0,
  held_opt_ins: 0,
  held_observations: 0,
  unmapped_constructs: [],
  memberships_changed: 0,
  records_refused_erased: 0,
  records_stale: 0,
});

export function addCounts(into: RecordCounts, from: RecordCounts): void {
  for (const key of Object.keys(from) as (keyof RecordCounts)[]) {
    if (key === "unmapped_constructs") {
      for (const c of from.unmapped_constructs)
        if (!into.unmapped_constructs.includes(c)) into.unmapped_constructs.push(c);
    } else into[key] += from[key];
  }
}

type Identity =
  | { kind: "contact"; contact_id: string }
  | { kind: "ambiguous"; contact_ids: string[]; reason: AmbiguityReason }
  /** A deleted record we never linked and that carries no consent: nothing to attach it to. */
  | { kind: "none" };

/** The part of a stored snapshot the record stage reads back: addresses, consent facts, lists. */
const SnapshotViewSchema = z.object({
  emails: z
    .array(z.object({ address: z.string(), primary: z.boolean(), inactive: z.boolean().optional() }))
    .default([]),
  consent_state: StoredConsentStateSchema,
  list_ids: z.array(z.string()).optional(),
  stopped_list_ids: z.array(z.string()).optional(),
  deceased: z.boolean().optional(),
  inactive: z.boolean().optional(),
  deleted: z.boolean().optional(),
  updated_at: z.string().optional().catch(undefined),
});
type SnapshotView = z.infer<typeof SnapshotViewSchema>;

const matchKeyOf = (address: string | undefined): string | null => {
  if (address === undefined) return null;
  const n = normaliseEmail(address);
  return n.ok ? n.match_key : null;
};

/**
 * Records one batch inside `tx` (which must be a transaction) and returns what it did.
 * `beforeLedger` is the rest of the caller's work in the same transaction that needs the batch's
 * records but not its consent events (memberships, the checkpoint): it runs before the events are
 * appended, because an append holds the ledger's head, which every appender of the installation
 * waits for, until the transaction commits. `appendedFor` collects the contacts that consent
 * events were appended for (a record's own contact, or others holding an opted-out address).
 */
export async function recordChanges(
  tx: StoreSession,
  ctx: RecordContext,
  batch: { records: readonly ExternalRecord[]; consent: readonly ConsentObservation[] },
  beforeLedger?: () => Promise<void>,
  appendedFor?: Set<string>,
): Promise<RecordCounts> {
  if (!tx.inTransaction) throw new Error("recordChanges must run inside store.transaction");
  const counts = emptyCounts();
  const observed_at = ctx.now().toISOString();
  const withConsent = new Set(batch.consent.map((c) => c.external_id));
  // A read can repeat a record (overlap windows); the last copy is the newest.
  const records = new Map<string, ExternalRecord>();
  for (const r of batch.records) records.set(r.external_id, r);
  // A partial re-read (a webhook's) is completed from its last snapshot before its addresses are read.
  const partial = [...records.values()].filter((r) => r.unread !== undefined);
  if (partial.length > 0) {
    const last = await tx.snapshots.getMany(
      ctx.connection_id,
      partial.map((r) => r.external_id),
    );
    for (const r of partial) records.set(r.external_id, keepUnread(r, last.get(r.external_id)?.payload));
  }
  // An observation whose record is not in the batch is identified by its address: checked too.
  const refused = await erasedRecords(tx, ctx, [
    ...records.values(),
    ...batch.consent.filter((o) => !records.has(o.external_id)).map(observationRecord),
  ]);
  for (const id of refused) records.delete(id);
  counts.records_refused_erased = refused.size;
  // Two workers reading two systems at once never both make a contact for one address: whoever
  // matches an address holds its lock until this batch commits, and the other then finds the contact.
  await lockForTransaction(
    tx,
    [
      ...[...records.values()].map((r) => `match:${matchKeyOf(recordEmail(r.emails)) ?? ""}`),
      ...batch.consent.map((o) => `match:${matchKeyOf(o.email === "" ? undefined : o.email) ?? ""}`),
    ].filter((name) => name !== "match:"),
  );

  // Read under the address locks, so no other batch changes who holds these addresses meanwhile.
  const page = await PageFacts.load(
    tx,
    ctx.connection_id,
    [...records.values()].map((r) => ({
      external_id: r.external_id,
      match_key: matchKeyOf(recordEmail(r.emails)),
    })),
  );
  const identities = new Map<string, Identity>();
  /** Records older than their stored snapshot: only their opt-outs are recorded. */
  const stale = new Set<string>();
  const derived: ConsentObservation[] = [];
  /** Opt-outs derived from an ended record: about the person, not the address. */
  const ended = new Set<ConsentObservation>();
  /** Opt-outs derived from a fact without history set again: recorded only where nothing else says so. */
  const setAgain = new Set<ConsentObservation>();
  /** Consents withdrawn on a record without history: news only where no opt-out in force covers the scope (`withdrawalIsNews`). */
  const withdrawn = new Set<ConsentObservation>();
  for (let record of records.values()) {
    counts.records_seen += 1;
    const previous = page.snapshots.get(record.external_id);
    // A record as stored and linked (what an overlap window reads again): its snapshot would not
    // change, nothing differs to derive an act from, and it belongs to the contact it is linked to.
    const hash = record.list_ids === undefined ? undefined : contentHash(record);
    if (previous !== undefined && hash === previous.content_hash) {
      const link = await page.link(tx, ctx.connection_id, record.external_id);
      if (link !== undefined) {
        counts.records_unchanged += 1;
        identities.set(record.external_id, { kind: "contact", contact_id: link.contact_id });
        continue;
      }
    }
    // A record the system last modified before the stored one was (a poll's page read before a
    // webhook's re-read of this record, recorded after it): it is what the record was, not what it
    // is. Stored, it would turn the re-read's fresh opt-out back into a cleared flag, a resubscribe
    // request nobody made. It belongs to whoever the stored record's contact is.
    if (previous !== undefined && olderThanStored(record, previous.payload)) {
      counts.records_stale += 1;
      stale.add(record.external_id);
      const link = await page.link(tx, ctx.connection_id, record.external_id);
      if (link !== undefined)
        identities.set(record.external_id, { kind: "contact", contact_id: link.contact_id });
      continue;
    }
    const before = previous === undefined ? undefined : SnapshotViewSchema.parse(previous.payload);
    // A read that did not ask for memberships (a webhook's re-read) says nothing about them: keep the last known.
    if (record.list_ids === undefined && before?.list_ids !== undefined)
      record = {
        ...record,
        list_ids: before.list_ids,
        ...(before.stopped_list_ids !== undefined ? { stopped_list_ids: before.stopped_list_ids } : {}),
      };
    const { changed } = await tx.snapshots.put({
      connection_id: ctx.connection_id,
      external_id: record.external_id,
      content_hash: hash ?? contentHash(record),
      payload: toJson(record),
    });
    if (changed) counts.records_changed += 1;
    else counts.records_unchanged += 1;

    const identity = await resolveIdentity(
      tx,
      ctx,
      record,
      before,
      withConsent.has(record.external_id),
      counts,
      page,
    );
    identities.set(record.external_id, identity);

    derived.push(...clearedOptOuts(record, before, observed_at));
    for (const o of withdrawnConsents(record, before, observed_at)) {
      derived.push(o);
      withdrawn.add(o);
    }
    for (const o of setAgainOptOuts(record, before, observed_at)) {
      derived.push(o);
      setAgain.add(o);
    }
    if (ctx.role === "crm")
      for (const o of endedRecordOptOuts(record, before, ctx.connection_id)) {
        derived.push(o);
        ended.add(o);
      }
  }

  const recordsById = new Map(batch.records.map((r) => [r.external_id, r]));
  const drafts: ConsentEventInput[] = [];
  const fromFlag: boolean[] = [];
  const observations = [
    ...batch.consent.map((o) => ({ o, flag: false })),
    ...derived.map((o) => ({ o, flag: o.kind === "resubscribe_requested" })),
  ];
  for (const { o: observation, flag } of observations) {
    if (refused.has(observation.external_id)) continue;
    // What a stale read says of consent was true when read, and the stored read has said what
    // holds since; an opt-out it shows is still recorded: none is ever lost to an ordering.
    if (stale.has(observation.external_id) && observation.kind !== "opt_out") continue;
    let identity = identities.get(observation.external_id);
    if (identity === undefined) {
      // An observation whose record is not in the batch: identify it by link, else by its address;
      // one whose record is gone for good, by its address alone (there is no record to link).
      identity =
        observation.record_gone === true
          ? await goneRecordIdentity(tx, ctx, page, observation)
          : await resolveIdentity(tx, ctx, observationRecord(observation), undefined, true, counts, page);
      identities.set(observation.external_id, identity);
    }
    const resolved = resolveObservedScope(observation.scope, ctx.mapping);
    if (
      resolved.unmapped_construct !== undefined &&
      !counts.unmapped_constructs.includes(resolved.unmapped_construct)
    )
      counts.unmapped_constructs.push(resolved.unmapped_construct);
    let contactIds: string[];
    if (identity.kind === "contact")
      contactIds = [
        identity.contact_id,
        ...(observation.kind === "opt_out" && !ended.has(observation)
          ? await othersHoldingAddress(tx, page, observation, identity.contact_id)
          : []),
      ];
    else if (identity.kind === "ambiguous" && observation.kind === "opt_out")
      // No opt-out is lost: an opt-out of an address suppresses it for everyone who may hold it.
      contactIds = identity.contact_ids;
    else {
      if (observation.kind === "opt_in") counts.held_opt_ins += 1;
      else counts.held_observations += 1;
      continue;
    }
    for (const contact_id of contactIds) {
      if (
        (setAgain.has(observation) &&
          !(await setAfterItsClear(tx, ctx, contact_id, resolved.scope, drafts))) ||
        (withdrawn.has(observation) && !(await withdrawalIsNews(tx, contact_id, resolved.scope, observed_at)))
      ) {
        counts.consent_events_duplicate += 1;
        continue;
      }
      if (
        await alreadyKnownAct(
          tx,
          ctx,
          observation,
          contact_id,
          resolved.scope,
          recordsById.get(observation.external_id),
        )
      ) {
        counts.consent_events_duplicate += 1;
        continue;
      }
      // Opt-outs not in the ledger yet count too: those drafted before this one, and the record's
      // own in this batch (a webhook's re-read brings the member as it reads now, subscribed again,
      // beside the opt-out the delivery announced).
      const draft = await asItsSignupAllows(tx, observation, contact_id, resolved.scope, () => [
        ...drafts.filter((d) => d.contact_id === contact_id),
        ...observations
          .filter(({ o }) => o.kind === "opt_out" && o.external_id === observation.external_id)
          .map(({ o }) => ({
            kind: o.kind,
            scope: resolveObservedScope(o.scope, ctx.mapping).scope,
            occurred_at: o.occurred_at,
            source: { connection: ctx.connection_id },
            mechanism: o.mechanism,
          })),
      ]);
      drafts.push(toEventDraft(draft, contact_id, resolved.scope, ctx, observed_at));
      fromFlag.push(flag);
    }
  }

  await beforeLedger?.();
  if (drafts.length > 0) {
    const results = await appendConsentEvents(tx, drafts);
    for (const [i, result] of results.entries()) {
      if (result.kind === "rejected")
        // A connector produced an observation the ledger cannot hold: fail the batch (and keep the
        // checkpoint) rather than lose a consent fact.
        throw new Error(`consent observation rejected by the ledger (${result.code}): ${result.message}`);
      if (result.kind === "appended") {
        counts.consent_events_appended += 1;
        const draft = drafts[i];
        if (draft !== undefined) appendedFor?.add(draft.contact_id);
        if (fromFlag[i] === true) counts.resubscribe_requests += 1;
      } else counts.consent_events_duplicate += 1;
    }
  }
  return counts;
}

/**
 * The other contacts whose primary address is the one an opt-out was made at: a duplicate in the
 * CRM (two constituents, one address; the CRM is the system of record for who is who, so each is a
 * contact and the address goes to review) must not keep the address mailed through the other. No
 * opt-out is lost: an opt-out of an address suppresses it for everyone who holds it, as for a
 * platform record that could be several people. (An ended record's opt-out, deceased, inactive or
 * deleted, is about the person, not the address: the caller keeps it theirs.)
 */
async function othersHoldingAddress(
  tx: StoreSession,
  page: PageFacts,
  observation: ConsentObservation,
  contactId: string,
): Promise<string[]> {
  return (await holdersOfAddress(tx, page, observation)).filter((id) => id !== contactId);
}

/** The live contacts whose primary address is the observation's. */
async function holdersOfAddress(
  tx: StoreSession,
  page: PageFacts,
  observation: ConsentObservation,
): Promise<string[]> {
  const key = matchKeyOf(observation.email === "" ? undefined : observation.email);
  if (key === null) return [];
  return (await page.holdersOf(tx, key))
    .filter((c) => c.email_match_key === key && c.erased_at === null)
    .map((c) => c.id);
}

/**
 * The records of a batch at an erased address that no contact is linked to: nothing of them is kept
 * (no snapshot, link, contact or consent event). A record already linked to a live contact stays its.
 */
async function erasedRecords(
  tx: StoreSession,
  ctx: RecordContext,
  records: readonly ExternalRecord[],
): Promise<Set<string>> {
  const refused = new Set<string>();
  const salt = await suppressionSalt(tx, false);
  if (salt === undefined || records.length === 0) return refused;
  const hashOf = new Map<string, string>();
  for (const r of records) {
    const key = matchKeyOf(recordEmail(r.emails));
    if (key !== null) hashOf.set(r.external_id, addressHash(salt, key));
  }
  const suppressed = await tx.suppressions.suppressed([...new Set(hashOf.values())]);
  for (const [externalId, hash] of hashOf)
    if (suppressed.has(hash) && (await tx.links.find(ctx.connection_id, externalId)) === undefined)
      refused.add(externalId);
  return refused;
}

/**
 * An opt-out read with mechanism `unknown` is the act already in the ledger when that act came from
 * the same connection at the same instant with its mechanism known: a cheaper read (a full read past
 * a connector's look-back) saw less of it, and it is not a second opt-out. An opt-out whose time
 * the system does not give (`time_unknown`) is known while the latest event from its record is it.
 */
async function alreadyKnownAct(
  tx: StoreSession,
  ctx: RecordContext,
  o: ConsentObservation,
  contact_id: string,
  scope: Scope,
  /** The record as this read shows it, when it is in the batch. */
  shown?: ExternalRecord,
): Promise<boolean> {
  const record = o.evidence.source_record_id;
  if (o.kind === "opt_out" && o.time_unknown === true && record !== undefined) {
    // Dated when seen: each read would date it anew. It is known while this record's last word on
    // the scope in the ledger (in the order recorded, not by date: a cleared flag's date may be a
    // stale one) is this opt-out: the flag cleared since (its resubscribe request, named after the
    // record) ends that, and the flag set again is a new opt-out. Judged per record: a person may
    // hold two records in one system (a duplicate matched by address), each with its own flag.
    const key = scopeKey(scope);
    const ofRecord = `${o.external_id}:`;
    // Of the events derived from the record (a fact cleared or set again, the record ended), only
    // those about a fact the record shows opted out now can be about this opt-out, which it shows
    // now: another address's flag cleared and still clear, or the record made inactive, is not it,
    // and would otherwise re-date this opt-out past an opt-in the person made since.
    const aboutThis = (from: string): boolean => {
      if (shown === undefined) return true;
      const fact = factOfEventId(o.external_id, from);
      return (
        fact !== undefined && shown.consent_state.some((f) => f.source === fact && f.status === "opted_out")
      );
    };
    let latest: ConsentEvent | undefined;
    for (const { event: e } of await eventsForContact(tx, contact_id)) {
      if (e.kind === "deliverability" || e.source.connection !== ctx.connection_id) continue;
      const from = e.evidence.source_record_id ?? "";
      if (scopeKey(e.scope) === key && (from === record || (from.startsWith(ofRecord) && aboutThis(from))))
        latest = e;
    }
    // The person's own opt-out is never another's read again: between two reads the account may
    // have lifted its own and the person left themselves, which the account cannot undo.
    return (
      latest?.kind === "opt_out" &&
      latest.evidence.source_record_id === record &&
      !(o.actor.kind === "contact" && latest.actor.kind !== "contact")
    );
  }
  if (o.kind !== "opt_out" || o.mechanism !== "unknown") return false;
  const at = Date.parse(o.occurred_at);
  // The same act is of the same scope: another topic's opt-out made at the same instant (staff
  // entering dates at midnight) is an opt-out of its own.
  const key = scopeKey(scope);
  return (await eventsForContact(tx, contact_id)).some(
    ({ event: e }) =>
      e.kind === "opt_out" &&
      e.mechanism !== "unknown" &&
      e.source.connection === ctx.connection_id &&
      scopeKey(e.scope) === key &&
      Date.parse(e.occurred_at) === at,
  );
}

/** An opt-out as the sign-up check reads it: recorded, drafted in this batch, or observed in it. */
type OptOutSeen = {
  kind: string;
  scope?: Scope | undefined;
  occurred_at: string;
  source: { connection: string };
  mechanism: string;
};

/**
 * A person's opt-in that confirms an earlier sign-up (`of_signup_at`) is theirs only if none of
 * their opt-outs (of all email, or of its scope) was made between the sign-up and it (before it,
 * when the system keeps no time of the sign-up). With one in
 * between, the subscription came after the opt-out: an account user or another integration
 * subscribed the person again, and the sign-up's traces (a form source, a confirmation IP) stayed
 * on the record. It is then the account's opt-in, which lifts only that account's own opt-outs
 * (DESIGN.md §2 rules 3 and 4).
 */
async function asItsSignupAllows(
  tx: StoreSession,
  o: ConsentObservation,
  contact_id: string,
  scope: Scope,
  /** Opt-outs of the person not in the ledger yet (this batch's), asked only for such an opt-in. */
  unrecorded: () => readonly OptOutSeen[],
): Promise<ConsentObservation> {
  if (o.kind !== "opt_in" || o.of_signup_at === undefined) return o;
  // A sign-up the system keeps no time of came before every opt-out that precedes the opt-in.
  const signup = o.of_signup_at === null ? -Infinity : Date.parse(o.of_signup_at);
  const confirmed = Date.parse(o.occurred_at);
  if (!(confirmed > signup)) return o;
  const key = scopeKey(scope);
  const recorded: OptOutSeen[] = (await eventsForContact(tx, contact_id)).map(({ event }) => event);
  const between = [...recorded, ...unrecorded()].find((e) => {
    if (
      e.kind !== "opt_out" ||
      e.scope === undefined ||
      (e.scope.kind !== "global" && scopeKey(e.scope) !== key)
    )
      return false;
    const at = Date.parse(e.occurred_at);
    return at > signup && at < confirmed;
  });
  if (between === undefined) return o;
  return {
    ...o,
    mechanism: "unknown",
    actor: { kind: "account" },
    basis: "implied",
    evidence: {
      ...o.evidence,
      reason:
        `subscribed again at ${o.occurred_at}, after the opt-out of ${between.occurred_at} (${between.source.connection}, ${between.mechanism}) that followed the sign-up of ${o.of_signup_at ?? "unknown time (the system keeps none)"}: not the person's confirmation of it, but a later subscription by the account${o.evidence.reason ? `. ${o.evidence.reason}` : ""}`.slice(
          0,
          1000,
        ),
    },
  };
}

const toJson = (value: unknown): JsonValue => JsonValueSchema.parse(JSON.parse(JSON.stringify(value)));

/** How an event derived from one fact of a record changed it: cleared (by the account), set again, or a consent withdrawn. */
type FactChange = "cleared" | "cleared:account" | "set" | "withdrawn";

/** An observation derived from a change of one fact of a record, named after the fact and the change. */
function factChange(
  record: ExternalRecord,
  fact: Pick<ExternalRecord["consent_state"][number], "channel" | "scope" | "source">,
  change: FactChange,
  act: Pick<ConsentObservation, "kind" | "mechanism" | "actor" | "occurred_at"> & { time_unknown?: true },
  reason: string,
): ConsentObservation {
  return {
    external_id: record.external_id,
    email: recordEmail(record.emails) ?? "",
    channel: fact.channel,
    scope: fact.scope,
    ...act,
    evidence: { reason, source_record_id: factEventId(record.external_id, fact.source, change) },
  };
}

/** The record id of an event derived from a change of one fact of a record. */
const factEventId = (external_id: string, source: string, change: FactChange): string =>
  `${external_id}:${source}:${change}`;

/** The fact an event of this record is about, when `factEventId` named it; else undefined. */
const factOfEventId = (external_id: string, id: string): string | undefined =>
  id.startsWith(`${external_id}:`)
    ? /^(.+):(?:cleared(?::account)?|set)$/.exec(id.slice(external_id.length + 1))?.[1]
    : undefined;

/**
 * The facts without history (`unversioned`) that both the last snapshot and this read of the record
 * show, as [as last read, as read now]: their changes are seen only against the snapshot.
 */
function unversionedFacts(
  record: ExternalRecord,
  before: SnapshotView | undefined,
): [SnapshotView["consent_state"][number], ExternalRecord["consent_state"][number]][] {
  if (before === undefined) return [];
  return before.consent_state.flatMap((was) => {
    if (was.unversioned !== true) return [];
    const now = record.consent_state.find(
      (f) => f.source === was.source && f.channel === was.channel && sameObservedScope(f.scope, was.scope),
    );
    return now === undefined ? [] : [[was, now] as [typeof was, typeof now]];
  });
}

/**
 * Whether `record` was last modified, by its system's own clock, before the stored snapshot's
 * record was (a deletion never is): strictly before, since a system that keeps a change from moving its modification
 * time (a list left, a consent record added) shows the same time on two different contents.
 */
function olderThanStored(record: ExternalRecord, stored: JsonValue): boolean {
  // A record gone is gone whatever time it was seen gone at: its ending is never undone.
  if (record.deleted === true) return false;
  if (stored === null || typeof stored !== "object" || Array.isArray(stored)) return false;
  const storedAt = stored.updated_at;
  if (typeof storedAt !== "string") return false;
  const then = Date.parse(storedAt);
  const now = Date.parse(record.updated_at);
  // A record with no time of its own (a connector's stand-in, the epoch) is never taken as older.
  return !Number.isNaN(then) && !Number.isNaN(now) && now > 0 && now < then;
}

/**
 * Opt-outs cleared on a record whose system keeps no history of them (an `unversioned` fact: Raiser's
 * Edge's "Requests No Email", an address's "Do not email"): the system reports only the current
 * value, so the clearing is visible only against the last snapshot. Someone other than the person
 * cleared it: a request to resubscribe, never an opt-in (DESIGN.md §2 rule 3).
 */
function clearedOptOuts(
  record: ExternalRecord,
  before: SnapshotView | undefined,
  observed_at: string,
): ConsentObservation[] {
  const out: ConsentObservation[] = [];
  for (const [was, now] of unversionedFacts(record, before)) {
    if (was.status !== "opted_out" || now.status === "opted_out") continue;
    const occurred_at = clearedAt(now.at ?? record.updated_at, was.at, observed_at);
    if (was.account_may_lift === true)
      out.push(
        factChange(
          record,
          was,
          "cleared:account",
          {
            kind: "opt_in",
            mechanism: "admin_edit",
            actor: { kind: "account" },
            occurred_at,
          },
          `${was.source} was cleared on the record (it showed "${was.label}"): the account undoing its own opt-out`,
        ),
      );
    out.push(
      factChange(
        record,
        was,
        "cleared",
        {
          kind: "resubscribe_requested",
          mechanism: "admin_edit",
          actor: { kind: "account" },
          occurred_at,
        },
        `${was.source} was cleared on the record (it showed "${was.label}")`,
      ),
    );
  }
  return out;
}

/**
 * Consents withdrawn on a record whose system keeps no history of them (a Mailchimp GDPR marketing
 * permission, `requires_consent`): given at the last snapshot, not given now. The system does not
 * say who withdrew it, so it is held as the person's: only their own opt-in gives it again (unless
 * Concord made it, `withdrawalIsNews`). It is dated by the record's last change, which is at or
 * after the withdrawal, and never before the last read's, which showed it given; else when seen.
 */
function withdrawnConsents(
  record: ExternalRecord,
  before: SnapshotView | undefined,
  observed_at: string,
): ConsentObservation[] {
  if (before === undefined) return [];
  const out: ConsentObservation[] = [];
  for (const now of record.consent_state) {
    if (now.requires_consent !== true || now.unversioned !== true) continue;
    if (now.status === "opted_in" || now.status === "pending") continue;
    // The same construct as last read: by id, or by name where a snapshot stored before the
    // construct was keyed by its name has another id for it.
    const was = before.consent_state.find(
      (f) =>
        f.source === now.source &&
        f.channel === now.channel &&
        (sameObservedScope(f.scope, now.scope) || sameNamedConstruct(f.scope, now.scope)),
    );
    if (was?.status !== "opted_in") continue;
    // After the last read that showed it given (the record's time then), by the record's last change
    // since, which is at or after the withdrawal; never after it was seen.
    const seen = Date.parse(observed_at);
    const bounds = [Date.parse(record.updated_at), Date.parse(before.updated_at ?? "")].filter(
      (t) => !Number.isNaN(t) && t > 0 && t <= seen,
    );
    const at = bounds.length > 0 ? new Date(Math.max(...bounds)).toISOString() : observed_at;
    out.push(
      factChange(
        record,
        now,
        "withdrawn",
        { kind: "opt_out", mechanism: "unknown", actor: { kind: "contact" }, occurred_at: at },
        `${was.label.slice(0, 300)} at the last read, now ${now.label.slice(0, 300)}: the consent was withdrawn (the system does not say by whom, so it is held as the person's)`,
      ),
    );
  }
  return out;
}

/** Whether two construct scopes are of one type and one name (case and spacing aside). */
function sameNamedConstruct(a: ObservedScope, b: ObservedScope): boolean {
  if (a.kind !== "construct" || b.kind !== "construct" || a.construct.type !== b.construct.type) return false;
  const name = (s: { id: string; name?: string }): string => (s.name ?? s.id).trim().toLowerCase();
  return name(a.construct) === name(b.construct);
}

/**
 * Whether a consent withdrawn on a record (`withdrawnConsents`) is news: no opt-out in force in the
 * ledger covers the scope. Where one does, Concord itself withdraws the consent there (the
 * planner's opt-out to the platform), and reading its own write back as the person's opt-out would
 * outlive the opt-out it copied (an account's, which the account may undo); nor would one of
 * theirs change what the ledger decides now, and a newer opt-in of theirs lifts both.
 */
async function withdrawalIsNews(
  tx: StoreSession,
  contact_id: string,
  scope: Scope,
  observed_at: string,
): Promise<boolean> {
  const held = (await eventsForContact(tx, contact_id)).map(({ event }) => event);
  const state = foldChannelConsent(held, "email", {
    as_of: observed_at,
    topics: scope.kind === "topic" ? [scope.topic] : [],
  });
  return decisionFor(state, scope).open_opt_outs.length === 0;
}

/**
 * An opt-out the system keeps no history of, set again after it was cleared (the last snapshot shows
 * it clear, this read set): a new opt-out, dated when seen. The connector's own observation of it
 * usually says so already (a flag with no record to date it, an address's own date); this one is for
 * when that observation is an older act the ledger holds (Raiser's Edge NXT dates "Requests No
 * Email" by the newest channel-wide OptOut consent record, which may predate the clearing), so the
 * re-set would read as that act and be dropped. `setAfterItsClear` decides whether it is recorded.
 */
function setAgainOptOuts(
  record: ExternalRecord,
  before: SnapshotView | undefined,
  observed_at: string,
): ConsentObservation[] {
  const out: ConsentObservation[] = [];
  for (const [was, now] of unversionedFacts(record, before)) {
    if (now.status !== "opted_out" || was.status === "opted_out") continue;
    out.push(
      factChange(
        record,
        now,
        "set",
        {
          kind: "opt_out",
          mechanism: "admin_edit",
          actor: { kind: "account" },
          occurred_at: observed_at,
          time_unknown: true,
        },
        `${now.source} was set again on the record after it was cleared (it shows "${now.label}")`,
      ),
    );
  }
  return out;
}

/**
 * Whether an opt-out set again (`setAgainOptOuts`) is news: the connection's last word on the scope
 * in the ledger (in the order recorded) lifts or questions an opt-out (the clearing's resubscribe
 * request, an opt-in), and no opt-out this read makes from the connection for the contact and scope
 * is new (one the ledger holds already, an older act the connector dated the fact by, is not).
 * With no word at all, or an opt-out last, the connector's own observation speaks for it.
 */
async function setAfterItsClear(
  tx: StoreSession,
  ctx: RecordContext,
  contact_id: string,
  scope: Scope,
  drafts: readonly ConsentEventInput[],
): Promise<boolean> {
  const key = scopeKey(scope);
  const ofScope = (e: ConsentEventInput | ConsentEvent): boolean =>
    e.kind !== "deliverability" && e.source.connection === ctx.connection_id && scopeKey(e.scope) === key;
  const held = (await eventsForContact(tx, contact_id)).map(({ event }) => event).filter(ofScope);
  const latest = held.at(-1);
  if (latest === undefined || latest.kind === "opt_out") return false;
  const known = (d: ConsentEventInput): boolean =>
    held.some(
      (e) =>
        e.kind === d.kind &&
        e.occurred_at === d.occurred_at &&
        e.evidence.source_record_id === d.evidence.source_record_id,
    );
  return !drafts.some((d) => d.kind === "opt_out" && d.contact_id === contact_id && ofScope(d) && !known(d));
}

const ENDINGS = [
  { key: "deceased", label: "marked deceased" },
  { key: "inactive", label: "marked inactive" },
  { key: "deleted", label: "deleted" },
] as const;

/**
 * A CRM record that ends — the person marked deceased or inactive, or the record deleted — is the
 * organisation's decision to stop emailing them: a global opt-out by the account, so every platform
 * unsubscribes them and the ledger says why (ADR 13). It is derived once, when the record first
 * shows it. Marked alive or active again, it is a resubscribe request, never an opt-in: only the
 * person can make themselves sendable again (DESIGN.md §2 rule 3).
 */
function endedRecordOptOuts(
  record: ExternalRecord,
  before: SnapshotView | undefined,
  connection: string,
): ConsentObservation[] {
  const out: ConsentObservation[] = [];
  const email = recordEmail(record.emails) ?? recordEmail(before?.emails ?? []) ?? "";
  for (const { key, label } of ENDINGS) {
    const now = record[key] === true;
    const was = before?.[key] === true;
    if (now === was || (key === "deleted" && !now)) continue;
    const base = {
      external_id: record.external_id,
      email,
      channel: "email" as const,
      scope: { kind: "global" as const },
      mechanism: "admin_edit" as const,
      actor: { kind: "account" as const },
      occurred_at: record.updated_at,
    };
    out.push(
      now
        ? {
            ...base,
            kind: "opt_out",
            evidence: {
              reason: `The record was ${label} in ${connection}: no platform may email them (an opt-out by the organisation).`,
              source_record_id: endingEventId(record.external_id, key),
            },
          }
        : {
            ...base,
            kind: "resubscribe_requested",
            evidence: {
              reason: `The record is no longer ${label} in ${connection}; only the person can make themselves sendable again.`,
              source_record_id: endingClearedEventId(record.external_id, key),
            },
          },
    );
  }
  return out;
}

/**
 * When an opt-out was cleared: the system's own stamp for the state (a custom field's last change),
 * else the record's last change — unless that is no later than the opt-out itself (a change that
 * moves no modification date), when only the moment Concord saw it is known to be after it.
 */
function clearedAt(stamped: string, optedOutAt: string | undefined, observed_at: string): string {
  if (optedOutAt === undefined) return stamped;
  return Date.parse(stamped) > Date.parse(optedOutAt) ? stamped : observed_at;
}

/**
 * Whose an observation of a record gone for good is: the contact its id is still linked to, else
 * the people whose address it names (an opt-out of an address is everyone's who holds it), else
 * no one's. Nothing is linked and nothing goes to review: the record no longer exists.
 */
async function goneRecordIdentity(
  tx: StoreSession,
  ctx: RecordContext,
  page: PageFacts,
  o: ConsentObservation,
): Promise<Identity> {
  const link = await tx.links.find(ctx.connection_id, o.external_id);
  if (link !== undefined) return { kind: "contact", contact_id: link.contact_id };
  const holders = await holdersOfAddress(tx, page, o);
  const [only, ...more] = holders;
  if (only === undefined) return { kind: "none" };
  if (more.length === 0) return { kind: "contact", contact_id: only };
  return { kind: "ambiguous", contact_ids: holders, reason: "several_contacts_share_email" };
}

/** A stand-in record for an observation that arrived without its record. */
const observationRecord = (o: ConsentObservation): ExternalRecord => ({
  external_id: o.external_id,
  kind: "individual",
  emails: o.email === "" ? [] : [{ address: o.email, primary: true }],
  fields: {},
  consent_state: [],
  updated_at: o.occurred_at,
});

function toEventDraft(
  o: ConsentObservation,
  contact_id: string,
  scope: Scope,
  ctx: RecordContext,
  observed_at: string,
): ConsentEventDraft {
  const evidence =
    o.evidence.payload_sha256 === undefined ? { ...o.evidence, payload_sha256: contentHash(o) } : o.evidence;
  const base = {
    contact_id,
    channel: o.channel,
    source: { system: ctx.system, connection: ctx.connection_id },
    mechanism: o.mechanism,
    actor: o.actor,
    occurred_at: o.occurred_at,
    observed_at,
    evidence,
  };
  switch (o.kind) {
    case "opt_out":
      return { ...base, kind: "opt_out", scope };
    case "opt_in":
      // A source that does not say which basis is the weaker claim.
      return { ...base, kind: "opt_in", scope, basis: o.basis ?? "implied" };
    case "resubscribe_requested":
      return { ...base, kind: "resubscribe_requested", scope };
    case "deliverability":
      if (o.deliverability === undefined)
        throw new Error(`deliverability observation of ${o.external_id} has no status`);
      return { ...base, kind: "deliverability", status: o.deliverability };
  }
}

/**
 * Which contact a record is: its link first; else `matchRecord` against the store. Matched by email →
 * link; new → a contact and a link; ambiguous → a review item and no link. An organisation and an
 * individual at one address are told apart by the CRM itself, so each gets its own contact (never
 * merged), and the shared address still goes to review.
 */
async function resolveIdentity(
  tx: StoreSession,
  ctx: RecordContext,
  record: ExternalRecord,
  before: SnapshotView | undefined,
  hasConsent: boolean,
  counts: RecordCounts,
  page: PageFacts,
): Promise<Identity> {
  const email = recordEmail(record.emails);
  const key = matchKeyOf(email);
  const index = await loadMatchIndex(tx, ctx.connection_id, record.external_id, key, page);
  const linked = index.linkedContact(ctx.connection_id, record.external_id);
  if (linked !== undefined) {
    await followEmailChange(tx, linked, email, key, before, counts, page);
    return { kind: "contact", contact_id: linked };
  }
  if (record.deleted === true && !hasConsent) return { kind: "none" };

  const result = matchRecord(
    {
      connection: ctx.connection_id,
      external_id: record.external_id,
      ...(email !== undefined ? { email } : {}),
      // Email platforms do not know whether an address is a person's or an organisation's.
      ...(ctx.role === "crm" ? { type: record.kind } : {}),
    },
    index,
  );
  switch (result.kind) {
    case "linked":
      return { kind: "contact", contact_id: result.contact_id };
    case "matched_by_email": {
      const link = await tx.links.create({
        connection_id: ctx.connection_id,
        external_id: record.external_id,
        contact_id: result.contact_id,
        origin: "matched_by_email",
      });
      page.contactLinked(result.contact_id);
      if (link.kind === "created") counts.links_by_email += 1;
      return {
        kind: "contact",
        contact_id: link.kind === "created" ? link.link.contact_id : link.existing.contact_id,
      };
    }
    case "new":
      return {
        kind: "contact",
        contact_id: await createLinkedContact(tx, ctx, record, email, key, counts, page),
      };
    case "ambiguous": {
      // The CRM is the system of record for who is who: two of its records are two contacts (a duplicate
      // there is reported, never merged), and the shared address goes to review. A platform record
      // that could be several people stays unlinked until someone decides.
      const own =
        result.reason === "contact_type_differs" || ctx.role === "crm"
          ? await createLinkedContact(tx, ctx, record, email, key, counts, page)
          : undefined;
      const review = await tx.reviewItems.open({
        key: `ambiguous_identity:${ctx.connection_id}:${record.external_id}`,
        kind: "ambiguous_identity",
        contact_id: own ?? null,
        connection_id: ctx.connection_id,
        external_id: record.external_id,
        detail: {
          reason: result.reason,
          candidate_contact_ids: result.contact_ids,
          email: email ?? null,
          record_kind: record.kind,
        },
      });
      if (review.kind === "opened") counts.review_items_opened += 1;
      if (own !== undefined) return { kind: "contact", contact_id: own };
      counts.ambiguous_records += 1;
      return { kind: "ambiguous", contact_ids: result.contact_ids, reason: result.reason };
    }
  }
}

async function createLinkedContact(
  tx: StoreSession,
  ctx: RecordContext,
  record: ExternalRecord,
  email: string | undefined,
  key: string | null,
  counts: RecordCounts,
  page: PageFacts,
): Promise<string> {
  page.keyChanged(key);
  const contact = await tx.contacts.create({
    type: storeContactType(record.kind),
    given_name: record.first_name ?? null,
    family_name: record.last_name ?? null,
    organization_name: record.organisation_name ?? null,
    // As held, even when invalid: eligibility must be able to say why it is skipped.
    primary_email: email ?? null,
    email_match_key: key,
  });
  if (email !== undefined && key !== null) await tx.contacts.addEmail(contact.id, email, key);
  const link = await tx.links.create({
    connection_id: ctx.connection_id,
    external_id: record.external_id,
    contact_id: contact.id,
  });
  if (link.kind === "conflict")
    throw new Error(`record ${ctx.connection_id}/${record.external_id} was linked while being recorded`);
  counts.contacts_created += 1;
  return contact.id;
}

/**
 * A linked record whose primary address changed since its last snapshot is the same person with a
 * new address (DESIGN.md §1): the contact's primary moves, and the old address stays among its
 * addresses so a record still using it matches this contact, not a new one.
 */
async function followEmailChange(
  tx: StoreSession,
  contact_id: string,
  email: string | undefined,
  key: string | null,
  before: SnapshotView | undefined,
  counts: RecordCounts,
  page: PageFacts,
): Promise<void> {
  if (before === undefined || email === undefined || key === null) return;
  if (matchKeyOf(recordEmail(before.emails)) === key) return;
  const contact = await tx.contacts.get(contact_id);
  if (contact === undefined || contact.erased_at !== null || contact.email_match_key === key) return;
  page.keyChanged(contact.email_match_key);
  page.keyChanged(key);
  if (contact.primary_email !== null && contact.email_match_key !== null)
    await tx.contacts.addEmail(contact.id, contact.primary_email, contact.email_match_key);
  await tx.contacts.update(contact.id, { primary_email: email, email_match_key: key });
  await tx.contacts.addEmail(contact.id, email, key);
  counts.email_changes += 1;
}
