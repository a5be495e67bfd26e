/**
 * The demo in one process: a world's emulated systems (worlds.ts: Raiser's Edge NXT with Constant
 * Contact accounts, a Mailchimp audience, or both) on the loopback ports an ordinary config file
 * names (examples/demo*.yaml), seeded with a generated world; the engine on a fresh embedded SQLite
 * store; the HTTP server with every pushing system's webhooks subscribed; the first sync; then
 * polls, webhooks and the activity simulator until stopped.
 */
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { findCrossReferenceIssues } from "../config/check-cross-references";
import type { ConcordConfig, Connection } from "../config/concord-config";
import { formatDuration } from "../config/duration";
import { formatConfigErrors, loadConfigFile } from "../config/load-config-file";
import type { Env } from "../config/load-env";
import { resolveSecretRef, type SecretSources } from "../config/resolve-secret-ref";
import { parseSecretKey, type SecretKey } from "../config/secret-box";
import type { CredentialValue, SecretRef } from "../config/secret-ref";
import type { RunningEmulator } from "../connectors/manifest";
import { manifestFor } from "../connectors/registry";
import { grantCredentials, startEmulators } from "../emulated-world/emulated-world";
import { openEngineContext, type EngineContext } from "../open-engine";
import { createEngineRuntime, pollIntervalOf, type EngineRuntime } from "../runs/engine-runtime";
import type { SyncReport } from "../runs/sync-pair";
import { createLogger, type Logger } from "../observability/logger";
import { createConcordMetrics, type ConcordMetrics } from "../server/api/metrics";
import { buildConcordApp } from "../server/concord-app";
import { concordPages, freePort, withPersonPages } from "./concord-pages";
import { startOutbox } from "./outbox";
import { generateDemoWorld, type DemoWorld } from "./seed";
import {
  createSimulator,
  type ConcordPages,
  type SimulatedRole,
  type Simulator,
  type SimulatorEvent,
} from "./simulator";
import { connectionsFor, type DemoWorldSpec } from "./worlds";
import { isAddressInUse } from "../server/listen-failure";
import { errorMessage } from "../core/error-code";

export const DEFAULT_SEED_SIZE = 5_000;

export type DemoOptions = {
  /** The world: which connections the demo emulates and the part each plays. */
  world: DemoWorldSpec;
  /** The config file (the world's example, or a copy with other ports). */
  configFile: string;
  /** UI and API port; undefined: the config's server.port. 0 picks a free one. */
  port?: number;
  /** Overrides every pair's schedule.poll_interval. */
  pollIntervalMs?: number;
  seedSize: number;
  simulator: boolean;
  /** Delete what earlier demos left under <dataDir> (their databases and the generated key) first. */
  reset: boolean;
  /** The data directory; the demo's database lives in <dataDir>/demo/. */
  dataDir: string;
  env: Env;
  processEnv: Readonly<Record<string, string | undefined>>;
  version: string;
  /** Where the demo's readable activity lines go (runs, the simulator's acts). */
  activity: (line: string) => void;
  /** Warnings and problems that are not activity. */
  warn: (line: string) => void;
  /** The built admin UI (ui/dist), when there is one. */
  uiDir?: string | undefined;
  /** Pause between simulated acts (default 2–4 s). */
  activityDelayMs?: readonly [number, number];
};

export type DemoUrls = {
  ui: string;
  api: string;
  /** Concord's sign-up form. */
  signup: string;
  /** Each emulator's origin, by connection id. */
  emulators: Record<string, string>;
};

/** One emulated account of the world, as the start banner describes it. */
export type DemoAccount = {
  id: string;
  label: string;
  system: string;
  role: SimulatedRole;
  url: string;
  /** Records the seed put there (constituents in the CRM, contacts in a platform). */
  records: number;
};

