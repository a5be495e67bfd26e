/** Decides which canonical contact an incoming record is: by link first, by email only when unambiguous, else review. */
import type {
  CanonicalContact,
  ConnectionId,
  ContactId,
  ContactLink,
  ContactType,
} from "./canonical-contact";
import { normaliseEmail } from "./normalise-email";

/** A record read from a connection, as the matcher needs it. */
export type MatchCandidate = {
  connection: ConnectionId;
  external_id: string;
  /** The record's primary email as the system holds it (raw). */
  email?: string;
  /** Unknown when the system does not say (many email platforms). */
  type?: ContactType;
};

export type IndexedContact = { contact_id: ContactId; type: ContactType };

/** What the matcher may ask; the store answers it with indexed queries, tests with `buildMatchIndex`. */
export type MatchIndex = {
  linkedContact(connection: ConnectionId, external_id: string): ContactId | undefined;
  /** Contacts whose primary email has this match key. */
  byPrimaryEmail(match_key: string): readonly IndexedContact[];
  /** Contacts holding this match key among their other emails. */
  byOtherEmail(match_key: string): readonly IndexedContact[];
  /** Whether the contact already has a record in this connection. */
  hasLinkIn(contact_id: ContactId, connection: ConnectionId): boolean;
};

/** Why a record went to the review queue instead of being matched (stable codes). */
export type AmbiguityReason =
  | "several_contacts_share_email"
  | "contact_type_differs"
  | "contact_already_linked_in_connection"
  | "email_is_another_contacts_secondary";

export type MatchResult =
  | { kind: "linked"; contact_id: ContactId }
  | { kind: "matched_by_email"; contact_id: ContactId; match_key: string }
  /** No contact to match: create one. `match_key` is null when the record has no valid email. */
  | { kind: "new"; match_key: string | null }
  | { kind: "ambiguous"; contact_ids: ContactId[]; reason: AmbiguityReason };

const ids = (contacts: readonly IndexedContact[]): ContactId[] =>
  [...new Set(contacts.map((c) => c.contact_id))].sort();

/** Matches one record. Pure: everything it knows comes from `index`. */
export function matchRecord(candidate: MatchCandidate, index: MatchIndex): MatchResult {
  const linked = index.linkedContact(candidate.connection, candidate.external_id);
  if (linked !== undefined) return { kind: "linked", contact_id: linked };

  const email = candidate.email === undefined ? undefined : normaliseEmail(candidate.email);
  if (!email?.ok) return { kind: "new", match_key: null };
  const key = email.match_key;

  const primaries = index.byPrimaryEmail(key);
  const primaryIds = ids(primaries);
  if (primaryIds.length > 1)
    return { kind: "ambiguous", contact_ids: primaryIds, reason: "several_contacts_share_email" };
  const only = primaries[0];
  if (only) {
    // An organisation and a person at one shared address (info@…) are two contacts, never one.
    if (candidate.type !== undefined && candidate.type !== only.type)
      return { kind: "ambiguous", contact_ids: [only.contact_id], reason: "contact_type_differs" };
    // A second record in one connection for the same person is a duplicate there: a human decides.
    if (index.hasLinkIn(only.contact_id, candidate.connection))
      return {
        kind: "ambiguous",
        contact_ids: [only.contact_id],
        reason: "contact_already_linked_in_connection",
      };
    return { kind: "matched_by_email", contact_id: only.contact_id, match_key: key };
  }

  // Someone's old or secondary address: creating a new contact could duplicate them; a human decides.
  const others = ids(index.byOtherEmail(key));
  if (others.length > 0)
    return { kind: "ambiguous", contact_ids: others, reason: "email_is_another_contacts_secondary" };
  return { kind: "new", match_key: key };
}

/** An in-memory index over contacts and links; erased contacts hold no address and match nothing. */
export function buildMatchIndex(
  contacts: readonly CanonicalContact[],
  links: readonly ContactLink[],
): MatchIndex {
  const linkKey = (connection: string, external_id: string) => JSON.stringify([connection, external_id]);
  const byLink = new Map<string, ContactId>();
  const linkedIn = new Set<string>();
  for (const l of links) {
    byLink.set(linkKey(l.connection, l.external_id), l.contact_id);
    linkedIn.add(linkKey(l.contact_id, l.connection));
  }
  const primary = new Map<string, IndexedContact[]>();
  const other = new Map<string, IndexedContact[]>();
  const add = (map: Map<string, IndexedContact[]>, raw: string, c: IndexedContact) => {
    const n = normaliseEmail(raw);
    if (!n.ok) return;
    const list = map.get(n.match_key) ?? [];
    list.push(c);
    map.set(n.match_key, list);
  };
  for (const c of contacts) {
    if (c.lifecycle.erased) continue;
    const entry = { contact_id: c.id, type: c.type };
    if (c.primary_email !== undefined) add(primary, c.primary_email, entry);
    for (const e of c.other_emails) add(other, e, entry);
  }
  return {
    linkedContact: (connection, external_id) => byLink.get(linkKey(connection, external_id)),
    byPrimaryEmail: (key) => primary.get(key) ?? [],
    byOtherEmail: (key) => other.get(key) ?? [],
    hasLinkIn: (contact_id, connection) => linkedIn.has(linkKey(contact_id, connection)),
  };
}
