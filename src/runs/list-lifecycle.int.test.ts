/**
 * List lifecycle by rule (seeds 002 and 004): a CRM list a pair's list rule selects gets a platform
 * list of its name once it has members (previewed by a dry run first), renamed with it, and deleted
 * with it when the rule says so — its people never are.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  addToReList,
  beforeEachRead,
  individual,
  RE_LISTS,
  runtimeDeps,
  sqliteBackend,
  startSyncHarness,
  type SyncHarness,
} from "../../test/support/sync-harness";
import { gate } from "../../test/support/gate";
import { createEngineRuntime } from "./engine-runtime";
import { formatSyncReport } from "../cli/sync-commands";
import type { SyncReport } from "./sync-pair";

describe("list lifecycle by rule (SQLite)", () => {
  let h: SyncHarness;
  let ids: string[] = [];

  beforeEach(async () => {
    h = await startSyncHarness(sqliteBackend(), {
      configure: (raw) => {
        (raw.pairs as Record<string, unknown>[])[0]!["list_sync"] = [
          { platform: "cc-main", crm_lists: { prefix: "CC: " }, on_delete: "delete_platform_list" },
        ];
      },
    });
    ids = await h.seedRe(["ada", "bob", "cy"].map((n) => individual(`${n}@example.org`, n, "Example")));
    await addToReList(h, RE_LISTS.news, ids);
    await h.sync();
    h.advance(60_000);
  });
  afterEach(async () => {
    await h.close();
  });

  const ccList = (name: string) =>
    [...h.ccMain.store.lists.values()].find((l) => l.name === name && l.deleted_at === null);
  const membersOf = (listId: string) =>
    ["ada", "bob", "cy"].filter((n) =>
      h.ccContact(h.ccMain, `${n}@example.org`)?.list_memberships.includes(listId),
    );

  it("a poll whose reads a run of the pair overtook plans with the lists that run made: one list, made once", async () => {
    const runs: SyncReport[] = [];
    const runtime = createEngineRuntime({ ...runtimeDeps(h, {}), onRun: (r) => runs.push(r) });
    try {
      await runtime.tick(); // the first poll is the full reconciliation, which reads inside its run
      h.advance(61_000);
      await h.reAct({ action: "create_list", name: "CC: Volunteers", ids: [ids[0], ids[1]] });
      // The next poll resolves the pair (no Volunteers list yet) and is held in its Constant
      // Contact read; meanwhile an operator's run takes the pair and makes the list.
      const released = gate();
      const held = gate();
      let holding = true;
      beforeEachRead(h, "cc-main", async () => {
        if (!holding) return;
        holding = false;
        held.open();
        await released.opened;
      });
      const polling = runtime.tick();
      await held.opened;
      const [manual] = await runtime.syncNow("re-cc");
      expect(manual?.plan?.operations.map((o) => o.reason.code)).toContain("list_created");
      released.open();
      await polling;
      await runtime.idle();
      // The poll's run planned from the lists as they are now, not as its reads found them.
      const poll = runs.at(-1);
      expect(poll?.run_id).not.toBe(manual?.run_id);
      expect(poll?.plan?.operations.map((o) => o.reason.code) ?? []).not.toContain("list_created");
      expect([...h.ccMain.store.lists.values()].filter((l) => l.name === "Volunteers")).toHaveLength(1);
    } finally {
      await runtime.stop();
    }
  });

  it("a poll that runs reads each system's lists once, and again in its run while a list change is pending", async () => {
    const runs: SyncReport[] = [];
    const runtime = createEngineRuntime({ ...runtimeDeps(h, {}), onRun: (r) => runs.push(r) });
    const listReads = (): number[] => [
      h.re.kit.requests.filter((r) => r.method === "GET" && r.path.split("?")[0] === "/list/v1/lists").length,
      h.ccMain.kit.requests.filter((r) => r.method === "GET" && r.path.split("?")[0] === "/v3/contact_lists")
        .length,
    ];
    /** One poll; the lists read in it, per system (RE NXT, Constant Contact), and its run if it made one. */
    const poll = async () => {
      const before = listReads();
      const ran = runs.length;
      h.advance(61_000);
      await runtime.tick();
      await runtime.idle();
      return { reads: listReads().map((n, i) => n - (before[i] ?? 0)), run: runs.slice(ran).at(-1) };
    };
    try {
      await runtime.tick(); // the first poll is the full reconciliation, which reads inside its run
      while ((await poll()).run !== undefined && runs.length < 10);

      // Bob unsubscribes in Constant Contact: the poll reads it and runs, with the pair as resolved
      // for its reads, since no list change was stored or tried since they began.
      await h.ccAct(h.ccMain, "unsubscribe", "bob@example.org");
      const unsubscribed = await poll();
      expect(unsubscribed.run?.execution?.operations.succeeded).toBeGreaterThan(0);
      expect(unsubscribed.reads).toEqual([1, 1]);

      // A CRM list to make in Constant Contact, which refuses it for now: the list change stays
      // pending, waiting for its retry, and may reach Constant Contact at any moment.
      await h.reAct({ action: "create_list", name: "CC: Volunteers", ids: [ids[0], ids[2]] });
      h.ccMain.kit.faults.push({
        status: 503,
        count: 1_000,
        path_prefix: "/v3/contact_lists",
        methods: ["POST"],
        latency_ms: 0,
      });
      const refused = await poll();
      expect(refused.run?.plan?.operations.map((o) => o.reason.code)).toContain("list_created");
      expect(ccList("Volunteers")).toBeUndefined();
      h.ccMain.kit.faults.length = 0;
      // The next poll's run reads the lists again, since the pending change may have been made.
      await h.ccAct(h.ccMain, "unsubscribe", "cy@example.org");
      const retried = await poll();
      expect(retried.run).toBeDefined();
      expect(retried.reads).toEqual([2, 2]);
      expect([...h.ccMain.store.lists.values()].filter((l) => l.name === "Volunteers")).toHaveLength(1);
    } finally {
      await runtime.stop();
    }
  });

  it("changes no list while the platform's lists cannot be read, and makes the change it waited for once they can", async () => {
    const volunteers = (
      await h.reAct({ action: "create_list", name: "CC: Volunteers", ids: [ids[0], ids[1]] })
    ).list;
    expect((await h.sync()).plan?.operations.map((o) => o.reason.code)).toContain("list_created");
    const made = ccList("Volunteers");
    expect(made).toBeDefined();

    // Constant Contact's lists cannot be read: those last read (before Volunteers was made) stand
    // in. Renamed in the CRM meanwhile, the list is neither made again nor renamed from them.
    await h.reAct({ action: "rename_list", list_id: volunteers.id, name: "CC: Helpers" });
    h.ccMain.kit.faults.push({
      status: 503,
      count: 1_000,
      path_prefix: "/v3/contact_lists",
      methods: ["GET"],
      latency_ms: 0,
    });
    h.advance(60_000);
    const unread = await h.sync();
    h.ccMain.kit.faults.length = 0;
    expect(unread.status).toBe("succeeded");
    expect(unread.plan?.operations.filter((o) => o.reason.code.startsWith("list_"))).toEqual([]);
    expect(unread.lists_left).toEqual([
      {
        crm_list: "CC: Helpers",
        platform: "cc-main",
        reason: expect.stringMatching(
          /^the lists of cc-main could not be read now \(.+\); its lists change once they can be$/,
        ),
      },
    ]);
    expect(formatSyncReport(unread).join("\n")).toContain(
      "list rule left the CRM list “CC: Helpers” for cc-main: the lists of cc-main could not be read now (",
    );
    expect(
      [...h.ccMain.store.lists.values()].filter((l) => l.deleted_at === null).map((l) => l.name),
    ).toContain("Volunteers");

    // Readable again: the rename it waited for is made, on the same list.
    h.advance(60_000);
    const renamed = await h.sync();
    expect(renamed.plan?.operations.map((o) => o.reason.code)).toContain("list_renamed");
    expect(renamed.lists_left).toBeUndefined();
    expect(ccList("Helpers")?.list_id).toBe(made!.list_id);
    expect(ccList("Volunteers")).toBeUndefined();
    expect(
      [...h.ccMain.store.lists.values()].filter((l) => l.deleted_at === null && l.name === "Helpers"),
    ).toHaveLength(1);
  });

  it("creates, renames and deletes the platform list with the CRM list; never an empty one, never a person", async () => {
    const volunteers = (
      await h.reAct({ action: "create_list", name: "CC: Volunteers", ids: [ids[0], ids[1]] })
    ).list;
    await h.reAct({ action: "create_list", name: "CC: Gala 2027", ids: [] });
    await h.reAct({ action: "create_list", name: "Board only", ids: [ids[2]] }); // no rule selects it

    // A dry run shows the list it would make, and makes nothing.
    const preview = await h.sync({ dry_run: true });
    expect(
      preview.plan?.operations.filter((o) => o.reason.code === "list_created").map((o) => o.connection_id),
    ).toEqual(["cc-main"]);
    expect(ccList("Volunteers")).toBeUndefined();

    const made = await h.sync();
    expect(made.execution?.operations.failed).toBe(0);
    const list = ccList("Volunteers");
    expect(list).toBeDefined();
    // The empty CRM list gets no platform list; the unselected one neither.
    expect(ccList("Gala 2027")).toBeUndefined();
    expect(ccList("Board only")).toBeUndefined();

    // Its members follow at the next run.
    h.advance(60_000);
    await h.sync();
    expect(membersOf(list!.list_id)).toEqual(["ada", "bob"]);

    // Renamed in the CRM: the same platform list takes the new name, members and all.
    await h.reAct({ action: "rename_list", list_id: volunteers.id, name: "CC: Helpers" });
    h.advance(60_000);
    const renamed = await h.sync();
    expect(renamed.plan?.operations.map((o) => o.reason.code)).toContain("list_renamed");
    expect(ccList("Helpers")?.list_id).toBe(list!.list_id);
    expect(ccList("Volunteers")).toBeUndefined();
    expect(membersOf(list!.list_id)).toEqual(["ada", "bob"]);

    // Deleted in the CRM: the rule deletes the platform list, never its people.
    await h.reAct({ action: "delete_list", list_id: volunteers.id });
    h.advance(60_000);
    const deleted = await h.sync();
    expect(deleted.plan?.operations.map((o) => o.reason.code)).toContain("list_deleted");
    expect(ccList("Helpers")).toBeUndefined();
    for (const n of ["ada", "bob", "cy"])
      expect(h.ccContact(h.ccMain, `${n}@example.org`)?.deleted_at).toBeNull();

    // Nothing more to do.
    h.advance(60_000);
    const again = await h.sync();
    expect(again.plan?.operations).toEqual([]);
  });
});

