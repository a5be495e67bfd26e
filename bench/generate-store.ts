/**
 * Bench data: a store already holding N contacts linked across one Raiser's Edge NXT and two
 * Constant Contact connections, as a long-running Concord would hold them after many syncs, with a
 * realistic share of work waiting: opt-outs not yet carried over, email and name changes, contacts
 * to import and list changes. Rows go straight into the tables (prepared statements on SQLite,
 * multi-row inserts on PostgreSQL), never through the connectors. Consent events get their
 * content-derived ids and their place in the hash chain from the ledger's own functions, so the
 * chain verifies (`verifyLedger`), without the per-batch validation `appendConsentEvents` does.
 */
import { createHash } from "node:crypto";
import BetterSqlite3 from "better-sqlite3";
import { sql, type Insertable, type Kysely } from "kysely";
import { GLOBAL_SCOPE, topicScope } from "../src/core/consent/consent-event";
import {
  ACCOUNT_OBSERVED,
  constructScope,
  GLOBAL_OBSERVED,
  type ConsentFact,
  type ObservedScope,
} from "../src/core/consent/system-consent";
import type { ResolvedPair } from "../src/pipeline/resolve-pair";
import { LEDGER_GENESIS_HASH } from "../src/ledger/chain-hash";
import { consentEventId, type ConsentEventDraft } from "../src/ledger/consent-event-id";
import { createRandom } from "../src/demo/random";
import { chainRow } from "../src/ledger/consent-ledger";
import { CONSENT_LEDGER_HEAD_ID } from "../src/store/migrations/0001-initial";
import type { LedgerHead, Store } from "../src/store/ports";
import type {
  BaselinesTable,
  ContactEmailsTable,
  ContactsTable,
  ConsentEventsTable,
  Database,
  LinksTable,
  RecordSnapshotsTable,
} from "../src/store/schema";

export const CRM = "re-nxt";
export const MAIN = "cc-main";
export const APPEALS = "cc-appeals";
export const PAIR_ID = "re-cc";
export const LISTS = {
  news: { crm: "L-news", platform: "cc-news" },
  events: { crm: "L-events", platform: "cc-events" },
  appeals: { crm: "L-appeals", platform: "cca-appeals" },
} as const;

/** The CRM's construct for the topic "appeals" (a consent category). */
const APPEALS_CATEGORY: ObservedScope = constructScope("consent_category", "Appeals");

/**
 * The pair as `resolvePair` would give it for the example config: one global account with two
 * audiences (newsletter one way and removing memberships, events both ways), one "appeals" account
 * standing for the CRM's "Appeals" consent category; first and last names synced both ways, owned
 * by the CRM; the config's default policies.
 */
export const BENCH_PAIR: ResolvedPair = {
  list_changes: [],
  list_sync_state: [],
  list_sync_skipped: [],
  implied_consent: [],
  pair: {
    id: PAIR_ID,
    crm: {
      connection_id: CRM,
      system: "blackbaud-renxt",
      resubscribe: "consent_record",
      targets: [
        { scope: GLOBAL_SCOPE, construct: GLOBAL_OBSERVED, shown_by: "facts", label: "all email" },
        {
          scope: topicScope("appeals"),
          construct: APPEALS_CATEGORY,
          shown_by: "facts",
          label: "consent category “Appeals”",
        },
      ],
    },
    platforms: [
      {
        connection_id: MAIN,
        system: "constant-contact",
        account_scope: GLOBAL_SCOPE,
        targets: [
          { scope: GLOBAL_SCOPE, construct: ACCOUNT_OBSERVED, shown_by: "facts", label: "the whole account" },
        ],
        resubscribe: "confirmation_email",
        audiences: [
          {
            crm_list_id: LISTS.news.crm,
            platform_list_id: LISTS.news.platform,
            direction: "crm_to_platform",
            delete_policy: "remove_membership",
          },
          {
            crm_list_id: LISTS.events.crm,
            platform_list_id: LISTS.events.platform,
            direction: "both",
            delete_policy: "keep",
          },
        ],
      },
      {
        connection_id: APPEALS,
        system: "constant-contact",
        account_scope: topicScope("appeals"),
        targets: [
          {
            scope: topicScope("appeals"),
            construct: ACCOUNT_OBSERVED,
            shown_by: "facts",
            label: "the whole account",
          },
        ],
        resubscribe: "confirmation_email",
        audiences: [
          {
            crm_list_id: LISTS.appeals.crm,
            platform_list_id: LISTS.appeals.platform,
            direction: "crm_to_platform",
            delete_policy: "keep",
          },
        ],
      },
    ],
  },
  fields: [
    { canonical: "first_name", crm: "first", platform: "first_name", direction: "both", owner: "crm" },
    { canonical: "last_name", crm: "last", platform: "last_name", direction: "both", owner: "crm" },
  ],
  policies: {
    unlinked_opt_outs: "apply_and_report",
    create_in_crm: false,
    require_consent_basis: false,
    propagate_crm_opt_outs: true,
    ended_crm_records: "unsubscribe",
  },
  crm_list_ids: [LISTS.appeals.crm, LISTS.events.crm, LISTS.news.crm],
  platform_list_ids: {
    [MAIN]: [LISTS.news.platform, LISTS.events.platform],
    [APPEALS]: [LISTS.appeals.platform],
  },
};

