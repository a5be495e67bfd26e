/**
 * The identity matcher's `MatchIndex` over the store. The matcher is pure and synchronous, so the
 * facts one record can ask about (its link, the contacts holding its address, their links in this
 * connection) are read first, inside the caller's transaction, and answered from memory.
 */
import type { ConnectionId, ContactType as CoreContactType } from "../core/identity/canonical-contact";
import type { IndexedContact, MatchIndex } from "../core/identity/match-record";
import type { ContactType, StoreSession } from "../store/ports";

export const coreContactType = (type: ContactType): CoreContactType =>
  type === "organization" ? "organisation" : "individual";

export const storeContactType = (type: CoreContactType): ContactType =>
  type === "organisation" ? "organization" : "person";

/** Loads what `matchRecord` may ask about one record of `connection_id` with address key `match_key`. */
export async function loadMatchIndex(
  tx: StoreSession,
  connection_id: ConnectionId,
  external_id: string,
  match_key: string | null,
): Promise<MatchIndex> {
  const link = await tx.links.find(connection_id, external_id);
  const holders = match_key === null ? [] : await tx.contacts.findByMatchKey(match_key);
  const primary: IndexedContact[] = [];
  const other: IndexedContact[] = [];
  const linkedHere = new Set<string>();
  for (const c of holders) {
    const entry = { contact_id: c.id, type: coreContactType(c.type) };
    if (c.email_match_key === match_key) {
      primary.push(entry);
      const links = await tx.links.forContact(c.id);
      if (links.some((l) => l.connection_id === connection_id)) linkedHere.add(c.id);
    } else other.push(entry);
  }
  return {
    linkedContact: (connection, id) =>
      connection === connection_id && id === external_id ? link?.contact_id : undefined,
    byPrimaryEmail: (key) => (key === match_key ? primary : []),
    byOtherEmail: (key) => (key === match_key ? other : []),
    hasLinkIn: (contact_id, connection) => connection === connection_id && linkedHere.has(contact_id),
  };
}
