/**
 * The webhook receiver's group commit: deliveries that arrive while one write is under way are
 * stored together in the next write (one durable commit for all of them), with the job that drains
 * each connection when there is a job queue (on PostgreSQL one statement carries both). Each
 * caller's promise settles once its own delivery is committed (or the write failed, and the sender
 * is told to retry), so nothing is acknowledged before it is stored. One write at a time; up to 500
 * deliveries a write.
 */
import type { JobQueue } from "../jobs/catalogue";
import type { JsonValue, StoreSession } from "../store/ports";

type Waiting = {
  connection_id: string;
  changes: JsonValue;
  resolve: () => void;
  reject: (error: unknown) => void;
};

const MAX_BATCH = 500;

export type InboxWriter = { add: (connection_id: string, changes: JsonValue) => Promise<void> };

export function inboxWriter(store: StoreSession, jobs: JobQueue | undefined): InboxWriter {
  let waiting: Waiting[] = [];
  let writing: Promise<void> | undefined;

  const writeAll = async (): Promise<void> => {
    while (waiting.length > 0) {
      const batch = waiting.slice(0, MAX_BATCH);
      waiting = waiting.slice(batch.length);
      try {
        const drains =
          jobs === undefined
            ? []
            : [...new Set(batch.map((b) => b.connection_id))].map((connection_id) =>
                jobs.adding("drain_inbox", { connection_id }),
              );
        await store.inbox.addMany(batch, drains);
        for (const b of batch) b.resolve();
      } catch (error) {
        for (const b of batch) b.reject(error);
      }
    }
  };

  const start = (): void => {
    if (writing !== undefined) return;
    writing = (async () => {
      // Those arriving in the same turn of the event loop go in the first write together.
      await new Promise((resolve) => setImmediate(resolve));
      await writeAll();
    })().finally(() => {
      writing = undefined;
      if (waiting.length > 0) start();
    });
  };

  return {
    add: (connection_id, changes) =>
      new Promise<void>((resolve, reject) => {
        waiting.push({ connection_id, changes, resolve, reject });
        start();
      }),
  };
}
