// The store suite: the same cases on SQLite and PostgreSQL (describeOnBackends from ./testing).
import { randomBytes } from "node:crypto";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sql } from "kysely";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openStore } from "./open-store";
import { StoreOpenError } from "./store-open-error";
import { migration0004TypedConsentSnapshots } from "./migrations/0004-typed-consent-snapshots";
import { migrateToLatest } from "./migrations/migrations";
import type { Store } from "./ports";
import { describeOnBackends, type TestStore } from "../../test/support/store-backends";

const TABLES = [
  "settings",
  "erasures",
  "link_generations",
  "signups",
  "store_probe",
  "webhook_inbox",
  "api_budgets",
  "alerts",
  "platform_rejections",
  "plan_marks",
  "contacts",
  "contact_emails",
  "links",
  "import_claims",
  "record_snapshots",
  "baselines",
  "checkpoints",
  "consent_events",
  "consent_ledger_head",
  "suppressions",
  "runs",
  "plans",
  "operations",
  "outcomes",
  "review_items",
  "connections_health",
  "credentials",
] as const;

/** A clock the test moves by hand. */
const manualClock = (start = "2025-03-01T09:00:00.000Z") => {
  let now = new Date(start);
  return {
    clock: () => now,
    advance: (ms: number) => {
      now = new Date(now.getTime() + ms);
    },
  };
};

