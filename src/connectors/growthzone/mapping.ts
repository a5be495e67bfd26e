/**
 * GrowthZone contacts in Concord's terms: an individual or an organisation, its email addresses
 * with the default one primary, the primary address's restriction as consent for all email (Do Not
 * Contact, or Transactional Only: no mass email), a list's own Do Not Contact as a topic's
 * opt-out where a topic stands for that list, and the profile fields Concord reads and writes.
 */
import type { ConsentFact, ConsentObservation, ExternalRecord } from "../connector";
import { constructScope, GLOBAL_OBSERVED } from "../../core/consent/system-consent";
import type { GzContact, GzEmail } from "./client";

export const LIST = "list";

export const listScope = (id: string, name?: string) => constructScope(LIST, id, name);

export function primaryEmail(c: GzContact): GzEmail | undefined {
  return c.Emails.find((e) => e.IsDefault === true) ?? c.Emails[0];
}

/**
 * GrowthZone's times carry no offset: they are read as UTC. Its null date (0001-01-01) and an
 * unreadable one are no time: undefined.
 */
export function parseGzTime(at: string | null | undefined): string | undefined {
  const text = (at ?? "").trim();
  if (text === "" || text.startsWith("0001-01-01")) return undefined;
  const t = Date.parse(/(Z|[+-]\d\d:?\d\d)$/.test(text) ? text : `${text}Z`);
  return Number.isNaN(t) ? undefined : new Date(t).toISOString();
}

/** As `parseGzTime`; no time is the epoch (for a checkpoint's order only, never a consent act's). */
export function toUtcIso(at: string): string {
  return parseGzTime(at) ?? new Date(0).toISOString();
}

const RESTRICTION_LABEL = {
  None: "None",
  TransactionalOnly: "Transactional Only",
  DoNotContact: "Do Not Contact",
};

/** A topic's list, and whether the contact's membership there says Do Not Contact. */
export type TopicListState = { id: string; name: string; member: boolean; do_not_contact: boolean };

export function consentFacts(c: GzContact, topicLists: readonly TopicListState[]): ConsentFact[] {
  const facts: ConsentFact[] = [];
  const primary = primaryEmail(c);
  if (primary) {
    const r = primary.Restriction;
    facts.push({
      channel: "email",
      scope: GLOBAL_OBSERVED,
      status: r === "None" ? "none" : "opted_out",
      source: `email:${primary.ContactEmailAddressId}.restriction`,
      label: `Email restriction on ${primary.EmailAddress}: ${RESTRICTION_LABEL[r]}`,
      role: "state",
      unversioned: true,
      // Staff set and clear Do Not Contact in GrowthZone: clearing it undoes the account's own
      // opt-out, and nothing else (seed 004; DESIGN.md §2 rule 4).
      account_may_lift: true,
    });
  }
  // Only for members: someone taken off the list is not someone whose Do Not Contact was cleared.
  for (const l of topicLists.filter((t) => t.member))
    facts.push({
      channel: "email",
      scope: listScope(l.id, l.name),
      status: l.do_not_contact ? "opted_out" : "none",
      source: `list:${l.id}.do_not_contact`,
      label: `Do Not Contact on the list "${l.name}": ${l.do_not_contact ? "yes" : l.member ? "no" : "not a member"}`,
      role: "state",
      unversioned: true,
      account_may_lift: true,
    });
  return facts;
}

/**
 * The opt-outs a contact shows: its primary address's restriction, dated by the contact's last
 * change (when GrowthZone gives one; a bound, which every later edit of the contact moves), and each
 * topic list's Do Not Contact mark, which moves no date: dated when Concord saw it. Both are
 * `time_unknown`: recorded once while the record's last word on the scope is that opt-out, never
 * again at a later edit (which would outrank the person's own opt-in made in between), and never a
 * stale date an earlier opt-in comes after. GrowthZone keeps no author for either: they are the account's (staff's, or Concord's
 * own writes read back, which must not turn an account's opt-out into the person's; the person's
 * own act is recorded where they made it).
 */
