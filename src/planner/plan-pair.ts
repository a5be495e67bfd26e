/** The pure planner: a three-way merge of each linked contact of one pair into a plan of typed operations with reasons (DESIGN.md §3). */
import {
  scopeKey,
  topicScope,
  type ConsentEvent,
  type OptOutEvent,
  type Scope,
  type TopicKey,
} from "../core/consent/consent-event";
import {
  ACCOUNT_OBSERVED,
  recordedConsent,
  sameObservedScope,
  shownConsent,
  showsNotSent,
  type ObservedScope,
} from "../core/consent/system-consent";
import {
  decisionFor,
  foldChannelConsent,
  actedAt,
  isPersonsOwnOptInEvent,
  type ChannelConsent,
  type OptOutRef,
  type ScopeDecision,
} from "../core/consent/consent-state";
import { decideEligibility, type Eligibility } from "../core/eligibility/decide-eligibility";
import { impliedConsentLapses, nextLapseAt, type LapseInput } from "../core/consent/implied-consent";
import type { CanonicalContact, ConnectionId, ContactId } from "../core/identity/canonical-contact";
import { normaliseEmail, sameEmail } from "../core/identity/normalise-email";
import { isConsentField, mergeFields, type FieldMergeInput } from "../core/merge/merge-fields";
import { canonicalJson } from "../core/canonical-json";
import { isEndingClearedEventId, isEndingEventId } from "../core/consent/record-ending";
import type { ConnectorOperation, OperationKind } from "../core/operations";
import { operationId, withOperationId, type OperationDraft } from "./operation-id";
import {
  SKIPPED_LISTED_PER_REASON,
  type Plan,
  type PlanCounts,
  type PlannedOperation,
  type PlanPriority,
  type PlanReason,
  type SkippedRecord,
  type SkipReason,
  type UnlinkedOptOut,
  type WaitingForContact,
} from "./plan";
import {
  leftAtKey,
  membershipKey,
  topicListKey,
  topicListOf,
  type PlanAudience,
  type CrmRecordState,
  type PlanContact,
  type PlanFieldMapping,
  type PlanConsentTarget,
  type PlanInput,
  type PlanPlatform,
  type PlatformRecordState,
  type RecordProfile,
} from "./plan-input";

type Update = {
  first_name?: string | null;
  last_name?: string | null;
  fields: Record<string, string | null>;
};

const scopeLabel = (s: Scope): string => (s.kind === "global" ? "all email" : `the topic “${s.topic}”`);

const NO_ENDINGS: ReadonlySet<string> = new Set();

/**
 * Whether a platform record shows the target opted out, or its consent not given where the target
 * requires one (so no opt-out needs writing there).
 */
function platformShowsOptOut(rec: PlatformRecordState, target: PlanConsentTarget): boolean {
  if (target.shown_by === "membership")
    return target.construct.kind !== "construct" || !rec.list_ids.includes(target.construct.construct.id);
  return showsNotSent(rec.consent_state, target.construct);
}

/** The account's own target (its whole-account scope), which a resubscribe request is about. */
const accountTarget = (p: PlanPlatform): PlanConsentTarget | undefined =>
  p.targets.find((t) => t.construct.kind === "account");

/** Where an opt-in a plan writes came from: its system, connection, mechanism, actor and reference. */
const optInOrigin = (basis: Extract<ConsentEvent, { kind: "opt_in" }>) => ({
  system: basis.source.system,
  connection: basis.source.connection,
  mechanism: basis.mechanism,
  actor: basis.actor.kind,
  ...(basis.evidence.request_reference !== undefined
    ? { request_reference: basis.evidence.request_reference }
    : {}),
});

/** Plans one pair. Pure and linear in the number of contacts; the same input always yields the same plan. */
export function planPair(input: PlanInput): Plan {
  const planner = createPairPlanner(input);
  for (const c of input.contacts) planner.add(c);
  return planner.finish();
}

/**
 * The planner fed one contact at a time, so a caller can stream a pair of any size from the store
 * and hold only the plan, never every contact: `add` each contact once, then `finish` once. The
 * plan is the same as `planPair` makes from the same contacts in the same order.
 */
export type PairPlanner = {
  add: (contact: PlanContact) => ContactOutcome;
  /**
   * Adds what a contact added to a plan before, as `add` would add it again from the same rows,
   * settings and time (ADR 29, ADR 31).
   */
  replay: (contribution: ContactContribution) => void;
  finish: () => Plan;
};

/** A call that put a contact into a bulk operation. */
export type BulkCall =
  | { kind: "upsert"; connection: ConnectionId; list_ids: string[]; item: UpsertItem }
  | {
      kind: "member";
      connection: ConnectionId;
      member_kind: "add_list_members" | "remove_list_members";
      list_id: string;
      contact_id: ContactId;
      external_id: string;
      /** A removal because the source list's own flag stops email to the person through it. */
      stopped?: true;
    };

/**
 * Everything planning one contact added to the plan, in the order it was added: its operations
 * (consent first, then writes, each with its id), its places in bulk operations, what it waits
 * for, its unlinked opt-outs and its skipped records. Plain JSON, so a plan mark can keep it.
 */
export type ContactContribution = {
  consent_ops?: PlannedOperation[];
  write_ops?: PlannedOperation[];
  bulk?: BulkCall[];
  waiting?: WaitingForContact[];
  unlinked?: UnlinkedOptOut[];
  skipped: SkippedRecord[];
};

/**
 * What planning one contact came to. `settled`: nothing to do (no operation, nothing waiting, no
 * lapse, no unlinked opt-out), only records skipped. `contribution`: what it added to the plan, which
 * the same rows and settings add again until `until`, when time alone (an implied consent's expiry
 * or lapse) may change it; absent when the contact's plan came from time itself (a lapse due now).
 */
export type ContactOutcome = { settled: boolean; contribution?: ContactContribution; until?: string };

