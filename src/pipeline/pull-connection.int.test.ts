/**
 * The pull and record stages end to end over real HTTP against the Raiser's Edge NXT and Constant
 * Contact emulators: configured connections with sealed credentials, pages recorded with their
 * checkpoints, identity, consent events mapped to topics, faults mid-pull, and webhook re-reads.
 */
import { Writable } from "node:stream";
import { sql } from "kysely";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ConcordConfigShapeSchema, type ConcordConfig, type Connection } from "../config/concord-config";
import { parseSecretKey, type SecretKey } from "../config/secret-box";
import type { ConsentEvent } from "../core/consent/consent-event";
import { blackbaudRenxtManifest } from "../connectors/blackbaud-renxt/manifest";
import type { RunningBlackbaudEmulator } from "../connectors/blackbaud-renxt/emulator/blackbaud-emulator";
import type { StartedConstantContactEmulator } from "../connectors/constant-contact/emulator/constant-contact-emulator";
import { startEmulatedWorld, type EmulatedWorld } from "../emulated-world/emulated-world";
import { createFakeClock, type FakeClock } from "../../test/support/fake-clock";
import type { ConnectorSession, WebhookChange } from "../connectors/connector";
import { eventsForContact } from "../ledger/consent-ledger";
import { foldChannelConsent } from "../core/consent/consent-state";
import { verifyLedger } from "../ledger/verify-ledger";
import { createLogger } from "../observability/logger";
import type { Store } from "../store/ports";
import { describeOnBackends, type TestStore } from "../../test/support/store-backends";
import { connectionCredentials } from "../connections/connection-credentials";
import { connectionHealthTracker } from "../connections/connection-health";
import { openConnection, type OpenedConnection } from "../connections/open-connection";
import { post } from "../../test/support/sync-harness";
import { recordChanges } from "./record-changes";
import {
  PULL_CHECKPOINT_STREAM,
  pullConnection,
  recordWebhookChanges,
  type PullReport,
} from "./pull-connection";
import { appealsTopic, reCcPair } from "../../test/support/world-config";

const keyResult = parseSecretKey(Buffer.alloc(32, 7).toString("base64"));
if (!keyResult.ok) throw new Error(keyResult.error.message);
const key: SecretKey = keyResult.value;

