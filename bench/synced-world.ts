/**
 * Bench data: many pairs already synced, without syncing each through the vendors. One template
 * pair is synced for real (its own Raiser's Edge NXT and Constant Contact emulators, `concord serve`
 * on the store, the vendors' rate limits lifted); then its store rows and both emulators' records
 * are copied for every other pair, each copy with its own connection ids, record ids, addresses and
 * contact ids. Content hashes are computed again for the copies, and their consent events get their
 * content-derived ids, their place in the hash chain and their seals from the ledger's own
 * functions, so the copies are what a first sync of each pair would have written.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Kysely } from "kysely";
import type { StartedConstantContactEmulator } from "../src/connectors/constant-contact/emulator/constant-contact-emulator";
import type { StoredContact } from "../src/connectors/constant-contact/emulator/constant-contact-store";
import type { WorldContact, WorldPerson, WorldSeed } from "../src/connectors/emulator-kit/world";
import { startEmulatedWorld, type WorldConnection } from "../src/emulated-world/emulated-world";
import { consentEventId } from "../src/ledger/consent-event-id";
import { chainRow, fromRow } from "../src/ledger/consent-ledger";
import { contentHash } from "../src/pipeline/content-hash";
import { CONSENT_LEDGER_HEAD_ID } from "../src/store/migrations/0001-initial";
import type { LedgerSealer, Store } from "../src/store/ports";
import type { Database } from "../src/store/schema";
import { concordProcesses, installationEnv } from "../test/support/concord-processes";
import { TEST_KEY } from "../test/support/test-credentials";

/** The template pair's token; pair `i` has `tokenOf(i)`, the template being pair 0. */
export const TEMPLATE = tokenOf(0);
const STAMP = "2026-05-01T09:00:00.000Z";
/** People were last changed an hour apart, the newest last, as in a CRM in use. */
const modifiedAt = (n: number): string => new Date(Date.parse(STAMP) + n * 3_600_000).toISOString();

/** Each pair's token: in its connection ids, pair id, record ids and addresses (`x0007`). */
export function tokenOf(i: number): string {
  return `x${String(i).padStart(4, "0")}`;
}

export const pairIds = (token: string) => ({
  pair: `pair-${token}`,
  crm: `re-${token}`,
  platform: `cc-${token}`,
});

/**
 * The people of a pair's Raiser's Edge NXT, all on the synced list. Their last changes are spread
 * over months: people changed within minutes of each other are all in an incremental read's overlap
 * window, read again at every poll until a later change moves it on.
 */
export function crmSeed(token: string, contacts: number): WorldSeed {
  const people: WorldPerson[] = Array.from({ length: contacts }, (_, n) => ({
    id: personId(token, n),
    kind: "individual",
    first: `P${n}`,
    last: `Pair${token}`,
    email: { address: personEmail(token, n) },
    added_at: STAMP,
    modified_at: modifiedAt(n),
  }));
  return {
    people,
    lists: [{ id: "news", name: "Monthly newsletter", members: people.map((p) => p.id) }],
  };
}

export const personId = (token: string, n: number): string => `p-${token}-${n}`;
export const personEmail = (token: string, n: number): string => `p-${token}-${n}@example.org`;

/** A pair's two connections, each emulated on loopback. */
export function pairConnections(token: string, limits: Record<string, unknown>): WorldConnection[] {
  const ids = pairIds(token);
  return [
    {
      id: ids.crm,
      system: "blackbaud-renxt",
      emulator: { ratePerSecond: 1000, webhooks: { autoDeliver: false } },
      config: { limits },
    },
    {
      id: ids.platform,
      system: "constant-contact",
      emulator: { rateLimitPerSecond: null },
      config: { limits },
    },
  ];
}

/**
 * A pair: the CRM's "Monthly newsletter" to the platform's "Newsletter" with first and last names,
 * polled every `poll`.
 */
export function pairConfig(token: string, poll: string): Record<string, unknown> {
  const ids = pairIds(token);
  return {
    id: ids.pair,
    crm: ids.crm,
    platforms: [{ connection: ids.platform }],
    schedule: { poll_interval: poll },
    audiences: [
      {
        crm_list: { name: "Monthly newsletter" },
        platform: ids.platform,
        platform_list: { name: "Newsletter" },
        direction: "crm_to_platform",
      },
    ],
    fields: [
      { canonical: "first_name", crm: "first", platform: "first_name", owner: "crm" },
      { canonical: "last_name", crm: "last", platform: "last_name", owner: "crm" },
    ],
  };
}

export type SyncedTemplate = {
  /** The template's platform contacts as the canonical world seeds them. */
  platform: WorldContact[];
  first_sync_ms: number;
  /** When the first sync ended (epoch ms). */
  synced_at: number;
};

