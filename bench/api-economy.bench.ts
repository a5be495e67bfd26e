/**
 * API economy of a first sync: 100,000 Raiser's Edge NXT constituents into an empty Constant
 * Contact account. Counts the Constant Contact calls the emulator served against the fewest its
 * bulk limits allow and against one call per contact, times the sync at the documented 4 calls a
 * second, and says how many days of a 10,000-call quota each would take. Then the same into an
 * empty Mailchimp audience: its calls against the fewest its batch limits allow (500 members a
 * batch subscribe, 500 a tag batch); Mailchimp has no quota, only 10 connections at once.
 *
 * The CRM side is recorded, not read: a full read of Raiser's Edge NXT costs about three calls per
 * constituent (300,000 calls here; `renxt-reads` counts them), which would dominate the bench
 * without saying anything about Constant Contact. The constituents are recorded into Concord's
 * store through the record stage a pull uses (`recordChanges`, records built by the connector's own
 * mapping, pages of 5,000 with the pull's checkpoint), the emulator holds the same constituents and list, and the sync then runs
 * unchanged: its Raiser's Edge pull finds nothing new and reads the list's membership.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { PULL_CHECKPOINT_STREAM } from "../src/pipeline/pull-connection";
import { recordChanges, type RecordContext } from "../src/pipeline/record-changes";
import { syncPair } from "../src/runs/sync-pair";
import { toExternalRecord } from "../src/connectors/blackbaud-renxt/mapping";
import { CONSTANT_CONTACT_LIMITS } from "../src/connectors/constant-contact/connector";
import type { BenchContext, BenchResult } from "./bench-kit";
import {
  RE_ID,
  RE_LIST_ID,
  postJson,
  startEmulatedWorld,
  startMailchimpWorld,
  type EmulatedWorld,
} from "./emulated-world";

export const name = "api-economy";

/**
 * Constituents: the 100,000 on SQLite. On PostgreSQL the record stage costs about 3 ms a
 * record (1 ms on SQLite), so 100,000 there would take some 13 minutes: it runs 20,000.
 */
const SIZES = {
  full: 100_000,
  fullOnPostgres: 20_000,
  smoke: Number(process.env["BENCH_ECONOMY_SMOKE_N"] ?? 2_000),
};
/** Constant Contact's documented per-second limit and daily quota, enforced by the emulator too. */
const CC_RATE_PER_SECOND = 4;
const CC_DAILY_QUOTA = 10_000;
/** Constituents per seed call and per recorded page (a pull page of Raiser's Edge NXT holds 5,000). */
const PAGE = 5_000;

export async function run(ctx: BenchContext): Promise<BenchResult[]> {
  const n = ctx.smoke ? SIZES.smoke : ctx.pg ? SIZES.fullOnPostgres : SIZES.full;
  return [...(await runConstantContact(ctx, n)), ...(await runMailchimp(ctx, n))];
}

