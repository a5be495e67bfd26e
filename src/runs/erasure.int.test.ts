/**
 * Erasure (DESIGN.md §2 rule 8) over the emulators: a person is deleted in Raiser's Edge NXT, both
 * Constant Contact accounts and Mailchimp (permanently there), Concord's copy holds nothing of them
 * while the ledger still verifies, and their address is refused when a system brings it back.
 */
import { afterEach, describe, expect, it } from "vitest";
import { describeOnBackends } from "../../test/support/store-backends";
import { explainContactById } from "../explain/explain-by-id";
import { sql } from "kysely";
import { appendConsentEvents, eventsForContact } from "../ledger/consent-ledger";
import { gate } from "../../test/support/gate";
import { untilBlocked } from "../../test/support/lock-waits";
import { recordOperatorOverride } from "./operator-override";
import { preferencePageAct, recordOneClick, recordPreferences, type TokenClaims } from "./personal-links";
import { verifyLedger } from "../ledger/verify-ledger";
import { erasePerson } from "./erase-person";
import { reconcilePair } from "./reconcile";
import { formatErasureReport, formatSyncReport } from "../cli/sync-commands";
import {
  addToReList,
  individual,
  post,
  RE_LISTS,
  sqliteBackend,
  startSyncHarness,
  type SyncHarness,
} from "../../test/support/sync-harness";

const sqlite = sqliteBackend();
const ADA = "Ada.Lovelace@Example.org";

