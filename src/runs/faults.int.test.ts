/**
 * Every fault the emulators can inject, at every stage of a sync (docs/reliability.md keeps the
 * table): 429 storms, 5xx storms, calls that time out, truncated and garbage answers, at the CRM's
 * reads and writes and the platform's reads and writes; and access tokens expiring, credentials
 * revoked and daily quotas spent. The faulted run always ends (it never throws or hangs), and when
 * it does not succeed it says why (a pull error, waiting operations, an alert); once the fault is
 * gone (the operator reconnects a revoked account; the quota renews) one more run carries both
 * pending opt-outs, CRM to platform and platform to CRM, and leaves everyone else alone.
 */
import { afterEach, describe, expect, it } from "vitest";
import { verifyLedger } from "../ledger/verify-ledger";
import type { SyncReport } from "./sync-pair";
import {
  addToReList,
  individual,
  post,
  RE_LISTS,
  sqliteBackend,
  startSyncHarness,
  type SyncHarness,
  type SyncHarnessOptions,
} from "../../test/support/sync-harness";

type FaultSpec = {
  status?: number;
  count?: number;
  latency_ms?: number;
  body?: unknown;
  headers?: Record<string, string>;
};

/** Where a stage's calls go: the emulator, its path prefixes, and the methods. */
type Stage = { name: string; system: "re" | "cc"; prefixes: string[]; methods: string[] };

const STAGES: Stage[] = [
  {
    name: "CRM read",
    system: "re",
    prefixes: ["/constituent/v1", "/commpref/v1", "/list/v1"],
    methods: ["GET"],
  },
  {
    name: "CRM write",
    system: "re",
    prefixes: ["/constituent/v1", "/commpref/v1"],
    methods: ["POST", "PATCH", "PUT", "DELETE"],
  },
  { name: "platform read", system: "cc", prefixes: ["/v3/"], methods: ["GET"] },
  { name: "platform write", system: "cc", prefixes: ["/v3/"], methods: ["POST", "PUT", "PATCH", "DELETE"] },
];

const FAULTS: { name: string; spec: FaultSpec }[] = [
  { name: "429 storm", spec: { status: 429, count: 40, headers: { "retry-after": "2" } } },
  { name: "5xx storm", spec: { status: 503, count: 40 } },
  // Longer than the connection's request_timeout (300 ms here): the call fails as a network error.
  { name: "timeout", spec: { latency_ms: 1_500, count: 3 } },
  {
    name: "truncated body",
    spec: {
      status: 200,
      count: 3,
      body: '{"contacts":[{"contact_id":"',
      headers: { "content-type": "application/json" },
    },
  },
  {
    name: "garbage body",
    spec: {
      status: 200,
      count: 3,
      body: "<html><body>Service temporarily unavailable</body></html>",
      headers: { "content-type": "text/html" },
    },
  },
];

type World = { h: SyncHarness; ids: string[] };

async function world(options: SyncHarnessOptions = {}): Promise<World> {
  const h = await startSyncHarness(sqliteBackend(), {
    ...options,
    configure: (raw) => {
      for (const c of raw["connections"] as Record<string, any>[])
        c["limits"] = { ...(c["limits"] ?? {}), request_timeout: "300ms" };
      options.configure?.(raw);
    },
  });
  const ids = await h.seedRe(["p1", "p2", "p3"].map((n) => individual(`${n}@example.org`, n, "Example")));
  await addToReList(h, RE_LISTS.news, ids);
  const first = await h.sync();
  expect(first.status).toBe("succeeded");
  // Pending both ways: p1 leaves in Constant Contact, p2 in Raiser's Edge NXT; p3 stays.
  await h.ccAct(h.ccMain, "unsubscribe", "p1@example.org");
  await h.reAct({ action: "set_requests_no_email", constituent_id: ids[1] });
  h.advance(1_000);
  return { h, ids };
}

const faultAt = async (h: SyncHarness, stage: Stage, spec: FaultSpec): Promise<void> => {
  const base = stage.system === "re" ? h.re.baseUrl : h.ccMain.baseUrl;
  for (const path_prefix of stage.prefixes)
    await post(base, "/__emulator/faults", { ...spec, path_prefix, methods: stage.methods });
};

const clearFaults = (h: SyncHarness): void => {
  h.re.kit.faults.length = 0;
  h.ccMain.kit.faults.length = 0;
  h.ccAppeals.kit.faults.length = 0;
};

