/**
 * Scale-out on PostgreSQL (docs/deploy.md): many pairs, each its own Raiser's Edge NXT and Constant
 * Contact account (emulators on loopback, every vendor call delayed as over a network), already
 * synced (`synced-world.ts`: one pair synced for real, its rows and records copied for the rest),
 * run by `concord serve` (no jobs of its own) and 1, 2, 4 and 8 `concord worker` processes on one
 * installation, one worker count after another. Each stage starts its processes, runs every pair
 * once (a sync job each, which plans every contact), then changes people in Raiser's Edge NXT all
 * at once: in every pair some opt out of all email and some are renamed. Polls every second carry
 * them. It measures the opt-outs a second and the records (renamed people) a second until
 * Constant Contact shows every one, and the p99 of each opt-out's propagation. References: the
 * same figure with one worker, in the same run; for the propagation p99, the poll interval. Each
 * connection keeps its vendor's published rate (Raiser's Edge NXT 10 calls a second, Constant
 * Contact 4), so a pair's run is bound by its vendors, and more workers help by running more pairs
 * at once until the machine binds.
 */
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { sql } from "kysely";
import type { StartedConstantContactEmulator } from "../src/connectors/constant-contact/emulator/constant-contact-emulator";
import type { EmulatorKit } from "../src/connectors/emulator-kit/emulator-kit";
import { startEmulatedWorld, type EmulatedWorld } from "../src/emulated-world/emulated-world";
import { connectionLimits, connectionsAtMost, tightest } from "../src/jobs/connection-budget";
import { jobSchemaFor } from "../src/jobs/graphile-runner";
import { ledgerSealer } from "../src/ledger/ledger-seal";
import { openStore } from "../src/store/open-store";
import { concordProcesses, installationEnv } from "../test/support/concord-processes";
import { TEST_KEY } from "../test/support/test-credentials";
import { formatNumber, percentile, withRatio, type BenchContext, type BenchResult } from "./bench-kit";
import {
  copyTemplate,
  crmSeed,
  pairConfig,
  pairConnections,
  pairIds,
  personEmail,
  personId,
  platformSeed,
  syncTemplate,
  tokenOf,
  until,
} from "./synced-world";

export const name = "scale-out";
export const store = "postgres";

const SIZES = {
  full: { pairs: 200, contacts: 5_000, opt_outs_per_pair: 1, renamed_per_pair: 2, workers: [1, 2, 4, 8] },
  smoke: { pairs: 3, contacts: 20, opt_outs_per_pair: 1, renamed_per_pair: 2, workers: [1, 2] },
};
type Size = (typeof SIZES)["full"];
/** Every vendor call waits this long at the emulator, as a call over the internet would. */
const VENDOR_LATENCY_MS = 25;
const POLL_INTERVAL_MS = 1_000;
/** Jobs a worker runs at once: a poll mostly waits on its vendors' rates. */
const JOBS_PER_WORKER = 8;
/**
 * Constant Contact's overlap window (five minutes): an incremental read lists again what changed in
 * the five minutes before its checkpoint, which just after a first sync is every contact. The full
 * run starts measuring once the first sync is older than that, as an installation in use would be.
 */
const PLATFORM_OVERLAP_MS = 300_000;

type Measured = {
  workers: number;
  /** One person renamed in every pair and carried, before the changes (each pair plans all its contacts). */
  warm_up_ms: number;
  records_per_s: number;
  opt_outs_per_s: number;
  p99_ms: number;
  last_ms: number;
  calls: number;
  load: number;
};