/**
 * Syncs the template pair into `store` (an empty installation in `schema`) for real, through
 * `concord serve` with two jobs, the vendors' rate limits lifted; returns once every person is
 * linked in the platform and the run has ended, the processes stopped and the emulators closed.
 */
export async function syncTemplate(o: {
  url: string;
  schema: string;
  store: Store;
  contacts: number;
  tmpDir: string;
}): Promise<SyncedTemplate> {
  const ids = pairIds(TEMPLATE);
  let raw: Record<string, unknown> = {};
  const world = await startEmulatedWorld({
    connections: pairConnections(TEMPLATE, { requests_per_second: 1000, daily_quota: 100_000_000 }),
    config: { pairs: [pairConfig(TEMPLATE, "1m")] },
    configure: (r) => {
      raw = r;
    },
    store: o.store,
    key: TEST_KEY,
  });
  try {
    await world.seed(ids.crm, crmSeed(TEMPLATE, o.contacts));
    await world.seed(ids.platform, { lists: [{ id: "news-list", name: "Newsletter" }] });
    const configFile = join(o.tmpDir, `${o.schema}-template.json`);
    writeFileSync(configFile, JSON.stringify(raw));
    const processes = concordProcesses(
      installationEnv({
        url: o.url,
        schema: o.schema,
        config_file: configFile,
        data_dir: o.tmpDir,
        log_level: "error",
      }),
    );
    const started = Date.now();
    let first_sync_ms = 0;
    try {
      await processes.start(["serve", "--port", "0", "--workers", "2"]);
      await until(async () => {
        const run = await o.store.db
          .selectFrom("runs")
          .select("status")
          .where("pair_id", "=", ids.pair)
          .where("finished_at", "is not", null)
          .executeTakeFirst();
        if (run !== undefined && run.status !== "succeeded")
          throw new Error(`the template pair's first sync ended ${run.status}:\n${processes.output()}`);
        return run !== undefined;
      }, 1_800_000);
      first_sync_ms = Date.now() - started;
    } finally {
      await processes.stopAll();
    }
    const linked = await linksOf(o.store.db, ids.platform);
    if (linked !== o.contacts)
      throw new Error(
        `the template pair's first sync linked ${linked} of ${o.contacts} people in the platform`,
      );
    const cc = world.emulator(ids.platform).native as StartedConstantContactEmulator;
    return { platform: cc.store.ordered.map(worldContact), first_sync_ms, synced_at: Date.now() };
  } finally {
    await world.close();
  }
}

/** A platform contact as the canonical world would seed it: the same id, times and subscription. */
function worldContact(c: StoredContact): WorldContact {
  const email = c.email_address;
  if (email === null || email.permission_to_send === "unsubscribed")
    throw new Error(`the template's contact ${c.contact_id} is not subscribed; a first sync makes none`);
  const first = c.fields["first_name"];
  const last = c.fields["last_name"];
  return {
    id: c.contact_id,
    email: email.address,
    ...(typeof first === "string" ? { first } : {}),
    ...(typeof last === "string" ? { last } : {}),
    added_by: c.create_source === "Contact" ? "contact" : "account",
    added_at: c.created_at,
    modified_at: c.updated_at,
    subscription: {
      status: "subscribed",
      explicit: email.permission_to_send === "explicit",
      ...(email.opt_in_date !== null ? { since: email.opt_in_date } : {}),
    },
    list_ids: c.list_memberships,
  };
}

/** The template's platform contacts for pair `token`: the same ids, its own addresses and names. */
export function platformSeed(template: SyncedTemplate, token: string): WorldSeed {
  return {
    lists: [{ id: "news-list", name: "Newsletter" }],
    contacts: JSON.parse(JSON.stringify(template.platform).replaceAll(TEMPLATE, token)) as WorldContact[],
  };
}

/** Tables a pair's first sync writes and a copy carries, in the order their rows go in. */
const COPIED = [
  "contacts",
  "contact_emails",
  "links",
  "record_snapshots",
  "baselines",
  "plan_marks",
] as const;
const PER_STATEMENT = 1_000;
/** Copies written at once, each in its own transaction on its own connection of the store's pool. */
const WRITERS = 3;

/**
 * Copies the template pair's rows for pairs 1 … `pairs - 1`: contacts, addresses, links,
 * snapshots (their content hashes again), baselines, plan marks, checkpoints and runs, and its
 * consent events appended to the ledger's chain (sealed with `sealer`).
 */
