/**
 * The suppression list's keyed hashes (DESIGN.md §2 rule 8): an erased address is kept only as
 * HMAC-SHA256 of its match key under a random salt this instance makes once and keeps in its store,
 * so the list alone cannot be matched against a list of addresses with precomputed tables.
 */
import { createHmac, randomBytes } from "node:crypto";
import type { StoreSession } from "../store/ports";

const SALT_SETTING = "suppression_salt";

/** The instance's salt; made (once, race-free) when `create`, else undefined until the first erasure. */
export async function suppressionSalt(store: StoreSession, create: boolean): Promise<Buffer | undefined> {
  const read = async () =>
    (await store.db.selectFrom("settings").select("value").where("key", "=", SALT_SETTING).executeTakeFirst())
      ?.value;
  let value = await read();
  if (value === undefined && create) {
    await store.db
      .insertInto("settings")
      .values({
        key: SALT_SETTING,
        value: randomBytes(32).toString("base64"),
        updated_at: store.clock().toISOString(),
      })
      .onConflict((oc) => oc.column("key").doNothing())
      .execute();
    value = await read();
  }
  return value === undefined ? undefined : Buffer.from(value, "base64");
}

/** The keyed hash of an address's match key (see `normaliseEmail`), as the suppression list keeps it. */
export const addressHash = (salt: Buffer, matchKey: string): string =>
  createHmac("sha256", salt).update(matchKey, "utf8").digest("hex");