export function createPairPlanner(input: Omit<PlanInput, "contacts">): PairPlanner {
  const { pair, policies } = input;
  const crmId = pair.crm.connection_id;
  // Consent never follows a field merge (DESIGN.md §3): a mapping naming consent on any side is a
  // configuration bug that validation should have refused, so it throws rather than plans.
  const refused = input.fields.filter((f) => [f.canonical, f.crm, f.platform].some(isConsentField));
  if (refused.length > 0)
    throw new TypeError(
      `consent fields never go through the profile merge: ${refused.map((f) => f.canonical).join(", ")}`,
    );
  const topics = pairTopics(pair);

  const consentOps: PlannedOperation[] = [];
  const writeOps: PlannedOperation[] = [];
  const skipped = new SkipTally();
  const waiting: WaitingForContact[] = [];
  const unlinked: UnlinkedOptOut[] = [];
  const lapses: OptOutEvent[] = [];
  /** Contacts planned without the lapse due to them (`implied_consent.defer`): never marked. */
  let deferred = 0;
  const bulk = new BulkOperations();

  const emit = (
    connection: ConnectionId,
    contactIds: ContactId[],
    priority: PlanPriority,
    reason: PlanReason,
    draft: OperationDraft,
    scope?: Scope,
  ): void => {
    const opId = operationId(input.hash, pair.id, connection, draft);
    flatten(opId);
    flatten(reason.message);
    (priority === "consent" ? consentOps : writeOps).push({
      op_id: opId,
      connection_id: connection,
      contact_ids: contactIds,
      priority,
      reason,
      ...(scope !== undefined ? { scope } : {}),
      operation: withOperationId(draft, opId),
    });
  };

  // The lists the pair's list rules create, rename or delete: no contact's, and first of the writes.
  for (const change of input.list_changes ?? [])
    emit(change.connection_id, [], "write", change.reason, change.operation);

  /**
   * The opt-out to push to a platform or the CRM: the latest open one this pair may propagate, the
   * person's own if they made one. A system told the person opted out keeps them out more firmly
   * (Constant Contact lets the account re-add a contact whose opt-out was the account's, not one
   * who left by their own act), and that is the truth of it: the account's later opt-out changes
   * nothing of theirs.
   */
  /** A person deleted in the CRM: nothing is sent from it to the platform, counted with the reason. */
  const deletedInCrm = (c: PlanContact, p: PlanPlatform): void => {
    if (c.crm?.deleted === true)
      skipped.add({
        contact_id: c.contact.id,
        connection_id: p.connection_id,
        reasons: [{ code: "deleted_in_crm" }],
      });
  };

  const pushable = (
    refs: readonly OptOutRef[],
    keep: (r: OptOutRef) => boolean,
    /** The CRM record's ending (deceased, inactive, deleted): pushed whatever `propagate_crm_opt_outs` says. */
    endings: ReadonlySet<string> = NO_ENDINGS,
  ): OptOutRef | undefined => {
    let found: OptOutRef | undefined;
    let theirs: OptOutRef | undefined;
    for (const r of refs)
      if (
        keep(r) &&
        // Concord's own write seen again (an echo) is no new fact: the opt-out it carried is in the ledger.
        r.mechanism !== "sync" &&
        (policies.propagate_crm_opt_outs || r.source.connection !== crmId || endings.has(r.event_id))
      ) {
        found = r;
        if (r.initiated_by === "contact") theirs = r;
      }
    return theirs ?? found;
  };

  const foldOptions = {
    as_of: input.as_of,
    topics,
    require_consent_basis: policies.require_consent_basis,
  };
  /** Most contacts have no consent events: their fold is one and the same, made once (and frozen). */
  let noEvents: ChannelConsent | undefined;
  const fold = (events: readonly ConsentEvent[]): ChannelConsent =>
    events.length > 0
      ? foldChannelConsent(events, "email", foldOptions)
      : (noEvents ??= deepFreeze(foldChannelConsent([], "email", foldOptions)));

  const lapseInput = (c: PlanContact, state: ReturnType<typeof fold>): LapseInput => ({
    contact_id: c.contact.id,
    country: c.crm?.fields["country"] ?? null,
    consent: state,
    events: c.events,
    crm_grounds: c.crm?.consent_grounds ?? [],
    crm_source: { system: pair.crm.system, connection: crmId },
    created_by_concord: new Set(
      Object.entries(c.platforms).flatMap(([k, r]) => (r.created_by_concord === true ? [k] : [])),
    ),
    as_of: input.as_of,
  });

  /** The contact with the opt-outs by rule its lapsed implied consent calls for (not yet in the ledger). */
  const withLapses = (c: PlanContact, state: ReturnType<typeof fold>): PlanContact | undefined => {
    const implied = input.implied_consent;
    if (implied === undefined || implied.rules.length === 0) return undefined;
    const due = impliedConsentLapses(lapseInput(c, state), implied.rules);
    if (due.length === 0) return undefined;
    const known = new Set(c.events.map((e) => e.id));
    const fresh = due
      .map((d): OptOutEvent => ({ ...d, id: implied.event_id(d) }))
      .filter((e) => !known.has(e.id));
    if (fresh.length === 0) return undefined;
    if (implied.defer === true) {
      deferred += 1;
      return undefined;
    }
    lapses.push(...fresh);
    return { ...c, events: [...c.events, ...fresh] };
  };

  /** Everything a contact can add to the plan besides skipped records. */
  const work = (): number =>
    consentOps.length + writeOps.length + bulk.count + waiting.length + unlinked.length + lapses.length;

  /**
   * The first instant after `as_of` at which time alone may change what `c` plans to: an implied
   * opt-in's expiry, or the lapse of implied consent under the config's rules.
   */
  const changesAt = (c: PlanContact, state: ReturnType<typeof fold>): string | undefined => {
    const asOf = Date.parse(input.as_of);
    let next: number | undefined;
    for (const e of c.events) {
      if (e.kind !== "opt_in" || e.expires_at === undefined) continue;
      const t = Date.parse(e.expires_at);
      if (t > asOf && (next === undefined || t < next)) next = t;
    }
    const rules = input.implied_consent?.rules ?? [];
    const lapse = rules.length > 0 ? nextLapseAt(lapseInput(c, state), rules) : undefined;
    if (lapse !== undefined && (next === undefined || Date.parse(lapse) < next)) next = Date.parse(lapse);
    return next === undefined ? undefined : new Date(next).toISOString();
  };

  const add = (given: PlanContact): ContactOutcome => {
    const at = {
      consent: consentOps.length,
      write: writeOps.length,
      waiting: waiting.length,
      unlinked: unlinked.length,
      lapses: lapses.length,
      deferred,
    };
    const before = work();
    const state = planContact(given);
    const recent = skipped.recent;
    skipped.recent = [];
    const calls = bulk.recent;
    bulk.recent = [];
    const settled = work() === before;
    // A lapse is planned from time, not from the contact's rows: such a contact is planned each time,
    // and so is one whose lapse was put off (its plan stands only until the lapse is acted on).
    if (lapses.length !== at.lapses || deferred !== at.deferred) return { settled };
    const contribution: ContactContribution = { skipped: recent };
    if (!settled) {
      if (consentOps.length > at.consent) contribution.consent_ops = consentOps.slice(at.consent);
      if (writeOps.length > at.write) contribution.write_ops = writeOps.slice(at.write);
      if (calls.length > 0) contribution.bulk = calls;
      if (waiting.length > at.waiting) contribution.waiting = waiting.slice(at.waiting);
      if (unlinked.length > at.unlinked) contribution.unlinked = unlinked.slice(at.unlinked);
    }
    // No lapse was due, so the contact was planned with the consent folded from its own events.
    const until = changesAt(given, state);
    return { settled, contribution, ...(until !== undefined ? { until } : {}) };
  };

  const replay = (contribution: ContactContribution): void => {
    if (contribution.consent_ops) consentOps.push(...contribution.consent_ops);
    if (contribution.write_ops) writeOps.push(...contribution.write_ops);
    for (const call of contribution.bulk ?? []) bulk.replay(call);
    bulk.recent = [];
    if (contribution.waiting) waiting.push(...contribution.waiting);
    if (contribution.unlinked) unlinked.push(...contribution.unlinked);
    for (const r of contribution.skipped) skipped.add(r);
    skipped.recent = [];
  };

  /** Plans one contact; returns its email consent as folded for the plan. */
  const planContact = (given: PlanContact): ReturnType<typeof fold> => {
    let c = given;
    let state = fold(c.events);
    const lapsed = withLapses(c, state);
    if (lapsed !== undefined) {
      c = lapsed;
      state = fold(c.events);
    }
    const id = c.contact.id;
    const crm = c.crm !== undefined && c.crm.deleted !== true ? c.crm : undefined;
    const linkedRecords = pair.platforms.flatMap((p) => {
      const rec = c.platforms[p.connection_id];
      return rec !== undefined && rec.deleted !== true ? [{ p, rec }] : [];
    });

    // Pass 1: what the CRM becomes in this plan (fields, email, lists moved on a platform), so
    // every platform follows the projected CRM at once and one plan converges.
    const crmPrimary = crm
      ? (crm.emails.find((e) => e.primary)?.address ?? c.contact.primary_email)
      : undefined;
    let targetEmail = crmPrimary;
    let crmEmailFrom: ConnectionId | undefined;
    const crmFieldUpdates = new Map<string, string | null>();
    const platformFieldUpdates = new Map<ConnectionId, Map<string, string | null>>();
    const crmListsBefore = new Set(crm?.list_ids ?? []);
    const crmLists = new Set(crmListsBefore);
    const crmStopped = new Set(crm?.stopped_list_ids ?? []);
    /**
     * The opt-outs the CRM record's ending made: no setting keeps an ended record sendable. Needed
     * only where the pair pushes no other CRM opt-out (kept off the path of every other plan).
     */
    const endings = policies.propagate_crm_opt_outs
      ? NO_ENDINGS
      : new Set(
          c.events
            .filter(
              (e) =>
                e.kind === "opt_out" &&
                e.source.connection === crmId &&
                isEndingEventId(e.evidence.source_record_id),
            )
            .map((e) => e.id),
        );
    const crmListChanges: { kind: "add_list_members" | "remove_list_members"; list_id: string }[] = [];
    if (crm) {
      for (const { p, rec } of linkedRecords) {
        const agreed = c.baselines?.[p.connection_id]?.["email"] ?? null;
        if (
          crmEmailFrom === undefined &&
          crmPrimary !== undefined &&
          agreed !== null &&
          sameEmail(crmPrimary, agreed) &&
          !sameEmail(rec.email, agreed) &&
          normaliseEmail(rec.email).ok
        ) {
          targetEmail = rec.email.trim();
          crmEmailFrom = p.connection_id;
        }
        const merged = mergeProfile(input.fields, crm, rec, c.baselines?.[p.connection_id]);
        platformFieldUpdates.set(p.connection_id, merged.platform);
        // Several platforms may move the CRM; the first in the pair's order wins a field.
        for (const [k, v] of merged.crm) if (!crmFieldUpdates.has(k)) crmFieldUpdates.set(k, v);
        const platformLists = new Set(rec.list_ids);
        for (const a of p.audiences) {
          // The CRM list's own flag stops email through it: the platform's copy is no reason to join.
          if (crmStopped.has(a.crm_list_id)) continue;
          const inCrm = crmListsBefore.has(a.crm_list_id);
          const inPlatform = platformLists.has(a.platform_list_id);
          // Both sides held the membership at the last agreement: the CRM's side left the list, which
          // is the CRM's change, not the platform's join.
          const leftCrm = inPlatform && !inCrm && agreedMember(c, p.connection_id, a);
          if (
            inPlatform &&
            !inCrm &&
            !leftCrm &&
            a.direction !== "crm_to_platform" &&
            !crmLists.has(a.crm_list_id)
          ) {
            crmLists.add(a.crm_list_id);
            crmListChanges.push({ kind: "add_list_members", list_id: a.crm_list_id });
          } else if (
            inCrm &&
            !inPlatform &&
            a.direction === "platform_to_crm" &&
            a.delete_policy === "remove_membership" &&
            crmLists.has(a.crm_list_id)
          ) {
            crmLists.delete(a.crm_list_id);
            crmListChanges.push({ kind: "remove_list_members", list_id: a.crm_list_id });
          }
        }
      }
    }
    const projectedCrm: CrmRecordState | undefined = crm && projectCrm(crm, input.fields, crmFieldUpdates);
    const contact = crm ? contactAsInCrm(c.contact, crm, targetEmail) : c.contact;

    // Pass 2: each platform.
    for (const p of pair.platforms) {
      const rec = c.platforms[p.connection_id];
      const decision = decisionFor(state, p.account_scope);

      // A record deleted on a platform that keeps it with its consent (Constant Contact's delete):
      // an import or a form there revives it as it was, so it still takes the person's opt-out
      // (step 1), and nothing else.
      const keptDeleted = rec?.deleted === true && rec.consent_state.length > 0;
      if (rec === undefined || (rec.deleted === true && !keptDeleted)) {
        if (!projectedCrm) {
          // Deleted in the CRM, and on the platform or never there.
          deletedInCrm(c, p);
          continue;
        }
        if (rec?.deleted === true) {
          skipped.add({
            contact_id: id,
            connection_id: p.connection_id,
            reasons: [{ code: "deleted_on_platform" }],
          });
          continue;
        }
        // 3. New contacts: eligible CRM contacts the platform does not hold yet, in one bulk upsert,
        // into the mapped lists whose topic (where a list stands for one) they did not leave.
        const wanted = p.audiences.filter(
          (a) => a.direction !== "platform_to_crm" && crmLists.has(a.crm_list_id),
        );
        const targets = wanted.filter((a) => listTopicSendable(state, a)).map((a) => a.platform_list_id);
        const eligibility =
          wanted.length > 0 && targets.length === 0
            ? eligibilityFor(contact, p, state, true, { topic: wanted[0]?.topic, newFor: c })
            : eligibilityFor(contact, p, state, targets.length > 0, { newFor: c });
        if (!eligibility.eligible) {
          skipped.add({ contact_id: id, connection_id: p.connection_id, reasons: eligibility.reasons });
          continue;
        }
        const profile = profileFor(input.fields, projectedCrm);
        const linkFields = linkFieldValues(p, id, {});
        bulk.upsert(p.connection_id, [...new Set(targets)].sort(), {
          item_id: id,
          email: (targetEmail ?? "").trim(),
          ...profile,
          ...(linkFields !== undefined ? { fields: { ...profile.fields, ...linkFields } } : {}),
        });
        continue;
      }

      // 1. Consent to the platform, per scope it keeps: not sendable there, and the record still
      // shows the person receiving it (subscribed in the account, still in the topic's list).
      let unsubscribedAfterPlan = false;
      for (const target of p.targets) {
        const shown = platformShowsOptOut(rec, target);
        const targetDecision = decisionFor(state, target.scope);
        if (target.construct.kind === "account") unsubscribedAfterPlan = shown;
        if (targetDecision.sendable || shown) continue;
        const ref = pushable(targetDecision.open_opt_outs, () => true, endings);
        if (!ref) continue;
        if (target.construct.kind === "account") unsubscribedAfterPlan = true;
        emit(
          p.connection_id,
          [id],
          "consent",
          {
            code: "opt_out_to_platform",
            message: `${describeOptOut(ref)} decides ${scopeLabel(target.scope)} (rule ${targetDecision.rule}); ${p.connection_id} still shows the person ${target.construct.kind === "account" ? "subscribed" : `in ${target.label}`}.`,
          },
          {
            kind: "record_opt_out",
            external_id: rec.external_id,
            email: rec.email,
            scope: target.construct,
            initiated_by: ref.initiated_by,
            occurred_at: ref.occurred_at,
            reason: targetDecision.rule,
            origin: {
              system: ref.source.system,
              connection: ref.source.connection,
              mechanism: ref.mechanism,
            },
          },
          target.scope,
        );
      }

      if (keptDeleted) {
        skipped.add({
          contact_id: id,
          connection_id: p.connection_id,
          reasons: [{ code: "deleted_on_platform" }],
        });
        continue;
      }

      // 1c. The account undid its own opt-out (an admin cleared the CRM's Do Not Contact that made
      // it): where the platform lets the account subscribe again someone it unsubscribed itself,
      // it does. The platform still refuses anyone who unsubscribed themselves there. A record the
      // account archived or deleted is not written to: the write would bring it back.
      const account = p.targets.find((t) => t.construct.kind === "account");
      if (
        account !== undefined &&
        p.account_resubscribe === true &&
        rec.inactive !== true &&
        rec.deleted !== true &&
        platformShowsOptOut(rec, account)
      ) {
        const d = decisionFor(state, account.scope);
        const basis = d.decided_by !== undefined ? c.events.find((e) => e.id === d.decided_by) : undefined;
        if (d.sendable && d.rule === "lifted_by_account_opt_in" && basis?.kind === "opt_in") {
          unsubscribedAfterPlan = false;
          emit(
            p.connection_id,
            [id],
            "consent",
            {
              code: "opt_in_to_platform",
              message: `The account lifted its own opt-out (${basis.id}: ${basis.mechanism} in ${basis.source.connection}, ${basis.occurred_at}); ${p.connection_id} lets the account subscribe again someone it unsubscribed itself.`,
            },
            {
              kind: "record_opt_in",
              external_id: rec.external_id,
              scope: account.construct,
              occurred_at: basis.occurred_at,
              origin: {
                system: basis.source.system,
                connection: basis.source.connection,
                mechanism: basis.mechanism,
                actor: basis.actor.kind,
              },
            },
            account.scope,
          );
        }
      }

      // 1d. A construct that holds the person's consent as given or not (a GDPR marketing
      // permission) takes their own opt-in to its topic: made for the topic itself (a global
      // sign-up is no consent to one purpose), outside this platform, after the record's last
      // change there, the person's own act or an override with evidence. Anything else leaves it
      // as it is there.
      for (const target of p.targets) {
        if (target.construct.kind !== "construct" || target.shown_by !== "facts") continue;
        // An archived record is not written to: a write would bring it back.
        if (rec.inactive === true || rec.deleted === true) break;
        const facts = rec.consent_state.filter((f) => sameObservedScope(f.scope, target.construct));
        if (!facts.some((f) => f.requires_consent === true)) continue;
        if (shownConsent(facts, target.construct) !== undefined) continue;
        const d = decisionFor(state, target.scope);
        const basis = d.decided_by !== undefined ? c.events.find((e) => e.id === d.decided_by) : undefined;
        if (!d.sendable || d.status !== "opted_in" || basis?.kind !== "opt_in") continue;
        if (basis.basis !== "express" || basis.source.connection === p.connection_id) continue;
        if (
          basis.scope.kind !== "topic" ||
          target.scope.kind !== "topic" ||
          basis.scope.topic !== target.scope.topic
        )
          continue;
        if (!isPersonsOwnOptInEvent(basis)) continue;
        // After the record's last change there: the system keeps no history of the permission, and
        // a withdrawal Concord never read (made before it was linked) moved that change past it. A
        // record with no time of its own (the epoch stand-in) bounds nothing: not given.
        const changed = rec.updated_at !== undefined ? Date.parse(rec.updated_at) : Number.NaN;
        if (Number.isNaN(changed) || changed <= 0 || Date.parse(basis.occurred_at) <= changed) continue;
        emit(
          p.connection_id,
          [id],
          "consent",
          {
            code: "opt_in_to_platform",
            message: `The person opted in to ${scopeLabel(target.scope)} (${basis.id}: ${basis.mechanism} in ${basis.source.connection}, ${basis.occurred_at}); ${p.connection_id} does not show ${target.label} given.`,
          },
          {
            kind: "record_opt_in",
            external_id: rec.external_id,
            scope: target.construct,
            occurred_at: basis.occurred_at,
            origin: optInOrigin(basis),
          },
          target.scope,
        );
      }

      // 1b. The CRM record ended (deceased, inactive, deleted): the opt-out above goes first; the
      // pair's `remove` policy then takes the platform record out too, once (a removed record reads
      // as deleted and is skipped from then on).
      const ended = c.crm?.deleted === true || contact.lifecycle.deceased || contact.lifecycle.inactive;
      if (ended && policies.ended_crm_records === "remove") {
        const why =
          c.crm?.deleted === true
            ? "deleted"
            : contact.lifecycle.deceased
              ? "marked deceased"
              : "marked inactive";
        emit(
          p.connection_id,
          [id],
          "write",
          {
            code: "crm_record_ended",
            message: `The CRM record was ${why}; the pair's ended_crm_records policy removes the person from ${p.connection_id} (unsubscribed first).`,
          },
          { kind: "remove_contact", external_id: rec.external_id, email: rec.email, reason: why },
        );
        continue;
      }

      // 2c. An admin's resubscribe request: only the person can lift the opt-out. Where the platform
      // sends a confirmation email, it is asked to, once; the opt-out above runs first (same
      // priority, planned earlier), so the request follows it in one plan.
      // 2d. An operator override carries the person's written request, but where only the person may
      // resubscribe (Constant Contact, Mailchimp) the platform's confirmation email is the lawful
      // path: asked for once, like 2c, and the person confirms.
      // 2e. Likewise the person's own opt-in made outside this platform (Concord's preference page,
      // a confirmed sign-up, another system): the platform's own confirmation email carries it there.
      const liftedBy =
        decision.decided_by !== undefined &&
        (decision.rule === "lifted_by_operator_override" || decision.rule === "lifted_by_contact_opt_in")
          ? c.events.find((e) => e.id === decision.decided_by)
          : undefined;
      const overriddenBy =
        liftedBy !== undefined && liftedBy.source.connection !== p.connection_id ? liftedBy : undefined;
      const resubscribe =
        decision.pending_resubscribe ??
        (overriddenBy !== undefined
          ? { event_id: overriddenBy.id, requested_at: overriddenBy.occurred_at }
          : undefined);
      if (resubscribe && unsubscribedAfterPlan && accountTarget(p) !== undefined) {
        const pending = resubscribe;
        const requestNow = p.resubscribe === "confirmation_email" && !rec.resubscribe_requested;
        waiting.push({
          contact_id: id,
          connection_id: p.connection_id,
          event_id: pending.event_id,
          requested_at: pending.requested_at,
          requested_now: requestNow,
        });
        if (requestNow) {
          // The lists the confirmation puts the person back in: those the CRM has them in, as steps
          // 3 and 4 would add them, never one whose topic they opted out of (an opt-out of that
          // topic itself: the global one is what the confirmation lifts), one they left on the
          // platform (unless they opted in to its topic since), or one the CRM's copy stops.
          const lists = p.audiences
            .filter(
              (a) =>
                a.direction !== "platform_to_crm" &&
                crmLists.has(a.crm_list_id) &&
                !crmStopped.has(a.crm_list_id) &&
                (a.topic === undefined ||
                  !decisionFor(state, topicScope(a.topic)).open_opt_outs.some(
                    (r) => r.scope.kind === "topic",
                  )) &&
                (a.topic === undefined ||
                  !leftTopicList(c, p.connection_id, a.topic, a.platform_list_id) ||
                  optedBackIn(c, p.connection_id, a.topic, a.platform_list_id, rec, state) !== undefined),
            )
            .map((a) => a.platform_list_id);
          emit(
            p.connection_id,
            [id],
            "consent",
            {
              code: "resubscribe_requested",
              message:
                overriddenBy !== undefined &&
                decision.pending_resubscribe === undefined &&
                decision.rule === "lifted_by_contact_opt_in"
                  ? `The person's own opt-in ${pending.event_id} (${overriddenBy.mechanism} in ${overriddenBy.source.connection}, ${pending.requested_at}) lifted the opt-out; ${p.connection_id} lets only the person resubscribe there, so it sends its confirmation email.`
                  : overriddenBy !== undefined && decision.pending_resubscribe === undefined
                    ? `Operator override ${pending.event_id} (the person's written request of ${pending.requested_at}) lifted the opt-out; ${p.connection_id} lets only the person resubscribe, so it sends its confirmation email and the person is sent nothing else until they confirm.`
                    : `Resubscribe request ${pending.event_id} (${pending.requested_at}) is not an opt-in; ${p.connection_id} sends its confirmation email and the person stays opted out until they confirm.`,
            },
            {
              kind: "request_resubscribe",
              external_id: rec.external_id,
              list_ids: [...new Set(lists)].sort(),
            },
            p.account_scope,
          );
        }
      }

      if (!projectedCrm) {
        // Deleted in the CRM: the platform record took its opt-out (above), and nothing else.
        deletedInCrm(c, p);
        continue;
      }

      // 3b. Archived on the platform (Mailchimp): the account took the record out, and any write
      // there (a field, a list, the address) would bring it back as it was, subscribed included.
      // Only consent goes to it (above).
      if (rec.inactive === true) {
        skipped.add({
          contact_id: id,
          connection_id: p.connection_id,
          reasons: [{ code: "inactive_on_platform" }],
        });
        continue;
      }

      // 4a. Someone who left a list (group, tag) standing for a topic on the platform, or whom a
      // topic opt-out took out of it, and who opted in to the topic themselves since: put back,
      // whatever the CRM's lists say (they are the organisation's, the topic is the person's).
      for (const t of p.targets) {
        const keptIn = topicListOf(t);
        if (keptIn === undefined || unsubscribedAfterPlan) continue;
        const { topic, list } = keptIn;
        if (rec.list_ids.includes(list) || !leftTopicList(c, p.connection_id, topic, list)) continue;
        // The CRM's list mapped to it stops email through it (its own Do Not Contact): never joined.
        if (p.audiences.some((a) => a.platform_list_id === list && crmStopped.has(a.crm_list_id))) continue;
        const basis = optedBackIn(c, p.connection_id, topic, list, rec, state);
        if (basis === undefined) continue;
        // Sendable for the platform's own scope (its account's topic, or all email) and the list's.
        const account = eligibilityFor(contact, p, state, true);
        const back = account.eligible ? eligibilityFor(contact, p, state, true, { topic }) : account;
        if (!back.eligible) {
          skipped.add({ contact_id: id, connection_id: p.connection_id, reasons: back.reasons });
          continue;
        }
        emit(
          p.connection_id,
          [id],
          "write",
          {
            code: "opt_in_to_platform",
            message: `The person opted in to the topic “${topic}” again (${basis.id}: ${basis.mechanism} in ${basis.source.connection}, ${basis.occurred_at}) after leaving ${t.label} on ${p.connection_id}: they are put back in it.`,
          },
          { kind: "add_list_members", list_ids: [list], external_ids: [rec.external_id] },
          t.scope,
        );
      }

      // 4. List membership per audience mapping and direction, against the projected CRM lists.
      const platformLists = new Set(rec.list_ids);
      let eligibility: Eligibility | undefined;
      const blocked: SkipReason[] = [];
      for (const a of p.audiences) {
        if (a.direction === "platform_to_crm") continue;
        const inCrm = crmLists.has(a.crm_list_id);
        const inPlatform = platformLists.has(a.platform_list_id);
        // The CRM list's own Do Not Contact stops email to the person through it: its copy on the
        // platform loses them whatever the delete policy, however they joined it.
        if (crmStopped.has(a.crm_list_id)) {
          if (inPlatform)
            bulk.member(
              p.connection_id,
              "remove_list_members",
              a.platform_list_id,
              id,
              rec.external_id,
              true,
            );
          continue;
        }
        const agreed = agreedMember(c, p.connection_id, a);
        // Left the platform list after both sides agreed (the person's preference page, or an admin
        // there): never put back; leaving a list is the person's or the platform's decision. A list
        // standing for a topic stays left after the CRM drops and adds them again; only the person's
        // own opt-in to the topic puts them back (4a).
        if (
          inCrm &&
          !inPlatform &&
          (agreed ||
            (a.topic !== undefined && leftTopicList(c, p.connection_id, a.topic, a.platform_list_id)))
        )
          continue;
        if (inCrm && !inPlatform) {
          eligibility ??= eligibilityFor(contact, p, state, true);
          const listEligibility = listTopicSendable(state, a)
            ? eligibility
            : eligibilityFor(contact, p, state, true, { topic: a.topic });
          if (listEligibility.eligible)
            bulk.member(p.connection_id, "add_list_members", a.platform_list_id, id, rec.external_id);
          else if (blocked.length === 0) blocked.push(...listEligibility.reasons);
        } else if (
          !inCrm &&
          inPlatform &&
          a.delete_policy === "remove_membership" &&
          // Only a membership both sides once agreed on: someone who joined on the platform (its
          // sign-up form, an admin there) was never the CRM list's to take away (seed 002).
          agreed
        ) {
          bulk.member(p.connection_id, "remove_list_members", a.platform_list_id, id, rec.external_id);
        }
      }
      if (blocked.length > 0)
        skipped.add({ contact_id: id, connection_id: p.connection_id, reasons: blocked });

      // 5. Email: every platform holds the CRM's primary address (or the one a platform moved to).
      if (targetEmail !== undefined && !sameEmail(targetEmail, rec.email) && normaliseEmail(targetEmail).ok) {
        emit(
          p.connection_id,
          [id],
          "write",
          crmEmailFrom === undefined
            ? {
                code: "email_changed_in_crm",
                message: `The CRM's primary email is ${targetEmail}; ${p.connection_id} still holds ${rec.email}, which must not stay sendable.`,
              }
            : {
                code: "email_changed_on_platform",
                message: `${crmEmailFrom} moved the address to ${targetEmail}; ${p.connection_id} still holds ${rec.email}, which must not stay sendable.`,
              },
          {
            kind: "change_email",
            external_id: rec.external_id,
            old_email: rec.email,
            new_email: targetEmail.trim(),
          },
        );
      }

      // 6. Profile fields: the merge's platform side, and every field the CRM takes in this plan.
      const updates = new Map(platformFieldUpdates.get(p.connection_id) ?? []);
      for (const [name, value] of crmFieldUpdates) {
        const m = input.fields.find((f) => f.canonical === name);
        if (!m || m.direction === "platform_to_crm") continue;
        if (sameValue(readField(rec, m.platform, m.canonical), value)) updates.delete(name);
        else updates.set(name, value);
      }
      const platformUpdate = toUpdate(input.fields, updates, "platform");
      if (hasUpdate(platformUpdate))
        emit(
          p.connection_id,
          [id],
          "write",
          {
            code: "profile_fields_changed",
            message: `Profile fields to update: ${updateNames(platformUpdate)}.`,
          },
          { kind: "update_contact", external_id: rec.external_id, ...compactUpdate(platformUpdate) },
        );

      // 6b. Concord's personal links in the platform's link fields, where the pair names them.
      const links = linkFieldValues(p, id, rec.fields);
      if (links !== undefined && !rec.deleted)
        emit(
          p.connection_id,
          [id],
          "write",
          {
            code: "personal_links_changed",
            message: `${p.connection_id}'s link field(s) ${Object.keys(links).sort().join(", ")} do not hold the person's current Concord links.`,
          },
          { kind: "update_contact", external_id: rec.external_id, fields: links },
        );
    }

    if (crm) {
      planCrmConsent(c, crm, state, crmPrimary);
      planCrmDeliverability(id, crm, state);
      if (crmEmailFrom !== undefined && crmPrimary !== undefined && targetEmail !== undefined)
        emit(
          crmId,
          [id],
          "write",
          {
            code: "email_changed_on_platform",
            message: `${crmEmailFrom} moved the address from the agreed ${crmPrimary} to ${targetEmail}; the CRM follows.`,
          },
          {
            kind: "change_email",
            external_id: crm.external_id,
            old_email: crmPrimary,
            new_email: targetEmail,
          },
        );
      const crmUpdate = toUpdate(input.fields, crmFieldUpdates, "crm");
      if (hasUpdate(crmUpdate))
        emit(
          crmId,
          [id],
          "write",
          { code: "profile_fields_changed", message: `Profile fields to update: ${updateNames(crmUpdate)}.` },
          { kind: "update_contact", external_id: crm.external_id, ...compactUpdate(crmUpdate) },
        );
      for (const change of crmListChanges)
        bulk.member(crmId, change.kind, change.list_id, id, crm.external_id);
    } else if (c.crm === undefined && policies.create_in_crm && !c.contact.lifecycle.erased) {
      const source = crmCreationSource(c, linkedRecords, state);
      if (source)
        emit(
          crmId,
          [id],
          "write",
          {
            code: "create_in_crm",
            message: `The contact exists only on platforms; the pair creates CRM records.`,
          },
          {
            kind: "create_contact",
            email: source.email.trim(),
            first_name: source.first_name ?? null,
            last_name: source.last_name ?? null,
            kind_of_record: c.contact.type,
          },
        );
    }
    return state;
  };

  /**
   * The platform record a CRM record is created from (seed 002), or none with the reasons, listed
   * as the CRM connection's skips: the person is in a list the pair maps towards the CRM, the
   * account has their permission (the platform shows them subscribed), the address is valid, and
   * the consent rules let the organisation email them — an unsubscribed person is never created.
   */
  function crmCreationSource(
    c: PlanContact,
    linked: readonly { p: PlanPlatform; rec: PlatformRecordState }[],
    state: ChannelConsent,
  ): PlatformRecordState | undefined {
    const inList = linked.filter(({ p, rec }) =>
      p.audiences.some((a) => a.direction !== "crm_to_platform" && rec.list_ids.includes(a.platform_list_id)),
    );
    const from = inList[0] ?? linked[0];
    if (!from) return undefined;
    const contact = { ...c.contact, primary_email: from.rec.email };
    const eligibility = decideEligibility({
      contact,
      target: { connection: crmId },
      consent: state,
      in_synced_audience: inList.length > 0,
    });
    const reasons: SkipReason[] = eligibility.eligible ? [] : [...eligibility.reasons];
    const shown = shownConsent(from.rec.consent_state, ACCOUNT_OBSERVED);
    // No permission on the platform (pending confirmation, not set) is no basis to email them from the CRM.
    if (shown !== "opt_in" && !reasons.some((r) => r.code === "opted_out"))
      reasons.push({ code: "no_consent_basis" });
    if (reasons.length === 0) return from.rec;
    skipped.add({ contact_id: c.contact.id, connection_id: crmId, reasons });
    return undefined;
  }

  /**
   * A hard bounce or a cleaned address seen in a platform, recorded in the CRM's own field for it
   * where the CRM has one (Kindful's "Email Deliverable"). Deliverability is not consent: the
   * field is written so the CRM's users see it, and never read back as an opt-out.
   */
  function planCrmDeliverability(id: ContactId, crm: CrmRecordState, state: ChannelConsent): void {
    const field = pair.crm.deliverability_field;
    const { status, decided_by } = state.deliverability;
    if (field === undefined || (status !== "hard_bounce" && status !== "cleaned")) return;
    if (crm.deleted === true || crm.fields[field.name] === field.undeliverable) return;
    emit(
      crmId,
      [id],
      "write",
      {
        code: "undeliverable_to_crm",
        message: `A platform reported the address ${status === "cleaned" ? "cleaned" : "hard-bounced"}${decided_by !== undefined ? ` (event ${decided_by})` : ""}; the CRM's ${field.name} does not say ${field.undeliverable} yet.`,
      },
      { kind: "update_contact", external_id: crm.external_id, fields: { [field.name]: field.undeliverable } },
    );
  }

  /** 2a/2b. Consent to the CRM: opt-outs it does not show yet, and opt-outs the person's own opt-in lifted. */
  function planCrmConsent(
    c: PlanContact,
    crm: CrmRecordState,
    state: ChannelConsent,
    crmPrimary: string | undefined,
  ): void {
    const id = c.contact.id;
    const eventsById = new Map<string, ConsentEvent>();
    for (const e of c.events) eventsById.set(e.id, e);
    const email = crmPrimary ?? "";

    const scopes = pair.crm.targets.map((t) => ({
      decision: decisionFor(state, t.scope),
      target: t.construct,
      scope: t.scope,
      shown: shownConsent(crm.consent_state, t.construct),
      /** The latest consent record the CRM keeps for this scope. */
      recorded: recordedConsent(crm.consent_state, t.construct),
      label: t.label,
      /** Whether the record holds the construct: any of its facts, for one only members carry. */
      held: t.members_only !== true || crm.consent_state.some((f) => sameObservedScope(f.scope, t.construct)),
    }));

    /**
     * Whether the pending resubscribe request is a flag of this CRM cleared on purpose, of the
     * target's kind (global for global, a topic for a topic). A record made active again, or a
     * request made in another system, says nothing of an opt-out this CRM never showed.
     */
    const requestedHere = (eventId: string, target: ObservedScope): boolean => {
      const request = eventsById.get(eventId);
      if (request === undefined || !("scope" in request)) return true;
      if (request.source.connection !== crmId || isEndingClearedEventId(request.evidence.source_record_id))
        return false;
      return (request.scope.kind === "global") === (target.kind === "global");
    };

    /** The person's own opt-in (or an override with evidence) that decided `decision` by lifting an opt-out. */
    const liftingOptIn = (decision: ScopeDecision): Extract<ConsentEvent, { kind: "opt_in" }> | undefined => {
      if (!decision.sendable || decision.decided_by === undefined) return undefined;
      if (decision.rule !== "lifted_by_contact_opt_in" && decision.rule !== "lifted_by_operator_override")
        return undefined;
      const basis = eventsById.get(decision.decided_by);
      return basis?.kind === "opt_in" && isPersonsOwnOptInEvent(basis) ? basis : undefined;
    };

    for (const { decision, target, scope, shown, recorded, label, held } of scopes) {
      // Not a member of a construct only members carry (a GrowthZone list): nothing is sent to them
      // through it, and there is nothing to mark. Added to it later, they are read again and show
      // its fact, and the opt-out is written then.
      if (!held) continue;
      if (shown !== "opt_out") {
        // A pending resubscribe request means someone cleared this in the CRM on purpose: the
        // ledger keeps the suppression everywhere else, and fighting the CRM flag would only loop.
        // Only a request of this target's kind: an admin clearing the global flag asked nothing
        // about a topic, and the person's topic opt-out still goes to the CRM's topic.
        if (decision.pending_resubscribe && requestedHere(decision.pending_resubscribe.event_id, target))
          continue;
        // The person's own opt-in lifted an opt-out the CRM no longer shows (an admin cleared it and
        // the person confirmed): the CRM still gets the opt-in, with its provenance, as its record.
        const lifted = liftingOptIn(decision);
        if (
          lifted &&
          pair.crm.resubscribe === "consent_record" &&
          recorded !== "opt_in" &&
          (lifted.scope.kind === "global") === (target.kind === "global")
        ) {
          emitOptIn(id, crm, target, scope, lifted, label, decision.rule, false);
          continue;
        }
        const toCrm = (r: OptOutRef): boolean =>
          r.source.connection !== crmId && (target.kind === "global") === (r.scope.kind === "global");
        let ref = pushable(decision.open_opt_outs, toCrm);
        if (!ref) continue;
        // An opt-out from a platform record Concord never put there (matched to this person only by its
        // address) is reported; the pair's policy says whether the CRM takes it too. Left out, it
        // hides no other: an opt-out from a linked record still goes.
        const unlinkedRecord = (r: OptOutRef): boolean =>
          c.platforms[r.source.connection]?.matched_by_address === true;
        if (unlinkedRecord(ref)) {
          const applied = policies.unlinked_opt_outs === "apply_and_report";
          unlinked.push({
            contact_id: id,
            connection_id: ref.source.connection,
            event_id: ref.event_id,
            scope: ref.scope,
            applied,
          });
          if (!applied) {
            ref = pushable(decision.open_opt_outs, (r) => toCrm(r) && !unlinkedRecord(r));
            if (!ref) continue;
          }
        }
        emit(
          crmId,
          [id],
          "consent",
          { code: "opt_out_to_crm", message: `${describeOptOut(ref)} is not shown in the CRM (${label}).` },
          {
            kind: "record_opt_out",
            external_id: crm.external_id,
            email,
            scope: target,
            initiated_by: ref.initiated_by,
            occurred_at: ref.occurred_at,
            reason: decision.rule,
            origin: {
              system: ref.source.system,
              connection: ref.source.connection,
              mechanism: ref.mechanism,
            },
          },
          scope,
        );
        continue;
      }
      // The CRM shows an opt-out: clear it only for the person's own opt-in (or an override with evidence).
      if (!decision.sendable || decision.decided_by === undefined) continue;
      if (pair.crm.resubscribe !== "consent_record") continue;
      const basis = eventsById.get(decision.decided_by);
      if (basis?.kind !== "opt_in" || !isPersonsOwnOptInEvent(basis)) continue;
      emitOptIn(id, crm, target, scope, basis, label, decision.rule, true);
    }
  }

  /** The link fields `p` should hold for the contact that `fields` do not, or undefined when none. */
  function linkFieldValues(
    p: PlanPlatform,
    id: ContactId,
    fields: Readonly<Record<string, string | null>>,
  ): Record<string, string> | undefined {
    const names = p.link_fields;
    if (names === undefined || input.personal_links === undefined) return undefined;
    const links = input.personal_links(id);
    if (links === undefined) return undefined;
    const out: Record<string, string> = {};
    if (names.one_click !== undefined && fields[names.one_click] !== links.one_click_url)
      out[names.one_click] = links.one_click_url;
    if (names.preferences !== undefined && fields[names.preferences] !== links.preferences_url)
      out[names.preferences] = links.preferences_url;
    return Object.keys(out).length > 0 ? out : undefined;
  }

  function emitOptIn(
    id: ContactId,
    crm: CrmRecordState,
    target: ObservedScope,
    scope: Scope,
    basis: Extract<ConsentEvent, { kind: "opt_in" }>,
    label: string,
    rule: string,
    /** Whether the CRM showed the opt-out the opt-in lifts: only then may applying it clear one. */
    readOptedOut: boolean,
  ): void {
    emit(
      crmId,
      [id],
      "consent",
      {
        code: "opt_in_to_crm",
        message: `Opt-in ${basis.id} (${basis.mechanism} in ${basis.source.connection}, ${basis.occurred_at}) lifted an opt-out; the CRM does not record it yet (${label}; rule ${rule}).`,
      },
      {
        kind: "record_opt_in",
        external_id: crm.external_id,
        scope: target,
        occurred_at: basis.occurred_at,
        read_opted_out: readOptedOut,
        origin: optInOrigin(basis),
      },
      scope,
    );
  }

  let finished = false;
  const finish = (): Plan => {
    if (finished) throw new Error("a pair planner finishes once");
    finished = true;
    for (const [draft, contactIds, reason] of bulk.drafts())
      emit(draft.connection, contactIds, "write", reason, draft.operation);

    const operations = [...consentOps, ...writeOps];
    const gains: Record<ConnectionId, number> = {};
    for (const p of pair.platforms) gains[p.connection_id] = 0;
    for (const op of operations)
      if (op.operation.kind === "upsert_contacts")
        gains[op.connection_id] = (gains[op.connection_id] ?? 0) + op.contact_ids.length;

    return {
      pair_id: pair.id,
      as_of: input.as_of,
      operations,
      skipped: skipped.listed,
      waiting,
      unlinked_opt_outs: unlinked,
      lapses,
      counts: countPlan(operations, skipped),
      gains,
    };
  };

  return { add, replay, finish };
}

