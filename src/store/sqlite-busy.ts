/**
 * SQLite with other writers, without stalling the service. better-sqlite3 is synchronous: with a
 * busy timeout, a statement that meets another process's write lock (a CLI command, a backup)
 * blocks the whole event loop until the lock goes or the timeout ends, so health checks, webhooks
 * and the UI stall with it. Here SQLite gives up at once (`busy_timeout = 0`) and the statement is
 * tried again after an asynchronous pause, doubling from 2 ms to 100 ms, until `wait_ms` have
 * passed; then it fails with `StoreBusyError`, which the server answers with 503 and Retry-After.
 *
 * A transaction SQLite already rolled back itself (a full disk) is not rolled back again, so the
 * caller sees the error that ended it.
 *
 * Transactions start with BEGIN IMMEDIATE, so only their first statement can meet the lock: a
 * deferred transaction that read first could not take the write lock later without starting over.
 */
import {
  CompiledQuery,
  SqliteDialect,
  type DatabaseConnection,
  type Driver,
  type QueryCompiler,
  type QueryResult,
  type SqliteDialectConfig,
} from "kysely";

/** The store was locked by another writer for longer than the store waits. */
export class StoreBusyError extends Error {
  readonly code = "store_busy";
  readonly statusCode = 503;
  constructor(waited_ms: number, cause: unknown) {
    super(
      `the SQLite database stayed locked by another writer for ${String(waited_ms)} ms (a backup, or a concord command writing while the service runs?); the service is the store's one writer: stop the other writer, or run the command through the service`,
      { cause },
    );
  }
}

const isBusy = (error: unknown): boolean => {
  const code = (error as { code?: unknown } | null)?.code;
  // SQLITE_LOCKED is a conflict inside this one connection: waiting would not end it.
  return typeof code === "string" && code.startsWith("SQLITE_BUSY");
};

const pause = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function patiently<T>(wait_ms: number, attempt: () => Promise<T>): Promise<T> {
  const started = Date.now();
  for (let delay = 2; ; delay = Math.min(delay * 2, 100)) {
    try {
      return await attempt();
    } catch (error) {
      if (!isBusy(error)) throw error;
      const waited = Date.now() - started;
      if (waited >= wait_ms) throw new StoreBusyError(waited, error);
      await pause(Math.min(delay, wait_ms - waited));
    }
  }
}

export class PatientSqliteDialect extends SqliteDialect {
  readonly #wait_ms: number;
  constructor(config: SqliteDialectConfig, wait_ms: number) {
    super(config);
    this.#wait_ms = wait_ms;
  }

  override createDriver(): Driver {
    return patientDriver(super.createDriver(), this.#wait_ms);
  }
}

function patientDriver(inner: Driver, wait_ms: number): Driver {
  const wrapped = new WeakMap<DatabaseConnection, DatabaseConnection>();
  const wrap = (connection: DatabaseConnection): DatabaseConnection => {
    const known = wrapped.get(connection);
    if (known !== undefined) return known;
    const patient: DatabaseConnection = {
      executeQuery: <R>(query: CompiledQuery): Promise<QueryResult<R>> =>
        patiently(wait_ms, () => connection.executeQuery<R>(query)),
      // Streams are reads, which WAL never blocks.
      streamQuery: <R>(query: CompiledQuery, chunkSize: number) =>
        connection.streamQuery<R>(query, chunkSize),
    };
    wrapped.set(connection, patient);
    return patient;
  };
  return {
    init: (options) => inner.init(options),
    acquireConnection: async (options) => wrap(await inner.acquireConnection(options)),
    beginTransaction: async (connection) => {
      await connection.executeQuery(CompiledQuery.raw("begin immediate"));
    },
    commitTransaction: (connection) => inner.commitTransaction(connection),
    rollbackTransaction: async (connection) => {
      try {
        await inner.rollbackTransaction(connection);
      } catch (error) {
        // SQLite rolls a transaction back itself on some errors (a full disk, out of memory): the
        // rollback then has nothing to do, and failing here would hide the error that caused it.
        if (!/no transaction is active/.test(error instanceof Error ? error.message : "")) throw error;
      }
    },
    savepoint: (connection, name, compile: QueryCompiler["compileQuery"]) =>
      inner.savepoint?.(connection, name, compile) ?? Promise.resolve(),
    rollbackToSavepoint: (connection, name, compile: QueryCompiler["compileQuery"]) =>
      inner.rollbackToSavepoint?.(connection, name, compile) ?? Promise.resolve(),
    releaseSavepoint: (connection, name, compile: QueryCompiler["compileQuery"]) =>
      inner.releaseSavepoint?.(connection, name, compile) ?? Promise.resolve(),
    releaseConnection: (connection, options) => inner.releaseConnection(connection, options),
    destroy: (options) => inner.destroy(options),
  };
}