export async function run(ctx: BenchContext): Promise<BenchResult[]> {
  const url = ctx.databaseUrl ?? (process.env["BENCH_DATABASE_URL"] || process.env["TEST_DATABASE_URL"]);
  if (url === undefined || url === "")
    throw new Error(
      "scale-out runs on PostgreSQL: set BENCH_DATABASE_URL (or TEST_DATABASE_URL), e.g. postgres://postgres:concord@127.0.0.1:5432/concord_test",
    );
  const size = ctx.smoke ? SIZES.smoke : SIZES.full;
  // A smoke run that cannot finish in minutes is broken, not slow; a full stage may take many.
  const limit_ms = ctx.smoke ? 300_000 : 1_200_000;
  const schema = `b_${randomBytes(6).toString("hex")}`;
  const store = await openStore({ url, schema, pool_size: 4, ledger_sealer: ledgerSealer(TEST_KEY) });
  let world: EmulatedWorld | undefined;
  try {
    ctx.log(`syncing the template pair of ${size.contacts} contacts…`);
    const template = await syncTemplate({ url, schema, store, contacts: size.contacts, tmpDir: ctx.tmpDir });
    ctx.log(`  ${formatNumber(template.first_sync_ms)} ms; copying it to ${size.pairs} pairs…`);
    await copyTemplate({ store, sealer: ledgerSealer(TEST_KEY), pairs: size.pairs, log: ctx.log });

    const tokens = Array.from({ length: size.pairs }, (_, i) => tokenOf(i));
    let raw: Record<string, unknown> = {};
    const limits = { daily_quota: 100_000_000 };
    world = await startEmulatedWorld({
      connections: tokens.flatMap((t) => pairConnections(t, limits)),
      config: { pairs: tokens.map((t) => pairConfig(t, `${POLL_INTERVAL_MS / 1000}s`)) },
      configure: (r) => {
        raw = r;
      },
      store,
      key: TEST_KEY,
    });
    const w = world;
    ctx.log(`seeding ${size.pairs * 2} emulators…`);
    for (const t of tokens) {
      await w.seed(pairIds(t).crm, crmSeed(t, size.contacts));
      await w.seed(pairIds(t).platform, platformSeed(template, t));
    }
    // Every vendor call waits, as over the internet (the emulators' own latency fault).
    for (const id of w.emulators.keys())
      kitOf(w, id).faults.push({
        status: 0,
        count: Number.MAX_SAFE_INTEGER,
        path_prefix: "/",
        latency_ms: VENDOR_LATENCY_MS,
      });
    if (!ctx.smoke) {
      const wait = template.synced_at + PLATFORM_OVERLAP_MS - Date.now();
      if (wait > 0) {
        ctx.log(`waiting ${Math.ceil(wait / 1000)} s until the first sync is out of the overlap window…`);
        await new Promise((resolve) => setTimeout(resolve, wait));
      }
    }
    const configFile = join(ctx.tmpDir, `${schema}.json`);
    writeFileSync(configFile, JSON.stringify(raw));
    const env = installationEnv({
      url,
      schema,
      config_file: configFile,
      data_dir: ctx.tmpDir,
      log_level: "error",
    });

    const measured: Measured[] = [];
    /** Why the stages stopped short of the last, if they did. */
    let stopped: string | undefined;
    for (const [stage, workers] of size.workers.entries()) {
      // A stage whose processes may open more connections than the server has free would fail at
      // its busiest moment, not at start: it is not run, and the results say why.
      const needed = connectionsAtMost(0) + workers * connectionsAtMost(JOBS_PER_WORKER);
      const room = tightest(await connectionLimits(store.db));
      if (needed > room.free) {
        stopped = `${workers} workers were not run: they and the server may open ${needed} connections, and ${room.free} were free under ${room.limit.name}`;
        ctx.log(`  ${stopped}; no more stages`);
        break;
      }
      ctx.log(`${size.pairs} pairs × ${size.contacts} contacts with ${workers} worker(s)…`);
      const processes = concordProcesses(env);
      try {
        await processes.start(["serve", "--port", "0", "--workers", "0"]);
        await Promise.all(
          Array.from({ length: workers }, () =>
            processes.start(["worker", "--concurrency", String(JOBS_PER_WORKER)]),
          ),
        );
        measured.push(await measure({ w, size, tokens, stage, workers, limit_ms }));
      } catch (error) {
        // A stage with more workers that cannot carry the changes in time (the machine is full)
        // ends the run with the stages measured so far; a first stage that cannot is a failure.
        if (measured.length === 0 || ctx.smoke)
          throw new Error(`${String(error)}\n${processes.output()}`, { cause: error });
        stopped = `${workers} workers did not finish: ${String(error)}`;
        ctx.log(`  ${stopped}; no more stages`);
        break;
      } finally {
        await processes.stopAll();
      }
      const m = measured.at(-1)!;
      ctx.log(
        `  warm-up ${formatNumber(m.warm_up_ms)} ms; ${formatNumber(m.records_per_s)} records/s, ${formatNumber(m.opt_outs_per_s)} opt-outs/s, p99 ${formatNumber(m.p99_ms)} ms, ${m.calls} calls, load ${m.load.toFixed(2)}`,
      );
    }
    const one = measured[0];
    if (one === undefined) throw new Error(`no stage ran: ${stopped ?? "no worker counts given"}`);
    const machine = `${size.pairs} pairs × ${size.contacts} contacts already synced, ${VENDOR_LATENCY_MS} ms per vendor call, polls every ${POLL_INTERVAL_MS / 1000} s, ${JOBS_PER_WORKER} jobs per worker, on PostgreSQL`;
    const changes = `${size.pairs * size.renamed_per_pair} people renamed and ${size.pairs * size.opt_outs_per_pair} opted out at once in Raiser's Edge NXT`;
    return measured.flatMap((m) => [
      withRatio({
        name: `scale-out: records/s, ${m.workers} worker(s)`,
        value: m.records_per_s,
        unit: "records/s",
        reference: { name: "the same with 1 worker", value: one.records_per_s, unit: "records/s" },
        better: "higher",
        notes: `${machine}; ${changes}, until Constant Contact shows every one; ${m.calls} vendor calls; load average ${m.load.toFixed(2)}; warm-up (a rename in every pair) ${formatNumber(m.warm_up_ms)} ms; the template's first sync (rate limits lifted) ${formatNumber(template.first_sync_ms)} ms`,
      }),
      withRatio({
        name: `scale-out: opt-outs/s, ${m.workers} worker(s)`,
        value: m.opt_outs_per_s,
        unit: "opt-outs/s",
        reference: { name: "the same with 1 worker", value: one.opt_outs_per_s, unit: "opt-outs/s" },
        better: "higher",
        notes: `${changes}, carried by polls; the last arrived after ${formatNumber(m.last_ms)} ms${stopped === undefined ? "" : `; ${stopped}`}`,
      }),
      withRatio({
        name: `scale-out: p99 opt-out propagation, ${m.workers} worker(s)`,
        value: m.p99_ms,
        unit: "ms",
        reference: { name: "poll interval", value: POLL_INTERVAL_MS, unit: "ms" },
        better: "lower",
      }),
    ]);
  } finally {
    await world?.close();
    await sql`drop schema if exists ${sql.id(schema)} cascade`.execute(store.db);
    await sql`drop schema if exists ${sql.id(jobSchemaFor(schema))} cascade`.execute(store.db);
    await store.close();
  }
}