/**
 * The shares of the generated world (of all contacts, unless said otherwise). Consent states are
 * exclusive; name, email and list changes are drawn independently among contacts on `cc-main`.
 */
export const SHARES = {
  in_news: 0.8,
  in_events: 0.2,
  in_appeals: 0.3,
  /** Of the CRM contacts in a mapped list: not on that platform yet (the next plan imports them). */
  not_yet_on_platform: 0.1,
  /** Opt-outs made on cc-main long ago, already shown everywhere (no work). */
  settled_opt_out: 0.03,
  /** "Requests no email" ticked in the CRM since the last run: the platforms still show subscribed. */
  new_crm_opt_out: 0.05,
  /** Unsubscribed on cc-main since the last run: the CRM does not show it yet. */
  new_platform_opt_out: 0.01,
  /** Opted out, then opted in again by their own confirmation; shown everywhere (no work). */
  opted_in_again: 0.01,
  /** Opted out of appeals on cc-appeals long ago, shown in the CRM's "Appeals" category (no work). */
  settled_topic_opt_out: 0.02,
  /** An "Appeals" opt-out recorded in the CRM since the last run: cc-appeals still shows subscribed. */
  new_crm_topic_opt_out: 0.005,
  /** On cc-main: first name changed there since the last agreement (the CRM follows). */
  platform_name_change: 0.02,
  /** On cc-main: first name changed on both sides (a conflict: the CRM owns the field). */
  name_conflict: 0.01,
  /** The CRM's primary address changed (the platforms follow). */
  crm_email_change: 0.015,
  /** On cc-main: the address changed there (the CRM and cc-appeals follow). */
  platform_email_change: 0.005,
  /** On cc-main: joined the newsletter list in the CRM since the last run. */
  joined_list_in_crm: 0.005,
  /** On cc-main: left the newsletter list in the CRM since the last run (removed: `remove_membership`). */
  left_list_in_crm: 0.005,
} as const;

type ConsentState =
  | "none"
  | "settled_opt_out"
  | "new_crm_opt_out"
  | "new_platform_opt_out"
  | "opted_in_again"
  | "settled_topic_opt_out"
  | "new_crm_topic_opt_out";

/** How many contacts the generator put in each situation: what the plan's counts should reflect. */
export type GeneratedCounts = {
  contacts: number;
  crm_records: number;
  main_records: number;
  appeals_records: number;
  /** In a list mapped to cc-main (or cc-appeals) and not on it: candidates for import. */
  main_imports: number;
  appeals_imports: number;
  consent: Record<ConsentState, number>;
  consent_events: number;
  platform_name_change: number;
  name_conflict: number;
  crm_email_change: number;
  platform_email_change: number;
  joined_list_in_crm: number;
  left_list_in_crm: number;
  rows: number;
};

const emptyCounts = (): GeneratedCounts => ({
  contacts: 0,
  crm_records: 0,
  main_records: 0,
  appeals_records: 0,
  main_imports: 0,
  appeals_imports: 0,
  consent: {
    none: 0,
    settled_opt_out: 0,
    new_crm_opt_out: 0,
    new_platform_opt_out: 0,
    opted_in_again: 0,
    settled_topic_opt_out: 0,
    new_crm_topic_opt_out: 0,
  },
  consent_events: 0,
  platform_name_change: 0,
  name_conflict: 0,
  crm_email_change: 0,
  platform_email_change: 0,
  joined_list_in_crm: 0,
  left_list_in_crm: 0,
  rows: 0,
});

const CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz";