export type RunningDemo = {
  urls: DemoUrls;
  /** Set when the demo chose the UI password itself (CONCORD_ADMIN_PASSWORD was unset). */
  adminPassword: string | undefined;
  database: string;
  /** Where the previous run's database was kept, if there was one. */
  previousDatabase: string | undefined;
  /** Environment variables the demo set for itself (names only). */
  generatedEnv: string[];
  accounts: DemoAccount[];
  pollIntervalMs: number;
  /** Resolves when the first sync is done and polls and the simulator run. */
  started: Promise<void>;
  stop: () => Promise<void>;
};

export type DemoErrorCode = "config_invalid" | "config_not_demo" | "port_in_use" | "poll_interval_too_short";
export type StartDemoResult =
  { ok: true; demo: RunningDemo } | { ok: false; code: DemoErrorCode; message: string };

type EmulatorPorts = Record<string, { port: number; origin: string }>;

const fail = (code: DemoErrorCode, message: string): StartDemoResult => ({ ok: false, code, message });

export async function startDemo(options: DemoOptions): Promise<StartDemoResult> {
  const loaded = await loadConfigFile(options.configFile);
  if (!loaded.ok) return fail("config_invalid", formatConfigErrors(loaded.errors));
  const ports = emulatorPorts(loaded.config, options.configFile, options.world);
  if (!ports.ok) return fail("config_not_demo", ports.message);
  const config = withPollInterval(loaded.config, options.pollIntervalMs);
  if (!config.ok) return fail("poll_interval_too_short", config.message);

  const host = config.value.server.host;
  const uiPort = await freePort(options.port ?? config.value.server.port, host);
  const reachableHost = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host;
  const base = `http://${reachableHost.includes(":") ? `[${reachableHost}]` : reachableHost}:${uiPort}`;
  const demoDir = join(options.dataDir, "demo");
  const database = join(demoDir, "concord.db");
  const previousDatabase = await prepareDemoDir(options.dataDir, demoDir, database, options.reset);
  const key = options.env.CONCORD_SECRET_KEY ?? (await demoSecretKey(options.dataDir));
  const filled = fillDemoEnv(config.value, options.processEnv);
  const processEnv = filled.env;
  const logger = demoLogger(options.processEnv);

  const resolve = async (ref: SecretRef | CredentialValue | undefined, what: string): Promise<string> => {
    if (ref === undefined) throw new Error(`the demo needs ${what}`);
    const value = await resolveSecretRef(ref, { env: processEnv });
    if (!value.ok) throw new Error(`${what}: ${value.error.message}`);
    return value.value;
  };
  const connection = (id: string): Connection => {
    const found = config.value.connections.find((c) => c.id === id);
    if (!found) throw new Error(`no connection ${id}`);
    return found;
  };
  const ids = Object.keys(options.world.roles);

  const emulators = await startDemoEmulators(ports.value, ids.map(connection), resolve);
  if (!emulators.ok) return fail("port_in_use", `${emulators.message} (ports from ${options.configFile})`);
  const emulator = (id: string): RunningEmulator => {
    const found = emulators.value.get(id);
    if (!found) throw new Error(`no emulator for ${id}`);
    return found;
  };
  const closeEmulators = () => Promise.all([...emulators.value.values()].map((e) => e.close()));

  // Concord's own pages (one-click URL, preference centre, sign-up form) are served at the demo's
  // address, and the email they send goes to a local outbox the demo's people read.
  const outbox = await startOutbox();
  const demoConfig = withPersonPages(config.value, base, outbox.port, options.world);
  let context: EngineContext | undefined;
  try {
    const world = generateDemoWorld({ size: options.seedSize, now: new Date() });
    await seedEmulators(world, emulator, options.world);

    const { DATABASE_URL: _ignored, ...rest } = options.env;
    const demoEnv: Env = { ...rest, CONCORD_DATA_DIR: demoDir, CONCORD_SECRET_KEY: key };
    const metrics = createConcordMetrics({ now: () => new Date() });
    const opened = await openEngineContext({
      env: demoEnv,
      processEnv,
      configFile: options.configFile,
      logger,
      onApiCall: metrics.onApiCall,
    });
    if (!opened.ok) throw new Error(opened.message);
    context = withConfig(opened.context, demoConfig);
    const store = context.store;
    // Each account connected as its administrator would: fresh tokens, sealed under the config's names.
    for (const id of ids)
      await grantCredentials(connection(id), emulator(id), { store, key, env: processEnv });

    let firstRun = true;
    const secrets: SecretSources = {
      env: processEnv,
      key,
      stored: async (name) => (await store.credentials.get(name))?.ciphertext,
    };
    const runtime = createEngineRuntime({
      ...context.syncDeps(),
      logger,
      secrets,
      onRun: (report) => {
        metrics.onRun(report);
        for (const line of describeRun(report, firstRun)) options.activity(line);
        firstRun = false;
      },
    });

    const { app, problems } = await buildDemoServer(context, runtime, {
      version: options.version,
      secrets,
      metrics,
      uiDir: options.uiDir,
    });
    for (const problem of problems) options.warn(problem);
    try {
      await app.listen({ port: uiPort, host });
    } catch (error) {
      await app.close();
      throw isAddressInUse(error)
        ? new PortInUseError(
            `Port ${options.port ?? config.value.server.port} for the UI and API is taken: stop what uses it or pass --port`,
          )
        : error;
    }

    // Each system that pushes changes is subscribed, as an integrator does once.
    for (const id of ids) {
      const c = connection(id);
      const subscribe = emulator(id).subscribe;
      if (!c.webhooks.enabled || !c.webhooks.secret || !subscribe) continue;
      const secret = await resolve(c.webhooks.secret, `connections.${id}.webhooks.secret`);
      if (!(await subscribe(`${base}/webhooks/${id}`, secret)))
        options.warn(
          `The ${c.label ?? id} webhook subscriptions did not provision: its changes arrive by poll only.`,
        );
    }

    const pair = config.value.pairs[0];
    const pollIntervalMs = pair ? pollIntervalOf({ config: config.value }, pair) : 60_000;
    // The world does not wait for the first sync: people and admins act from the start.
    // A role several connections play (fan-out) is acted in by each in turn.
    const turn = new Map<SimulatedRole, number>();
    const actIn = (role: SimulatedRole): string => {
      const all = connectionsFor(options.world, role);
      const n = turn.get(role) ?? 0;
      turn.set(role, n + 1);
      const id = all[n % all.length];
      if (id === undefined) throw new Error(`the world has no ${role} connection`);
      return id;
    };
    const mainSystem = manifestFor(connection(connectionsFor(options.world, "main")[0] ?? "").system);
    const crmSystem = manifestFor(connection(connectionsFor(options.world, "crm")[0] ?? "").system);
    const simulator: Simulator | undefined = options.simulator
      ? createSimulator({
          world,
          act: async (role, act) => {
            const id = actIn(role);
            return { ...(await emulator(id).act(act)), connection: id };
          },
          roles: [...new Set(Object.values(options.world.roles))],
          ...(crmSystem?.words !== undefined ? { crm: crmSystem.words } : {}),
          ...(crmSystem !== undefined ? { crmPushes: crmSystem.capabilities.webhooks } : {}),
          ...(mainSystem !== undefined && connectionsFor(options.world, "main").length === 1
            ? { platform: mainSystem.label }
            : { platform: "every platform" }),
          pendingConfirmations: async (role) =>
            (
              await Promise.all(
                connectionsFor(options.world, role).map(
                  async (id) => (await emulator(id).pending_confirmations?.()) ?? [],
                ),
              )
            ).flat(),
          ...withConcordPages(concordPages({ store, key, config: demoConfig, outbox })),
          onEvent: (e) => {
            options.activity(describeEvent(e));
          },
          onSkip: (reason) => {
            logger.debug({ reason }, "simulated act skipped");
          },
          ...(options.activityDelayMs
            ? { minDelayMs: options.activityDelayMs[0], maxDelayMs: options.activityDelayMs[1] }
            : {}),
        })
      : undefined;
    simulator?.start();
    let stopping = false;
    const started = (async () => {
      try {
        await runtime.tick(); // the first sync: a full read of every system
      } catch (error) {
        options.warn(`The first sync failed: ${errorMessage(error)}; polls will try again.`);
      }
      simulator?.firstSyncDone();
      if (stopping) return;
      runtime.start(Math.min(1_000, Math.max(200, Math.floor(pollIntervalMs / 2))));
    })();

    const openedContext = context;
    let stopped: Promise<void> | undefined;
    const stop = (): Promise<void> => {
      stopped ??= (async () => {
        stopping = true;
        await simulator?.stop();
        // Waits for a run in progress (the first sync included); nothing new starts once stopping.
        await runtime.stop();
        await started;
        await app.close();
        await closeEmulators();
        await outbox.close();
        await openedContext.close();
      })();
      return stopped;
    };

    const accounts: DemoAccount[] = ids.map((id) => {
      const role = options.world.roles[id] ?? "main";
      const c = connection(id);
      return {
        id,
        label: c.label ?? id,
        system: c.system,
        role,
        url: emulator(id).origin,
        records: role === "crm" ? world.crm.people.length : world.platforms[role].contacts.length,
      };
    });
    return {
      ok: true,
      demo: {
        urls: {
          ui: `${base}/`,
          api: `${base}/api`,
          signup: `${base}/l/signup`,
          emulators: Object.fromEntries(ids.map((id) => [id, emulator(id).origin])),
        },
        adminPassword: filled.adminPassword,
        database,
        previousDatabase,
        generatedEnv: filled.generated,
        accounts,
        pollIntervalMs,
        started,
        stop,
      },
    };
  } catch (error) {
    await closeEmulators();
    await outbox.close();
    await context?.close();
    if (error instanceof PortInUseError) return fail("port_in_use", error.message);
    throw error;
  }
}

