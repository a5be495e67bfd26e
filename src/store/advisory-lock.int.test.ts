/**
 * Named locks on PostgreSQL: held against every process of one installation, and never against
 * another installation that shares the database in a schema of its own.
 */
import { randomBytes } from "node:crypto";
import { sql } from "kysely";
import { afterEach, describe, expect, it } from "vitest";
import { gate } from "../../test/support/gate";
import { storeBackends } from "../../test/support/store-backends";
import { lockForTransaction, pairLockName, withNamedLock, withNamedLocks } from "./advisory-lock";
import { openStore } from "./open-store";
import type { Store } from "./ports";

const postgres = storeBackends().find((b) => b.name === "postgres");
const url = process.env["TEST_DATABASE_URL"] ?? "";

describe.skipIf(postgres?.skip_reason !== undefined)("named locks (PostgreSQL)", () => {
  const opened: Store[] = [];
  const schemas: string[] = [];
  /** A process of an installation: its own pool on the installation's schema. */
  const processOf = async (schema: string): Promise<Store> => {
    const store = await openStore({ url, schema, pool_size: 3 });
    opened.push(store);
    return store;
  };
  const installation = (): string => {
    const schema = `l_${randomBytes(6).toString("hex")}`;
    schemas.push(schema);
    return schema;
  };
  afterEach(async () => {
    const first = opened[0];
    for (const schema of schemas.splice(0))
      if (first) await sql`drop schema if exists ${sql.id(schema)} cascade`.execute(first.db);
    for (const store of opened.splice(0)) await store.close();
  });

  it("a lock held while its connection sits idle outlives a server that ends idle sessions", async () => {
    // A database whose sessions the server ends after 300 ms idle (`idle_session_timeout`).
    const admin = await processOf(installation());
    const database = `concord_idle_${randomBytes(4).toString("hex")}`;
    await sql`create database ${sql.id(database)}`.execute(admin.db);
    try {
      await sql`alter database ${sql.id(database)} set idle_session_timeout = '300ms'`.execute(admin.db);
      const there = new URL(url);
      there.pathname = `/${database}`;
      const [a, b] = await Promise.all([
        openStore({ url: there.toString(), pool_size: 2, on_pool_error: () => undefined }),
        openStore({ url: there.toString(), pool_size: 2, on_pool_error: () => undefined }),
      ]);
      try {
        const held = await withNamedLock(a, "pair:idle", { wait: false }, async () => {
          // The lock's connection idles well past the server's limit while the run works.
          await new Promise((resolve) => setTimeout(resolve, 1_200));
          return (await withNamedLock(b, "pair:idle", { wait: false }, async () => "taken")).acquired;
        });
        expect(held).toEqual({ acquired: true, value: false });
      } finally {
        await Promise.all([a.close(), b.close()]);
      }
    } finally {
      await sql`drop database if exists ${sql.id(database)} with (force)`.execute(admin.db);
    }
  });

  it("a lock one process holds is held against the installation's other processes, not against another installation", async () => {
    const one = installation();
    const [a, b] = [await processOf(one), await processOf(one)];
    const other = await processOf(installation());
    const taken = gate();
    const release = gate();
    const holder = withNamedLock(a, pairLockName("re-cc"), { wait: true }, async () => {
      taken.open();
      await release.opened;
    });
    await taken.opened;
    try {
      expect(await withNamedLock(b, pairLockName("re-cc"), { wait: false }, async () => "ran")).toEqual({
        acquired: false,
      });
      // Another installation's pair of the same name is its own.
      expect(await withNamedLock(other, pairLockName("re-cc"), { wait: false }, async () => "ran")).toEqual({
        acquired: true,
        value: "ran",
      });
      // A transaction lock of the same name, in the other installation, does not wait either.
      await other.transaction(async (tx) => {
        await lockForTransaction(tx, [pairLockName("re-cc")]);
      });
    } finally {
      release.open();
      await holder;
    }
    expect(await withNamedLock(b, pairLockName("re-cc"), { wait: false }, async () => "ran")).toEqual({
      acquired: true,
      value: "ran",
    });
  });

  it("a transaction takes the locks of all its names at once, each held against the installation's other processes until it ends", async () => {
    const one = installation();
    const [a, b] = [await processOf(one), await processOf(one)];
    const names = [
      "match:zoe@example.org",
      "match:ada@example.org",
      "match:ada@example.org",
      "match:bob@example.org",
    ];
    const inside = gate();
    const done = gate();
    const tx = a.transaction(async (t) => {
      await lockForTransaction(t, names);
      inside.open();
      await done.opened;
    });
    await inside.opened;
    try {
      for (const name of new Set(names))
        expect(await withNamedLock(b, name, { wait: false }, async () => "ran")).toEqual({ acquired: false });
      expect(await withNamedLock(b, "match:eve@example.org", { wait: false }, async () => "ran")).toEqual({
        acquired: true,
        value: "ran",
      });
    } finally {
      done.open();
      await tx;
    }
    for (const name of new Set(names))
      expect(await withNamedLock(b, name, { wait: false }, async () => "ran")).toEqual({
        acquired: true,
        value: "ran",
      });
  });

  it("every pair's lock taken at once on one connection: each held against other processes until the work ends", async () => {
    const one = installation();
    const [a, b] = [await processOf(one), await processOf(one)];
    const names = ["re-cc", "re-mc", "kf-cc", "gz-cc", "sf-cc"].map(pairLockName);
    const taken = gate();
    const release = gate();
    // More names than the pool (3) has connections: one connection holds them all.
    const holder = withNamedLocks(a, names, async () => {
      taken.open();
      await release.opened;
      return "erased";
    });
    await taken.opened;
    try {
      for (const name of names)
        expect(await withNamedLock(b, name, { wait: false }, async () => "ran")).toEqual({ acquired: false });
      // The holder's own process can still query while it holds them.
      expect((await sql<{ one: number }>`select 1 as one`.execute(a.db)).rows).toEqual([{ one: 1 }]);
    } finally {
      release.open();
    }
    expect(await holder).toBe("erased");
    for (const name of names)
      expect(await withNamedLock(b, name, { wait: false }, async () => "ran")).toEqual({
        acquired: true,
        value: "ran",
      });
  });
});
