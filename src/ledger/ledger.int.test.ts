// The consent ledger on SQLite and PostgreSQL: idempotent appends, the hash chain, erasure and export.
import { PassThrough } from "node:stream";
import { parse } from "csv-parse/sync";
import { sql } from "kysely";
import { afterEach, beforeEach, expect, it } from "vitest";
import type { ConsentEvent } from "../core/consent/consent-event";
import type { ConsentEventRow, LedgerHead, Store } from "../store/ports";
import { describeOnBackends, type TestStore } from "../../test/support/store-backends";
import { canonicalJson } from "../core/canonical-json";
import { secretKeyFromBytes } from "../config/secret-box";
import { computeChainHash, LEDGER_GENESIS_HASH, withoutEvidence } from "./chain-hash";
import { consentEventId, type ConsentEventDraft } from "./consent-event-id";
import {
  appendConsentEvents,
  appendErasureRow,
  eraseEvidence,
  eventsForContact,
  eventsSince,
} from "./consent-ledger";
import { exportLedger, LEDGER_CSV_COLUMNS } from "./export-ledger";
import { ledgerSealer } from "./ledger-seal";
import { sealLedger } from "./seal-ledger";
import { checkRow, parseLedgerHead, verifyLedger } from "./verify-ledger";

const T0 = Date.UTC(2025, 0, 1, 9, 0, 0);
const at = (seconds: number) => new Date(T0 + seconds * 1000).toISOString();

const optOut = (n: number, overrides: Partial<ConsentEventDraft> = {}): ConsentEventDraft =>
  ({
    kind: "opt_out",
    scope: { kind: "global" },
    contact_id: `con_${n % 3}`,
    channel: "email",
    source: { system: "constant_contact", connection: "cc_main" },
    mechanism: "unsubscribe_link",
    actor: { kind: "contact" },
    occurred_at: at(n),
    observed_at: at(n + 5),
    evidence: { source_record_id: `act-${n}`, ip: "203.0.113.7", user_agent: "Mail/1.0" },
    ...overrides,
  }) as ConsentEventDraft;

const optIn = (n: number): ConsentEventDraft => ({
  kind: "opt_in",
  basis: "express",
  scope: { kind: "topic", topic: "newsletter" },
  contact_id: `con_${n % 3}`,
  channel: "email",
  source: { system: "blackbaud_renxt", connection: "re_main" },
  mechanism: "signup_form",
  actor: { kind: "contact" },
  occurred_at: at(n),
  observed_at: at(n + 5),
  evidence: { form_wording: "Yes, send me the newsletter", source_record_id: `form-${n}` },
});

const tamper = (store: Store, seq: number, column: string, value: string) =>
  sql`update consent_events set ${sql.ref(column)} = ${value} where seq = ${seq}`.execute(store.db);