// ------------------------------------------------------------------ the server (one place)

/** The HTTP app the demo serves: the same app as `concord serve` (health, webhooks, API, UI). */
async function buildDemoServer(
  context: EngineContext,
  runtime: EngineRuntime,
  options: { version: string; secrets: SecretSources; metrics: ConcordMetrics; uiDir: string | undefined },
): Promise<{ app: FastifyInstance; problems: string[] }> {
  const built = await buildConcordApp(context, runtime, {
    version: options.version,
    secrets: options.secrets,
    metrics: options.metrics,
    // The sign-up email goes to the demo's own outbox on the loopback, with its throwaway certificate.
    smtpTls: { rejectUnauthorized: false },
    ...(options.uiDir !== undefined ? { uiDir: options.uiDir } : {}),
  });
  return { app: built.app, problems: built.problems };
}

// ------------------------------------------------------------------ config

/** The emulators' ports, read from the connections' base_url and token_url (loopback, one origin each). */
export function emulatorPorts(
  config: ConcordConfig,
  file: string,
  world: DemoWorldSpec,
): { ok: true; value: EmulatorPorts } | { ok: false; message: string } {
  const out: EmulatorPorts = {};
  for (const id of Object.keys(world.roles)) {
    const c = config.connections.find((x) => x.id === id);
    if (!c)
      return {
        ok: false,
        message: `${file}: the demo world "${world.name}" emulates the connections ${Object.keys(world.roles).join(", ")}; found no connection ${id} (the world's own config is ${world.config})`,
      };
    // A system whose credentials are a token it issues (Kindful, GrowthZone) has no token URL.
    const tokenUrlNeeded = manifestFor(c.system)?.endpoints.token_url !== undefined;
    if (!c.base_url || (tokenUrlNeeded && !c.token_url))
      return {
        ok: false,
        message: `${file}: connection ${id} needs base_url${tokenUrlNeeded ? " and token_url" : ""} on loopback, where the demo runs its emulator (e.g. http://127.0.0.1:4101)`,
      };
    const base = new URL(c.base_url);
    const token = new URL(c.token_url ?? c.base_url);
    if (!["127.0.0.1", "localhost", "[::1]"].includes(base.hostname) || base.port === "")
      return {
        ok: false,
        message: `${file}: connection ${id} base_url ${c.base_url}: expected a loopback URL with a port, such as http://127.0.0.1:4101`,
      };
    if (token.origin !== base.origin)
      return {
        ok: false,
        message: `${file}: connection ${id}: token_url must be on the same host and port as base_url (${base.origin}), found ${token.origin}`,
      };
    out[id] = { port: Number(base.port), origin: base.origin };
  }
  const seen = new Map<number, string>();
  for (const [id, p] of Object.entries(out)) {
    const other = seen.get(p.port);
    if (other !== undefined)
      return { ok: false, message: `${file}: connections ${other} and ${id} use the same port ${p.port}` };
    seen.set(p.port, id);
  }
  return { ok: true, value: out };
}

