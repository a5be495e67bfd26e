/**
 * Two pairs sharing one CRM, each creating CRM records from its platform (`create_in_crm`): a
 * person who signs up on both platforms is one constituent, however the pairs' runs overlap.
 */
import { afterEach, beforeEach, expect, it } from "vitest";
import type { ConnectorOperation } from "../connectors/connector";
import { syncPair, type SyncReport } from "./sync-pair";
import { explainContact } from "../explain/explain-contact";
import { gate } from "../../test/support/gate";
import { RE_LISTS, startSyncHarness, type SyncHarness } from "../../test/support/sync-harness";
import { describeOnBackends } from "../../test/support/store-backends";

describeOnBackends("pairs sharing a CRM", (backend) => {
  let h: SyncHarness;

  beforeEach(async () => {
    h = await startSyncHarness(backend, {
      // "re-cc" keeps the main account; the Appeals account is a pair of its own, "re-appeals",
      // whose Appeals list is mapped both ways. Both create CRM records from their sign-ups.
      configure: (raw) => {
        const pairs = raw["pairs"] as Record<string, any>[];
        const main = pairs[0]!;
        main["platforms"] = [{ connection: "cc-main" }];
        main["audiences"] = main["audiences"].filter((a: { platform: string }) => a.platform === "cc-main");
        main["policies"] = { create_in_crm: true };
        pairs.push({
          id: "re-appeals",
          crm: "re-nxt",
          platforms: [{ connection: "cc-appeals" }],
          audiences: [
            {
              crm_list: { id: RE_LISTS.appeals, name: "Appeal recipients" },
              platform: "cc-appeals",
              platform_list: { name: "Appeals" },
              direction: "both",
            },
          ],
          policies: { create_in_crm: true },
        });
      },
    });
  });
  afterEach(() => h.close());

  it("a person new on both platforms is created once in the CRM when both pairs' runs overlap", async () => {
    await h.seedCc(h.ccMain, [
      {
        email_address: { address: "sam@example.org", permission_to_send: "explicit" },
        first_name: "Sam",
        last_name: "Both",
        list_memberships: ["Events"],
      },
    ]);
    await h.seedCc(h.ccAppeals, [
      {
        email_address: { address: "sam@example.org", permission_to_send: "explicit" },
        first_name: "Sam",
        last_name: "Both",
        list_memberships: ["Appeals"],
      },
    ]);
    h.advance(1_000);

    // Each pair's writes to the CRM wait until both pairs have planned, so both plans create Sam.
    const planned = new Set<string>();
    const bothPlanned = gate();
    const creations: string[] = [];
    const re = h.connections.get("re-nxt")!;
    h.connections.set("re-nxt", {
      ...re,
      session: () => {
        const session = re.session();
        return {
          ...session,
          apply: async (ops: readonly ConnectorOperation[]) => {
            await bothPlanned.opened;
            for (const op of ops) if (op.kind === "create_contact") creations.push(op.email);
            return session.apply(ops);
          },
        };
      },
    });
    const run = (pairId: string): Promise<SyncReport> => {
      const pair = h.config.pairs.find((p) => p.id === pairId)!;
      return syncPair(
        {
          store: h.store,
          config: h.config,
          connections: h.connections,
          now: h.now,
          onStage: (stage) => {
            if (stage !== "execute") return;
            planned.add(pairId);
            if (planned.size === 2) bothPlanned.open();
          },
        },
        pair,
        { full: true },
      );
    };
    const reports = await Promise.all([run("re-cc"), run("re-appeals")]);

    for (const report of reports) {
      expect(report.status).toBe("succeeded");
      expect(
        report.plan?.operations.filter((o) => o.connection_id === "re-nxt" && o.kind === "create_contact"),
      ).toHaveLength(1);
    }
    // One creation reached Raiser's Edge NXT; the other run found Sam linked and sent nothing.
    expect(creations).toEqual(["sam@example.org"]);
    const holders = [...h.re.state.emails.values()].filter((e) => e.address === "sam@example.org");
    expect(holders).toHaveLength(1);
    const skipped = reports.map((r) => r.execution?.operations.skipped ?? 0);
    expect(skipped.sort()).toEqual([0, 1]);
    const [sam] = await h.store.contacts.findByMatchKey("sam@example.org");
    const links = (await h.store.links.forContact(sam!.id)).filter((l) => l.connection_id === "re-nxt");
    expect(links.map((l) => l.external_id)).toEqual([holders[0]!.constituent_id]);
    // The skipped creation keeps its reason, and explain shows it.
    const explained = await explainContact(h.store, h.config, "sam@example.org");
    if (explained.kind !== "found") throw new Error(`expected Sam explained, got ${explained.kind}`);
    const creates = explained.people
      .flatMap((p) => p.recent_operations)
      .filter((o) => o.kind === "create_contact" && o.target_connection === "re-nxt");
    expect(creates.map((o) => o.last_outcome?.message ?? null)).toContainEqual(
      expect.stringContaining("skipped (already_applied): Another run created this contact's record"),
    );
  });
});
