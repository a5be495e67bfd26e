/**
 * One contact explained by its id (the admin UI's person page): `explainContact`'s view of that
 * contact alone, found through its address, plus its links and the lists each linked record is in
 * as last read. A contact with no address still shows its links and lists.
 */
import { z } from "zod";
import type { ConcordConfig } from "../config/concord-config";
import type { StoreSession } from "../store/ports";
import { explainContact, readSnapshot, type Explanation } from "./explain-contact";
import { LISTS_STREAM } from "../pipeline/resolve-pair";

export type ContactLink = {
  connection_id: string;
  external_id: string;
  origin: string;
  linked_at: string;
};

export type ListMembership = {
  connection_id: string;
  external_id: string;
  list_id: string;
  /** The list's name as last read from the system; null when it was not read. */
  list_name: string | null;
  /** The list's own flag says not to email the person through it (a GrowthZone list's Do Not Contact). */
  do_not_contact: boolean;
};

export type ContactExplanation =
  | { kind: "not_found"; contact_id: string; message: string }
  | {
      kind: "found";
      contact: {
        id: string;
        type: "person" | "organization";
        name: string | null;
        primary_email: string | null;
        erased: boolean;
      };
      /** The explain view of this contact; null when it has no address to explain by. */
      explanation: Explanation | null;
      /** Why the explanation is missing, when it is. */
      note: string | null;
      links: ContactLink[];
      list_memberships: ListMembership[];
    };

const ListsSchema = z.array(z.object({ external_id: z.string(), name: z.string() }).loose());

export async function explainContactById(
  store: StoreSession,
  config: ConcordConfig,
  contactId: string,
  options: { as_of?: string } = {},
): Promise<ContactExplanation> {
  const contact = await store.contacts.get(contactId);
  if (!contact) return { kind: "not_found", contact_id: contactId, message: `No contact ${contactId}.` };
  const addresses = [
    ...(contact.primary_email !== null ? [contact.primary_email] : []),
    ...(await store.contacts.emails(contact.id)).map((e) => e.email),
  ];
  let explanation: Explanation | null = null;
  let note: string | null = null;
  for (const address of addresses) {
    const result = await explainContact(store, config, address, options);
    if (result.kind !== "found") {
      note = result.message;
      continue;
    }
    explanation = result.people.find((p) => p.contact.id === contact.id) ?? null;
    if (explanation) {
      note = null;
      break;
    }
  }
  if (addresses.length === 0)
    note =
      contact.erased_at !== null
        ? `The person was erased on ${contact.erased_at.slice(0, 10)} at their request: Concord keeps only the suppression of their addresses, and the ledger their consent events without personal data.`
        : "The contact has no email address: there is no email consent to explain.";

  const links = await store.links.forContact(contact.id);
  const listNames = new Map<string, Map<string, string>>();
  const namesOf = async (connectionId: string): Promise<Map<string, string>> => {
    const known = listNames.get(connectionId);
    if (known) return known;
    const parsed = ListsSchema.safeParse((await store.checkpoints.get(connectionId, LISTS_STREAM))?.value);
    const names = new Map(parsed.success ? parsed.data.map((l) => [l.external_id, l.name]) : []);
    listNames.set(connectionId, names);
    return names;
  };
  const list_memberships: ListMembership[] = [];
  for (const link of links) {
    const snapshot = await store.snapshots.get(link.connection_id, link.external_id);
    if (!snapshot) continue;
    const shows = readSnapshot(snapshot.payload);
    if (shows.kind !== "record") continue;
    const names = await namesOf(link.connection_id);
    const lists = [
      ...(shows.list_ids ?? []).map((id) => [id, false] as const),
      ...shows.stopped_list_ids.map((id) => [id, true] as const),
    ];
    for (const [listId, stopped] of lists)
      list_memberships.push({
        connection_id: link.connection_id,
        external_id: link.external_id,
        list_id: listId,
        list_name: names.get(listId) ?? null,
        do_not_contact: stopped,
      });
  }
  const name =
    contact.organization_name ??
    ([contact.given_name, contact.family_name].filter((s) => s !== null && s !== "").join(" ") || null);
  return {
    kind: "found",
    contact: {
      id: contact.id,
      type: contact.type,
      name,
      primary_email: contact.primary_email,
      erased: contact.erased_at !== null,
    },
    explanation,
    note,
    links: links.map((l) => ({
      connection_id: l.connection_id,
      external_id: l.external_id,
      origin: l.origin,
      linked_at: l.created_at,
    })),
    list_memberships,
  };
}
