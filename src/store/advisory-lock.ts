/**
 * A lock on a name that every process of an installation respects: on PostgreSQL a session
 * advisory lock held on one pooled connection for as long as `fn` runs (a process that dies lets it
 * go with its connection, so a killed worker never leaves a pair locked); on SQLite, which one
 * process serves, `fn` simply runs (that process serialises its own work).
 *
 * PostgreSQL's advisory locks belong to the whole database, not to a schema: the key is the hash
 * of the installation's schema (the connection's `current_schema()`) and the name, so
 * installations sharing a database in schemas of their own never wait on each other's pairs.
 */
import { sql, type RawBuilder } from "kysely";
import type { StoreSession } from "./ports";

/** The lock every run of a pair holds, in whichever process: `serve`, a worker, `concord sync`. */
export const pairLockName = (pairId: string): string => `pair:${pairId}`;

/**
 * The lock a poll job holds from its start to its end, its reads included (which it makes before
 * it takes the pair): while it is held, the poll is alive, however long it reads.
 */
export const pollLockName = (pairId: string): string => `poll:${pairId}`;

/** The lock a drain of a connection's webhook deliveries holds while it drains. */
export const drainLockName = (connectionId: string): string => `inbox:${connectionId}`;

/** The advisory lock key of `name` in this installation: its schema and the name, hashed. */
const lockKey = (name: string): RawBuilder<unknown> => keyOf(sql`${name}`);
const keyOf = (name: RawBuilder<unknown>): RawBuilder<unknown> =>
  sql`hashtextextended(coalesce(current_schema(), '') || ' ' || ${name}, 0)`;

export type Locked<T> = { acquired: true; value: T } | { acquired: false };

/** Runs `fn` as a run of the pair: after any run of it another process is making. */
export async function asPairRun<T>(store: StoreSession, pairId: string, fn: () => Promise<T>): Promise<T> {
  const held = await withNamedLock(store, pairLockName(pairId), { wait: true }, fn);
  if (!held.acquired) throw new Error(`the lock of pair ${pairId} was not taken`);
  return held.value;
}

/**
 * Runs `fn` holding the lock on `name`. `wait: false` gives up at once when another process holds
 * it (`{ acquired: false }`); `wait: true` waits for it.
 */
export async function withNamedLock<T>(
  store: StoreSession,
  name: string,
  options: { wait: boolean },
  fn: () => Promise<T>,
): Promise<Locked<T>> {
  if (store.dialect !== "postgres") return { acquired: true, value: await fn() };
  return store.db.connection().execute(async (conn) => {
    if (options.wait) await sql`select pg_advisory_lock(${lockKey(name)})`.execute(conn);
    else {
      const got = await sql<{
        ok: boolean;
      }>`select pg_try_advisory_lock(${lockKey(name)}) as ok`.execute(conn);
      if (got.rows[0]?.ok !== true) return { acquired: false as const };
    }
    try {
      return { acquired: true as const, value: await fn() };
    } finally {
      await sql`select pg_advisory_unlock(${lockKey(name)})`.execute(conn);
    }
  });
}

/**
 * Runs `fn` holding the locks on every one of `names`, taken in sorted order on one pooled
 * connection (however many there are, one connection: a run holding one of them needs its own) and
 * let go when `fn` ends. On SQLite `fn` simply runs.
 */
export async function withNamedLocks<T>(
  store: StoreSession,
  names: Iterable<string>,
  fn: () => Promise<T>,
): Promise<T> {
  const sorted = [...new Set(names)].sort();
  if (store.dialect !== "postgres" || sorted.length === 0) return fn();
  return store.db.connection().execute(async (conn) => {
    const taken: string[] = [];
    try {
      for (const name of sorted) {
        await sql`select pg_advisory_lock(${lockKey(name)})`.execute(conn);
        taken.push(name);
      }
      return await fn();
    } finally {
      for (const name of taken.reverse())
        await sql`select pg_advisory_unlock(${lockKey(name)})`.execute(conn);
    }
  });
}

/** The names this process holds through `withExclusiveNames`, each with the promise its release settles. */
const heldHere = new Map<string, Promise<void>>();

/**
 * Runs `fn` holding `names` against every other run, in this process and in any other: first
 * in-process (so runs of one process, which on SQLite share no lock, wait for each other, and a run
 * waiting here holds no pooled connection), then, on PostgreSQL, the installation's advisory locks
 * (`withNamedLocks`). Names are taken in sorted order, so two runs taking several never wait on
 * each other in a circle.
 */
export async function withExclusiveNames<T>(
  store: StoreSession,
  names: Iterable<string>,
  fn: () => Promise<T>,
): Promise<T> {
  const sorted = [...new Set(names)].sort();
  const releases: (() => void)[] = [];
  try {
    for (const name of sorted) {
      // Woken runs check again: the first to run takes the name, the others wait for its release.
      for (let held = heldHere.get(name); held !== undefined; held = heldHere.get(name)) await held;
      let release = (): void => undefined;
      heldHere.set(
        name,
        new Promise<void>((resolve) => {
          release = () => {
            heldHere.delete(name);
            resolve();
          };
        }),
      );
      releases.push(release);
    }
    return await withNamedLocks(store, sorted, fn);
  } finally {
    for (const release of releases.reverse()) release();
  }
}

/**
 * Takes, in the transaction `tx`, the locks on `names` (sorted, so two transactions taking several
 * never wait on each other in a circle); they are held until it commits or rolls back. On SQLite,
 * whose writes are one transaction at a time, there is nothing to take.
 */
export async function lockForTransaction(tx: StoreSession, names: Iterable<string>): Promise<void> {
  if (tx.dialect !== "postgres") return;
  if (!tx.inTransaction) throw new Error("lockForTransaction must run inside store.transaction");
  const sorted = [...new Set(names)].sort();
  if (sorted.length === 0) return;
  // One statement for all of them (a page of records names hundreds), taken in the sorted order:
  // the inner query fixes the order the outer one calls the lock function in.
  await sql`select count(pg_advisory_xact_lock(${keyOf(sql`ordered.n`)}))
    from (select n from unnest(${sorted}::text[]) with ordinality as t(n, i) order by i offset 0) as ordered`.execute(
    tx.db,
  );
}