describeOnBackends("consent ledger", (backend) => {
  let t: TestStore;
  let store: Store;

  beforeEach(async () => {
    t = await backend.create({ clock: () => new Date("2025-02-01T00:00:00.000Z") });
    store = t.store;
  });
  afterEach(async () => {
    await t.cleanup();
  });

  const appendMany = async (count: number) => {
    const results = await appendConsentEvents(
      store,
      Array.from({ length: count }, (_, i) => (i % 4 === 3 ? optIn(i + 1) : optOut(i + 1))),
    );
    expect(results.every((r) => r.kind === "appended")).toBe(true);
    return results;
  };

  it("appends an event with a content id, a seq and a chained hash, and keeps both times as given", async () => {
    const [result] = await appendConsentEvents(store, [optOut(1, { occurred_at: "2025-01-01T09:00:01.5Z" })]);
    expect(result?.kind).toBe("appended");
    if (result?.kind !== "appended") return;
    const stored = result.event;
    expect(stored.seq).toBe(1);
    expect(stored.event.id).toBe(consentEventId(optOut(1, { occurred_at: "2025-01-01T09:00:01.5Z" })));
    expect(stored.event.occurred_at).toBe("2025-01-01T09:00:01.5Z");
    expect(stored.event.observed_at).toBe(at(6));
    expect(stored.recorded_at).toBe("2025-02-01T00:00:00.000Z");
    expect(stored.prev_hash).toBe(LEDGER_GENESIS_HASH);
    expect(stored.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(await eventsForContact(store, "con_1")).toEqual([stored]);
  });

  it("stores the same observation once, and says so", async () => {
    const [first] = await appendConsentEvents(store, [optOut(1)]);
    const [second] = await appendConsentEvents(store, [{ ...optOut(1), id: consentEventId(optOut(1)) }]);
    expect(second).toMatchObject({ kind: "duplicate", appended: false });
    if (first?.kind !== "appended" || second?.kind !== "duplicate") throw new Error("unexpected results");
    expect(second.existing).toEqual(first.event);
    expect(await eventsSince(store, 0)).toHaveLength(1);
  });

  it("dedupes inside a batch and against the ledger, in one transaction, in input order", async () => {
    await appendConsentEvents(store, [optOut(1)]);
    const results = await appendConsentEvents(store, [optOut(2), optOut(1), optIn(3), optOut(2)]);
    expect(results.map((r) => r.kind)).toEqual(["appended", "duplicate", "appended", "duplicate"]);
    const [a, , , d] = results;
    if (a?.kind !== "appended" || d?.kind !== "duplicate") throw new Error("unexpected results");
    expect(d.existing.seq).toBe(a.event.seq);
    expect((await eventsSince(store, 0)).map((e) => e.seq)).toEqual([1, 2, 3]);
    expect(await verifyLedger(store)).toMatchObject({ ok: true, count: 3 });
  });

  it("rejects invalid events and foreign ids as values, and still appends the rest", async () => {
    const results = await appendConsentEvents(store, [
      { ...optOut(1), mechanism: "telepathy" } as unknown as ConsentEventDraft,
      { ...optOut(2), id: "evt_chosen_by_someone" },
      optOut(3),
    ]);
    expect(results.map((r) => (r.kind === "rejected" ? r.code : r.kind))).toEqual([
      "invalid_event",
      "id_mismatch",
      "appended",
    ]);
  });

  it("returns events in seq order, by contact and in pages", async () => {
    await appendMany(9);
    const all = await eventsSince(store, 0, 100);
    expect(all.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect((await eventsSince(store, 4, 3)).map((e) => e.seq)).toEqual([5, 6, 7]);
    expect((await eventsForContact(store, "con_1")).map((e) => e.seq)).toEqual([1, 4, 7]);
    for (let i = 1; i < all.length; i += 1) expect(all[i]?.prev_hash).toBe(all[i - 1]?.hash);
  });

  it("verifies an intact ledger in pages and returns its head", async () => {
    expect(await verifyLedger(store)).toEqual({
      ok: true,
      count: 0,
      head: { seq: 0, hash: LEDGER_GENESIS_HASH },
      sealed: false,
      erasures: 0,
    });
    await appendMany(12);
    const last = (await eventsSince(store, 11))[0];
    expect(await verifyLedger(store, { page_size: 5 })).toEqual({
      ok: true,
      count: 12,
      head: { seq: 12, hash: last?.hash },
      sealed: false,
      erasures: 0,
    });
  });

  it("reports the seq of a row edited by raw SQL", async () => {
    await appendMany(8);
    const row = (await eventsSince(store, 4, 1))[0]!;
    const forged = canonicalJson({ ...withoutEvidence(row.event), kind: "opt_in", basis: "express" });
    await tamper(store, 5, "event_json", forged);
    expect(await verifyLedger(store, { page_size: 3 })).toMatchObject({
      ok: false,
      first_broken_seq: 5,
      reason: "hash_mismatch",
    });
  });

  it.each([
    ["contact_id", "con_someone_else", "column_mismatch"],
    ["hash", "f".repeat(64), "hash_mismatch"],
    ["recorded_at", "2020-01-01T00:00:00.000Z", "hash_mismatch"],
    ["evidence_json", '{"ip":"198.51.100.9"}', "evidence_digest_mismatch"],
    ["event_json", "not json", "unreadable_row"],
  ])("reports an edit of %s at its seq", async (column, value, reason) => {
    await appendMany(6);
    await tamper(store, 3, column, value);
    expect(await verifyLedger(store)).toMatchObject({ ok: false, first_broken_seq: 3, reason });
  });

  it("reports a deleted row, in the middle or at the end", async () => {
    await appendMany(6);
    await sql`delete from consent_events where seq = 4`.execute(store.db);
    expect(await verifyLedger(store, { page_size: 2 })).toMatchObject({
      ok: false,
      first_broken_seq: 4,
      reason: "seq_gap",
    });
  });

  it("reports a deleted last row against the chain head", async () => {
    await appendMany(6);
    await sql`delete from consent_events where seq = 6`.execute(store.db);
    expect(await verifyLedger(store)).toMatchObject({ ok: false, first_broken_seq: 6, reason: "seq_gap" });
  });

  it("erases evidence, keeps its digest, and still verifies", async () => {
    await appendMany(6);
    const before = await eventsForContact(store, "con_1");
    expect(await eraseEvidence(store, "con_1")).toEqual({ erased: before.length });
    expect(await eraseEvidence(store, "con_1")).toEqual({ erased: 0 });
    const after = await eventsForContact(store, "con_1");
    expect(after.map((e) => e.event.evidence)).toEqual(after.map(() => ({})));
    expect(after.map((e) => e.evidence_digest)).toEqual(before.map((e) => e.evidence_digest));
    expect(after.every((e) => e.evidence_erased_at !== null)).toBe(true);
    // The erasure is itself a row of the chain, out of the contact's own events.
    expect(await verifyLedger(store)).toMatchObject({ ok: true, count: 7, erasures: 1 });
    expect(after).toHaveLength(before.length);
    // Re-observing an erased event is still a duplicate: the stored id does not depend on kept evidence.
    const [again] = await appendConsentEvents(store, [optOut(1)]);
    expect(again?.kind).toBe("duplicate");
    // Evidence put back on an erased row is caught.
    await tamper(store, 1, "evidence_json", '{"ip":"203.0.113.7"}');
    expect(await verifyLedger(store)).toMatchObject({
      ok: false,
      first_broken_seq: 1,
      reason: "evidence_digest_mismatch",
    });
  });

  it("exports JSONL that parses back and re-verifies without the database", async () => {
    await appendMany(7);
    const out = collect();
    expect(await exportLedger(store, "jsonl", out.stream, { page_size: 3 })).toEqual({ count: 7 });
    const lines = (await out.text())
      .trimEnd()
      .split("\n")
      .map((line) => JSON.parse(line) as JsonlRecord);
    expect(lines.map((l) => l.seq)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(lines[0]?.event).toEqual((await eventsSince(store, 0, 1))[0]?.event);
    let prev: LedgerHead = { seq: 0, hash: LEDGER_GENESIS_HASH };
    for (const line of lines) {
      expect(checkRow(prev, rowFromJsonl(line))).toBeUndefined();
      prev = { seq: line.seq, hash: line.hash };
    }
  });

  it("exports CSV with a header that parses back, optionally for one contact", async () => {
    await appendMany(7);
    const out = collect();
    expect(await exportLedger(store, "csv", out.stream, { contact_id: "con_1" })).toEqual({ count: 3 });
    const records = parse<Record<string, string>>(await out.text(), { columns: true });
    expect(Object.keys(records[0] ?? {})).toEqual([...LEDGER_CSV_COLUMNS]);
    expect(records.map((r) => r["seq"])).toEqual(["1", "4", "7"]);
    expect(records[1]).toMatchObject({ kind: "opt_in", scope: "topic:newsletter", basis: "express" });
    expect(records[0]).toMatchObject({ kind: "opt_out", scope: "global", actor_kind: "contact" });
    for (const r of records) {
      const row = r as unknown as ConsentEventRow;
      const prev = { seq: Number(r["seq"]) - 1, hash: r["prev_hash"]! };
      expect(checkRow(prev, { ...row, seq: Number(r["seq"]), evidence_erased_at: null })).toBeUndefined();
    }
  });

  it("keeps one unbroken chain under concurrent appends", async () => {
    const appends = Array.from({ length: 40 }, (_, i) =>
      appendConsentEvents(store, [optOut(i + 1), optOut(1000 + i)]),
    );
    // The same observation raced from several appenders is still stored once.
    const racing = Array.from({ length: 5 }, () => appendConsentEvents(store, [optOut(5000)]));
    const results = (await Promise.all([...appends, ...racing])).flat();
    expect(results.filter((r) => r.kind === "appended")).toHaveLength(81);
    expect(results.filter((r) => r.kind === "duplicate")).toHaveLength(4);
    expect(await verifyLedger(store, { page_size: 16 })).toMatchObject({ ok: true, count: 81 });
  });

  it("commits with the caller's transaction, or not at all", async () => {
    await expect(
      store.transaction(async (tx) => {
        await appendConsentEvents(tx, [optOut(1)]);
        await tx.checkpoints.set("cc_main", "activities", { cursor: "x" });
        throw new Error("crash before commit");
      }),
    ).rejects.toThrow("crash before commit");
    expect(await eventsSince(store, 0)).toEqual([]);
    expect(await store.consentEvents.readHead()).toEqual({ seq: 0, hash: LEDGER_GENESIS_HASH });

    await store.transaction(async (tx) => {
      await appendConsentEvents(tx, [optOut(1)]);
      await tx.checkpoints.set("cc_main", "activities", { cursor: "x" });
    });
    expect(await eventsSince(store, 0)).toHaveLength(1);
    expect(await verifyLedger(store)).toMatchObject({ ok: true, count: 1 });
  });
});

describeOnBackends("the ledger against someone who can write to the database", (backend) => {
  const sealer = ledgerSealer(secretKeyFromBytes(Buffer.alloc(32, 3)));
  let t: TestStore;
  let store: Store;

  beforeEach(async () => {
    t = await backend.create({ clock: () => new Date("2025-02-01T00:00:00.000Z"), ledger_sealer: sealer });
    store = t.store;
    await appendConsentEvents(
      store,
      Array.from({ length: 6 }, (_, i) => optOut(i + 1)),
    );
  });
  afterEach(async () => {
    await t.cleanup();
  });

  /** What a database administrator can do without the key: recompute every hash from `seq` on. */
  const rechain = async (from: number) => {
    const rows = await store.consentEvents.page(0, 1000);
    let prev: LedgerHead = { seq: 0, hash: LEDGER_GENESIS_HASH };
    for (const row of rows) {
      if (row.seq >= from) {
        const hash = computeChainHash(prev.hash, {
          seq: row.seq,
          event: JSON.parse(row.event_json) as Record<string, unknown>,
          evidence_digest: row.evidence_digest,
          recorded_at: row.recorded_at,
        });
        await sql`update consent_events set prev_hash = ${prev.hash}, hash = ${hash} where seq = ${row.seq}`.execute(
          store.db,
        );
        prev = { seq: row.seq, hash };
      } else prev = { seq: row.seq, hash: row.hash };
    }
    await store.consentEvents.setHead(prev);
  };

  it("seals every row, so an edit with a recomputed chain is caught by the key, not by the chain", async () => {
    expect(await verifyLedger(store, { sealer })).toMatchObject({ ok: true, count: 6, sealed: true });
    await tamper(
      store,
      3,
      "event_json",
      (await store.consentEvents.page(2, 1))[0]!.event_json.replace("unsubscribe_link", "admin_edit"),
    );
    await rechain(3);
    // The chain alone is fooled: that is what a key outside the database is for.
    expect(await verifyLedger(store)).toMatchObject({ ok: true, sealed: false });
    expect(await verifyLedger(store, { sealer })).toMatchObject({
      ok: false,
      first_broken_seq: 3,
      reason: "seal_mismatch",
    });
  });

  it("names a row sealed by another key, and a row left unsealed", async () => {
    const other = ledgerSealer(secretKeyFromBytes(Buffer.alloc(32, 4)));
    expect(await verifyLedger(store, { sealer: other })).toMatchObject({
      ok: false,
      first_broken_seq: 1,
      reason: "seal_other_key",
    });
    await tamper(store, 2, "seal", "");
    await sql`update consent_events set seal = null where seq = 2`.execute(store.db);
    expect(await verifyLedger(store, { sealer })).toMatchObject({
      ok: false,
      first_broken_seq: 2,
      reason: "unsealed_row",
    });
  });

  it("catches a truncated or rewritten history against a head kept outside the database", async () => {
    const anchor = await store.consentEvents.readHead();
    await appendConsentEvents(store, [optOut(7)]);
    expect(await verifyLedger(store, { sealer, expect_head: anchor })).toMatchObject({ ok: true, count: 7 });

    // Rows removed from the end and the head moved back: every remaining seal is genuine.
    await sql`delete from consent_events where seq >= 5`.execute(store.db);
    await store.consentEvents.setHead({ seq: 4, hash: (await store.consentEvents.page(3, 1))[0]!.hash });
    expect(await verifyLedger(store, { sealer })).toMatchObject({ ok: true, count: 4 });
    expect(await verifyLedger(store, { sealer, expect_head: anchor })).toMatchObject({
      ok: false,
      first_broken_seq: 5,
      reason: "anchor_missing",
    });

    // A history rewritten before the anchor (unsealed ledgers cannot tell otherwise).
    await tamper(store, 2, "recorded_at", "2025-03-01T00:00:00.000Z");
    await rechain(2);
    expect(await verifyLedger(store, { expect_head: { seq: 4, hash: anchor.hash } })).toMatchObject({
      ok: false,
      first_broken_seq: 4,
      reason: "anchor_mismatch",
    });
    expect(parseLedgerHead(`${anchor.seq}:${anchor.hash}`)).toEqual(anchor);
    expect(parseLedgerHead("6:nothex")).toBeUndefined();
  });

  it("tells evidence wiped in the database from an erasure Concord made and chained", async () => {
    await sql`update consent_events set evidence_json = '{}', evidence_erased_at = '2025-02-02T00:00:00.000Z'`.execute(
      store.db,
    );
    expect(await verifyLedger(store, { sealer })).toMatchObject({
      ok: false,
      first_broken_seq: 1,
      reason: "erasure_unrecorded",
    });
  });

  it("keeps a real erasure verifiable, sealed, and an erasure row forged without the key caught", async () => {
    expect(await eraseEvidence(store, "con_1", { erasure_id: "era_test" })).toEqual({ erased: 2 });
    expect(await verifyLedger(store, { sealer })).toMatchObject({ ok: true, count: 7, erasures: 1 });
    const out = collect();
    await exportLedger(store, "jsonl", out.stream);
    const last = JSON.parse((await out.text()).trimEnd().split("\n").at(-1)!) as Record<string, unknown>;
    expect(last).toMatchObject({
      seq: 7,
      erasure: {
        kind: "evidence_erasure",
        erased_contact_id: "con_1",
        through_seq: 6,
        erasure_id: "era_test",
      },
    });

    // Someone wipes another contact's evidence and appends an erasure row of their own making.
    await sql`update consent_events set evidence_json = '{}', evidence_erased_at = '2025-02-02T00:00:00.000Z' where contact_id = 'con_2'`.execute(
      store.db,
    );
    const forged = await store.transaction(async (tx) => {
      const head = await tx.consentEvents.lockHead();
      const plain = { ...tx, sealer: undefined } as Store;
      return appendErasureRow(plain, head, "con_2", undefined);
    });
    expect(forged.seq).toBe(8);
    expect(await verifyLedger(store)).toMatchObject({ ok: true, erasures: 2 });
    expect(await verifyLedger(store, { sealer })).toMatchObject({
      ok: false,
      first_broken_seq: 8,
      reason: "unsealed_row",
    });
  });

  it("seals a ledger written without the key once its chain verifies, and refuses an edited one", async () => {
    await sql`update consent_events set seal = null`.execute(store.db);
    expect(await verifyLedger(store, { sealer })).toMatchObject({ ok: false, reason: "unsealed_row" });
    expect(await sealLedger(store, sealer, { page_size: 4 })).toMatchObject({ ok: true, sealed: 6 });
    expect(await verifyLedger(store, { sealer })).toMatchObject({ ok: true, count: 6 });
    expect(await sealLedger(store, sealer)).toMatchObject({ ok: true, sealed: 0 });

    await sql`update consent_events set seal = null where seq = 5`.execute(store.db);
    await tamper(store, 4, "hash", "f".repeat(64));
    expect(await sealLedger(store, sealer)).toMatchObject({
      ok: false,
      verify: { first_broken_seq: 4, reason: "hash_mismatch" },
    });
    expect((await store.consentEvents.page(4, 1))[0]?.seal).toBeNull();
  });

  it("refuses to seal rows rewritten after sealed ones unless the operator knows them", async () => {
    // Someone edits row 3 without the key, recomputes the chain and drops the seals that no longer fit.
    await tamper(
      store,
      3,
      "event_json",
      (await store.consentEvents.page(2, 1))[0]!.event_json.replace("unsubscribe_link", "admin_edit"),
    );
    await rechain(3);
    await sql`update consent_events set seal = null where seq >= 3`.execute(store.db);
    expect(await verifyLedger(store, { sealer })).toMatchObject({
      ok: false,
      first_broken_seq: 3,
      reason: "unsealed_row",
    });
    const refused = await sealLedger(store, sealer);
    expect(refused).toMatchObject({ ok: false });
    expect(refused.ok ? "" : refused.verify === undefined ? refused.problem : "").toContain(
      "row 3 has no seal",
    );
    expect((await store.consentEvents.page(2, 1))[0]?.seal).toBeNull();
    expect(await sealLedger(store, sealer, { force: true })).toMatchObject({ ok: true, sealed: 4 });
  });

  it("counts an erasure committed while verify walked the chain", async () => {
    const before = await store.consentEvents.readHead();
    await eraseEvidence(store, "con_1");
    // Verify read the head before the erasure committed: its erasure row lies past that head.
    await store.consentEvents.setHead(before);
    expect(await verifyLedger(store, { sealer })).toMatchObject({ ok: true, count: 6 });
  });

  it("records earlier erasures without the key", async () => {
    await sql`update consent_events set evidence_json = '{}', evidence_erased_at = '2025-02-02T00:00:00.000Z' where contact_id = 'con_0'`.execute(
      store.db,
    );
    expect(await sealLedger(store, undefined, { record_erasures: true })).toMatchObject({
      ok: true,
      sealed: 0,
      erasures_recorded: 1,
    });
    expect(await verifyLedger(store)).toMatchObject({ ok: true, erasures: 1 });
  });

  it("records erasures made before erasures were chained only when asked", async () => {
    await sql`update consent_events set evidence_json = '{}', evidence_erased_at = '2025-02-02T00:00:00.000Z' where contact_id = 'con_0'`.execute(
      store.db,
    );
    expect(await sealLedger(store, sealer)).toMatchObject({
      ok: false,
      verify: { reason: "erasure_unrecorded" },
    });
    expect(await sealLedger(store, sealer, { record_erasures: true })).toMatchObject({
      ok: true,
      sealed: 0,
      erasures_recorded: 1,
    });
    expect(await verifyLedger(store, { sealer })).toMatchObject({ ok: true, count: 7, erasures: 1 });
  });
});

type JsonlRecord = {
  seq: number;
  event: ConsentEvent;
  evidence_digest: string;
  evidence_erased_at: string | null;
  recorded_at: string;
  prev_hash: string;
  hash: string;
  seal: string | null;
};

function rowFromJsonl(line: JsonlRecord): ConsentEventRow {
  return {
    seq: line.seq,
    id: line.event.id,
    contact_id: line.event.contact_id,
    occurred_at: line.event.occurred_at,
    observed_at: line.event.observed_at,
    event_json: canonicalJson(withoutEvidence(line.event)),
    evidence_json: canonicalJson(line.event.evidence),
    evidence_digest: line.evidence_digest,
    evidence_erased_at: line.evidence_erased_at,
    recorded_at: line.recorded_at,
    prev_hash: line.prev_hash,
    hash: line.hash,
    seal: line.seal,
  };
}

function collect() {
  const stream = new PassThrough();
  const chunks: Buffer[] = [];
  stream.on("data", (chunk: Buffer) => chunks.push(chunk));
  const done = new Promise<void>((resolve) => stream.on("end", resolve));
  return {
    stream,
    text: async () => {
      await done;
      return Buffer.concat(chunks).toString("utf8");
    },
  };
}