/** Whether both sides held this membership at their last agreement. */
function agreedMember(c: PlanContact, connection: ConnectionId, a: PlanAudience): boolean {
  const agreed = c.baselines?.[connection]?.[membershipKey(a)];
  // `removing`: agreed, then the CRM's list dropped them (`agreedBaselines`).
  return agreed === "member" || agreed === "removing";
}

/** Whether the record left this list standing for a topic on the platform (`agreedBaselines`). */
function leftTopicList(c: PlanContact, connection: ConnectionId, topic: TopicKey, list: string): boolean {
  return c.baselines?.[connection]?.[topicListKey(topic, list)] === "left";
}

/**
 * The person's own opt-in to the topic (Concord's preference centre, a confirmed sign-up, a CRM
 * consent record of their act) made after they left its list, and after the record's last change
 * on the platform (Concord putting them back, and their leaving again, are such changes: an opt-in
 * puts them back once), when the topic may be sent to them now: only that puts someone who left
 * the list back in it.
 */
function optedBackIn(
  c: PlanContact,
  connection: ConnectionId,
  topic: TopicKey,
  list: string,
  rec: PlatformRecordState,
  state: ChannelConsent,
): Extract<ConsentEvent, { kind: "opt_in" }> | undefined {
  if (!decisionFor(state, topicScope(topic)).sendable) return undefined;
  const left = Date.parse(c.baselines?.[connection]?.[leftAtKey(topic, list)] ?? "");
  if (Number.isNaN(left)) return undefined;
  const changed = rec.updated_at !== undefined ? Date.parse(rec.updated_at) : Number.NaN;
  const leftAt = Number.isNaN(changed) ? left : Math.max(left, changed);
  const key = scopeKey(topicScope(topic));
  let latest: Extract<ConsentEvent, { kind: "opt_in" }> | undefined;
  for (const e of c.events)
    if (
      e.kind === "opt_in" &&
      scopeKey(e.scope) === key &&
      isPersonsOwnOptInEvent(e) &&
      actedAt(e) > leftAt &&
      (latest === undefined || actedAt(e) > actedAt(latest))
    )
      latest = e;
  return latest;
}

