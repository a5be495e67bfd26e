/**
 * Scale-out on PostgreSQL (docs/deploy.md): many pairs, each its own Raiser's Edge NXT and Constant
 * Contact account (emulators on loopback, every vendor call delayed as over a network), run by
 * `concord serve` (no jobs of its own) and 1, 2, 4 and 8 `concord worker` processes, each a fresh
 * installation. For each worker count: records a second through the first sync of every pair, then
 * opt-outs a second and their propagation (Raiser's Edge NXT polled every second → unsubscribed in
 * Constant Contact). Reference: the same figure with one worker, measured in the same run; for the
 * propagation p99, the poll interval. Each connection keeps its vendor's published rate (Raiser's
 * Edge NXT 10 calls a second, Constant Contact 4), so a pair's run is bound by its vendors, and more
 * workers help by running more pairs at once until the machine binds.
 */
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { sql } from "kysely";
import type { StartedConstantContactEmulator } from "../src/connectors/constant-contact/emulator/constant-contact-emulator";
import type { EmulatorKit } from "../src/connectors/emulator-kit/emulator-kit";
import { startEmulatedWorld, type EmulatedWorld } from "../src/emulated-world/emulated-world";
import { jobSchemaFor } from "../src/jobs/graphile-runner";
import { openStore } from "../src/store/open-store";
import type { Store } from "../src/store/ports";
import { concordProcesses, installationEnv, type ConcordProcesses } from "../test/support/concord-processes";
import { TEST_KEY } from "../test/support/test-credentials";
import { formatNumber, percentile, withRatio, type BenchContext, type BenchResult } from "./bench-kit";

export const name = "scale-out";

const SIZES = {
  full: { pairs: 16, contacts: 40, opt_outs_per_pair: 4, workers: [1, 2, 4, 8] },
  smoke: { pairs: 2, contacts: 10, opt_outs_per_pair: 2, workers: [1, 2] },
};
/** Every vendor call waits this long at the emulator, as a call over the internet would. */
const VENDOR_LATENCY_MS = 25;
const POLL_INTERVAL_MS = 1_000;

type Measured = {
  workers: number;
  records_per_s: number;
  first_sync_ms: number;
  opt_outs_per_s: number;
  p99_ms: number;
  calls: number;
};

export async function run(ctx: BenchContext): Promise<BenchResult[]> {
  const url = ctx.databaseUrl ?? (process.env["BENCH_DATABASE_URL"] || process.env["TEST_DATABASE_URL"]);
  if (url === undefined || url === "")
    throw new Error(
      "scale-out runs on PostgreSQL: set BENCH_DATABASE_URL (or TEST_DATABASE_URL), e.g. postgres://postgres:concord@127.0.0.1:5432/concord_test",
    );
  const size = ctx.smoke ? SIZES.smoke : SIZES.full;
  const measured: Measured[] = [];
  for (const workers of size.workers) {
    ctx.log(`${size.pairs} pairs × ${size.contacts} contacts with ${workers} worker(s)…`);
    measured.push(await measure(ctx, url, size, workers));
    const m = measured.at(-1)!;
    ctx.log(
      `  ${formatNumber(m.records_per_s)} records/s, ${formatNumber(m.opt_outs_per_s)} opt-outs/s, p99 ${formatNumber(m.p99_ms)} ms, ${m.calls} calls`,
    );
  }
  const one = measured[0]!;
  const machine = `${size.pairs} pairs × ${size.contacts} contacts, ${VENDOR_LATENCY_MS} ms per vendor call, polls every ${POLL_INTERVAL_MS / 1000} s, 2 jobs per worker, on PostgreSQL`;
  return measured.flatMap((m) => [
    withRatio({
      name: `scale-out: first sync records/s, ${m.workers} worker(s)`,
      value: m.records_per_s,
      unit: "records/s",
      reference: { name: "the same with 1 worker", value: one.records_per_s, unit: "records/s" },
      better: "higher",
      notes: `${machine}; first sync ${formatNumber(m.first_sync_ms)} ms; ${m.calls} vendor calls in all`,
    }),
    withRatio({
      name: `scale-out: opt-outs/s, ${m.workers} worker(s)`,
      value: m.opt_outs_per_s,
      unit: "opt-outs/s",
      reference: { name: "the same with 1 worker", value: one.opt_outs_per_s, unit: "opt-outs/s" },
      better: "higher",
      notes: `${size.pairs * size.opt_outs_per_pair} opt-outs made at once in Raiser's Edge NXT, carried by polls`,
    }),
    withRatio({
      name: `scale-out: p99 opt-out propagation, ${m.workers} worker(s)`,
      value: m.p99_ms,
      unit: "ms",
      reference: { name: "poll interval", value: POLL_INTERVAL_MS, unit: "ms" },
      better: "lower",
    }),
  ]);
}

