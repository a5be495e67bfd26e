/** SQL implementation of `SuppressionRepository`: keyed hashes of erased addresses, never imported again (rule 8). */
import type { SuppressionRepository } from "../ports";
import { affected, isoNow, type SqlContext } from "./sql-context";

const CHUNK = 500;

export function suppressionRepository(ctx: SqlContext): SuppressionRepository {
  const { db } = ctx;
  return {
    async add(suppression) {
      const result = await db
        .insertInto("suppressions")
        .values({
          address_hash: suppression.address_hash,
          reason: suppression.reason,
          contact_id: suppression.contact_id ?? null,
          created_at: isoNow(ctx),
        })
        .onConflict((oc) => oc.column("address_hash").doNothing())
        .executeTakeFirst();
      return { added: affected(result.numInsertedOrUpdatedRows) > 0 };
    },

    async has(address_hash) {
      const row = await db
        .selectFrom("suppressions")
        .select("address_hash")
        .where("address_hash", "=", address_hash)
        .executeTakeFirst();
      return row !== undefined;
    },

    async suppressed(address_hashes) {
      const found = new Set<string>();
      for (let i = 0; i < address_hashes.length; i += CHUNK) {
        const rows = await db
          .selectFrom("suppressions")
          .select("address_hash")
          .where("address_hash", "in", address_hashes.slice(i, i + CHUNK))
          .execute();
        for (const row of rows) found.add(row.address_hash);
      }
      return found;
    },
  };
}
