// Plan marks (ADR 29, ADR 30): a whole-pair plan skips the contacts an earlier plan found nothing to
// do for while nothing they are planned from changed (their plan revision did not move on). The plan must be exactly the one planning every
// contact would make: after any change to a contact's rows, to the config, or once time moves past
// what a contact's consent depends on.
import type { KyselyPlugin } from "kysely";
import { afterEach, beforeEach, expect, it } from "vitest";
import { BENCH_PAIR, generateStore, MAIN, CRM } from "../../bench/generate-store";
import { appendConsentEvents } from "../ledger/consent-ledger";
import type { ResolvedPair } from "../pipeline/resolve-pair";
import { describeOnBackends, type TestStore } from "../../test/support/store-backends";
import { dropMarksOfOtherPairs } from "../pipeline/plan-marks";
import { planFromStore } from "./sync-pair";
import { planStands, recordPlanStanding } from "../pipeline/plan-standing";
import { FIELD_LINK_WINDOW_MS } from "./personal-links";
import { sqlStoreSession } from "../store/sql/sql-store-session";
import { insertBareContacts } from "../../test/support/bare-contacts";

const N = 1_200;
const NOW = new Date("2026-06-01T12:00:00.000Z");

describeOnBackends("plan marks", (backend) => {
  let t: TestStore;
  beforeEach(async () => {
    t = await backend.create();
    await generateStore({ n: N, store: t.store, sqliteFile: t.file, chunk: 400 });
  });
  afterEach(async () => {
    await t.cleanup();
  });

  /** A whole-pair plan; `marks: false` plans every contact (a plan that visits each one uses no marks). */
  const plan = (marks: boolean, at: Date = NOW, resolved: ResolvedPair = BENCH_PAIR) =>
    planFromStore({ store: t.store, now: () => at }, resolved, marks ? {} : { visit: () => undefined });

  /** The contact opts out of all email in the CRM (an admin ticks "Requests no email"). */
  const crmOptOut = (contactId: string) =>
    appendConsentEvents(t.store, [
      {
        kind: "opt_out",
        scope: { kind: "global" },
        contact_id: contactId,
        channel: "email",
        source: { system: "blackbaud-renxt", connection: CRM },
        mechanism: "admin_edit",
        actor: { kind: "account" },
        occurred_at: "2026-06-01T09:00:00.000Z",
        observed_at: "2026-06-01T09:05:00.000Z",
        evidence: { reason: "Requests no email is set on the constituent" },
      },
    ]);

  /** The contact signs up on a platform's form: an implied opt-in that expires at `expires`. */
  const impliedOptIn = (contactId: string, expires: string) =>
    appendConsentEvents(t.store, [
      {
        kind: "opt_in",
        scope: { kind: "global" },
        contact_id: contactId,
        channel: "email",
        source: { system: "constant-contact", connection: MAIN },
        mechanism: "signup_form",
        actor: { kind: "contact" },
        basis: "implied",
        expires_at: expires,
        occurred_at: "2026-05-30T09:00:00.000Z",
        observed_at: "2026-05-30T09:05:00.000Z",
        evidence: { reason: "Signed up on a form" },
      },
    ]);

  /** Records a standing as a run does after `planned` (the generated pair has work; each test says how much). */
  const recordStanding = (planned: Awaited<ReturnType<typeof plan>>, operations = 0) => {
    if (planned.standing === undefined || planned.key === undefined)
      throw new Error("a whole plan has a standing");
    return recordPlanStanding(t.store, BENCH_PAIR.pair.id, {
      key: planned.key,
      contacts: planned.contacts_planned,
      ...planned.standing,
      operations,
      run_id: "run_test",
      planned_at: NOW.toISOString(),
      checked_at: NOW.toISOString(),
    });
  };

  const marked = async (): Promise<string[]> =>
    (await t.store.db.selectFrom("plan_marks").select("contact_id").orderBy("contact_id").execute()).map(
      (r) => r.contact_id,
    );

  it("adds the contacts unchanged since a plan as their marks keep them, and the plan is the one planning every contact makes", async () => {
    const every = await plan(false);
    expect(await marked()).toEqual([]);
    const first = await plan(true);
    expect(first.contacts_unchanged).toBe(0);
    expect(first.plan).toEqual(every.plan);
    // Every contact is marked, those with work (the generator leaves about a fifth with some: new
    // opt-outs, changes, contacts to import) as well as those with none.
    expect((await marked()).length).toBe(N);
    expect(every.plan.operations.length).toBeGreaterThan(N / 20);

    const again = await plan(true);
    expect(again.contacts_planned).toBe(N);
    expect(again.contacts_unchanged).toBe(N);
    expect(again.plan).toEqual(every.plan);
    // Skipped records are counted, and listed, as if planned.
    expect(again.plan.counts.skipped_records).toBeGreaterThan(N / 2);
  });

  it("plans a marked contact again when its ledger, a record, its baselines or a refusal changed", async () => {
    await plan(true);
    const [a, b, c, d] = await marked();
    if (a === undefined || b === undefined || c === undefined || d === undefined)
      throw new Error("too few marked");

    // a: opts out in the CRM. A plan that skipped them would never carry it to the platforms.
    await crmOptOut(a);
    // b: their record on the platform moved (a new first name).
    const link = await t.store.db
      .selectFrom("links")
      .innerJoin("record_snapshots", (j) =>
        j
          .onRef("record_snapshots.connection_id", "=", "links.connection_id")
          .onRef("record_snapshots.external_id", "=", "links.external_id"),
      )
      .select(["links.external_id", "record_snapshots.payload_json"])
      .where("links.contact_id", "=", b)
      .where("links.connection_id", "=", MAIN)
      .executeTakeFirstOrThrow();
    const payload = JSON.parse(link.payload_json) as Record<string, unknown>;
    await t.store.snapshots.put({
      connection_id: MAIN,
      external_id: link.external_id,
      content_hash: "changed",
      payload: { ...payload, first_name: "Renamed" },
    });
    // c: its baselines were rewritten; d: a platform refused its address.
    await t.store.db.deleteFrom("baselines").where("contact_id", "=", c).execute();
    await t.store.db
      .insertInto("platform_rejections")
      .values({
        contact_id: d,
        connection_id: MAIN,
        email_match_key: "d@example.org",
        code: "invalid_address",
        message: "refused",
        rejected_at: NOW.toISOString(),
      })
      .execute();

    const before = (await marked()).length;
    const withMarks = await plan(true);
    const every = await plan(false);
    expect(withMarks.plan).toEqual(every.plan);
    expect(withMarks.contacts_unchanged).toBe(before - 4);
    const touched = new Set(
      withMarks.plan.operations
        .filter((o) => o.reason.code === "opt_out_to_platform")
        .flatMap((o) => o.contact_ids),
    );
    expect(touched.has(a)).toBe(true);
    expect(
      withMarks.plan.operations.some(
        (o) => o.reason.code === "profile_fields_changed" && o.contact_ids.includes(b),
      ),
    ).toBe(true);
  });

  it("on pages after a settled one (revisions read without the contact rows), a changed contact is planned from its rows as they are now", async () => {
    await plan(true);
    const all = await marked();
    // The last page's contacts (pages of 500): the pages before them were settled by their marks.
    const [e, f] = all.slice(-2);
    if (e === undefined || f === undefined) throw new Error("too few marked");
    // e: opts out in the CRM; f: flagged "do not contact" on the contact row itself.
    await crmOptOut(e);
    await t.store.db
      .updateTable("contacts")
      .set({ flags_json: '["do_not_contact"]' })
      .where("id", "=", f)
      .execute();

    const withMarks = await plan(true);
    const every = await plan(false);
    expect(withMarks.plan).toEqual(every.plan);
    expect(withMarks.contacts_unchanged).toBe(N - 2);
    // Marked again at their new revisions: the next plan adds every contact as marked, the same plan.
    const again = await plan(true);
    expect(again.contacts_unchanged).toBe(N);
    expect(again.plan).toEqual(every.plan);
  });

  it("a refresh plans every contact, trusting no mark, and marks them anew", async () => {
    await plan(true);
    const [a] = await marked();
    if (a === undefined) throw new Error("none marked");
    // A mark that lies (its records skipped emptied, its revision kept): reused, it is believed.
    await t.store.db
      .updateTable("plan_marks")
      .set({ outcome_json: '{"skipped":[]}' })
      .where("contact_id", "=", a)
      .execute();
    const every = await plan(false);
    expect((await plan(true)).plan.counts).not.toEqual(every.plan.counts);

    const refreshed = await planFromStore({ store: t.store, now: () => NOW }, BENCH_PAIR, {
      marks: "refresh",
    });
    expect(refreshed.contacts_unchanged).toBe(0);
    expect(refreshed.plan).toEqual(every.plan);
    expect((await plan(true)).plan).toEqual(every.plan);
  });

  it("a mark that cannot be read is no mark: the contact is planned", async () => {
    await plan(true);
    const [a] = await marked();
    if (a === undefined) throw new Error("none marked");
    const before = (await plan(true)).contacts_unchanged;
    await t.store.db
      .updateTable("plan_marks")
      .set({ outcome_json: "{not json" })
      .where("contact_id", "=", a)
      .execute();
    const withMarks = await plan(true);
    expect(withMarks.contacts_unchanged).toBe(before - 1);
    expect(withMarks.plan).toEqual((await plan(false)).plan);
  });

  it("plans every contact again when the pair's settings change", async () => {
    await plan(true);
    const changed: ResolvedPair = {
      ...BENCH_PAIR,
      policies: {
        ...BENCH_PAIR.policies,
        propagate_crm_opt_outs: !BENCH_PAIR.policies.propagate_crm_opt_outs,
      },
    };
    const withMarks = await plan(true, NOW, changed);
    expect(withMarks.contacts_unchanged).toBe(0);
    expect(withMarks.plan).toEqual((await plan(false, NOW, changed)).plan);
  });

  it("plans a contact again once time passes what its consent depends on: an implied opt-in's expiry", async () => {
    await plan(true);
    const [a] = await marked();
    if (a === undefined) throw new Error("none marked");
    const expires = "2026-06-10T00:00:00.000Z";
    await impliedOptIn(a, expires);
    const beforeExpiry = await plan(true);
    const mark = await t.store.db
      .selectFrom("plan_marks")
      .selectAll()
      .where("contact_id", "=", a)
      .executeTakeFirstOrThrow();
    expect(mark.valid_until).toBe(expires);
    const stillBefore = await plan(true, new Date("2026-06-09T23:59:00.000Z"));
    expect(stillBefore.contacts_unchanged).toBe(beforeExpiry.contacts_unchanged + 1);

    const after = new Date("2026-06-10T00:00:00.000Z");
    const withMarks = await plan(true, after);
    expect(withMarks.contacts_unchanged).toBe(stillBefore.contacts_unchanged - 1);
    expect(withMarks.plan).toEqual((await plan(false, after)).plan);
  });

  it("does not believe a mark made from rows read before a change: the change moved the revision past it", async () => {
    await plan(true);
    const [a] = await marked();
    if (a === undefined) throw new Error("none marked");
    const stale = await t.store.db
      .selectFrom("plan_marks")
      .selectAll()
      .where("contact_id", "=", a)
      .executeTakeFirstOrThrow();
    const before = (await plan(true)).contacts_unchanged;
    // A plan read the contact, an opt-out arrived, and the plan wrote its mark afterwards: the mark
    // holds the revision read before the opt-out.
    await crmOptOut(a);
    await t.store.db
      .updateTable("plan_marks")
      .set({ plan_rev: stale.plan_rev, outcome_json: stale.outcome_json })
      .where("contact_id", "=", a)
      .execute();
    const withMarks = await plan(true);
    expect(withMarks.contacts_unchanged).toBe(before - 1);
    expect(withMarks.plan).toEqual((await plan(false)).plan);
    expect(
      withMarks.plan.operations.some(
        (o) => o.reason.code === "opt_out_to_platform" && o.contact_ids.includes(a),
      ),
    ).toBe(true);
  });

  /** The pair with personal links written into a field of the main account. */
  const withLinks: ResolvedPair = {
    ...BENCH_PAIR,
    pair: {
      ...BENCH_PAIR.pair,
      platforms: BENCH_PAIR.pair.platforms.map((p) =>
        p.connection_id === MAIN ? { ...p, link_fields: { one_click: "UNSUBSCRIBE_URL" } } : p,
      ),
    },
  };

  it("with personal links: plans a contact again when its links are revoked, and every contact in a new window", async () => {
    const links = {
      key: Buffer.alloc(32, 7),
      public_url: "https://concord.example.org",
      ttl_ms: 60 * 86_400_000,
    };
    const linked = (marks: boolean, at: Date = NOW) =>
      planFromStore(
        { store: t.store, now: () => at, links },
        withLinks,
        marks ? {} : { visit: () => undefined },
      );
    await linked(true);
    const first = await linked(true);
    expect(first.contacts_unchanged).toBeGreaterThan(0);
    const [a] = await marked();
    if (a === undefined) throw new Error("none marked");
    await t.store.db
      .insertInto("link_generations")
      .values({ contact_id: a, generation: 1, revoked_at: NOW.toISOString() })
      .execute();
    const revoked = await linked(true);
    expect(revoked.contacts_unchanged).toBe(first.contacts_unchanged - 1);
    expect(revoked.plan).toEqual((await linked(false)).plan);

    // Links are signed per window: the next window's links differ for everyone.
    const nextWindow = new Date(NOW.getTime() + FIELD_LINK_WINDOW_MS);
    const later = await linked(true, nextWindow);
    expect(later.contacts_unchanged).toBe(0);
    expect(later.plan).toEqual((await linked(false, nextWindow)).plan);
  });

  it("with personal links: a revocation while a plan runs leaves no mark made with the revoked links", async () => {
    const plain = {
      key: Buffer.alloc(32, 7),
      public_url: "https://concord.example.org",
      ttl_ms: 60 * 86_400_000,
    };
    const linked = (links: typeof plain, marks: boolean) =>
      planFromStore(
        { store: t.store, now: () => NOW, links },
        withLinks,
        marks ? {} : { visit: () => undefined },
      );
    await linked(plain, true);
    // A contact of the last page, on the account whose field holds its links.
    const onMain = await t.store.db
      .selectFrom("links")
      .select("contact_id")
      .where("connection_id", "=", MAIN)
      .orderBy("contact_id", "desc")
      .executeTakeFirstOrThrow();
    // The revocation starts once the plan has read the link generations (the links are first signed
    // for the plan's key) and lands while it reads its pages.
    let revocation: Promise<unknown> | undefined;
    const racing = {
      ...plain,
      get public_url(): string {
        revocation ??= t.store.db
          .insertInto("link_generations")
          .values({ contact_id: onMain.contact_id, generation: 1, revoked_at: NOW.toISOString() })
          .execute();
        return plain.public_url;
      },
    };
    await linked(racing, true);
    await revocation;
    const again = await linked(plain, true);
    expect(again.plan).toEqual((await linked(plain, false)).plan);
  });

  it("a plan stands while no contact of the pair changed since it was made; a change, a new key, a passed instant or list changes end it", async () => {
    const first = await plan(true);
    const key = first.key ?? "";
    expect(first.contacts_planned).toBe(N);
    // Every contact of the generated pair gets a mark (the generator's work is all rows can tell).
    expect(first.standing?.unmarked).toBe(0);
    /** Checks as a poll does, keeping the instant the check moves on to. */
    const stands = async (at: Date = NOW, resolved: ResolvedPair = BENCH_PAIR, k = key) => {
      const standing = await planStands(t.store, resolved, k, at.toISOString());
      if (standing !== undefined) await recordPlanStanding(t.store, BENCH_PAIR.pair.id, standing);
      return standing !== undefined;
    };
    expect(await stands()).toBe(false); // none recorded
    await recordStanding(first, 1);
    expect(await stands()).toBe(false); // it had work to do
    await recordStanding({
      ...first,
      standing: { ...(first.standing ?? { since: "", until: null }), unmarked: 1 },
    });
    expect(await stands()).toBe(false); // a contact it could not mark
    await recordStanding(first);
    expect(await stands()).toBe(true);
    expect(await stands()).toBe(true);
    expect(await stands(NOW, BENCH_PAIR, "another key")).toBe(false);
    expect(
      await stands(NOW, {
        ...BENCH_PAIR,
        list_changes: [
          {
            connection_id: MAIN,
            reason: { code: "list_created", message: "Gala follows the CRM list Gala" },
            operation: { kind: "create_list", name: "Gala" },
          },
        ],
      }),
    ).toBe(false);

    // A contact's implied opt-in that expires: planned again, and stands until it expires.
    const [a, b, c, d] = await marked();
    if (a === undefined || b === undefined || c === undefined || d === undefined)
      throw new Error("too few marked");
    const expires = "2026-06-10T00:00:00.000Z";
    await impliedOptIn(a, expires);
    expect(await stands()).toBe(false);
    await recordStanding(await plan(true));
    expect(await stands()).toBe(true);
    expect(await stands(new Date("2026-06-09T23:59:00.000Z"))).toBe(true);
    expect(await stands(new Date(expires))).toBe(false);

    // A CRM opt-out, written in the store by whatever path: no longer standing.
    await crmOptOut(b);
    expect(await stands()).toBe(false);
    await recordStanding(await plan(true));
    expect(await stands()).toBe(true);

    // A change to a contact of no connection of the pair: the plan still stands, and the check
    // moves its instant on past it.
    const outsider = "contact_outside_the_pair";
    await insertBareContacts(
      t.store.db,
      [{ contact_id: outsider, connection_id: "another-connection", external_id: "x-1" }],
      NOW.toISOString(),
    );
    await crmOptOut(outsider);
    expect(await stands()).toBe(true);

    // ... until it is linked to the pair: a new contact of the pair.
    await t.store.db
      .insertInto("links")
      .values({
        connection_id: MAIN,
        external_id: "joined-1",
        contact_id: outsider,
        origin: "observed",
        created_at: NOW.toISOString(),
        updated_at: NOW.toISOString(),
      })
      .execute();
    expect(await stands()).toBe(false);
    await recordStanding(await plan(true));
    expect(await stands()).toBe(true);

    // A contact gone from the pair (its links deleted): its mark still names it.
    await t.store.db.deleteFrom("links").where("contact_id", "=", c).execute();
    expect(await stands()).toBe(false);
    await recordStanding(await plan(true));
    expect(await stands()).toBe(true);

    // A contact erased: no links and no mark left, but erased since the plan.
    await t.store.db.deleteFrom("links").where("contact_id", "=", d).execute();
    await t.store.db.deleteFrom("plan_marks").where("contact_id", "=", d).execute();
    await t.store.db
      .updateTable("contacts")
      .set({ erased_at: NOW.toISOString() })
      .where("id", "=", d)
      .execute();
    expect(await stands()).toBe(false);
  });

  it.runIf(backend.name === "postgres")(
    "a change in flight when a plan starts, committed after the plan, ends its standing",
    async () => {
      await plan(true);
      const [a] = await marked();
      if (a === undefined) throw new Error("no contact");
      let release = (): void => undefined;
      const held = new Promise<void>((resolve) => (release = resolve));
      let written = (): void => undefined;
      const wrote = new Promise<void>((resolve) => (written = resolve));
      // A writer that has changed a contact but not committed when the plan takes its instant: the
      // plan reads the contact as it was, so the change must count as after the plan.
      const writer = t.store.transaction(async (tx) => {
        await tx.db.updateTable("contacts").set({ given_name: "Renamed" }).where("id", "=", a).execute();
        written();
        await held;
      });
      await wrote;
      // A later transaction commits first, so the plan's instant lies past the writer's id too.
      await t.store.checkpoints.set("test", "a later commit", { at: NOW.toISOString() });
      const planned = await plan(true);
      release();
      await writer;
      await recordStanding(planned);
      const key = planned.key ?? "";
      expect(await planStands(t.store, BENCH_PAIR, key, NOW.toISOString())).toBeUndefined();
      // Planned again after the commit, it stands.
      await recordStanding(await plan(true));
      expect(await planStands(t.store, BENCH_PAIR, key, NOW.toISOString())).toBeDefined();
    },
  );

  it("a pair whose contacts lie among other pairs' reads them by their ids after its first page, and plans the same", async () => {
    const alone = await plan(false);
    const ids = (await t.store.db.selectFrom("contacts").select("id").execute()).map((r) => r.id);
    // Another pair's contacts, three between each two of this pair's (as in a store serving many).
    const at = NOW.toISOString();
    const others = ids.flatMap((id) => [1, 2, 3].map((k) => `${id}~${k}`));
    await insertBareContacts(
      t.store.db,
      others.map((id) => ({ contact_id: id, connection_id: "another-crm", external_id: id })),
      at,
    );
    const seen: string[] = [];
    const capture: KyselyPlugin = {
      transformQuery: ({ node, queryId }) => {
        seen.push(t.store.db.getExecutor().compileQuery(node, queryId).sql);
        return node;
      },
      transformResult: ({ result }) => Promise.resolve(result),
    };
    const session = sqlStoreSession(t.store.db.withPlugin(capture), backend.name, () => NOW);
    const planAmong = (options: Parameters<typeof planFromStore>[2]) =>
      planFromStore({ store: session, now: () => NOW }, BENCH_PAIR, options);

    // Without marks: the first page's six reads are ranges of ids, every later page's lists.
    const among = await planAmong({ visit: () => undefined });
    expect(among.plan).toEqual(alone.plan);
    expect(seen.filter((q) => q.includes(" between ")).length).toBe(6);
    expect(
      seen.filter((q) => / in \(/.test(q) && q.includes('from "consent_events"')).length,
    ).toBeGreaterThan(1);

    // With marks (a first plan, then a plan again): revisions by range for the first page only.
    for (const expected of [0, N]) {
      seen.length = 0;
      const marked = await planAmong({});
      expect(marked.plan).toEqual(alone.plan);
      expect(marked.contacts_unchanged).toBe(expected);
      expect(seen.filter((q) => q.includes('"contacts"."id" >= ')).length).toBe(1);
    }
  });

  it("deletes the marks of pairs the config no longer has, and only theirs", async () => {
    await plan(true);
    const row = (pair_id: string, contact_id: string) => ({
      pair_id,
      contact_id,
      plan_key: "an older key",
      plan_rev: 1,
      outcome_json: "{}",
      valid_until: null,
    });
    // Pairs sorting before and after the configured one, as a removed pair's ids may.
    await t.store.db
      .insertInto("plan_marks")
      .values([row("a-removed", "c-1"), row("a-removed", "c-2"), row("zz-removed", "c-1")])
      .execute();
    const kept = BENCH_PAIR.pair.id;
    expect(await dropMarksOfOtherPairs(t.store, [kept, "configured-never-planned"])).toEqual([
      "a-removed",
      "zz-removed",
    ]);
    const left = await t.store.db
      .selectFrom("plan_marks")
      .select((eb) => ["pair_id", eb.fn.countAll<number | string>().as("n")])
      .groupBy("pair_id")
      .execute();
    expect(left.map((r) => [r.pair_id, Number(r.n)])).toEqual([[kept, N]]);
    // The plan again still finds every contact's mark.
    expect((await plan(true)).contacts_unchanged).toBe(N);
    expect(await dropMarksOfOtherPairs(t.store, [kept])).toEqual([]);
  });
});
