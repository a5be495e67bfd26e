/**
 * The sync engine's acceptance check at size: 10,000 seeded constituents with realistic consent
 * (flags, category opt-outs, people without email, the deceased) and a Constant Contact account that
 * already holds unsubscribed people; one sync, then a full reconciliation reports zero differences.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { reconcilePair } from "./reconcile";
import {
  individual,
  RE_LISTS,
  sqliteBackend,
  startSyncHarness,
  type SyncHarness,
} from "../../test/support/sync-harness";

const N = 10_000;

describe("full reconciliation at 10,000 constituents (SQLite)", () => {
  let h: SyncHarness;

  beforeAll(async () => {
    h = await startSyncHarness(sqliteBackend(), {
      reRatePerSecond: 1_000_000,
      reDailyQuota: 100_000,
      // A full read costs about four calls per constituent (detail, addresses, consents, relationships):
      // 10,000 of them need the Partner tier's 100,000 calls a day, not the Customer tier's 25,000.
      configure: (raw) => {
        raw["connections"][0].limits = { daily_quota: 100_000 };
      },
    });
  }, 120_000);
  afterAll(async () => {
    await h.close();
  });

  it("reports zero differences after one sync", async () => {
    const people = Array.from({ length: N }, (_, i) => {
      const email = i % 50 === 7 ? null : `person${i}@example.org`;
      return individual(email, `Given${i}`, `Family${i}`, {
        ...(i % 20 === 3 ? { requests_no_email: true } : {}),
        ...(i % 97 === 11 ? { deceased: true } : {}),
        ...(i % 31 === 5
          ? {
              consents: [
                {
                  channel: "Email",
                  category: "Appeals",
                  constituent_consent_response: "OptOut",
                  consent_date: "2026-02-01T00:00:00Z",
                  source: "Phone",
                },
              ],
            }
          : {}),
      });
    });
    const ids: string[] = [];
    for (let i = 0; i < N; i += 2_000) ids.push(...(await h.seedRe(people.slice(i, i + 2_000))));
    await h.reAct({ action: "add_to_list", list_id: RE_LISTS.news, ids });
    await h.reAct({
      action: "add_to_list",
      list_id: RE_LISTS.appeals,
      ids: ids.filter((_, i) => i % 2 === 0),
    });
    // 300 people someone uploaded and who then unsubscribed in the main account before Concord ran.
    await h.seedCc(
      h.ccMain,
      Array.from({ length: 300 }, (_, k) => ({
        email_address: { address: `person${k * 13 + 1}@example.org`, permission_to_send: "unsubscribed" },
        opt_out_source: "Contact",
      })),
    );

    const started = Date.now();
    const sync = await h.sync();
    const syncMs = Date.now() - started;
    expect(sync.status).toBe("succeeded");
    expect(sync.execution?.rejections).toEqual([]);
    expect(sync.execution?.waiting).toEqual([]);

    h.advance(60_000);
    const t = Date.now();
    const report = await reconcilePair(
      { store: h.store, config: h.config, connections: h.connections, now: h.now },
      h.pair,
    );
    const reconcileMs = Date.now() - t;
    console.log(
      `10,000 constituents: first sync ${syncMs} ms, full reconciliation ${reconcileMs} ms; opted out per system ${JSON.stringify(report.opt_outs_by_connection)}`,
    );
    expect(report.status).toBe("succeeded");
    expect(report.contacts_compared).toBeGreaterThanOrEqual(N);
    expect(report.differences).toEqual([]);
    // The CRM now shows every opt-out: its own flags and category opt-outs, and the 300 unsubscribes
    // found in the main account (opted-out people are never imported, so the account keeps its 300).
    const optedOut = new Set<number>();
    for (let i = 0; i < N; i += 1) if (i % 20 === 3 || i % 31 === 5) optedOut.add(i);
    // (Unsubscribes of addresses no constituent has stay in the account: there is no one to apply them to.)
    for (let k = 0; k < 300; k += 1) if ((k * 13 + 1) % 50 !== 7) optedOut.add(k * 13 + 1);
    expect(report.opt_outs_by_connection).toEqual({
      "re-nxt": optedOut.size,
      "cc-main": 300,
      "cc-appeals": 0,
    });
    // A guard against a hang, not a speed check: beside other CPU-bound work this run took 560 s.
  }, 1_800_000);
});
