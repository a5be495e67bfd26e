/** SQL implementation of `ContactRepository`: canonical contacts and their addresses. */
import type { Selectable } from "kysely";
import { newId } from "../new-id";
import { ContactFlagsSchema, ContactTypeSchema, type Contact, type ContactRepository } from "../ports";
import type { ContactsTable } from "../schema";
import { parseJsonColumn, toJsonColumn } from "./json-column";
import { affected, inChunks, isoNow, type SqlContext } from "./sql-context";

const toContact = (row: Selectable<ContactsTable>): Contact => ({
  id: row.id,
  type: ContactTypeSchema.parse(row.type),
  given_name: row.given_name,
  family_name: row.family_name,
  organization_name: row.organization_name,
  primary_email: row.primary_email,
  email_match_key: row.email_match_key,
  flags: parseJsonColumn(ContactFlagsSchema, row.flags_json, `contacts.flags_json of ${row.id}`),
  created_at: row.created_at,
  updated_at: row.updated_at,
  erased_at: row.erased_at,
});

export function contactRepository(ctx: SqlContext): ContactRepository {
  const { db } = ctx;
  const get = async (id: string): Promise<Contact | undefined> => {
    const row = await db.selectFrom("contacts").selectAll().where("id", "=", id).executeTakeFirst();
    return row === undefined ? undefined : toContact(row);
  };

  return {
    async create(input) {
      const now = isoNow(ctx);
      const row: Selectable<ContactsTable> = {
        id: input.id ?? newId("con", ctx.clock()),
        type: input.type,
        given_name: input.given_name ?? null,
        family_name: input.family_name ?? null,
        organization_name: input.organization_name ?? null,
        primary_email: input.primary_email ?? null,
        email_match_key: input.email_match_key ?? null,
        flags_json: toJsonColumn(ContactFlagsSchema.parse(input.flags ?? [])),
        created_at: now,
        updated_at: now,
        erased_at: null,
        plan_rev: 0,
      };
      await db.insertInto("contacts").values(row).execute();
      return toContact(row);
    },

    get,

    async update(id, patch) {
      const result = await db
        .updateTable("contacts")
        .set({
          ...(patch.type !== undefined && { type: patch.type }),
          ...(patch.given_name !== undefined && { given_name: patch.given_name }),
          ...(patch.family_name !== undefined && { family_name: patch.family_name }),
          ...(patch.organization_name !== undefined && { organization_name: patch.organization_name }),
          ...(patch.primary_email !== undefined && { primary_email: patch.primary_email }),
          ...(patch.email_match_key !== undefined && { email_match_key: patch.email_match_key }),
          ...(patch.flags !== undefined && {
            flags_json: toJsonColumn(ContactFlagsSchema.parse(patch.flags)),
          }),
          updated_at: isoNow(ctx),
        })
        .where("id", "=", id)
        .executeTakeFirst();
      return affected(result.numUpdatedRows) === 0 ? undefined : get(id);
    },

    async findByMatchKey(match_key) {
      const rows = await db
        .selectFrom("contacts")
        .selectAll()
        .where((eb) =>
          eb.or([
            eb("email_match_key", "=", match_key),
            eb(
              "id",
              "in",
              eb
                .selectFrom("contact_emails")
                .select("contact_emails.contact_id")
                .where("match_key", "=", match_key),
            ),
          ]),
        )
        .where("erased_at", "is", null)
        .orderBy("id")
        .execute();
      return rows.map(toContact);
    },

    async findByMatchKeys(match_keys) {
      const keys = [...new Set(match_keys)];
      const byKey = new Map<string, Map<string, Contact>>();
      const add = (key: string, c: Contact) => {
        let held = byKey.get(key);
        if (held === undefined) byKey.set(key, (held = new Map<string, Contact>()));
        held.set(c.id, c);
      };
      // Two plain lookups rather than one `or`: each goes through its own index.
      const loaded = new Map<string, Contact>();
      const secondary: { contact_id: string; match_key: string }[] = [];
      for (const chunk of inChunks(keys)) {
        const rows = await db
          .selectFrom("contacts")
          .selectAll()
          .where("email_match_key", "in", chunk)
          .where("erased_at", "is", null)
          .execute();
        for (const row of rows) {
          const c = toContact(row);
          loaded.set(c.id, c);
          if (c.email_match_key !== null) add(c.email_match_key, c);
        }
        secondary.push(
          ...(await db
            .selectFrom("contact_emails")
            .select(["contact_id", "match_key"])
            .where("match_key", "in", chunk)
            .execute()),
        );
      }
      const missing = [...new Set(secondary.map((e) => e.contact_id))].filter((id) => !loaded.has(id));
      for (const chunk of inChunks(missing))
        for (const row of await db
          .selectFrom("contacts")
          .selectAll()
          .where("id", "in", chunk)
          .where("erased_at", "is", null)
          .execute())
          loaded.set(row.id, toContact(row));
      for (const e of secondary) {
        const c = loaded.get(e.contact_id);
        if (c !== undefined) add(e.match_key, c);
      }
      return new Map(
        [...byKey].map(([key, held]) => [key, [...held.values()].sort((a, b) => compareIds(a.id, b.id))]),
      );
    },

    async addEmail(contact_id, email, match_key) {
      await db
        .insertInto("contact_emails")
        .values({ contact_id, email, match_key, created_at: isoNow(ctx) })
        .onConflict((oc) => oc.columns(["contact_id", "match_key"]).doNothing())
        .execute();
    },

    async emails(contact_id) {
      return db
        .selectFrom("contact_emails")
        .selectAll()
        .where("contact_id", "=", contact_id)
        .orderBy("created_at")
        .orderBy("match_key")
        .execute();
    },

    async erase(id) {
      const now = isoNow(ctx);
      await db.deleteFrom("contact_emails").where("contact_id", "=", id).execute();
      const result = await db
        .updateTable("contacts")
        .set({
          given_name: null,
          family_name: null,
          organization_name: null,
          primary_email: null,
          email_match_key: null,
          updated_at: now,
          erased_at: now,
        })
        .where("id", "=", id)
        .executeTakeFirst();
      return affected(result.numUpdatedRows) > 0;
    },

    async erasedAmong(ids) {
      const erased = new Set<string>();
      for (const chunk of inChunks([...new Set(ids)]))
        for (const row of await db
          .selectFrom("contacts")
          .select("id")
          .where("id", "in", chunk)
          .where("erased_at", "is not", null)
          .execute())
          erased.add(row.id);
      return erased;
    },
  };
}

/** Ids in code-unit order (the order of the one-key lookup's `order by id` for Concord's ASCII ids). */
const compareIds = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
