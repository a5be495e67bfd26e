/**
 * One CRM, two Constant Contact accounts and a Mailchimp audience in one pair: an opt-out made in
 * any of them reaches the other three in one cycle, and a Mailchimp group (interest) stands for the
 * same topic as the Constant Contact appeals account.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { explainContact, formatExplanation } from "../explain/explain-contact";
import { eventsForContact } from "../ledger/consent-ledger";
import {
  addToReList,
  individual,
  RE_LISTS,
  sqliteBackend,
  startSyncHarness,
  type SyncHarness,
} from "../../test/support/sync-harness";

type McState = {
  audiences: {
    members: {
      email_address: string;
      status: string;
      interests: Record<string, boolean>;
      tags: { name: string }[];
    }[];
    interests: { id: string; name: string }[];
  }[];
};

describe("fan-out across vendors: Raiser's Edge NXT, Constant Contact and Mailchimp in one pair (SQLite)", () => {
  let h: SyncHarness;
  const re: Record<string, string> = {};

  beforeEach(async () => {
    h = await startSyncHarness(sqliteBackend(), { mailchimp: true });
    const names = ["ada", "bob", "cy", "di"];
    const ids = await h.seedRe(names.map((n) => individual(`${n}@example.org`, n, "Example")));
    for (const [i, n] of names.entries()) re[n] = ids[i] ?? "";
    await addToReList(h, RE_LISTS.news, ids);
    await addToReList(h, RE_LISTS.appeals, ids);
    const first = await h.sync();
    expect(first.execution?.operations.failed, JSON.stringify(first.execution)).toBe(0);
    h.advance(60_000);
  });
  afterEach(async () => {
    await h.close();
  });

  const mc = async () => {
    const res = await fetch(`${h.mcOrigin!}/__emulator/state`);
    const state = (await res.json()) as McState;
    const audience = state.audiences[0]!;
    const appeals = audience.interests.find((i) => i.name === "Appeals")!.id;
    const member = (name: string) => audience.members.find((m) => m.email_address === `${name}@example.org`);
    return { member, appeals };
  };
  const mcAct = (body: Record<string, unknown>) =>
    fetch(`${h.mcOrigin!}/__emulator/act`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    }).then(async (r) => {
      if (!r.ok) throw new Error(await r.text());
    });
  const flagged = async (name: string) =>
    (await h.reGet(`/constituent/v1/constituents/${re[name] ?? ""}`)).requests_no_email as boolean;
  const ccPermission = (name: string) =>
    h.ccContact(h.ccMain, `${name}@example.org`)?.email_address?.permission_to_send;

  it("the first sync puts the CRM's newsletter readers in the Mailchimp audience, subscribed and tagged", async () => {
    const { member } = await mc();
    for (const n of ["ada", "bob", "cy", "di"]) {
      expect(member(n)?.status).toBe("subscribed");
      expect(member(n)?.tags.map((t) => t.name)).toEqual(["Newsletter"]);
    }
  });

  it("an unsubscribe in Mailchimp reaches the CRM and Constant Contact in one cycle", async () => {
    await mcAct({ as: "contact", action: "unsubscribe", email: "bob@example.org" });
    h.advance(1_000);
    const report = await h.sync();
    expect(report.execution?.operations.failed).toBe(0);
    expect(await flagged("bob")).toBe(true);
    expect(ccPermission("bob")).toBe("unsubscribed");
    expect(await flagged("ada")).toBe(false);
  });

  it("an unsubscribe in Mailchimp is one opt-out however often the member is edited after it", async () => {
    await mcAct({ as: "contact", action: "unsubscribe", email: "bob@example.org" });
    h.advance(1_000);
    await h.sync();
    const bob = (await h.store.links.find("re-nxt", re["bob"] ?? ""))?.contact_id ?? "";
    const optOuts = async () =>
      (await eventsForContact(h.store, bob))
        .map(({ event }) => event)
        .filter((e) => e.kind === "opt_out" && e.source.connection === "mc")
        .map((e) => e.occurred_at);
    const first = await optOuts();
    expect(first).toHaveLength(1);
    // An edit moves the member's last_changed, the only date Mailchimp gives the unsubscribe.
    h.advance(3_600_000);
    await mcAct({
      as: "contact",
      action: "update_profile",
      email: "bob@example.org",
      merge_fields: { FNAME: "Robert" },
    });
    h.advance(1_000);
    await h.sync({ full: true });
    expect(await optOuts()).toEqual(first);
  });

  it("an unsubscribe in Constant Contact and a CRM opt-out each reach Mailchimp in one cycle", async () => {
    await h.ccAct(h.ccMain, "unsubscribe", "cy@example.org");
    await h.reAct({ action: "set_requests_no_email", constituent_id: re["di"] });
    h.advance(1_000);
    const report = await h.sync();
    expect(report.execution?.operations.failed).toBe(0);
    const { member } = await mc();
    expect(member("cy")?.status).toBe("unsubscribed");
    expect(member("di")?.status).toBe("unsubscribed");
    expect(member("ada")?.status).toBe("subscribed");
  });

  it("a Mailchimp group and a Constant Contact account stand for one topic: leaving appeals leaves the group only", async () => {
    const before = await mc();
    expect(before.member("ada")?.interests[before.appeals]).toBe(true);
    await h.ccAct(h.ccAppeals, "unsubscribe", "ada@example.org");
    h.advance(1_000);
    const report = await h.sync();
    expect(report.execution?.operations.failed).toBe(0);
    const after = await mc();
    expect(after.member("ada")?.interests[after.appeals]).toBe(false);
    expect(after.member("ada")?.status).toBe("subscribed");
    expect(await flagged("ada")).toBe(false);
    expect(ccPermission("ada")).not.toBe("unsubscribed");
  });

  it("a CRM list rebuilt between two polls puts the person back in the mapped list Concord took them out of", async () => {
    const inNewsletter = () =>
      h.ccContact(h.ccMain, "cy@example.org")?.list_memberships?.includes(h.ccLists.main.newsletter);
    expect(inNewsletter()).toBe(true);
    await h.reAct({ action: "remove_from_list", list_id: RE_LISTS.news, ids: [re["cy"]] });
    h.advance(60_000);
    await h.sync();
    // The pair's delete policy takes Cy out of the Constant Contact list.
    expect(inNewsletter()).toBe(false);
    // The CRM's list is rebuilt with Cy in it before the next poll reads Constant Contact again.
    await addToReList(h, RE_LISTS.news, [re["cy"] ?? ""]);
    h.advance(60_000);
    const back = await h.sync();
    expect(back.execution?.operations.failed).toBe(0);
    expect(inNewsletter()).toBe(true);
  });

  it("someone who unticks the Appeals group on Mailchimp's own form stays out of it when the CRM's list is rebuilt; their own opt-in to appeals puts them back", async () => {
    const start = await mc();
    expect(start.member("bob")?.interests[start.appeals]).toBe(true);
    await mcAct({
      as: "contact",
      action: "update_profile",
      email: "bob@example.org",
      interests: { [start.appeals]: false },
    });
    h.advance(1_000);
    await h.sync();
    // The CRM's appeal list is rebuilt: Bob is dropped, then added again with everyone else.
    await h.reAct({ action: "remove_from_list", list_id: RE_LISTS.appeals, ids: [re["bob"]] });
    h.advance(60_000);
    await h.sync();
    await addToReList(h, RE_LISTS.appeals, [re["bob"] ?? ""]);
    h.advance(60_000);
    const rebuilt = await h.sync();
    expect(rebuilt.execution?.operations.failed).toBe(0);
    const held = await mc();
    expect(held.member("bob")?.interests[held.appeals]).toBe(false);
    expect(held.member("bob")?.status).toBe("subscribed");
    // Nothing about it is an opt-out: the other systems keep sending Bob appeals.
    expect(await flagged("bob")).toBe(false);
    // Explain says why the group stays unticked.
    const explained = await explainContact(h.store, h.config, "bob@example.org");
    if (explained.kind !== "found") throw new Error(explained.kind);
    const lines = explained.people[0]!.pairs[0]!.connections.filter((c) => c.left_list_since !== null);
    expect(lines.map((c) => [c.connection_id, c.scope.kind === "topic" ? c.scope.topic : "all"])).toEqual([
      ["mc", "appeals"],
    ]);
    expect(formatExplanation(explained)).toContain(
      "(left on the platform, or taken out for a topic opt-out)",
    );

    // Bob ticks appeals on the charity's web form, which the CRM records as his own act.
    h.advance(60_000);
    await h.reAct({
      action: "add_consent",
      constituent_id: re["bob"],
      category: "Appeals",
      response: "OptIn",
      consent: { source: "Web form" },
    });
    h.advance(60_000);
    // Consent records move no modification date in SKY: the scheduled full read finds them.
    const back = await h.sync({ full: true });
    expect(back.execution?.operations.failed).toBe(0);
    const after = await mc();
    expect(after.member("bob")?.interests[after.appeals]).toBe(true);
    // Once a read sees him in the group again, the leave is over.
    h.advance(60_000);
    await h.sync();
    const now = await explainContact(h.store, h.config, "bob@example.org");
    if (now.kind !== "found") throw new Error(now.kind);
    expect(now.people[0]!.pairs[0]!.connections.filter((c) => c.left_list_since !== null)).toEqual([]);
  });
});

describe("a Mailchimp topic named as the wrong kind of construct (SQLite)", () => {
  it("is refused, saying what the name is, rather than written to a tag or group it is not", async () => {
    // The audience's "Appeals" is a group; the config calls it a tag.
    const h = await startSyncHarness(sqliteBackend(), {
      mailchimp: true,
      configure: (raw) => {
        (raw["topics"] as { constructs: Record<string, unknown> }[])[0]!.constructs["mc"] = {
          type: "tag",
          name: "Appeals",
        };
      },
    });
    try {
      const [ada] = await h.seedRe([individual("ada@example.org", "Ada", "Example")]);
      await addToReList(h, RE_LISTS.appeals, [ada!]);
      const report = await h.sync();
      expect(report.status).toBe("failed");
      expect(report.error).toEqual({
        code: "list_not_found",
        message: expect.stringMatching(
          /^topics\[0\]\.constructs\.mc: no tag named “Appeals” in mc \(“Appeals” interest:\S+ is not a tag: name its construct's type as what it is\)\. Of that kind there: “Newsletter”\.$/,
        ),
      });
    } finally {
      await h.close();
    }
  });
});
