/**
 * Applying a stored plan (STYLE.md rule 6) over the emulators on SQLite: a dry run's plan applied
 * later executes the operations planning still yields, and reports as stale (without executing) the
 * ones the state has moved past.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { applyStoredPlan } from "./apply-stored-plan";
import type { SyncDeps } from "./sync-pair";
import {
  addToReList,
  individual,
  RE_LISTS,
  sqliteBackend,
  startSyncHarness,
  type SyncHarness,
} from "../../test/support/sync-harness";

describe("applying a stored plan (SQLite)", () => {
  let h: SyncHarness;
  let deps: SyncDeps;
  const re: Record<string, string> = {};

  beforeEach(async () => {
    h = await startSyncHarness(sqliteBackend());
    deps = { store: h.store, config: h.config, connections: h.connections, now: h.now };
    const names = ["ada", "bob", "carol"];
    const ids = await h.seedRe(
      names.map((n) => individual(`${n}@example.org`, n === "ada" ? "Ada" : n, "Example")),
    );
    for (const [i, n] of names.entries()) re[n] = ids[i] ?? "";
    await addToReList(h, RE_LISTS.news, ids);
  });
  afterEach(async () => {
    await h.close();
  });

  it("a dry run's plan applied later does what the preview showed, and writes nothing before", async () => {
    const dry = await h.sync({ dry_run: true });
    expect(dry.plan?.gains["cc-main"]).toBe(3);
    expect(h.ccContact(h.ccMain, "ada@example.org")).toBeUndefined();
    h.advance(5_000);

    const result = await applyStoredPlan(deps, dry.plan_id ?? "");
    if (!result.ok) throw new Error(result.error.message);
    const report = result.report;
    expect(report).toMatchObject({ status: "succeeded", operations: 1, stale: [], new_since_plan: 0 });
    expect(report.execution?.operations.succeeded).toBe(1);
    for (const n of ["ada", "bob", "carol"])
      expect(h.ccContact(h.ccMain, `${n}@example.org`)?.email_address?.permission_to_send).toBe("implicit");
    // The post-steps of a sync: the imported records are read back, linked and claimed as Concord's.
    expect(report.relinks.map((r) => r.connection_id)).toEqual(["cc-main"]);
    const ada = await h.store.contacts.findByMatchKey("ada@example.org");
    const links = await h.store.links.forContact(ada[0]?.id ?? "");
    expect(links.find((l) => l.connection_id === "cc-main")?.origin).toBe("concord");
    // A run of its own, and nothing left for the next sync.
    expect((await h.store.runs.get(report.run_id))?.status).toBe("succeeded");
    h.advance(60_000);
    expect((await h.sync()).plan?.operations).toEqual([]);
  });

  it("an operation the state has moved past is reported stale and not executed; the others run", async () => {
    await h.sync();
    h.advance(60_000);
    await h.ccAct(h.ccMain, "unsubscribe", "carol@example.org");
    await h.reAct({ action: "update_constituent", constituent_id: re["ada"], changes: { first: "Augusta" } });
    h.advance(1_000);
    const preview = await h.sync({ dry_run: true });
    const kinds = preview.plan?.operations.map((o) => `${o.connection_id}:${o.kind}`).sort();
    expect(kinds).toEqual(["cc-main:update_contact", "re-nxt:record_opt_out"]);
    const staleOp = preview.plan?.operations.find((o) => o.kind === "update_contact")?.op_id;

    // Ada's name changes again before anyone applies the preview: its update is no longer the one to
    // make. Applying reads what changed since, as a sync would, and sees it.
    await h.reAct({
      action: "update_constituent",
      constituent_id: re["ada"],
      changes: { first: "Ada Augusta" },
    });
    h.advance(1_000);

    const result = await applyStoredPlan(deps, preview.plan_id ?? "");
    if (!result.ok) throw new Error(result.error.message);
    const report = result.report;
    expect(report.operations).toBe(1);
    expect(report.pulls.find((p) => p.connection_id === "re-nxt")?.records_changed).toBe(1);
    expect(report.stale).toEqual([
      {
        op_id: staleOp,
        connection_id: "cc-main",
        kind: "update_contact",
        message:
          "Planning now no longer yields it: the records or the ledger changed since the plan was made.",
      },
    ]);
    expect(report.new_since_plan).toBe(1); // the update to "Ada Augusta", left for the next sync
    expect((await h.reGet(`/constituent/v1/constituents/${re["carol"] ?? ""}`)).requests_no_email).toBe(true);
    expect(h.ccContact(h.ccMain, "ada@example.org")?.fields["first_name"]).toBe("Ada");
    expect((await h.store.operations.get(staleOp ?? ""))?.status).not.toBe("succeeded");

    // Applied again, nothing is left to do: the opt-out went out, so it too is stale now.
    const again = await applyStoredPlan(deps, preview.plan_id ?? "");
    if (!again.ok) throw new Error(again.error.message);
    expect(again.report.operations).toBe(0);
    expect(again.report.stale.map((s) => s.kind).sort()).toEqual(["record_opt_out", "update_contact"]);
    expect(again.report.stale.find((s) => s.kind === "record_opt_out")?.message).toBe(
      "Already applied since the plan was made.",
    );
  });

  it("a plan that does not exist is an expected failure, not a run", async () => {
    const result = await applyStoredPlan(deps, "plan_missing");
    expect(result).toEqual({
      ok: false,
      error: { code: "plan_not_found", message: "No stored plan plan_missing." },
    });
    expect(await h.store.db.selectFrom("runs").selectAll().execute()).toEqual([]);
  });
});