/**
 * One stage: every pair runs once (a sync job each), then people opt out and are renamed in every
 * pair at once, each timed until Constant Contact shows it.
 */
async function measure(o: {
  w: EmulatedWorld;
  size: Size;
  tokens: readonly string[];
  stage: number;
  workers: number;
  limit_ms: number;
}): Promise<Measured> {
  const { w, size, tokens } = o;
  // Warm-up: one person renamed in every pair, carried by the polls, so that every pair has planned
  // all its contacts (the first plan after the copy, a plan again after that) before the measure.
  const warmStart = Date.now();
  const warm = tokens.map((t) => ({
    token: t,
    n: size.contacts - 1 - o.stage,
    opt_out: false,
    first: `Warm ${o.stage}`,
  }));
  await Promise.all(warm.map((c) => act(w, c)));
  await carry(w, warm, o.limit_ms);
  const warm_up_ms = Date.now() - warmStart;
  // A copied pair is in sync: nothing but the renames may have been written anywhere.
  const writes = tokens.flatMap((t) =>
    Object.values(pairIds(t)).flatMap((id) =>
      w.emulators.has(id)
        ? kitOf(w, id)
            .requests.filter(
              (r) => r.method !== "GET" && !r.path.includes("oauth") && Date.parse(r.at) >= warmStart,
            )
            .map((r) => `${id}: ${r.method} ${r.path}`)
        : [],
    ),
  );
  if (writes.length > warm.length * 2)
    throw new Error(
      `the warm-up wrote ${writes.length} times where ${warm.length} renames were due (is the copied world out of sync?): ${writes.slice(0, 10).join("; ")}`,
    );

  // People of this stage only: the opt-outs first in each pair, then the renamed.
  const per = size.opt_outs_per_pair + size.renamed_per_pair;
  const changes = tokens.flatMap((t) =>
    Array.from({ length: per }, (_, k) => {
      const n = o.stage * per + k;
      return { token: t, n, opt_out: k < size.opt_outs_per_pair, first: `Renamed ${o.stage}` };
    }),
  );
  const callsAtStart = totalCalls(w);
  const load = loadavg()[0] ?? 0;
  const firedAt = Date.now();
  await Promise.all(changes.map((c) => act(w, c)));
  const arrived = await carry(w, changes, o.limit_ms, firedAt);
  const optOuts = changes.filter((c) => c.opt_out).map((c) => arrived.get(c) ?? 0);
  const renamed = changes.filter((c) => !c.opt_out).map((c) => arrived.get(c) ?? 0);
  return {
    workers: o.workers,
    warm_up_ms,
    records_per_s: renamed.length / (Math.max(...renamed) / 1000),
    opt_outs_per_s: optOuts.length / (Math.max(...optOuts) / 1000),
    p99_ms: percentile(optOuts, 99),
    last_ms: Math.max(...optOuts),
    calls: totalCalls(w) - callsAtStart,
    load: Math.max(load, loadavg()[0] ?? 0),
  };
}