/** The config with every pair polled at `ms`, checked against each connection's call budget. */
export function withPollInterval(
  config: ConcordConfig,
  ms: number | undefined,
): { ok: true; value: ConcordConfig } | { ok: false; message: string } {
  if (ms === undefined) return { ok: true, value: config };
  const value: ConcordConfig = {
    ...config,
    pairs: config.pairs.map((p) => ({ ...p, schedule: { ...p.schedule, poll_interval: ms } })),
  };
  const problems = findCrossReferenceIssues(value).filter((i) => i.code === "poll_interval_too_short");
  if (problems.length > 0)
    return {
      ok: false,
      message: `--poll-interval ${formatDuration(ms)}: ${problems.map((p) => p.message).join("; ")}`,
    };
  return { ok: true, value };
}

const withConcordPages = (concord: ConcordPages | undefined): { concord?: ConcordPages } =>
  concord === undefined ? {} : { concord };

function withConfig(context: EngineContext, config: ConcordConfig): EngineContext {
  return {
    ...context,
    config,
    pairs: (id) => {
      if (id === undefined) return config.pairs;
      const found = config.pairs.filter((p) => p.id === id);
      return found.length > 0 ? found : undefined;
    },
    syncDeps: () => ({ ...context.syncDeps(), config }),
  };
}