/** Ids shaped like the store's own (`con_` + 26 Crockford characters), in index order. */
export function benchContactId(i: number): string {
  let tail = "";
  let n = i;
  for (let k = 0; k < 16; k += 1) {
    tail = CROCKFORD.charAt(n % 32) + tail;
    n = Math.floor(n / 32);
  }
  return `con_01jx5b8k00${tail}`;
}

/** A random (version 4 shaped) UUID, as Constant Contact's contact ids are, from the seeded stream. */
function uuid(random: () => number): string {
  const hex = (digits: number): string =>
    Math.floor(random() * 16 ** digits)
      .toString(16)
      .padStart(digits, "0");
  return `${hex(8)}-${hex(4)}-4${hex(3)}-a${hex(3)}-${hex(6)}${hex(6)}`;
}

const sha256 = (text: string): string => createHash("sha256").update(text).digest("hex");

const FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "John", "Karen", "Niklaus"];
const LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Backus", "Jones"];

/** The rows of one chunk of contacts. */
export type ChunkRows = {
  contacts: Insertable<ContactsTable>[];
  contact_emails: Insertable<ContactEmailsTable>[];
  links: Insertable<LinksTable>[];
  record_snapshots: Insertable<RecordSnapshotsTable>[];
  baselines: Insertable<BaselinesTable>[];
  consent_events: Insertable<ConsentEventsTable>[];
};

const STAMP = "2026-05-31T22:00:00.000Z";
const LAST_RUN = "run_01jx5b8k00bench0000000000";

