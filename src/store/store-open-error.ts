/**
 * Why the store could not be opened, said so that whoever started Concord knows what to change:
 * the database's address, role, password or name, or the data directory. The password never
 * appears; the command ends with this message alone, without a stack trace.
 */
import { errorCode, errorMessage } from "../core/error-code";

export class StoreOpenError extends Error {
  override name = "StoreOpenError";
}

/** Query parameters that may carry a secret (the driver takes `password` from the query too). */
const SECRET_PARAMETER = /pass|secret|key|token/i;

/**
 * The database URL as it may be shown: its user and password replaced by `***`, and any query
 * parameter that may carry a secret masked. A URL that cannot be parsed is not shown at all.
 */
export function redactUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return "(DATABASE_URL, not shown: it is not a URL)";
  }
  const hadUser = parsed.username !== "" || parsed.password !== "";
  parsed.username = "";
  parsed.password = "";
  for (const name of [...parsed.searchParams.keys()])
    if (SECRET_PARAMETER.test(name)) parsed.searchParams.set(name, "***");
  const shown = parsed.toString();
  return hadUser ? shown.replace("://", "://***@") : shown;
}

/** Where the driver connects, as it parsed the URL (query parameters such as `host` included). */
export type PostgresTarget = { host: string; port: number; user?: string; database?: string };

/** PostgreSQL's own error codes (five characters, a class of two first), not Node's `E…` codes. */
const SQLSTATE = /^[0-9][0-9A-Z]{4}$/;

/** The errors behind one failure: a connection to a name with several addresses fails once each. */
const causesOf = (error: unknown): unknown[] =>
  error instanceof AggregateError && error.errors.length > 0 ? error.errors : [error];

/** A PostgreSQL connection that failed: what failed, in the operator's terms, and what to check. */
export function postgresOpenError(error: unknown, url: string, target: PostgresTarget): StoreOpenError {
  const where = target.host.startsWith("/")
    ? `the socket in ${target.host} (port ${target.port})`
    : `${target.host.includes(":") ? `[${target.host}]` : target.host}:${target.port}`;
  const role = target.user ?? "(the default role)";
  const database = target.database ?? role;
  const causes = causesOf(error);
  const codes = causes.map(errorCode);
  // A server that answered (PostgreSQL's own SQLSTATE, such as 53300) says the most; then refused
  // at any address, the usual case of a server not running; then whatever else failed.
  const code =
    codes.find((c) => c !== undefined && SQLSTATE.test(c)) ??
    (codes.includes("ECONNREFUSED") ? "ECONNREFUSED" : codes.find((c) => c !== undefined));
  /** What the failure with this code said (one of several, when the host had several addresses). */
  const said = (c: string): string => errorMessage(causes[codes.indexOf(c)]);
  const because = (() => {
    switch (code) {
      case "ECONNREFUSED":
      case "ENOENT":
        return `nothing is listening at ${where} (is PostgreSQL running there?)`;
      case "ENOTFOUND":
      case "EAI_AGAIN":
        return `the host ${target.host} is not known`;
      case "ETIMEDOUT":
      case "EHOSTUNREACH":
      case "ENETUNREACH":
        return `${where} did not answer`;
      case "28P01":
        return `the password of role ${role} was refused`;
      case "3D000":
        return `database ${database} does not exist (create it, e.g. \`createdb ${database}\`)`;
      case "53300":
        return `the server has no connection free for it (${said(code)}); ${roomFor(said(code), role, database)}`;
      case "57P03":
        return "the server is starting up or shutting down; try again shortly";
      default:
        return causes
          .map(errorMessage)
          .filter((m) => m !== "")
          .join("; ");
    }
  })();
  return new StoreOpenError(
    `the store's database ${redactUrl(url)} could not be opened: ${because || "no reason given"}. Check DATABASE_URL.`,
    { cause: error },
  );
}

/** What to raise when PostgreSQL has no connection free: the role's, the database's or the server's limit. */
function roomFor(message: string, role: string, database: string): string {
  if (/for role/i.test(message))
    return `raise the role's limit (\`ALTER ROLE ${role} CONNECTION LIMIT …\`) or stop its other clients`;
  if (/for database/i.test(message))
    return `raise the database's limit (\`ALTER DATABASE ${database} CONNECTION LIMIT …\`) or stop its other clients`;
  return "raise the server's max_connections or stop other clients";
}

/** The store's schema could not be made (the role may not create schemas in the database). */
export function postgresSchemaError(error: unknown, url: string, schema: string): StoreOpenError {
  return new StoreOpenError(
    `the store's schema "${schema}" in ${redactUrl(url)} could not be made: ${errorMessage(error)}. Create it, or grant the role CREATE on the database, or check DATABASE_SCHEMA.`,
    { cause: error },
  );
}

/** A SQLite file that could not be made or opened. */
export function sqliteOpenError(error: unknown, file: string): StoreOpenError {
  return new StoreOpenError(
    `the store's file ${file} could not be opened: ${errorMessage(error)}. Check CONCORD_DATA_DIR (a directory this user may write).`,
    { cause: error },
  );
}
