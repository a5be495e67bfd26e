import type { StoreSession } from "../../src/store/ports";

/** A promise a test opens when it chooses: `opened` resolves once `open` is called. */
export function gate(): { open: () => void; opened: Promise<void> } {
  let open = (): void => undefined;
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { open, opened };
}

/**
 * A transaction held open: `fn`'s writes are made, and the transaction waits, uncommitted (its
 * locks held), until `commit` is called, which resolves once it has committed.
 */
export async function heldTransaction(
  store: Pick<StoreSession, "transaction">,
  fn: (tx: StoreSession) => Promise<unknown>,
): Promise<{ commit: () => Promise<void> }> {
  const written = gate();
  const release = gate();
  const done = store.transaction(async (tx) => {
    await fn(tx);
    written.open();
    await release.opened;
  });
  await Promise.race([written.opened, done]);
  return {
    commit: async () => {
      release.open();
      await done;
    },
  };
}