/** The contact as the CRM shows it now: its primary address and lifecycle flags win over the canonical copy. */
function contactAsInCrm(
  contact: CanonicalContact,
  crm: CrmRecordState,
  primary: string | undefined,
): CanonicalContact {
  const { primary_email: _old, ...rest } = contact;
  return {
    ...rest,
    ...(primary !== undefined ? { primary_email: primary } : {}),
    lifecycle: {
      ...contact.lifecycle,
      inactive: contact.lifecycle.inactive || crm.inactive === true,
      deceased: contact.lifecycle.deceased || crm.deceased === true,
    },
  };
}

/** Eligibility for the platform's account scope, or for the topic a list stands for. */
function eligibilityFor(
  contact: CanonicalContact,
  p: PlanPlatform,
  consent: ChannelConsent,
  inAudience: boolean,
  /** `topic`: the list's; `newFor`: the contact is new to the platform (its refusals apply). */
  options: { topic?: TopicKey | undefined; newFor?: PlanContact } = {},
): Eligibility {
  const topic = options.topic ?? (p.account_scope.kind === "topic" ? p.account_scope.topic : undefined);
  const refused = options.newFor ? platformRejection(options.newFor, contact, p) : undefined;
  return decideEligibility({
    contact,
    target: { connection: p.connection_id, ...(topic !== undefined ? { topic } : {}) },
    consent,
    in_synced_audience: inAudience,
    ...(refused !== undefined ? { platform_rejection: refused } : {}),
  });
}

