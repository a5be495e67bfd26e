/**
 * Concord's personal links in platform fields: a pair that names a Mailchimp merge field and a
 * Constant Contact custom field keeps each person's one-click URL and preference centre there, so
 * the campaigns those platforms send carry Concord's own links. The links stay the same from run to
 * run (nothing churns), follow a revocation, refill a field someone blanked, and work.
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
  TEST_KEY,
  type SyncHarness,
} from "../../test/support/sync-harness";
import {
  checkLink,
  linkSigner,
  readToken,
  recordOneClick,
  revokeLinks,
  type LinkSigner,
} from "./personal-links";

const CC_FIELD = "custom_field:4f6c6a52-8d2e-4c7a-9c1b-2a3e5d7f9b10";

describe("personal links written into platform fields", () => {
  let h: SyncHarness;
  let signer: LinkSigner;

  beforeEach(async () => {
    h = await startSyncHarness(sqliteBackend(), {
      mailchimp: true,
      configure: (raw) => {
        raw["server"] = { public_url: "https://concord.example.org" };
        for (const p of raw["pairs"][0].platforms as Record<string, unknown>[]) {
          if (p["connection"] === "mc")
            p["personal_links"] = { one_click_field: "UNSUBURL", preferences_field: "PREFSURL" };
          if (p["connection"] === "cc-main") p["personal_links"] = { one_click_field: CC_FIELD };
        }
      },
    });
    // The organisation's Mailchimp admin added the two audience fields the campaigns use.
    await post(h.mcOrigin!, "/__emulator/seed", {
      audience: {
        id: "a1b2c3d4e5",
        name: "Supporters",
        merge_fields: [
          { tag: "UNSUBURL", name: "Concord unsubscribe", type: "url" },
          { tag: "PREFSURL", name: "Concord preferences", type: "url" },
        ],
      },
    });
    const s = linkSigner(TEST_KEY, h.config);
    if (!s.ok) throw new Error(s.error);
    signer = s.value;
    const ids = await h.seedRe([
      individual("ada@example.org", "Ada", "Lovelace"),
      individual("bob@example.org", "Bob", "Byte"),
    ]);
    await addToReList(h, RE_LISTS.news, ids);
  });
  afterEach(async () => {
    await h.close();
  });

  const mcMember = async (email: string): Promise<Record<string, string>> => {
    const state = (await (await fetch(`${h.mcOrigin!}/__emulator/state`)).json()) as {
      audiences: { members: { email_address: string; merge_fields: Record<string, string> }[] }[];
    };
    return state.audiences[0]?.members.find((m) => m.email_address === email)?.merge_fields ?? {};
  };
  const ccField = (email: string): unknown =>
    (
      h.ccContact(h.ccMain, email)?.custom_fields as { custom_field_id: string; value: string }[] | undefined
    )?.find((f) => `custom_field:${f.custom_field_id}` === CC_FIELD)?.value;
  const contactOf = async (email: string) => (await h.store.contacts.findByMatchKey(email))[0]!.id;
  const tokenOf = (url: string): string => url.slice(url.lastIndexOf("/") + 1);

  it("fills the fields as contacts are imported, keeps them unchanged from run to run, and the link works", async () => {
    const first = await h.sync({}, { links: signer });
    expect(first.execution?.operations.failed).toBe(0);
    const ada = await contactOf("ada@example.org");

    const merge = await mcMember("ada@example.org");
    expect(merge["UNSUBURL"]).toMatch(
      /^https:\/\/concord\.example\.org\/l\/u\/[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{27}$/,
    );
    expect(merge["PREFSURL"]).toMatch(/^https:\/\/concord\.example\.org\/l\/p\//);
    // Constant Contact's import takes custom fields by name only: the next run writes the field by id.
    h.advance(60_000);
    const second = await h.sync({}, { links: signer });
    expect(second.plan?.operations.filter((o) => o.reason.code === "personal_links_changed")).toEqual([
      expect.objectContaining({ connection_id: "cc-main", contacts: 1 }),
      expect.objectContaining({ connection_id: "cc-main", contacts: 1 }),
    ]);
    expect(ccField("ada@example.org")).toBe(merge["UNSUBURL"]);
    // Each person's own link, signed for them.
    const claims = readToken(signer, tokenOf(merge["UNSUBURL"]!), h.now());
    expect(claims.ok && claims.value).toMatchObject({ contact_id: ada, purpose: "unsubscribe" });
    expect((await mcMember("bob@example.org"))["UNSUBURL"]).not.toBe(merge["UNSUBURL"]);

    // Later runs, a day apart, write nothing: the link is stable within its window.
    for (let day = 1; day <= 3; day += 1) {
      h.advance(86_400_000);
      const again = await h.sync({ full: true }, { links: signer });
      expect(again.plan?.operations.filter((o) => o.reason.code === "personal_links_changed")).toEqual([]);
    }

    // The campaign's link is a working one-click URL: the person's opt-out is recorded.
    const checked = await checkLink(h.store, signer, tokenOf(merge["UNSUBURL"]!), h.now());
    expect(checked.ok).toBe(true);
    if (checked.ok)
      await recordOneClick(h.store, checked.value, { token: tokenOf(merge["UNSUBURL"]!) }, h.now(), h.config);
    expect((await eventsForContact(h.store, ada)).some((e) => e.event.mechanism === "one_click_header")).toBe(
      true,
    );
  });

  it("a revocation or a blanked field is written again; without a signer nothing is written", async () => {
    const none = await h.sync();
    expect(none.execution?.operations.failed).toBe(0);
    expect((await mcMember("ada@example.org"))["UNSUBURL"] ?? "").toBe("");

    h.advance(60_000);
    await h.sync({ full: true }, { links: signer });
    const before = (await mcMember("ada@example.org"))["UNSUBURL"]!;
    expect(before).toMatch(/\/l\/u\//);

    await revokeLinks(h.store, await contactOf("ada@example.org"), h.now());
    h.advance(60_000);
    const revoked = await h.sync({ full: true }, { links: signer });
    expect(revoked.plan?.operations.filter((o) => o.reason.code === "personal_links_changed")).toEqual([
      expect.objectContaining({ connection_id: "cc-main" }),
      expect.objectContaining({ connection_id: "mc" }),
    ]);
    const after = (await mcMember("ada@example.org"))["UNSUBURL"]!;
    expect(after).not.toBe(before);
    expect((await checkLink(h.store, signer, tokenOf(before), h.now())).ok).toBe(false);
    expect((await checkLink(h.store, signer, tokenOf(after), h.now())).ok).toBe(true);
    expect(ccField("ada@example.org")).toBe(after);

    // The field is blanked in Mailchimp (the person's profile form): the next full read writes it back.
    await post(h.mcOrigin!, "/__emulator/act", {
      as: "contact",
      action: "update_profile",
      email: "bob@example.org",
      merge_fields: { UNSUBURL: "" },
    });
    expect((await mcMember("bob@example.org"))["UNSUBURL"] ?? "").toBe("");
    h.advance(60_000);
    await h.sync({ full: true }, { links: signer });
    expect((await mcMember("bob@example.org"))["UNSUBURL"]).toMatch(/\/l\/u\//);
  });
});