/** Builds contacts `from`..`to - 1`; `random` must be the generator's single stream, used in order. */
export function generateChunk(
  from: number,
  to: number,
  random: () => number,
  counts: GeneratedCounts,
  ledger: LedgerHead,
): ChunkRows {
  const rows: ChunkRows = {
    contacts: [],
    contact_emails: [],
    links: [],
    record_snapshots: [],
    baselines: [],
    consent_events: [],
  };
  const snapshot = (connection_id: string, external_id: string, payload: unknown): void => {
    const json = JSON.stringify(payload);
    rows.record_snapshots.push({
      connection_id,
      external_id,
      content_hash: sha256(json),
      payload_json: json,
      observed_at: STAMP,
    });
  };

  for (let i = from; i < to; i += 1) {
    const id = benchContactId(i);
    const reId = String(280_000 + i);
    const first = `${FIRST[i % FIRST.length] ?? "Ada"}${i}`;
    const last = LAST[Math.floor(i / 7) % LAST.length] ?? "Lovelace";
    const email = `p${i}@example.org`;
    const inNews = random() < SHARES.in_news;
    const inEvents = random() < SHARES.in_events;
    const inAppeals = random() < SHARES.in_appeals;
    const onMain = (inNews || inEvents) && random() >= SHARES.not_yet_on_platform;
    const onAppeals = inAppeals && random() >= SHARES.not_yet_on_platform;

    const c = random();
    let consent: ConsentState = "none";
    let edge = SHARES.settled_opt_out;
    if (c < edge) consent = "settled_opt_out";
    else if (c < (edge += SHARES.new_crm_opt_out)) consent = "new_crm_opt_out";
    else if (c < (edge += SHARES.new_platform_opt_out)) consent = onMain ? "new_platform_opt_out" : "none";
    else if (c < (edge += SHARES.opted_in_again)) consent = onMain ? "opted_in_again" : "none";
    else if (c < (edge += SHARES.settled_topic_opt_out)) consent = "settled_topic_opt_out";
    else if (c < edge + SHARES.new_crm_topic_opt_out) consent = "new_crm_topic_opt_out";

    const f = random();
    const nameChange = onMain && f < SHARES.platform_name_change;
    const nameConflict =
      onMain && f >= SHARES.platform_name_change && f < SHARES.platform_name_change + SHARES.name_conflict;
    const e = random();
    const crmEmailChange = e < SHARES.crm_email_change;
    const platformEmailChange =
      onMain && !crmEmailChange && e < SHARES.crm_email_change + SHARES.platform_email_change;
    const l = random();
    const joined = onMain && inNews && l < SHARES.joined_list_in_crm;
    const left =
      onMain &&
      inNews &&
      l >= SHARES.joined_list_in_crm &&
      l < SHARES.joined_list_in_crm + SHARES.left_list_in_crm;

    // --- the CRM record, as the last read saw it
    const crmEmail = crmEmailChange ? `p${i}.moved@example.net` : email;
    const crmLists = [
      ...(inNews && !left ? [LISTS.news.crm] : []),
      ...(inEvents ? [LISTS.events.crm] : []),
      ...(inAppeals ? [LISTS.appeals.crm] : []),
    ];
    const crmFields: Record<string, string | null> = { type: "Individual", lookup_id: String(90_000 + i) };
    // The CRM's consent as its connector reports it: a global flag with no history, consent records.
    const crmFacts: ConsentFact[] = [
      generatedFact(
        GLOBAL_OBSERVED,
        consent === "settled_opt_out" || consent === "new_crm_opt_out" ? "opted_out" : "none",
        { unversioned: true },
      ),
      ...(consent === "opted_in_again"
        ? [generatedFact(GLOBAL_OBSERVED, "opted_in", { role: "record" as const })]
        : []),
      ...(consent === "settled_topic_opt_out" || consent === "new_crm_topic_opt_out"
        ? [generatedFact(APPEALS_CATEGORY, "opted_out")]
        : []),
    ];
    const crmFirst = nameConflict ? `${first}-crm` : first;
    snapshot(CRM, reId, {
      external_id: reId,
      kind: "individual",
      emails: crmEmailChange
        ? [
            { address: email, primary: false, inactive: false },
            { address: crmEmail, primary: true, inactive: false },
          ]
        : [{ address: email, primary: true, inactive: false }],
      first_name: crmFirst,
      last_name: last,
      fields: crmFields,
      consent_state: crmFacts,
      list_ids: crmLists,
      inactive: false,
      deceased: false,
      updated_at: "2026-05-30T10:00:00.000Z",
    });
    rows.links.push({
      connection_id: CRM,
      external_id: reId,
      contact_id: id,
      origin: "observed",
      created_at: STAMP,
      updated_at: STAMP,
    });

    // --- the contact, as identity left it (its primary follows the CRM's)
    rows.contacts.push({
      id,
      type: "person",
      given_name: crmFirst,
      family_name: last,
      organization_name: null,
      primary_email: crmEmail,
      email_match_key: crmEmail,
      flags_json: "[]",
      created_at: STAMP,
      updated_at: STAMP,
      erased_at: null,
    });
    rows.contact_emails.push({ contact_id: id, match_key: email, email, created_at: STAMP });
    if (crmEmailChange)
      rows.contact_emails.push({ contact_id: id, match_key: crmEmail, email: crmEmail, created_at: STAMP });

    // --- platform records and what both sides last agreed on
    const baselines: Record<string, Record<string, string | null>> = {};
    const platform = (
      connection: string,
      lists: { crm: string; platform: string; member: boolean; agreed: boolean }[],
      options: { unsubscribed: boolean; explicit: boolean; first: string; email: string },
    ): void => {
      const ccId = uuid(random);
      snapshot(connection, ccId, {
        external_id: ccId,
        kind: "individual",
        emails: [{ address: options.email, primary: true }],
        first_name: options.first,
        last_name: last,
        fields: {},
        consent_state: [generatedFact(ACCOUNT_OBSERVED, options.unsubscribed ? "opted_out" : "opted_in")],
        list_ids: lists.filter((x) => x.member).map((x) => x.platform),
        updated_at: "2026-05-29T08:00:00.000Z",
      });
      rows.links.push({
        connection_id: connection,
        external_id: ccId,
        contact_id: id,
        origin: "concord",
        created_at: STAMP,
        updated_at: STAMP,
      });
      const agreed: Record<string, string | null> = { first_name: first, last_name: last, email };
      for (const x of lists) agreed[`list:${x.crm}:${x.platform}`] = x.agreed ? "member" : "absent";
      baselines[connection] = agreed;
    };
    if (onMain) {
      counts.main_records += 1;
      platform(
        MAIN,
        [
          // joined: in the CRM list now, absent on the platform as agreed; left: still a member there.
          { ...LISTS.news, member: inNews && !joined, agreed: inNews && !joined },
          { ...LISTS.events, member: inEvents, agreed: inEvents },
        ],
        {
          unsubscribed: consent === "settled_opt_out" || consent === "new_platform_opt_out",
          explicit: consent === "opted_in_again",
          first: nameChange || nameConflict ? `${first}-cc` : first,
          email: platformEmailChange ? `p${i}.cc@example.com` : email,
        },
      );
    } else if (inNews || inEvents) counts.main_imports += 1;
    if (onAppeals) {
      counts.appeals_records += 1;
      platform(APPEALS, [{ ...LISTS.appeals, member: true, agreed: true }], {
        unsubscribed: consent === "settled_opt_out" || consent === "settled_topic_opt_out",
        explicit: false,
        first,
        email,
      });
    } else if (inAppeals) counts.appeals_imports += 1;
    if (onMain || onAppeals)
      rows.baselines.push({
        contact_id: id,
        pair_id: PAIR_ID,
        values_json: JSON.stringify(baselines),
        run_id: LAST_RUN,
        updated_at: STAMP,
      });

    // --- the ledger, chained as `appendConsentEvents` chains it
    for (const draft of consentEvents(consent, id, reId)) {
      const event = { ...draft, id: consentEventId(draft) };
      const row = chainRow(ledger, event, STAMP);
      rows.consent_events.push(row);
      ledger.seq = row.seq;
      ledger.hash = row.hash;
    }

    counts.contacts += 1;
    counts.crm_records += 1;
    counts.consent[consent] += 1;
    if (nameChange) counts.platform_name_change += 1;
    if (nameConflict) counts.name_conflict += 1;
    if (crmEmailChange) counts.crm_email_change += 1;
    if (platformEmailChange) counts.platform_email_change += 1;
    if (joined) counts.joined_list_in_crm += 1;
    if (left) counts.left_list_in_crm += 1;
  }
  counts.consent_events += rows.consent_events.length;
  counts.rows +=
    rows.contacts.length +
    rows.contact_emails.length +
    rows.links.length +
    rows.record_snapshots.length +
    rows.baselines.length +
    rows.consent_events.length;
  return rows;
}

