import { sql } from "kysely";
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

  /** The store, counting the writes of deliveries it is asked for. */
  const counting = (): { store: StoreSession; writes: () => number } => {
    let n = 0;
    const store: StoreSession = {
      ...t.store,
      inbox: {
        ...t.store.inbox,
        addMany: (deliveries, alongside) => {
          n += 1;
          return t.store.inbox.addMany(deliveries, alongside);
        },
      },
    };
    return { store, writes: () => n };
  };

  it("stores deliveries arriving together in a few commits, each caller answered once its own is stored", async () => {
    const { store, writes } = counting();
    const writer = inboxWriter(store, undefined);
    await Promise.all(
      Array.from({ length: 200 }, (_, i) => writer.add(i % 2 ? "re-nxt" : "mc-main", [{ n: i }])),
    );
    expect(await t.store.inbox.countPending()).toBe(200);
    expect(writes()).toBeLessThan(10);
    // One alone is stored and answered too.
    await writer.add("re-nxt", [{ n: "late" }]);
    expect(await t.store.inbox.countPending()).toBe(201);
  });

  it("a write that fails answers every delivery in it with the error and stores none of them", async () => {
    const store: StoreSession = {
      ...t.store,
      inbox: { ...t.store.inbox, addMany: () => Promise.reject(new Error("database is locked")) },
    };
    const writer = inboxWriter(store, undefined);
    const answers = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) => writer.add("re-nxt", [{ n: i }])),
    );
    expect(answers.every((a) => a.status === "rejected")).toBe(true);
    expect(await t.store.inbox.countPending()).toBe(0);
  });

  it("stores deliveries and what goes alongside them together, or neither", async () => {
    const deliveries = [
      { connection_id: "re-nxt", changes: [{ n: 1 }] },
      { connection_id: "mc-main", changes: [{ n: 2 }] },
    ];
    // An expression that fails (no such function) stores none of the deliveries.
    await expect(t.store.inbox.addMany(deliveries, [sql`concord_no_such_function()`])).rejects.toThrow();
    expect(await t.store.inbox.countPending()).toBe(0);
    // Ones that succeed are evaluated with them.
    await t.store.inbox.addMany(deliveries, [sql`1`, sql`2`]);
    expect(await t.store.inbox.countPending()).toBe(2);
    // With no deliveries, what goes alongside is still evaluated (and a failure still reported).
    await t.store.inbox.addMany([], [sql`1`]);
    await expect(t.store.inbox.addMany([], [sql`concord_no_such_function()`])).rejects.toThrow();
    // Inside a transaction the caller's transaction is the one: its rollback takes them back.
    await expect(
      t.store.transaction(async (tx) => {
        await tx.inbox.addMany(deliveries, [sql`1`]);
        throw new Error("rolled back");
      }),
    ).rejects.toThrow("rolled back");
    expect(await t.store.inbox.countPending()).toBe(2);
    // More than one statement's worth of rows is still all or nothing.
    const many = Array.from({ length: 1_500 }, (_, i) => ({ connection_id: "re-nxt", changes: [{ n: i }] }));
    await expect(t.store.inbox.addMany(many, [sql`concord_no_such_function()`])).rejects.toThrow();
    expect(await t.store.inbox.countPending()).toBe(2);
    await t.store.inbox.addMany(many);
    expect(await t.store.inbox.countPending()).toBe(1_502);
  });
});