/** The first sync into an empty Constant Contact account. */
async function runConstantContact(ctx: BenchContext, n: number): Promise<BenchResult[]> {
  let world: EmulatedWorld | undefined;
  try {
    world = await startEmulatedWorld({
      store: { pg: ctx.pg, databaseUrl: ctx.databaseUrl, tmpDir: ctx.tmpDir },
      re: { ratePerSecond: 0, dailyQuota: 0, webhooks: { autoDeliver: false } },
      // Documented limits on; imports complete on their first status poll, so the count measures
      // Concord's client rather than how long Constant Contact takes to process an import.
      cc: { rateLimitPerSecond: CC_RATE_PER_SECOND, dailyQuota: CC_DAILY_QUOTA, activityPollsToComplete: 1 },
    });
    const w = world;

    const seedStarted = performance.now();
    await seedCrm(w, n);
    const seedMs = performance.now() - seedStarted;
    ctx.log(`recorded ${n} constituents in ${Math.round(seedMs)} ms`);

    const before = { cc: w.cc.kit.requests.length, re: w.re.kit.requests.length };
    const started = performance.now();
    const stages: { stage: string; at: number }[] = [];
    const report = await syncPair(
      {
        store: w.store,
        config: w.config,
        connections: w.connections,
        now: () => new Date(),
        onStage: (stage) => stages.push({ stage, at: performance.now() }),
      },
      w.pair,
    );
    const seconds = (performance.now() - started) / 1000;
    // Each stage lasts until the next one starts ("done" marks the end).
    const stageTimes = stages
      .flatMap((x, i) => {
        const next = stages[i + 1];
        return next ? [`${x.stage} ${((next.at - x.at) / 1000).toFixed(1)} s`] : [];
      })
      .join(", ");
    const served = w.cc.kit.requests.slice(before.cc);
    const reCalls = w.re.kit.requests.length - before.re;

    const inCc = w.cc.store.ordered.filter((c) => c.deleted_at === null).length;
    if (report.status !== "succeeded" || inCc !== n)
      throw new Error(
        `the first sync did not bring every constituent to Constant Contact (${inCc} of ${n}; ${report.error?.message ?? report.status})`,
      );

    const api = served.filter((r) => r.path.startsWith("/v3/"));
    const calls = api.length;
    const limited = api.filter((r) => r.status === 429).length;
    const tokenCalls = served.filter((r) => r.path.startsWith("/oauth2/")).length;
    const count = (prefix: string) => api.filter((r) => r.path.startsWith(prefix)).length;
    const imports = api.filter(
      (r) => r.method === "POST" && r.path.startsWith("/v3/activities/contacts_json_import"),
    ).length;
    const statusPolls = api.filter((r) => r.method === "GET" && r.path.startsWith("/v3/activities/")).length;
    const reads = count("/v3/contacts");
    const lists = count("/v3/contact_lists");

    const floor = fewestCalls(w, n);
    ctx.log(
      `first sync of ${n}: ${calls} Constant Contact calls (fewest ${floor.calls}) in ${seconds.toFixed(1)} s: ${stageTimes}`,
    );

    const breakdown =
      `${calls} calls: ${plural(imports, "import")}, ${plural(statusPolls, "activity status poll")}, ` +
      `${plural(reads, "page")} of contacts read (the empty account before, the new contacts after, to link them), ` +
      `${plural(lists, "list lookup")}, ${calls - imports - statusPolls - reads - lists} other; ${limited} answered 429; ` +
      `plus ${plural(tokenCalls, "OAuth token call")} (not API calls)`;
    const bound =
      `fewest = 1 list lookup + 1 read of the empty account + 2 × imports (each import and one status poll) + ⌈N ÷ 500⌉ pages to read the new contacts back ` +
      `= 2 + 2 × ${floor.imports} + ${floor.readBack} = ${floor.calls}, where imports = max(⌈N ÷ 40,000⌉, ⌈import bytes ÷ 4,000,000⌉) = max(${floor.byCount}, ${floor.byBytes}) ` +
      `(${(floor.rowBytes / 1e6).toFixed(1)} MB of rows as sent)`;
    const setup =
      `${n.toLocaleString("en")} constituents, all eligible, in one mapped list; Raiser's Edge side recorded through the record stage (pages of ${PAGE.toLocaleString("en")}, ${Math.round(seedMs / 1000)} s), ` +
      `not read (about 3 calls per constituent, see renxt-reads); the sync's own Raiser's Edge pull made ${reCalls} calls; ` +
      `Constant Contact emulator at the documented ${CC_RATE_PER_SECOND} calls/s and ${CC_DAILY_QUOTA.toLocaleString("en")} a day, imports complete on their first status poll; ${w.storeLabel} store`;
    const days = (x: number): number => Math.round((x / CC_DAILY_QUOTA) * 1000) / 1000;
    return [
      {
        name: "first sync: Constant Contact calls vs the fewest the bulk limits allow",
        value: calls,
        unit: "calls",
        reference: { name: "fewest the bulk limits allow", value: floor.calls, unit: "calls" },
        ratio: round2(calls / floor.calls),
        better: "lower",
        notes: `${breakdown}. ${bound}. ${setup}.`,
      },
      {
        name: "first sync: Constant Contact calls vs one call per contact",
        value: calls,
        unit: "calls",
        reference: { name: "one call per contact", value: n, unit: "calls" },
        ratio: round4(calls / n),
        better: "lower",
      },
      {
        name: "first sync: wall time",
        value: round1(seconds),
        unit: "s",
        reference: {
          name: `the fewest calls at ${CC_RATE_PER_SECOND} calls/s`,
          value: round1(floor.calls / CC_RATE_PER_SECOND),
          unit: "s",
        },
        ratio: round2(seconds / (floor.calls / CC_RATE_PER_SECOND)),
        better: "lower",
        notes: `The whole syncPair run: ${stageTimes} (link: reading the new contacts back, recording and claiming them, baselines). Activity status polls wait 1 s, then doubling.`,
      },
      {
        name: "first sync: days of a 10,000-call daily quota",
        value: days(calls),
        unit: "days",
        reference: { name: "one call per contact", value: days(n), unit: "days" },
        ratio: round4(calls / n),
        better: "lower",
        notes: `The fewest the bulk limits allow: ${days(floor.calls)} days.`,
      },
    ];
  } finally {
    await world?.close();
  }
}

/** Mailchimp's batch limits: 500 members a batch subscribe, 500 a tag (static segment) batch. */
const MC_BATCH = 500;

