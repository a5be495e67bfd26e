/**
 * Readiness: the store answers and takes a write, within `within_ms`. A read alone passes while
 * another process holds SQLite's write lock or the disk is full, when every opt-out would fail.
 */
import { STORE_PROBE_ID } from "./migrations/0013-store-probe";
import type { StoreSession } from "./ports";
import { errorMessage } from "../core/error-code";

/**
 * `message` is what anyone asking may read (readiness answers without sign-in); `detail`, the
 * store's own error, may name the database's host or user: it is for the operator's log only.
 */
export type StoreReadiness =
  { ok: true } | { ok: false; code: "store_unavailable"; message: string; detail?: string };

export async function probeStoreWrite(store: StoreSession, within_ms = 2000): Promise<StoreReadiness> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<StoreReadiness>((resolve) => {
    timer = setTimeout(() => {
      resolve({
        ok: false,
        code: "store_unavailable",
        message: `The store did not take a write within ${String(within_ms)} ms (locked by another writer?).`,
      });
    }, within_ms);
  });
  const write = store.db
    .updateTable("store_probe")
    .set({ checked_at: store.clock().toISOString() })
    .where("id", "=", STORE_PROBE_ID)
    .execute()
    .then(
      (): StoreReadiness => ({ ok: true }),
      (error: unknown): StoreReadiness => ({
        ok: false,
        code: "store_unavailable",
        message: "The store does not take writes; the server's log has its error.",
        detail: errorMessage(error),
      }),
    );
  try {
    return await Promise.race([write, late]);
  } finally {
    clearTimeout(timer);
  }
}
