/**
 * Behaviours 2–4 over real HTTP against the emulators, on SQLite: opt-outs from Constant Contact reach
 * Raiser's Edge NXT (global or per category, as the account is mapped), opt-outs from Raiser's Edge
 * reach the accounts they apply to, and an admin clearing the flag never re-subscribes anyone.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { eventsForContact } from "../ledger/consent-ledger";
import { reconcilePair } from "./reconcile";
import {
  addToReList,
  beforeEachApply,
  individual,
  post,
  RE_LISTS,
  sqliteBackend,
  startSyncHarness,
  type SyncHarness,
} from "../../test/support/sync-harness";

const sqlite = sqliteBackend();

describe("consent propagation (SQLite)", () => {
  let h: SyncHarness;
  const re: Record<string, string> = {};

  beforeEach(async () => {
    h = await startSyncHarness(sqlite);
    const names = ["ada", "bob", "cy", "dave", "emma", "fay"];
    const ids = await h.seedRe(names.map((n) => individual(`${n}@example.org`, n, "Example")));
    for (const [i, n] of names.entries()) re[n] = ids[i] ?? "";
    await addToReList(h, RE_LISTS.news, ids);
    await addToReList(h, RE_LISTS.appeals, ids);
    const first = await h.sync();
    expect(first.execution?.operations.failed).toBe(0);
    expect(h.ccMain.store.contacts.size).toBe(6);
    expect(h.ccAppeals.store.contacts.size).toBe(6);
    h.advance(60_000);
  });
  afterEach(async () => {
    await h.close();
  });

  const constituent = (name: string) => h.reGet(`/constituent/v1/constituents/${re[name] ?? ""}`);
  const consents = async (name: string) =>
    ((await h.reGet(`/commpref/v1/constituents/${re[name] ?? ""}/consents`)) as { value: any[] }).value;
  const permission = (emu: SyncHarness["ccMain"], name: string) =>
    h.ccContact(emu, `${name}@example.org`)?.email_address?.permission_to_send;
  const contactOf = async (name: string) =>
    (await h.store.links.find("re-nxt", re[name] ?? ""))?.contact_id ?? "";

  /** Moves the incremental read's window past the seeded records: someone else changes, twice, an hour apart. */
  const moveWindowPastSeed = async (): Promise<void> => {
    for (let i = 0; i < 2; i += 1) {
      h.advance(3_600_000);
      await h.reAct({
        action: "update_constituent",
        constituent_id: re["emma"],
        changes: { first: `emma${h.now().getTime()}` },
      });
      h.advance(1_000);
      await h.sync();
    }
  };

  it("2. an unsubscribe in Constant Contact reaches Raiser's Edge NXT: global from the unmapped account, the category from the mapped one", async () => {
    await moveWindowPastSeed();
    await h.ccAct(h.ccMain, "unsubscribe", "ada@example.org"); // footer link
    await h.ccAct(h.ccAppeals, "one_click_unsubscribe", "bob@example.org"); // the mail client's header
    // A spam complaint leaves no campaign opt-out in Constant Contact's contact report (QUIRKS.md):
    // it is kept global whichever account it came from.
    await h.ccAct(h.ccMain, "spam_complaint", "cy@example.org");
    h.advance(1_000);

    const report = await h.sync();
    expect(report.execution?.operations.failed).toBe(0);

    // ada: the main account is not mapped to a category, so her unsubscribe is global.
    expect((await constituent("ada")).requests_no_email).toBe(true);
    expect(permission(h.ccAppeals, "ada")).toBe("unsubscribed");
    // Her own unsubscribe, carried as hers: the appeals account cannot re-add her (rule 4).
    expect(h.ccContact(h.ccAppeals, "ada@example.org")?.update_source).toBe("Contact");
    expect(h.ccContact(h.ccAppeals, "ada@example.org")?.email_address?.opt_out_source).toBe("Contact");

    // bob: the appeals account is the Appeals category; he stays sendable for everything else.
    expect((await constituent("bob")).requests_no_email).toBe(false);
    const bobConsents = await consents("bob");
    expect(bobConsents.filter((c) => c.category === "Appeals").at(-1)).toMatchObject({
      constituent_consent_response: "OptOut",
    });
    expect(permission(h.ccMain, "bob")).not.toBe("unsubscribed");

    // cy: a spam complaint is a global opt-out.
    expect(permission(h.ccMain, "cy")).toBe("unsubscribed");
    expect(permission(h.ccAppeals, "cy")).toBe("unsubscribed");
    expect((await constituent("cy")).requests_no_email).toBe(true);

    // The ledger keeps who, how, when and the evidence.
    const adaEvents = (await eventsForContact(h.store, await contactOf("ada"))).map((e) => e.event);
    const optOut = adaEvents.find((e) => e.kind === "opt_out");
    expect(optOut).toMatchObject({
      scope: { kind: "global" },
      actor: { kind: "contact" },
      source: { system: "constant-contact", connection: "cc-main" },
    });
    expect(optOut?.evidence.payload_sha256).toMatch(/^[0-9a-f]{64}$/);

    // The written records are outside the incremental read's window, and a consent record moves no
    // modification date in Raiser's Edge NXT: only reading them back after the write stops them from
    // being planned again at every run.
    for (let i = 0; i < 2; i += 1) {
      h.advance(60_000);
      const again = await h.sync();
      expect(again.plan?.operations.filter((o) => o.priority === "consent")).toEqual([]);
    }
  });

  it("an opt-out Raiser's Edge NXT refused because its credentials were revoked waits, and lands once the connection is authorised again", async () => {
    await moveWindowPastSeed();
    await post(h.re.baseUrl, "/__emulator/oauth/revoke", {}); // someone disconnected the app
    await h.ccAct(h.ccMain, "unsubscribe", "ada@example.org");
    h.advance(1_000);
    const refused = await h.sync();
    expect(refused.execution?.operations.failed).toBe(0);
    const kept = await h.store.db
      .selectFrom("operations")
      .innerJoin("outcomes", "outcomes.operation_id", "operations.id")
      .select(["operations.status", "outcomes.status as outcome", "outcomes.detail_json"])
      .where("operations.kind", "=", "record_opt_out")
      .where("operations.target_connection", "=", "re-nxt")
      .execute();
    expect(kept.map((o) => [o.status, o.outcome])).toEqual([["pending", "retry"]]);
    expect(kept[0]?.detail_json).toContain("auth_invalid");
    expect((await h.store.health.get("re-nxt"))?.status).toBe("broken");
    expect((await constituent("ada")).requests_no_email).toBe(false);

    // The operator connects the app again: the kept opt-out goes out at the next run.
    await h.storeRefreshToken("re-nxt");
    h.reopen();
    h.advance(60_000);
    const renewed = await h.sync();
    expect(renewed.execution?.operations.failed).toBe(0);
    expect((await constituent("ada")).requests_no_email).toBe(true);
  });

  it("3. an opt-out in Raiser's Edge NXT reaches the accounts it applies to, as the account's act", async () => {
    await h.reAct({ action: "set_requests_no_email", constituent_id: re["dave"] });
    await h.reAct({ action: "set_do_not_email", constituent_id: re["emma"] });
    await h.reAct({
      action: "add_consent",
      constituent_id: re["fay"],
      category: "Appeals",
      response: "OptOut",
    });
    h.advance(1_000);

    const report = await h.sync();
    expect(report.execution?.operations.failed).toBe(0);
    for (const name of ["dave", "emma"]) {
      expect(permission(h.ccMain, name)).toBe("unsubscribed");
      expect(permission(h.ccAppeals, name)).toBe("unsubscribed");
      expect(h.ccContact(h.ccMain, `${name}@example.org`)?.update_source).toBe("Account");
    }
    // A category opt-out touches only the account mapped to that category.
    expect(permission(h.ccAppeals, "fay")).toBe("unsubscribed");
    expect(permission(h.ccMain, "fay")).not.toBe("unsubscribed");
  });

  it("an opt-out reaches a contact deleted in Constant Contact, which keeps it and could revive it subscribed; it stays deleted", async () => {
    await h.ccAct(h.ccMain, "delete", "dave@example.org", "admin");
    h.advance(1_000);
    await h.sync();
    expect(h.ccContact(h.ccMain, "dave@example.org")?.deleted_at).toEqual(expect.any(String));
    h.advance(60_000);
    await h.reAct({ action: "set_requests_no_email", constituent_id: re["dave"] });
    h.advance(1_000);

    const report = await h.sync();
    expect(report.execution?.operations.failed).toBe(0);
    const dave = h.ccContact(h.ccMain, "dave@example.org");
    expect(dave?.email_address?.permission_to_send).toBe("unsubscribed");
    expect(dave?.deleted_at).toEqual(expect.any(String));
    // An import that revives it now finds it unsubscribed; and nothing more is planned for it.
    h.advance(60_000);
    const again = await h.sync();
    expect(again.plan?.operations.filter((o) => o.connection_id === "cc-main")).toEqual([]);
  });

  it("4. an admin clearing the flag re-subscribes no one: one confirmation email, then the person's own confirmation", async () => {
    await h.reAct({ action: "set_requests_no_email", constituent_id: re["dave"] });
    h.advance(1_000);
    await h.sync();
    expect(permission(h.ccMain, "dave")).toBe("unsubscribed");
    h.advance(60_000);

    await h.reAct({ action: "clear_requests_no_email", constituent_id: re["dave"] });
    h.advance(1_000);
    const cleared = await h.sync();
    expect(permission(h.ccMain, "dave")).toBe("unsubscribed");
    expect(cleared.plan?.waiting.map((w) => w.connection_id).sort()).toEqual(["cc-appeals", "cc-main"]);
    expect(cleared.plan?.waiting.every((w) => w.requested_now)).toBe(true);
    const mails = () => h.ccMain.store.confirmationEmails.filter((m) => m.email === "dave@example.org");
    expect(mails()).toHaveLength(1);
    const events = (await eventsForContact(h.store, await contactOf("dave"))).map((e) => e.event);
    expect(events.some((e) => e.kind === "resubscribe_requested")).toBe(true);

    // Asked once: the next runs report the contact as waiting and send nothing.
    h.advance(60_000);
    const waiting = await h.sync();
    expect(waiting.plan?.waiting.map((w) => w.requested_now)).toEqual([false, false]);
    expect(waiting.plan?.operations).toEqual([]);
    expect(mails()).toHaveLength(1);
    expect(permission(h.ccMain, "dave")).toBe("unsubscribed");
    // A reconciliation names the wait, and there is nothing to fix: only the person can end it.
    const reconciled = await reconcilePair(
      { store: h.store, config: h.config, connections: h.connections, now: h.now },
      h.pair,
      { pull: false },
    );
    expect(reconciled.contacts_compared).toBe(6);
    expect(reconciled.opt_outs_by_connection).toEqual({ "re-nxt": 0, "cc-main": 1, "cc-appeals": 1 });
    expect(reconciled.differences.map((d) => [d.email, d.connection_id, d.kind, d.fixable])).toEqual([
      ["dave@example.org", "cc-appeals", "waiting_for_person", false],
      ["dave@example.org", "cc-main", "waiting_for_person", false],
    ]);

    // The person confirms: sendable again, and Raiser's Edge NXT gets an opt-in with that provenance.
    await h.ccAct(h.ccMain, "confirm_resubscribe", "dave@example.org");
    h.advance(1_000);
    const confirmed = await h.sync();
    expect(confirmed.execution?.rejections).toEqual([]);
    expect(permission(h.ccMain, "dave")).toBe("explicit");
    const daveConsents = await consents("dave");
    expect(daveConsents.at(-1)).toMatchObject({ constituent_consent_response: "OptIn" });
    expect(JSON.stringify(daveConsents.at(-1))).toMatch(/cc-main|Constant Contact/i);
  });

  it("4. the person's opt-in never clears an opt-out staff made in Raiser's Edge NXT after the plan read the constituent", async () => {
    await h.reAct({ action: "set_requests_no_email", constituent_id: re["dave"] });
    h.advance(1_000);
    await h.sync();
    h.advance(60_000);
    await h.reAct({ action: "clear_requests_no_email", constituent_id: re["dave"] });
    h.advance(1_000);
    await h.sync();
    await h.ccAct(h.ccMain, "confirm_resubscribe", "dave@example.org");
    h.advance(1_000);
    const consentsBefore = (await consents("dave")).length;

    // The plan reads the flag cleared and plans the person's opt-in for Raiser's Edge NXT; before
    // it is written, staff tick Requests No Email again (the person phoned to opt out, say).
    let ticked = false;
    beforeEachApply(h, "re-nxt", async () => {
      if (ticked) return;
      ticked = true;
      await h.reAct({ action: "set_requests_no_email", constituent_id: re["dave"] });
    });
    const confirmed = await h.sync();
    expect(ticked).toBe(true);
    const skipped = await h.store.db
      .selectFrom("operations")
      .innerJoin("outcomes", "outcomes.operation_id", "operations.id")
      .select(["operations.status", "outcomes.detail_json"])
      .where("operations.kind", "=", "record_opt_in")
      .where("operations.target_connection", "=", "re-nxt")
      .execute();
    expect(skipped.map((o) => o.status)).toEqual(["skipped"]);
    expect(skipped[0]?.detail_json).toContain("did not show when the opt-in was planned");
    expect(confirmed.execution?.operations.skipped).toBe(1);
    expect((await constituent("dave")).requests_no_email).toBe(true);
    expect(await consents("dave")).toHaveLength(consentsBefore);

    // The next run reads the staff's opt-out, newer than the person's confirmation: it stands, and
    // reaches both accounts as the account's act.
    h.advance(60_000);
    const next = await h.sync();
    expect(next.execution?.operations.failed ?? 0).toBe(0);
    expect((await constituent("dave")).requests_no_email).toBe(true);
    expect(permission(h.ccMain, "dave")).toBe("unsubscribed");
    expect(permission(h.ccAppeals, "dave")).toBe("unsubscribed");
  });
});