/** The same first sync into an empty Mailchimp audience. */
async function runMailchimp(ctx: BenchContext, n: number): Promise<BenchResult[]> {
  const w = await startMailchimpWorld({
    store: { pg: ctx.pg, databaseUrl: ctx.databaseUrl, tmpDir: ctx.tmpDir },
    re: { ratePerSecond: 0, dailyQuota: 0, webhooks: { autoDeliver: false } },
    mc: { autoDeliverWebhooks: false },
  });
  try {
    await seedCrm(w, n);
    const served = async () =>
      (
        (await (await fetch(`${w.mc.baseUrl}/__emulator/requests`)).json()) as {
          requests: { method: string; path: string; status: number }[];
        }
      ).requests.filter((r) => r.path.startsWith("/3.0/"));
    const before = (await served()).length;
    const started = performance.now();
    const report = await syncPair(
      { store: w.store, config: w.config, connections: w.connections, now: () => new Date() },
      w.pair,
    );
    const seconds = (performance.now() - started) / 1000;
    const api = (await served()).slice(before);
    const state = (await (await fetch(`${w.mc.baseUrl}/__emulator/state`)).json()) as {
      audiences: { members: { status: string; tags: unknown[] }[] }[];
    };
    const members = state.audiences[0]?.members ?? [];
    const subscribed = members.filter((m) => m.status === "subscribed" && m.tags.length === 1).length;
    if (report.status !== "succeeded" || subscribed !== n)
      throw new Error(
        `the first sync did not bring every constituent to Mailchimp, tagged (${subscribed} of ${n}; ${report.error?.message ?? report.status})`,
      );
    const calls = api.length;
    const batches = api.filter((r) => r.method === "POST" && /^\/3\.0\/lists\/[^/]+$/.test(r.path)).length;
    const tagBatches = api.filter((r) => r.method === "POST" && r.path.includes("/segments/")).length;
    const limited = api.filter((r) => r.status === 429).length;
    const memberReads = api.filter((r) => r.method === "GET" && r.path.includes("/members")).length;
    // One audience lookup, the tags and groups (2), the empty audience read (members, archived: 2),
    // and for each 500 members one batch subscribe and one tag batch (the batch body takes no tags).
    const floor = 5 + 2 * Math.ceil(n / MC_BATCH);
    ctx.log(`first sync of ${n} into Mailchimp: ${calls} calls (fewest ${floor}) in ${seconds.toFixed(1)} s`);
    return [
      {
        name: "first sync into Mailchimp: calls vs the fewest its batch limits allow",
        value: calls,
        unit: "calls",
        reference: { name: "fewest the batch limits allow", value: floor, unit: "calls" },
        ratio: round2(calls / floor),
        better: "lower",
        notes:
          `${calls} calls: ${plural(batches, "batch subscribe")}, ${tagBatches} tag batch${tagBatches === 1 ? "" : "es"}, ${plural(memberReads, "page")} of members read (the empty audience before; after, the link stage reads the new members back at 1,000 a page to link them by address: batch answers name members by subscriber hash, not the contact id Concord links by), ${calls - batches - tagBatches - memberReads} other; ${limited} answered 429. ` +
          `fewest = 1 audience lookup + 2 (tags, groups) + 2 (the empty audience: members, archived) + 2 × ⌈N ÷ 500⌉ = ${floor}. ` +
          `${n.toLocaleString("en")} constituents in one mapped list, recorded as for Constant Contact; Mailchimp emulator with its 10-connection limit; ${w.storeLabel} store.`,
      },
      {
        name: "first sync into Mailchimp: calls vs one call per contact",
        value: calls,
        unit: "calls",
        reference: { name: "one call per contact", value: n, unit: "calls" },
        ratio: round4(calls / n),
        better: "lower",
        notes: `Wall time ${seconds.toFixed(1)} s.`,
      },
    ];
  } finally {
    await w.close();
  }
}

// ------------------------------------------------------------------ the CRM side

/**
 * Seeds the Raiser's Edge NXT emulator with `n` constituents in the mapped list, and records the
 * same constituents into Concord's store as a completed pull would have: snapshots, contacts and
 * links through `recordChanges`, one transaction per page, then the pull's checkpoint.
 *
 * The emulator's constituents carry no email address: its per-constituent address lookup scans every
 * address it holds, quadratic at this size. Nothing in the sync reads them (the pull finds none
 * changed since the checkpoint and reads only the list's membership); the store's records have
 * their addresses.
 */
