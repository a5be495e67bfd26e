/**
 * A contact's plan revision (ADR 30): `contacts.plan_rev` moves on whenever a row the contact is
 * planned from is written, by triggers, so no write path can forget it: the contact's own planned
 * columns, its links, the snapshots of its linked records, its consent events, baselines, refusals,
 * confirmation emails sent (succeeded `request_resubscribe` operations) and personal-link
 * generation. A plan mark now holds the revision it was planned at, not a fingerprint of the rows,
 * so a later plan settles a marked contact from its contact row and its mark alone. Marks made
 * under the old format are dropped (a cache: the next plan makes them again).
 *
 * PostgreSQL's triggers run once a statement over its transition tables and take the contacts'
 * row locks in id order, so two transactions touching the same contacts cannot deadlock on them. A
 * contact row this transaction already wrote (made, or updated, which always moves it on) is not moved on again: once is
 * enough for a transaction (a plan reads the revision either before it commits or after, with its
 * rows), and a bulk load writes each contact's row once, not once for each of its links, records
 * and events (every update of a row is a new row version in PostgreSQL).
 */
import { PostgresAdapter, sql, type Kysely } from "kysely";
import type { Migration } from "kysely/migration";
import { migration0016PlanMarks } from "./0016-plan-marks";

/**
 * A table whose rows a contact is planned from. `ids(r)` selects the contact ids row (or transition
 * table) `r` names; `when(r)`, the rows that matter; `changed(o, n)`, whether an update changed
 * what matters (`is not` is SQLite's null-safe inequality, PostgreSQL's `is distinct from`).
 */
type Source = {
  table: string;
  ids: (r: string, rowLevel: boolean) => string;
  when?: (r: string) => string;
  changed?: (o: string, n: string) => string;
};

const PLANNED_CONTACT_COLUMNS = [
  "type",
  "given_name",
  "family_name",
  "organization_name",
  "primary_email",
  "flags_json",
  "erased_at",
] as const;

/** The contact ids of rows holding a `contact_id` column. */
const byContactId = (r: string, rowLevel: boolean) =>
  rowLevel ? `select ${r}.contact_id` : `select contact_id from ${r}`;

const SOURCES: readonly Source[] = [
  { table: "links", ids: byContactId },
  {
    table: "record_snapshots",
    // A snapshot names its record; the record's link names the contact.
    ids: (r, rowLevel) =>
      rowLevel
        ? `select contact_id from links where connection_id = ${r}.connection_id and external_id = ${r}.external_id`
        : `select l.contact_id from ${r} s join links l on l.connection_id = s.connection_id and l.external_id = s.external_id`,
    changed: (o, n) =>
      `${o}.content_hash is not ${n}.content_hash or ${o}.payload_json is not ${n}.payload_json`,
  },
  { table: "consent_events", ids: byContactId },
  { table: "baselines", ids: byContactId },
  { table: "platform_rejections", ids: byContactId },
  { table: "link_generations", ids: byContactId },
  {
    table: "operations",
    ids: byContactId,
    when: (r) => `${r}.kind = 'request_resubscribe'`,
    changed: (o, n) =>
      `${o}.status is not ${n}.status or ${o}.contact_id is not ${n}.contact_id or ${o}.target_connection is not ${n}.target_connection`,
  },
];

export const migration0017PlanRevisions: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    const postgres = db.getExecutor().adapter instanceof PostgresAdapter;
    await db.schema
      .alterTable("contacts")
      .addColumn("plan_rev", "integer", (c) => c.notNull().defaultTo(0))
      .execute();
    await db.schema.dropTable("plan_marks").execute();
    await db.schema
      .createTable("plan_marks")
      .addColumn("pair_id", "text", (c) => c.notNull())
      .addColumn("contact_id", "text", (c) => c.notNull())
      .addColumn("plan_key", "text", (c) => c.notNull())
      .addColumn("plan_rev", "integer", (c) => c.notNull())
      .addColumn("outcome_json", "text", (c) => c.notNull())
      .addColumn("valid_until", "text")
      .addPrimaryKeyConstraint("plan_marks_pk", ["pair_id", "contact_id"])
      .execute();
    for (const statement of postgres ? postgresTriggers() : sqliteTriggers())
      await sql.raw(statement).execute(db);
  },
  async down(db: Kysely<unknown>): Promise<void> {
    const postgres = db.getExecutor().adapter instanceof PostgresAdapter;
    for (const name of triggerNames())
      await sql
        .raw(`drop trigger if exists ${name.trigger}${postgres ? ` on ${name.table}` : ""}`)
        .execute(db);
    if (postgres) {
      await sql.raw("drop function if exists concord_contact_plan_rev()").execute(db);
      for (const s of SOURCES)
        for (const op of OPS)
          await sql.raw(`drop function if exists ${functionName(s.table, op)}()`).execute(db);
    }
    await db.schema.dropTable("plan_marks").execute();
    // Marks as 0016 made them (empty: a cache).
    await migration0016PlanMarks.up(db);
    await db.schema.alterTable("contacts").dropColumn("plan_rev").execute();
  },
};