describe("erasure", () => {
  let h: SyncHarness;
  afterEach(async () => {
    await h.close();
  });

  const deps = () => ({ store: h.store, config: h.config, connections: h.connections, now: h.now });

  /** Every stored row, as text: where a person's data could hide. */
  const everyRow = async (except: readonly string[] = []): Promise<string> => {
    const tables = await sql<{ name: string }>`select name from sqlite_master where type = 'table'`.execute(
      h.store.db,
    );
    const rows: unknown[] = [];
    for (const { name } of tables.rows.filter((t) => !except.includes(t.name)))
      rows.push(...(await sql`select * from ${sql.table(name)}`.execute(h.store.db)).rows);
    return JSON.stringify(rows).toLowerCase();
  };

  const seedAda = async () => {
    const [ada] = await h.seedRe([individual(ADA, "Ada", "Lovelace")]);
    await addToReList(h, RE_LISTS.news, [ada!]);
    await addToReList(h, RE_LISTS.appeals, [ada!]);
    await h.sync();
    // She leaves the newsletter with the footer link: the ledger holds her act with its evidence.
    await h.ccAct(h.ccMain, "unsubscribe", ADA);
    h.advance(60_000);
    await h.sync();
    return ada!;
  };

  it("deletes the person in every system, erases Concord's copy (the ledger still verifies) and refuses the address when it comes back", async () => {
    h = await startSyncHarness(sqlite, { mailchimp: true });
    const ada = await seedAda();
    const [contact] = await h.store.contacts.findByMatchKey("ada.lovelace@example.org");
    expect(h.ccContact(h.ccAppeals, ADA)).toBeDefined();
    expect(await everyRow()).toContain("ada.lovelace@example.org");
    const marksOf = async (id: string) =>
      (await h.store.db.selectFrom("plan_marks").select("contact_id").where("contact_id", "=", id).execute())
        .length;
    // Once her opt-out is carried, a plan finds nothing left to do for her: she is marked.
    await h.sync();
    expect(await marksOf(contact!.id)).toBe(1);

    const preview = await erasePerson(deps(), { email: ADA, requested_by: "Operator", dry_run: true });
    expect(preview.ok && preview.report.systems.map((s) => [s.connection_id, s.status]).sort()).toEqual([
      ["cc-appeals", "planned"],
      ["cc-main", "planned"],
      ["mc", "planned"],
      ["re-nxt", "planned"],
    ]);
    expect(await h.store.suppressions.suppressed([])).toEqual(new Set());
    expect((await h.store.contacts.get(contact!.id))?.erased_at).toBeNull();

    const result = await erasePerson(deps(), {
      email: ADA,
      requested_by: "Operator",
      // An operator writes what they have in front of them: her name and address are not kept.
      reference: "Letter of 2026-06-01 from Ada LOVELACE <ADA.lovelace@example.org>, Adair Street",
    });
    if (!result.ok) throw new Error(result.message);
    expect((await h.store.db.selectFrom("erasures").select("reference").executeTakeFirst())?.reference).toBe(
      "Letter of 2026-06-01 from [erased] [erased] <[erased]>, Adair Street",
    );
    const report = result.report;
    expect(report.status).toBe("completed");
    expect(report.systems.map((s) => [s.connection_id, s.status]).sort()).toEqual([
      ["cc-appeals", "erased"],
      ["cc-main", "erased"],
      ["mc", "erased"],
      ["re-nxt", "erased"],
    ]);
    expect(report.systems.find((s) => s.connection_id === "cc-main")?.message).toContain("revived");
    expect(formatErasureReport(report).join("\n")).toContain("never imported again");

    // Each system: RE NXT's constituent is gone, Constant Contact's contacts are deleted, Mailchimp forgot her.
    expect(await h.reGet(`/constituent/v1/constituents/${ada}`)).toEqual([
      expect.objectContaining({ error_code: 404 }),
    ]);
    expect(h.ccContact(h.ccMain, ADA)?.deleted_at ?? "gone").not.toBeNull();
    expect(h.ccContact(h.ccAppeals, ADA)?.deleted_at ?? "gone").not.toBeNull();
    const mc = (await (await fetch(`${h.mcOrigin!}/__emulator/state`)).json()) as {
      audiences: { members: unknown[]; forgotten: string[] }[];
    };
    expect(mc.audiences[0]?.members).toEqual([]);
    expect(mc.audiences[0]?.forgotten).toHaveLength(1);

    // Concord: nothing personal is left anywhere in the store, and the ledger's chain still verifies.
    expect(await marksOf(contact!.id)).toBe(0);
    const stored = await everyRow();
    expect(stored).not.toContain("ada.lovelace@example.org");
    expect(stored).not.toContain("lovelace");
    const events = await eventsForContact(h.store, contact!.id);
    expect(events.length).toBeGreaterThan(0);
    expect(events.every((e) => e.evidence_erased_at !== null)).toBe(true);
    expect((await verifyLedger(h.store)).ok).toBe(true);

    // The address comes back: a new constituent in the CRM with it.
    h.advance(60_000);
    const [again] = await h.seedRe([individual(ADA, "Ada", "Lovelace")]);
    await addToReList(h, RE_LISTS.news, [again!]);
    h.advance(1_000);
    const sync = await h.sync({ full: true });
    expect(sync.pulls.find((p) => p.connection_id === "re-nxt")?.records_refused_erased).toBe(1);
    expect(formatSyncReport(sync).join("\n")).toContain("skipped for re-nxt: erased 1");
    expect(await h.store.contacts.findByMatchKey("ada.lovelace@example.org")).toEqual([]);
    expect(h.ccContact(h.ccMain, ADA)?.deleted_at ?? "gone").not.toBeNull();
    expect(sync.plan?.operations.filter((o) => o.kind === "upsert_contacts")).toEqual([]);
    expect(await everyRow()).not.toContain("ada.lovelace@example.org");
  });

  it("a list change planned for her and others keeps none of her platform ids once she is erased", async () => {
    h = await startSyncHarness(sqlite, { mailchimp: true });
    const [ada, bob] = await h.seedRe([
      individual(ADA, "Ada", "Lovelace"),
      individual("bob@example.org", "Bob", "Example"),
    ]);
    await addToReList(h, RE_LISTS.news, [ada!, bob!]);
    await h.sync();
    // Both join the events and the appeals lists: one list change each for both of them, in the
    // platforms where they already are (a Mailchimp member id is derived from the address).
    await addToReList(h, RE_LISTS.events, [ada!, bob!]);
    await addToReList(h, RE_LISTS.appeals, [ada!, bob!]);
    h.advance(60_000);
    const sync = await h.sync();
    const bulk = (sync.plan?.operations ?? []).filter(
      (o) => (o.kind === "add_list_members" || o.kind === "upsert_contacts") && o.contacts === 2,
    );
    expect(bulk.map((o) => `${o.connection_id} ${o.kind}`).sort()).toContain("cc-main add_list_members");
    const [contact] = await h.store.contacts.findByMatchKey("ada.lovelace@example.org");
    const ids = (await h.store.links.forContact(contact!.id)).map((l) => l.external_id.toLowerCase());
    expect(ids).toHaveLength(4);

    const result = await erasePerson(deps(), { email: ADA, requested_by: "Operator" });
    if (!result.ok) throw new Error(result.message);
    expect(result.report.status).toBe("completed");
    // The erasure's own record names the records it deleted, system by system; nothing else does.
    const stored = await everyRow(["erasures"]);
    const named = (id: string) => new RegExp(`(?<![0-9a-z_-])${id}(?![0-9a-z_-])`);
    for (const id of ids) expect(stored).not.toMatch(named(id));
    // Bob's part of the same changes stays.
    const [bobContact] = await h.store.contacts.findByMatchKey("bob@example.org");
    for (const link of await h.store.links.forContact(bobContact!.id))
      expect(stored).toMatch(named(link.external_id.toLowerCase()));
  });

  it("keeps the records of systems the config names, and retries a system that failed until it is done", async () => {
    h = await startSyncHarness(sqlite, {
      mailchimp: true,
      configure: (raw) => {
        raw["compliance"] = { erasure: { keep_records_in: ["re-nxt"] } };
      },
    });
    const ada = await seedAda();
    // Mailchimp refuses the first attempt.
    await post(h.mcOrigin!, "/__emulator/faults", {
      status: 403,
      count: 1,
      path_prefix: "/3.0/lists/a1b2c3d4e5/members/",
    });
    const first = await erasePerson(deps(), { email: ADA, requested_by: "Operator" });
    if (!first.ok) throw new Error(first.message);
    expect(first.report.status).toBe("incomplete");
    expect(first.report.systems.find((s) => s.connection_id === "mc")?.status).toBe("failed");
    expect(first.report.systems.find((s) => s.connection_id === "re-nxt")?.status).toBe("kept");
    expect(formatErasureReport(first.report).join("\n")).toContain("run the same command again");
    // Concord keeps its copy (and its links) until every system is done.
    expect(await h.store.contacts.findByMatchKey("ada.lovelace@example.org")).toHaveLength(1);
    // Meanwhile no sync sends her anywhere again, nor changes her where she still is.
    h.advance(60_000);
    const meanwhile = await h.sync({ full: true });
    expect(meanwhile.plan?.operations).toEqual([]);
    expect(h.ccContact(h.ccMain, ADA)?.deleted_at).not.toBeNull();
    expect(h.ccContact(h.ccAppeals, ADA)?.deleted_at).not.toBeNull();

    h.advance(60_000);
    const second = await erasePerson(deps(), { email: ADA, requested_by: "Operator" });
    if (!second.ok) throw new Error(second.message);
    expect(second.report.status).toBe("completed");
    expect(second.report.systems.find((s) => s.connection_id === "mc")?.status).toBe("erased");
    expect(await h.store.contacts.findByMatchKey("ada.lovelace@example.org")).toEqual([]);

    // Raiser's Edge NXT keeps the constituent; Concord refuses it from now on.
    expect((await h.reGet(`/constituent/v1/constituents/${ada}`)) as { id?: string }).toMatchObject({
      id: ada,
    });
    h.advance(60_000);
    const sync = await h.sync({ full: true });
    expect(sync.pulls.find((p) => p.connection_id === "re-nxt")?.records_refused_erased).toBe(1);
    expect(await everyRow()).not.toContain("ada.lovelace@example.org");
  });

  it("a kept record's other address is suppressed too: made primary there later, the record is still refused", async () => {
    h = await startSyncHarness(sqlite, {
      configure: (raw) => {
        raw["compliance"] = { erasure: { keep_records_in: ["re-nxt"] } };
      },
    });
    const ada = await seedAda();
    // Her constituent has a home address too, which Concord holds only in the record's snapshot.
    await h.reAct({
      action: "add_email",
      constituent_id: ada,
      email_address: { address: "ada.home@example.org", primary: false },
    });
    h.advance(60_000);
    await h.sync({ full: true });
    expect(await h.store.contacts.findByMatchKey("ada.home@example.org")).toEqual([]);
    const erased = await erasePerson(deps(), { email: ADA, requested_by: "Operator" });
    if (!erased.ok) throw new Error(erased.message);
    expect(erased.report).toMatchObject({ status: "completed", addresses_suppressed: 2 });
    // Her page says what became of her, not that she never had an address.
    const page = await explainContactById(h.store, h.config, erased.report.contact_ids[0]!);
    expect(page).toMatchObject({
      kind: "found",
      explanation: null,
      note: expect.stringMatching(/erased on/),
    });
    // Raiser's Edge NXT keeps the constituent, and someone makes the home address its primary.
    await h.reAct({
      action: "change_primary_email",
      constituent_id: ada,
      new_address: "ada.home@example.org",
    });
    h.advance(60_000);
    const sync = await h.sync({ full: true });
    expect(sync.pulls.find((p) => p.connection_id === "re-nxt")?.records_refused_erased).toBe(1);
    expect(await h.store.contacts.findByMatchKey("ada.home@example.org")).toEqual([]);
    expect(await everyRow()).not.toContain("ada.home@example.org");
  });

  it("a platform record at the address that no contact holds (in review) is erased there too", async () => {
    h = await startSyncHarness(sqlite);
    // Two constituents at Ada's address, and a contact at it uploaded straight into Constant
    // Contact: it could be either, so it stays unlinked, in review.
    const [uploaded] = await h.seedCc(h.ccMain, [
      {
        email_address: { address: ADA.toLowerCase(), permission_to_send: "explicit" },
        first_name: "Ada",
        list_memberships: ["Newsletter"],
      },
    ]);
    await h.seedRe([individual(ADA, "Ada", "Lovelace"), individual(ADA, "Ada", "King")]);
    await h.sync();
    expect(await h.store.links.find("cc-main", uploaded!.contact_id)).toBeUndefined();
    const review = await h.store.reviewItems.list("open");
    expect(review.map((r) => [r.connection_id, r.external_id])).toContainEqual([
      "cc-main",
      uploaded!.contact_id,
    ]);

    const preview = await erasePerson(deps(), { email: ADA, requested_by: "Operator", dry_run: true });
    expect(preview.ok && preview.report.systems.map((s) => s.connection_id).sort()).toEqual([
      "cc-main",
      "re-nxt",
      "re-nxt",
    ]);
    // Both constituents are Ada (Lovelace by marriage, King by birth): the operator says so.
    const result = await erasePerson(deps(), { email: ADA, requested_by: "Operator", all_holders: true });
    expect(result.ok && result.report.status).toBe("completed");
    expect(h.ccContact(h.ccMain, ADA)?.deleted_at).toEqual(expect.any(String));
    // Nothing of the record is left in Concord either: its snapshot and its review item are gone.
    expect(await h.store.reviewItems.list("open")).toEqual([]);
    expect(await everyRow()).not.toContain("ada.lovelace@example.org");
  });

  it("a record at the address whose review was dismissed is erased too, in the platform and in Concord", async () => {
    h = await startSyncHarness(sqlite);
    const [uploaded] = await h.seedCc(h.ccMain, [
      {
        email_address: { address: "ADA.LOVELACE@example.org", permission_to_send: "explicit" },
        first_name: "Ada",
        list_memberships: ["Newsletter"],
      },
    ]);
    await h.seedRe([individual(ADA, "Ada", "Lovelace"), individual(ADA, "Ada", "King")]);
    await h.sync();
    const item = (await h.store.reviewItems.list("open")).find((r) => r.connection_id === "cc-main");
    expect(item?.external_id).toBe(uploaded!.contact_id);
    await h.store.reviewItems.resolve(item!.id, "dismissed", { action: "dismiss", note: null });

    const result = await erasePerson(deps(), { email: ADA, requested_by: "Operator", all_holders: true });
    expect(result.ok && result.report.systems.map((s) => [s.connection_id, s.status]).sort()).toEqual([
      ["cc-main", "erased"],
      ["re-nxt", "erased"],
      ["re-nxt", "erased"],
    ]);
    expect(h.ccContact(h.ccMain, ADA)?.deleted_at).toEqual(expect.any(String));
    expect(await everyRow()).not.toContain("ada.lovelace@example.org");
  });

  it("suppresses an address Concord never held: a system that brings it later is refused", async () => {
    h = await startSyncHarness(sqlite);
    const result = await erasePerson(deps(), { email: "Zoe@Example.org", requested_by: "Operator" });
    expect(result).toMatchObject({
      ok: true,
      report: { status: "completed", contact_ids: [], addresses_suppressed: 1, systems: [] },
    });
    expect(formatErasureReport(result.ok ? result.report : ({} as never)).join("\n")).toContain(
      "Concord holds no contact with this address",
    );
    const [zoe] = await h.seedRe([individual("zoe@example.org", "Zoe", "Example")]);
    await addToReList(h, RE_LISTS.news, [zoe!]);
    const sync = await h.sync();
    expect(sync.pulls.find((p) => p.connection_id === "re-nxt")?.records_refused_erased).toBe(1);
    expect(await h.store.contacts.findByMatchKey("zoe@example.org")).toEqual([]);
  });

  it("an address several contacts hold is erased only when the request says every one of them is the person", async () => {
    h = await startSyncHarness(sqlite);
    // Two constituents share a household mailbox: Concord keeps two contacts (the CRM says who is who).
    const ids = await h.seedRe([
      individual("smiths@example.org", "Jo", "Smith"),
      individual("smiths@example.org", "Sam", "Smith"),
    ]);
    await addToReList(h, RE_LISTS.news, ids);
    await h.sync();
    const holders = (await h.store.contacts.findByMatchKey("smiths@example.org")).map((c) => c.id).sort();
    expect(holders).toHaveLength(2);
    /** Whether each constituent is still in Raiser's Edge NXT. */
    const constituents = async () =>
      Promise.all(
        ids.map(
          async (id) => ((await h.reGet(`/constituent/v1/constituents/${id}`)) as { id?: string }).id === id,
        ),
      );

    const preview = await erasePerson(deps(), {
      email: "smiths@example.org",
      requested_by: "Ops",
      dry_run: true,
    });
    expect(preview).toMatchObject({ ok: true, report: { status: "planned", contact_ids: holders } });
    const refused = await erasePerson(deps(), { email: "smiths@example.org", requested_by: "Ops" });
    expect(refused).toMatchObject({ ok: false, code: "several_holders", contact_ids: holders });
    expect(!refused.ok && refused.message).toContain("all_holders");
    // Nothing was erased or suppressed: both people are still there, everywhere.
    expect(await constituents()).toEqual([true, true]);
    expect(await h.store.contacts.findByMatchKey("smiths@example.org")).toHaveLength(2);
    expect(await h.store.db.selectFrom("suppressions").selectAll().execute()).toEqual([]);

    const erased = await erasePerson(deps(), {
      email: "smiths@example.org",
      requested_by: "Ops",
      all_holders: true,
    });
    expect(erased).toMatchObject({ ok: true, report: { status: "completed", contact_ids: holders } });
    expect(await constituents()).toEqual([false, false]);
  });

  it("refuses an address that is not one, with what was expected", async () => {
    h = await startSyncHarness(sqlite);
    const result = await erasePerson(deps(), { email: "not an address", requested_by: "Operator" });
    expect(result).toMatchObject({ ok: false, code: "invalid_email" });
    expect(!result.ok && result.message).toContain("expected the address the person asked to be erased");
  });
});

