// A contact's plan revision (ADR 30) is what lets a plan settle a marked contact without reading
// its rows: it must move on for every write to a row the contact is planned from, whoever writes it,
// and stay put for writes that change nothing planned (a record read again unchanged).
import type { Kysely } from "kysely";
import { afterEach, beforeEach, expect, it } from "vitest";
import type { Database } from "./schema";
import { appendConsentEvents, eraseEvidence } from "../ledger/consent-ledger";
import { describeOnBackends, type TestStore } from "../../test/support/store-backends";

const AT = "2026-06-01T12:00:00.000Z";

/** A platform refuses the contact's address. */
const refuse = (db: Kysely<Database>, contactId: string) =>
  db
    .insertInto("platform_rejections")
    .values({
      contact_id: contactId,
      connection_id: "cc",
      email_match_key: "k",
      code: "invalid",
      message: "no",
      rejected_at: AT,
    })
    .execute();

describeOnBackends("a contact's plan revision", (backend) => {
  let t: TestStore;
  beforeEach(async () => {
    t = await backend.create();
    for (const id of ["c_a", "c_b"])
      await t.store.db
        .insertInto("contacts")
        .values({
          id,
          type: "person",
          given_name: "Ada",
          family_name: null,
          organization_name: null,
          primary_email: `${id}@example.org`,
          email_match_key: `${id}@example.org`,
          flags_json: "[]",
          created_at: AT,
          updated_at: AT,
          erased_at: null,
        })
        .execute();
  });
  afterEach(async () => {
    await t.cleanup();
  });

  const rev = async (id: string): Promise<number> =>
    (
      await t.store.db
        .selectFrom("contacts")
        .select("plan_rev")
        .where("id", "=", id)
        .executeTakeFirstOrThrow()
    ).plan_rev;

  /** Runs `write` and says by how much each contact's revision moved. */
  const moves = async (write: () => Promise<unknown>): Promise<{ a: number; b: number }> => {
    const [a0, b0] = [await rev("c_a"), await rev("c_b")];
    await write();
    return { a: (await rev("c_a")) - a0, b: (await rev("c_b")) - b0 };
  };
  const moved = (n: { a: number; b: number }) => ({ a: n.a > 0, b: n.b > 0 });

  it("moves on with the contact's planned columns (SQLite: only those; PostgreSQL: any update of the row)", async () => {
    expect(await rev("c_a")).toBe(0);
    const set = (values: Record<string, string | null>) => () =>
      t.store.db.updateTable("contacts").set(values).where("id", "=", "c_a").execute();
    expect(moved(await moves(set({ given_name: "Ada Mary" })))).toEqual({ a: true, b: false });
    expect(moved(await moves(set({ flags_json: '["inactive"]' })))).toEqual({ a: true, b: false });
    expect(moved(await moves(set({ erased_at: AT })))).toEqual({ a: true, b: false });
    // PostgreSQL moves a row on with every update, so that a row its transaction wrote is always one
    // it moved on (its statement triggers skip those: ADR 30); SQLite only with planned columns.
    const bookkeeping = backend.name === "postgres";
    expect(moved(await moves(set({ updated_at: "2026-06-02T00:00:00.000Z" })))).toEqual({
      a: bookkeeping,
      b: false,
    });
    expect(moved(await moves(set({ given_name: "Ada Mary" })))).toEqual({ a: bookkeeping, b: false });
  });

  it("moves on for a contact's later writes in a transaction that first updated only its bookkeeping", async () => {
    const n = await moves(async () => {
      await t.store.db.updateTable("contacts").set({ updated_at: AT }).where("id", "=", "c_b").execute();
      const before = await rev("c_b");
      await t.store.transaction(async (tx) => {
        await tx.db
          .updateTable("contacts")
          .set({ email_match_key: "ada.b@example.org", updated_at: "2026-06-03T00:00:00.000Z" })
          .where("id", "=", "c_b")
          .execute();
        const mid = (
          await tx.db
            .selectFrom("contacts")
            .select("plan_rev")
            .where("id", "=", "c_b")
            .executeTakeFirstOrThrow()
        ).plan_rev;
        await refuse(tx.db, "c_b");
        // Whatever the first update did, the transaction ends with the revision moved past the
        // one a plan could have read before it began.
        expect(mid >= before).toBe(true);
      });
      expect(await rev("c_b")).toBeGreaterThan(before);
    });
    expect(n.b).toBeGreaterThan(0);
  });

  it("moves on with the contact's links and its linked records' snapshots, only when they change", async () => {
    const link = () =>
      t.store.db
        .insertInto("links")
        .values({
          connection_id: "cc",
          external_id: "x1",
          contact_id: "c_a",
          origin: "observed",
          created_at: AT,
          updated_at: AT,
        })
        .execute();
    expect(moved(await moves(link))).toEqual({ a: true, b: false });
    const put = (hash: string, payload: string) => () =>
      t.store.snapshots.put({
        connection_id: "cc",
        external_id: "x1",
        content_hash: hash,
        payload: { p: payload },
      });
    expect(moved(await moves(put("h1", "one")))).toEqual({ a: true, b: false });
    // Read again unchanged: the revision stays, so an unchanged record keeps its contact settled.
    expect(moved(await moves(put("h1", "one")))).toEqual({ a: false, b: false });
    expect(moved(await moves(put("h2", "two")))).toEqual({ a: true, b: false });
    // A link moved to another contact (a merge) moves both on.
    const move = () =>
      t.store.db.updateTable("links").set({ contact_id: "c_b" }).where("external_id", "=", "x1").execute();
    expect(moved(await moves(move))).toEqual({ a: true, b: true });
    expect(moved(await moves(put("h3", "three")))).toEqual({ a: false, b: true });
    const snapshotGone = () =>
      t.store.db.deleteFrom("record_snapshots").where("external_id", "=", "x1").execute();
    expect(moved(await moves(snapshotGone))).toEqual({ a: false, b: true });
    const unlink = () => t.store.db.deleteFrom("links").where("external_id", "=", "x1").execute();
    expect(moved(await moves(unlink))).toEqual({ a: false, b: true });
  });

  it("moves on with the contact's consent events, their evidence's erasure, baselines and refusals", async () => {
    const optOut = () =>
      appendConsentEvents(t.store, [
        {
          kind: "opt_out",
          scope: { kind: "global" },
          contact_id: "c_a",
          channel: "email",
          source: { system: "blackbaud-renxt", connection: "crm" },
          mechanism: "admin_edit",
          actor: { kind: "account" },
          occurred_at: "2026-06-01T09:00:00.000Z",
          observed_at: "2026-06-01T09:05:00.000Z",
          evidence: { reason: "Requests no email" },
        },
      ]);
    expect(moved(await moves(optOut))).toEqual({ a: true, b: false });
    expect(moved(await moves(() => eraseEvidence(t.store, "c_a")))).toEqual({ a: true, b: false });

    const baseline = (values: string) => () =>
      t.store.db
        .insertInto("baselines")
        .values({ contact_id: "c_b", pair_id: "p", values_json: values, run_id: null, updated_at: AT })
        .onConflict((oc) => oc.columns(["contact_id", "pair_id"]).doUpdateSet({ values_json: values }))
        .execute();
    expect(moved(await moves(baseline("{}")))).toEqual({ a: false, b: true });
    expect(moved(await moves(baseline('{"cc":{}}')))).toEqual({ a: false, b: true });
    const noBaseline = () => t.store.db.deleteFrom("baselines").where("contact_id", "=", "c_b").execute();
    expect(moved(await moves(noBaseline))).toEqual({ a: false, b: true });

    expect(moved(await moves(() => refuse(t.store.db, "c_a")))).toEqual({ a: true, b: false });
    const forgive = () =>
      t.store.db.deleteFrom("platform_rejections").where("contact_id", "=", "c_a").execute();
    expect(moved(await moves(forgive))).toEqual({ a: true, b: false });
  });

  it("moves on with a confirmation email's operation and a personal-link revocation, not other operations", async () => {
    await t.store.db
      .insertInto("runs")
      .values({
        id: "r1",
        kind: "sync",
        pair_id: "p",
        status: "running",
        started_at: AT,
        finished_at: null,
        summary_json: null,
      })
      .execute();
    await t.store.db
      .insertInto("plans")
      .values({ id: "pl1", run_id: "r1", pair_id: "p", plan_json: "{}", counts_json: "{}", created_at: AT })
      .execute();
    const operation = (id: string, kind: string, contact: string) => () =>
      t.store.db
        .insertInto("operations")
        .values({
          id,
          plan_id: "pl1",
          kind,
          target_connection: "cc",
          contact_id: contact,
          payload_json: "{}",
          status: "pending",
          created_at: AT,
          updated_at: AT,
        })
        .execute();
    const status = (id: string, value: string) => () =>
      t.store.db.updateTable("operations").set({ status: value }).where("id", "=", id).execute();
    expect(moved(await moves(operation("o1", "push_opt_out", "c_a")))).toEqual({ a: false, b: false });
    expect(moved(await moves(status("o1", "succeeded")))).toEqual({ a: false, b: false });
    expect(moved(await moves(operation("o2", "request_resubscribe", "c_b")))).toEqual({ a: false, b: true });
    expect(moved(await moves(status("o2", "succeeded")))).toEqual({ a: false, b: true });
    const revoke = () =>
      t.store.db
        .insertInto("link_generations")
        .values({ contact_id: "c_a", generation: 1, revoked_at: AT })
        .execute();
    expect(moved(await moves(revoke))).toEqual({ a: true, b: false });
  });

  it("moves on for a transaction's writes, once on PostgreSQL however many rows of the contact it writes", async () => {
    const several = () =>
      t.store.transaction(async (tx) => {
        await tx.db
          .insertInto("links")
          .values({
            connection_id: "cc",
            external_id: "x9",
            contact_id: "c_a",
            origin: "observed",
            created_at: AT,
            updated_at: AT,
          })
          .execute();
        await tx.db
          .insertInto("baselines")
          .values({ contact_id: "c_a", pair_id: "p", values_json: "{}", run_id: null, updated_at: AT })
          .execute();
        await refuse(tx.db, "c_a");
      });
    const n = await moves(several);
    expect(n.b).toBe(0);
    // SQLite moves the revision on with each row; PostgreSQL writes the contact's row once a transaction.
    expect(n.a).toBe(backend.name === "postgres" ? 1 : 3);
  });
});