describeOnBackends("store", (backend) => {
  let t: TestStore;
  let store: Store;
  const time = manualClock();

  beforeEach(async () => {
    t = await backend.create({ clock: time.clock });
    store = t.store;
  });
  afterEach(async () => {
    await t.cleanup();
  });

  it("migrates up from empty: every table exists, and a second run does nothing", async () => {
    expect(store.dialect).toBe(backend.name);
    for (const table of TABLES) {
      const { rows } = await sql<{
        n: number | string;
      }>`select count(*) as n from ${sql.table(table)}`.execute(store.db);
      expect(Number(rows[0]?.n), table).toBe(
        table === "consent_ledger_head" || table === "store_probe" ? 1 : 0,
      );
    }
    const applied = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(
      store.db,
    );
    expect(applied.rows.map((r) => r.name)).toEqual([
      "0001_initial",
      "0002_link_origin",
      "0003_webhook_inbox",
      "0004_typed_consent_snapshots",
      "0005_api_budgets",
      "0006_alerts",
      "0007_platform_rejections",
      "0008_erasures",
      "0009_link_revocations",
      "0010_signups",
      "0011_inbox_retries",
      "0012_ledger_seals",
      "0013_store_probe",
      "0014_shared_state",
      "0015_operations_by_contact",
      "0016_plan_marks",
      "0017_plan_revisions",
      "0018_sign_in_failures",
      "0019_contact_change_order",
      "0020_links_by_connection_and_contact",
      "0021_shared_call_rate",
      "0022_signup_client_group",
      "0023_import_claims",
    ]);
    expect(await migrateToLatest(store.db)).toEqual([]);
  });

  it("finds a contact's operations through an index, not by reading every operation ever planned", async () => {
    // Planning asks each chunk of contacts which confirmation emails were sent; explain and erasure
    // read one person's operations. A store of years of runs must not scan them all each time.
    const query = sql<
      Record<string, unknown>
    >`explain ${sql.raw(backend.name === "sqlite" ? "query plan " : "")}select contact_id, target_connection from operations where kind = 'request_resubscribe' and status = 'succeeded' and contact_id between 'c_1' and 'c_9'`;
    const planText = await store.transaction(async (tx) => {
      // PostgreSQL would scan a table this small whatever its indexes; forbid that to see the choice.
      if (backend.name === "postgres") await sql`set local enable_seqscan = off`.execute(tx.db);
      const { rows } = await query.execute(tx.db);
      return rows.map((r) => Object.values(r).join(" ")).join("\n");
    });
    expect(planText).toMatch(/operations_contact_kind/);
  });

  it("keeps each connection's API budget: every process's calls add up, per connection and period", async () => {
    expect(await store.budgets.get("cc-main")).toBeUndefined();
    const change = {
      period_start: "2026-03-01T00:00:00.000Z",
      period_ms: 86_400_000,
      calls: 41,
      blocked_until: null,
      paused_until: null,
    };
    expect(await store.budgets.add("cc-main", change)).toEqual({
      period_start: "2026-03-01T00:00:00.000Z",
      used: 41,
      blocked_until: null,
      paused_until: null,
    });
    // Two workers adding at once: neither loses the other's calls.
    await Promise.all([
      store.budgets.add("cc-main", { ...change, calls: 1, paused_until: "2026-03-01T10:00:05.000Z" }),
      store.budgets.add("cc-main", { ...change, calls: 2, blocked_until: "2026-03-02T00:00:00.000Z" }),
      store.budgets.add("re-nxt", { ...change, calls: 7 }),
    ]);
    expect(await store.budgets.get("cc-main")).toEqual({
      period_start: "2026-03-01T00:00:00.000Z",
      used: 44,
      blocked_until: "2026-03-02T00:00:00.000Z",
      paused_until: "2026-03-01T10:00:05.000Z",
    });
    expect((await store.budgets.get("re-nxt"))?.used).toBe(7);
    // A process counting in the next period starts the count again (the spent quota is replenished).
    const next = await store.budgets.add("cc-main", {
      ...change,
      period_start: "2026-03-02T00:00:00.000Z",
      calls: 3,
    });
    expect(next).toMatchObject({ period_start: "2026-03-02T00:00:00.000Z", used: 3, blocked_until: null });
  });

  it("keeps sign-in sessions by the hash of their id, live until idle or too old", async () => {
    await store.sessions.put({
      id_hash: "h1",
      csrf_token: "c1",
      created_at: "2026-03-01T10:00:00.000Z",
      last_seen: "2026-03-01T10:00:00.000Z",
    });
    const at = {
      now: "2026-03-01T11:00:00.000Z",
      idle_since: "2026-03-01T09:00:00.000Z",
      created_since: "2026-02-20T00:00:00.000Z",
    };
    expect(await store.sessions.touch("h1", at)).toMatchObject({
      csrf_token: "c1",
      last_seen: "2026-03-01T11:00:00.000Z",
    });
    expect(await store.sessions.touch("nope", at)).toBeUndefined();
    // Unused since before the idle limit: gone.
    expect(
      await store.sessions.touch("h1", { ...at, idle_since: "2026-03-01T11:30:00.000Z" }),
    ).toBeUndefined();
    expect(await store.sessions.touch("h1", at)).toBeUndefined();
  });

  it("keeps at most the given number of sessions and Connects, the most recent", async () => {
    const minute = (m: number): string => new Date(Date.UTC(2026, 2, 1, 10, m)).toISOString();
    for (let m = 0; m < 5; m += 1)
      await store.sessions.put({
        id_hash: `h${String(m)}`,
        csrf_token: "c",
        created_at: minute(0),
        last_seen: minute(m),
      });
    await store.sessions.prune({ idle_since: minute(0), created_since: minute(0) }, 3);
    const live = await store.db.selectFrom("sessions").select("id_hash").orderBy("id_hash").execute();
    expect(live.map((r) => r.id_hash)).toEqual(["h2", "h3", "h4"]);

    const flow = (m: number) => ({
      state_hash: `s${String(m)}`,
      connection_id: "cc-main",
      browser_hash: "b",
      redirect_uri: "https://concord.example.org/connect/callback",
      verifier: null,
      expires_at: minute(10 + m),
    });
    // Room is made for the new flow: the two most recent stay beside it.
    for (let m = 0; m < 5; m += 1) await store.connectFlows.put(flow(m), { now: minute(0), keep: 3 });
    const waiting = await store.db
      .selectFrom("connect_flows")
      .select("state_hash")
      .orderBy("state_hash")
      .execute();
    expect(waiting.map((r) => r.state_hash)).toEqual(["s2", "s3", "s4"]);
  });
  it("opens an alert once per cause until it is resolved, then again", async () => {
    const alert = {
      key: "quota:cc-main",
      connection_id: "cc-main",
      code: "quota_exceeded",
      message: "spent",
    };
    expect(await store.alerts.open(alert)).toBe(true);
    expect(await store.alerts.open({ ...alert, message: "still spent" })).toBe(false);
    expect((await store.alerts.listOpen()).map((a) => [a.key, a.message])).toEqual([
      ["quota:cc-main", "still spent"],
    ]);
    expect(await store.alerts.resolve("quota:cc-main")).toBe(true);
    expect(await store.alerts.resolve("quota:cc-main")).toBe(false);
    expect(await store.alerts.listOpen()).toEqual([]);
    // Two processes raising it at once: exactly one of them alerts.
    const raised = await Promise.all([store.alerts.open(alert), store.alerts.open(alert)]);
    expect(raised.filter(Boolean)).toHaveLength(1);
  });

  it("drops every pull checkpoint when snapshots gain typed consent, so the next pull reads everything", async () => {
    await store.checkpoints.set("re-nxt", "pull", {
      stream: "constituents",
      value: "2026-01-01T00:00:00.000Z",
    });
    await store.checkpoints.set("cc-main", "pull", { stream: "contacts", value: "2026-01-01T00:00:00.000Z" });
    await store.checkpoints.set("cc-main", "lists", [{ external_id: "l1", name: "Newsletter" }]);
    await migration0004TypedConsentSnapshots.up(store.db as never);
    expect(await store.checkpoints.get("re-nxt", "pull")).toBeUndefined();
    expect(await store.checkpoints.get("cc-main", "pull")).toBeUndefined();
    expect((await store.checkpoints.get("cc-main", "lists"))?.value).toEqual([
      { external_id: "l1", name: "Newsletter" },
    ]);
  });

  it("keeps webhook deliveries until they are processed, retried when due, or given up", async () => {
    const a = await store.inbox.add("re-nxt", [{ external_id: "1" }]);
    const b = await store.inbox.add("re-nxt", [{ external_id: "2" }]);
    const c = await store.inbox.add("mc", [{ external_id: "3" }]);
    expect(a.id).toMatch(/^whk_/);
    expect(await store.inbox.countPending()).toBe(3);
    const later = new Date(Date.parse(a.received_at) + 60_000).toISOString();
    await store.inbox.markFailed(a.id, "vendor_unavailable", { retry_at: later });
    await store.inbox.markProcessed([b.id]);
    // Waiting for its next attempt: still pending, but not due.
    expect(await store.inbox.countPending()).toBe(2);
    expect((await store.inbox.pending(10)).map((i) => i.id)).toEqual([c.id]);
    expect(await store.inbox.connectionsDue()).toEqual(["mc"]);
    expect(await store.inbox.pending(10, { exclude: ["mc"] })).toEqual([]);
    expect(await store.inbox.pending(10, { connection_id: "re-nxt" })).toEqual([]);
    await store.inbox.markFailed(c.id, "forbidden: 403", "dead");
    expect(await store.inbox.countPending()).toBe(1);
    expect(await store.inbox.countDead()).toBe(1);
    expect(await store.inbox.countDead(later)).toBe(0);
    expect(await store.inbox.connectionsDue()).toEqual([]);
  });

  it("deletes deliveries processed or given up before a time, never pending or retrying ones, a bounded number at once", async () => {
    const processed = await Promise.all(
      [1, 2, 3].map((n) => store.inbox.add("re-nxt", [{ external_id: `${n}` }])),
    );
    const dead = await store.inbox.add("mc", [{ external_id: "4" }]);
    const retrying = await store.inbox.add("mc", [{ external_id: "5" }]);
    const pending = await store.inbox.add("mc", [{ external_id: "6" }]);
    await store.inbox.markProcessed(processed.map((d) => d.id));
    await store.inbox.markFailed(dead.id, "forbidden: 403", "dead");
    await store.inbox.markFailed(retrying.id, "vendor_unavailable", {
      retry_at: new Date(time.clock().getTime() + 60_000).toISOString(),
    });
    const cutoff = new Date(time.clock().getTime() + 1).toISOString();
    time.advance(10_000);
    const late = await store.inbox.add("re-nxt", [{ external_id: "7" }]);
    await store.inbox.markProcessed([late.id]);
    // Nothing was done before the start.
    expect(await store.inbox.prune(processed[0]!.received_at, 100)).toBe(0);
    expect(await store.inbox.prune(cutoff, 2)).toBe(2);
    expect(await store.inbox.prune(cutoff, 100)).toBe(2);
    expect(await store.inbox.prune(cutoff, 100)).toBe(0);
    const left = await store.db.selectFrom("webhook_inbox").select("id").orderBy("id").execute();
    expect(left.map((r) => r.id).sort()).toEqual([retrying.id, pending.id, late.id].sort());
    expect(await store.inbox.countPending()).toBe(2);
  });

  it("names every connection with deliveries due, however many deliveries come before them", async () => {
    await store.inbox.addMany(
      Array.from({ length: 1_200 }, (_, i) => ({
        connection_id: "re-nxt",
        changes: [{ external_id: `${i}` }],
      })),
    );
    await store.inbox.add("mc", [{ external_id: "late" }]);
    expect(await store.inbox.connectionsDue()).toEqual(["mc", "re-nxt"]);
  });

  it("marks runs a stopped process left running as interrupted, and no other", async () => {
    const left = await store.runs.create({ kind: "sync", pair_id: "p" });
    const done = await store.runs.create({ kind: "sync", pair_id: "p" });
    await store.runs.finish(done.id, "succeeded");
    const later = new Date(Date.parse(left.started_at) + 1_000).toISOString();
    expect(await store.runs.interruptRunning(left.started_at)).toEqual([]); // started at, not before
    expect(await store.runs.interruptRunning(later)).toEqual([left.id]);
    expect(await store.runs.get(left.id)).toMatchObject({
      status: "failed",
      summary: { error: { code: "interrupted" } },
    });
    expect((await store.runs.get(done.id))?.status).toBe("succeeded");
    expect(await store.runs.interruptRunning(later)).toEqual([]);
  });

  it("links keep how they were made; a claim turns address matches into Concord's own", async () => {
    const ada = await store.contacts.create({ type: "person", primary_email: "ada@example.org" });
    await store.links.create({
      connection_id: "cc",
      external_id: "a",
      contact_id: ada.id,
      origin: "matched_by_email",
    });
    await store.links.create({ connection_id: "cc", external_id: "b", contact_id: ada.id });
    expect((await store.links.find("cc", "a"))?.origin).toBe("matched_by_email");
    expect((await store.links.find("cc", "b"))?.origin).toBe("observed");
    expect(await store.links.claim("cc", [ada.id])).toBe(1);
    expect((await store.links.forContact(ada.id)).map((l) => l.origin)).toEqual(["concord", "observed"]);
  });

  it("a claim stored before an import makes the record linked later by its address Concord's, once, until it expires", async () => {
    const ada = await store.contacts.create({ type: "person", primary_email: "ada@example.org" });
    const bob = await store.contacts.create({ type: "person", primary_email: "bob@example.org" });
    const cy = await store.contacts.create({ type: "person", primary_email: "cy@example.org" });
    await store.links.intendClaims("cc", [ada.id, bob.id, cy.id]);
    const byAddress = (external_id: string, contact_id: string) =>
      store.links.create({ connection_id: "cc", external_id, contact_id, origin: "matched_by_email" });
    // A read links ada's record by its address: Concord's, and the claim is spent.
    expect(await byAddress("a", ada.id)).toMatchObject({ kind: "created", link: { origin: "concord" } });
    expect((await store.links.find("cc", "a"))?.origin).toBe("concord");
    // Another connection, or a record the contact made later, is not claimed.
    expect(
      (
        await store.links.create({
          connection_id: "mc",
          external_id: "a",
          contact_id: ada.id,
          origin: "matched_by_email",
        })
      ).kind,
    ).toBe("created");
    expect((await store.links.find("mc", "a"))?.origin).toBe("matched_by_email");
    await store.links.remove("cc", "a");
    expect(await byAddress("a2", ada.id)).toMatchObject({ link: { origin: "matched_by_email" } });
    // A link the run claims itself spends the claim too.
    expect(await store.links.claim("cc", [bob.id])).toBe(0);
    expect(await byAddress("b", bob.id)).toMatchObject({ link: { origin: "matched_by_email" } });
    // A claim whose record never appeared expires.
    time.advance(8 * 24 * 3600_000);
    await store.links.claim("cc", []);
    expect(await byAddress("c", cy.id)).toMatchObject({ link: { origin: "matched_by_email" } });
  });

  it("creates, finds, updates and erases contacts", async () => {
    const ada = await store.contacts.create({
      type: "person",
      given_name: "Ada",
      family_name: "Lovelace",
      primary_email: "Ada@Example.org",
      email_match_key: "ada@example.org",
      flags: ["do_not_contact"],
    });
    expect(ada.id).toMatch(/^con_[0-9a-z]{26}$/);
    expect(await store.contacts.get(ada.id)).toEqual(ada);

    await store.contacts.addEmail(ada.id, "ada.old@example.org", "ada.old@example.org");
    await store.contacts.addEmail(ada.id, "ada.old@example.org", "ada.old@example.org"); // idempotent
    expect((await store.contacts.emails(ada.id)).map((e) => e.match_key)).toEqual(["ada.old@example.org"]);
    expect((await store.contacts.findByMatchKey("ada@example.org")).map((c) => c.id)).toEqual([ada.id]);
    expect((await store.contacts.findByMatchKey("ada.old@example.org")).map((c) => c.id)).toEqual([ada.id]);
    expect(await store.contacts.findByMatchKey("nobody@example.org")).toEqual([]);

    time.advance(1000);
    const updated = await store.contacts.update(ada.id, { family_name: "King", flags: [] });
    expect(updated).toMatchObject({ family_name: "King", given_name: "Ada", flags: [] });
    expect(updated?.updated_at).not.toBe(ada.updated_at);
    expect(await store.contacts.update("con_missing", { given_name: "x" })).toBeUndefined();

    expect(await store.contacts.erase(ada.id)).toBe(true);
    const erased = await store.contacts.get(ada.id);
    expect(erased).toMatchObject({
      given_name: null,
      family_name: null,
      primary_email: null,
      email_match_key: null,
    });
    expect(erased?.erased_at).not.toBeNull();
    expect(await store.contacts.emails(ada.id)).toEqual([]);
    expect(await store.contacts.findByMatchKey("ada@example.org")).toEqual([]);
  });

  it("answers many lookups at once as the one-by-one lookups answer each: addresses, links, snapshots", async () => {
    // Made in an order other than their ids', so the answers' order is the lookup's, not insertion's.
    const [c1, c2, c3, gone] = await Promise.all(
      ["con_c", "con_a", "con_b", "con_d"].map((id) => store.contacts.create({ id, type: "person" })),
    );
    await store.contacts.update(c1!.id, {
      primary_email: "shared@example.org",
      email_match_key: "shared@example.org",
    });
    await store.contacts.update(c2!.id, {
      primary_email: "two@example.org",
      email_match_key: "two@example.org",
    });
    await store.contacts.addEmail(c2!.id, "shared@example.org", "shared@example.org"); // an older address
    await store.contacts.addEmail(c3!.id, "shared@example.org", "shared@example.org");
    await store.contacts.update(gone!.id, {
      primary_email: "shared@example.org",
      email_match_key: "shared@example.org",
    });
    await store.contacts.erase(gone!.id);
    const keys = ["shared@example.org", "two@example.org", "nobody@example.org"];
    const many = await store.contacts.findByMatchKeys([...keys, "two@example.org"]);
    for (const key of keys)
      expect(many.get(key) ?? [], key).toEqual(await store.contacts.findByMatchKey(key));
    expect(many.get("shared@example.org")?.map((c) => c.id)).toEqual(["con_a", "con_b", "con_c"]);
    expect(many.has("nobody@example.org")).toBe(false);

    for (const [connection_id, external_id, contact] of [
      ["cc", "r2", c1!],
      ["cc", "r1", c1!],
      ["re", "r1", c2!],
    ] as const)
      await store.links.create({ connection_id, external_id, contact_id: contact.id });
    const links = await store.links.findMany("cc", ["r1", "r2", "r3"]);
    expect([...links.keys()].sort()).toEqual(["r1", "r2"]);
    expect(links.get("r1")).toEqual(await store.links.find("cc", "r1"));
    const byContact = await store.links.forContacts([c1!.id, c2!.id, c3!.id]);
    expect(byContact.get(c1!.id)).toEqual(await store.links.forContact(c1!.id));
    expect(byContact.get(c1!.id)?.map((l) => l.external_id)).toEqual(["r1", "r2"]);
    expect(byContact.get(c2!.id)?.map((l) => l.connection_id)).toEqual(["re"]);
    expect(byContact.has(c3!.id)).toBe(false);

    await store.snapshots.put({
      connection_id: "cc",
      external_id: "r1",
      content_hash: "h",
      payload: { a: [1] },
    });
    const snapshots = await store.snapshots.getMany("cc", ["r1", "r9"]);
    expect([...snapshots.keys()]).toEqual(["r1"]);
    expect(snapshots.get("r1")).toEqual(await store.snapshots.get("cc", "r1"));
    // Lists longer than one statement's are read in parts.
    expect(
      (
        await store.links.findMany(
          "cc",
          Array.from({ length: 1_201 }, (_, i) => `r${i}`),
        )
      ).size,
    ).toBe(2);
  });

  it("links one external record per connection, and reports a second link as a conflict value", async () => {
    const a = await store.contacts.create({ type: "person" });
    const b = await store.contacts.create({ type: "person" });
    const created = await store.links.create({
      connection_id: "cc_main",
      external_id: "ext-1",
      contact_id: a.id,
    });
    expect(created.kind).toBe("created");

    const again = await store.links.create({
      connection_id: "cc_main",
      external_id: "ext-1",
      contact_id: b.id,
    });
    expect(again).toMatchObject({ kind: "conflict", code: "link_exists", existing: { contact_id: a.id } });

    // The same external id in another connection is another record.
    expect(
      (await store.links.create({ connection_id: "re_main", external_id: "ext-1", contact_id: b.id })).kind,
    ).toBe("created");
    expect((await store.links.forContact(a.id)).map((l) => l.connection_id)).toEqual(["cc_main"]);

    // A link must point at an existing contact (foreign keys are on in SQLite too).
    await expect(
      store.links.create({ connection_id: "cc_main", external_id: "ext-2", contact_id: "con_nobody" }),
    ).rejects.toThrow();

    expect(await store.links.moveTo("cc_main", "ext-1", b.id)).toBe(true);
    expect((await store.links.find("cc_main", "ext-1"))?.contact_id).toBe(b.id);
    expect(await store.links.remove("cc_main", "ext-1")).toBe(true);
    expect(await store.links.find("cc_main", "ext-1")).toBeUndefined();
    expect(await store.links.remove("cc_main", "ext-1")).toBe(false);
  });

  it("advances a checkpoint with its data, and a rolled-back transaction leaves both unchanged", async () => {
    await store.checkpoints.set("cc_main", "contacts", { cursor: "c1" });

    await expect(
      store.transaction(async (tx) => {
        await tx.snapshots.put({
          connection_id: "cc_main",
          external_id: "r1",
          content_hash: "h1",
          payload: { a: 1 },
        });
        await tx.checkpoints.set("cc_main", "contacts", { cursor: "c2" });
        expect((await tx.checkpoints.get("cc_main", "contacts"))?.value).toEqual({ cursor: "c2" });
        throw new Error("connector failed mid-page");
      }),
    ).rejects.toThrow("connector failed mid-page");
    expect((await store.checkpoints.get("cc_main", "contacts"))?.value).toEqual({ cursor: "c1" });
    expect(await store.snapshots.get("cc_main", "r1")).toBeUndefined();

    await store.transaction(async (tx) => {
      await tx.snapshots.put({
        connection_id: "cc_main",
        external_id: "r1",
        content_hash: "h1",
        payload: { a: 1 },
      });
      // A nested call joins the open transaction rather than deadlocking or committing early.
      await tx.transaction((inner) => inner.checkpoints.set("cc_main", "contacts", { cursor: "c2" }));
      expect(tx.inTransaction).toBe(true);
    });
    expect((await store.checkpoints.get("cc_main", "contacts"))?.value).toEqual({ cursor: "c2" });
    expect(await store.checkpoints.get("cc_main", "lists")).toBeUndefined();
  });

  it("stores snapshots and reports whether content changed", async () => {
    const base = { connection_id: "cc_main", external_id: "r1", payload: { email: "a@example.org" } };
    expect(await store.snapshots.put({ ...base, content_hash: "h1" })).toEqual({ changed: true });
    expect(await store.snapshots.put({ ...base, content_hash: "h1" })).toEqual({ changed: false });
    expect(
      await store.snapshots.put({ ...base, content_hash: "h2", payload: { email: "b@example.org" } }),
    ).toEqual({
      changed: true,
    });
    expect(await store.snapshots.get("cc_main", "r1")).toMatchObject({
      content_hash: "h2",
      payload: { email: "b@example.org" },
    });
  });

  it("keeps one baseline per contact and pair", async () => {
    const c = await store.contacts.create({ type: "person" });
    await store.baselines.put({ contact_id: c.id, pair_id: "pair_1", values: { first_name: "A" } });
    await store.baselines.put({
      contact_id: c.id,
      pair_id: "pair_1",
      values: { first_name: "B" },
      run_id: "run_x",
    });
    expect(await store.baselines.get(c.id, "pair_1")).toMatchObject({
      values: { first_name: "B" },
      run_id: "run_x",
    });
    expect(await store.baselines.get(c.id, "pair_2")).toBeUndefined();
  });

  it("stores many baselines at once, more than one statement holds, the last of a contact's winning", async () => {
    const contacts = await Promise.all(
      Array.from({ length: 450 }, () => store.contacts.create({ type: "person" })),
    );
    await store.baselines.put({
      contact_id: contacts[0]!.id,
      pair_id: "pair_1",
      values: { first_name: "Old" },
    });
    await store.baselines.putMany([
      ...contacts.map((c, i) => ({
        contact_id: c.id,
        pair_id: "pair_1",
        values: { n: String(i) },
        run_id: "run_1",
      })),
      { contact_id: contacts[7]!.id, pair_id: "pair_1", values: { n: "again" }, run_id: "run_1" },
    ]);
    expect(await store.baselines.get(contacts[0]!.id, "pair_1")).toMatchObject({
      values: { n: "0" },
      run_id: "run_1",
    });
    expect((await store.baselines.get(contacts[7]!.id, "pair_1"))?.values).toEqual({ n: "again" });
    expect((await store.baselines.get(contacts[449]!.id, "pair_1"))?.values).toEqual({ n: "449" });
    await store.baselines.putMany([]);
  });

  it("records runs, plans, idempotent operations and numbered outcomes", async () => {
    const run = await store.runs.create({ kind: "dry_run", pair_id: "pair_1" });
    expect(run).toMatchObject({ status: "running", finished_at: null });
    expect(run.id).toMatch(/^run_/);
    const plan = await store.plans.save({ run_id: run.id, plan: { ops: 2 }, counts: { upsert_contact: 2 } });
    expect(await store.plans.get(plan.id)).toEqual(plan);
    expect(await store.plans.forRun(run.id)).toEqual([plan]);

    const ops = [
      {
        id: "op_aaaaaaaa01",
        plan_id: plan.id,
        kind: "opt_out",
        target_connection: "cc_main",
        payload: { e: 1 },
      },
      {
        id: "op_aaaaaaaa02",
        plan_id: plan.id,
        kind: "upsert_contact",
        target_connection: "cc_main",
        payload: {},
      },
    ];
    expect(await store.operations.insertMany(ops)).toEqual({ inserted: 2 });
    expect(await store.operations.insertMany(ops)).toEqual({ inserted: 0 });
    await expect(store.operations.insertMany([{ ...ops[0]!, id: "not-an-op" }])).rejects.toThrow(/op_/);

    expect(await store.operations.setStatus("op_aaaaaaaa01", "succeeded")).toBe(true);
    expect((await store.operations.forPlan(plan.id, "pending")).map((o) => o.id)).toEqual(["op_aaaaaaaa02"]);

    const first = await store.outcomes.record({
      operation_id: "op_aaaaaaaa02",
      status: "retry",
      detail: { code: "rate_limited" },
      retry_at: "2025-03-01T09:01:00.000Z",
    });
    const second = await store.outcomes.record({
      operation_id: "op_aaaaaaaa02",
      status: "succeeded",
      detail: {},
    });
    expect([first.attempt, second.attempt]).toEqual([1, 2]);
    expect(await store.outcomes.forOperation("op_aaaaaaaa02")).toEqual([first, second]);

    const finished = await store.runs.finish(run.id, "succeeded", { planned: 2 });
    expect(finished).toMatchObject({ status: "succeeded", summary: { planned: 2 } });
    expect(finished?.finished_at).not.toBeNull();
  });

  it("opens a review item once per key and resolves it", async () => {
    const item = {
      key: "ambiguous:cc_main:ext-9",
      kind: "ambiguous_identity" as const,
      detail: { candidates: 2 },
    };
    const opened = await store.reviewItems.open(item);
    expect(opened.kind).toBe("opened");
    const again = await store.reviewItems.open(item);
    expect(again).toEqual({ kind: "existing", item: opened.item });
    expect(await store.reviewItems.list()).toEqual([opened.item]);
    const resolved = await store.reviewItems.resolve(opened.item.id, "resolved", { chose: "con_1" });
    expect(resolved).toMatchObject({ status: "resolved", resolution: { chose: "con_1" } });
    expect(await store.reviewItems.list("open")).toEqual([]);
    // A closed item stays as it was closed: a second resolution (another operator's) changes nothing.
    expect(await store.reviewItems.resolve(opened.item.id, "dismissed", { chose: "con_2" })).toBeUndefined();
    expect(await store.reviewItems.list("resolved")).toEqual([resolved]);
  });

  it("tracks connection health, moving `since` only on a status change", async () => {
    const ok = await store.health.report("cc_main", "ok");
    time.advance(60_000);
    const stillOk = await store.health.report("cc_main", "ok");
    expect(stillOk.since).toBe(ok.since);
    expect(stillOk.checked_at).not.toBe(ok.checked_at);
    time.advance(60_000);
    const broken = await store.health.report("cc_main", "broken", "auth_invalid");
    expect(broken).toMatchObject({
      status: "broken",
      reason: "auth_invalid",
      since: broken.checked_at,
      previous: "ok",
    });
    const { previous, ...kept } = broken;
    expect(previous).toBe("ok");
    expect(await store.health.list()).toEqual([kept]);
  });

  it("of two processes finding a connection broken at once, exactly one sees it change", async () => {
    for (const id of ["re_new", "cc_main"]) {
      if (id === "cc_main") await store.health.report(id, "ok");
      const both = await Promise.all([
        store.health.report(id, "broken", "auth_invalid"),
        store.health.report(id, "broken", "auth_invalid"),
      ]);
      expect(
        both.filter((r) => r.previous !== "broken"),
        id,
      ).toHaveLength(1);
    }
  });

  it("stores credential ciphertext, suppressions and nothing more", async () => {
    await store.credentials.put("cc_main", "v1:ciphertext-a", "key_1");
    await store.credentials.put("cc_main", "v1:ciphertext-b", "key_2");
    expect(await store.credentials.get("cc_main")).toMatchObject({
      ciphertext: "v1:ciphertext-b",
      key_id: "key_2",
    });
    expect(await store.credentials.remove("cc_main")).toBe(true);
    expect(await store.credentials.get("cc_main")).toBeUndefined();

    const hash = "a".repeat(64);
    expect(await store.suppressions.add({ address_hash: hash, reason: "erasure" })).toEqual({ added: true });
    expect(await store.suppressions.add({ address_hash: hash, reason: "erasure" })).toEqual({ added: false });
    expect(await store.suppressions.has(hash)).toBe(true);
    expect(await store.suppressions.suppressed([hash, "b".repeat(64)])).toEqual(new Set([hash]));
  });
});