describeOnBackends("erasure and run history", (backend) => {
  let h: SyncHarness;
  afterEach(async () => {
    await h.close();
  });
  const deps = () => ({ store: h.store, config: h.config, connections: h.connections, now: h.now });
  /** Runs' reports and plans' summaries, as text. */
  const history = async (): Promise<string> =>
    JSON.stringify([
      await h.store.db.selectFrom("runs").select("summary_json").execute(),
      await h.store.db.selectFrom("plans").select("plan_json").execute(),
      await h.store.db.selectFrom("webhook_inbox").select("changes_json").execute(),
    ]).toLowerCase();

  /** A processed delivery that announced the opt-out of `email`. */
  const announced = async (email: string) => {
    const delivery = await h.store.inbox.add("cc-main", [
      {
        event_id: `e-${email}`,
        type: "unsubscribe",
        external_id: "x",
        occurred_at: h.now().toISOString(),
        change: "consent_changed",
        opt_out: { email },
      },
    ]);
    await h.store.inbox.markProcessed([delivery.id]);
  };

  it("run history keeps no erased address: a reconciliation that named her reads [erased] after, the rest stays", async () => {
    h = await startSyncHarness(backend);
    const [ada] = await h.seedRe([individual(ADA, "Ada", "Lovelace")]);
    const [bob] = await h.seedRe([individual("bob@example.org", "Bob", "Example")]);
    await addToReList(h, RE_LISTS.news, [ada!, bob!]);
    // Constant Contact holds her address in a spelling of its own, which its plan reasons quote.
    await h.seedCc(h.ccMain, [
      {
        email_address: { address: "ADA.LOVELACE@EXAMPLE.ORG", permission_to_send: "explicit" },
        first_name: "Ada",
        list_memberships: ["Newsletter"],
      },
    ]);
    await h.sync();
    // Staff tick Requests No Email for both; a reconciliation before the next sync names them.
    h.advance(60_000);
    for (const id of [ada!, bob!]) await h.reAct({ action: "set_requests_no_email", constituent_id: id });
    h.advance(1_000);
    const found = await reconcilePair(deps(), h.pair, { pull: true });
    expect(found.differences.map((d) => (d.email ?? "").toLowerCase()).sort()).toEqual([
      "ada.lovelace@example.org",
      "bob@example.org",
    ]);
    expect(await history()).toContain("ada.lovelace@example.org");
    // Deliveries that announced their opt-outs keep the addresses they were for, until their retention ends.
    for (const email of ["Ada.Lovelace@example.org", "bob@example.org"]) await announced(email);
    // Her address changes in the CRM: the plan that carries it names both addresses in its reasons.
    h.advance(60_000);
    await h.reAct({
      action: "change_primary_email",
      constituent_id: ada,
      new_address: "ada@analytical.example",
    });
    h.advance(1_000);
    const moved = await h.sync();
    expect(moved.plan?.operations.some((o) => o.reason.code === "email_changed_in_crm")).toBe(true);
    expect(await history()).toContain("ada@analytical.example");
    expect(JSON.stringify(await h.store.db.selectFrom("plans").select("plan_json").execute())).toContain(
      "ADA.LOVELACE@EXAMPLE.ORG",
    );

    h.advance(60_000);
    const result = await erasePerson(deps(), { email: "ada@analytical.example", requested_by: "Operator" });
    expect(result.ok && result.report.status).toBe("completed");
    const stored = await history();
    expect(stored).not.toContain("ada.lovelace@example.org");
    expect(stored).not.toContain("ada@analytical.example");
    // The rest of the history stays: Bob's difference is still on record, Ada's reads as erased.
    expect(stored).toContain("bob@example.org");
    expect(stored).toContain("[erased]");
  });

  it("an address written with non-ASCII letters is erased from history in any case and in either form of its domain", async () => {
    h = await startSyncHarness(backend);
    const spellings = ["JÖRG@BÜCHER.example", "jörg@xn--bcher-kva.example", "Jörg@bücher.example"];
    for (const email of [...spellings, "bob@example.org"]) await announced(email);
    // A record uploaded straight into a platform, read but never linked, in upper case.
    await h.store.snapshots.put({
      connection_id: "cc-main",
      external_id: "uploaded-jorg",
      content_hash: "c".repeat(64),
      payload: { external_id: "uploaded-jorg", emails: [{ address: spellings[0]!, primary: true }] },
    });
    const preview = await erasePerson(deps(), {
      email: "jörg@bücher.example",
      requested_by: "Operator",
      dry_run: true,
    });
    expect(preview.ok && preview.report.systems.map((x) => [x.connection_id, x.external_id])).toEqual([
      ["cc-main", "uploaded-jorg"],
    ]);
    const result = await erasePerson(deps(), { email: "jörg@bücher.example", requested_by: "Operator" });
    expect(result.ok && result.report.status).toBe("completed");
    const stored = JSON.stringify(
      await h.store.db.selectFrom("webhook_inbox").select("changes_json").execute(),
    );
    for (const email of spellings) expect(stored).not.toContain(email);
    expect(stored.match(/\[erased\]/g)).toHaveLength(spellings.length * 2); // its id and its address
    expect(stored).toContain("bob@example.org");
  });
});

