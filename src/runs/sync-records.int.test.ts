/**
 * Behaviours 5–8 over real HTTP against the emulators, on SQLite: email changes on either side,
 * opt-outs of records uploaded straight into Constant Contact, list membership both ways with delete
 * policies, and conflicts (field owners, ambiguous identity in the review queue).
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  addToReList,
  individual,
  RE_LISTS,
  sqliteBackend,
  startSyncHarness,
  type SyncHarness,
  type SyncHarnessOptions,
} from "../../test/support/sync-harness";

const sqlite = sqliteBackend();

describe("records, lists and conflicts (SQLite)", () => {
  let h: SyncHarness;
  const re: Record<string, string> = {};

  async function start(options: SyncHarnessOptions = {}, names = ["ada", "bob", "cy"]): Promise<void> {
    h = await startSyncHarness(sqlite, options);
    const ids = await h.seedRe(names.map((n) => individual(`${n}@example.org`, n, "Example")));
    for (const [i, n] of names.entries()) re[n] = ids[i] ?? "";
    await addToReList(h, RE_LISTS.news, ids);
    await addToReList(h, RE_LISTS.appeals, ids);
  }
  const firstSync = async (): Promise<void> => {
    const first = await h.sync();
    expect(first.execution?.rejections).toEqual([]);
    h.advance(60_000);
  };
  afterEach(async () => {
    await h.close();
  });

  const permission = (emu: SyncHarness["ccMain"], email: string) =>
    h.ccContact(emu, email)?.email_address?.permission_to_send;
  const addresses = (emu: SyncHarness["ccMain"]) =>
    [...emu.store.contacts.values()]
      .filter((c) => c.deleted_at === null)
      .map((c) => c.email_address?.address)
      .sort();

  describe("5. email changes", () => {
    beforeEach(() => start());

    it("a new primary email in Raiser's Edge NXT moves the Constant Contact contacts: no duplicate, the old address gone", async () => {
      await firstSync();
      const before = h.ccContact(h.ccMain, "ada@example.org")?.contact_id;
      await h.reAct({
        action: "change_primary_email",
        constituent_id: re["ada"],
        new_address: "ada.new@example.org",
      });
      h.advance(1_000);
      const report = await h.sync();
      expect(report.execution?.rejections).toEqual([]);
      for (const emu of [h.ccMain, h.ccAppeals]) {
        expect(addresses(emu)).toEqual(["ada.new@example.org", "bob@example.org", "cy@example.org"]);
        expect(h.ccContact(emu, "ada@example.org")).toBeUndefined();
      }
      expect(h.ccContact(h.ccMain, "ada.new@example.org")?.contact_id).toBe(before);
      h.advance(60_000);
      expect((await h.sync()).plan?.operations).toEqual([]);
    });

    it("an opted-out person's new address stays opted out", async () => {
      await firstSync();
      await h.ccAct(h.ccMain, "unsubscribe", "bob@example.org");
      h.advance(1_000);
      await h.sync();
      h.advance(60_000);
      await h.reAct({
        action: "change_primary_email",
        constituent_id: re["bob"],
        new_address: "bob.new@example.org",
      });
      h.advance(1_000);
      await h.sync();
      expect(permission(h.ccMain, "bob.new@example.org")).toBe("unsubscribed");
      expect(permission(h.ccAppeals, "bob.new@example.org")).toBe("unsubscribed");
      expect(h.ccContact(h.ccMain, "bob@example.org")).toBeUndefined();
      expect((await h.reGet(`/constituent/v1/constituents/${re["bob"] ?? ""}`)).requests_no_email).toBe(true);
    });

    it("an address changed in Constant Contact moves Raiser's Edge NXT and the other account", async () => {
      await firstSync();
      await h.ccAdmin(h.ccMain, "update", "cy@example.org", { fields: { email: "cy@new.example.org" } });
      h.advance(1_000);
      const report = await h.sync();
      expect(report.execution?.rejections).toEqual([]);
      const emails = (await h.reGet(`/constituent/v1/constituents/${re["cy"] ?? ""}/emailaddresses`)) as {
        value: { address: string; primary: boolean }[];
      };
      expect(emails.value.find((e) => e.primary)?.address).toBe("cy@new.example.org");
      expect(addresses(h.ccAppeals)).toContain("cy@new.example.org");
      expect(addresses(h.ccAppeals)).not.toContain("cy@example.org");
    });
  });

  describe("6. records uploaded straight into Constant Contact", () => {
    const uploadThenUnsubscribe = async (): Promise<void> => {
      // zed is in Raiser's Edge NXT but in no mapped list; someone uploaded him into the main account.
      const [zed] = await h.seedRe([individual("zed@example.org", "Zed", "Example")]);
      re["zed"] = zed ?? "";
      await h.seedCc(h.ccMain, [
        { email_address: { address: "zed@example.org", permission_to_send: "implicit" } },
      ]);
      await firstSync();
      await h.ccAct(h.ccMain, "unsubscribe", "zed@example.org");
      h.advance(1_000);
    };

    it("by default the opt-out is matched by address, applied to the constituent and reported", async () => {
      await start();
      await uploadThenUnsubscribe();
      const report = await h.sync();
      expect(report.plan?.unlinked_opt_outs).toEqual([
        expect.objectContaining({ connection_id: "cc-main", applied: true, scope: { kind: "global" } }),
      ]);
      expect((await h.reGet(`/constituent/v1/constituents/${re["zed"] ?? ""}`)).requests_no_email).toBe(true);
    });

    it("with report_only the constituent is left alone and the opt-out is reported on every run", async () => {
      await start({
        configure: (raw) => {
          raw["pairs"][0].policies = { unlinked_opt_outs: "report_only" };
        },
      });
      await uploadThenUnsubscribe();
      const report = await h.sync();
      expect(report.plan?.unlinked_opt_outs).toEqual([expect.objectContaining({ applied: false })]);
      expect((await h.reGet(`/constituent/v1/constituents/${re["zed"] ?? ""}`)).requests_no_email).toBe(
        false,
      );
      h.advance(60_000);
      expect((await h.sync()).plan?.unlinked_opt_outs).toHaveLength(1);
    });

    it("contacts Concord imported stay its own after a crash between the import and the read back", async () => {
      await start({
        configure: (raw) => {
          raw["pairs"][0].policies = { unlinked_opt_outs: "report_only" };
        },
      });
      // The process dies once the imports are sent, before the platforms are read back and linked.
      const crash = new Error("killed after the imports");
      await expect(
        h.sync(
          {},
          {
            onStage: (stage) => {
              if (stage === "link") throw crash;
            },
          },
        ),
      ).rejects.toBe(crash);
      expect(h.ccContact(h.ccMain, "ada@example.org")).toBeDefined();
      h.advance(60_000);
      // The next poll links the records by their address: they are Concord's, not uploads it matched.
      await h.sync();
      const ada = await h.store.links.find("re-nxt", re["ada"] ?? "");
      const links = await h.store.links.forContact(ada?.contact_id ?? "");
      expect(links.filter((l) => l.connection_id !== "re-nxt").map((l) => l.origin)).toEqual([
        "concord",
        "concord",
      ]);
      h.advance(60_000);
      await h.ccAct(h.ccMain, "unsubscribe", "ada@example.org");
      h.advance(1_000);
      const report = await h.sync();
      expect(report.plan?.unlinked_opt_outs).toEqual([]);
      expect((await h.reGet(`/constituent/v1/constituents/${re["ada"] ?? ""}`)).requests_no_email).toBe(true);
    });

    it("contacts Concord imported are its own: their opt-outs are not reported as unlinked", async () => {
      await start();
      await firstSync();
      await h.ccAct(h.ccMain, "unsubscribe", "ada@example.org");
      h.advance(1_000);
      const report = await h.sync();
      expect(report.plan?.unlinked_opt_outs).toEqual([]);
      expect((await h.reGet(`/constituent/v1/constituents/${re["ada"] ?? ""}`)).requests_no_email).toBe(true);
    });
  });

  describe("7. list membership", () => {
    beforeEach(() => start());

    it("follows each audience's direction and delete policy, and never deletes a contact", async () => {
      await addToReList(h, RE_LISTS.events, [re["ada"] ?? "", re["bob"] ?? ""]);
      await firstSync();
      const events = h.ccLists.main.events;
      const newsletter = h.ccLists.main.newsletter;
      const lists = (email: string) => h.ccContact(h.ccMain, email)?.list_memberships ?? [];
      expect(lists("ada@example.org")).toEqual(expect.arrayContaining([events, newsletter]));

      // Left the newsletter list in Raiser's Edge NXT (remove_membership): leaves the Constant Contact list.
      await h.reAct({ action: "remove_from_list", list_id: RE_LISTS.news, ids: [re["bob"]] });
      // Left the events list (delete_policy keep): stays on the Constant Contact list.
      await h.reAct({ action: "remove_from_list", list_id: RE_LISTS.events, ids: [re["ada"]] });
      // Joined the events list in Constant Contact (direction both): joins it in Raiser's Edge NXT.
      await h.ccAdmin(h.ccMain, "add_to_lists", "cy@example.org", { list_ids: [events] });
      h.advance(1_000);
      const report = await h.sync();
      expect(report.execution?.rejections).toEqual([]);
      expect(lists("bob@example.org")).not.toContain(newsletter);
      expect(h.ccContact(h.ccMain, "bob@example.org")?.deleted_at).toBeNull();
      expect(lists("ada@example.org")).toContain(events);
      const reEvents = (h.re.state.lists.get(RE_LISTS.events)?.ids ?? []).slice().sort();
      expect(reEvents).toEqual([re["bob"], re["cy"]].sort());
      h.advance(60_000);
      expect((await h.sync()).plan?.operations).toEqual([]);
    });
  });

  describe("8. conflicts", () => {
    beforeEach(() => start());

    it("a field changed on one side follows; changed on both, the owner (the CRM) wins; consent never rides the merge", async () => {
      await firstSync();
      const ccUpdate = (email: string, fields: Record<string, string>) =>
        h.ccAdmin(h.ccMain, "update", email, { fields });
      // Only the platform changed bob's first name: the CRM and the other account follow.
      await ccUpdate("bob@example.org", { first_name: "Robert" });
      // Both sides changed ada's first name: the owner (crm) decides.
      await ccUpdate("ada@example.org", { first_name: "Adelaide" });
      await h.reAct({ action: "update_constituent", constituent_id: re["ada"], changes: { first: "Ada" } });
      h.advance(1_000);
      const report = await h.sync();
      expect(report.execution?.rejections).toEqual([]);
      const first = async (name: string) =>
        (await h.reGet(`/constituent/v1/constituents/${re[name] ?? ""}`)).first as string;
      expect(await first("bob")).toBe("Robert");
      expect(h.ccContact(h.ccAppeals, "bob@example.org")?.fields["first_name"]).toBe("Robert");
      expect(await first("ada")).toBe("Ada");
      expect(h.ccContact(h.ccMain, "ada@example.org")?.fields["first_name"]).toBe("Ada");
      expect(report.plan?.operations.every((o) => o.kind === "update_contact")).toBe(true);
      h.advance(60_000);
      expect((await h.sync()).plan?.operations).toEqual([]);
    });

    it("an address two constituents share goes to the review queue, and nothing is guessed", async () => {
      await h.seedRe([
        individual("shared@example.org", "Pat", "One"),
        individual("shared@example.org", "Pat", "Two"),
      ]);
      await h.seedCc(h.ccMain, [
        { email_address: { address: "shared@example.org", permission_to_send: "implicit" } },
      ]);
      await firstSync();
      await h.ccAct(h.ccMain, "unsubscribe", "shared@example.org");
      h.advance(1_000);
      const run = await h.sync();
      const open = await h.store.reviewItems.list("open");
      expect(open.map((i) => i.kind)).toContain("ambiguous_identity");
      // The run's stored summary says what its read could not attribute to one person.
      const summary = (await h.store.runs.get(run.run_id))?.summary as { pulls: unknown[] } | undefined;
      expect(summary?.pulls).toContainEqual(
        expect.objectContaining({ connection_id: "cc-main", ambiguous_records: 1 }),
      );
      const shared = h.ccContact(h.ccMain, "shared@example.org");
      expect(await h.store.links.find("cc-main", shared?.contact_id ?? "")).toBeUndefined();
    });
  });
});
