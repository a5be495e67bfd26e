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
 * poll lock and one for its pair's lock while its run uses others, and the API and housekeeping
 * need their own.
 */
export function storePoolSize(jobs: number): number {
  return 10 + 3 * jobs;
}

/** The job queue's own connections: one per job running, one to listen for new jobs, one spare. */
export function jobQueuePoolSize(jobs: number): number {
  return jobs + 2;
}

/** All a process running `jobs` at once may open (a process running none opens no job queue). */
export function connectionsAtMost(jobs: number): number {
  return storePoolSize(jobs) + (jobs > 0 ? jobQueuePoolSize(jobs) : 0);
}

export type ConnectionRoom = {
  max_connections: number;
  /** Kept for superusers (`superuser_reserved_connections`, and `reserved_connections` where set). */
  reserved: number;
  /** Client connections open now, from every process (this one's included). */
  in_use: number;
};

/** The server's connection limit and what is in use now, read with one query. */
export async function connectionRoom(db: Kysely<Database>): Promise<ConnectionRoom> {
  const { rows } = await sql<{ max: number; superuser: number; reserved: number | null; in_use: number }>`
    select current_setting('max_connections')::int as max,
           current_setting('superuser_reserved_connections')::int as superuser,
           nullif(current_setting('reserved_connections', true), '')::int as reserved,
           (select count(*)::int from pg_stat_activity where backend_type = 'client backend') as in_use`.execute(
    db,
  );
  const row = rows[0]!;
  return { max_connections: row.max, reserved: row.superuser + (row.reserved ?? 0), in_use: row.in_use };
}

/** Connections still free for ordinary roles. */
export function freeConnections(room: ConnectionRoom): number {
  return Math.max(0, room.max_connections - room.reserved - room.in_use);
}

/**
 * What to tell the operator when a process running `jobs` at once may need more connections than
 * the server has free (undefined when it fits). `held` is what this process already has open
 * (counted in `in_use`, and part of what it needs).
 */
export function shortOfConnections(jobs: number, room: ConnectionRoom, held: number): string | undefined {
  const needed = connectionsAtMost(jobs);
  const free = freeConnections(room);
  if (needed - held <= free) return undefined;
  const parts =
    jobs > 0
      ? `${storePoolSize(jobs)} for the store and ${jobQueuePoolSize(jobs)} for the job queue, running ${jobs} jobs at once`
      : "for the store";
  return (
    `this process may open up to ${needed} PostgreSQL connections (${parts}), but the server has ${free} free ` +
    `(max_connections ${room.max_connections}, ${room.in_use} in use, ${room.reserved} reserved): ` +
    `at its busiest it would meet "too many clients". Raise max_connections, or run fewer jobs in each process (\`concord worker --concurrency\`, \`concord serve --workers\`).`
  );
}