export async function copyTemplate(o: {
  store: Store;
  sealer: LedgerSealer;
  pairs: number;
  log: (line: string) => void;
}): Promise<void> {
  const db = o.store.db;
  const template = pairIds(TEMPLATE);
  const rows = {
    contacts: await db.selectFrom("contacts").selectAll().execute(),
    contact_emails: await db.selectFrom("contact_emails").selectAll().execute(),
    links: await db.selectFrom("links").selectAll().execute(),
    record_snapshots: await db.selectFrom("record_snapshots").selectAll().execute(),
    baselines: await db.selectFrom("baselines").selectAll().execute(),
    plan_marks: await db.selectFrom("plan_marks").selectAll().execute(),
  };
  const checkpoints = await db
    .selectFrom("checkpoints")
    .selectAll()
    .where("connection_id", "in", [template.crm, template.platform, `pair:${template.pair}`])
    .execute();
  const runs = await db.selectFrom("runs").selectAll().where("pair_id", "=", template.pair).execute();
  const events = await db.selectFrom("consent_events").selectAll().orderBy("seq").execute();
  const head = await db
    .selectFrom("consent_ledger_head")
    .select(["seq", "hash"])
    .where("id", "=", CONSENT_LEDGER_HEAD_ID)
    .executeTakeFirstOrThrow();
  const ledger = { seq: head.seq, hash: head.hash };
  const started = Date.now();
  let done = 0;
  // Each copy's rows are made in turn (its events take the next places in the chain), and
  // written in transactions of their own, a few at once; the ledger's head moves last.
  const writing = new Set<Promise<void>>();
  for (let i = 1; i < o.pairs; i += 1) {
    const copy = copier(i);
    const copied: [keyof Database, Record<string, unknown>[]][] = [
      ...COPIED.map((table): [keyof Database, Record<string, unknown>[]] => [
        table,
        (rows[table] as Record<string, unknown>[]).map(copy),
      ]),
      ["checkpoints", checkpoints.map(copy)],
      ["runs", runs.map(copy)],
      [
        "consent_events",
        events.map((row) => {
          const stored = fromRow(copy(row));
          const event = { ...stored.event, id: consentEventId(stored.event) };
          const next = chainRow(ledger, event, row.recorded_at);
          ledger.seq = next.seq;
          ledger.hash = next.hash;
          return { ...next, seal: o.sealer.seal(next.hash) };
        }),
      ],
    ];
    const write: Promise<void> = db
      .transaction()
      .execute(async (trx) => {
        for (const [table, list] of copied) await insertAll(trx, table, list);
      })
      .then(() => {
        writing.delete(write);
        done += 1;
        if (done % 20 === 0 || done === o.pairs - 1)
          o.log(
            `  copied the template to ${done + 1} pairs (${Math.round((Date.now() - started) / 1000)} s)`,
          );
      });
    writing.add(write);
    if (writing.size >= WRITERS) await Promise.race(writing);
  }
  await Promise.all(writing);
  await db
    .updateTable("consent_ledger_head")
    .set({ seq: ledger.seq, hash: ledger.hash })
    .where("id", "=", CONSENT_LEDGER_HEAD_ID)
    .execute();
}

/**
 * A row of the template as pair `i` holds it: its token, and Concord's own ids (contacts, runs)
 * with their first three characters made the pair's, so each copy's ids are its own.
 */
function copier(i: number): <T extends object>(row: T) => T {
  const token = tokenOf(i);
  const prefix = `z${BASE32[(i >> 5) & 31]}${BASE32[i & 31]}`;
  return <T extends object>(row: T): T => {
    const text = JSON.stringify(row)
      .replaceAll(TEMPLATE, token)
      .replace(/\b(con|run)_[0-9a-z]{3}([0-9a-z]{23})\b/g, `$1_${prefix}$2`);
    const copied = JSON.parse(text) as Record<string, unknown>;
    if (typeof copied["payload_json"] === "string" && typeof copied["content_hash"] === "string")
      copied["content_hash"] = contentHash(JSON.parse(copied["payload_json"]));
    return copied as T;
  };
}

const BASE32 = "0123456789abcdefghjkmnpqrstvwxyz";

async function insertAll(
  db: Kysely<Database>,
  table: keyof Database,
  rows: readonly Record<string, unknown>[],
): Promise<void> {
  for (let at = 0; at < rows.length; at += PER_STATEMENT)
    await db
      .insertInto(table)
      .values(rows.slice(at, at + PER_STATEMENT))
      .execute();
}

async function linksOf(db: Kysely<Database>, connection: string): Promise<number> {
  const row = await db
    .selectFrom("links")
    .select((eb) => eb.fn.countAll<number | string>().as("n"))
    .where("connection_id", "=", connection)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

/** Until `check` holds, looked at every `every_ms`; gives up after `limit_ms` with an error. */
export async function until(check: () => Promise<boolean>, limit_ms: number, every_ms = 250): Promise<void> {
  const deadline = Date.now() + limit_ms;
  while (!(await check())) {
    if (Date.now() > deadline)
      throw new Error(`the installation did not finish its work in ${Math.round(limit_ms / 60_000)} minutes`);
    await new Promise((resolve) => setTimeout(resolve, every_ms));
  }
}
