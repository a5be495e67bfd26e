/**
 * The client group of each sign-up request (an IPv4 address, or an IPv6 one's /64), so that the
 * per-client limit counts a household's or a server's whole /64 as one client, as sign-in does.
 */
import { sql, type Kysely } from "kysely";
import type { Migration } from "kysely/migration";

export const migration0022SignupClientGroup: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable("signups").addColumn("request_client", "text").execute();
    // The last hour's requests from IPv4 clients count at once (their group is their address);
    // those from IPv6 clients count from now on.
    await sql`update signups set request_client = request_ip where request_ip is not null and request_ip not like '%:%'`.execute(
      db,
    );
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