/** How a faulted run ended, in the table's words; a run that did not succeed must say why. */
function outcomeOf(report: SyncReport, h: SyncHarness): string {
  const pullErrors = [...report.pulls, ...report.relinks].flatMap((p) => (p.error ? [p.error.code] : []));
  const waiting = (report.execution?.waiting ?? []).map((w) => w.code);
  const alerts = h.alerts.filter((a) => a.status === "broken").map((a) => a.code);
  const parts = [
    report.status,
    ...(pullErrors.length > 0 ? [`pull: ${[...new Set(pullErrors)].join(", ")}`] : []),
    ...(waiting.length > 0 ? [`waiting: ${[...new Set(waiting)].join(", ")}`] : []),
    ...(report.error ? [`error: ${report.error.code}`] : []),
    ...(alerts.length > 0 ? [`alert: ${[...new Set(alerts)].join(", ")}`] : []),
  ];
  if (report.status !== "succeeded")
    expect(parts.length, `a run that did not succeed says why: ${JSON.stringify(report)}`).toBeGreaterThan(1);
  return parts.join("; ");
}

/** Once the fault is gone: both opt-outs everywhere, the bystander untouched, the ledger whole. */
async function expectNothingLost(w: World): Promise<void> {
  const { h, ids } = w;
  let report = await h.sync();
  // A run may need a second pass for what the first relinked (as after any outage).
  if ((report.execution?.waiting.length ?? 0) > 0 || report.status !== "succeeded") report = await h.sync();
  expect(report.status, JSON.stringify(report.pulls.map((p) => p.error))).toBe("succeeded");
  expect(h.re.state.constituents.get(ids[0] ?? "")?.requests_no_email).toBe(true);
  expect(h.ccContact(h.ccMain, "p2@example.org")?.email_address?.permission_to_send).toBe("unsubscribed");
  expect(h.ccContact(h.ccMain, "p1@example.org")?.email_address?.permission_to_send).toBe("unsubscribed");
  expect(h.re.state.constituents.get(ids[2] ?? "")?.requests_no_email).toBe(false);
  expect(h.ccContact(h.ccMain, "p3@example.org")?.email_address?.permission_to_send).toBe("implicit");
  expect((await verifyLedger(h.store)).ok).toBe(true);
}

const table: string[] = [];

