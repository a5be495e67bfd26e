/**
 * Opt-out propagation latency, in real time through the running service: Concord's engine runtime
 * and HTTP server against a Raiser's Edge NXT and a Constant Contact emulator on loopback. Two paths:
 * - push: an admin ticks "Requests no email" in Raiser's Edge NXT → its webhook → Concord's inbox,
 *   re-read and targeted sync → the contact unsubscribed in Constant Contact. Reference: the
 *   webhook's own delivery (act → arrival at Concord's receiver), so the ratio says what Concord adds.
 * - poll: the person unsubscribes in Constant Contact (footer link) → Concord's next poll → "Requests
 *   no email" ticked in Raiser's Edge NXT. Reference: the configured poll interval.
 * Latency runs from just before the act's request to the first look at the other emulator's state
 * that shows the change (looked at every DETECT_EVERY_MS).
 */
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import type { FastifyInstance } from "fastify";
import { createRandom } from "../src/demo/random";
import { createEngineRuntime, type EngineRuntime } from "../src/runs/engine-runtime";
import type { SyncReport } from "../src/runs/sync-pair";
import type { WebhookChange } from "../src/connectors/connector";
import { recordWebhookChanges } from "../src/pipeline/pull-connection";
import { buildServer } from "../src/server/app";
import { percentile, withRatio, type BenchContext, type BenchResult } from "./bench-kit";
import {
  PAIR_ID,
  RE_ID,
  RE_LIST_ID,
  postJson,
  startEmulatedWorld,
  type EmulatedWorld,
} from "./emulated-world";

export const name = "propagation-latency";

const SIZES = {
  full: { constituents: 400, perPath: 200 },
  smoke: { constituents: 40, perPath: 10 },
};
/** Constant Contact's poll interval: the schema's minimum, `poll_interval: "1s"`. */
const POLL_INTERVAL_MS = 1_000;
/** How often the runtime looks for due work (polls, inbox retries). */
const TICK_MS = 100;
/** How often the bench looks at the other emulator for the change. */
const DETECT_EVERY_MS = 10;
/** Mean gap between two acts (a Poisson process): about 20 opt-outs a second. */
const MEAN_GAP_MS = 50;
/** How long after the last act an opt-out may still arrive before the phase gives up on it. */
const GIVE_UP_MS = { full: 60_000, smoke: 20_000 };
const WEBHOOK_SECRET = "bench-webhook-secret-7c41";
/** Constituents whose re-read calls are counted after the push phase. */
const REREAD_SAMPLE = 10;
const SEED = 20_260_601;

type Person = { id: string; email: string };
type Sample = { act: number; visible: number | undefined; arrival: number | undefined };
type Path = "push" | "poll";
type Calls = { re: number; cc: number };

/** What one path's measurement gave. */
type PathRun = {
  samples: Map<string, Sample>;
  /** Vendor calls made while the opt-outs were fired and carried over. */
  calls: Calls;
  runs: RunDuration[];
  /** Push path: Raiser's Edge NXT calls a constituent's re-read costs, as a webhook's and whole. */
  rereads?: { webhookPerConstituent: number; wholePerConstituent: number; sample: number };
  storeLabel: string;
  constituents: number;
  firstMs: number;
};

export async function run(ctx: BenchContext): Promise<BenchResult[]> {
  // Each path gets a world of its own, so neither path's changes sit in the other's read windows.
  const push = await measurePath(ctx, "push");
  const poll = await measurePath(ctx, "poll");
  return [...pushResults(push), ...pollResults(poll)];
}

