/**
 * Consent that must never be lost or undone (DESIGN.md §2), over real HTTP against the emulators:
 * the holes a review of the Raiser's Edge NXT ⇄ Constant Contact pair found, each closed.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { foldChannelConsent } from "../core/consent/consent-state";
import { explainContact, formatExplanation } from "../explain/explain-contact";
import { eventsForContact } from "../ledger/consent-ledger";
import { pendingOptOuts } from "./watch-problems";
import { recordWebhookChanges } from "../pipeline/pull-connection";
import { reconcilePair } from "./reconcile";
import {
  addToReList,
  individual,
  RE_LISTS,
  sqliteBackend,
  startSyncHarness,
  type SyncHarness,
} from "../../test/support/sync-harness";

const sqlite = sqliteBackend();

describe("consent holes (SQLite)", () => {
  let h: SyncHarness;
  const re: Record<string, string> = {};

  beforeEach(async () => {
    h = await startSyncHarness(sqlite, {
      // The main account's own quota: small enough to spend in a test (a reserve of 10 for consent).
      configure: (raw) => {
        const main = (raw.connections as { id: string; limits?: unknown }[]).find((c) => c.id === "cc-main");
        if (main) main.limits = { daily_quota: 200 };
      },
    });
    const names = ["ada", "bob", "cy"];
    const ids = await h.seedRe(names.map((n) => individual(`${n}@example.org`, n, "Example")));
    for (const [i, n] of names.entries()) re[n] = ids[i] ?? "";
    await addToReList(h, RE_LISTS.news, ids);
    await addToReList(h, RE_LISTS.appeals, ids);
    const first = await h.sync();
    expect(first.execution?.operations.failed).toBe(0);
    h.advance(60_000);
  });
  afterEach(async () => {
    await h.close();
  });

  const permission = (emu: SyncHarness["ccMain"], name: string) =>
    h.ccContact(emu, `${name}@example.org`)?.email_address?.permission_to_send;
  const constituent = (name: string) => h.reGet(`/constituent/v1/constituents/${re[name] ?? ""}`);
  const contactOf = async (name: string) =>
    (await h.store.links.find("re-nxt", re[name] ?? ""))?.contact_id ?? "";
  const reconcile = () =>
    reconcilePair({ store: h.store, config: h.config, connections: h.connections, now: h.now }, h.pair, {
      pull: true,
    });

  it("1. a platform admin cannot undo a CRM opt-out: the opt-out is written back within one cycle and reported", async () => {
    await h.reAct({ action: "set_requests_no_email", constituent_id: re["ada"] });
    h.advance(1_000);
    await h.sync();
    expect(permission(h.ccMain, "ada")).toBe("unsubscribed");
    h.advance(60_000);

    await h.ccAct(h.ccMain, "resubscribe", "ada@example.org", "admin");
    expect(permission(h.ccMain, "ada")).not.toBe("unsubscribed");
    h.advance(1_000);
    // Before the next run a reconciliation already names the difference and its cause.
    const before = await reconcile();
    expect(before.differences.map((d) => [d.email, d.connection_id, d.kind, d.fixable])).toEqual([
      ["ada@example.org", "cc-main", "opt_out_missing", true],
    ]);
    expect(before.differences[0]?.cause).toMatch(/admin_edit in re-nxt.*by the account/);

    const run = await h.sync();
    expect(run.plan?.operations.map((o) => [o.connection_id, o.kind, o.reason.code])).toEqual([
      ["cc-main", "record_opt_out", "opt_out_to_platform"],
    ]);
    expect(permission(h.ccMain, "ada")).toBe("unsubscribed");
    expect((await constituent("ada")).requests_no_email).toBe(true);
    // The admin's act stays on record (nothing is lost), and the rules name the CRM's opt-out.
    const events = (await eventsForContact(h.store, await contactOf("ada"))).map((e) => e.event);
    expect(events.some((e) => e.kind === "opt_in" && e.source.connection === "cc-main")).toBe(true);
    h.advance(60_000);
    expect((await reconcile()).differences).toEqual([]);
  });

  it("a Requests No Email flag is one opt-out however often the constituent is saved after it; ticked again after a clear, a new one", async () => {
    const optOuts = async () =>
      (await eventsForContact(h.store, await contactOf("ada")))
        .map(({ event }) => event)
        .filter((e) => e.kind === "opt_out" && e.source.connection === "re-nxt")
        .map((e) => e.occurred_at);
    await h.reAct({ action: "set_requests_no_email", constituent_id: re["ada"] });
    h.advance(1_000);
    await h.sync();
    const first = await optOuts();
    expect(first).toHaveLength(1);
    // A later save of the constituent moves its date, not the flag's act.
    h.advance(3_600_000);
    await h.reAct({ action: "update_constituent", constituent_id: re["ada"], changes: { first: "Adeline" } });
    h.advance(1_000);
    await h.sync();
    expect(await optOuts()).toEqual(first);
    h.advance(60_000);
    await h.reAct({ action: "clear_requests_no_email", constituent_id: re["ada"] });
    h.advance(1_000);
    await h.sync();
    h.advance(60_000);
    await h.reAct({ action: "set_requests_no_email", constituent_id: re["ada"] });
    h.advance(1_000);
    await h.sync();
    expect(await optOuts()).toHaveLength(2);
  });

  it("Requests No Email ticked again after a clear is a new opt-out, though an older OptOut record still dates the flag", async () => {
    const reOptOuts = async () =>
      (await eventsForContact(h.store, await contactOf("ada")))
        .map(({ event }) => event)
        .filter((e) => e.kind === "opt_out" && e.source.connection === "re-nxt");
    // Ada unsubscribes in Constant Contact: Concord ticks the flag with its own OptOut record.
    await h.ccAct(h.ccMain, "unsubscribe", "ada@example.org");
    h.advance(1_000);
    await h.sync();
    expect((await constituent("ada")).requests_no_email).toBe(true);
    h.advance(60_000);
    await h.reAct({ action: "clear_requests_no_email", constituent_id: re["ada"] });
    h.advance(1_000);
    await h.sync();
    const before = (await reOptOuts()).length;
    // Ada confirms her resubscription; then, before Concord's next run, staff tick the flag again
    // (no consent record: the newest channel-wide one is still Concord's OptOut).
    h.advance(60_000);
    await h.ccAct(h.ccMain, "confirm_resubscribe", "ada@example.org");
    h.advance(60_000);
    await h.reAct({ action: "set_requests_no_email", constituent_id: re["ada"] });
    h.advance(1_000);
    await h.sync();
    const after = await reOptOuts();
    expect(after).toHaveLength(before + 1);
    expect(after.at(-1)).toMatchObject({ mechanism: "admin_edit", actor: { kind: "account" } });
    // Staff's opt-out is newer than Ada's confirmation: it stands and reaches the accounts.
    expect((await constituent("ada")).requests_no_email).toBe(true);
    expect(permission(h.ccMain, "ada")).toBe("unsubscribed");
    expect(permission(h.ccAppeals, "ada")).toBe("unsubscribed");
  });

  /** Staff tick Requests No Email for Ada, and Constant Contact refuses the next write once (400). */
  const optOutRefusedOnce = async () => {
    await h.reAct({ action: "set_requests_no_email", constituent_id: re["ada"] });
    h.ccMain.kit.faults.push({
      status: 400,
      count: 1,
      path_prefix: "/v3/contacts/",
      methods: ["PUT"],
      latency_ms: 0,
    });
    h.advance(1_000);
  };

  it("1. an opt-out a platform refused is tried again while it stays unapplied, an hour after the refusal", async () => {
    await optOutRefusedOnce();
    const refused = await h.sync();
    expect(refused.execution?.operations.failed).toBe(1);
    expect(refused.execution?.rejections.map((r) => [r.connection_id, r.code])).toEqual([
      ["cc-main", expect.any(String)],
    ]);
    expect(permission(h.ccMain, "ada")).not.toBe("unsubscribed");

    // Unapplied, it counts against the legal clocks (and the stuck-opt-out alert) as a waiting one does.
    expect((await pendingOptOuts(h.store)).map((p) => p.connection_id)).toEqual(["cc-main"]);

    // Within the hour a run leaves it (a lasting refusal costs one call an hour, not one a run)…
    h.advance(60_000);
    const soon = await h.sync();
    expect(soon.execution?.operations.failed ?? 0).toBe(0);
    expect(permission(h.ccMain, "ada")).not.toBe("unsubscribed");
    expect((await pendingOptOuts(h.store)).map((p) => p.connection_id)).toEqual(["cc-main"]);

    // …and after it the opt-out is tried again and applied: it was never given up.
    h.advance(3_600_000);
    const later = await h.sync();
    expect(later.execution?.operations.succeeded).toBeGreaterThanOrEqual(1);
    expect(permission(h.ccMain, "ada")).toBe("unsubscribed");
    expect(await pendingOptOuts(h.store)).toEqual([]);
  });

  it("1. a refused opt-out the platform shows applied by other means is no longer counted as unapplied", async () => {
    await optOutRefusedOnce();
    expect((await h.sync()).execution?.operations.failed).toBe(1);
    expect(await pendingOptOuts(h.store)).toHaveLength(1);
    // Ada unsubscribes in Constant Contact herself: the next plan makes no opt-out there, and the
    // refused one is superseded rather than left to count against the clocks for ever.
    h.advance(60_000);
    await h.ccAct(h.ccMain, "unsubscribe", "ada@example.org");
    h.advance(1_000);
    const run = await h.sync();
    expect(
      run.plan?.operations.filter((o) => o.kind === "record_opt_out" && o.connection_id === "cc-main"),
    ).toEqual([]);
    expect(await pendingOptOuts(h.store)).toEqual([]);
  });

  it("1. an opt-out on a duplicate CRM record of an address reaches the platforms holding that address", async () => {
    // Staff enter Ada a second time, asking for no email: two constituents, one address.
    const [dup] = await h.seedRe([
      individual("ada@example.org", "Ada", "Example", { requests_no_email: true }),
    ]);
    h.advance(1_000);
    const run = await h.sync();
    // The CRM says who is who: the duplicate is a contact of its own, and the address goes to review.
    const dupContact = (await h.store.links.find("re-nxt", dup ?? ""))?.contact_id;
    expect(dupContact).toBeDefined();
    expect(dupContact).not.toBe(await contactOf("ada"));
    expect((await h.store.reviewItems.list("open")).map((r) => r.kind)).toContain("ambiguous_identity");
    // The address Constant Contact mails (through Ada's first contact) is unsubscribed all the same.
    expect(run.plan?.operations.map((o) => [o.connection_id, o.kind])).toContainEqual([
      "cc-main",
      "record_opt_out",
    ]);
    expect(permission(h.ccMain, "ada")).toBe("unsubscribed");
    expect(permission(h.ccMain, "bob")).not.toBe("unsubscribed");
    const first = (await eventsForContact(h.store, await contactOf("ada"))).map((e) => e.event);
    expect(first.filter((e) => e.kind === "opt_out")).toMatchObject([
      {
        source: { connection: "re-nxt" },
        evidence: { source_record_id: expect.stringContaining(dup ?? "") },
      },
    ]);

    // A duplicate that ends (marked deceased) is about that person, not the address: Bob's first
    // record keeps receiving.
    const [bobDup] = await h.seedRe([individual("bob@example.org", "Bob", "Example")]);
    h.advance(1_000);
    await h.sync();
    await h.reAct({ action: "update_constituent", constituent_id: bobDup, changes: { deceased: true } });
    h.advance(1_000);
    await h.sync();
    expect(permission(h.ccMain, "bob")).not.toBe("unsubscribed");
  });

  it("1. an admin may still undo their own unsubscribe after Concord copied it into the CRM", async () => {
    await h.ccAct(h.ccMain, "unsubscribe", "bob@example.org", "admin");
    h.advance(1_000);
    await h.sync();
    expect((await constituent("bob")).requests_no_email).toBe(true);
    h.advance(60_000);
    await h.ccAct(h.ccMain, "resubscribe", "bob@example.org", "admin");
    h.advance(1_000);
    const run = await h.sync();
    // The copy in the CRM is Concord's, not an act of its own: nothing is written back to the platform.
    expect(
      run.plan?.operations.filter((o) => o.connection_id === "cc-main" && o.kind === "record_opt_out"),
    ).toEqual([]);
    expect(permission(h.ccMain, "bob")).not.toBe("unsubscribed");
    // And the rules find Bob sendable again: the account undid its own opt-out.
    const state = foldChannelConsent(
      (await eventsForContact(h.store, await contactOf("bob"))).map((e) => e.event),
      "email",
      { as_of: h.now().toISOString() },
    );
    expect(state.global).toMatchObject({ sendable: true, rule: "lifted_by_account_opt_in" });
  });

  it("2. a spam complaint in an account mapped to a topic is global; the ledger and explain say how each person left", async () => {
    // Move past the seed so the opt-outs below fall inside an incremental read.
    h.advance(3_600_000);
    await h.ccAct(h.ccAppeals, "spam_complaint", "ada@example.org");
    await h.ccAct(h.ccAppeals, "one_click_unsubscribe", "bob@example.org");
    await h.ccAct(h.ccMain, "unsubscribe", "cy@example.org");
    h.advance(1_000);
    const run = await h.sync();
    expect(run.execution?.operations.failed).toBe(0);

    // ada complained from the appeals account (mapped to the Appeals category): all email stops.
    expect((await constituent("ada")).requests_no_email).toBe(true);
    expect(permission(h.ccMain, "ada")).toBe("unsubscribed");
    // bob used the appeals campaign's one-click header: Appeals only.
    expect((await constituent("bob")).requests_no_email).toBe(false);
    expect(permission(h.ccMain, "bob")).not.toBe("unsubscribed");

    const optOut = async (name: string) =>
      (await eventsForContact(h.store, await contactOf(name)))
        .map((e) => e.event)
        .find(
          (e) => e.kind === "opt_out" && e.source.system === "constant-contact" && e.mechanism !== "sync",
        );
    expect(await optOut("ada")).toMatchObject({ mechanism: "unknown", scope: { kind: "global" } });
    expect(await optOut("bob")).toMatchObject({ mechanism: "unsubscribe_link", scope: { kind: "topic" } });
    expect(await optOut("cy")).toMatchObject({ mechanism: "unsubscribe_link", scope: { kind: "global" } });

    // "Why was this person unsubscribed?" — explain gives the how, and says what the API cannot tell.
    const text = (name: string) =>
      explainContact(h.store, h.config, `${name}@example.org`).then((r) => formatExplanation(r));
    expect(await text("ada")).toMatch(/spam complaint, or a request made to Constant Contact/);
    expect(await text("bob")).toMatch(/unsubscribe_link|unsubscribe link/);
    expect(await text("bob")).toMatch(/footer link or the one-click header/);

    // A later full read (a reconciliation) past the contact report's look-back sees less of the same
    // acts, and records no second opt-out for them.
    h.advance(40 * 86_400_000);
    const before = (await eventsForContact(h.store, await contactOf("bob"))).length;
    await reconcile();
    expect((await eventsForContact(h.store, await contactOf("bob"))).length).toBe(before);
  });

  it("3. a constituent marked deceased stops receiving everywhere also where the pair pushes no CRM opt-outs", async () => {
    h.pair.policies.propagate_crm_opt_outs = false;
    await h.reAct({ action: "set_requests_no_email", constituent_id: re["bob"] });
    await h.reAct({ action: "update_constituent", constituent_id: re["ada"], changes: { deceased: true } });
    h.advance(1_000);
    const run = await h.sync();
    expect(run.execution?.operations.failed).toBe(0);
    expect(permission(h.ccMain, "ada")).toBe("unsubscribed");
    expect(permission(h.ccAppeals, "ada")).toBe("unsubscribed");
    // A CRM opt-out is the pair's to push or not: not pushed.
    expect(permission(h.ccMain, "bob")).not.toBe("unsubscribed");
  });

  it("3. a constituent marked deceased or inactive, or deleted, stops receiving everywhere, and the ledger says why", async () => {
    await h.reAct({ action: "update_constituent", constituent_id: re["ada"], changes: { deceased: true } });
    await h.reAct({ action: "update_constituent", constituent_id: re["bob"], changes: { inactive: true } });
    await h.reAct({ action: "delete_constituent", constituent_id: re["cy"] });
    h.advance(1_000);
    // Raiser's Edge NXT announces a deletion by webhook; its re-read finds the constituent gone.
    const connection = h.connections.get("re-nxt");
    if (!connection) throw new Error("no re-nxt connection");
    await recordWebhookChanges({ store: h.store, connection, config: h.config, pair: h.pair, now: h.now }, [
      {
        event_id: "e1",
        type: "constituent.deleted",
        external_id: re["cy"] ?? "",
        occurred_at: h.now().toISOString(),
        change: "deleted",
      },
    ]);
    const run = await h.sync();
    expect(run.execution?.operations.failed).toBe(0);
    for (const name of ["ada", "bob", "cy"]) {
      expect(permission(h.ccMain, name), name).toBe("unsubscribed");
      expect(permission(h.ccAppeals, name), name).toBe("unsubscribed");
      // The account's act, not the person's: Constant Contact would let the account undo it.
      expect(h.ccContact(h.ccMain, `${name}@example.org`)?.email_address?.opt_out_source).toBe("Account");
    }
    const why = async (name: string) =>
      (await eventsForContact(h.store, await contactOf(name)))
        .map((e) => e.event)
        .find((e) => e.kind === "opt_out" && e.source.connection === "re-nxt");
    expect(await why("ada")).toMatchObject({ scope: { kind: "global" }, actor: { kind: "account" } });
    expect((await why("ada"))?.evidence.reason).toMatch(/marked deceased in re-nxt/);
    expect((await why("bob"))?.evidence.reason).toMatch(/marked inactive/);
    expect((await why("cy"))?.evidence.reason).toMatch(/deleted in re-nxt/);

    // Recorded once: a later full read adds no opt-out from the CRM and plans nothing.
    const fromCrm = async () => {
      let n = 0;
      for (const name of ["ada", "bob", "cy"])
        n += (await eventsForContact(h.store, await contactOf(name))).filter(
          (e) => e.event.source.connection === "re-nxt",
        ).length;
      return n;
    };
    const recorded = await fromCrm();
    h.advance(60_000);
    const again = await h.sync({ full: true });
    expect(again.plan?.operations).toEqual([]);
    expect(await fromCrm()).toBe(recorded);

    // Marked active again: a request to resubscribe, never a re-subscription.
    await h.reAct({ action: "update_constituent", constituent_id: re["bob"], changes: { inactive: false } });
    h.advance(1_000);
    const back = await h.sync();
    expect(permission(h.ccMain, "bob")).toBe("unsubscribed");
    expect(back.plan?.waiting.map((w) => w.connection_id).sort()).toEqual(["cc-appeals", "cc-main"]);
  });

  it("3. with the pair's ended_crm_records: remove, an ended person is unsubscribed, then taken out of every platform", async () => {
    (h.pair.policies as { ended_crm_records: string }).ended_crm_records = "remove";
    await h.reAct({ action: "update_constituent", constituent_id: re["ada"], changes: { deceased: true } });
    h.advance(1_000);
    const run = await h.sync();
    expect(run.execution?.operations.failed).toBe(0);
    const removed = run.plan?.operations.filter((o) => o.kind === "remove_contact") ?? [];
    expect(removed.map((o) => [o.connection_id, o.reason.code]).sort()).toEqual([
      ["cc-appeals", "crm_record_ended"],
      ["cc-main", "crm_record_ended"],
    ]);
    for (const emu of [h.ccMain, h.ccAppeals]) {
      const c = h.ccContact(emu, "ada@example.org");
      expect(c?.deleted_at).not.toBeNull();
      // Deleted, and still unsubscribed: imported again, they would not be sendable.
      expect(c?.email_address?.permission_to_send).toBe("unsubscribed");
    }
    // Nobody else is touched, and nothing is planned again.
    expect(h.ccContact(h.ccMain, "bob@example.org")?.deleted_at).toBeNull();
    h.advance(60_000);
    const again = await h.sync();
    expect(again.plan?.operations).toEqual([]);
  });

  it("4. a Do-Not-Contact solicit code in Raiser's Edge NXT is a global opt-out, by the connection's options", async () => {
    const coded = await h.reAct({
      action: "add_solicit_code",
      constituent_id: re["ada"],
      code: "Do not contact",
    });
    // A code that does not mean "no email" changes nothing.
    await h.reAct({ action: "add_solicit_code", constituent_id: re["bob"], code: "Do not phone" });
    h.advance(1_000);
    // A solicit code moves no modification date: the scheduled full read finds it.
    const run = await h.sync({ full: true });
    expect(run.execution?.operations.failed).toBe(0);
    expect(permission(h.ccMain, "ada")).toBe("unsubscribed");
    expect(permission(h.ccAppeals, "ada")).toBe("unsubscribed");
    expect(permission(h.ccMain, "bob")).not.toBe("unsubscribed");
    const events = (await eventsForContact(h.store, await contactOf("ada"))).map((e) => e.event);
    const optOut = events.find((e) => e.kind === "opt_out" && e.source.connection === "re-nxt");
    expect(optOut).toMatchObject({ scope: { kind: "global" }, actor: { kind: "account" } });
    expect(optOut?.evidence.reason).toMatch(/solicit code "Do not contact"/);

    // The code ends: a request to resubscribe, never a re-subscription.
    await h.reAct({
      action: "end_solicit_code",
      constituent_id: re["ada"],
      code: coded.solicit_code.solicit_code,
    });
    h.advance(60_000);
    const after = await h.sync({ full: true });
    expect(permission(h.ccMain, "ada")).toBe("unsubscribed");
    expect(after.plan?.waiting.map((w) => w.connection_id).sort()).toEqual(["cc-appeals", "cc-main"]);
  });

  it("5. CRM records are created from a platform only for list members it may email, and its sign-ups keep their lists", async () => {
    // The pair creates CRM records; "Events" is mapped both ways, "Newsletter" from the CRM only.
    (h.pair.policies as { create_in_crm: boolean }).create_in_crm = true;
    await h.seedCc(h.ccMain, [
      {
        email_address: { address: "signup@example.org", permission_to_send: "explicit" },
        first_name: "Sig",
        last_name: "Nup",
        // Also on the Newsletter list, which the CRM feeds and whose leavers are removed.
        list_memberships: ["Events", "Newsletter"],
      },
      {
        email_address: { address: "pending@example.org", permission_to_send: "pending_confirmation" },
        list_memberships: ["Events"],
      },
      { email_address: { address: "nolist@example.org", permission_to_send: "implicit" } },
      {
        email_address: { address: "newsonly@example.org", permission_to_send: "implicit" },
        list_memberships: ["Newsletter"],
      },
      { email_address: { address: "gone@example.org", permission_to_send: "unsubscribed" } },
    ]);
    h.advance(1_000);
    const run = await h.sync({ full: true });
    expect(run.plan?.operations.filter((o) => o.kind === "create_contact").map((o) => o.contacts)).toEqual([
      1,
    ]);
    const skippedFor = (email: string) =>
      run.plan?.skipped
        .filter((x) => x.connection_id === "re-nxt")
        .find((x) => x.contact_id === contactOfEmail.get(email))
        ?.reasons.map((r) => r.code);
    const contactOfEmail = new Map<string, string>();
    for (const email of [
      "pending@example.org",
      "nolist@example.org",
      "newsonly@example.org",
      "gone@example.org",
    ]) {
      const c = (await h.store.contacts.findByMatchKey(email))[0];
      if (c) contactOfEmail.set(email, c.id);
    }
    expect(skippedFor("pending@example.org")).toContain("no_consent_basis");
    expect(skippedFor("nolist@example.org")).toContain("not_in_synced_audience");
    expect(skippedFor("newsonly@example.org")).toContain("not_in_synced_audience");
    expect(skippedFor("gone@example.org")).toContain("opted_out");

    // The new constituent joins the CRM's list, and the sign-up stays in the platform's list.
    h.advance(60_000);
    await h.sync();
    h.advance(60_000);
    await h.sync();
    const signup = h.ccContact(h.ccMain, "signup@example.org");
    expect(signup?.list_memberships).toContain(h.ccLists.main.events);
    // Never in the CRM's newsletter list, so never the CRM's to take away.
    expect(signup?.list_memberships).toContain(h.ccLists.main.newsletter);
    const [signupContact] = await h.store.contacts.findByMatchKey("signup@example.org");
    const links = await h.store.db
      .selectFrom("links")
      .select(["connection_id", "external_id"])
      .where("contact_id", "=", signupContact!.id)
      .where("connection_id", "=", "re-nxt")
      .execute();
    expect(links).toHaveLength(1);
    const constituent = await h.reGet(`/constituent/v1/constituents/${links[0]!.external_id}`);
    expect(constituent).toMatchObject({ first: "Sig", last: "Nup" });
  });

  it("12. reading opt-outs draws on the consent reserve when ordinary reads may not, and the budget survives a restart", async () => {
    // Ordinary work spends the main account's day down to the consent reserve.
    const budget = () => h.connections.get("cc-main")!.budget;
    for (;;) {
      const slot = await budget().acquire("read");
      if (!slot.ok) break;
      slot.value();
    }
    const spent = budget().usage();
    expect(spent.remaining).toBe(10);

    // A restart forgets nothing: the quota spent stays spent.
    await (budget() as { flush?: () => Promise<void> }).flush?.();
    h.reopen();
    await (budget() as { flush?: () => Promise<void> }).flush?.();
    expect(budget().usage()).toMatchObject({ used_today: spent.used_today, remaining: 10 });

    await h.ccAct(h.ccMain, "unsubscribe", "ada@example.org");
    h.advance(1_000);
    const run = await h.sync();
    // The read of everything else waits for tomorrow; the opt-out was read and carried all the same.
    const pull = run.pulls.find((p) => p.connection_id === "cc-main");
    expect(pull?.error?.code).toBe("quota_exceeded");
    expect((await constituent("ada")).requests_no_email).toBe(true);
    expect(permission(h.ccAppeals, "ada")).toBe("unsubscribed");
  });
});
