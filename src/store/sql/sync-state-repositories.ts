/** SQL implementations of the sync-state repositories: record snapshots, baselines and checkpoints. */
import type { Selectable } from "kysely";
import type { RecordSnapshotsTable } from "../schema";
import {
  JsonValueSchema,
  type BaselineRepository,
  type CheckpointRepository,
  type RecordSnapshot,
  type SnapshotRepository,
} from "../ports";
import { parseJsonColumn, toJsonColumn } from "./json-column";
import { affected, inChunks, isoNow, type SqlContext } from "./sql-context";

export function snapshotRepository(ctx: SqlContext): SnapshotRepository {
  const { db } = ctx;
  return {
    async put(snapshot) {
      // Update only when the content hash differs, so the affected-row count says whether anything changed.
      const result = await db
        .insertInto("record_snapshots")
        .values({
          connection_id: snapshot.connection_id,
          external_id: snapshot.external_id,
          content_hash: snapshot.content_hash,
          payload_json: toJsonColumn(snapshot.payload),
          observed_at: snapshot.observed_at ?? isoNow(ctx),
        })
        .onConflict((oc) =>
          oc
            .columns(["connection_id", "external_id"])
            .doUpdateSet((eb) => ({
              content_hash: eb.ref("excluded.content_hash"),
              payload_json: eb.ref("excluded.payload_json"),
              observed_at: eb.ref("excluded.observed_at"),
            }))
            .whereRef("record_snapshots.content_hash", "<>", "excluded.content_hash"),
        )
        .executeTakeFirst();
      return { changed: affected(result.numInsertedOrUpdatedRows) > 0 };
    },

    async getMany(connection_id, external_ids) {
      const found = new Map<string, RecordSnapshot>();
      for (const chunk of inChunks([...new Set(external_ids)]))
        for (const row of await db
          .selectFrom("record_snapshots")
          .selectAll()
          .where("connection_id", "=", connection_id)
          .where("external_id", "in", chunk)
          .execute())
          found.set(row.external_id, toSnapshot(row));
      return found;
    },

    async get(connection_id, external_id) {
      const row = await db
        .selectFrom("record_snapshots")
        .selectAll()
        .where("connection_id", "=", connection_id)
        .where("external_id", "=", external_id)
        .executeTakeFirst();
      return row === undefined ? undefined : toSnapshot(row);
    },
  };
}

const toSnapshot = (row: Selectable<RecordSnapshotsTable>): RecordSnapshot => ({
  connection_id: row.connection_id,
  external_id: row.external_id,
  content_hash: row.content_hash,
  payload: parseJsonColumn(JsonValueSchema, row.payload_json, "record_snapshots.payload_json"),
  observed_at: row.observed_at,
});

/** Baselines a statement (five parameters each: within both databases' limits). */
const BASELINES_PER_STATEMENT = 200;

export function baselineRepository(ctx: SqlContext): BaselineRepository {
  const { db } = ctx;
  const upsert = async (baselines: Parameters<BaselineRepository["putMany"]>[0]): Promise<void> => {
    if (baselines.length === 0) return;
    const updated_at = isoNow(ctx);
    await db
      .insertInto("baselines")
      .values(
        baselines.map((b) => ({
          contact_id: b.contact_id,
          pair_id: b.pair_id,
          values_json: toJsonColumn(b.values),
          run_id: b.run_id ?? null,
          updated_at,
        })),
      )
      .onConflict((oc) =>
        oc.columns(["contact_id", "pair_id"]).doUpdateSet((eb) => ({
          values_json: eb.ref("excluded.values_json"),
          run_id: eb.ref("excluded.run_id"),
          updated_at: eb.ref("excluded.updated_at"),
        })),
      )
      .execute();
  };
  return {
    async put(baseline) {
      await upsert([baseline]);
    },

    async putMany(baselines) {
      // One row per contact and pair in a statement: an upsert may not touch a row twice.
      const last = new Map(baselines.map((b) => [`${b.contact_id}\u0000${b.pair_id}`, b]));
      const rows = [...last.values()];
      for (let i = 0; i < rows.length; i += BASELINES_PER_STATEMENT)
        await upsert(rows.slice(i, i + BASELINES_PER_STATEMENT));
    },

    async get(contact_id, pair_id) {
      const row = await db
        .selectFrom("baselines")
        .selectAll()
        .where("contact_id", "=", contact_id)
        .where("pair_id", "=", pair_id)
        .executeTakeFirst();
      if (row === undefined) return undefined;
      return {
        contact_id: row.contact_id,
        pair_id: row.pair_id,
        values: parseJsonColumn(JsonValueSchema, row.values_json, "baselines.values_json"),
        run_id: row.run_id,
        updated_at: row.updated_at,
      };
    },
  };
}

export function checkpointRepository(ctx: SqlContext): CheckpointRepository {
  const { db } = ctx;
  return {
    async get(connection_id, stream) {
      const row = await db
        .selectFrom("checkpoints")
        .selectAll()
        .where("connection_id", "=", connection_id)
        .where("stream", "=", stream)
        .executeTakeFirst();
      if (row === undefined) return undefined;
      return {
        connection_id: row.connection_id,
        stream: row.stream,
        value: parseJsonColumn(JsonValueSchema, row.value_json, "checkpoints.value_json"),
        updated_at: row.updated_at,
      };
    },

    async set(connection_id, stream, value) {
      await db
        .insertInto("checkpoints")
        .values({ connection_id, stream, value_json: toJsonColumn(value), updated_at: isoNow(ctx) })
        .onConflict((oc) =>
          oc.columns(["connection_id", "stream"]).doUpdateSet((eb) => ({
            value_json: eb.ref("excluded.value_json"),
            updated_at: eb.ref("excluded.updated_at"),
          })),
        )
        .execute();
    },
  };
}