async function measure(
  ctx: BenchContext,
  url: string,
  size: (typeof SIZES)["full"],
  workers: number,
): Promise<Measured> {
  const schema = `b_${randomBytes(6).toString("hex")}`;
  // A smoke run that cannot finish in minutes is broken, not slow; a full run may take half an hour.
  const limit_ms = ctx.smoke ? 300_000 : 1_800_000;
  const store = await openStore({ url, schema, pool_size: 4 });
  let processes: ConcordProcesses | undefined;
  let world: EmulatedWorld | undefined;
  try {
    let raw: Record<string, unknown> = {};
    const ids = Array.from({ length: size.pairs }, (_, i) => i + 1);
    const quota = { limits: { daily_quota: 100_000_000 } };
    world = await startEmulatedWorld({
      connections: ids.flatMap((i) => [
        {
          id: `re-${i}`,
          system: "blackbaud-renxt",
          emulator: { ratePerSecond: 1000, webhooks: { autoDeliver: false } },
          config: quota,
        },
        { id: `cc-${i}`, system: "constant-contact", emulator: { rateLimitPerSecond: null }, config: quota },
      ]),
      config: {
        pairs: ids.map((i) => ({
          id: `pair-${i}`,
          crm: `re-${i}`,
          platforms: [{ connection: `cc-${i}` }],
          schedule: { poll_interval: `${POLL_INTERVAL_MS / 1000}s` },
          audiences: [
            {
              crm_list: { name: "Monthly newsletter" },
              platform: `cc-${i}`,
              platform_list: { name: "Newsletter" },
              direction: "crm_to_platform",
            },
          ],
        })),
      },
      configure: (r) => {
        raw = r;
      },
      store,
      key: TEST_KEY,
    });
    const w = world;
    const people = new Map<number, string[]>();
    for (const i of ids) {
      const emails = Array.from({ length: size.contacts }, (_, n) => `p${i}-${n}@example.org`);
      people.set(i, emails);
      await w.seed(`re-${i}`, {
        people: emails.map((email, n) => ({
          id: `p-${i}-${n}`,
          kind: "individual" as const,
          first: `P${n}`,
          last: `Pair${i}`,
          email: { address: email },
          added_at: "2026-05-01T09:00:00.000Z",
          modified_at: "2026-05-01T09:00:00.000Z",
        })),
        lists: [{ id: "news", name: "Monthly newsletter", members: emails.map((_, n) => `p-${i}-${n}`) }],
      });
      await w.seed(`cc-${i}`, { lists: [{ id: "news-list", name: "Newsletter" }] });
    }
    // Every vendor call waits, as over the internet (the emulators' own latency fault).
    for (const id of w.emulators.keys())
      kitOf(w, id).faults.push({
        status: 0,
        count: Number.MAX_SAFE_INTEGER,
        path_prefix: "/",
        latency_ms: VENDOR_LATENCY_MS,
      });
    const configFile = join(ctx.tmpDir, `${schema}.json`);
    writeFileSync(configFile, JSON.stringify(raw));
    const env = installationEnv({
      url,
      schema,
      config_file: configFile,
      data_dir: ctx.tmpDir,
      log_level: "error",
    });
    const running = (processes = concordProcesses(env));
    await running.start(["serve", "--port", "0", "--workers", "0"]);
    await Promise.all(Array.from({ length: workers }, () => running.start(["worker", "--concurrency", "2"])));
    const callsAtStart = totalCalls(w);

    // The first sync: from the first run's start until every person is linked in their platform.
    const expected = size.pairs * size.contacts;
    await until(async () => (await linkedInPlatforms(store)) >= expected, limit_ms);
    const firstStarted = await store.db
      .selectFrom("runs")
      .select((eb) => eb.fn.min("started_at").as("at"))
      .executeTakeFirstOrThrow();
    const first_sync_ms = Date.now() - Date.parse(firstStarted.at);

    // Opt-outs made at once across the pairs, each timed until Constant Contact shows it.
    const chosen = ids.flatMap((i) =>
      (people.get(i) ?? []).slice(0, size.opt_outs_per_pair).map((email, n) => ({ i, n, email })),
    );
    const firedAt = Date.now();
    await Promise.all(
      chosen.map((c) =>
        w.act(`re-${c.i}`, { as: "admin", action: "opt_out_of_all_email", id: `p-${c.i}-${c.n}` }),
      ),
    );
    const arrived = new Map<string, number>();
    await until(
      () => {
        for (const c of chosen) {
          if (arrived.has(c.email)) continue;
          const cc = w.emulator(`cc-${c.i}`).native as StartedConstantContactEmulator;
          if (cc.store.findByEmail(c.email)?.email_address?.permission_to_send === "unsubscribed")
            arrived.set(c.email, Date.now() - firedAt);
        }
        return Promise.resolve(arrived.size === chosen.length);
      },
      limit_ms,
      100,
    );
    const latencies = [...arrived.values()];
    const last = Math.max(...latencies);
    return {
      workers,
      first_sync_ms,
      records_per_s: expected / (first_sync_ms / 1000),
      opt_outs_per_s: chosen.length / (last / 1000),
      p99_ms: percentile(latencies, 99),
      calls: totalCalls(w) - callsAtStart,
    };
  } finally {
    await processes?.killAll();
    await world?.close();
    await sql`drop schema if exists ${sql.id(schema)} cascade`.execute(store.db);
    await sql`drop schema if exists ${sql.id(jobSchemaFor(schema))} cascade`.execute(store.db);
    await store.close();
  }
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

async function linkedInPlatforms(store: Store): Promise<number> {
  const row = await store.db
    .selectFrom("links")
    .select((eb) => eb.fn.countAll<number | string>().as("n"))
    .where("connection_id", "like", "cc-%")
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

/** Until `check` holds, looked at every `every_ms`; gives up after `limit_ms` with an error. */
async function until(check: () => Promise<boolean>, limit_ms: number, every_ms = 250): Promise<void> {
  const deadline = Date.now() + limit_ms;
  while (!(await check())) {
    if (Date.now() > deadline)
      throw new Error(`the installation did not finish its work in ${Math.round(limit_ms / 60_000)} minutes`);
    await new Promise((resolve) => setTimeout(resolve, every_ms));
  }
}