describe("list lifecycle by rule, Mailchimp tags (SQLite)", () => {
  let h: SyncHarness;
  afterEach(async () => {
    await h.close();
  });

  it("a selected CRM list becomes a tag of the audience, renamed and deleted with it", async () => {
    h = await startSyncHarness(sqliteBackend(), {
      mailchimp: true,
      configure: (raw) => {
        (raw.pairs as Record<string, unknown>[])[0]!["list_sync"] = [
          { platform: "mc", crm_lists: { names: ["Major donors"] }, on_delete: "delete_platform_list" },
        ];
      },
    });
    const ids = await h.seedRe(["ada", "bob"].map((n) => individual(`${n}@example.org`, n, "Example")));
    await addToReList(h, RE_LISTS.news, ids);
    await h.sync();
    const donors = (await h.reAct({ action: "create_list", name: "Major donors", ids: [ids[0]] })).list;
    h.advance(60_000);
    await h.sync();
    h.advance(60_000);
    await h.sync();
    const tags = async () =>
      (
        (await (await fetch(`${h.mcOrigin!}/__emulator/state`)).json()) as {
          audiences: { tags: { name: string }[] }[];
        }
      ).audiences[0]!;
    let state = await tags();
    expect(state.tags.map((t: { name: string }) => t.name)).toContain("Major donors");

    await h.reAct({ action: "rename_list", list_id: donors.id, name: "Major gifts" });
    h.advance(60_000);
    await h.sync();
    state = await tags();
    expect(state.tags.map((t: { name: string }) => t.name)).toContain("Major gifts");
    expect(state.tags.map((t: { name: string }) => t.name)).not.toContain("Major donors");

    await h.reAct({ action: "delete_list", list_id: donors.id });
    h.advance(60_000);
    const deleted = await h.sync();
    expect(deleted.execution?.operations.failed).toBe(0);
    state = await tags();
    expect(state.tags.map((t: { name: string }) => t.name)).not.toContain("Major gifts");
  });
});
