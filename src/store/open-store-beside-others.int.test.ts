/**
 * Installations that share one PostgreSQL database, each in a schema of its own: one opens (and
 * migrates) its store while others are made and dropped beside it.
 */
import { randomBytes } from "node:crypto";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { storeBackends } from "../../test/support/store-backends";
import { openStore } from "./open-store";

const postgres = storeBackends().find((b) => b.name === "postgres");
const url = process.env["TEST_DATABASE_URL"] ?? "";

describe.skipIf(postgres?.skip_reason !== undefined)("a store's schema among others (PostgreSQL)", () => {
  const admin = new pg.Client({ connectionString: url });
  const made: string[] = [];
  afterAll(async () => {
    for (const schema of made) await admin.query(`drop schema if exists "${schema}" cascade`);
    await admin.end();
  });

  it("opens and migrates while other installations' schemas are dropped", async () => {
    await admin.connect();
    let churning = true;
    let churned = 0;
    const churn = (async () => {
      while (churning) {
        const other = `o_${randomBytes(6).toString("hex")}`;
        await admin.query(`create schema "${other}"; create table "${other}".t (id int)`);
        await admin.query(`drop schema "${other}" cascade`);
        churned += 1;
      }
    })();
    try {
      for (let i = 0; i < 8; i += 1) {
        const schema = `s_${randomBytes(6).toString("hex")}`;
        made.push(schema);
        const store = await openStore({ url, schema, pool_size: 2 });
        await store.close();
      }
    } finally {
      churning = false;
      await churn;
    }
    expect(churned).toBeGreaterThan(0);
  });

  it("opens in the database's default schema when another installation lives in a schema of its own", async () => {
    const database = `concord_shared_${randomBytes(4).toString("hex")}`;
    await admin.query(`create database "${database}"`);
    const there = new URL(url);
    there.pathname = `/${database}`;
    try {
      const tenant = await openStore({ url: there.toString(), schema: "acme", pool_size: 2 });
      await tenant.close();
      // The store without a schema lives in `public`: acme's migration table is not its own.
      const store = await openStore({ url: there.toString(), pool_size: 2 });
      try {
        const ada = await store.contacts.create({ type: "person", given_name: "Ada" });
        expect((await store.contacts.get(ada.id))?.given_name).toBe("Ada");
      } finally {
        await store.close();
      }
    } finally {
      await admin.query(`drop database "${database}" with (force)`);
    }
  });
});
