/**
 * A topic that stands for an organisation's own opt-out checkbox in the CRM (seed 001's "custom
 * opt-out field"): the Appeals topic is a Yes/No custom field in Raiser's Edge NXT and the whole
 * appeals account in Constant Contact. Opt-outs cross both ways within that topic only, and an
 * admin clearing the checkbox asks the person, never re-subscribes them.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { eventsForContact } from "../ledger/consent-ledger";
import {
  addToReList,
  individual,
  post,
  RE_LISTS,
  sqliteBackend,
  startSyncHarness,
  type SyncHarness,
} from "../../test/support/sync-harness";

const FIELD = "Appeals opt-out";

describe("a topic kept in a Yes/No custom field (SQLite)", () => {
  let h: SyncHarness;
  const re: Record<string, string> = {};

  beforeEach(async () => {
    h = await startSyncHarness(sqliteBackend(), {
      configure: (raw) => {
        raw["topics"][0].constructs["re-nxt"] = { type: "custom_field", name: FIELD };
      },
    });
    await post(h.re.baseUrl, "/__emulator/seed", {
      custom_field_categories: [
        { name: FIELD, type: "Boolean", one_per_record: true },
        { name: "Anniversary", type: "Date" },
      ],
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

  const field = async (name: string) =>
    (
      (await h.reGet(`/constituent/v1/constituents/${re[name] ?? ""}/customfields`)) as { value: any[] }
    ).value.find((f) => f.category === FIELD);
  const permission = (emu: SyncHarness["ccMain"], name: string) =>
    h.ccContact(emu, `${name}@example.org`)?.email_address?.permission_to_send;
  const contactOf = async (name: string) =>
    (await h.store.links.find("re-nxt", re[name] ?? ""))?.contact_id ?? "";

  it("an unsubscribe from the appeals account ticks the checkbox, and nothing else", async () => {
    await h.ccAct(h.ccAppeals, "unsubscribe", "bob@example.org");
    h.advance(1_000);
    const report = await h.sync();
    expect(report.execution?.operations.failed).toBe(0);

    expect(await field("bob")).toMatchObject({ value: true, comment: "[Concord] opt-out from cc-appeals" });
    const bob = await h.reGet(`/constituent/v1/constituents/${re["bob"] ?? ""}`);
    expect(bob.requests_no_email).toBe(false);
    const consents = (await h.reGet(`/commpref/v1/constituents/${re["bob"] ?? ""}/consents`)) as {
      value: unknown[];
    };
    expect(consents.value).toEqual([]);
    expect(permission(h.ccMain, "bob")).not.toBe("unsubscribed");

    // Read back as Concord's own write: nothing is planned again.
    for (let i = 0; i < 2; i += 1) {
      h.advance(60_000);
      const again = await h.sync();
      expect(again.plan?.operations.filter((o) => o.priority === "consent")).toEqual([]);
    }
  });

  it("an admin ticking the checkbox unsubscribes the person from the appeals account only", async () => {
    // The checkbox moves no modification date on the constituent: only the custom field read finds it.
    await h.reAct({ action: "set_custom_field", constituent_id: re["ada"], category: FIELD, value: true });
    h.advance(1_000);
    const report = await h.sync();
    expect(report.execution?.operations.failed).toBe(0);
    expect(permission(h.ccAppeals, "ada")).toBe("unsubscribed");
    expect(h.ccContact(h.ccAppeals, "ada@example.org")?.update_source).toBe("Account");
    expect(permission(h.ccMain, "ada")).not.toBe("unsubscribed");
    const events = (await eventsForContact(h.store, await contactOf("ada"))).map((e) => e.event);
    expect(events.find((e) => e.kind === "opt_out")).toMatchObject({
      scope: { kind: "topic", topic: "appeals" },
      actor: { kind: "account" },
      source: { connection: "re-nxt" },
    });
  });

  it("an admin clearing the checkbox re-subscribes no one: it is a request, the person is asked", async () => {
    await h.reAct({ action: "set_custom_field", constituent_id: re["cy"], category: FIELD, value: true });
    h.advance(1_000);
    await h.sync();
    expect(permission(h.ccAppeals, "cy")).toBe("unsubscribed");
    h.advance(60_000);

    await h.reAct({ action: "set_custom_field", constituent_id: re["cy"], category: FIELD, value: false });
    h.advance(1_000);
    const cleared = await h.sync();
    expect(permission(h.ccAppeals, "cy")).toBe("unsubscribed");
    expect(cleared.plan?.waiting.map((w) => w.connection_id)).toEqual(["cc-appeals"]);
    const events = (await eventsForContact(h.store, await contactOf("cy"))).map((e) => e.event);
    expect(events.filter((e) => e.kind === "resubscribe_requested")).toEqual([
      expect.objectContaining({ scope: { kind: "topic", topic: "appeals" }, actor: { kind: "account" } }),
    ]);
    // No opt-in after the opt-out (the ones before are the contacts' creation in Constant Contact).
    expect(events.slice(events.findIndex((e) => e.kind === "opt_out")).some((e) => e.kind === "opt_in")).toBe(
      false,
    );
  });
});