/**
 * Values for the config's `{ env }` references that are unset: random ones the demo hands to both
 * its emulators and the engine. The process environment itself is left alone.
 */
export function fillDemoEnv(
  config: ConcordConfig,
  processEnv: Readonly<Record<string, string | undefined>>,
): { env: Record<string, string | undefined>; generated: string[]; adminPassword: string | undefined } {
  const env: Record<string, string | undefined> = { ...processEnv };
  const generated: string[] = [];
  const fill = (ref: SecretRef | CredentialValue | undefined, value: () => string): void => {
    if (ref?.kind !== "env" || (env[ref.name] ?? "") !== "") return;
    env[ref.name] = value();
    generated.push(ref.name);
  };
  for (const c of config.connections) {
    for (const ref of Object.values(c.credentials))
      fill(ref, () => `demo-${randomBytes(12).toString("hex")}`);
    fill(c.webhooks.secret, () => randomBytes(24).toString("base64url"));
  }
  let adminPassword: string | undefined;
  fill(config.server.admin_password, () => {
    adminPassword = `demo-${randomBytes(9).toString("base64url")}`;
    return adminPassword;
  });
  return { env, generated, adminPassword };
}

// ------------------------------------------------------------------ data directory and key

/**
 * The emulators live in memory and start from the seed each time, so the demo's database starts
 * empty with them. An earlier run's database is kept once as concord.previous.db; `reset` deletes
 * the demo directory and the generated key instead.
 */
async function prepareDemoDir(
  dataDir: string,
  demoDir: string,
  database: string,
  reset: boolean,
): Promise<string | undefined> {
  if (reset) {
    await rm(demoDir, { recursive: true, force: true });
    await rm(join(dataDir, "demo-secret.key"), { force: true });
  }
  await mkdir(demoDir, { recursive: true });
  if (!existsSync(database)) return undefined;
  const previous = join(demoDir, "concord.previous.db");
  for (const suffix of ["", "-wal", "-shm"]) {
    await rm(`${previous}${suffix}`, { force: true });
    if (existsSync(`${database}${suffix}`)) await rename(`${database}${suffix}`, `${previous}${suffix}`);
  }
  return previous;
}