describeOnBackends("what arrives for a person being erased", (backend) => {
  let h: SyncHarness;
  afterEach(async () => {
    await h.close();
  });
  const claimsOf = (contact_id: string): TokenClaims => ({
    contact_id,
    purpose: "unsubscribe",
    generation: 0,
    expires_at: "2099-01-01T00:00:00.000Z",
  });

  it("an old link's click, a preference form or an override after the erasure record nothing of her", async () => {
    h = await startSyncHarness(backend);
    await h.seedRe([individual(ADA, "Ada", "Lovelace")]);
    await h.sync();
    const [ada] = await h.store.contacts.findByMatchKey(ADA.toLowerCase());
    expect(
      await erasePerson(
        { store: h.store, config: h.config, connections: h.connections, now: h.now },
        { email: ADA, requested_by: "Operator" },
      ),
    ).toMatchObject({ ok: true, report: { status: "completed" } });
    const ledger = async () => (await eventsForContact(h.store, ada!.id)).length;
    const before = await ledger();

    // Each was let in before she was erased (its link checked, its page opened): it records nothing.
    const click = { ip: "203.0.113.9", user_agent: "Mail/2.0", token: "t" };
    expect(await recordOneClick(h.store, claimsOf(ada!.id), click, h.now(), h.config)).toEqual({
      recorded: "erased",
    });
    expect(
      await recordPreferences(
        h.store,
        h.config,
        ada!.id,
        { choices: new Set() },
        preferencePageAct({ ip: "203.0.113.9", wording: "Newsletter [x]" }),
        h.now(),
      ),
    ).toMatchObject({ erased: true, opt_outs: [] });
    const [direct] = await appendConsentEvents(h.store, [
      {
        kind: "opt_out",
        contact_id: ada!.id,
        channel: "email",
        scope: { kind: "global" },
        source: { system: "concord", connection: "links" },
        mechanism: "unsubscribe_link",
        actor: { kind: "contact" },
        occurred_at: h.now().toISOString(),
        observed_at: h.now().toISOString(),
        evidence: { ip: "203.0.113.9", source_record_id: "link:x" },
      },
    ]);
    expect(direct).toMatchObject({ kind: "rejected", code: "contact_erased" });
    expect(await ledger()).toBe(before);
    expect(await verifyLedger(h.store)).toMatchObject({ ok: true });
  });

  it.skipIf(backend.name !== "postgres")(
    "an override looked up before the erasure committed is refused once it commits, its words not kept",
    async () => {
      h = await startSyncHarness(backend);
      await h.seedRe([individual(ADA, "Ada", "Lovelace")]);
      await h.sync();
      const [ada] = await h.store.contacts.findByMatchKey(ADA.toLowerCase());
      const before = (await eventsForContact(h.store, ada!.id)).length;
      // An erasure between blanking her evidence (it holds the ledger's head) and its commit.
      const locked = gate();
      const commit = gate();
      const erasing = h.store.transaction(async (tx) => {
        await tx.consentEvents.lockHead();
        await tx.contacts.erase(ada!.id);
        locked.open();
        await commit.opened;
      });
      await locked.opened;
      const override = recordOperatorOverride(
        { store: h.store, config: h.config, now: h.now },
        {
          contact_id: ada!.id,
          scope: { kind: "global" },
          request_reference: "letter 17",
          request_text: "Ada Lovelace, 12 Example Street, asks for the newsletter again",
          requested_at: h.now().toISOString(),
          recorded_by: "J. Smith",
        },
      );
      // Either the override finished beside the open erasure (the defect), or it waits for the head.
      await Promise.race([override, untilBlocked(h.store.db, { row_lock_in: "consent_ledger_head" })]);
      commit.open();
      await erasing;
      expect(await override).toMatchObject({ ok: false, code: "contact_not_found" });
      expect((await eventsForContact(h.store, ada!.id)).length).toBe(before);
    },
  );
});