/**
 * The platform's refusal of the contact's current address: one it gave before for this very
 * address (a changed address is tried again), or the pair's top-level-domain rule for it.
 */
function platformRejection(
  c: PlanContact,
  contact: CanonicalContact,
  p: PlanPlatform,
): { code: string; message: string } | undefined {
  const refused = c.rejections?.[p.connection_id];
  if (refused === undefined && p.max_tld_length === undefined) return undefined;
  const email = normaliseEmail(contact.primary_email ?? "");
  if (!email.ok) return undefined;
  if (refused !== undefined && refused.email_match_key === email.match_key)
    return { code: refused.code, message: refused.message };
  const tld = email.match_key.slice(email.match_key.lastIndexOf(".") + 1);
  if (p.max_tld_length !== undefined && tld.length > p.max_tld_length)
    return {
      code: "tld_too_long",
      message: `${p.connection_id} refuses addresses whose top-level domain (".${tld}") is longer than ${p.max_tld_length} letters (pairs[].platforms[].max_tld_length).`,
    };
  return undefined;
}

/** Whether the topic a platform list stands for (if any) is sendable: nobody opted out of it joins. */
const listTopicSendable = (state: ChannelConsent, a: PlanAudience): boolean =>
  a.topic === undefined || decisionFor(state, topicScope(a.topic)).sendable;

