/**
 * What a poll compares to tell whether its pair, resolved before it took the pair, still names the
 * lists there are: any list change stored, settled or re-armed on the pair's systems changes it,
 * whichever pair or process made it, even within one millisecond; a pending one leaves nothing to
 * compare; other operations and other systems' list changes leave it as it was.
 */
import { sql } from "kysely";
import { afterEach, beforeEach, expect, it } from "vitest";
import { describeOnBackends, type TestStore } from "../../test/support/store-backends";
import { listChangesSeen, saveListSyncState } from "./resolve-pair";

const PAIR = { id: "re-cc", crm: "re-nxt", platforms: [{ connection: "cc-main" }] };

describeOnBackends("list changes seen", (backend) => {
  let t: TestStore;
  // A clock that stands still: every write lands in the same millisecond.
  const now = new Date("2026-12-01T09:00:00.000Z");

  beforeEach(async () => {
    t = await backend.create({ clock: () => now });
  });
  afterEach(async () => {
    await t.cleanup();
  });

  it("changes with every list change on the pair's systems, and with nothing else", async () => {
    const { store } = t;
    const run = await store.runs.create({ kind: "sync", pair_id: "re-cc" });
    const plan = await store.plans.save({ run_id: run.id, plan: {}, counts: {} });
    const op = (id: string, kind: string, target: string, contact_id?: string) => ({
      id,
      plan_id: plan.id,
      kind,
      target_connection: target,
      ...(contact_id !== undefined ? { contact_id } : {}),
      payload: {},
    });
    const seen = () => listChangesSeen(store, PAIR);

    const nothing = await seen();
    expect(nothing).toEqual(expect.any(String));
    // A contact's operation, and a list made on a system outside the pair: the same.
    await store.operations.insertMany([
      op("op_contact0001", "upsert_contact", "cc-main", "c1"),
      op("op_elsewhere01", "create_list", "mc-main"),
    ]);
    await store.operations.setStatus("op_contact0001", "succeeded");
    expect(await seen()).toBe(nothing);

    // A list to make on the pair's platform: pending, nothing to compare until it is settled.
    await store.operations.insertMany([op("op_makelist001", "create_list", "cc-main")]);
    expect(await seen()).toBeUndefined();
    await store.operations.setStatus("op_makelist001", "succeeded");
    const made = await seen();
    expect(made).toEqual(expect.any(String));
    expect(made).not.toBe(nothing);
    expect(await seen()).toBe(made);

    // Re-armed by a later plan and made again, within the same millisecond: not as it was.
    await store.operations.setStatus("op_makelist001", "pending");
    expect(await seen()).toBeUndefined();
    await store.outcomes.record({ operation_id: "op_makelist001", status: "succeeded", detail: {} });
    await store.operations.setStatus("op_makelist001", "succeeded");
    const again = await seen();
    expect(again).toEqual(expect.any(String));
    expect(again).not.toBe(made);
    // Then refused for good.
    await store.operations.setStatus("op_makelist001", "pending");
    await store.outcomes.record({ operation_id: "op_makelist001", status: "permanent_error", detail: {} });
    await store.operations.setStatus("op_makelist001", "failed");
    const refused = await seen();
    expect(refused).toEqual(expect.any(String));
    expect(refused).not.toBe(again);

    // A list renamed on the CRM's side of the pair counts too (a CRM's lists are a pair's as well).
    await store.operations.insertMany([op("op_renamecrm01", "rename_list", "re-nxt")]);
    await store.operations.setStatus("op_renamecrm01", "succeeded");
    const renamed = await seen();
    expect(renamed).not.toBe(refused);

    // The CRM lists the pair's rules follow, kept by its run: resolving reads them too.
    await saveListSyncState(store, "re-nxt", "re-cc", [
      { id: "L1", name: "CC: Volunteers", platform: "cc-main" },
    ]);
    const followed = await seen();
    expect(followed).not.toBe(renamed);
    expect(await seen()).toBe(followed);
  });

  it.runIf(backend.name === "sqlite")("reads the operations through an index, not every row", async () => {
    const statements: string[] = [];
    const db = t.store.db.withPlugin({
      transformQuery: ({ node, queryId }) => {
        statements.push(t.store.db.getExecutor().compileQuery(node, queryId).sql);
        return node;
      },
      transformResult: ({ result }) => Promise.resolve(result),
    });
    await listChangesSeen({ db, checkpoints: t.store.checkpoints }, PAIR);
    const [statement] = statements;
    if (statement === undefined) throw new Error("no statement was made");
    const params = ["create_list", "rename_list", "delete_list", "re-nxt", "cc-main"];
    const { rows } = await sql<{ detail: string }>`${sql.raw(
      `explain query plan ${statement.replace(/\?/g, () => `'${params.shift() ?? ""}'`)}`,
    )}`.execute(t.store.db);
    const details = rows.map((r) => r.detail).join("; ");
    expect(details).toContain("USING INDEX operations_contact_kind");
    expect(details).toMatch(/SEARCH x USING (COVERING |PRIMARY )?(INDEX|KEY)/);
    expect(details).not.toMatch(/SCAN (o|x)\b(?! USING)/);
  });
});