async function measurePath(ctx: BenchContext, path: Path): Promise<PathRun> {
  const size = ctx.smoke ? SIZES.smoke : SIZES.full;
  const random = createRandom(path === "push" ? SEED : SEED + 1).next;
  let world: EmulatedWorld | undefined;
  let server: FastifyInstance | undefined;
  let runtime: EngineRuntime | undefined;
  try {
    world = await startEmulatedWorld({
      store: { pg: ctx.pg, databaseUrl: ctx.databaseUrl, tmpDir: ctx.tmpDir },
      // Vendor rate limits and quotas off, here and in Concord's budget: this measures Concord's own
      // latency, not a backlog behind 10 calls a second (the notes give the calls each path costs).
      re: { ratePerSecond: 0, dailyQuota: 0, webhooks: { autoDeliver: true, allowHttp: true } },
      cc: { rateLimitPerSecond: null, dailyQuota: null, activityPollsToComplete: 1 },
      reLimits: { requests_per_second: 1000, daily_quota: 100_000_000 },
      ccLimits: { requests_per_second: 1000, daily_quota: 100_000_000 },
      ccPollInterval: `${POLL_INTERVAL_MS / 1000}s`,
      webhookSecret: WEBHOOK_SECRET,
    });
    const w = world;
    const people = await seedPeople(w, size.constituents, random);

    // Webhook arrivals at Concord's receiver, by constituent id (the first one counts).
    const arrivals = new Map<string, number>();
    const reports: SyncReport[] = [];
    const rt = createEngineRuntime({
      store: w.store,
      config: w.config,
      connections: w.connections,
      now: () => new Date(),
      logger: w.logger,
      secrets: { env: w.env, key: w.key },
      onRun: (report) => reports.push(report),
    });
    runtime = rt;
    server = buildServer({
      version: "bench",
      ready: async () => true,
      webhooks: async (connectionId, request) => {
        const at = performance.now();
        for (const id of constituentIdsOf(request.raw_body)) if (!arrivals.has(id)) arrivals.set(id, at);
        return rt.handleWebhook(connectionId, request);
      },
    });
    await server.listen({ port: 0, host: "127.0.0.1" });
    const receiver = `http://127.0.0.1:${(server.server.address() as AddressInfo).port}/webhooks/${RE_ID}`;
    await subscribeWebhooks(w, receiver);

    // The first sync (a full read of both systems and the bulk import), then the service runs.
    const firstStarted = performance.now();
    await rt.tick();
    const firstMs = performance.now() - firstStarted;
    const first = reports.at(-1);
    const inCc = people.filter((p) => w.cc.store.findByEmail(p.email) !== undefined).length;
    if (first?.status !== "succeeded" || inCc !== people.length)
      throw new Error(
        `the first sync did not bring every constituent to Constant Contact (${inCc} of ${people.length}; ${first?.error?.message ?? first?.status ?? "no run"})`,
      );
    rt.start(TICK_MS);
    await sleep(2 * POLL_INTERVAL_MS); // a couple of ordinary polls before measuring

    const targets = people.slice(0, size.perPath);
    const giveUpMs = ctx.smoke ? GIVE_UP_MS.smoke : GIVE_UP_MS.full;
    const window = { from: new Date().toISOString(), to: "" };
    const before: Calls = { re: w.re.kit.requests.length, cc: w.cc.kit.requests.length };
    const samples = await phase({
      people: targets,
      schedule: poissonSchedule(targets.length, random),
      act:
        path === "push"
          ? (p) =>
              postJson(`${w.re.baseUrl}/__emulator/act`, {
                as: "admin",
                action: "set_requests_no_email",
                constituent_id: p.id,
              })
          : (p) =>
              postJson(`${w.cc.baseUrl}/__emulator/act`, {
                as: "contact",
                action: "unsubscribe",
                email: p.email,
              }),
      visible:
        path === "push"
          ? (p) => w.cc.store.findByEmail(p.email)?.email_address?.permission_to_send === "unsubscribed"
          : (p) => w.re.state.constituents.get(p.id)?.requests_no_email === true,
      giveUpMs,
    });
    const calls: Calls = {
      re: w.re.kit.requests.length - before.re,
      cc: w.cc.kit.requests.length - before.cc,
    };
    window.to = new Date().toISOString();
    for (const [id, s] of samples) s.arrival = arrivals.get(id);
    // A lost opt-out is a failure, not a tail: no percentile may hide it.
    const lost = [...samples.values()].filter((s) => s.visible === undefined).length;
    if (lost > 0)
      throw new Error(
        `${path} path: ${lost} of ${samples.size} opt-outs were not visible in the other system ${giveUpMs / 1000} s after the last act`,
      );
    ctx.log(`${path} path: first sync of ${people.length} in ${ms(firstMs)} ms; ${describe(samples)}`);

    await rt.stop();
    return {
      samples,
      calls,
      runs: await runsIn(w, window),
      ...(path === "push" ? { rereads: await rereadCalls(w, targets.slice(0, REREAD_SAMPLE)) } : {}),
      storeLabel: w.storeLabel,
      constituents: people.length,
      firstMs,
    };
  } finally {
    await runtime?.stop().catch(() => undefined);
    await server?.close().catch(() => undefined);
    await world?.close();
  }
}