/** Every topic the pair keeps consent for, on any of its connections. */
export function pairTopics(pair: PlanInput["pair"]): TopicKey[] {
  const all = [pair.crm.targets, ...pair.platforms.map((p) => p.targets)]
    .flat()
    .flatMap((t) => (t.scope.kind === "topic" ? [t.scope.topic] : []));
  return [...new Set(all)].sort();
}

const describeOptOut = (r: OptOutRef): string =>
  `Opt-out ${r.event_id} (${r.mechanism} in ${r.source.connection}, ${r.occurred_at}, by the ${r.initiated_by})`;

function readField(rec: RecordProfile, name: string, canonical: string): string | null {
  if (canonical === "first_name") return rec.first_name ?? null;
  if (canonical === "last_name") return rec.last_name ?? null;
  return rec.fields[name] ?? null;
}

const emptyValue = (v: string | null): boolean => v === null || v === "";
/** Null and "" both mean "no value": no difference worth a write. */
const sameValue = (a: string | null, b: string | null): boolean =>
  a === b || (emptyValue(a) && emptyValue(b));

/** Updates keyed by canonical name, turned into the operation's shape with that side's field names. */
function toUpdate(
  fields: readonly PlanFieldMapping[],
  updates: ReadonlyMap<string, string | null>,
  side: "crm" | "platform",
): Update {
  const out: Update = { fields: {} };
  for (const m of fields) {
    if (!updates.has(m.canonical)) continue;
    const value = updates.get(m.canonical) ?? null;
    if (m.canonical === "first_name") out.first_name = value;
    else if (m.canonical === "last_name") out.last_name = value;
    else out.fields[m[side]] = value;
  }
  return out;
}

