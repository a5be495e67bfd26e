import { afterEach, beforeEach, expect, it } from "vitest";
import type { StoreSession } from "../store/ports";
import { describeOnBackends, type TestStore } from "../../test/support/store-backends";
import { inboxWriter } from "./inbox-writer";

describeOnBackends("the webhook receiver's group commit", (backend) => {
  let t: TestStore;
  beforeEach(async () => {
    t = await backend.create();
  });
  afterEach(async () => {
    await t.cleanup();
  });

  /** The store, counting the transactions it is asked for. */
  const counting = (): { store: StoreSession; transactions: () => number } => {
    let n = 0;
    const store: StoreSession = {
      ...t.store,
      transaction: (fn) => {
        n += 1;
        return t.store.transaction(fn);
      },
    };
    return { store, transactions: () => n };
  };

  it("stores deliveries arriving together in a few commits, each caller answered once its own is stored", async () => {
    const { store, transactions } = counting();
    const writer = inboxWriter(store, undefined);
    await Promise.all(
      Array.from({ length: 200 }, (_, i) => writer.add(i % 2 ? "re-nxt" : "mc-main", [{ n: i }])),
    );
    expect(await t.store.inbox.countPending()).toBe(200);
    expect(transactions()).toBeLessThan(10);
    // One alone is stored and answered too.
    await writer.add("re-nxt", [{ n: "late" }]);
    expect(await t.store.inbox.countPending()).toBe(201);
  });

  it("a write that fails answers every delivery in it with the error and stores none of them", async () => {
    const store: StoreSession = {
      ...t.store,
      transaction: () => Promise.reject(new Error("database is locked")),
    };
    const writer = inboxWriter(store, undefined);
    const answers = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) => writer.add("re-nxt", [{ n: i }])),
    );
    expect(answers.every((a) => a.status === "rejected")).toBe(true);
    expect(await t.store.inbox.countPending()).toBe(0);
  });
});