// ------------------------------------------------------------------ the world

async function seedPeople(w: EmulatedWorld, n: number, random: () => number): Promise<Person[]> {
  const day = 86_400_000;
  const now = Date.now();
  const constituents = Array.from({ length: n }, (_, i) => ({
    type: "Individual",
    first: `Bench${i}`,
    last: "Supporter",
    email: { address: emailOf(i), type: "Email", primary: true, do_not_email: false, inactive: false },
    // Last edited some time in the past month, so Concord's incremental reads start quiet.
    date_modified: new Date(now - day - Math.floor(random() * 30 * day)).toISOString().replace("Z", "+00:00"),
  }));
  const seeded = await postJson<{ constituents: { id: string }[] }>(`${w.re.baseUrl}/__emulator/seed`, {
    constituents,
  });
  const ids = seeded.constituents.map((c) => c.id);
  await postJson(`${w.re.baseUrl}/__emulator/act`, {
    as: "admin",
    action: "add_to_list",
    list_id: RE_LIST_ID,
    ids,
  });
  return ids.map((id, i) => ({ id, email: emailOf(i) }));
}

const emailOf = (i: number): string => `bench.${String(i).padStart(5, "0")}@example.org`;

/** Subscribes Concord's receiver to constituent events, as an integrator does once, and waits for the handshake. */
async function subscribeWebhooks(w: EmulatedWorld, receiver: string): Promise<void> {
  if (!(await w.subscribeWebhooks(receiver)))
    throw new Error("the Raiser's Edge NXT webhook subscriptions did not provision");
}

/** Constituent ids a CloudEvents delivery names (`data.id` of constituent events). */
function constituentIdsOf(rawBody: string): string[] {
  try {
    const parsed: unknown = JSON.parse(rawBody);
    const events = Array.isArray(parsed) ? parsed : [parsed];
    return events.flatMap((e: any) =>
      typeof e?.type === "string" &&
      e.type.startsWith("com.blackbaud.constituent.") &&
      typeof e?.data?.id === "string"
        ? [e.data.id as string]
        : [],
    );
  } catch {
    return [];
  }
}

// ------------------------------------------------------------------ one path

/** Offsets (ms from the phase's start) of `n` acts, with exponential gaps of mean MEAN_GAP_MS. */
function poissonSchedule(n: number, random: () => number): number[] {
  let t = 0;
  return Array.from({ length: n }, () => {
    t += -Math.log(1 - random()) * MEAN_GAP_MS;
    return Math.round(t);
  });
}

/** Fires each act at its time (never waiting for an earlier one to answer) and watches for the change. */
async function phase(options: {
  people: readonly Person[];
  schedule: readonly number[];
  act: (p: Person) => Promise<unknown>;
  visible: (p: Person) => boolean;
  giveUpMs: number;
}): Promise<Map<string, Sample>> {
  const samples = new Map<string, Sample>();
  const pending = new Map<string, Person>();
  const watcher = setInterval(() => {
    const at = performance.now();
    for (const [id, p] of pending) {
      if (!options.visible(p)) continue;
      const s = samples.get(id);
      if (s) s.visible = at;
      pending.delete(id);
    }
  }, DETECT_EVERY_MS);
  try {
    const start = performance.now();
    const acts: Promise<void>[] = [];
    const failed: unknown[] = [];
    for (const [i, p] of options.people.entries()) {
      const wait = start + (options.schedule[i] ?? 0) - performance.now();
      if (wait > 0) await sleep(wait);
      samples.set(p.id, { act: performance.now(), visible: undefined, arrival: undefined });
      pending.set(p.id, p);
      acts.push(
        options.act(p).then(
          () => undefined,
          (error: unknown) => {
            failed.push(error);
          },
        ),
      );
    }
    await Promise.all(acts);
    if (failed.length > 0) throw failed[0];
    const deadline = performance.now() + options.giveUpMs;
    while (pending.size > 0 && performance.now() < deadline) await sleep(DETECT_EVERY_MS);
    return samples;
  } finally {
    clearInterval(watcher);
  }
}

// ------------------------------------------------------------------ figures

