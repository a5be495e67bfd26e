/**
 * The operator override (seed 003's third lawful way back) over the emulators: refused without the
 * person's written request as evidence; with it, the opt-outs made before the request are lifted,
 * explain shows why, the CRM gets the opt-in with its provenance, and the platform where only the
 * person may resubscribe sends its confirmation email.
 */
import { afterEach, describe, expect, it } from "vitest";
import { eventsForContact } from "../ledger/consent-ledger";
import { explainContact, formatExplanation } from "../explain/explain-contact";
import { recordOperatorOverride } from "./operator-override";
import {
  addToReList,
  individual,
  sqliteBackend,
  startSyncHarness,
  RE_LISTS,
  type SyncHarness,
} from "../../test/support/sync-harness";

const sqlite = sqliteBackend();

describe("operator override with written evidence", () => {
  let h: SyncHarness;
  afterEach(async () => {
    await h.close();
  });

  it("is refused without evidence; with it, lifts earlier opt-outs, shows in explain and reaches each system by its lawful path", async () => {
    h = await startSyncHarness(sqlite);
    const [ada] = await h.seedRe([individual("ada@example.org", "Ada", "Lovelace")]);
    await addToReList(h, RE_LISTS.news, [ada!]);
    await h.sync();
    await h.ccAct(h.ccMain, "unsubscribe", "ada@example.org");
    h.advance(60_000);
    await h.sync();
    expect(h.ccContact(h.ccMain, "ada@example.org")?.email_address?.permission_to_send).toBe("unsubscribed");
    const [contact] = await h.store.contacts.findByMatchKey("ada@example.org");
    const deps = { store: h.store, config: h.config, now: h.now };
    const ledgerSize = async () => (await eventsForContact(h.store, contact!.id)).length;
    const before = await ledgerSize();

    // An operator's word alone lifts nothing.
    const refused = await recordOperatorOverride(deps, {
      contact_id: contact!.id,
      scope: { kind: "global" },
      request_reference: "  ",
      requested_at: h.now().toISOString(),
      recorded_by: "J. Smith",
    });
    expect(refused).toMatchObject({ ok: false, code: "evidence_required" });
    expect(
      await recordOperatorOverride(deps, {
        contact_id: contact!.id,
        scope: { kind: "topic", topic: "newsleter" },
        request_reference: "ticket 9",
        requested_at: h.now().toISOString(),
        recorded_by: "J. Smith",
      }),
    ).toMatchObject({ ok: false, code: "unknown_topic" });
    expect(await ledgerSize()).toBe(before);

    // A request dated before the opt-out lifts nothing; the one she wrote afterwards does.
    const earlier = await recordOperatorOverride(deps, {
      contact_id: contact!.id,
      scope: { kind: "global" },
      request_reference: "letter 2026-05-01",
      requested_at: "2026-05-01T09:00:00Z",
      recorded_by: "J. Smith",
    });
    expect(earlier).toMatchObject({ ok: true, lifted: [], now: { sendable: false } });
    // Ada writes in; she unsubscribes again before the operator records her letter, two days on:
    // the request lifts what she did before it, never what she did after.
    h.advance(60_000);
    const wroteAt = h.now().toISOString();
    h.advance(86_400_000);
    await h.ccAct(h.ccMain, "spam_complaint", "ada@example.org");
    h.advance(60_000);
    await h.sync();
    h.advance(86_400_000);
    const late = await recordOperatorOverride(deps, {
      contact_id: contact!.id,
      scope: { kind: "global" },
      request_reference: "letter 7",
      requested_at: wroteAt,
      recorded_by: "J. Smith",
    });
    expect(late).toMatchObject({ ok: true, now: { sendable: false } });

    h.advance(60_000);
    const override = await recordOperatorOverride(deps, {
      contact_id: contact!.id,
      scope: { kind: "global" },
      request_reference: "ticket 4411",
      request_text: "Please send me the newsletter again. — Ada",
      requested_at: h.now().toISOString(),
      recorded_by: "J. Smith",
    });
    if (!override.ok) throw new Error(override.message);
    expect(override.lifted.length).toBeGreaterThan(0);
    expect(override.now).toEqual({ sendable: true, rule: "lifted_by_operator_override" });
    // The same request recorded twice is one event.
    const again = await recordOperatorOverride(deps, {
      contact_id: contact!.id,
      scope: { kind: "global" },
      request_reference: "ticket 4411",
      request_text: "Please send me the newsletter again. — Ada",
      recorded_by: "J. Smith",
      requested_at: (await eventsForContact(h.store, contact!.id)).at(-1)!.event.occurred_at,
    });
    expect(again).toMatchObject({ ok: true, recorded: "duplicate", event_id: override.event_id });

    const explained = await explainContact(h.store, h.config, "ada@example.org");
    const text = formatExplanation(explained);
    expect(text).toContain("lifted_by_operator_override");
    expect(text).toContain("by operator J. Smith");
    expect(text).toContain("ticket 4411");

    // The next sync: Raiser's Edge NXT records the opt-in; Constant Contact lets only Ada resubscribe,
    // so she is sent its confirmation email and waits for her own click.
    h.advance(60_000);
    const sync = await h.sync();
    expect(sync.execution?.rejections).toEqual([]);
    const constituent = (await h.reGet(`/constituent/v1/constituents/${ada!}`)) as {
      requests_no_email?: boolean;
    };
    expect(constituent.requests_no_email).toBe(false);
    expect(sync.plan?.waiting.map((w) => w.connection_id)).toContain("cc-main");
    expect(h.ccMain.store.confirmationEmails.filter((m) => m.email === "ada@example.org")).toHaveLength(1);
  });

  it("refuses a loose date and evidence longer than the ledger keeps, saying which; long references alike are two requests", async () => {
    h = await startSyncHarness(sqlite);
    const [ada] = await h.seedRe([individual("ada@example.org", "Ada", "Lovelace")]);
    await addToReList(h, RE_LISTS.news, [ada!]);
    await h.sync();
    const [contact] = await h.store.contacts.findByMatchKey("ada@example.org");
    const deps = { store: h.store, config: h.config, now: h.now };
    const override = (fields: Partial<Parameters<typeof recordOperatorOverride>[1]>) =>
      recordOperatorOverride(deps, {
        contact_id: contact!.id,
        scope: { kind: "global" },
        request_reference: "ticket 12",
        requested_at: "2026-03-05T10:00:00Z",
        recorded_by: "J. Smith",
        ...fields,
      });
    const before = (await eventsForContact(h.store, contact!.id)).length;
    // Each would be read as some date: day and month swapped, 30 February as 2 March, a local time
    // in the machine's zone, a year alone. Dated after a later opt-out, it would lift it.
    for (const requested_at of ["05/03/2026", "2026-02-30T10:00:00Z", "2026-03-05T10:00:00", "1"])
      expect(await override({ requested_at })).toMatchObject({
        ok: false,
        code: "invalid_request",
        message: expect.stringContaining("ISO-8601 date-time with its offset (2026-12-01T09:30:00Z)"),
      });
    for (const [field, length] of [
      ["request_reference", 501],
      ["request_text", 1001],
      ["recorded_by", 201],
    ] as const)
      expect(await override({ [field]: "x".repeat(length) })).toMatchObject({
        ok: false,
        code: "invalid_request",
        message: expect.stringContaining(`${field}: at most ${length - 1} characters, found ${length}`),
      });
    expect((await eventsForContact(h.store, contact!.id)).length).toBe(before);

    const alike = "Correspondence folder 2026/Q1, ".repeat(6);
    const first = await override({ request_reference: `${alike}letter A` });
    const second = await override({ request_reference: `${alike}letter B` });
    expect(first).toMatchObject({ ok: true, recorded: "appended" });
    expect(second).toMatchObject({ ok: true, recorded: "appended" });
    const recorded = (await eventsForContact(h.store, contact!.id)).map((e) => e.event).slice(before);
    expect(recorded.map((e) => (e.kind === "opt_in" ? e.evidence.request_reference : undefined))).toEqual([
      `${alike}letter A`,
      `${alike}letter B`,
    ]);
  });
});
