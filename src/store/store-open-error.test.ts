import { describe, expect, it } from "vitest";
import { postgresOpenError, redactUrl } from "./store-open-error";

const coded = (code: string, message = ""): Error => Object.assign(new Error(message), { code });

describe("a database URL as shown", () => {
  it("hides the user and password however they are written, and any secret in the query", () => {
    expect(redactUrl("postgres://concord:s3cret@db:5432/concord")).toBe("postgres://***@db:5432/concord");
    // The driver splits user info at the last "@": all of it is hidden.
    expect(redactUrl("postgres://concord:p@ss@db/concord")).toBe("postgres://***@db/concord");
    expect(redactUrl("postgres://concord:p%40ss@db/concord")).toBe("postgres://***@db/concord");
    expect(redactUrl("postgres://db/concord?password=s3cret&sslmode=require")).toBe(
      "postgres://db/concord?password=***&sslmode=require",
    );
    expect(redactUrl("postgres://db:5432/concord")).toBe("postgres://db:5432/concord");
    expect(redactUrl("not a url with s3cret")).not.toContain("s3cret");
  });
});

describe("why PostgreSQL could not be reached", () => {
  const url = "postgres://concord:s3cret@localhost:5433/concord";
  const target = { host: "localhost", port: 5433, user: "concord", database: "concord" };

  it("says refused when any address of the host refused, as for localhost's two", () => {
    // A name with two addresses fails once at each; the first may be the one with no route.
    const both = new AggregateError([coded("EADDRNOTAVAIL"), coded("ECONNREFUSED")], "");
    expect(postgresOpenError(both, url, target).message).toBe(
      "the store's database postgres://***@localhost:5433/concord could not be opened: nothing is listening at localhost:5433 (is PostgreSQL running there?). Check DATABASE_URL.",
    );
  });

  it("gives the underlying messages when none is a failure it knows", () => {
    const odd = new AggregateError(
      [coded("EPROTO", "protocol error A"), coded("EPROTO", "protocol error B")],
      "",
    );
    expect(postgresOpenError(odd, url, target).message).toContain(
      "could not be opened: protocol error A; protocol error B. Check DATABASE_URL.",
    );
  });

  it("names a socket directory as the place, and the role and database the driver parsed", () => {
    const socket = { host: "/var/run/postgresql", port: 5432, user: "app", database: "crm" };
    expect(
      postgresOpenError(coded("ENOENT"), "postgres:///crm?host=/var/run/postgresql", socket).message,
    ).toContain("nothing is listening at the socket in /var/run/postgresql (port 5432)");
    expect(postgresOpenError(coded("28P01"), url, socket).message).toContain(
      "the password of role app was refused",
    );
    expect(postgresOpenError(coded("3D000"), url, socket).message).toContain(
      "database crm does not exist (create it, e.g. `createdb crm`)",
    );
  });

  it("says which limit left no connection free, and what to raise", () => {
    const full = postgresOpenError(coded("53300", "sorry, too many clients already"), url, target);
    expect(full.message).toContain(
      "could not be opened: the server has no connection free for it (sorry, too many clients already); raise the server's max_connections or stop other clients. Check DATABASE_URL.",
    );
    // The server answered at one of the host's addresses and refused at the other: its answer is said.
    const role = postgresOpenError(
      new AggregateError(
        [coded("ECONNREFUSED", "refused"), coded("53300", 'too many connections for role "concord"')],
        "",
      ),
      url,
      target,
    );
    expect(role.message).toContain('(too many connections for role "concord")');
    expect(role.message).toContain("raise the role's limit (`ALTER ROLE concord CONNECTION LIMIT …`)");
    const database = postgresOpenError(
      coded("53300", 'too many connections for database "concord"'),
      url,
      target,
    );
    expect(database.message).toContain(
      "raise the database's limit (`ALTER DATABASE concord CONNECTION LIMIT …`)",
    );
  });

  it("says a server starting or stopping is one to try again", () => {
    expect(
      postgresOpenError(coded("57P03", "the database system is starting up"), url, target).message,
    ).toContain("could not be opened: the server is starting up or shutting down; try again shortly.");
  });
});