const latencies = (samples: Map<string, Sample>): number[] =>
  [...samples.values()].flatMap((s) => (s.visible === undefined ? [] : [s.visible - s.act]));
const deliveries = (samples: Map<string, Sample>): number[] =>
  [...samples.values()].flatMap((s) => (s.arrival === undefined ? [] : [s.arrival - s.act]));

function describe(samples: Map<string, Sample>): string {
  const l = latencies(samples);
  return `${l.length} of ${samples.size} visible; p50 ${ms(percentile(l, 50))}, p99 ${ms(percentile(l, 99))}, max ${ms(Math.max(...l))} ms`;
}

const ms = (x: number): number => Math.round(x);
const round1 = (x: number): number => Math.round(x * 10) / 10;

type RunDuration = { trigger: "poll" | "webhook"; ms: number };

/**
 * Raiser's Edge NXT calls (token calls left out) a constituent's re-read costs, once the service has
 * stopped: as a webhook's delivery re-reads it (`recordWebhookChanges`, told of a constituent.change),
 * and whole (the connector's `get` told nothing of what changed), over the same connection.
 */
async function rereadCalls(
  w: EmulatedWorld,
  people: readonly Person[],
): Promise<{ webhookPerConstituent: number; wholePerConstituent: number; sample: number }> {
  const connection = w.connections.get(RE_ID);
  const pair = w.config.pairs.find((p) => p.id === PAIR_ID);
  if (connection === undefined || pair === undefined)
    throw new Error(`no connection ${RE_ID} or pair ${PAIR_ID}`);
  const callsOf = async (fn: () => Promise<void>): Promise<number> => {
    const before = w.re.kit.requests.length;
    await fn();
    return w.re.kit.requests.slice(before).filter((r) => !r.path.startsWith("/oauth2/")).length;
  };
  const deps = { store: w.store, connection, config: w.config, pair, now: () => new Date() };
  const webhook = await callsOf(async () => {
    for (const p of people) {
      const changes: WebhookChange[] = [
        {
          event_id: `bench-${p.id}`,
          type: "com.blackbaud.constituent.change.v1",
          external_id: p.id,
          occurred_at: new Date().toISOString(),
          change: "changed",
        },
      ];
      const recorded = await recordWebhookChanges(deps, changes);
      if (recorded.error) throw new Error(`re-reading constituent ${p.id}: ${recorded.error.message}`);
    }
  });
  const whole = await callsOf(async () => {
    for (const p of people) {
      const read = await connection.session().get([p.id]);
      if (!read.ok) throw new Error(`re-reading constituent ${p.id}: ${read.error.message}`);
    }
  });
  return {
    webhookPerConstituent: webhook / people.length,
    wholePerConstituent: whole / people.length,
    sample: people.length,
  };
}

/** The runs that started within a phase and how long each took, from the store's runs table. */
async function runsIn(w: EmulatedWorld, window: { from: string; to: string }): Promise<RunDuration[]> {
  const rows = await w.store.db
    .selectFrom("runs")
    .select(["started_at", "finished_at", "summary_json"])
    .where("pair_id", "=", PAIR_ID)
    .where("started_at", ">=", window.from)
    .where("started_at", "<=", window.to)
    .execute();
  return rows.flatMap((r) => {
    if (r.finished_at === null) return [];
    const pulls = (JSON.parse(r.summary_json ?? "{}") as { pulls?: unknown[] }).pulls ?? [];
    return [
      {
        // A webhook's targeted run skips the pull; a poll pulls every connection of the pair.
        trigger: pulls.length > 0 ? ("poll" as const) : ("webhook" as const),
        ms: Date.parse(r.finished_at) - Date.parse(r.started_at),
      },
    ];
  });
}

const mean = (xs: number[]): number => (xs.length === 0 ? 0 : xs.reduce((a, b) => a + b, 0) / xs.length);

/** What ran while the opt-outs were carried over: polls and webhooks' targeted runs, with mean durations. */
function describeRuns(runs: RunDuration[]): string {
  const polls = runs.filter((x) => x.trigger === "poll").map((x) => x.ms);
  const hooks = runs.filter((x) => x.trigger === "webhook").map((x) => x.ms);
  return `${polls.length} polls (mean ${ms(mean(polls))} ms) and ${hooks.length} webhook runs (mean ${ms(mean(hooks))} ms)`;
}

