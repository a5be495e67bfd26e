/** SQL implementation of `ConsentEventRepository`: raw ledger rows and the chain head; src/ledger owns their meaning. */
import type { Selectable } from "kysely";
import { CONSENT_LEDGER_HEAD_ID } from "../migrations/0001-initial";
import type { ConsentEventRepository, ConsentEventRow, LedgerHead } from "../ports";
import type { ConsentEventsTable } from "../schema";
import { affected, type SqlContext } from "./sql-context";

/** Keeps each statement well under SQLite's and PostgreSQL's bound-parameter limits. */
const CHUNK = 200;

// bigint columns arrive as numbers on both backends (open-store installs an int8 parser for PostgreSQL).
const toRow = (row: Selectable<ConsentEventsTable>): ConsentEventRow => row;
const toHead = (row: { seq: number; hash: string }): LedgerHead => ({ seq: row.seq, hash: row.hash });

export function consentEventRepository(ctx: SqlContext): ConsentEventRepository {
  const { db } = ctx;
  return {
    async lockHead() {
      if (!db.isTransaction)
        throw new Error("consent ledger: lockHead() must run inside store.transaction()");
      // A no-op UPDATE takes the row lock on PostgreSQL and the write lock on SQLite; RETURNING gives
      // the head as committed by whoever held the lock before us (READ COMMITTED re-reads the row).
      const row = await db
        .updateTable("consent_ledger_head")
        .set((eb) => ({ seq: eb.ref("seq") }))
        .where("id", "=", CONSENT_LEDGER_HEAD_ID)
        .returning(["seq", "hash"])
        .executeTakeFirst();
      if (row === undefined) throw new Error("consent ledger: head row missing; was the store migrated?");
      return toHead(row);
    },

    async readHead() {
      const row = await db
        .selectFrom("consent_ledger_head")
        .select(["seq", "hash"])
        .where("id", "=", CONSENT_LEDGER_HEAD_ID)
        .executeTakeFirst();
      if (row === undefined) throw new Error("consent ledger: head row missing; was the store migrated?");
      return toHead(row);
    },

    async setHead(head) {
      await db
        .updateTable("consent_ledger_head")
        .set({ seq: head.seq, hash: head.hash })
        .where("id", "=", CONSENT_LEDGER_HEAD_ID)
        .execute();
    },

    async insert(rows) {
      for (let i = 0; i < rows.length; i += CHUNK) {
        await db
          .insertInto("consent_events")
          .values(rows.slice(i, i + CHUNK))
          .execute();
      }
    },

    async findByIds(ids) {
      const found: ConsentEventRow[] = [];
      for (let i = 0; i < ids.length; i += CHUNK) {
        const rows = await db
          .selectFrom("consent_events")
          .selectAll()
          .where("id", "in", ids.slice(i, i + CHUNK))
          .execute();
        found.push(...rows.map(toRow));
      }
      return found;
    },

    async page(after_seq, limit, filter) {
      let query = db.selectFrom("consent_events").selectAll().where("seq", ">", after_seq);
      if (filter?.contact_id !== undefined) query = query.where("contact_id", "=", filter.contact_id);
      const rows = await query.orderBy("seq").limit(limit).execute();
      return rows.map(toRow);
    },

    async forContact(contact_id) {
      const rows = await db
        .selectFrom("consent_events")
        .selectAll()
        .where("contact_id", "=", contact_id)
        .orderBy("seq")
        .execute();
      return rows.map(toRow);
    },

    async eraseEvidence(contact_id, blank_evidence_json, through_seq) {
      const result = await db
        .updateTable("consent_events")
        .set({ evidence_json: blank_evidence_json, evidence_erased_at: ctx.clock().toISOString() })
        .where("contact_id", "=", contact_id)
        .where("evidence_erased_at", "is", null)
        .where("seq", "<=", through_seq)
        .executeTakeFirst();
      return affected(result.numUpdatedRows);
    },

    async unsealed(after_seq, until_seq, limit) {
      const rows = await db
        .selectFrom("consent_events")
        .selectAll()
        .where("seq", ">", after_seq)
        .where("seq", "<=", until_seq)
        .where("seal", "is", null)
        .orderBy("seq")
        .limit(limit)
        .execute();
      return rows.map(toRow);
    },

    async setSeal(seq, seal) {
      await db.updateTable("consent_events").set({ seal }).where("seq", "=", seq).execute();
    },
  };
}
