/** Migration 0022 on a store that has sign-ups already: the last hour's IPv4 requests count at once. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "kysely";
import { Migrator } from "kysely/migration";
import { afterEach, expect, it } from "vitest";
import { openStore } from "../open-store";
import type { Store } from "../ports";
import { migrateToLatest, MIGRATIONS } from "./migrations";

let dir: string | undefined;
let store: Store | undefined;
afterEach(async () => {
  await store?.close();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

it("gives the sign-ups stored before it their client group: an IPv4 request's address, none for IPv6", async () => {
  dir = mkdtempSync(join(tmpdir(), "concord-0022-"));
  store = await openStore({ file: join(dir, "concord.db"), migrate: false });
  const migrator = new Migrator({ db: store.db, provider: { getMigrations: async () => MIGRATIONS } });
  expect((await migrator.migrateTo("0021_shared_call_rate")).error).toBeUndefined();
  for (const [id, ip] of [
    ["sgn_4", "203.0.113.7"],
    ["sgn_6", "2001:db8:1:2::9"],
    ["sgn_none", null],
  ] as const)
    await sql`insert into signups (id, token_hash, email, match_key, topics_json, lang, wording, request_ip, requested_at, expires_at, status)
      values (${id}, ${`hash_${id}`}, 'a@example.org', 'a@example.org', '[]', 'en', '', ${ip}, '2026-06-01T12:00:00.000Z', '2026-06-04T12:00:00.000Z', 'pending')`.execute(
      store.db,
    );
  await migrateToLatest(store.db);
  const rows = await store.db.selectFrom("signups").select(["id", "request_client"]).orderBy("id").execute();
  expect(rows).toEqual([
    { id: "sgn_4", request_client: "203.0.113.7" },
    { id: "sgn_6", request_client: null },
    { id: "sgn_none", request_client: null },
  ]);
});