describe("the SQLite files", () => {
  it("are the owner's alone: a data directory Concord makes 0700, the database and its journal 0600", async () => {
    const root = mkdtempSync(join(tmpdir(), "concord-modes-"));
    try {
      // A directory that existed is left as it is (it may be shared); the files are closed.
      const dir = join(root, "data");
      mkdirSync(dir, { mode: 0o755 });
      chmodSync(dir, 0o755);
      const file = join(dir, "concord.db");
      const store = await openStore({ file });
      await store.runs.create({ kind: "sync" });
      const mode = (p: string) => statSync(p).mode & 0o777;
      expect(mode(dir)).toBe(0o755);
      expect(mode(file)).toBe(0o600);
      expect(mode(`${file}-wal`)).toBe(0o600);
      await store.close();

      const fresh = join(root, "new", "deeper");
      const other = await openStore({ file: join(fresh, "concord.db") });
      expect(mode(fresh)).toBe(0o700);
      expect(mode(join(root, "new"))).toBe(0o700);
      await other.close();
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe("a store that cannot be opened", () => {
  /** A port on this machine nothing listens at: one just let go. */
  const closedPort = async (): Promise<number> => {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    await new Promise((resolve) => server.close(resolve));
    return port;
  };
  const failure = (opening: Promise<Store>): Promise<unknown> =>
    opening.then(
      async (store) => {
        await store.close();
        return "it opened";
      },
      (error: unknown) => error,
    );

  it("says which database could not be reached and why, never its password", async () => {
    const port = await closedPort();
    const error = await failure(openStore({ url: `postgres://concord:s3cret-pw@127.0.0.1:${port}/concord` }));
    expect(error).toBeInstanceOf(StoreOpenError);
    expect((error as Error).message).toBe(
      `the store's database postgres://***@127.0.0.1:${port}/concord could not be opened: nothing is listening at 127.0.0.1:${port} (is PostgreSQL running there?). Check DATABASE_URL.`,
    );
  });

  it("says a URL that is not PostgreSQL's, or a schema name not allowed, before connecting anywhere", async () => {
    const notPostgres = await failure(openStore({ url: "mysql://concord:s3cret-pw@db:3306/concord" }));
    expect(notPostgres).toBeInstanceOf(StoreOpenError);
    expect((notPostgres as Error).message).toBe(
      "the store's database mysql://***@db:3306/concord is not a PostgreSQL URL: expected postgres:// or postgresql://, such as postgres://concord:password@db:5432/concord. Check DATABASE_URL.",
    );
    const badSchema = await failure(
      openStore({ url: "postgres://concord:s3cret-pw@db:5432/concord", schema: "Concord; drop" }),
    );
    expect(badSchema).toBeInstanceOf(StoreOpenError);
    expect((badSchema as Error).message).toBe(
      'the store\'s schema name "Concord; drop" is not allowed: expected at most 63 lower-case letters, digits and underscores, not starting with a digit. Check DATABASE_SCHEMA.',
    );
  });

  it("says which file could not be opened, and what to check", async () => {
    const root = mkdtempSync(join(tmpdir(), "concord-open-"));
    try {
      // A data directory under a file: nothing can be made there.
      writeFileSync(join(root, "a-file"), "");
      const file = join(root, "a-file", "data", "concord.db");
      const error = await failure(openStore({ file }));
      expect(error).toBeInstanceOf(StoreOpenError);
      expect((error as Error).message).toContain(`the store's file ${file} could not be opened: ENOTDIR`);
      expect((error as Error).message).toContain("Check CONCORD_DATA_DIR");
      // A file that is not a database: said so, not thrown as SQLite's own error.
      const notDatabase = join(root, "not-a-database.db");
      writeFileSync(notDatabase, "this is not a SQLite database, though its name says so ".repeat(100));
      const unreadable = await failure(openStore({ file: notDatabase }));
      expect(unreadable).toBeInstanceOf(StoreOpenError);
      expect((unreadable as Error).message).toContain(
        `the store's file ${notDatabase} could not be opened: file is not a database`,
      );
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  const url = process.env["TEST_DATABASE_URL"] ?? "";
  it.skipIf(url === "")(
    "says a refused password or a missing database in PostgreSQL's own terms",
    async () => {
      const wrong = new URL(url);
      wrong.password = "not-the-password-7f3e";
      const refused = await failure(openStore({ url: wrong.toString() }));
      expect(refused).toBeInstanceOf(StoreOpenError);
      expect((refused as Error).message).toContain(`the password of role ${wrong.username} was refused`);
      expect((refused as Error).message).not.toContain("not-the-password-7f3e");
      const missing = new URL(url);
      missing.pathname = "/concord_no_such_database";
      const absent = await failure(openStore({ url: missing.toString() }));
      expect((absent as Error).message).toContain(
        "database concord_no_such_database does not exist (create it, e.g. `createdb concord_no_such_database`)",
      );
    },
  );

  it.skipIf(url === "")("says a role with no connection left is the role's limit to raise", async () => {
    // Hosted PostgreSQL sets roles' CONNECTION LIMITs; one already spent refuses the next connection.
    const role = `concord_${randomBytes(4).toString("hex")}`;
    const admin = await openStore({ url, schema: "public", migrate: false, pool_size: 1 });
    await sql`create role ${sql.id(role)} login password 'spent-role-4b2d' connection limit 0`.execute(
      admin.db,
    );
    try {
      const limited = new URL(url);
      limited.username = role;
      limited.password = "spent-role-4b2d";
      const error = await failure(openStore({ url: limited.toString() }));
      expect(error).toBeInstanceOf(StoreOpenError);
      expect((error as Error).message).toContain(
        `could not be opened: the server has no connection free for it (too many connections for role "${role}"); raise the role's limit (\`ALTER ROLE ${role} CONNECTION LIMIT …\`) or stop its other clients. Check DATABASE_URL.`,
      );
      expect((error as Error).message).not.toContain("spent-role-4b2d");
    } finally {
      await sql`drop role if exists ${sql.id(role)}`.execute(admin.db);
      await admin.close();
    }
  });
});