export function consentObservations(
  c: GzContact,
  topicLists: readonly TopicListState[],
  observed_at: string,
): ConsentObservation[] {
  const out: ConsentObservation[] = [];
  const primary = primaryEmail(c);
  const modified = parseGzTime(c.ModifiedDate);
  const unknown = { occurred_at: observed_at, time_unknown: true as const };
  const email = primary?.EmailAddress ?? "";
  const r = primary?.Restriction ?? "None"; // no primary address: nothing to restrict
  if (primary && r !== "None")
    out.push({
      external_id: String(c.ContactId),
      email,
      channel: "email",
      kind: "opt_out",
      scope: GLOBAL_OBSERVED,
      mechanism: "admin_edit",
      actor: { kind: "account" },
      ...unknown,
      ...(modified !== undefined ? { occurred_at: modified } : {}),
      evidence: {
        reason:
          r === "DoNotContact"
            ? "Do Not Contact is set on the contact's primary email address"
            : "Transactional Only (no mass email) is set on the contact's primary email address",
        source_record_id: `email:${primary.ContactEmailAddressId}:${r}`,
      },
    });
  for (const l of topicLists) {
    if (!l.do_not_contact) continue;
    out.push({
      external_id: String(c.ContactId),
      email,
      channel: "email",
      kind: "opt_out",
      scope: listScope(l.id, l.name),
      mechanism: "admin_edit",
      actor: { kind: "account" },
      ...unknown,
      evidence: {
        reason: `Do Not Contact is set on the contact's membership of "${l.name}"`,
        source_record_id: `list:${l.id}:member:${c.ContactId}:do_not_contact`,
      },
    });
  }
  return out;
}

/** The ids of the topic lists `pick` keeps, as a record's version carries them. */
const listIdsPart = (topicLists: readonly TopicListState[], pick: (t: TopicListState) => boolean): string =>
  topicLists
    .filter(pick)
    .map((t) => t.id)
    .sort()
    .join(",");

/** The topic lists whose Do Not Contact the contact has. */
export const marksPart = (topicLists: readonly TopicListState[]): string =>
  listIdsPart(topicLists, (t) => t.do_not_contact);

/** The topic lists the contact is a member of. */
export const membersPart = (topicLists: readonly TopicListState[]): string =>
  listIdsPart(topicLists, (t) => t.member);

/**
 * The marks part of a version this connector wrote (`ModifiedDate|marks` or
 * `ModifiedDate|marks|in:lists`); undefined for another.
 */
export const marksOfVersion = (version: string): string | undefined => version.split("|")[1];

/** The topic lists a version this connector wrote says the contact is in; undefined for an older one. */
export const membersOfVersion = (version: string): string | undefined => {
  const part = version.split("|")[2];
  return part?.startsWith("in:") === true ? part.slice(3) : undefined;
};

export function toExternalRecord(
  c: GzContact,
  topicLists: readonly TopicListState[],
  lists: { list_ids: readonly string[]; stopped: readonly string[] } | undefined,
): ExternalRecord {
  const organisation = c.SystemContactTypeId === 2;
  const primary = primaryEmail(c);
  return {
    external_id: String(c.ContactId),
    kind: organisation ? "organisation" : "individual",
    emails: c.Emails.map((e) => ({
      address: e.EmailAddress,
      primary: e === primary,
      external_id: String(e.ContactEmailAddressId),
    })),
    first_name: c.FirstName ?? null,
    last_name: c.LastName ?? null,
    ...(organisation ? { organisation_name: c.OrganizationName ?? c.DisplayName ?? null } : {}),
    fields: {
      FirstName: c.FirstName ?? null,
      LastName: c.LastName ?? null,
      OrganizationName: c.OrganizationName ?? null,
    },
    consent_state: consentFacts(c, topicLists),
    ...(lists ? { list_ids: [...lists.list_ids] } : {}),
    ...(lists && lists.stopped.length > 0 ? { stopped_list_ids: [...lists.stopped] } : {}),
    ...(primary?.Restriction === "DoNotContact" ? { do_not_contact: true } : {}),
    // A list's Do Not Contact moves no date: the version carries the marks, so a read can tell a
    // mark that differs from what Concord holds (`ReadOptions.held`).
    version: `${c.ModifiedDate}|${marksPart(topicLists)}|in:${membersPart(topicLists)}`,
    updated_at: toUtcIso(c.ModifiedDate),
  };
}

export function deletedRecord(id: string, at: string): ExternalRecord {
  return {
    external_id: id,
    kind: "individual",
    emails: [],
    fields: {},
    consent_state: [],
    deleted: true,
    updated_at: at,
  };
}