/** CONCORD_SECRET_KEY for the demo when none is set: generated once, kept in <dataDir>/demo-secret.key. */
async function demoSecretKey(dataDir: string): Promise<SecretKey> {
  const file = join(dataDir, "demo-secret.key");
  await mkdir(dataDir, { recursive: true });
  if (existsSync(file)) {
    const parsed = parseSecretKey((await readFile(file, "utf8")).trim());
    if (parsed.ok) return parsed.value;
  }
  const text = randomBytes(32).toString("base64");
  await writeFile(file, `${text}\n`, { mode: 0o600 });
  await chmod(file, 0o600);
  const parsed = parseSecretKey(text);
  if (!parsed.ok) throw new Error(parsed.error.message);
  return parsed.value;
}

// ------------------------------------------------------------------ emulators

class PortInUseError extends Error {}

/** The demo's emulators on the ports its config names, through the one world builder. */
async function startDemoEmulators(
  ports: EmulatorPorts,
  connections: readonly Connection[],
  resolve: (ref: SecretRef | CredentialValue | undefined, what: string) => Promise<string>,
): Promise<{ ok: true; value: Map<string, RunningEmulator> } | { ok: false; message: string }> {
  const world = [];
  for (const c of connections)
    world.push({
      id: c.id,
      system: c.system,
      port: ports[c.id]?.port ?? 0,
      emulator: await demoEmulatorSettings(c, resolve),
    });
  try {
    return { ok: true, value: await startEmulators(world) };
  } catch (error) {
    if (!isAddressInUse(error)) throw error;
    const port = (error as { port?: number }).port;
    const c = connections.find((x) => ports[x.id]?.port === port);
    return {
      ok: false,
      message: `Port ${port ?? "?"} for the ${c !== undefined ? `${c.system} emulator (connection ${c.id})` : "an emulator"} is taken: stop what uses it, or copy the config, change the port in base_url and token_url, and pass --config`,
    };
  }
}

/** Each emulator's own settings for the demo: the connection's limits, a visible pace, its name. */
async function demoEmulatorSettings(
  c: Connection,
  resolve: (ref: SecretRef | CredentialValue | undefined, what: string) => Promise<string>,
): Promise<Record<string, unknown>> {
  const l = c.limits;
  switch (c.system) {
    case "blackbaud-renxt":
      return {
        subscriptionKey: await resolve(
          c.credentials["subscription_key"],
          `connections.${c.id}.credentials.subscription_key`,
        ),
        environmentName: "Concord Demo",
        ...(l.requests_per_second !== undefined ? { ratePerSecond: l.requests_per_second } : {}),
        ...(l.daily_quota !== undefined ? { dailyQuota: l.daily_quota } : {}),
        webhooks: { autoDeliver: true, allowHttp: true },
      };
    case "constant-contact":
      return {
        ...(l.requests_per_second !== undefined ? { rateLimitPerSecond: l.requests_per_second } : {}),
        ...(l.daily_quota !== undefined ? { dailyQuota: l.daily_quota } : {}),
        // Bulk imports finish in well under a second, as a small account's do.
        activityPollsToComplete: 1,
        activityDelayMs: 300,
        ...(c.label !== undefined ? { accountName: c.label } : {}),
      };
    case "mailchimp":
      return { autoDeliverWebhooks: true, ...(c.label !== undefined ? { accountName: c.label } : {}) };
    case "growthzone":
      // The emulated organisation answers as fast as the connection asks (a real one 429s near 8 a second).
      return { ratePerSecond: l.requests_per_second ?? null };
    default:
      return {};
  }
}

/**
 * Seeds the emulators with the demo's world, in canonical terms (each turns it into its own
 * shapes): the CRM its people; each platform account the contacts of its role, with the Appeals
 * topic for systems that let contacts choose topics (Mailchimp's groups).
 */
