/**
 * The client group of each sign-up request (an IPv4 address, or an IPv6 one's /64), so that the
 * per-client limit counts a household's or a server's whole /64 as one client, as sign-in does.
 */
import type { Kysely } from "kysely";
import type { Migration } from "kysely/migration";

export const migration0022SignupClientGroup: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable("signups").addColumn("request_client", "text").execute();
    await db.schema
      .createIndex("signups_request_client")
      .on("signups")
      .columns(["request_client", "requested_at"])
      .execute();
  },
  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.dropIndex("signups_request_client").execute();
    await db.schema.alterTable("signups").dropColumn("request_client").execute();
  },
};
