import { describe, expect, it } from "vitest";
import { connectionsAtMost, shortOfConnections, tightest, type ConnectionLimit } from "./connection-budget";

const server = (in_use: number): ConnectionLimit => ({
  name: "max_connections 300 (3 kept for superusers)",
  limit: 297,
  in_use,
});

describe("connection budget", () => {
  it("counts the store's pool, and the job queue's only for a process that runs jobs", () => {
    expect(connectionsAtMost(0)).toBe(10);
    expect(connectionsAtMost(8)).toBe(42 + 11);
  });

  it("says nothing while what a process may open fits what is free, counting what it holds", () => {
    // 297 - 245 = 52 free, and the process already holds 1 of the 53 it may open.
    expect(shortOfConnections(8, [server(245)], 1)).toBeUndefined();
    expect(shortOfConnections(8, [server(246)], 1)).toBe(
      "this process may open up to 53 PostgreSQL connections (42 for the store and 11 for the job queue, " +
        "running 8 jobs at once), but only 52 are free under max_connections 300 (3 kept for superusers), " +
        '245 being in use by others: at its busiest it would be refused ("too many clients"). Raise that ' +
        "limit, or run fewer jobs in each process (`concord worker --concurrency`, `concord serve --workers`).",
    );
    expect(shortOfConnections(0, [server(290)], 1)).toContain(
      "up to 10 PostgreSQL connections (for the store)",
    );
  });

  it("names the limit with the least room: a role's or a database's own before the server's", () => {
    const role: ConnectionLimit = { name: "the CONNECTION LIMIT 30 of role concord", limit: 30, in_use: 2 };
    const database: ConnectionLimit = {
      name: "the CONNECTION LIMIT 50 of database concord",
      limit: 50,
      in_use: 40,
    };
    expect(tightest([server(100), role, database])).toEqual({ limit: database, free: 10 });
    expect(tightest([server(100), role])).toEqual({ limit: role, free: 28 });
    // A limit already passed (superusers may exceed some) leaves no room rather than less than none.
    expect(tightest([server(300)]).free).toBe(0);
    expect(shortOfConnections(8, [server(100), role], 1)).toContain(
      "under the CONNECTION LIMIT 30 of role concord,",
    );
  });
});