function consentEvents(state: ConsentState, contactId: string, reId: string): ConsentEventDraft[] {
  const at = (day: number): string => new Date(Date.UTC(2025, 0, 1) + day * 86_400_000).toISOString();
  const seen = "2026-05-31T21:00:00.000Z";
  const digest = sha256(`${contactId}:${state}`);
  const fromCc = (connection: string, topic: boolean, day: number): ConsentEventDraft => ({
    kind: "opt_out",
    scope: topic ? { kind: "topic", topic: "appeals" } : { kind: "global" },
    contact_id: contactId,
    channel: "email",
    source: { system: "constant-contact", connection },
    mechanism: "unknown",
    actor: { kind: "contact" },
    occurred_at: at(day),
    observed_at: seen,
    evidence: { payload_sha256: digest, source_record_id: `${connection}:${contactId}` },
  });
  switch (state) {
    case "none":
      return [];
    case "settled_opt_out":
      return [fromCc(MAIN, false, 40)];
    case "new_platform_opt_out":
      return [fromCc(MAIN, false, 500)];
    case "settled_topic_opt_out":
      return [fromCc(APPEALS, true, 60)];
    case "new_crm_opt_out":
      return [
        {
          kind: "opt_out",
          scope: { kind: "global" },
          contact_id: contactId,
          channel: "email",
          source: { system: "blackbaud-renxt", connection: CRM },
          mechanism: "admin_edit",
          actor: { kind: "account" },
          occurred_at: at(510),
          observed_at: seen,
          evidence: {
            reason: "Requests no email is set on the constituent",
            source_record_id: `constituent:${reId}`,
            payload_sha256: digest,
          },
        },
      ];
    case "new_crm_topic_opt_out":
      return [
        {
          kind: "opt_out",
          scope: { kind: "topic", topic: "appeals" },
          contact_id: contactId,
          channel: "email",
          source: { system: "blackbaud-renxt", connection: CRM },
          mechanism: "unknown",
          actor: { kind: "contact" },
          occurred_at: at(505),
          observed_at: seen,
          evidence: { source_record_id: `consent:${reId}:appeals`, payload_sha256: digest },
        },
      ];
    case "opted_in_again":
      return [
        fromCc(MAIN, false, 20),
        {
          kind: "opt_in",
          scope: { kind: "global" },
          basis: "express",
          contact_id: contactId,
          channel: "email",
          source: { system: "constant-contact", connection: MAIN },
          mechanism: "resubscribe_confirmation",
          actor: { kind: "contact" },
          occurred_at: at(200),
          observed_at: seen,
          evidence: { payload_sha256: digest, source_record_id: `${MAIN}:${contactId}:optin` },
        },
      ];
  }
}

const TABLES = [
  "contacts",
  "contact_emails",
  "links",
  "record_snapshots",
  "baselines",
  "consent_events",
] as const;
type TableName = (typeof TABLES)[number];

/** Where chunks of rows go: a SQLite file (prepared statements) or a PostgreSQL store (multi-row inserts). */
type RowWriter = { write: (rows: ChunkRows) => Promise<void>; close: () => Promise<void> };