const setupNotes = (r: PathRun): string =>
  `${r.constituents} constituents in one mapped list, synced first (${ms(r.firstMs)} ms); ${r.storeLabel} store; ` +
  `opt-outs fired with exponential gaps of mean ${MEAN_GAP_MS} ms (seeded); the other system looked at every ${DETECT_EVERY_MS} ms; ` +
  `vendor rate limits and quotas off in the emulators and in Concord's budget`;

const PERCENTILES = [
  ["p50", 50],
  ["p99", 99],
  ["max", 100],
] as const;

function pushResults(r: PathRun): BenchResult[] {
  const latency = latencies(r.samples);
  const delivery = deliveries(r.samples);
  const concord = concordPart(r.samples);
  const n = r.samples.size;
  const notes =
    `All ${n} opt-outs reached Constant Contact. ` +
    `Reference: the webhook's delivery, act → arrival at Concord's receiver (the emulator sends at once; a real Event Grid delivery adds its own delay to both). ` +
    `Concord's part, arrival → visible: p50 ${ms(percentile(concord, 50))} ms, p99 ${ms(percentile(concord, 99))} ms. ` +
    `Meanwhile ${describeRuns(r.runs)} ran; calls: Raiser's Edge NXT ${r.calls.re} (${round1(r.calls.re / n)} per opt-out), ` +
    `Constant Contact ${r.calls.cc} (${round1(r.calls.cc / n)} per opt-out), polls included. ${setupNotes(r)}.`;
  const latencyResults = PERCENTILES.map(([label, p], i) => {
    const value = percentile(latency, p);
    const reference = percentile(delivery, p);
    return withRatio({
      name: `push path (RE NXT webhook → CC unsubscribed) ${label}`,
      value: ms(value),
      unit: "ms",
      reference: { name: `webhook delivery ${label}`, value: ms(reference), unit: "ms" },
      better: "lower",
      ...(i === 0 ? { notes } : {}),
    });
  });
  if (r.rereads === undefined) return latencyResults;
  const { webhookPerConstituent, wholePerConstituent, sample } = r.rereads;
  return [
    ...latencyResults,
    withRatio({
      name: "push path: RE NXT calls of a webhook's re-read, per opt-out",
      value: round2(webhookPerConstituent),
      unit: "calls",
      reference: {
        name: "a whole re-read of the constituent",
        value: round2(wholePerConstituent),
        unit: "calls",
      },
      better: "lower",
      notes:
        `A constituent.change re-reads the constituent and its consent records and keeps the rest (addresses, relationships, solicit codes) from the last snapshot; ` +
        `counted on ${sample} of the opted-out constituents once the service stopped, through the same re-read a delivery makes. ` +
        `Reference: the connector's re-read of the same constituents told nothing of what changed (the whole constituent, and the Solicit Codes table its session asks once).`,
    }),
  ];
}

const round2 = (x: number): number => Math.round(x * 100) / 100;

function pollResults(r: PathRun): BenchResult[] {
  const latency = latencies(r.samples);
  const n = r.samples.size;
  const notes =
    `All ${n} opt-outs reached Raiser's Edge NXT. ` +
    `Reference: the poll interval (poll_interval: 1s; runtime tick ${TICK_MS} ms). A poll is due an interval after the last one started, ` +
    `so the wait is up to the interval plus the run that carries it. Meanwhile ${describeRuns(r.runs)} ran (Concord's own writes come back as webhooks); ` +
    `calls: Raiser's Edge NXT ${r.calls.re} (${round1(r.calls.re / n)} per opt-out), Constant Contact ${r.calls.cc}. ${setupNotes(r)}.`;
  return PERCENTILES.map(([label, p], i) => {
    const value = percentile(latency, p);
    return withRatio({
      name: `poll path (CC unsubscribe → RE NXT Requests no email) ${label}`,
      value: ms(value),
      unit: "ms",
      reference: { name: "poll interval", value: POLL_INTERVAL_MS, unit: "ms" },
      better: "lower",
      ...(i === 0 ? { notes } : {}),
    });
  });
}

function concordPart(samples: Map<string, Sample>): number[] {
  return [...samples.values()].flatMap((s) =>
    s.visible === undefined || s.arrival === undefined ? [] : [s.visible - s.arrival],
  );
}
