/**
 * Test support: the store backends every integration suite runs on (SQLite always, PostgreSQL from
 * TEST_DATABASE_URL), each handing out fresh, migrated, isolated stores.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "kysely";
import { describe } from "vitest";
import { openStore } from "../../src/store/open-store";
import type { LedgerSealer, Store, StoreDialect } from "../../src/store/ports";

export type TestStore = {
  store: Store;
  /** SQLite: the store's file. */
  file?: string;
  /** Closes the store and deletes what it created (the SQLite file, the PostgreSQL schema). */
  cleanup(): Promise<void>;
};

export type TestStoreOptions = { clock?: () => Date; ledger_sealer?: LedgerSealer };

export type StoreBackend = {
  name: StoreDialect;
  /** Why this backend cannot run here; undefined when it can. */
  skip_reason: string | undefined;
  create(options?: TestStoreOptions): Promise<TestStore>;
};

type Env = Readonly<Record<string, string | undefined>>;

/**
 * The backends to run on. Without TEST_DATABASE_URL, PostgreSQL is skipped with a reason locally
 * and is an error under CI, so a misconfigured pipeline can never pass on SQLite alone.
 */
export function storeBackends(env: Env = process.env): StoreBackend[] {
  const url = env["TEST_DATABASE_URL"];
  if ((url === undefined || url === "") && env["CI"] !== undefined && env["CI"] !== "") {
    throw new Error(
      "TEST_DATABASE_URL is not set, but CI is: the store suites must run on PostgreSQL in CI. " +
        "Set TEST_DATABASE_URL=postgres://user:password@host:5432/database (see docs/store.md).",
    );
  }
  return [
    { name: "sqlite", skip_reason: undefined, create: createSqliteTestStore },
    {
      name: "postgres",
      skip_reason:
        url === undefined || url === "" ? "TEST_DATABASE_URL is not set (see docs/store.md)" : undefined,
      create: (options) => {
        if (url === undefined || url === "")
          throw new Error("postgres backend is skipped: TEST_DATABASE_URL unset");
        return createPostgresTestStore(url, options);
      },
    },
  ];
}

/**
 * `describe.each` over the runnable backends; a backend that cannot run is registered with
 * `describe.skip` (so its tests show as skipped) and its reason printed.
 */
export function describeOnBackends(title: string, suite: (backend: StoreBackend) => void): void {
  const backends = storeBackends();
  for (const backend of backends.filter((b) => b.skip_reason !== undefined)) {
    console.warn(`${title}: skipping the ${backend.name} backend: ${backend.skip_reason ?? ""}`);
    describe.skip(`${title} on ${backend.name} (skipped: ${backend.skip_reason ?? ""})`, () => {
      suite(backend);
    });
  }
  describe.each(backends.filter((b) => b.skip_reason === undefined))(`${title} on $name`, suite);
}

async function createSqliteTestStore(options: TestStoreOptions = {}): Promise<TestStore> {
  const dir = mkdtempSync(join(tmpdir(), "concord-store-"));
  // A real file rather than :memory:, so WAL mode and the pragmas are exercised as in production.
  const store = await openStore({
    file: join(dir, "concord.db"),
    clock: options.clock,
    ledger_sealer: options.ledger_sealer,
  });
  return {
    store,
    file: join(dir, "concord.db"),
    async cleanup() {
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function createPostgresTestStore(url: string, options: TestStoreOptions = {}): Promise<TestStore> {
  // One schema per store: test files run in parallel processes against the same database.
  const schema = `t_${randomBytes(6).toString("hex")}`;
  const store = await openStore({
    url,
    schema,
    clock: options.clock,
    pool_size: 5,
    ledger_sealer: options.ledger_sealer,
  });
  return {
    store,
    async cleanup() {
      try {
        await sql`drop schema if exists ${sql.id(schema)} cascade`.execute(store.db);
      } finally {
        await store.close();
      }
    },
  };
}
