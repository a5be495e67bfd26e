/** Opens the store: an embedded SQLite file by default, PostgreSQL when given a URL; migrated, typed, ready. */
import { chmodSync, existsSync, mkdirSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import BetterSqlite3 from "better-sqlite3";
import { Kysely, type PostgresPool, type PostgresPoolClient } from "kysely";
import pg, { type CustomTypesConfig } from "pg";
import { migrateToLatest } from "./migrations/migrations";
import { StoreSchemaDialect } from "./schema-introspector";
import type { LedgerSealer, Store, StoreDialect } from "./ports";
import type { Database } from "./schema";
import { sqlStoreSession } from "./sql/sql-store-session";
import { PatientSqliteDialect } from "./sqlite-busy";
import { withStatementCache } from "./sqlite-statement-cache";
import {
  postgresOpenError,
  postgresSchemaError,
  redactUrl,
  sqliteOpenError,
  StoreOpenError,
} from "./store-open-error";
import { errorMessage } from "../core/error-code";

/**
 * Turns `idle_session_timeout` (PostgreSQL 14 and later, which some hosts set) off for a session
 * that holds advisory locks while it sits idle: the server ending it would free them.
 */
/**
 * TCP keepalive for connections that sit idle while they hold a lock: the first probe after 30 s
 * idle, not the system's default two hours, so that a firewall or NAT that drops connections idle
 * for minutes never sees one idle.
 */
export const IDLE_KEEPALIVE = { keepAlive: true, keepAliveInitialDelayMillis: 30_000 } as const;

export const NO_IDLE_SESSION_TIMEOUT =
  "do $$ begin if current_setting('server_version_num')::int >= 140000 then execute 'set idle_session_timeout = 0'; end if; end $$";

export const DEFAULT_SQLITE_FILE = "./data/concord.db";

export type StoreOptions = {
  /** `postgres://…` (e.g. from DATABASE_URL): use PostgreSQL. Unset or empty: SQLite at `file`. */
  url?: string | undefined;
  /** SQLite database file; created with its folder. Default `./data/concord.db`; `:memory:` works too. */
  file?: string | undefined;
  /** PostgreSQL schema to live in (created if missing, set as `search_path` on every connection). */
  schema?: string | undefined;
  /** Apply pending migrations on open. Default true. */
  migrate?: boolean | undefined;
  /** Clock for every timestamp the store writes. Default: the system clock. */
  clock?: (() => Date) | undefined;
  /** PostgreSQL pool size. Default 10. */
  pool_size?: number | undefined;
  /**
   * SQLite: how long a statement waits for another process's write lock before failing with
   * `StoreBusyError`. Default 5000 ms. The wait is asynchronous: the service keeps answering.
   */
  busy_timeout_ms?: number | undefined;
  /** Seals every ledger row appended (src/ledger/ledger-seal.ts, from CONCORD_SECRET_KEY). */
  ledger_sealer?: LedgerSealer | undefined;
  /** Errors from idle PostgreSQL connections (the server went away); default prints to stderr. */
  on_pool_error?: ((error: Error) => void) | undefined;
};

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

export async function openStore(options: StoreOptions = {}): Promise<Store> {
  const clock = options.clock ?? (() => new Date());
  const { db, dialect } =
    options.url === undefined || options.url === ""
      ? openSqlite(options)
      : await openPostgres(options.url, options);
  try {
    if (options.migrate ?? true)
      await migrateToLatest(db, dialect === "postgres" ? options.schema : undefined);
  } catch (error) {
    await db.destroy();
    throw error;
  }
  const session = sqlStoreSession(db, dialect, clock, options.ledger_sealer);
  return { ...session, close: () => db.destroy() };
}

/**
 * Makes the data directory, and the directories above it it has to make, 0700. A directory that
 * existed is left as it is (it may be shared, such as /var/lib): the files in it are 0600.
 */
function privateDirectory(dir: string): void {
  const first = mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (first === undefined) return;
  // Every directory made from `first` down to `dir`, whatever the umask made of the mode.
  for (let d = resolve(dir); d.length >= resolve(first).length; d = dirname(d)) {
    chmodSync(d, 0o700);
    if (d === dirname(d)) break;
  }
}

/** Sets `mode` on a file or directory this process owns and that others may read; others are left. */
function ownerOnly(path: string, mode: number): void {
  if (!existsSync(path)) return;
  const stat = statSync(path);
  if ((stat.mode & 0o077) === 0 || (process.getuid !== undefined && stat.uid !== process.getuid())) return;
  chmodSync(path, mode);
}

function openSqlite(options: StoreOptions): { db: Kysely<Database>; dialect: StoreDialect } {
  const file = options.file ?? DEFAULT_SQLITE_FILE;
  let sqlite: BetterSqlite3.Database | undefined;
  try {
    if (file !== ":memory:") privateDirectory(dirname(file));
    // Opening waits for a lock synchronously: nothing else runs yet.
    sqlite = new BetterSqlite3(file, { timeout: Math.trunc(options.busy_timeout_ms ?? 5000) });
    // WAL lets readers run beside the writer; synchronous=FULL because an acknowledged opt-out must
    // survive a power cut (NORMAL may drop the last commits); the busy timeout covers other processes.
    // (A file that is not a database, or one this user may only read, fails here.)
    sqlite.pragma("journal_mode = WAL");
    // The database holds personal data and sealed credentials: its files are the owner's alone.
    if (file !== ":memory:") for (const f of [file, `${file}-wal`, `${file}-shm`]) ownerOnly(f, 0o600);
    sqlite.pragma("synchronous = FULL");
    sqlite.pragma("foreign_keys = ON");
    // From here SQLite never waits for a lock itself (that would block the event loop): the dialect
    // retries a locked statement asynchronously (sqlite-busy.ts).
    sqlite.pragma("busy_timeout = 0");
  } catch (error) {
    sqlite?.close();
    throw sqliteOpenError(error, file);
  }
  const wait_ms = Math.trunc(options.busy_timeout_ms ?? 5000);
  return {
    db: new Kysely<Database>({
      dialect: new PatientSqliteDialect({ database: withStatementCache(sqlite) }, wait_ms),
    }),
    dialect: "sqlite",
  };
}

async function openPostgres(
  url: string,
  options: StoreOptions,
): Promise<{ db: Kysely<Database>; dialect: StoreDialect }> {
  if (!/^postgres(ql)?:\/\//.test(url)) {
    throw new StoreOpenError(
      `the store's database ${redactUrl(url)} is not a PostgreSQL URL: expected postgres:// or postgresql://, such as postgres://concord:password@db:5432/concord. Check DATABASE_URL.`,
    );
  }
  const schema = options.schema;
  if (schema !== undefined && !SCHEMA_NAME.test(schema)) {
    throw new StoreOpenError(
      `the store's schema name ${JSON.stringify(schema)} is not allowed: expected at most 63 lower-case letters, digits and underscores, not starting with a digit. Check DATABASE_SCHEMA.`,
    );
  }
  // One connection first: a database that cannot be reached is said so, in the operator's terms,
  // before a pool and the migrations meet it.
  let client: pg.Client;
  try {
    client = new pg.Client({ connectionString: url });
  } catch (error) {
    throw new StoreOpenError(
      `the store's database ${redactUrl(url)} could not be read as a PostgreSQL URL: ${errorMessage(error)}. Check DATABASE_URL.`,
      { cause: error },
    );
  }
  const opened = client;
  await opened.connect().catch(async (error: unknown) => {
    await opened.end().catch(() => undefined);
    throw postgresOpenError(error, url, {
      host: opened.host,
      port: opened.port,
      ...(opened.user !== undefined && opened.user !== "" ? { user: opened.user } : {}),
      ...(opened.database !== undefined && opened.database !== "" ? { database: opened.database } : {}),
    });
  });
  try {
    if (schema !== undefined)
      await opened.query(`create schema if not exists "${schema}"`).catch((error: unknown) => {
        throw postgresSchemaError(error, url, schema);
      });
  } finally {
    await opened.end();
  }
  const pool = new pg.Pool({
    connectionString: url,
    max: options.pool_size ?? 10,
    options: schema === undefined ? undefined : `-c search_path=${schema}`,
    types: { getTypeParser: int8AsNumber },
    // A connection that holds a pair's lock sits idle while the run works on others: a network
    // path that drops idle connections would end its session, and with it the lock, mid-run.
    ...IDLE_KEEPALIVE,
  });
  // Nor may the server end it for being idle (`idle_session_timeout`, PostgreSQL 14 and later,
  // which some hosts set): another worker would then take the pair's lock while the run goes on.
  // Queued before anything else the new connection is asked.
  pool.on("connect", (client) => {
    client.query(NO_IDLE_SESSION_TIMEOUT).catch(() => undefined);
  });
  pool.on(
    "error",
    options.on_pool_error ??
      ((error) => {
        console.error(`store: idle PostgreSQL connection failed: ${error.message}`);
      }),
  );
  return {
    db: new Kysely<Database>({
      dialect: new StoreSchemaDialect({ pool: withCallbackQueries(pool) }, schema),
    }),
    dialect: "postgres",
  };
}

/**
 * The pool as kysely uses it, each query made in pg's callback form. Made in its promise form,
 * about three quarters of the rows a query returned outlived V8's young-generation collections
 * (measured on pg 8: 344 of 350 MiB of rows read in pages of 500, against 2 MiB in the callback
 * form), so a plan of a million contacts left hundreds of MiB of dead rows for full collections
 * to find and peaked far higher. Cursors (not used) pass through unchanged.
 */
function withCallbackQueries(pool: pg.Pool): PostgresPool {
  const wrapped = new WeakMap<pg.PoolClient, PostgresPoolClient>();
  const wrap = (client: pg.PoolClient): PostgresPoolClient => {
    const known = wrapped.get(client);
    if (known !== undefined) return known;
    const query = (sqlOrCursor: unknown, parameters?: readonly unknown[]): unknown => {
      if (typeof sqlOrCursor !== "string") return client.query(sqlOrCursor as pg.Submittable);
      return new Promise((resolve, reject) => {
        client.query(sqlOrCursor, parameters === undefined ? [] : [...parameters], (error, result) => {
          if (error) reject(error);
          else resolve(result);
        });
      });
    };
    const made: PostgresPoolClient = {
      // kysely reads the backend's process id to cancel a query.
      get processID(): number {
        return (client as unknown as { processID: number }).processID;
      },
      query: query as PostgresPoolClient["query"],
      release: (destroy?: boolean) => {
        client.release(destroy);
      },
    };
    wrapped.set(client, made);
    return made;
  };
  return {
    Client: pg.Client,
    options: pool.options,
    connect: async () => wrap(await pool.connect()),
    end: () => pool.end(),
  };
}

/** bigint (seq, counts) as a JS number: exact up to 2^53, far beyond any ledger we will hold. */
const int8AsNumber: CustomTypesConfig["getTypeParser"] = (oid, format) => {
  if (oid === pg.types.builtins.INT8 && format !== "binary") return parseSafeInteger;
  return pg.types.getTypeParser(oid, format) as unknown;
};

function parseSafeInteger(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n)) throw new Error(`store: bigint ${value} exceeds the safe integer range`);
  return n;
}
