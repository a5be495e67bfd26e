// Another writer of the SQLite file (a CLI command, a backup) and a full disk: the service keeps
// answering, reports itself not ready, loses nothing, and answers writes 503 rather than 500.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import BetterSqlite3 from "better-sqlite3";
import { sql } from "kysely";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { FastifyInstance } from "fastify";
import { appendConsentEvents, eventsForContact } from "../ledger/consent-ledger";
import { buildServer } from "../server/app";
import { openStore } from "./open-store";
import type { Store } from "./ports";
import { probeStoreWrite } from "./probe-write";

const optOut = (n: number) => ({
  kind: "opt_out" as const,
  scope: { kind: "global" as const },
  contact_id: "con_ada",
  channel: "email" as const,
  source: { system: "constant-contact", connection: "cc-main" },
  mechanism: "unsubscribe_link" as const,
  actor: { kind: "contact" as const },
  occurred_at: new Date(Date.UTC(2026, 5, 1, 10) + n * 1000).toISOString(),
  observed_at: new Date(Date.UTC(2026, 5, 1, 10) + n * 1000).toISOString(),
  evidence: {},
});

describe("the SQLite store beside another writer", () => {
  let dir: string;
  let file: string;
  let store: Store | undefined;
  let app: FastifyInstance | undefined;
  let other: BetterSqlite3.Database | undefined;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "concord-contention-"));
    file = join(dir, "concord.db");
  });
  afterEach(async () => {
    if (other?.inTransaction) other.exec("rollback");
    other?.close();
    await app?.close();
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const serve = (s: Store) => {
    const server = buildServer({ version: "test", ready: () => probeStoreWrite(s, 300) });
    server.post("/opt-out/:n", async (request) => {
      const n = Number((request.params as { n: string }).n);
      const [result] = await appendConsentEvents(s, [optOut(n)]);
      return { kind: result?.kind };
    });
    return server;
  };

  it("readiness says the store does not take writes, and keeps the store's own error for the log", async () => {
    store = await openStore({ file });
    // The probe's table gone: every write fails with the store's own error text.
    await sql`drop table store_probe`.execute(store.db);
    const readiness = await probeStoreWrite(store);
    expect(readiness).toMatchObject({
      ok: false,
      code: "store_unavailable",
      message: "The store does not take writes; the server's log has its error.",
      detail: expect.stringContaining("store_probe"),
    });
  });

  it("keeps answering while another process holds the write lock, and writes once it lets go", async () => {
    store = await openStore({ file, busy_timeout_ms: 600_000 });
    app = serve(store);
    other = new BetterSqlite3(file);
    other.exec("begin immediate");

    const waiting = app.inject({ method: "POST", url: "/opt-out/1" });
    let settled = false;
    void waiting.then(() => (settled = true));
    // The event loop is free: health answers, readiness says why it is not ready.
    expect((await app.inject({ url: "/healthz" })).statusCode).toBe(200);
    const notReady = await app.inject({ url: "/readyz" });
    expect(notReady.statusCode).toBe(503);
    expect(notReady.json()).toMatchObject({ code: "store_unavailable" });
    expect(settled).toBe(false);

    other.exec("commit");
    const written = await waiting;
    expect(written.statusCode).toBe(200);
    expect(written.json()).toEqual({ kind: "appended" });
    expect(await eventsForContact(store, "con_ada")).toHaveLength(1);
    expect((await app.inject({ url: "/readyz" })).statusCode).toBe(200);
  });

  it("answers 503 with Retry-After, not 500, when the lock outlasts the wait, and has changed nothing", async () => {
    store = await openStore({ file, busy_timeout_ms: 50 });
    app = serve(store);
    other = new BetterSqlite3(file);
    other.exec("begin immediate");
    const refused = await app.inject({ method: "POST", url: "/opt-out/2" });
    expect(refused.statusCode).toBe(503);
    expect(refused.headers["retry-after"]).toBe("5");
    expect(refused.json()).toMatchObject({ code: "store_busy" });
    other.exec("commit");
    expect(await eventsForContact(store, "con_ada")).toEqual([]);
    expect((await app.inject({ method: "POST", url: "/opt-out/2" })).json()).toEqual({ kind: "appended" });
  });

  it("answers writes 503 when the disk is full, and keeps what was written", async () => {
    store = await openStore({ file });
    app = serve(store);
    // A database that may not grow behaves as a full disk does: fill what room is left.
    const { rows } = await sql<{ page_count: number }>`pragma page_count`.execute(store.db);
    await sql.raw(`pragma max_page_count = ${String(rows[0]?.page_count ?? 1)}`).execute(store.db);
    let n = 10;
    for (; n < 100_000; n += 1) {
      const answer = await app.inject({ method: "POST", url: `/opt-out/${String(n)}` });
      if (answer.statusCode !== 200) {
        expect(answer.statusCode).toBe(503);
        expect(answer.headers["retry-after"]).toBe("60");
        expect(answer.json()).toMatchObject({ code: "store_full" });
        break;
      }
    }
    expect(await eventsForContact(store, "con_ada")).toHaveLength(n - 10);
  });
});