/** The CRM record with this plan's field updates applied. */
function projectCrm(
  crm: CrmRecordState,
  fields: readonly PlanFieldMapping[],
  updates: ReadonlyMap<string, string | null>,
): CrmRecordState {
  if (updates.size === 0) return crm;
  const u = toUpdate(fields, updates, "crm");
  return {
    ...crm,
    ...(u.first_name !== undefined ? { first_name: u.first_name } : {}),
    ...(u.last_name !== undefined ? { last_name: u.last_name } : {}),
    fields: { ...crm.fields, ...u.fields },
  };
}

/** The CRM's mapped profile, named for the platform (for new contacts). */
function profileFor(
  fields: readonly PlanFieldMapping[],
  crm: RecordProfile,
): Omit<Update, "fields"> & { fields?: Record<string, string | null> } {
  const values = new Map<string, string | null>();
  for (const m of fields)
    if (m.direction !== "platform_to_crm") values.set(m.canonical, readField(crm, m.crm, m.canonical));
  return compactUpdate(toUpdate(fields, values, "platform"));
}

/** The three-way merge of one linked pair of records: what each side must take, by canonical name. */
function mergeProfile(
  fields: readonly PlanFieldMapping[],
  crm: CrmRecordState,
  rec: PlatformRecordState,
  baseline: Readonly<Record<string, string | null>> | undefined,
): { crm: Map<string, string | null>; platform: Map<string, string | null> } {
  const out = { crm: new Map<string, string | null>(), platform: new Map<string, string | null>() };
  const both: Record<string, FieldMergeInput> = {};
  for (const m of fields) {
    const crmValue = readField(crm, m.crm, m.canonical);
    const platformValue = readField(rec, m.platform, m.canonical);
    if (m.direction === "both") {
      // Equal sides need no write whatever the baseline says (unchanged or converged): skip the merge.
      if (crmValue === platformValue) continue;
      const base = baseline?.[m.canonical];
      both[m.canonical] = {
        owner: m.owner,
        ...(base !== undefined ? { baseline: base } : {}),
        crm: { value: crmValue, ...(crm.updated_at !== undefined ? { changed_at: crm.updated_at } : {}) },
        platform: {
          value: platformValue,
          ...(rec.updated_at !== undefined ? { changed_at: rec.updated_at } : {}),
        },
      };
      continue;
    }
    // One-way fields: the source side's value, always.
    if (sameValue(crmValue, platformValue)) continue;
    if (m.direction === "crm_to_platform") out.platform.set(m.canonical, crmValue);
    else out.crm.set(m.canonical, platformValue);
  }
  const merged = mergeFields(both);
  for (const [name, value] of Object.entries(merged.platform_updates))
    if (value !== undefined) out.platform.set(name, asFieldValue(value));
  for (const [name, value] of Object.entries(merged.crm_updates))
    if (value !== undefined) out.crm.set(name, asFieldValue(value));
  return out;
}