export async function seedEmulators(
  world: DemoWorld,
  emulator: (id: string) => RunningEmulator,
  spec: DemoWorldSpec,
): Promise<void> {
  for (const [id, role] of Object.entries(spec.roles)) {
    if (role === "crm") await emulator(id).seed(world.crm);
    else await emulator(id).seed({ ...world.platforms[role], topics: [{ name: "Appeals" }] });
  }
}

// ------------------------------------------------------------------ what the demo prints

function demoLogger(processEnv: Readonly<Record<string, string | undefined>>): Logger {
  // The engine's structured log would drown the activity lines: warnings only, unless asked.
  const requested = processEnv["LOG_LEVEL"];
  const level = z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).safeParse(requested);
  return createLogger({ level: level.success ? level.data : "warn", destination: process.stderr });
}

const clock = (iso: string): string => iso.slice(11, 19);
const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? "" : "s"}`;

/** One line per simulated act: time, system, who, what; ids, never addresses. */
export function describeEvent(e: SimulatorEvent): string {
  const ids = [
    e.crm_record !== null ? `record ${e.crm_record}` : undefined,
    e.platform_record !== null ? `contact ${e.platform_record.slice(0, 8)}` : undefined,
  ].filter((x) => x !== undefined);
  return `${clock(e.at)}  ${e.system.padEnd(10)}  ${e.actor}: ${e.description}${ids.length > 0 ? ` [${ids.join(", ")}]` : ""}`;
}

/** Lines for a finished run: the first sync in full, later runs only when they changed something. */
export function describeRun(report: SyncReport, first: boolean): string[] {
  const at = clock(new Date().toISOString());
  const operations = report.plan?.operations ?? [];
  const problems = [
    ...(report.error ? [`${report.error.code}: ${report.error.message}`] : []),
    ...report.pulls.filter((p) => p.error !== null).map((p) => `${p.connection_id}: ${p.error?.code ?? ""}`),
    ...(report.execution?.waiting ?? []).map((w) => `${w.connection_id} waits (${w.code})`),
  ];
  if (!first && operations.length === 0 && problems.length === 0) return [];
  const trigger = first ? "first sync" : report.pulls.length === 0 ? "webhook" : "poll";
  const byKind = new Map<string, number>();
  for (const op of operations) {
    const k = `${op.connection_id} ${op.kind}`;
    byKind.set(k, (byKind.get(k) ?? 0) + op.contacts);
  }
  const what = [...byKind].map(([k, n]) => `${k} ×${n}`).join(", ");
  const applied = report.execution
    ? ` — ${report.execution.operations.succeeded} applied${report.execution.operations.failed > 0 ? `, ${report.execution.operations.failed} refused` : ""}`
    : "";
  const lines = [
    `${at}  concord     ${report.pair_id} ${trigger}: ${what || "nothing to change"}${applied}${problems.length > 0 ? ` (${problems.join("; ")})` : ""}`,
  ];
  if (first && report.plan) {
    for (const p of report.pulls)
      lines.push(
        `          read ${p.connection_id}: ${plural(p.records_seen, "record")}, ${plural(p.consent_events_appended, "consent event")} recorded`,
      );
    for (const [connection, gain] of Object.entries(report.plan.gains))
      if (gain > 0) lines.push(`          ${connection} gains ${plural(gain, "contact")}`);
    for (const [connection, reasons] of Object.entries(report.plan.counts.skipped)) {
      const parts = Object.entries(reasons).map(([code, n]) => `${code} ${n}`);
      if (parts.length > 0) lines.push(`          not sent to ${connection}: ${parts.join(", ")}`);
    }
    if (report.plan.unlinked_opt_outs.length > 0)
      lines.push(
        `          ${plural(report.plan.unlinked_opt_outs.length, "opt-out")} on contacts uploaded straight into Constant Contact, matched by address`,
      );
  }
  return lines;
}
