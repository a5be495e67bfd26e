/** Test support: contacts with no name and no email, each linked to one record, written straight into a store's tables (for tests of how planning reads many contacts, without the pipeline that would make them). */
import type { Kysely } from "kysely";
import type { Database } from "../../src/store/schema";

export type BareLink = { contact_id: string; connection_id: string; external_id: string };

const CHUNK = 500;

export async function insertBareContacts(db: Kysely<Database>, links: BareLink[], at: string): Promise<void> {
  for (let i = 0; i < links.length; i += CHUNK) {
    const some = links.slice(i, i + CHUNK);
    await db
      .insertInto("contacts")
      .values(
        some.map((l) => ({
          id: l.contact_id,
          type: "person",
          given_name: null,
          family_name: null,
          organization_name: null,
          primary_email: null,
          email_match_key: null,
          flags_json: "[]",
          created_at: at,
          updated_at: at,
          erased_at: null,
        })),
      )
      .execute();
    await db
      .insertInto("links")
      .values(some.map((l) => ({ ...l, origin: "observed", created_at: at, updated_at: at })))
      .execute();
  }
}
