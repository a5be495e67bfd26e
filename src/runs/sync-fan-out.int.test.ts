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

/**
 * The people in the CRM, on its newsletter and appeal lists, synced once (nothing refused), and a
 * minute gone by: their constituent ids by name.
 */
async function seedAndSync(h: SyncHarness, names: readonly string[]): Promise<Record<string, string>> {
  const ids = await h.seedRe(names.map((n) => individual(`${n}@example.org`, n, "Example")));
  await addToReList(h, RE_LISTS.news, ids);
  await addToReList(h, RE_LISTS.appeals, ids);
  const first = await h.sync();
  expect(first.execution?.operations.failed, JSON.stringify(first.execution)).toBe(0);
  h.advance(60_000);
  return Object.fromEntries(names.map((n, i) => [n, ids[i] ?? ""]));
}

describe("fan-out across vendors: Raiser's Edge NXT, Constant Contact and Mailchimp in one pair (SQLite)", () => {
  let h: SyncHarness;
  const re: Record<string, string> = {};

  beforeEach(async () => {
    h = await startSyncHarness(sqliteBackend(), { mailchimp: true });
    const names = ["ada", "bob", "cy", "di"];
    Object.assign(re, await seedAndSync(h, names));
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

describe("a Mailchimp GDPR marketing permission standing for a topic (SQLite)", () => {
  let h: SyncHarness;
  const re: Record<string, string> = {};
  type GdprState = {
    audiences: {
      members: {
        email_address: string;
        status: string;
        marketing_permissions: { marketing_permission_id: string; text: string; enabled: boolean }[];
      }[];
    }[];
  };

  beforeEach(async () => {
    h = await startSyncHarness(sqliteBackend(), {
      mailchimp: true,
      // Appeals are sent by Mailchimp only to those who gave its "Email" permission.
      configure: (raw) => {
        (raw["topics"] as { constructs: Record<string, unknown> }[])[0]!.constructs["mc"] = {
          type: "marketing_permission",
          name: "Email",
        };
        const pair = (
          raw["pairs"] as { audiences: { platform: string; platform_list: { name: string } }[] }[]
        )[0]!;
        pair.audiences = pair.audiences.filter(
          (a) => !(a.platform === "mc" && a.platform_list.name === "Appeals"),
        );
      },
    });
    await post(h.mcOrigin!, "/__emulator/seed", {
      audience: { id: "a1b2c3d4e5", name: "Supporters", marketing_permissions: true },
    });
    const names = ["ada", "bob"];
    Object.assign(re, await seedAndSync(h, names));
  });
  afterEach(async () => {
    await h.close();
  });

  const post = async (origin: string, path: string, body: unknown) => {
    const r = await fetch(`${origin}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    if (!r.ok) throw new Error(await r.text());
    return r.json();
  };
  const mcState = async () => {
    const state = (await (await fetch(`${h.mcOrigin!}/__emulator/state`)).json()) as GdprState;
    return state.audiences[0]!;
  };
  const emailPermission = async (): Promise<string> => {
    const member = (await mcState()).members[0];
    const found = member?.marketing_permissions.find((p) => p.text === "Email");
    if (!found) throw new Error("no Email permission in the audience");
    return found.marketing_permission_id;
  };
  const given = async (name: string): Promise<boolean> => {
    const m = (await mcState()).members.find((x) => x.email_address === `${name}@example.org`);
    return m?.marketing_permissions.find((p) => p.text === "Email")?.enabled === true;
  };
  const setPermission = async (name: string, enabled: boolean, as: "contact" | "api") => {
    const id = await emailPermission();
    if (as === "contact")
      await post(h.mcOrigin!, "/__emulator/act", {
        as: "contact",
        action: "update_profile",
        email: `${name}@example.org`,
        marketing_permissions: [{ marketing_permission_id: id, enabled }],
      });
    else {
      // An account user ticking it through the API.
      const token = (await post(h.mcOrigin!, "/__emulator/token", {})) as { api_key: string };
      const r = await fetch(
        `${h.mcOrigin!}/3.0/lists/a1b2c3d4e5/members/${encodeURIComponent(`${name}@example.org`)}`,
        {
          method: "PATCH",
          headers: {
            authorization: `Basic ${Buffer.from(`staff:${token.api_key}`).toString("base64")}`,
            "content-type": "application/json",
          },
          body: JSON.stringify({ marketing_permissions: [{ marketing_permission_id: id, enabled }] }),
        },
      );
      if (!r.ok) throw new Error(await r.text());
    }
  };
  /** A consent record of the Appeals category added to the person's constituent in the CRM. */
  const appealsRecord = (name: string, response: "OptIn" | "OptOut", source: string) =>
    h.reAct({
      action: "add_consent",
      constituent_id: re[name],
      category: "Appeals",
      response,
      consent: { source },
    });
  const appealsConsent = (name: string): string | null => {
    const consents = h.re.state.listConsents(re[name] ?? "", {
      mostRecentOnly: false,
      channels: [],
      categories: [],
    }) as { category?: string; constituent_consent_response: string }[];
    return consents.filter((r) => r.category === "Appeals").at(-1)?.constituent_consent_response ?? null;
  };

  it("a permission withdrawn on Mailchimp is the topic's opt-out in every system; an account's tick after it is taken back", async () => {
    // Ada gives the permission on Mailchimp's form: no system is told anything.
    await setPermission("ada", true, "contact");
    h.advance(1_000);
    const seen = await h.sync();
    expect(seen.execution?.operations.failed).toBe(0);
    expect(await given("ada")).toBe(true);
    expect(appealsConsent("ada")).toBe(null);

    // She withdraws it: the CRM records her appeals opt-out, and the appeals account unsubscribes her.
    h.advance(60_000);
    await setPermission("ada", false, "contact");
    h.advance(1_000);
    const withdrawn = await h.sync();
    expect(withdrawn.execution?.operations.failed, JSON.stringify(withdrawn.execution)).toBe(0);
    expect(appealsConsent("ada")).toBe("OptOut");
    expect(h.ccContact(h.ccAppeals, "ada@example.org")?.email_address?.permission_to_send).toBe(
      "unsubscribed",
    );
    // Only the topic: all email still reaches her, in Mailchimp and the CRM.
    expect((await mcState()).members.find((m) => m.email_address === "ada@example.org")?.status).toBe(
      "subscribed",
    );
    expect((await h.reGet(`/constituent/v1/constituents/${re["ada"] ?? ""}`)).requests_no_email).toBe(false);
    // Bob never gave it: not giving is no opt-out, and nothing is written for him.
    expect(appealsConsent("bob")).toBe(null);
    expect(await given("bob")).toBe(false);
    const explained = await explainContact(h.store, h.config, "ada@example.org");
    if (explained.kind !== "found") throw new Error(explained.kind);
    const optOut = (await eventsForContact(h.store, explained.people[0]!.contact.id))
      .map(({ event }) => event)
      .find((e) => e.kind === "opt_out" && e.source.connection === "mc");
    expect(optOut).toMatchObject({
      scope: { kind: "topic", topic: "appeals" },
      actor: { kind: "contact" },
      mechanism: "unknown",
    });

    // An account user ticks it again through the API: no act of hers, so Concord takes it back.
    h.advance(60_000);
    await setPermission("ada", true, "api");
    h.advance(1_000);
    const ticked = await h.sync();
    expect(ticked.execution?.operations.failed).toBe(0);
    expect(await given("ada")).toBe(false);
    expect(appealsConsent("ada")).toBe("OptOut");
  });

  it("a withdrawal is seen against a snapshot stored before permissions were topics (keyed by id, unflagged)", async () => {
    await setPermission("ada", true, "contact");
    h.advance(1_000);
    await h.sync();
    // The snapshot as an earlier Concord stored it: the permission by its id, with no flag.
    const id = await emailPermission();
    const member = (await mcState()).members.find(
      (m) => m.email_address === "ada@example.org",
    ) as unknown as {
      contact_id: string;
    };
    const stored = await h.store.snapshots.get("mc", member.contact_id);
    if (stored === undefined) throw new Error("no snapshot of Ada's member");
    const payload = JSON.parse(JSON.stringify(stored.payload)) as {
      consent_state: { source: string; scope: { construct?: { id: string } }; requires_consent?: true }[];
    };
    for (const f of payload.consent_state)
      if (f.source === "marketing_permissions" && f.scope.construct?.id === "Email") {
        f.scope.construct.id = id;
        delete f.requires_consent;
      }
    await h.store.snapshots.put({
      connection_id: "mc",
      external_id: member.contact_id,
      content_hash: "before-permissions-were-topics",
      payload,
    });
    h.advance(60_000);
    await setPermission("ada", false, "contact");
    h.advance(1_000);
    const withdrawn = await h.sync();
    expect(withdrawn.execution?.operations.failed).toBe(0);
    expect(appealsConsent("ada")).toBe("OptOut");
  });

  it("Concord's own withdrawal for an account's opt-out, read back, is no opt-out of the person's", async () => {
    await setPermission("ada", true, "contact");
    h.advance(1_000);
    await h.sync();
    expect(await given("ada")).toBe(true);
    // An admin ticks "Requests No Email" in the CRM: an opt-out of all email the account made.
    h.advance(60_000);
    await h.reAct({ action: "set_requests_no_email", constituent_id: re["ada"] });
    h.advance(60_000);
    const out = await h.sync({ full: true });
    expect(out.execution?.operations.failed, JSON.stringify(out.execution)).toBe(0);
    expect(await given("ada")).toBe(false);
    // The next read sees the permission withdrawn: Concord's own write, not a new act.
    h.advance(60_000);
    await h.sync();
    const explained = await explainContact(h.store, h.config, "ada@example.org");
    if (explained.kind !== "found") throw new Error(explained.kind);
    const fromMc = (await eventsForContact(h.store, explained.people[0]!.contact.id))
      .map(({ event }) => event)
      .filter((e) => e.kind === "opt_out" && e.source.connection === "mc" && e.scope.kind === "topic");
    expect(fromMc).toEqual([]);
    expect(appealsConsent("ada")).toBe(null);
  });

  it("a topic opt-out made in the CRM withdraws the permission on Mailchimp, where it was given", async () => {
    await setPermission("bob", true, "contact");
    h.advance(1_000);
    await h.sync();
    expect(await given("bob")).toBe(true);
    h.advance(60_000);
    await appealsRecord("bob", "OptOut", "Phone call");
    h.advance(60_000);
    const out = await h.sync({ full: true });
    expect(out.execution?.operations.failed, JSON.stringify(out.execution)).toBe(0);
    expect(await given("bob")).toBe(false);
    expect((await mcState()).members.find((m) => m.email_address === "bob@example.org")?.status).toBe(
      "subscribed",
    );
    // Withdrawn is what Concord wanted: the next plan writes nothing more for it.
    h.advance(60_000);
    const quiet = await h.sync();
    expect(quiet.plan?.counts.operations["mc"] ?? {}).toEqual({});

    // Bob ticks appeals on the charity's web form, which the CRM records as his own act: Mailchimp
    // shows the permission given again.
    h.advance(60_000);
    await appealsRecord("bob", "OptIn", "Web form");
    h.advance(60_000);
    const back = await h.sync({ full: true });
    expect(back.execution?.operations.failed, JSON.stringify(back.execution)).toBe(0);
    expect(await given("bob")).toBe(true);
  });

  it("the person's opt-in older than a withdrawal Concord never read does not give the permission back", async () => {
    await appealsRecord("bob", "OptIn", "Web form");
    // Between two reads, Bob gives the permission on Mailchimp's form and withdraws it again.
    h.advance(60_000);
    await setPermission("bob", true, "contact");
    h.advance(60_000);
    await setPermission("bob", false, "contact");
    h.advance(60_000);
    const out = await h.sync({ full: true });
    expect(out.execution?.operations.failed, JSON.stringify(out.execution)).toBe(0);
    expect(await given("bob")).toBe(false);
    expect(out.plan?.counts.operations["mc"]?.record_opt_in).toBeUndefined();
  });

  it("an opt-in that is not the person's own gives no permission", async () => {
    // Neither gave it. An admin imports an appeals opt-in for Ada into the CRM: the account's
    // record, not her consent to appeals by email on Mailchimp. Staff note Bob's yes on a call,
    // with no written request to point to: a request for him to confirm, not his opt-in.
    await appealsRecord("ada", "OptIn", "Import");
    await appealsRecord("bob", "OptIn", "Phone call");
    h.advance(60_000);
    const out = await h.sync({ full: true });
    expect(out.execution?.operations.failed, JSON.stringify(out.execution)).toBe(0);
    expect(await given("ada")).toBe(false);
    expect(await given("bob")).toBe(false);
    expect(out.plan?.counts.operations["mc"]?.record_opt_in).toBeUndefined();
  });
});