describeOnBackends("pullConnection", (backend) => {
  let clock: FakeClock;
  let world: EmulatedWorld;
  let re: RunningBlackbaudEmulator;
  let ccMain: StartedConstantContactEmulator;
  let ccAppeals: StartedConstantContactEmulator;
  let testStore: TestStore;
  let store: Store;
  let config: ConcordConfig;

  const now = (): Date => clock.now();
  const advance = (ms: number): void => {
    clock.advance(ms);
  };

  beforeEach(async () => {
    clock = createFakeClock("2026-06-01T12:00:00.000Z");
    testStore = await backend.create();
    store = testStore.store;
    world = await startEmulatedWorld({
      connections: [
        {
          id: "re-nxt",
          system: "blackbaud-renxt",
          emulator: { ratePerSecond: 1000, webhooks: { autoDeliver: false } },
        },
        { id: "cc-main", system: "constant-contact", emulator: { rateLimitPerSecond: null } },
        { id: "cc-appeals", system: "constant-contact", emulator: { rateLimitPerSecond: null } },
      ],
      config: {
        topics: [appealsTopic()],
        pairs: [reCcPair()],
      },
      store,
      key,
      now,
      sleep: async (ms) => {
        advance(ms);
      },
    });
    re = world.emulator("re-nxt").native as RunningBlackbaudEmulator;
    ccMain = world.emulator("cc-main").native as StartedConstantContactEmulator;
    ccAppeals = world.emulator("cc-appeals").native as StartedConstantContactEmulator;
    config = world.config;
  });

  afterEach(async () => {
    await world.close();
    await testStore.cleanup();
  });

  const connectionConfig = (id: string): Connection => {
    const c = config.connections.find((x) => x.id === id);
    if (!c) throw new Error(id);
    return c;
  };

  const openDeps = () => ({
    store,
    env: {},
    key,
    health: connectionHealthTracker({
      store,
      logger: createLogger({
        level: "warn",
        destination: new Writable({
          write(_chunk: Buffer, _enc, done) {
            done();
          },
        }),
      }),
      now,
    }),
    now,
    sleep: async (ms: number) => {
      advance(ms);
    },
  });

  const open = (id: string): OpenedConnection => openConnection(connectionConfig(id), openDeps());

  const pair = () => {
    const p = config.pairs[0];
    if (!p) throw new Error("no pair");
    return p;
  };

  const pull = (connection: OpenedConnection, options: { full?: boolean } = {}): Promise<PullReport> =>
    pullConnection({ store, connection, config, pair: pair(), now, options });

  const seedRe = async (constituents: unknown[]): Promise<string[]> => {
    const answer = await post<{ constituents: { id: string }[] }>(re.baseUrl, "/__emulator/seed", {
      constituents,
    });
    return answer.constituents.map((c) => c.id);
  };
  const reAct = (body: Record<string, unknown>) =>
    post(re.baseUrl, "/__emulator/act", { as: "admin", ...body });
  const seedCc = (emu: StartedConstantContactEmulator, emails: string[]) =>
    post<{ contacts: { contact_id: string; email: string }[] }>(emu.baseUrl, "/__emulator/seed", {
      contacts: emails.map((address, i) => ({
        email_address: { address, permission_to_send: "implicit" },
        first_name: `First${i}`,
        last_name: `Last${i}`,
      })),
    });
  const ccAct = (emu: StartedConstantContactEmulator, action: string, email: string) =>
    post(emu.baseUrl, "/__emulator/act", { as: "contact", action, email });

  const individual = (email: string, first: string, last: string, extra: Record<string, unknown> = {}) => ({
    type: "Individual",
    first,
    last,
    email: { address: email, type: "Email", primary: true, do_not_email: false, inactive: false },
    ...extra,
  });

  /** What the record stage is told of a connection's batch. */
  const ctxOf = (connection_id: string, system: string, role: "crm" | "email_platform") => ({
    connection_id,
    system,
    role,
    mapping: { connection_id, topics: config.topics },
    now,
  });

  const contactOf = async (connectionId: string, externalId: string): Promise<string> => {
    const link = await store.links.find(connectionId, externalId);
    if (!link) throw new Error(`${connectionId}/${externalId} is not linked`);
    return link.contact_id;
  };
  const eventsOf = async (contactId: string): Promise<ConsentEvent[]> =>
    (await eventsForContact(store, contactId)).map((s) => s.event);
  /** A record with one address and nothing else, as last changed on 1 May. */
  const bareRecord = (id: string, email: string) => ({
    external_id: id,
    kind: "individual" as const,
    emails: [{ address: email, primary: true }],
    fields: {},
    consent_state: [],
    updated_at: "2026-05-01T00:00:00.000Z",
  });
  /** One constituent seeded in Raiser's Edge NXT and read once: its id, the connection, its contact. */
  const seededAndRead = async (constituent: unknown) => {
    const [id = ""] = await seedRe([constituent]);
    const conn = open("re-nxt");
    await pull(conn);
    return { id, conn, contact: await contactOf("re-nxt", id) };
  };
  const count = async (
    table: "contacts" | "links" | "record_snapshots" | "consent_events",
  ): Promise<number> => {
    const row = await store.db
      .selectFrom(table)
      .select((eb) => eb.fn.countAll<number | string>().as("n"))
      .executeTakeFirstOrThrow();
    return Number(row.n);
  };

  /** The SKY paths a step called, ids as {id}, token calls left out. */
  const callsOf = async <T>(fn: () => Promise<T>): Promise<{ result: T; paths: string[] }> => {
    const before = re.kit.requests.length;
    const result = await fn();
    const paths = re.kit.requests
      .slice(before)
      .map((r) => (r.path.split("?")[0] ?? "").replace(/\/\d+(?=\/|$)/g, "/{id}"))
      .filter((p) => !p.startsWith("/oauth2/"));
    return { result, paths };
  };

  it("a first full pull creates contacts, links and snapshots; a second pull with no changes appends and changes nothing", async () => {
    const [adaRe, bobRe] = await seedRe([
      individual("ada@example.org", "Ada", "Lovelace"),
      individual("bob@example.org", "Bob", "Babbage"),
    ]);
    const cc = await seedCc(ccMain, ["Ada@Example.org", "carol@example.org"]);
    const reConn = open("re-nxt");
    const ccConn = open("cc-main");

    const first = await pull(reConn);
    expect(first.error).toBeNull();
    expect(first).toMatchObject({ records_seen: 2, records_changed: 2, contacts_created: 2, pages: 1 });
    expect(first.checkpoint_before).toBeNull();
    expect(first.checkpoint_after).not.toBeNull();

    const ccFirst = await pull(ccConn);
    expect(ccFirst.error).toBeNull();
    expect(ccFirst).toMatchObject({ records_seen: 2, contacts_created: 1, links_by_email: 1 });
    // Each Constant Contact contact shows its (implied) permission: one opt-in each.
    expect(ccFirst.consent_events_appended).toBe(2);
    const adaCc = cc.contacts.find((c) => c.email.toLowerCase() === "ada@example.org")?.contact_id ?? "";
    expect(await contactOf("cc-main", adaCc)).toBe(await contactOf("re-nxt", adaRe ?? ""));
    expect(await contactOf("re-nxt", bobRe ?? "")).not.toBe(await contactOf("re-nxt", adaRe ?? ""));
    expect(await count("contacts")).toBe(3);
    expect(await count("record_snapshots")).toBe(4);

    const before = { contacts: await count("contacts"), events: await count("consent_events") };
    advance(60_000);
    for (const conn of [reConn, ccConn]) {
      const again = await pull(conn);
      expect(again.error).toBeNull();
      expect(again).toMatchObject({
        records_changed: 0,
        contacts_created: 0,
        links_by_email: 0,
        consent_events_appended: 0,
        review_items_opened: 0,
      });
    }
    expect(await count("contacts")).toBe(before.contacts);
    expect(await count("consent_events")).toBe(before.events);
    const stored = await store.checkpoints.get("cc-main", PULL_CHECKPOINT_STREAM);
    expect(stored?.value).toMatchObject({ stream: "contacts" });
  });

  it.runIf(backend.name === "postgres")(
    "two workers recording two systems at once make one contact of an address both hold",
    async () => {
      const record = (id: string) => ({
        external_id: id,
        kind: "individual" as const,
        emails: [{ address: "ada@example.org", primary: true }],
        fields: {},
        consent_state: [],
        updated_at: "2026-06-01T11:00:00.000Z",
      });
      // The first worker has recorded Ada from Raiser's Edge NXT and not yet committed.
      let commitFirst = (): void => undefined;
      let firstRecorded = (): void => undefined;
      const recorded = new Promise<void>((resolve) => (firstRecorded = resolve));
      const first = store.transaction(async (tx) => {
        await recordChanges(tx, ctxOf("re-nxt", "blackbaud-renxt", "crm"), {
          records: [record("re-ada")],
          consent: [],
        });
        firstRecorded();
        await new Promise<void>((resolve) => (commitFirst = resolve));
      });
      await recorded;
      // The second records Ada from Constant Contact meanwhile: it waits for the first to commit.
      const second = store.transaction((tx) =>
        recordChanges(tx, ctxOf("cc-main", "constant-contact", "email_platform"), {
          records: [record("cc-ada")],
          consent: [],
        }),
      );
      const waiting = async (): Promise<void> => {
        for (;;) {
          const blocked = await sql<{ n: number }>`
            select count(*)::int as n from pg_locks where locktype = 'advisory' and not granted`.execute(
            store.db,
          );
          if ((blocked.rows[0]?.n ?? 0) > 0) return;
          await new Promise((resolve) => setImmediate(resolve));
        }
      };
      // Either the second worker finished without waiting (two contacts: the defect), or it waits.
      await Promise.race([second, waiting()]);
      commitFirst();
      await Promise.all([first, second]);
      expect(await count("contacts")).toBe(1);
      expect(await contactOf("cc-main", "cc-ada")).toBe(await contactOf("re-nxt", "re-ada"));
    },
  );

  it.runIf(backend.name === "postgres")(
    "a page's other work (memberships, its checkpoint) runs before its consent events lock the ledger's head",
    async () => {
      const ctx = {
        connection_id: "re-nxt",
        system: "blackbaud-renxt",
        role: "crm" as const,
        mapping: { connection_id: "re-nxt", topics: config.topics },
        now,
      };
      const batch = {
        records: [
          {
            external_id: "re-eve",
            kind: "individual" as const,
            emails: [{ address: "eve@example.org", primary: true }],
            fields: {},
            consent_state: [],
            updated_at: "2026-06-01T11:00:00.000Z",
          },
        ],
        consent: [
          {
            external_id: "re-eve",
            email: "eve@example.org",
            channel: "email" as const,
            kind: "opt_out" as const,
            scope: { kind: "global" as const },
            mechanism: "admin_edit" as const,
            actor: { kind: "account" as const },
            occurred_at: "2026-06-01T11:00:00.000Z",
            evidence: { reason: "Requests no email is set on the constituent" },
          },
        ],
      };
      // While the page's other work runs, another appender (another connection) can take the head
      // at once; every appender of the installation would otherwise wait out that work.
      const headFree = (): Promise<boolean> =>
        store.transaction((other) =>
          sql`select seq from consent_ledger_head for update nowait`.execute(other.db).then(
            () => true,
            (error: unknown) => {
              if ((error as { code?: string }).code === "55P03") return false;
              throw error;
            },
          ),
        );
      const seen: { free: boolean; appended: number }[] = [];
      const counts = await store.transaction((tx) =>
        recordChanges(tx, ctx, batch, async () => {
          seen.push({ free: await headFree(), appended: (await tx.consentEvents.readHead()).seq });
        }),
      );
      expect(seen).toEqual([{ free: true, appended: 0 }]);
      expect(counts.consent_events_appended).toBe(1);
      // The append came after it, in the same transaction.
      expect((await store.consentEvents.readHead()).seq).toBe(1);
    },
  );

  it("a footer-link unsubscribe is a global opt-out in an unmapped account and a topic opt-out in an account mapped to appeals", async () => {
    const main = await seedCc(ccMain, ["dan@example.org"]);
    const appeals = await seedCc(ccAppeals, ["dan@example.org"]);
    const mainConn = open("cc-main");
    const appealsConn = open("cc-appeals");
    await pull(mainConn);
    await pull(appealsConn);
    const contact = await contactOf("cc-main", main.contacts[0]?.contact_id ?? "");
    expect(await contactOf("cc-appeals", appeals.contacts[0]?.contact_id ?? "")).toBe(contact);

    advance(60_000);
    await ccAct(ccMain, "unsubscribe", "dan@example.org");
    await ccAct(ccAppeals, "unsubscribe", "dan@example.org");
    advance(60_000);
    const m = await pull(mainConn);
    const a = await pull(appealsConn);
    expect(m.error).toBeNull();
    expect(a.error).toBeNull();
    expect(m.consent_events_appended).toBe(1);
    expect(a.consent_events_appended).toBe(1);

    const optOuts = (await eventsOf(contact)).filter((e) => e.kind === "opt_out");
    expect(optOuts.map((e) => [e.source.connection, e.kind === "opt_out" ? e.scope : null])).toEqual(
      expect.arrayContaining([
        ["cc-main", { kind: "global" }],
        ["cc-appeals", { kind: "topic", topic: "appeals" }],
      ]),
    );
    expect(optOuts).toHaveLength(2);
    for (const e of optOuts) {
      expect(e.actor).toEqual({ kind: "contact" });
      expect(e.evidence.payload_sha256).toMatch(/^[a-f0-9]{64}$/);
      expect(e.source.system).toBe("constant-contact");
    }
  });

  it("Raiser's Edge: requests_no_email set is a global opt-out; an admin clearing it is a resubscribe request, never an opt-in", async () => {
    const [id] = await seedRe([individual("erin@example.org", "Erin", "Ek")]);
    const conn = open("re-nxt");
    await pull(conn);
    const contact = await contactOf("re-nxt", id ?? "");

    advance(3_600_000);
    await reAct({ action: "set_requests_no_email", constituent_id: id });
    advance(60_000);
    const set = await pull(conn);
    expect(set.error).toBeNull();
    expect(set.consent_events_appended).toBe(1);
    let events = await eventsOf(contact);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ kind: "opt_out", scope: { kind: "global" }, mechanism: "admin_edit" });

    advance(3_600_000);
    await reAct({ action: "clear_requests_no_email", constituent_id: id });
    advance(60_000);
    const cleared = await pull(conn);
    expect(cleared.error).toBeNull();
    expect(cleared.resubscribe_requests).toBe(1);
    events = await eventsOf(contact);
    expect(events.map((e) => e.kind).sort()).toEqual(["opt_out", "resubscribe_requested"]);
    const request = events.find((e) => e.kind === "resubscribe_requested");
    expect(request).toMatchObject({
      scope: { kind: "global" },
      actor: { kind: "account" },
      mechanism: "admin_edit",
    });
    expect(events.some((e) => e.kind === "opt_in")).toBe(false);

    // Seen again (a full read, then an unchanged incremental one): no second request.
    const full = await pull(conn, { full: true });
    expect(full.resubscribe_requests).toBe(0);
    expect(full.consent_events_appended).toBe(0);
  });

  it("Raiser's Edge: an address's Do not email cleared by an admin is a resubscribe request too (any opt-out the system keeps no history of)", async () => {
    const [id] = await seedRe([individual("gus@example.org", "Gus", "Go")]);
    const conn = open("re-nxt");
    await pull(conn);
    const contact = await contactOf("re-nxt", id ?? "");

    advance(3_600_000);
    await reAct({ action: "set_do_not_email", constituent_id: id });
    advance(60_000);
    expect((await pull(conn)).consent_events_appended).toBe(1);

    advance(3_600_000);
    await reAct({ action: "clear_do_not_email", constituent_id: id });
    advance(60_000);
    const cleared = await pull(conn);
    expect(cleared.resubscribe_requests).toBe(1);
    const events = await eventsOf(contact);
    expect(events.find((e) => e.kind === "resubscribe_requested")).toMatchObject({
      scope: { kind: "global" },
      actor: { kind: "account" },
      mechanism: "admin_edit",
    });
    expect(events.some((e) => e.kind === "opt_in")).toBe(false);
  });

  it("Raiser's Edge: a consent record OptOut in category Appeals is an appeals opt-out; an unmapped category keeps its slug and is reported", async () => {
    const [id] = await seedRe([individual("fay@example.org", "Fay", "Fo")]);
    const conn = open("re-nxt");
    await pull(conn);
    const contact = await contactOf("re-nxt", id ?? "");

    advance(60_000);
    await reAct({
      action: "add_consent",
      constituent_id: id,
      category: "Appeals",
      response: "OptOut",
      consent: { source: "Phone call" },
    });
    advance(60_000);
    await reAct({
      action: "add_consent",
      constituent_id: id,
      category: "Events",
      response: "OptOut",
      consent: { source: "Phone call" },
    });
    advance(60_000);
    // Consent records do not move date_modified (QUIRKS.md): the scheduled full read finds them.
    const report = await pull(conn, { full: true });
    expect(report.error).toBeNull();
    expect(report.unmapped_constructs).toEqual(["Events"]);
    const scopes = (await eventsOf(contact))
      .flatMap((e) => (e.kind === "opt_out" ? [e.scope] : []))
      .map((s) => (s.kind === "topic" ? s.topic : "global"))
      .sort();
    expect(scopes).toEqual(["appeals", "events"]);
  });

  it("an opt-out on a record with no valid email is still recorded under its own contact", async () => {
    const [id] = await seedRe([
      { type: "Individual", first: "Nell", last: "Noaddress", requests_no_email: true },
    ]);
    const report = await pull(open("re-nxt"));
    expect(report.error).toBeNull();
    expect(report).toMatchObject({ contacts_created: 1, consent_events_appended: 1 });
    const contact = await contactOf("re-nxt", id ?? "");
    expect((await store.contacts.get(contact))?.email_match_key).toBeNull();
    expect((await eventsOf(contact)).map((e) => e.kind)).toEqual(["opt_out"]);
  });

  it("an email change in Raiser's Edge keeps one contact, moves its primary address and keeps the old one", async () => {
    const [id] = await seedRe([individual("gus@old.example.org", "Gus", "Grey")]);
    const conn = open("re-nxt");
    await pull(conn);
    const contact = await contactOf("re-nxt", id ?? "");

    advance(60_000);
    await reAct({ action: "change_primary_email", constituent_id: id, new_address: "gus@new.example.org" });
    advance(60_000);
    const report = await pull(conn);
    expect(report.error).toBeNull();
    expect(report).toMatchObject({ contacts_created: 0, email_changes: 1 });
    expect(await count("contacts")).toBe(1);
    expect(await contactOf("re-nxt", id ?? "")).toBe(contact);
    const row = await store.contacts.get(contact);
    expect(row?.primary_email).toBe("gus@new.example.org");
    const addresses = (await store.contacts.emails(contact)).map((e) => e.match_key).sort();
    expect(addresses).toEqual(["gus@new.example.org", "gus@old.example.org"]);

    // A Constant Contact record still on the old address is a secondary-address match: review, not a new person.
    await seedCc(ccMain, ["gus@old.example.org"]);
    const cc = await pull(open("cc-main"));
    expect(cc).toMatchObject({ contacts_created: 0, review_items_opened: 1, ambiguous_records: 1 });
  });

  it("two records of one page at the address of a contact linked elsewhere: the first is linked to it, the second is not", async () => {
    // The page's facts are read before it is recorded: what its first record links must be seen
    // by the second, or both would become the one contact.
    await seedCc(ccMain, ["household@example.org"]);
    expect((await pull(open("cc-main"))).contacts_created).toBe(1);
    const [ann, ben] = await seedRe([
      individual("household@example.org", "Ann", "Home"),
      individual("household@example.org", "Ben", "Home"),
    ]);
    const report = await pull(open("re-nxt"));
    expect(report.error).toBeNull();
    expect(report.links_by_email).toBe(1);
    const contacts = [await contactOf("re-nxt", ann ?? ""), await contactOf("re-nxt", ben ?? "")];
    expect(new Set(contacts).size).toBe(2);
    expect(
      (await store.links.forContact(contacts[0] ?? "")).filter((l) => l.connection_id === "re-nxt"),
    ).toHaveLength(1);
    expect(report.review_items_opened).toBe(1);
  });

  it("an individual and an organisation sharing an address go to review and a Constant Contact opt-out of it is recorded for both", async () => {
    const [person, org] = await seedRe([
      individual("info@acme.example", "Ivy", "Acme"),
      {
        type: "Organization",
        name: "Acme Ltd",
        email: { address: "info@acme.example", type: "Email", primary: true },
      },
    ]);
    const reConn = open("re-nxt");
    const first = await pull(reConn);
    expect(first.error).toBeNull();
    expect(first.review_items_opened).toBe(1);
    const personContact = await contactOf("re-nxt", person ?? "");
    const orgContact = await contactOf("re-nxt", org ?? "");
    expect(personContact).not.toBe(orgContact);
    expect((await store.contacts.get(orgContact))?.type).toBe("organization");
    expect((await store.contacts.get(personContact))?.type).toBe("person");

    const seeded = await seedCc(ccMain, ["info@acme.example"]);
    const ccConn = open("cc-main");
    const ccFirst = await pull(ccConn);
    expect(ccFirst).toMatchObject({
      review_items_opened: 1,
      ambiguous_records: 1,
      contacts_created: 0,
      held_opt_ins: 1,
    });
    expect(await store.links.find("cc-main", seeded.contacts[0]?.contact_id ?? "")).toBeUndefined();

    advance(60_000);
    await ccAct(ccMain, "unsubscribe", "info@acme.example");
    advance(60_000);
    const after = await pull(ccConn);
    expect(after.error).toBeNull();
    expect(after.review_items_opened).toBe(0); // the same item, not a second one
    expect(after.consent_events_appended).toBe(2);
    for (const contact of [personContact, orgContact]) {
      const optOuts = (await eventsOf(contact)).filter((e) => e.kind === "opt_out");
      expect(optOuts).toHaveLength(1);
      expect(optOuts[0]).toMatchObject({ scope: { kind: "global" }, source: { connection: "cc-main" } });
    }
    expect((await store.reviewItems.list("open")).length).toBe(2);
  });

  it("a 503 and then a quota answer mid-pull keep the committed checkpoint, and the next pull resumes without duplicates", async () => {
    const base = Date.parse("2026-05-01T00:00:00.000Z");
    const ids = await seedRe(
      Array.from({ length: 5 }, (_, i) =>
        individual(`p${i}@example.org`, `P${i}`, `Person${i}`, {
          requests_no_email: true,
          date_modified: new Date(base + i * 3_600_000).toISOString(),
        }),
      ),
    );
    const opened = open("re-nxt");
    const runtime = {
      now,
      sleep: async (ms: number) => {
        advance(ms);
      },
      budget: opened.budget,
    };
    const settings = {
      connection_id: "re-nxt",
      base_url: re.baseUrl,
      token_url: `${re.baseUrl}/oauth2/token`,
      credentials: connectionCredentials(connectionConfig("re-nxt"), openDeps()),
      options: { page_size: 2 },
    };
    let injectAfterFirstPage: unknown;
    const withFault = (session: ConnectorSession): ConnectorSession => ({
      ...session,
      read: async function* (checkpoint, options) {
        let pages = 0;
        for await (const page of session.read(checkpoint, options)) {
          yield page;
          // The page was recorded before the consumer asked for the next one: now the vendor fails.
          if (++pages === 1 && injectAfterFirstPage !== undefined)
            await post(re.baseUrl, "/__emulator/faults", injectAfterFirstPage);
        }
      },
    });
    const conn: OpenedConnection = {
      ...opened,
      session: () => withFault(blackbaudRenxtManifest.connect(settings, runtime)),
    };

    injectAfterFirstPage = { status: 503, count: 6, path_prefix: "/constituent/v1" };
    const broken = await pull(conn);
    expect(broken.error?.code).toBe("vendor_unavailable");
    expect(broken.pages).toBe(1);
    const committed = await store.checkpoints.get("re-nxt", PULL_CHECKPOINT_STREAM);
    expect(committed?.value).toMatchObject({ value: broken.checkpoint_after });
    expect(await count("contacts")).toBe(2);

    injectAfterFirstPage = {
      status: 403,
      count: 1,
      path_prefix: "/constituent/v1",
      headers: { "Retry-After": "3600" },
      body: { statusCode: 403, message: "Out of call volume quota. Quota will be replenished in 01:00:00." },
    };
    const quota = await pull(conn);
    expect(quota.error?.code).toBe("quota_exceeded");
    expect(quota.error?.retry_at).toBeDefined();
    expect(quota.checkpoint_before).toBe(broken.checkpoint_after);

    // The shared call budget holds every call until the quota's reset time; then the pull resumes.
    injectAfterFirstPage = undefined;
    const resetsAt = Math.max(
      Date.parse(quota.error?.retry_at ?? ""),
      Date.parse(opened.budget.usage().resets_at ?? ""),
    );
    advance(resetsAt - now().getTime() + 1000);
    const resumed = await pull(conn);
    expect(resumed.error).toBeNull();
    expect(resumed.checkpoint_before).toBe(quota.checkpoint_after);
    expect(await count("contacts")).toBe(5);
    expect(await count("links")).toBe(5);
    // One global opt-out per constituent, however often the overlap re-read them.
    expect(await count("consent_events")).toBe(5);
    for (const id of ids) expect(await eventsOf(await contactOf("re-nxt", id))).toHaveLength(1);
    expect((await verifyLedger(store)).ok).toBe(true);
  });

  it("a Constant Contact quota answer stops the pull with retry_at and no checkpoint", async () => {
    await seedCc(ccMain, ["hal@example.org"]);
    await post(ccMain.baseUrl, "/__emulator/faults", {
      status: 429,
      count: 1,
      path_prefix: "/v3/contacts",
      body: { error_key: "quota_exceeded", error_message: "Limit Exceeded" },
    });
    const report = await pull(open("cc-main"));
    expect(report.error?.code).toBe("quota_exceeded");
    expect(report.error?.retry_at).toBeDefined();
    expect(report.pages).toBe(0);
    expect(await store.checkpoints.get("cc-main", PULL_CHECKPOINT_STREAM)).toBeUndefined();
  });

  it("opt-outs of two topics made at the same instant are two acts, whatever one's source says", async () => {
    const { id, conn, contact } = await seededAndRead(individual("una@example.org", "Una", "Ude"));
    advance(60_000);
    const midnight = "2026-05-01T00:00:00.000Z";
    // Staff enter both at midnight: one with a source Concord knows, one with a source it does not.
    await reAct({
      action: "add_consent",
      constituent_id: id,
      category: "Newsletter",
      response: "OptOut",
      consent: { consent_date: midnight },
    });
    await pull(conn);
    advance(60_000);
    await reAct({
      action: "add_consent",
      constituent_id: id,
      category: "Events",
      response: "OptOut",
      consent: { consent_date: midnight, source: "Gala table card" },
    });
    await pull(conn, { full: true });
    const optOuts = (await eventsOf(contact)).filter((e) => e.kind === "opt_out");
    expect(
      optOuts.map((e) => [e.scope.kind === "topic" ? e.scope.topic : e.scope.kind, e.mechanism]),
    ).toEqual(
      expect.arrayContaining([
        [expect.any(String), "admin_edit"],
        [expect.any(String), "unknown"],
      ]),
    );
    expect(optOuts).toHaveLength(2);
  });

  it("a flag's opt-out with no time of its own is not dated again when another flag of the record is cleared", async () => {
    const { id, conn, contact } = await seededAndRead(individual("vi@example.org", "Vi", "Vale"));
    const flagOptOuts = async () =>
      (await eventsOf(contact)).filter(
        (e) => e.kind === "opt_out" && e.evidence.source_record_id === `constituent:${id}`,
      );
    advance(60_000);
    await reAct({ action: "set_requests_no_email", constituent_id: id });
    await pull(conn);
    expect(await flagOptOuts()).toHaveLength(1);
    // The address's own Do Not Email, ticked and cleared: a resubscribe request of that flag.
    advance(60_000);
    await reAct({ action: "set_do_not_email", constituent_id: id, address: "vi@example.org" });
    await pull(conn);
    advance(60_000);
    await reAct({ action: "clear_do_not_email", constituent_id: id, address: "vi@example.org" });
    await pull(conn);
    expect((await eventsOf(contact)).some((e) => e.kind === "resubscribe_requested")).toBe(true);
    // A later save of the constituent: "Requests No Email" is the same act, not a new one.
    advance(60_000);
    await reAct({ action: "update_constituent", constituent_id: id, changes: { first: "Violet" } });
    await pull(conn);
    expect(await flagOptOuts()).toHaveLength(1);
  });

  it("webhook changes delivered twice and out of order are recorded once", async () => {
    const [id] = await seedRe([individual("ivy@example.org", "Ivy", "Ives")]);
    const conn = open("re-nxt");
    await pull(conn);
    const contact = await contactOf("re-nxt", id ?? "");

    advance(60_000);
    await reAct({ action: "set_requests_no_email", constituent_id: id });
    const at = now().toISOString();
    const changes: WebhookChange[] = [
      {
        event_id: "e1",
        type: "com.blackbaud.constituent.change.v1",
        external_id: id ?? "",
        occurred_at: at,
        change: "changed",
      },
      {
        event_id: "e2",
        type: "com.blackbaud.constituent.solicitcode.add.v1",
        external_id: id ?? "",
        occurred_at: at,
        change: "consent_changed",
      },
    ];
    const deps = { store, connection: conn, config, pair: pair(), now };
    const first = await recordWebhookChanges(deps, [...changes].reverse());
    const again = await recordWebhookChanges(deps, [...changes, ...changes]);
    expect(first.error).toBeNull();
    expect(first).toMatchObject({ records_seen: 1, records_changed: 1, consent_events_appended: 1 });
    expect(again).toMatchObject({
      records_changed: 0,
      consent_events_appended: 0,
      consent_events_duplicate: 1,
    });
    expect(await eventsOf(contact)).toHaveLength(1);
    // The poll that follows sees the same state: nothing new either.
    const polled = await pull(conn);
    expect(polled.consent_events_appended).toBe(0);
  });

  it("a poll's page read before a webhook's re-read and recorded after it changes nothing back: no resubscribe request from the older read", async () => {
    const { id, conn, contact } = await seededAndRead(individual("sal@example.org", "Sal", "Sage"));
    advance(3_600_000);
    // A poll reads the constituent and is slow to record the page (the next page's fetch, a busy store).
    const reading = conn.session().read(null, { full: true })[Symbol.asyncIterator]();
    const page = await reading.next();
    await reading.return?.();
    if (page.done === true || !page.value.ok) throw new Error("the poll read no page");
    const read = page.value.value;
    // Meanwhile an admin ticks Requests No Email, and its webhook's re-read is recorded first.
    advance(60_000);
    await reAct({ action: "set_requests_no_email", constituent_id: id });
    const deps = { store, connection: conn, config, pair: pair(), now };
    const hooked = await recordWebhookChanges(deps, [
      {
        event_id: "e1",
        type: "com.blackbaud.constituent.change.v1",
        external_id: id,
        occurred_at: now().toISOString(),
        change: "changed",
      },
    ]);
    expect(hooked).toMatchObject({ error: null, consent_events_appended: 1 });
    // The poll's page, read before the tick, is recorded now.
    advance(1_000);
    const late = await store.transaction((tx) =>
      recordChanges(tx, ctxOf("re-nxt", "blackbaud-renxt", "crm"), read),
    );
    expect(late).toMatchObject({ records_stale: 1, resubscribe_requests: 0, consent_events_appended: 0 });
    expect((await eventsOf(contact)).map((e) => e.kind)).toEqual(["opt_out"]);
    expect((await store.snapshots.get("re-nxt", id))?.payload).toMatchObject({
      consent_state: expect.arrayContaining([
        expect.objectContaining({ source: "requests_no_email", status: "opted_out" }),
      ]),
    });
    // The next poll reads the record as it is: the opt-out stands, nothing is recorded again.
    advance(60_000);
    expect(await pull(conn)).toMatchObject({
      error: null,
      consent_events_appended: 0,
      resubscribe_requests: 0,
    });
    expect((await eventsOf(contact)).map((e) => e.kind)).toEqual(["opt_out"]);
  });

  it("a webhook re-reads only what its event can have changed; what it left unread stays as last read, never cleared", async () => {
    const { id, conn, contact } = await seededAndRead(individual("jo@example.org", "Jo", "Jay"));
    advance(3_600_000);
    await reAct({ action: "add_solicit_code", constituent_id: id, code: "Do not contact" });
    advance(60_000);
    expect((await pull(conn)).consent_events_appended).toBe(1);

    const deps = { store, connection: conn, config, pair: pair(), now };
    let n = 0;
    const hook = (type: string, change: WebhookChange["change"], externalId = id): WebhookChange => ({
      event_id: `e${(n += 1)}`,
      type: `com.blackbaud.constituent.${type}.v1`,
      external_id: externalId,
      occurred_at: now().toISOString(),
      change,
    });
    const factsOf = async (externalId: string) =>
      (
        (await store.snapshots.get("re-nxt", externalId))?.payload as {
          consent_state: { source: string; status: string }[];
        }
      ).consent_state;

    // A name change raises constituent.change: the constituent and its consent records, nothing else.
    const versionOf = async () =>
      ((await store.snapshots.get("re-nxt", id))?.payload as { version?: string }).version;
    const readWhole = await versionOf();
    expect(readWhole).toEqual(expect.any(String));
    advance(60_000);
    await reAct({ action: "update_constituent", constituent_id: id, changes: { first: "Joanna" } });
    const renamed = await callsOf(() => recordWebhookChanges(deps, [hook("change", "changed")]));
    expect(renamed.result.error).toBeNull();
    expect(renamed.paths.sort()).toEqual([
      "/commpref/v1/constituents/{id}/consents",
      "/constituent/v1/constituents/{id}",
    ]);
    expect(renamed.result.consent_events_appended).toBe(0);
    const kept = await factsOf(id);
    expect(kept).toContainEqual(
      expect.objectContaining({ source: "solicitcode:do not contact", status: "opted_out" }),
    );
    expect((await store.snapshots.get("re-nxt", id))?.payload).toMatchObject({
      first_name: "Joanna",
      do_not_contact: true,
    });
    // Read in part, it keeps the version it was read whole at: the next poll reads it whole.
    expect(await versionOf()).toBe(readWhole);

    // The code ended (a solicit code event): the codes are read, and the clearing is seen against the kept fact.
    advance(60_000);
    await reAct({ action: "end_solicit_code", constituent_id: id, code: "Do not contact" });
    const ended = await callsOf(() =>
      recordWebhookChanges(deps, [hook("solicitcode.change", "consent_changed")]),
    );
    expect(ended.paths.sort()).toEqual([
      "/commpref/v1/constituents/{id}/consents",
      "/commpref/v1/constituents/{id}/constituentsolicitcodes",
      "/commpref/v1/solicitcodes",
      "/constituent/v1/constituents/{id}",
    ]);
    expect(ended.result.resubscribe_requests).toBe(1);
    expect((await eventsOf(contact)).map((e) => e.kind).sort()).toEqual(["opt_out", "resubscribe_requested"]);

    // An address event reads the addresses; a constituent Concord has not seen yet is read whole.
    const addressed = await callsOf(() =>
      recordWebhookChanges(deps, [hook("emailaddress.change", "email_changed")]),
    );
    expect(addressed.paths.sort()).toEqual([
      "/constituent/v1/constituents/{id}",
      "/constituent/v1/constituents/{id}/emailaddresses",
    ]);
    const related = await callsOf(() => recordWebhookChanges(deps, [hook("relationship.add", "changed")]));
    expect(related.paths.sort()).toEqual([
      "/constituent/v1/constituents/{id}",
      "/constituent/v1/constituents/{id}/relationships",
    ]);
    // A postal address or a phone changes nothing Concord keeps beyond the record itself; the
    // consent facts it did not read stay as they were.
    const factsBefore = await factsOf(id);
    for (const type of ["address.change", "phone.add"]) {
      const other = await callsOf(() => recordWebhookChanges(deps, [hook(type, "changed")]));
      expect(other.result.error).toBeNull();
      expect(other.paths).toEqual(["/constituent/v1/constituents/{id}"]);
    }
    expect(await factsOf(id)).toEqual(factsBefore);
    // An event type Concord does not know reads the constituent whole (and the Solicit Codes table, once a session).
    const unknown = await callsOf(() => recordWebhookChanges(deps, [hook("membership.add", "changed")]));
    expect(unknown.paths).toHaveLength(6);
    const [newcomer = ""] = await seedRe([individual("kai@example.org", "Kai", "Koh")]);
    const added = await callsOf(() => recordWebhookChanges(deps, [hook("add", "changed", newcomer)]));
    expect(added.result.records_seen).toBe(1);
    expect(added.paths.length).toBeGreaterThan(3);
    expect(await factsOf(newcomer)).toContainEqual(
      expect.objectContaining({ source: "solicitcode:do not contact" }),
    );

    // The poll that follows reads them whole and finds the same records: nothing changed, nothing new.
    const polled = await pull(conn);
    expect(polled).toMatchObject({ records_changed: 0, consent_events_appended: 0, resubscribe_requests: 0 });
    expect(polled.records_seen).toBeGreaterThan(0);
  });

  it("a poll reads what its overlap lists again unmoved only in its consent records and solicit codes; what moved is read whole", async () => {
    const [still = "", moved = ""] = await seedRe([
      individual("lee@example.org", "Lee", "Lo"),
      individual("max@example.org", "Max", "Mo"),
    ]);
    const conn = open("re-nxt");
    await pull(conn);
    const byKind = (paths: string[]): Record<string, number> =>
      paths.reduce<Record<string, number>>((n, p) => ({ ...n, [p]: (n[p] ?? 0) + 1 }), {});

    // Both are listed again (the checkpoint is their last change): neither moved.
    advance(60_000);
    const again = await callsOf(() => pull(conn));
    expect(again.result).toMatchObject({ error: null, records_seen: 2, records_changed: 0 });
    expect(byKind(again.paths)).toEqual({
      "/constituent/v1/constituents": 1,
      "/commpref/v1/solicitcodes": 1,
      "/commpref/v1/constituents/{id}/consents": 2,
      "/commpref/v1/constituents/{id}/constituentsolicitcodes": 2,
    });

    // One ticks Requests No Email (its date_modified moves: read whole); the other, unmoved, gets
    // an OptOut consent record, which moves nothing and is still seen.
    advance(60_000);
    await reAct({ action: "set_requests_no_email", constituent_id: moved });
    await reAct({ action: "add_consent", constituent_id: still, response: "OptOut" });
    advance(1_000);
    const changed = await callsOf(() => pull(conn));
    expect(changed.result).toMatchObject({ error: null, consent_events_appended: 2 });
    expect(byKind(changed.paths)).toEqual({
      "/constituent/v1/constituents": 1,
      "/commpref/v1/solicitcodes": 1,
      "/constituent/v1/constituents/{id}": 1,
      "/constituent/v1/constituents/{id}/emailaddresses": 1,
      "/constituent/v1/constituents/{id}/relationships": 1,
      "/commpref/v1/constituents/{id}/consents": 2,
      "/commpref/v1/constituents/{id}/constituentsolicitcodes": 2,
    });
    const kinds = async (id: string) => (await eventsOf(await contactOf("re-nxt", id))).map((e) => e.kind);
    expect(await kinds(moved)).toEqual(["opt_out"]);
    expect(await kinds(still)).toEqual(["opt_out"]);
    // The record read in part is stored as it was, its name and flags kept.
    expect((await store.snapshots.get("re-nxt", still))?.payload).toMatchObject({
      first_name: "Lee",
      emails: [expect.objectContaining({ address: "lee@example.org" })],
    });
    expect((await pull(conn, { full: true })).records_changed).toBe(0);
  });

  /**
   * Two people with a CRM record each; `left` asked the CRM for no email on 3 May, `stayed` never
   * opted out. On 10 May the platform shows both subscribed with a sign-up's traces (`mechanism`),
   * confirming the sign-up of `of_signup_at`. Returns each one's recorded opt-in, and whether
   * `left` receives email on 11 May.
   */
  const subscribedWithTraces = async (
    left: string,
    stayed: string,
    mechanism: "signup_form" | "double_opt_in_confirmation",
    of_signup_at: string | null,
  ) => {
    const email = (name: string) => `${name}@example.org`;
    await store.transaction((tx) =>
      recordChanges(tx, ctxOf("re-nxt", "blackbaud-renxt", "crm"), {
        records: [bareRecord(`re-${left}`, email(left)), bareRecord(`re-${stayed}`, email(stayed))],
        consent: [
          {
            external_id: `re-${left}`,
            email: email(left),
            channel: "email",
            kind: "opt_out",
            scope: { kind: "account" },
            mechanism: "phone_request",
            actor: { kind: "contact" },
            occurred_at: "2026-05-03T09:00:00.000Z",
            evidence: { reason: "asked by phone" },
          },
        ],
      }),
    );
    const subscribed = (name: string, sha: string) => ({
      external_id: `mc-${name}`,
      email: email(name),
      channel: "email" as const,
      kind: "opt_in" as const,
      scope: { kind: "account" as const },
      mechanism,
      actor: { kind: "contact" as const },
      basis: "express" as const,
      occurred_at: "2026-05-10T09:00:00.000Z",
      of_signup_at,
      evidence: { payload_sha256: sha.repeat(64), source_record_id: `mc-${name}` },
    });
    await store.transaction((tx) =>
      recordChanges(tx, ctxOf("mc", "mailchimp", "email_platform"), {
        records: [bareRecord(`mc-${left}`, email(left)), bareRecord(`mc-${stayed}`, email(stayed))],
        consent: [subscribed(left, "a"), subscribed(stayed, "b")],
      }),
    );
    const optInOf = async (name: string) =>
      (await eventsOf(await contactOf("re-nxt", `re-${name}`))).find((e) => e.kind === "opt_in");
    const events = await eventsOf(await contactOf("re-nxt", `re-${left}`));
    return {
      left: await optInOf(left),
      stayed: await optInOf(stayed),
      left_receives: foldChannelConsent(events, "email", { as_of: "2026-05-11T00:00:00.000Z" }).global,
    };
  };

  it("a sign-up's traces vouch for a subscription only if no opt-out came between the sign-up and it", async () => {
    // Both signed up on the form on 1 May: Bob confirms late, Ada is subscribed again by someone
    // else after her opt-out, the form's traces and its signup time kept.
    const got = await subscribedWithTraces("ada", "bob", "signup_form", "2026-05-01T09:00:00.000Z");
    expect(got.stayed).toMatchObject({ mechanism: "signup_form", actor: { kind: "contact" } });
    expect(got.left).toMatchObject({ mechanism: "unknown", actor: { kind: "account" }, basis: "implied" });
    expect(got.left?.evidence.reason).toContain("after the opt-out of 2026-05-03T09:00:00.000Z");
    // The account's subscription lifts no opt-out the person made elsewhere.
    expect(got.left_receives).toMatchObject({ status: "opted_out", sendable: false });
  });

  it("a confirmation of a sign-up the platform keeps no time of is the person's only if no opt-out of theirs came before it", async () => {
    // Fay confirms; Eve is added back by someone else with the traces of an old confirmation.
    const got = await subscribedWithTraces("eve", "fay", "double_opt_in_confirmation", null);
    expect(got.stayed).toMatchObject({ mechanism: "double_opt_in_confirmation", actor: { kind: "contact" } });
    expect(got.left).toMatchObject({ mechanism: "unknown", actor: { kind: "account" }, basis: "implied" });
    expect(got.left?.evidence.reason).toContain("after the opt-out of 2026-05-03T09:00:00.000Z");
    expect(got.left?.evidence.reason).toContain("the system keeps none");
    expect(got.left_receives).toMatchObject({ status: "opted_out", sendable: false });
  });

  it("an opt-out read in the same batch as a later subscription counts as coming between the sign-up and it", async () => {
    const record = (id: string) => bareRecord(id, "cy@example.org");
    await store.transaction((tx) =>
      recordChanges(tx, ctxOf("re-nxt", "blackbaud-renxt", "crm"), {
        records: [record("re-cy")],
        consent: [],
      }),
    );
    // Cy signed up on the form on 1 May and left by the footer link on 3 May; an admin subscribed
    // her again on 10 May before the unsubscribe's delivery was handled. Its re-read brings both
    // in one batch: the member as it reads now (the form's traces kept), and the delivery's word.
    const sha = (c: string) => c.repeat(64);
    await store.transaction((tx) =>
      recordChanges(tx, ctxOf("mc", "mailchimp", "email_platform"), {
        records: [record("mc-cy")],
        consent: [
          {
            external_id: "mc-cy",
            email: "cy@example.org",
            channel: "email",
            kind: "opt_in",
            scope: { kind: "account" },
            mechanism: "double_opt_in_confirmation",
            actor: { kind: "contact" },
            basis: "express",
            occurred_at: "2026-05-10T09:00:00.000Z",
            of_signup_at: "2026-05-01T09:00:00.000Z",
            evidence: { payload_sha256: sha("c"), source_record_id: "mc-cy" },
          },
          {
            external_id: "mc-cy",
            email: "cy@example.org",
            channel: "email",
            kind: "opt_out",
            scope: { kind: "account" },
            mechanism: "unsubscribe_link",
            actor: { kind: "contact" },
            occurred_at: "2026-05-03T09:00:00.000Z",
            evidence: { payload_sha256: sha("d"), source_record_id: "mc-cy" },
          },
        ],
      }),
    );
    const events = await eventsOf(await contactOf("re-nxt", "re-cy"));
    expect(events.find((e) => e.kind === "opt_in")).toMatchObject({
      mechanism: "unknown",
      actor: { kind: "account" },
      basis: "implied",
    });
    expect(foldChannelConsent(events, "email", { as_of: "2026-05-11T00:00:00.000Z" }).global).toMatchObject({
      status: "opted_out",
      sendable: false,
    });
  });

  it("a person's opt-out read where the record last showed the account's is theirs, not the account's again", async () => {
    const record = (id: string) => bareRecord(id, "di@example.org");
    await store.transaction((tx) =>
      recordChanges(tx, ctxOf("re-nxt", "blackbaud-renxt", "crm"), {
        records: [record("re-di")],
        consent: [],
      }),
    );
    // A platform that keeps no time of an unsubscribe: each read says who left, not when.
    const unsubscribed = (actor: "account" | "contact", at: string, sha: string) => ({
      external_id: "mc-di",
      email: "di@example.org",
      channel: "email" as const,
      kind: "opt_out" as const,
      scope: { kind: "account" as const },
      mechanism: actor === "account" ? ("admin_edit" as const) : ("unknown" as const),
      actor: { kind: actor },
      occurred_at: at,
      time_unknown: true as const,
      evidence: { payload_sha256: sha.repeat(64), source_record_id: "mc-di" },
    });
    const read = (o: ReturnType<typeof unsubscribed>) =>
      store.transaction((tx) =>
        recordChanges(tx, ctxOf("mc", "mailchimp", "email_platform"), {
          records: [record("mc-di")],
          consent: [o],
        }),
      );
    // An admin unsubscribes Di; the same read again is the same act.
    await read(unsubscribed("account", "2026-05-02T09:00:00.000Z", "a"));
    await read(unsubscribed("account", "2026-05-02T09:00:00.000Z", "a"));
    // Between two reads the admin subscribes her again and she leaves by the footer link herself.
    await read(unsubscribed("contact", "2026-05-04T09:00:00.000Z", "b"));
    const events = await eventsOf(await contactOf("re-nxt", "re-di"));
    expect(events.map((e) => `${e.kind} ${e.actor.kind}`)).toEqual(["opt_out account", "opt_out contact"]);
    // Read again, her opt-out is known: nothing more is recorded.
    await read(unsubscribed("contact", "2026-05-05T09:00:00.000Z", "b"));
    expect(await eventsOf(await contactOf("re-nxt", "re-di"))).toHaveLength(2);
  });
});

describe("pullConnection configuration", () => {
  it("refuses a connection that is not part of the pair", async () => {
    const config = ConcordConfigShapeSchema.parse({
      connections: [{ id: "cc-x", system: "constant-contact" }],
      pairs: [{ id: "p", crm: "re-nxt", platforms: [{ connection: "cc-main" }] }],
    });
    const connection = config.connections[0];
    const p = config.pairs[0];
    if (!connection || !p) throw new Error("config");
    const opened = {
      connection,
      manifest: blackbaudRenxtManifest,
    } as unknown as OpenedConnection;
    await expect(
      pullConnection({ store: {} as Store, connection: opened, config, pair: p, now: () => new Date() }),
    ).rejects.toThrow(/not part of pair/);
  });
});