async function seedCrm(
  w: Pick<EmulatedWorld, "re" | "store" | "connections" | "config">,
  n: number,
): Promise<void> {
  const day = 86_400_000;
  const modified = new Date(Date.now() - 30 * day).toISOString().replace("Z", "+00:00");
  const ids: string[] = [];
  for (let from = 0; from < n; from += PAGE) {
    const constituents = Array.from({ length: Math.min(PAGE, n - from) }, (_, k) => ({
      type: "Individual",
      first: firstName(from + k),
      last: lastName(from + k),
      date_added: modified,
      date_modified: modified,
    }));
    const seeded = await postJson<{ constituents: { id: string }[] }>(`${w.re.baseUrl}/__emulator/seed`, {
      constituents,
    });
    ids.push(...seeded.constituents.map((c) => c.id));
  }
  await postJson(`${w.re.baseUrl}/__emulator/act`, {
    as: "admin",
    action: "add_to_list",
    list_id: RE_LIST_ID,
    ids,
  });

  const connection = w.connections.get(RE_ID);
  if (!connection) throw new Error("no Raiser's Edge NXT connection");
  const ctx: RecordContext = {
    connection_id: RE_ID,
    system: connection.connection.system,
    role: connection.manifest.role,
    mapping: { connection_id: RE_ID, topics: w.config.topics },
    now: () => new Date(),
  };
  for (let from = 0; from < n; from += PAGE) {
    const records = ids.slice(from, from + PAGE).map((id, k) => {
      const i = from + k;
      const email = {
        id: `e${id}`,
        address: emailOf(i),
        constituent_id: id,
        date_added: modified,
        date_modified: modified,
        do_not_email: false,
        inactive: false,
        primary: true,
        type: "Email",
      };
      return toExternalRecord({
        constituent: {
          id,
          type: "Individual",
          lookup_id: id,
          first: firstName(i),
          last: lastName(i),
          email,
          inactive: false,
          deceased: false,
          requests_no_email: false,
          date_added: modified,
          date_modified: modified,
        },
        emails: [email],
        consents: [],
        relationships: [],
        list_ids: [RE_LIST_ID],
      });
    });
    await w.store.transaction(async (tx) => {
      await recordChanges(tx, ctx, { records, consent: [] });
      if (from + PAGE >= n)
        await tx.checkpoints.set(RE_ID, PULL_CHECKPOINT_STREAM, {
          stream: "constituents",
          value: new Date().toISOString(),
          taken_at: new Date().toISOString(),
        });
    });
    // Let the emulators' timers and sockets breathe between pages.
    await sleep(0);
  }
}

const FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Tony", "Radia", "Ken"];
const LAST = [
  "Lovelace",
  "Hopper",
  "Turing",
  "Dijkstra",
  "Liskov",
  "Knuth",
  "Allen",
  "Hoare",
  "Perlman",
  "Thompson",
];
const firstName = (i: number): string => FIRST[i % FIRST.length] ?? "Ada";
const lastName = (i: number): string =>
  `${LAST[Math.floor(i / FIRST.length) % LAST.length] ?? "Lovelace"}-${i}`;
const emailOf = (i: number): string => `supporter.${String(i).padStart(6, "0")}@example.org`;

// ------------------------------------------------------------------ the floor

type Floor = {
  calls: number;
  imports: number;
  byCount: number;
  byBytes: number;
  rowBytes: number;
  readBack: number;
};

/**
 * The fewest calls a first sync of `n` new contacts needs under Constant Contact's bulk limits: one
 * list lookup, one read of the (empty) account, each import with one status poll, and reading the
 * new contacts back (bulk imports return no ids) at 500 a page. Import sizes are measured on the
 * rows the emulator received, as the connector's first-load test measures them.
 */
function fewestCalls(w: EmulatedWorld, n: number): Floor {
  const { import_contacts, import_bytes, read_page } = CONSTANT_CONTACT_LIMITS.batch;
  const maxContacts = import_contacts ?? 40_000;
  const maxBytes = import_bytes ?? 4_000_000;
  const rows = [...w.cc.store.activities.values()]
    .filter((a) => a.kind === "contacts_json_import")
    .flatMap((a) => (a.payload as { import_data: unknown[] }).import_data);
  const rowBytes = rows.reduce<number>((sum, row) => sum + Buffer.byteLength(JSON.stringify(row)) + 1, -1);
  const overhead = Buffer.byteLength(JSON.stringify({ import_data: [], list_ids: [w.ccListId] }));
  const byCount = Math.ceil(n / maxContacts);
  const byBytes = Math.ceil(rowBytes / (maxBytes - overhead - 1));
  const imports = Math.max(byCount, byBytes);
  const readBack = Math.ceil(n / (read_page ?? 500));
  return { calls: 2 + 2 * imports + readBack, imports, byCount, byBytes, rowBytes, readBack };
}

const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? "" : "s"}`;
const round1 = (x: number): number => Math.round(x * 10) / 10;
const round2 = (x: number): number => Math.round(x * 100) / 100;
const round4 = (x: number): number => Math.round(x * 10_000) / 10_000;
