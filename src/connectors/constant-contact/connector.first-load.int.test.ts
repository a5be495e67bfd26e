// First-load economy: 100,000 new contacts into an empty emulated account through the bulk import,
// counting the API calls the emulator served against the fewest its bulk limits allow.
import { afterAll, beforeAll, expect, it } from "vitest";
import type { ConnectorOperation } from "../connector";
import { CONSTANT_CONTACT_LIMITS } from "./connector";
import { constantContactManifest } from "./manifest";
import { importRow } from "./mapping";
import { startTestAccount, type TestAccount } from "../../../test/support/connectors/constant-contact";

const N = 100_000;
let account: TestAccount;

beforeAll(async () => {
  // Limits off: this test measures calls, not waiting. Activities complete on their first poll, so
  // the count measures the client, not how long the service takes to process an import.
  account = await startTestAccount({
    rateLimitPerSecond: null,
    dailyQuota: null,
    activityPollsToComplete: 0,
  });
});
afterAll(async () => {
  await account.close();
});

it(`loads ${N.toLocaleString("en")} contacts within 1.10 × the fewest calls the bulk limits allow`, async () => {
  const seeded = await account.seed({ lists: [{ name: "Everyone" }] });
  const listIds = [seeded.lists[0]!.list_id];
  const items = Array.from({ length: N }, (_, i) => ({
    item_id: `item_${i}`,
    email: `supporter.${String(i).padStart(6, "0")}@example.org`,
    first_name: `First${i}`,
    last_name: `Last${i}`,
    fields: { job_title: i % 3 === 0 ? "Volunteer" : "Donor", company_name: `Company number ${i % 1000}` },
  }));
  const op: ConnectorOperation = {
    kind: "upsert_contacts",
    consent_intent: { existing: "keep", new_contacts: "subscribed" },
    op_id: "op_first_load",
    items,
    list_ids: listIds,
  };

  // The floor: each import carries at most 40,000 contacts and fewer than 4,000,000 bytes of JSON,
  // and each needs at least one status poll to learn its outcome. Nothing else is needed.
  const { import_contacts, import_bytes } = CONSTANT_CONTACT_LIMITS.batch;
  const overhead = Buffer.byteLength(JSON.stringify({ import_data: [], list_ids: listIds }));
  const rowBytes = items.reduce(
    (sum, item) => sum + Buffer.byteLength(JSON.stringify(importRow(item))) + 1,
    -1,
  );
  const byCount = Math.ceil(N / import_contacts!);
  const byBytes = Math.ceil(rowBytes / (import_bytes! - overhead - 1));
  const fewestImports = Math.max(byCount, byBytes);
  const fewestCalls = 2 * fewestImports;
  const bound = Math.floor(1.1 * fewestCalls);

  const before = (await account.requests()).length;
  const started = performance.now();
  const outcomes = await constantContactManifest.connect(account.settings, account.runtime).apply([op]);
  const seconds = (performance.now() - started) / 1000;
  const calls = (await account.requests()).slice(before).filter((r) => r.path.startsWith("/v3/"));

  expect(outcomes).toHaveLength(N);
  expect(outcomes.every((o) => o.status === "succeeded")).toBe(true);
  const imports = calls.filter((c) => c.path === "/v3/activities/contacts_json_import");
  console.log(
    `first load: ${N} contacts, ${calls.length} calls (${imports.length} imports, ${calls.length - imports.length} polls); ` +
      `fewest ${fewestCalls} (imports by count ${byCount}, by bytes ${byBytes}); bound ${bound}; ${seconds.toFixed(1)} s`,
  );
  expect(calls.length).toBeLessThanOrEqual(bound);
  expect(imports.length).toBe(fewestImports);
  // Every contact arrived: one count-only page of the real API says so.
  const count = await fetch(`${account.baseUrl}/v3/contacts?limit=1&include_count=true`, {
    headers: { authorization: `Bearer ${account.credentials.access_token}` },
  });
  expect(((await count.json()) as { contacts_count?: number }).contacts_count).toBe(N);
}, 120_000);
