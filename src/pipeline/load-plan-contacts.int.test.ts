// How planning reads its rows: each read of a chunk of contacts must go through an index on the
// contact, on a SQLite store as it is in use: without statistics (nothing runs ANALYZE on it), SQLite
// chooses by the shape of the query alone. PostgreSQL keeps statistics itself (autovacuum analyses
// its tables), so its choice depends on the data, not the query's shape, and is not pinned here.
import { CompiledQuery, type KyselyPlugin } from "kysely";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Store, StoreSession } from "../store/ports";
import { sqlStoreSession } from "../store/sql/sql-store-session";
import { storeBackends, type TestStore } from "../../test/support/store-backends";
import { contactIdsPage, loadPlanContacts, readPlanRows } from "./load-plan-contacts";
import type { ResolvedPair } from "./resolve-pair";
import { insertBareContacts } from "../../test/support/bare-contacts";

const CONNECTIONS = ["re-nxt", "cc-main", "cc-appeals"];
const sqlite = storeBackends().find((b) => b.name === "sqlite")!;

describe("planning's and linking's statements on a SQLite store without statistics", () => {
  let t: TestStore;
  let store: Store;

  beforeEach(async () => {
    t = await sqlite.create();
    store = t.store;
  });
  afterEach(async () => {
    await t.cleanup();
  });

  /** The statements `read` makes through a store session that records them. */
  async function statementsOf(read: (session: StoreSession) => Promise<unknown>): Promise<CompiledQuery[]> {
    const seen: CompiledQuery[] = [];
    const capture: KyselyPlugin = {
      transformQuery: ({ node, queryId }) => {
        seen.push(store.db.getExecutor().compileQuery(node, queryId));
        return node;
      },
      transformResult: ({ result }) => Promise.resolve(result),
    };
    await read(sqlStoreSession(store.db.withPlugin(capture), "sqlite", () => new Date()));
    return seen;
  }

  async function planOf(q: CompiledQuery): Promise<string> {
    const { rows } = await store.db.executeQuery<{ detail: string }>(
      CompiledQuery.raw(`explain query plan ${q.sql}`, [...q.parameters]),
    );
    return rows.map((r) => r.detail).join("\n");
  }

  it.each([
    ["a page of contacts (a full plan)", { kind: "page", ids: ["c_0001", "c_0500"] }],
    // As many as a chunk holds: SQLite weighs a long list of ids against the connections' few.
    [
      "a scattered set (a webhook's targets)",
      { kind: "some", ids: Array.from({ length: 500 }, (_, i) => `c_${i * 7}`) },
    ],
  ] as const)(
    "reads the links of %s by contact, not every link of the pair's connections",
    async (_, chunk) => {
      const statements = await statementsOf((session) =>
        readPlanRows(session, "pair-1", CONNECTIONS, { kind: chunk.kind, ids: [...chunk.ids] }),
      );
      const links = statements.filter((s) => /from "links"/.test(s.sql));
      expect(links).toHaveLength(1);
      const plan = await planOf(links[0]!);
      // The one index that starts with the contact: a plan by the primary key (connection, record)
      // reads every link of each connection for every chunk, quadratic in the store's size.
      expect(plan).toMatch(/links_contact_id/);
    },
  );

  it("reads each page of a full plan's contact ids as one index range a connection, not every link of the connections nor other pairs' contacts", async () => {
    const statements = await statementsOf((session) => contactIdsPage(session, CONNECTIONS, "c_0500", 500));
    expect(statements).toHaveLength(1);
    const plan = await planOf(statements[0]!);
    const ranges = plan.match(
      /USING (COVERING )?INDEX links_connection_contact \(connection_id=\? AND contact_id>\?\)/g,
    );
    expect(ranges).toHaveLength(CONNECTIONS.length);
    // No scan of the links: what is sorted is each range's page (its limit), merged.
    expect(plan).not.toMatch(/SCAN links/);
  });

  it("claims the links of a page of imported contacts by contact, not by reading every link of the connection", async () => {
    const ids = Array.from({ length: 500 }, (_, i) => `c_${i}`);
    const statements = await statementsOf((session) => session.links.claim("cc-main", ids));
    const links = statements.filter((s) => /update "links"/.test(s.sql));
    expect(links).toHaveLength(1);
    expect(await planOf(links[0]!)).toMatch(/links_contact_id/);
    // Its claims, and the connection's expired ones, are dropped through their key.
    const claims = statements.filter((s) => /from "import_claims"/.test(s.sql));
    expect(claims).toHaveLength(2);
    for (const q of claims) expect(await planOf(q)).toMatch(/USING INDEX sqlite_autoindex_import_claims_1/);
  });
});

describe("a full plan's read on a SQLite store", () => {
  let t: TestStore;

  beforeEach(async () => {
    t = await sqlite.create();
  });
  afterEach(async () => {
    await t.cleanup();
  });

  it("lets the event loop turn between pages, so webhooks and the API are served while it plans", async () => {
    const at = "2026-06-01T00:00:00.000Z";
    const ids = Array.from({ length: 1_200 }, (_, i) => `con_${String(i).padStart(5, "0")}`);
    await insertBareContacts(
      t.store.db,
      ids.map((id) => ({ contact_id: id, connection_id: "re-nxt", external_id: `re-${id}` })),
      at,
    );
    const resolved = {
      pair: { id: "pair-1", crm: { connection_id: "re-nxt" }, platforms: [{ connection_id: "cc-main" }] },
    } as unknown as ResolvedPair;
    // Scheduled before the read starts: it runs once the read lets the event loop turn.
    let turned = -1;
    let seen = 0;
    setImmediate(() => {
      turned = seen;
    });
    for await (const _ of loadPlanContacts(t.store, resolved)) seen += 1;
    expect(seen).toBe(ids.length);
    expect(turned).toBeGreaterThanOrEqual(0);
    expect(turned).toBeLessThan(ids.length);
  });
});
