/**
 * The identity matcher's `MatchIndex` over the store. The matcher is pure and synchronous, so the
 * facts one record can ask about (its link, the contacts holding its address, their links in this
 * connection) are read first, inside the caller's transaction, and answered from memory.
 */
import type { ConnectionId, ContactType as CoreContactType } from "../core/identity/canonical-contact";
import type { IndexedContact, MatchIndex } from "../core/identity/match-record";
import type { Contact, ContactType, Link, RecordSnapshot, StoreSession } from "../store/ports";

export const coreContactType = (type: ContactType): CoreContactType =>
  type === "organization" ? "organisation" : "individual";

export const storeContactType = (type: CoreContactType): ContactType =>
  type === "organisation" ? "organization" : "person";

/**
 * What a page's records may ask about, read in a few statements before the page is recorded rather
 * than several per record: their stored snapshots and links, the contacts holding their addresses
 * and those contacts' links. What the page itself writes (a contact made for an address, a link made
 * to a contact, an address moved) makes those facts stale: they are then read live.
 */
export class PageFacts {
  private readonly staleKeys = new Set<string>();
  private readonly staleContacts = new Set<string>();
  private readonly heldContacts: Set<string>;

  private constructor(
    readonly snapshots: ReadonlyMap<string, RecordSnapshot>,
    private readonly externalIds: ReadonlySet<string>,
    private readonly links: ReadonlyMap<string, Link>,
    private readonly keys: ReadonlySet<string>,
    private readonly holders: ReadonlyMap<string, Contact[]>,
    private readonly holderLinks: ReadonlyMap<string, Link[]>,
  ) {
    this.heldContacts = new Set([...holders.values()].flat().map((c) => c.id));
  }

  /** Reads the facts of `records` (external ids with their address's match key) of one connection. */
  static async load(
    tx: StoreSession,
    connection_id: string,
    records: readonly { external_id: string; match_key: string | null }[],
  ): Promise<PageFacts> {
    const ids = records.map((r) => r.external_id);
    const keys = [...new Set(records.flatMap((r) => (r.match_key === null ? [] : [r.match_key])))];
    const [snapshots, links, holders] = await Promise.all([
      tx.snapshots.getMany(connection_id, ids),
      tx.links.findMany(connection_id, ids),
      tx.contacts.findByMatchKeys(keys),
    ]);
    const holderLinks = await tx.links.forContacts([...holders.values()].flat().map((c) => c.id));
    return new PageFacts(snapshots, new Set(ids), links, new Set(keys), holders, holderLinks);
  }

  /** A contact now holds this address (made, or moved to it): its holders are read live. */
  keyChanged(match_key: string | null): void {
    if (match_key !== null) this.staleKeys.add(match_key);
  }

  /** The contact got a link: its links are read live. */
  contactLinked(contact_id: string): void {
    this.staleContacts.add(contact_id);
  }

  link(tx: StoreSession, connection_id: string, external_id: string): Promise<Link | undefined> {
    return this.externalIds.has(external_id)
      ? Promise.resolve(this.links.get(external_id))
      : tx.links.find(connection_id, external_id);
  }

  holdersOf(tx: StoreSession, match_key: string): Promise<Contact[]> {
    return this.keys.has(match_key) && !this.staleKeys.has(match_key)
      ? Promise.resolve(this.holders.get(match_key) ?? [])
      : tx.contacts.findByMatchKey(match_key);
  }

  linksOf(tx: StoreSession, contact_id: string): Promise<Link[]> {
    return this.heldContacts.has(contact_id) && !this.staleContacts.has(contact_id)
      ? Promise.resolve(this.holderLinks.get(contact_id) ?? [])
      : tx.links.forContact(contact_id);
  }
}

/**
 * Loads what `matchRecord` may ask about one record of `connection_id` with address key `match_key`:
 * from the page's facts, which read the store for what they do not hold.
 */
export async function loadMatchIndex(
  tx: StoreSession,
  connection_id: ConnectionId,
  external_id: string,
  match_key: string | null,
  page: PageFacts,
): Promise<MatchIndex> {
  const link = await page.link(tx, connection_id, external_id);
  const holders = match_key === null ? [] : await page.holdersOf(tx, match_key);
  const primary: IndexedContact[] = [];
  const other: IndexedContact[] = [];
  const linkedHere = new Set<string>();
  for (const c of holders) {
    const entry = { contact_id: c.id, type: coreContactType(c.type) };
    if (c.email_match_key === match_key) {
      primary.push(entry);
      const links = await page.linksOf(tx, c.id);
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