const OPS = ["insert", "update", "delete"] as const;
type Op = (typeof OPS)[number];

function triggerNames(): { trigger: string; table: string }[] {
  const out = [{ trigger: "contacts_plan_rev", table: "contacts" }];
  for (const s of SOURCES)
    for (const op of OPS) out.push({ trigger: `${s.table}_plan_rev_${op}`, table: s.table });
  return out;
}

const functionName = (table: string, op: Op) => `concord_${table}_plan_rev_${op}`;

/** SQLite: a row trigger per table and statement kind. */
function sqliteTriggers(): string[] {
  const distinct = PLANNED_CONTACT_COLUMNS.map((c) => `old.${c} is not new.${c}`).join(" or ");
  const out = [
    // Only the planned columns name the trigger, so its own update of plan_rev does not fire it again.
    `create trigger contacts_plan_rev after update of ${PLANNED_CONTACT_COLUMNS.join(", ")} on contacts
       for each row when ${distinct}
       begin update contacts set plan_rev = plan_rev + 1 where id = new.id; end`,
  ];
  for (const s of SOURCES) {
    const bump = (r: string) =>
      `update contacts set plan_rev = plan_rev + 1 where id in (${s.ids(r, true)});`;
    for (const op of OPS) {
      const rows = op === "insert" ? ["new"] : op === "delete" ? ["old"] : ["old", "new"];
      const conditions: string[] = [];
      if (s.when !== undefined) conditions.push(`(${rows.map((r) => s.when?.(r)).join(" or ")})`);
      if (op === "update" && s.changed !== undefined) conditions.push(`(${s.changed("old", "new")})`);
      out.push(
        `create trigger ${s.table}_plan_rev_${op} after ${op} on ${s.table} for each row` +
          (conditions.length > 0 ? ` when ${conditions.join(" and ")}` : "") +
          ` begin ${rows.map(bump).join(" ")} end`,
      );
    }
  }
  return out;
}

/**
 * PostgreSQL: a statement trigger per table and statement kind over its transition tables (an
 * update's old and new rows both count), and a row trigger before any update of a contact row.
 * Contacts are locked in id order before they are updated.
 */
function postgresTriggers(): string[] {
  const out = [
    `create function concord_contact_plan_rev() returns trigger language plpgsql as $$
     begin new.plan_rev := old.plan_rev + 1; return new; end $$`,
    // Every update of a contact row moves it on (one that already does, the triggers' own, is
    // left as it is), planned columns or not: a row this transaction wrote is then always one it
    // moved on, which is what the statement triggers' xmin test below relies on.
    `create trigger contacts_plan_rev before update on contacts for each row
       when (new.plan_rev is not distinct from old.plan_rev) execute function concord_contact_plan_rev()`,
  ];
  for (const s of SOURCES) {
    const ids = (table: string) =>
      s.ids(table, false) + (s.when === undefined ? "" : ` where ${s.when(table)}`);
    for (const op of OPS) {
      // Updates that change nothing planned (a snapshot read again unchanged) are filtered where the
      // table has a key to pair old and new rows by; otherwise every updated row counts.
      const changed =
        op === "insert"
          ? ids("new_rows")
          : op === "delete"
            ? ids("old_rows")
            : s.table === "record_snapshots" && s.changed !== undefined
              ? `select l.contact_id from old_rows o join new_rows n
                   on o.connection_id = n.connection_id and o.external_id = n.external_id
                 join links l on l.connection_id = n.connection_id and l.external_id = n.external_id
                 where ${s.changed("o", "n").replaceAll(" is not ", " is distinct from ")}`
              : `${ids("old_rows")} union ${ids("new_rows")}`;
      const referencing =
        op === "insert"
          ? "referencing new table as new_rows"
          : op === "delete"
            ? "referencing old table as old_rows"
            : "referencing old table as old_rows new table as new_rows";
      out.push(
        `create function ${functionName(s.table, op)}() returns trigger language plpgsql as $$
         begin
           update contacts set plan_rev = plan_rev + 1 where id in (
             select id from contacts where id in (${changed})
               and xmin::text <> (txid_current() % 4294967296)::text
             order by id for no key update);
           return null;
         end $$`,
        `create trigger ${s.table}_plan_rev_${op} after ${op} on ${s.table} ${referencing}
           for each statement execute function ${functionName(s.table, op)}()`,
      );
    }
  }
  return out;
}