/**
 * SQLite: one prepared statement per table, a transaction per chunk, no fsync until the end, and
 * the secondary indexes built once the rows are in (their definitions read back from the schema,
 * so they are exactly the migrations' own).
 */
function sqliteWriter(file: string): RowWriter {
  const db = new BetterSqlite3(file);
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = OFF");
  db.pragma("cache_size = -262144");
  const indexes = db
    .prepare(
      `select name, sql from sqlite_master where type = 'index' and sql is not null and tbl_name in (${TABLES.map((t) => `'${t}'`).join(", ")})`,
    )
    .all() as { name: string; sql: string }[];
  // Dropped while loading and made again after, all but the one the revision triggers read as they
  // fire (each change takes the next number after the highest, migration 0019).
  const dropped = indexes.filter((index) => index.name !== "contacts_changed_seq");
  for (const index of dropped) db.exec(`drop index "${index.name}"`);
  const statements = new Map<TableName, BetterSqlite3.Statement>();
  const statement = (table: TableName, sample: object): BetterSqlite3.Statement => {
    let stmt = statements.get(table);
    if (!stmt) {
      const columns = Object.keys(sample);
      stmt = db.prepare(
        `insert into ${table} (${columns.join(", ")}) values (${columns.map((c) => `@${c}`).join(", ")})`,
      );
      statements.set(table, stmt);
    }
    return stmt;
  };
  const insertAll = db.transaction((rows: ChunkRows) => {
    for (const table of TABLES) {
      const list = rows[table];
      const first = list[0];
      if (!first) continue;
      const stmt = statement(table, first);
      for (const row of list) stmt.run(row);
    }
  });
  return {
    write: async (rows) => {
      insertAll(rows);
    },
    close: async () => {
      for (const index of dropped) db.exec(index.sql);
      db.pragma("wal_checkpoint(TRUNCATE)");
      db.close();
    },
  };
}

/** PostgreSQL: every table's rows of a chunk in one transaction, in multi-row inserts. */
function postgresWriter(db: Kysely<Database>): RowWriter {
  const PER_STATEMENT = 1000;
  return {
    write: async (rows) => {
      await db.transaction().execute(async (trx) => {
        for (const table of TABLES) {
          const list = rows[table];
          for (let i = 0; i < list.length; i += PER_STATEMENT)
            await trx
              .insertInto(table)
              .values(list.slice(i, i + PER_STATEMENT))
              .execute();
        }
      });
    },
    close: async () => undefined,
  };
}

export type GenerateOptions = {
  n: number;
  /** The open, migrated store the contacts go into (it must be empty). */
  store: Store;
  /** SQLite: the store's file, written directly while the store waits; undefined for PostgreSQL. */
  sqliteFile?: string | undefined;
  chunk?: number;
  seed?: number;
  log?: (line: string) => void;
};

/**
 * Fills `store` with `n` linked contacts. On SQLite the store must not be used while this runs
 * (the rows are written through a second handle on the same file).
 */
export async function generateStore(options: GenerateOptions): Promise<GeneratedCounts> {
  const chunk = options.chunk ?? 10_000;
  const random = createRandom(options.seed ?? 20_260_601).next;
  const counts = emptyCounts();
  const ledger: LedgerHead = { seq: 0, hash: LEDGER_GENESIS_HASH };
  const writer =
    options.sqliteFile !== undefined ? sqliteWriter(options.sqliteFile) : postgresWriter(options.store.db);
  let lastLog = performance.now();
  try {
    for (let from = 0; from < options.n; from += chunk) {
      await writer.write(generateChunk(from, Math.min(options.n, from + chunk), random, counts, ledger));
      if (performance.now() - lastLog > 15_000) {
        lastLog = performance.now();
        options.log?.(
          `generated ${counts.contacts.toLocaleString("en-US")} of ${options.n.toLocaleString("en-US")} contacts`,
        );
      }
    }
  } finally {
    await writer.close();
  }
  await sql`update consent_ledger_head set seq = ${ledger.seq}, hash = ${ledger.hash} where id = ${CONSENT_LEDGER_HEAD_ID}`.execute(
    options.store.db,
  );
  return counts;
}

/** A consent fact as a connector would report it, from generated data. */
function generatedFact(
  scope: ObservedScope,
  status: ConsentFact["status"],
  extra: Partial<ConsentFact> = {},
): ConsentFact {
  return { channel: "email", scope, status, source: "generated", label: status, role: "state", ...extra };
}
