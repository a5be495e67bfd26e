/**
 * Behaviour 1 (first sync) over real HTTP against the emulators: eligible constituents in mapped
 * lists reach the mapped Constant Contact lists through bulk imports, every record left out has a
 * reason, imported contacts are linked at once, and a second sync does nothing.
 */
import { afterEach, beforeEach, expect, it } from "vitest";
import { describeOnBackends } from "../../test/support/store-backends";
import {
  addToReList,
  individual,
  RE_LISTS,
  startSyncHarness,
  type SyncHarness,
} from "../../test/support/sync-harness";

describeOnBackends("first sync", (backend) => {
  let h: SyncHarness;
  beforeEach(async () => {
    h = await startSyncHarness(backend);
  });
  afterEach(async () => {
    await h.close();
  });

  it("imports eligible list members in bulk, skips the rest with reasons, links what it imported, and converges", async () => {
    const [ada, bob, carol, dan, erin, frank, gina, hank] = await h.seedRe([
      individual("ada@example.org", "Ada", "Lovelace"),
      individual("bob@example.org", "Bob", "Babbage", { requests_no_email: true }),
      individual(null, "Carol", "Shaw"),
      individual("dan@example..org", "Dan", "Bricklin"),
      individual("erin@example.org", "Erin", "Catto", { deceased: true }),
      individual("frank@example.org", "Frank", "Allen", { inactive: true }),
      individual("gina@example.org", "Gina", "Neff"),
      individual("hank@example.org", "Hank", "Hill", {
        consents: [
          {
            channel: "Email",
            category: "Appeals",
            constituent_consent_response: "OptOut",
            consent_date: "2026-01-10T00:00:00Z",
            source: "Phone",
          },
        ],
      }),
    ]);
    const ids = (xs: (string | undefined)[]): string[] => xs.map((x) => x ?? "");
    await addToReList(h, RE_LISTS.news, ids([ada, bob, carol, dan, erin, frank, hank]));
    await addToReList(h, RE_LISTS.appeals, ids([ada, hank]));
    // Someone uploaded straight into Constant Contact; the pair does not create CRM records.
    await h.seedCc(h.ccMain, [
      {
        email_address: { address: "zoe@example.org", permission_to_send: "implicit" },
        list_memberships: ["Newsletter"],
      },
    ]);

    const report = await h.sync();
    expect(report.status).toBe("succeeded");
    expect(report.execution?.operations.failed).toBe(0);

    const main = h.ccMain.store;
    const newsletter = [...main.contacts.values()]
      .filter((c) => c.list_memberships.includes(h.ccLists.main.newsletter))
      .map((c) => c.email_address?.address)
      .sort();
    expect(newsletter).toEqual(["ada@example.org", "hank@example.org", "zoe@example.org"]);
    const appeals = [...h.ccAppeals.store.contacts.values()].map((c) => c.email_address?.address);
    expect(appeals).toEqual(["ada@example.org"]);
    expect(h.ccMain.store.findByEmail("ada@example.org")?.fields["first_name"]).toBe("Ada");

    // Bulk endpoints carry the volume: one import per account, no per-contact creates.
    const log = (await (await fetch(`${h.ccMain.baseUrl}/__emulator/requests`)).json()) as {
      requests: { method: string; path: string }[];
    };
    const calls = log.requests;
    expect(
      calls.filter((c) => c.method === "POST" && c.path.startsWith("/v3/activities/contacts_json_import")),
    ).toHaveLength(1);
    expect(calls.filter((c) => c.method === "POST" && c.path === "/v3/contacts")).toHaveLength(0);

    // Every record left out says why.
    const reasons = new Map<string, string[]>();
    const contactOf = async (id: string | undefined) =>
      (await h.store.links.find("re-nxt", id ?? ""))?.contact_id;
    for (const s of report.plan?.skipped ?? [])
      reasons.set(
        `${s.connection_id}:${s.contact_id}`,
        s.reasons.map((r) => r.code),
      );
    const why = async (id: string | undefined, connection = "cc-main") =>
      reasons.get(`${connection}:${(await contactOf(id)) ?? ""}`) ?? [];
    expect(await why(bob)).toContain("opted_out");
    expect(await why(carol)).toContain("no_primary_email");
    expect(await why(dan)).toContain("invalid_email");
    expect(await why(erin)).toContain("deceased");
    expect(await why(frank)).toContain("inactive");
    expect(await why(gina)).toContain("not_in_synced_audience");
    expect(await why(hank, "cc-appeals")).toContain("opted_out");

    // Imported contacts are linked in the same run, so nothing is imported twice.
    const adaContact = await contactOf(ada);
    const adaMain = h.ccMain.store.findByEmail("ada@example.org");
    expect((await h.store.links.find("cc-main", adaMain?.contact_id ?? ""))?.contact_id).toBe(adaContact);
    expect(h.ccMain.store.findByEmail("zoe@example.org")).toBeDefined();
    expect(
      await h.store.db
        .selectFrom("links")
        .select("external_id")
        .where("connection_id", "=", "re-nxt")
        .execute(),
    ).toHaveLength(8);

    h.advance(60_000);
    const again = await h.sync();
    expect(again.plan?.operations).toEqual([]);
    expect(again.execution?.operations.total).toBe(0);
    expect([...main.contacts.values()]).toHaveLength(3);
  });

  it("a later plan supersedes what an earlier one left pending and no longer wants", async () => {
    const [ada] = await h.seedRe([individual("ada@example.org", "Ada", "Lovelace")]);
    await addToReList(h, RE_LISTS.news, [ada ?? ""]);
    const dry = await h.sync({ dry_run: true });
    const queued = () =>
      h.store.db
        .selectFrom("operations")
        .select(["kind", "status"])
        .where("status", "=", "pending")
        .execute();
    expect(await queued()).toEqual([{ kind: "upsert_contacts", status: "pending" }]);
    await h.reAct({ action: "set_requests_no_email", constituent_id: ada });
    h.advance(1_000);
    const real = await h.sync();
    expect(real.plan?.operations).toEqual([]);
    expect(await queued()).toEqual([]);
    const old = await h.store.operations.get(dry.plan?.operations[0]?.op_id ?? "");
    expect(old?.status).toBe("skipped");
  });

  it("a dry run stores the plan with counts and reasons and writes nothing to any system", async () => {
    const [ada] = await h.seedRe([individual("ada@example.org", "Ada", "Lovelace")]);
    await addToReList(h, RE_LISTS.news, [ada ?? ""]);
    const report = await h.sync({ dry_run: true });
    expect(report.dry_run).toBe(true);
    expect(report.execution).toBeUndefined();
    expect(report.plan?.gains).toEqual({ "cc-main": 1, "cc-appeals": 0 });
    expect(report.plan?.operations[0]).toMatchObject({
      kind: "upsert_contacts",
      contacts: 1,
      reason: { code: "new_contacts" },
    });
    expect(h.ccMain.store.contacts.size).toBe(0);
    const stored = await h.store.plans.get(report.plan_id ?? "");
    expect(stored?.counts).toMatchObject({ upsert_contacts: 1 });
    const run = await h.store.runs.get(report.run_id);
    expect(run).toMatchObject({ kind: "dry_run", status: "succeeded" });

    const real = await h.sync();
    expect(real.execution?.operations.succeeded).toBe(1);
    expect(h.ccMain.store.findByEmail("ada@example.org")).toBeDefined();
  });
});