const asFieldValue = (v: unknown): string | null =>
  v === null ? null : typeof v === "string" ? v : canonicalJson(v);

const hasUpdate = (u: Update): boolean =>
  u.first_name !== undefined || u.last_name !== undefined || Object.keys(u.fields).length > 0;

function updateNames(u: Update): string {
  const names = [
    ...(u.first_name !== undefined ? ["first_name"] : []),
    ...(u.last_name !== undefined ? ["last_name"] : []),
    ...Object.keys(u.fields).sort(),
  ];
  return names.join(", ");
}

function compactUpdate(u: Update): Omit<Update, "fields"> & { fields?: Record<string, string | null> } {
  const keys = Object.keys(u.fields).sort();
  const fields: Record<string, string | null> = {};
  for (const k of keys) fields[k] = u.fields[k] ?? null;
  return {
    ...(u.first_name !== undefined ? { first_name: u.first_name } : {}),
    ...(u.last_name !== undefined ? { last_name: u.last_name } : {}),
    ...(keys.length > 0 ? { fields } : {}),
  };
}

type UpsertItem = Extract<ConnectorOperation, { kind: "upsert_contacts" }>["items"][number];
type BulkDraft = { connection: ConnectionId; operation: OperationDraft };

/**
 * Accumulates bulk work across contacts (one upsert per platform and target list set, one
 * membership change per connection, kind and list) so the executor can use bulk endpoints.
 */
class BulkOperations {
  private readonly upserts = new Map<
    string,
    { connection: ConnectionId; list_ids: string[]; items: UpsertItem[] }
  >();
  private readonly members = new Map<
    string,
    {
      connection: ConnectionId;
      kind: "add_list_members" | "remove_list_members";
      list_id: string;
      entries: [string, ContactId][];
      stopped?: true;
    }
  >();

  /** Items and members added so far. */
  count = 0;
  /** The calls since the planner last emptied it (after each contact and each replay). */
  recent: BulkCall[] = [];

  replay(call: BulkCall): void {
    if (call.kind === "upsert") this.upsert(call.connection, call.list_ids, call.item);
    else
      this.member(
        call.connection,
        call.member_kind,
        call.list_id,
        call.contact_id,
        call.external_id,
        call.stopped,
      );
  }

  upsert(connection: ConnectionId, listIds: string[], item: UpsertItem): void {
    this.count += 1;
    this.recent.push({ kind: "upsert", connection, list_ids: listIds, item });
    const key = `${connection}\u0000${listIds.join("\u0000")}`;
    let group = this.upserts.get(key);
    if (!group) this.upserts.set(key, (group = { connection, list_ids: listIds, items: [] }));
    group.items.push(item);
  }

  member(
    connection: ConnectionId,
    kind: "add_list_members" | "remove_list_members",
    listId: string,
    contactId: ContactId,
    externalId: string,
    stopped?: true,
  ): void {
    this.count += 1;
    this.recent.push({
      kind: "member",
      connection,
      member_kind: kind,
      list_id: listId,
      contact_id: contactId,
      external_id: externalId,
      ...(stopped ? { stopped } : {}),
    });
    const key = `${connection}\u0000${kind}\u0000${listId}${stopped ? "\u0000stopped" : ""}`;
    let group = this.members.get(key);
    if (!group)
      this.members.set(
        key,
        (group = { connection, kind, list_id: listId, entries: [], ...(stopped ? { stopped } : {}) }),
      );
    group.entries.push([externalId, contactId]);
  }

  /** Drafts in a canonical order (sorted keys and members), so ids do not depend on input order. */
  *drafts(): Generator<[BulkDraft, ContactId[], PlanReason]> {
    for (const key of [...this.upserts.keys()].sort()) {
      const g = this.upserts.get(key)!;
      const items = [...g.items].sort((a, b) => cmp(a.item_id, b.item_id));
      yield [
        {
          connection: g.connection,
          // Every item was found sendable by the consent rules: new contacts start subscribed, and
          // contacts the platform already holds keep what they show (never re-subscribed).
          operation: {
            kind: "upsert_contacts",
            items,
            list_ids: g.list_ids,
            consent_intent: { existing: "keep", new_contacts: "subscribed" },
          },
        },
        items.map((i) => i.item_id),
        {
          code: "new_contacts",
          message: `${items.length} eligible CRM contact(s) not yet on ${g.connection}${g.list_ids.length > 0 ? `, into list(s) ${g.list_ids.join(", ")}` : ""}.`,
        },
      ];
    }
    for (const key of [...this.members.keys()].sort()) {
      const g = this.members.get(key)!;
      const entries = [...g.entries].sort((a, b) => cmp(a[0], b[0]));
      const added = g.kind === "add_list_members";
      yield [
        {
          connection: g.connection,
          operation: { kind: g.kind, list_ids: [g.list_id], external_ids: entries.map((e) => e[0]) },
        },
        entries.map((e) => e[1]),
        added
          ? {
              code: "list_membership_added",
              message: `${entries.length} contact(s) in the mapped source list, not yet in list ${g.list_id} on ${g.connection}.`,
            }
          : g.stopped
            ? {
                code: "list_membership_stopped",
                message: `${entries.length} contact(s) marked not to be emailed through the mapped source list (its own Do Not Contact); they leave list ${g.list_id} on ${g.connection}.`,
              }
            : {
                code: "list_membership_removed",
                message: `${entries.length} contact(s) left the mapped source list; the delete policy removes them from list ${g.list_id} on ${g.connection}.`,
              },
      ];
    }
  }
}

const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

function countPlan(operations: readonly PlannedOperation[], skipped: SkipTally): PlanCounts {
  const counts: PlanCounts = { operations: {}, skipped: skipped.byReason, skipped_records: skipped.records };
  for (const op of operations) {
    const byKind = (counts.operations[op.connection_id] ??= {});
    const kind: OperationKind = op.operation.kind;
    const entry = (byKind[kind] ??= { operations: 0, contacts: 0 });
    entry.operations += 1;
    entry.contacts += op.contact_ids.length;
  }
  return counts;
}

/** Read by nothing: what `flatten` writes so its read is never optimised away. */
let _flattenSink = 0;

/**
 * A string built from parts stays a chain of its parts until a character of it is read; a plan
 * holds 100,000 operations or more, and reading one character from the middle of each id and message
 * makes it one string (about half the memory of the chain).
 */
function flatten(text: string): void {
  _flattenSink ^= text.charCodeAt(text.length >> 1);
}

/**
 * Skipped records as they are planned: every one counted by connection and reason, and kept as an
 * example while its connection and one of its reasons have fewer than `SKIPPED_LISTED_PER_REASON`.
 */
class SkipTally {
  readonly listed: SkippedRecord[] = [];
  readonly byReason: Record<ConnectionId, Record<string, number>> = {};
  records = 0;
  /** The records added since the planner last emptied it (after each contact and each replay). */
  recent: SkippedRecord[] = [];

  add(record: SkippedRecord): void {
    this.records += 1;
    this.recent.push(record);
    const counts = (this.byReason[record.connection_id] ??= {});
    let room = false;
    for (const r of record.reasons) {
      const n = (counts[r.code] ?? 0) + 1;
      counts[r.code] = n;
      if (n <= SKIPPED_LISTED_PER_REASON) room = true;
    }
    if (room) this.listed.push(record);
  }
}

/** Freezes a value and everything in it: a value shared by many contacts must not change under one. */
function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const inner of Object.values(value)) deepFreeze(inner);
  }
  return value;
}
