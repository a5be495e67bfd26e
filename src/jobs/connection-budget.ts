/**
 * How many PostgreSQL connections a `concord serve` or `concord worker` process may open, and
 * whether the server has room for them (docs/deploy.md, "How to size"). Pools open connections as
 * they need them, so a process that starts with too little room runs until its busiest moment and
 * then meets "too many clients": a process says so at start instead.
 */
import { sql, type Kysely } from "kysely";
import type { Database } from "../store/schema";

/**
 * The store's connections for a process running `jobs` at once: each running poll holds one for its
 * poll lock and one for its pair's lock, a batch creating CRM records one for its creation locks,
 * while its run uses others, and the API and housekeeping need their own.
 */
export function storePoolSize(jobs: number): number {
  return 10 + 4 * jobs;
}

/** The job queue's pool: one per job running, one to listen for new jobs, one spare. */
export function jobQueuePoolSize(jobs: number): number {
  return jobs + 2;
}

/** The job queue's connections: its pool, and the one that shows the process's job workers alive. */
export function jobQueueConnections(jobs: number): number {
  return jobQueuePoolSize(jobs) + 1;
}

/** All a process running `jobs` at once may open (a process running none opens no job queue). */
export function connectionsAtMost(jobs: number): number {
  return storePoolSize(jobs) + (jobs > 0 ? jobQueueConnections(jobs) : 0);
}

/** One limit on the connections this process may open, and what already counts against it. */
export type ConnectionLimit = {
  /** What sets it, as the operator would change it (`max_connections`, a role's CONNECTION LIMIT). */
  name: string;
  limit: number;
  in_use: number;
};

/**
 * The limits this process's connections count against, read with one query: the server's
 * `max_connections` (less what is kept for superusers), and the role's and the database's own
 * CONNECTION LIMIT where they are set (hosted PostgreSQL often sets them).
 */
export async function connectionLimits(db: Kysely<Database>): Promise<ConnectionLimit[]> {
  const { rows } = await sql<{
    max: number;
    superuser: number;
    reserved: number | null;
    in_use: number;
    role: string;
    role_limit: number;
    role_in_use: number;
    database: string;
    database_limit: number;
    database_in_use: number;
  }>`
    with clients as (select usename, datname from pg_stat_activity where backend_type = 'client backend')
    select current_setting('max_connections')::int as max,
           current_setting('superuser_reserved_connections')::int as superuser,
           nullif(current_setting('reserved_connections', true), '')::int as reserved,
           (select count(*)::int from clients) as in_use,
           current_user as role,
           (select rolconnlimit from pg_roles where rolname = current_user) as role_limit,
           (select count(*)::int from clients where usename = current_user) as role_in_use,
           current_database() as database,
           (select datconnlimit from pg_database where datname = current_database()) as database_limit,
           (select count(*)::int from clients where datname = current_database()) as database_in_use`.execute(
    db,
  );
  const row = rows[0]!;
  const reserved = row.superuser + (row.reserved ?? 0);
  return [
    {
      name: `max_connections ${row.max} (${reserved} kept for superusers)`,
      limit: row.max - reserved,
      in_use: row.in_use,
    },
    ...(row.role_limit >= 0
      ? [
          {
            name: `the CONNECTION LIMIT ${row.role_limit} of role ${row.role}`,
            limit: row.role_limit,
            in_use: row.role_in_use,
          },
        ]
      : []),
    ...(row.database_limit >= 0
      ? [
          {
            name: `the CONNECTION LIMIT ${row.database_limit} of database ${row.database}`,
            limit: row.database_limit,
            in_use: row.database_in_use,
          },
        ]
      : []),
  ];
}

/** The limit with the least room left, and that room (never below 0). */
export function tightest(limits: readonly ConnectionLimit[]): { limit: ConnectionLimit; free: number } {
  const [first, ...rest] = limits.map((limit) => ({ limit, free: Math.max(0, limit.limit - limit.in_use) }));
  if (first === undefined) throw new Error("no connection limits were read");
  return rest.reduce((a, b) => (b.free < a.free ? b : a), first);
}

/**
 * What to tell the operator when a process running `jobs` at once may need more connections than
 * are free (undefined when it fits). `held` is what this process already has open (counted as in
 * use, and part of what it needs).
 */
export function shortOfConnections(
  jobs: number,
  limits: readonly ConnectionLimit[],
  held: number,
): string | undefined {
  const needed = connectionsAtMost(jobs);
  const { limit, free } = tightest(limits);
  if (needed - held <= free) return undefined;
  const parts =
    jobs > 0
      ? `${storePoolSize(jobs)} for the store and ${jobQueueConnections(jobs)} for the job queue, running ${jobs} jobs at once`
      : "for the store";
  return (
    `this process may open up to ${needed} PostgreSQL connections (${parts}), but only ${free + held} are free ` +
    `under ${limit.name}, ${limit.in_use - held} being in use by others: at its busiest it would be refused ` +
    `("too many clients"). Raise that limit, or run fewer jobs in each process ` +
    `(\`concord worker --concurrency\`, \`concord serve --workers\`).`
  );
}