describe("faults at every stage of a sync (SQLite, emulators over HTTP)", () => {
  let w: World | undefined;
  afterEach(async () => {
    await w?.h.close();
    w = undefined;
  });

  for (const stage of STAGES)
    for (const fault of FAULTS)
      it(`${fault.name} at the ${stage.name}: the run ends and no opt-out is lost`, async () => {
        w = await world();
        await faultAt(w.h, stage, fault.spec);
        const faulted = await w.h.sync();
        // The stage was reached: the emulator answered at least one call with the fault.
        const kit = stage.system === "re" ? w.h.re.kit : w.h.ccMain.kit;
        expect(kit.faults.some((f) => f.count < (fault.spec.count ?? 1))).toBe(true);
        table.push(`| ${fault.name} | ${stage.name} | ${outcomeOf(faulted, w.h)} |`);
        clearFaults(w.h);
        await expectNothingLost(w);
      });

  it("access tokens expired at the token stage: renewed on the way, nothing waits", async () => {
    w = await world();
    // A day and more: every access token is past its lifetime (Constant Contact's is 24 h).
    w.h.advance(25 * 3_600_000);
    const faulted = await w.h.sync();
    table.push(`| access token expired | token | ${outcomeOf(faulted, w.h)} |`);
    expect(faulted.status).toBe("succeeded");
    await expectNothingLost(w);
  });

  for (const [system, connection] of [
    ["re", "re-nxt"],
    ["cc", "cc-main"],
  ] as const)
    it(`credentials revoked at ${connection}: broken and alerted, its work waits, carried once reconnected`, async () => {
      w = await world();
      await post(system === "re" ? w.h.re.baseUrl : w.h.ccMain.baseUrl, "/__emulator/oauth/revoke", {});
      w.h.reopen(); // a new process: no access token in memory
      const faulted = await w.h.sync();
      table.push(`| credentials revoked | ${connection} (token) | ${outcomeOf(faulted, w.h)} |`);
      expect(w.h.alerts.filter((a) => a.status === "broken" && a.connection_id === connection)).toHaveLength(
        1,
      );
      expect((await w.h.store.health.get(connection))?.status).toBe("broken");
      await w.h.storeRefreshToken(connection);
      w.h.reopen();
      await expectNothingLost(w);
    });

  for (const stageName of ["CRM", "platform"] as const)
    it(`the ${stageName}'s daily quota spent: the run pauses, and the next day carries everything`, async () => {
      w = await world();
      // The vendor's own answer once the day's calls are spent, to every call until midnight UTC.
      const re = stageName === "CRM";
      await post(re ? w.h.re.baseUrl : w.h.ccMain.baseUrl, "/__emulator/faults", {
        status: re ? 403 : 429,
        count: 100_000,
        path_prefix: re ? "/" : "/v3/",
        body: re
          ? { statusCode: 403, message: "Out of call volume quota. Quota will be replenished in 10:00:00." }
          : { error_key: "quota_exceeded", error_message: "Limit Exceeded" },
        ...(re ? { headers: { "retry-after": "36000" } } : {}),
      });
      const faulted = await w.h.sync();
      table.push(`| daily quota spent | ${stageName} | ${outcomeOf(faulted, w.h)} |`);
      clearFaults(w.h);
      // The quota renews at midnight UTC: the next day's runs go on.
      w.h.advance(24 * 3_600_000);
      await expectNothingLost(w);
    });

  it("an opt-out whose answer cannot be read waits alone: the connection's other opt-outs go on", async () => {
    w = await world();
    const { h, ids } = w;
    // p3 unsubscribes in Constant Contact too; Raiser's Edge NXT answers every read of p1's consents
    // with a page that cannot be read, until the fault is gone.
    await h.ccAct(h.ccMain, "unsubscribe", "p3@example.org");
    h.advance(1_000);
    await post(h.re.baseUrl, "/__emulator/faults", {
      status: 200,
      count: 100_000,
      path_prefix: `/commpref/v1/constituents/${ids[0] ?? ""}`,
      body: "<html>gateway</html>",
      headers: { "content-type": "text/html" },
    });
    const faulted = await h.sync({}, { batch_size: 1 });
    expect(faulted.execution?.waiting).toMatchObject([
      { connection_id: "re-nxt", code: "bad_response", operations: 1 },
    ]);
    expect(h.re.state.constituents.get(ids[2] ?? "")?.requests_no_email).toBe(true);
    expect(h.re.state.constituents.get(ids[0] ?? "")?.requests_no_email).toBe(false);
    clearFaults(h);
    await h.sync();
    expect(h.re.state.constituents.get(ids[0] ?? "")?.requests_no_email).toBe(true);
  });

  it("an opt-out whose record the vendor keeps failing (a 5xx for it alone) goes last the next run: the others go on", async () => {
    w = await world();
    const { h, ids } = w;
    await h.ccAct(h.ccMain, "unsubscribe", "p3@example.org");
    h.advance(1_000);
    // p1's and p3's opt-outs go to Raiser's Edge NXT, in their contacts' order: the first is the
    // record the vendor fails, the other one it would take.
    const contactOf = async (email: string) => (await h.store.contacts.findByMatchKey(email))[0]?.id ?? "";
    const p1First = (await contactOf("p1@example.org")) < (await contactOf("p3@example.org"));
    const [failing, other] = p1First ? [ids[0], ids[2]] : [ids[2], ids[0]];
    for (const prefix of ["/constituent/v1/constituents/", "/commpref/v1/constituents/"])
      await post(h.re.baseUrl, "/__emulator/faults", {
        status: 503,
        count: 100_000,
        path_prefix: `${prefix}${failing ?? ""}`,
      });
    const requestsNoEmail = (id: string | undefined) =>
      h.re.state.constituents.get(id ?? "")?.requests_no_email;
    // The first run meets the failing one first: an outage as far as it can tell, so it stops there.
    const first = await h.sync({}, { batch_size: 1 });
    expect(first.execution?.waiting).toMatchObject([
      { connection_id: "re-nxt", code: "vendor_unavailable", operations: 2 },
    ]);
    expect(requestsNoEmail(other)).toBe(false);
    // The next run tries it last: the other opt-out goes through; it waits, stopping nothing after it.
    h.advance(60_000);
    await h.sync({}, { batch_size: 1 });
    expect(requestsNoEmail(other)).toBe(true);
    expect(requestsNoEmail(failing)).toBe(false);
    clearFaults(h);
    h.advance(60_000);
    await h.sync();
    expect(requestsNoEmail(failing)).toBe(true);
  });

  it("prints the table (docs/reliability.md)", () => {
    console.log(["| fault | stage | the faulted run |", "|---|---|---|", ...table].join("\n"));
    expect(table.length).toBe(STAGES.length * FAULTS.length + 1 + 2 + 2);
  });
});
