/**
 * Every skip reason a run reports comes from a real path (docs/sync.md): a Do-Not-Contact flag in
 * the CRM, an address a platform found undeliverable, an address a platform refused for good (and
 * the pair's top-level-domain rule that predicts it), each over the emulators.
 */
import { afterEach, describe, expect, it } from "vitest";
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
const AUDIENCE = "a1b2c3d4e5";

describe("skip reasons, each from a real path (SQLite)", () => {
  let h: SyncHarness;
  afterEach(async () => {
    await h.close();
  });

  const reasonsFor = (report: Awaited<ReturnType<SyncHarness["sync"]>>, connection: string) =>
    report.plan?.skipped.filter((s) => s.connection_id === connection).flatMap((s) => s.reasons) ?? [];

  it("do_not_contact: a Do-Not-Contact solicit code in the CRM", async () => {
    h = await startSyncHarness(sqlite);
    const [ada, bob] = await h.seedRe(
      ["ada", "bob"].map((n) => individual(`${n}@example.org`, n, "Example")),
    );
    await addToReList(h, RE_LISTS.news, [ada!, bob!]);
    await h.reAct({ action: "add_solicit_code", constituent_id: ada, code: "Do not contact" });
    const report = await h.sync();
    expect(report.plan?.counts.skipped["cc-main"]).toMatchObject({ do_not_contact: 1, opted_out: 1 });
    expect(h.ccContact(h.ccMain, "ada@example.org")).toBeUndefined();
    expect(h.ccContact(h.ccMain, "bob@example.org")).toBeDefined();
  });

  it("undeliverable: an address a platform cleaned after hard bounces is not added elsewhere", async () => {
    h = await startSyncHarness(sqlite, { mailchimp: true });
    const [ada] = await h.seedRe([individual("ada@example.org", "Ada", "Example")]);
    await addToReList(h, RE_LISTS.news, [ada!]);
    await h.sync();
    await post(h.mcOrigin!, "/__emulator/act", { as: "system", action: "bounce", email: "ada@example.org" });
    h.advance(60_000);
    // Ada joins the CRM's event invitations, which go to Constant Contact's "Events" list.
    await addToReList(h, RE_LISTS.events, [ada!]);
    h.advance(1_000);
    const report = await h.sync();
    expect(reasonsFor(report, "cc-main")).toContainEqual(
      expect.objectContaining({ code: "undeliverable", status: "cleaned" }),
    );
    const events = h.ccLists.main.events;
    expect(h.ccContact(h.ccMain, "ada@example.org")?.list_memberships).not.toContain(events);
  });

  it("rejected_by_platform: an address the platform refused is skipped with its reason, not retried every run; a new address is tried", async () => {
    h = await startSyncHarness(sqlite, { mailchimp: true });
    // Mailchimp forgot this address (deleted for good) before Concord came: it refuses to import it.
    const { api_key } = await post<{ api_key: string }>(h.mcOrigin!, "/__emulator/token", {});
    const mc = (method: string, path: string, body?: unknown) =>
      fetch(`${h.mcOrigin!}/3.0${path}`, {
        method,
        headers: {
          authorization: `Basic ${Buffer.from(`x:${api_key}`).toString("base64")}`,
          ...(body === undefined ? {} : { "content-type": "application/json" }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
    const added = (await (
      await mc("POST", `/lists/${AUDIENCE}/members`, {
        email_address: "gone@example.org",
        status: "subscribed",
      })
    ).json()) as { id: string };
    expect((await mc("POST", `/lists/${AUDIENCE}/members/${added.id}/actions/delete-permanent`)).status).toBe(
      204,
    );

    const [gone] = await h.seedRe([individual("gone@example.org", "Gone", "Example")]);
    await addToReList(h, RE_LISTS.news, [gone!]);
    const first = await h.sync();
    expect(first.execution?.rejections.map((r) => [r.connection_id, r.code])).toEqual([
      ["mc", "cannot_add_to_list"],
    ]);
    h.advance(60_000);
    const second = await h.sync();
    expect(second.plan?.operations.filter((o) => o.connection_id === "mc")).toEqual([]);
    expect(reasonsFor(second, "mc")).toContainEqual(
      expect.objectContaining({ code: "rejected_by_platform", platform_code: "cannot_add_to_list" }),
    );
    // Constant Contact took the same person: the refusal is Mailchimp's alone.
    expect(h.ccContact(h.ccMain, "gone@example.org")).toBeDefined();

    // A new address is tried again.
    await h.reAct({ action: "change_primary_email", constituent_id: gone, new_address: "back@example.org" });
    h.advance(1_000);
    const third = await h.sync();
    expect(third.plan?.operations.some((o) => o.connection_id === "mc" && o.kind === "upsert_contacts")).toBe(
      true,
    );
  });

  it("rejected_by_platform: the pair's top-level-domain rule skips what the platform would refuse (off by default)", async () => {
    h = await startSyncHarness(sqlite, {
      configure: (raw) => {
        const platforms = (
          raw.pairs as { platforms: { connection: string; max_tld_length?: number }[] }[]
        )[0]!.platforms;
        platforms.find((p) => p.connection === "cc-main")!.max_tld_length = 3;
      },
    });
    const ids = await h.seedRe([
      individual("ada@example.guru", "Ada", "Example"),
      individual("bob@example.org", "Bob", "Example"),
    ]);
    await addToReList(h, RE_LISTS.news, ids);
    await addToReList(h, RE_LISTS.appeals, ids);
    const report = await h.sync();
    expect(reasonsFor(report, "cc-main")).toEqual([
      expect.objectContaining({ code: "rejected_by_platform", platform_code: "tld_too_long" }),
    ]);
    expect(h.ccContact(h.ccMain, "ada@example.guru")).toBeUndefined();
    // The other account sets no rule: Ada goes there.
    expect(h.ccContact(h.ccAppeals, "ada@example.guru")).toBeDefined();
  });
});