type Change = { token: string; n: number; opt_out: boolean; first: string };

/** The change made in the pair's Raiser's Edge NXT, as its administrator would. */
async function act(w: EmulatedWorld, c: Change): Promise<void> {
  const id = personId(c.token, c.n);
  await w.act(
    pairIds(c.token).crm,
    c.opt_out
      ? { as: "admin", action: "opt_out_of_all_email", id }
      : { as: "admin", action: "update_name", id, first: c.first },
  );
}

/**
 * Waits until Constant Contact shows every change (an opt-out: unsubscribed; a rename: the new
 * first name); answers each change's time since `since`.
 */
async function carry(
  w: EmulatedWorld,
  changes: readonly Change[],
  limit_ms: number,
  since = Date.now(),
): Promise<Map<Change, number>> {
  const arrived = new Map<Change, number>();
  await until(
    () => {
      for (const c of changes) {
        if (arrived.has(c)) continue;
        const cc = w.emulator(pairIds(c.token).platform).native as StartedConstantContactEmulator;
        const contact = cc.store.findByEmail(personEmail(c.token, c.n));
        const there = c.opt_out
          ? contact?.email_address?.permission_to_send === "unsubscribed"
          : contact?.fields["first_name"] === c.first;
        if (there) arrived.set(c, Date.now() - since);
      }
      return Promise.resolve(arrived.size === changes.length);
    },
    limit_ms,
    100,
  );
  return arrived;
}

function kitOf(w: EmulatedWorld, id: string): EmulatorKit {
  const native = w.emulator(id).native as { kit?: EmulatorKit };
  if (native.kit === undefined) throw new Error(`the emulator of ${id} has no kit`);
  return native.kit;
}

function totalCalls(w: EmulatedWorld): number {
  let n = 0;
  for (const id of w.emulators.keys()) n += kitOf(w, id).requests.length;
  return n;
}
