/** The first schema: every table Concord needs, written with the schema builder so it runs on SQLite and PostgreSQL alike. */
import { sql, type Kysely } from "kysely";
import type { Migration } from "kysely/migration";

/** The chain's `prev_hash` for its first event: 64 zeros, so every row has a hash-shaped predecessor. */
export const LEDGER_GENESIS_HASH = "0".repeat(64);

/** The single chain head row's id; one row per ledger leaves room for more chains later. */
export const CONSENT_LEDGER_HEAD_ID = "consent";

export const migration0001Initial: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable("contacts")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("type", "text", (c) => c.notNull())
      .addColumn("given_name", "text")
      .addColumn("family_name", "text")
      .addColumn("organization_name", "text")
      .addColumn("primary_email", "text")
      .addColumn("email_match_key", "text")
      .addColumn("flags_json", "text", (c) => c.notNull().defaultTo("[]"))
      .addColumn("created_at", "text", (c) => c.notNull())
      .addColumn("updated_at", "text", (c) => c.notNull())
      .addColumn("erased_at", "text")
      .execute();
    // Not unique: a shared household address is a review item, never a constraint violation.
    await db.schema
      .createIndex("contacts_email_match_key")
      .on("contacts")
      .column("email_match_key")
      .execute();

    await db.schema
      .createTable("contact_emails")
      .addColumn("contact_id", "text", (c) => c.notNull().references("contacts.id").onDelete("cascade"))
      .addColumn("match_key", "text", (c) => c.notNull())
      .addColumn("email", "text", (c) => c.notNull())
      .addColumn("created_at", "text", (c) => c.notNull())
      .addPrimaryKeyConstraint("contact_emails_pk", ["contact_id", "match_key"])
      .execute();
    await db.schema
      .createIndex("contact_emails_match_key")
      .on("contact_emails")
      .column("match_key")
      .execute();

    await db.schema
      .createTable("links")
      .addColumn("connection_id", "text", (c) => c.notNull())
      .addColumn("external_id", "text", (c) => c.notNull())
      .addColumn("contact_id", "text", (c) => c.notNull().references("contacts.id"))
      .addColumn("created_at", "text", (c) => c.notNull())
      .addColumn("updated_at", "text", (c) => c.notNull())
      .addPrimaryKeyConstraint("links_pk", ["connection_id", "external_id"])
      .execute();
    await db.schema.createIndex("links_contact_id").on("links").column("contact_id").execute();

    await db.schema
      .createTable("record_snapshots")
      .addColumn("connection_id", "text", (c) => c.notNull())
      .addColumn("external_id", "text", (c) => c.notNull())
      .addColumn("content_hash", "text", (c) => c.notNull())
      .addColumn("payload_json", "text", (c) => c.notNull())
      .addColumn("observed_at", "text", (c) => c.notNull())
      .addPrimaryKeyConstraint("record_snapshots_pk", ["connection_id", "external_id"])
      .execute();

    await db.schema
      .createTable("baselines")
      .addColumn("contact_id", "text", (c) => c.notNull().references("contacts.id"))
      .addColumn("pair_id", "text", (c) => c.notNull())
      .addColumn("values_json", "text", (c) => c.notNull())
      .addColumn("run_id", "text")
      .addColumn("updated_at", "text", (c) => c.notNull())
      .addPrimaryKeyConstraint("baselines_pk", ["contact_id", "pair_id"])
      .execute();

    await db.schema
      .createTable("checkpoints")
      .addColumn("connection_id", "text", (c) => c.notNull())
      .addColumn("stream", "text", (c) => c.notNull())
      .addColumn("value_json", "text", (c) => c.notNull())
      .addColumn("updated_at", "text", (c) => c.notNull())
      .addPrimaryKeyConstraint("checkpoints_pk", ["connection_id", "stream"])
      .execute();

    // No foreign key to contacts: an opt-out must be recordable before identity work settles (rule 1).
    await db.schema
      .createTable("consent_events")
      .addColumn("seq", "bigint", (c) => c.primaryKey())
      .addColumn("id", "text", (c) => c.notNull().unique())
      .addColumn("contact_id", "text", (c) => c.notNull())
      .addColumn("occurred_at", "text", (c) => c.notNull())
      .addColumn("observed_at", "text", (c) => c.notNull())
      .addColumn("event_json", "text", (c) => c.notNull())
      .addColumn("evidence_json", "text", (c) => c.notNull())
      .addColumn("evidence_digest", "text", (c) => c.notNull())
      .addColumn("evidence_erased_at", "text")
      .addColumn("recorded_at", "text", (c) => c.notNull())
      .addColumn("prev_hash", "text", (c) => c.notNull())
      .addColumn("hash", "text", (c) => c.notNull())
      .execute();
    await db.schema
      .createIndex("consent_events_contact_seq")
      .on("consent_events")
      .columns(["contact_id", "seq"])
      .execute();

    // The chain head: appenders lock this row, so the chain never forks (see src/ledger).
    await db.schema
      .createTable("consent_ledger_head")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("seq", "bigint", (c) => c.notNull())
      .addColumn("hash", "text", (c) => c.notNull())
      .execute();
    await sql`insert into consent_ledger_head (id, seq, hash) values (${CONSENT_LEDGER_HEAD_ID}, 0, ${LEDGER_GENESIS_HASH})`.execute(
      db,
    );

    await db.schema
      .createTable("suppressions")
      .addColumn("address_hash", "text", (c) => c.primaryKey())
      .addColumn("reason", "text", (c) => c.notNull())
      .addColumn("contact_id", "text")
      .addColumn("created_at", "text", (c) => c.notNull())
      .execute();

    await db.schema
      .createTable("runs")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("kind", "text", (c) => c.notNull())
      .addColumn("pair_id", "text")
      .addColumn("status", "text", (c) => c.notNull())
      .addColumn("started_at", "text", (c) => c.notNull())
      .addColumn("finished_at", "text")
      .addColumn("summary_json", "text")
      .execute();

    await db.schema
      .createTable("plans")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("run_id", "text", (c) => c.notNull().references("runs.id"))
      .addColumn("pair_id", "text")
      .addColumn("plan_json", "text", (c) => c.notNull())
      .addColumn("counts_json", "text", (c) => c.notNull())
      .addColumn("created_at", "text", (c) => c.notNull())
      .execute();
    await db.schema.createIndex("plans_run_id").on("plans").column("run_id").execute();

    await db.schema
      .createTable("operations")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("plan_id", "text", (c) => c.notNull().references("plans.id"))
      .addColumn("kind", "text", (c) => c.notNull())
      .addColumn("target_connection", "text", (c) => c.notNull())
      .addColumn("contact_id", "text")
      .addColumn("payload_json", "text", (c) => c.notNull())
      .addColumn("status", "text", (c) => c.notNull())
      .addColumn("created_at", "text", (c) => c.notNull())
      .addColumn("updated_at", "text", (c) => c.notNull())
      .execute();
    await db.schema
      .createIndex("operations_plan_status")
      .on("operations")
      .columns(["plan_id", "status"])
      .execute();

    await db.schema
      .createTable("outcomes")
      .addColumn("operation_id", "text", (c) => c.notNull().references("operations.id"))
      .addColumn("attempt", "integer", (c) => c.notNull())
      .addColumn("status", "text", (c) => c.notNull())
      .addColumn("detail_json", "text", (c) => c.notNull())
      .addColumn("retry_at", "text")
      .addColumn("recorded_at", "text", (c) => c.notNull())
      .addPrimaryKeyConstraint("outcomes_pk", ["operation_id", "attempt"])
      .execute();

    await db.schema
      .createTable("review_items")
      .addColumn("id", "text", (c) => c.primaryKey())
      .addColumn("key", "text", (c) => c.notNull().unique())
      .addColumn("kind", "text", (c) => c.notNull())
      .addColumn("status", "text", (c) => c.notNull())
      .addColumn("contact_id", "text")
      .addColumn("connection_id", "text")
      .addColumn("external_id", "text")
      .addColumn("detail_json", "text", (c) => c.notNull())
      .addColumn("resolution_json", "text")
      .addColumn("created_at", "text", (c) => c.notNull())
      .addColumn("resolved_at", "text")
      .execute();
    await db.schema
      .createIndex("review_items_status")
      .on("review_items")
      .columns(["status", "created_at"])
      .execute();

    await db.schema
      .createTable("connections_health")
      .addColumn("connection_id", "text", (c) => c.primaryKey())
      .addColumn("status", "text", (c) => c.notNull())
      .addColumn("reason", "text")
      .addColumn("since", "text", (c) => c.notNull())
      .addColumn("checked_at", "text", (c) => c.notNull())
      .execute();

    await db.schema
      .createTable("credentials")
      .addColumn("connection_id", "text", (c) => c.primaryKey())
      .addColumn("ciphertext", "text", (c) => c.notNull())
      .addColumn("key_id", "text")
      .addColumn("updated_at", "text", (c) => c.notNull())
      .execute();
  },
};
