/**
 * Why the store could not be opened, said so that whoever started Concord knows what to change:
 * the database's address, role, password or name, or the data directory. The password never
 * appears; the command ends with this message alone, without a stack trace.
 */
export class StoreOpenError extends Error {
  override name = "StoreOpenError";
}

const codeOf = (error: unknown): string | undefined =>
  typeof error === "object" && error !== null && "code" in error && typeof error.code === "string"
    ? error.code
    : undefined;

const messageOf = (error: unknown): string => (error instanceof Error ? error.message : String(error));

/** The database URL with its password (and any user info) hidden. */
export const redactUrl = (url: string): string => url.replace(/\/\/[^@/]*@/, "//***@");

/** A PostgreSQL connection that failed: what failed, in the operator's terms, and what to check. */
export function postgresOpenError(error: unknown, url: string): StoreOpenError {
  let at: URL | undefined;
  try {
    at = new URL(url);
  } catch {
    at = undefined;
  }
  const host = at?.hostname || "localhost";
  const where = `${host}:${at?.port || "5432"}`;
  const role = decodeURIComponent(at?.username ?? "") || "(the default role)";
  const database = decodeURIComponent(at?.pathname.replace(/^\//, "") ?? "") || role;
  const because = (() => {
    switch (codeOf(error)) {
      case "ECONNREFUSED":
        return `nothing is listening at ${where} (is PostgreSQL running there?)`;
      case "ENOTFOUND":
      case "EAI_AGAIN":
        return `the host ${host} is not known`;
      case "ETIMEDOUT":
      case "EHOSTUNREACH":
      case "ENETUNREACH":
        return `${where} did not answer`;
      case "28P01":
        return `the password of role ${role} was refused`;
      case "3D000":
        return `database ${database} does not exist (create it, e.g. \`createdb ${database}\`)`;
      case "53300":
        return `the server has no connection free (${messageOf(error)}); raise max_connections or stop other clients`;
      case "57P03":
        return "the server is starting up or shutting down; try again shortly";
      default:
        return messageOf(error);
    }
  })();
  return new StoreOpenError(
    `the store's database ${redactUrl(url)} could not be opened: ${because}. Check DATABASE_URL.`,
    { cause: error },
  );
}

/** A SQLite file that could not be made or opened. */
export function sqliteOpenError(error: unknown, file: string): StoreOpenError {
  return new StoreOpenError(
    `the store's file ${file} could not be opened: ${messageOf(error)}. Check CONCORD_DATA_DIR (a directory this user may write).`,
    { cause: error },
  );
}
