/** A job worker of a live process, as the job queue sees one, for tests that stand in for workers. */
import pg from "pg";
import { workerLockName } from "../../src/jobs/graphile-runner";

/**
 * Shows the worker `workerId` alive, as its process would (its lock held on a session of its own),
 * until `end()`: as if its process had died then.
 */
export async function workerAlive(url: string, workerId: string): Promise<{ end: () => Promise<void> }> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query("select pg_advisory_lock(hashtextextended($1, 0))", [workerLockName(workerId)]);
  return { end: () => client.end() };
}
