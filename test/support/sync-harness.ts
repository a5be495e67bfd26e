/**
 * Test support for the sync engine: the emulated world (Raiser's Edge NXT and two Constant Contact
 * accounts: "cc-main", global; "cc-appeals", the topic "appeals") built by the one world builder on
 * the one fake clock, with the example pair's config, a store and opened connections, and the
 * vendor-aware helpers the engine's tests use to act in each system.
 */
import type { ConcordConfig, Pair } from "../../src/config/concord-config";
import type { RunningBlackbaudEmulator } from "../../src/connectors/blackbaud-renxt/emulator/blackbaud-emulator";
import type { StoredContact } from "../../src/connectors/constant-contact/emulator/constant-contact-store";
import type { StartedConstantContactEmulator } from "../../src/connectors/constant-contact/emulator/constant-contact-emulator";
import { connectionHealthTracker, type ConnectionAlert } from "../../src/connections/connection-health";
import type { EngineContext } from "../../src/open-engine";
import type { OpenedConnection } from "../../src/connections/open-connection";
import { startEmulatedWorld } from "../../src/emulated-world/emulated-world";
import type { Logger } from "../../src/observability/logger";
import { capturingLogger } from "./capturing-logger";
import {
  createEngineRuntime,
  type EngineRuntime,
  type EngineRuntimeDeps,
} from "../../src/runs/engine-runtime";
import type { Store } from "../../src/store/ports";
import { syncPair, type SyncDeps, type SyncOptions, type SyncReport } from "../../src/runs/sync-pair";
import { createFakeClock, type FakeClock } from "./fake-clock";
import { storeBackends, type StoreBackend, type TestStore } from "./store-backends";

import { TEST_ENV, TEST_KEY, TEST_SUBSCRIPTION_KEY as SUBSCRIPTION_KEY } from "./test-credentials";
import { appealsTopic } from "./world-config";

export { TEST_ENV, TEST_KEY };

export const RE_LISTS = { news: "list-newsletter", appeals: "list-appeals", events: "list-events" };

export type SyncHarnessOptions = {
  /** Edits the config object before it is validated (policies, audiences, fields). */
  configure?: (raw: Record<string, any>) => void;
  ccRateLimitPerSecond?: number | null;
  reRatePerSecond?: number;
  /** The emulated tenant's daily quota (Customer tier 25,000; Partner tier 100,000 per connection). */
  reDailyQuota?: number;
  ccDailyQuota?: number | null;
  /**
   * Adds a Mailchimp audience ("mc") to the pair, fanning out beside both Constant Contact
   * accounts: its "Newsletter" tag receives the CRM's newsletter list, and its "Appeals" group
   * (interest) receives the appeal recipients and stands for the Appeals topic.
   */
  mailchimp?: boolean;
};

export type SyncHarness = {
  store: Store;
  config: ConcordConfig;
  pair: Pair;
  re: RunningBlackbaudEmulator;
  ccMain: StartedConstantContactEmulator;
  ccAppeals: StartedConstantContactEmulator;
  /** The Mailchimp emulator's origin, when the harness has one (`mailchimp: true`). */
  mcOrigin?: string;
  /** Platform list ids by name, as seeded. */
  ccLists: { main: { newsletter: string; events: string }; appeals: { appeals: string } };
  connections: Map<string, OpenedConnection>;
  alerts: ConnectionAlert[];
  /** The log every part of the harness writes to (its runs, and engine runtimes over it): its lines are `logs`. */
  logger: Logger;
  logs: string[];
  clock: FakeClock;
  now: () => Date;
  advance: (ms: number) => void;
  sync: (options?: SyncOptions, extra?: Partial<SyncDeps>) => Promise<SyncReport>;
  /** Re-opens every connection (a new process): budgets and sessions start afresh. */
  reopen: () => void;
  seedRe: (constituents: unknown[]) => Promise<string[]>;
  reAct: (body: Record<string, unknown>) => Promise<any>;
  reGet: (path: string) => Promise<any>;
  seedCc: (
    emu: StartedConstantContactEmulator,
    contacts: unknown[],
  ) => Promise<{ contact_id: string; email: string }[]>;
  ccAct: (
    emu: StartedConstantContactEmulator,
    action: string,
    email: string,
    as?: "contact" | "admin",
  ) => Promise<any>;
  /** An admin's act in a Constant Contact account with extra fields (`fields`, `list_ids`…). */
  ccAdmin: (
    emu: StartedConstantContactEmulator,
    action: string,
    email: string,
    extra: Record<string, unknown>,
  ) => Promise<any>;
  ccContact: (emu: StartedConstantContactEmulator, email: string) => StoredContact | undefined;
  /** The administrator connects the account again: fresh credentials, sealed in the store. */
  storeRefreshToken: (connectionId: string) => Promise<void>;
  /** Secret credential values a fresh grant holds (a log must never show one). */
  secrets: () => string[];
  close: () => Promise<void>;
};

export const individual = (
  email: string | null,
  first: string,
  last: string,
  extra: Record<string, unknown> = {},
) => ({
  type: "Individual",
  first,
  last,
  ...(email === null
    ? {}
    : { email: { address: email, type: "Email", primary: true, do_not_email: false, inactive: false } }),
  ...extra,
});

/**
 * What an engine runtime over the harness runs on: its store, config, connections, clock and log
 * (kept in `h.logs`), and the test secrets with `env` added (the webhook secrets a test configures).
 */
export function runtimeDeps(h: SyncHarness, env: Record<string, string>) {
  return {
    store: h.store,
    config: h.config,
    connections: h.connections,
    now: h.now,
    logger: h.logger,
    secrets: { env: { ...TEST_ENV, ...env }, key: TEST_KEY },
  };
}

/** POSTs JSON to an emulator's control API; anything but 2xx throws with the answer. */
export async function post<T = any>(base: string, path: string, body: unknown): Promise<T> {
  const res = await fetch(`${base}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  if (res.status >= 300) throw new Error(`${path} answered ${res.status}: ${text}`);
  return (text === "" ? undefined : JSON.parse(text)) as T;
}

export async function startSyncHarness(
  backend: StoreBackend,
  options: SyncHarnessOptions = {},
): Promise<SyncHarness> {
  const clock = createFakeClock("2026-06-01T12:00:00.000Z");
  const { now, advance } = clock;
  const testStore: TestStore = await backend.create({ clock: now });
  const store = testStore.store;

  const alerts: ConnectionAlert[] = [];
  const { logger, lines: logs } = capturingLogger();
  const cc = {
    rateLimitPerSecond: options.ccRateLimitPerSecond === undefined ? null : options.ccRateLimitPerSecond,
    ...(options.ccDailyQuota !== undefined ? { dailyQuota: options.ccDailyQuota } : {}),
  };
  const world = await startEmulatedWorld({
    connections: [
      {
        id: "re-nxt",
        system: "blackbaud-renxt",
        emulator: {
          subscriptionKey: SUBSCRIPTION_KEY,
          ratePerSecond: options.reRatePerSecond ?? 1000,
          ...(options.reDailyQuota !== undefined ? { dailyQuota: options.reDailyQuota } : {}),
          webhooks: { autoDeliver: false },
        },
      },
      { id: "cc-main", system: "constant-contact", emulator: cc },
      { id: "cc-appeals", system: "constant-contact", emulator: cc },
      ...(options.mailchimp === true
        ? [{ id: "mc", system: "mailchimp", emulator: { autoDeliverWebhooks: false } }]
        : []),
    ],
    config: {
      topics: [appealsTopic()],
      pairs: [
        {
          id: "re-cc",
          crm: "re-nxt",
          platforms: [{ connection: "cc-main" }, { connection: "cc-appeals" }],
          audiences: [
            {
              crm_list: { id: RE_LISTS.news },
              platform: "cc-main",
              platform_list: { name: "Newsletter" },
              direction: "crm_to_platform",
              delete_policy: "remove_membership",
            },
            {
              crm_list: { name: "Event invitations" },
              platform: "cc-main",
              platform_list: { name: "Events" },
              direction: "both",
            },
            {
              crm_list: { id: RE_LISTS.appeals, name: "Appeal recipients" },
              platform: "cc-appeals",
              platform_list: { name: "Appeals" },
              direction: "crm_to_platform",
            },
          ],
          fields: [
            { canonical: "first_name", crm: "first", platform: "first_name", owner: "crm" },
            { canonical: "last_name", crm: "last", platform: "last_name", owner: "crm" },
          ],
        },
      ],
    },
    configure: (raw) => {
      if (options.mailchimp === true) {
        const pair = (raw["pairs"] as Record<string, any>[])[0]!;
        pair["platforms"].push({ connection: "mc" });
        pair["audiences"].push({
          crm_list: { id: RE_LISTS.news },
          platform: "mc",
          platform_list: { name: "Newsletter" },
          direction: "crm_to_platform",
        });
        pair["audiences"].push({
          crm_list: { id: RE_LISTS.appeals },
          platform: "mc",
          platform_list: { name: "Appeals" },
          direction: "crm_to_platform",
        });
        (raw["topics"] as { constructs: Record<string, unknown> }[])[0]!.constructs["mc"] = {
          type: "interest",
          name: "Appeals",
        };
      }
      options.configure?.(raw);
    },
    store,
    key: TEST_KEY,
    now,
    // Tests never wait: a wait moves the shared clock, then lets other work run.
    sleep: async (ms: number) => {
      advance(ms);
      await new Promise((resolve) => setImmediate(resolve));
    },
    logger,
    notify: async (a) => {
      alerts.push(a);
    },
  });
  const { config } = world;
  const pair = config.pairs[0];
  if (!pair) throw new Error("no pair");
  const re = world.emulator("re-nxt").native as RunningBlackbaudEmulator;
  const ccMain = world.emulator("cc-main").native as StartedConstantContactEmulator;
  const ccAppeals = world.emulator("cc-appeals").native as StartedConstantContactEmulator;

  const mcOrigin = options.mailchimp === true ? world.emulator("mc").origin : undefined;
  if (mcOrigin !== undefined)
    await post(mcOrigin, "/__emulator/seed", {
      audience: {
        id: "a1b2c3d4e5",
        name: "Supporters",
        tags: ["Newsletter"],
        interest_categories: [{ title: "Topics", interests: ["Appeals"] }],
      },
    });
  const mainLists = await post<{ lists: { list_id: string; name: string }[] }>(
    ccMain.baseUrl,
    "/__emulator/seed",
    { lists: [{ name: "Newsletter" }, { name: "Events" }] },
  );
  const appealLists = await post<{ lists: { list_id: string; name: string }[] }>(
    ccAppeals.baseUrl,
    "/__emulator/seed",
    { lists: [{ name: "Appeals" }] },
  );
  const listId = (lists: { list_id: string; name: string }[], name: string): string =>
    lists.find((l) => l.name === name)?.list_id ?? "";
  const ccLists = {
    main: { newsletter: listId(mainLists.lists, "Newsletter"), events: listId(mainLists.lists, "Events") },
    appeals: { appeals: listId(appealLists.lists, "Appeals") },
  };
  await post(re.baseUrl, "/__emulator/seed", {
    lists: [
      { id: RE_LISTS.news, name: "Monthly newsletter" },
      { id: RE_LISTS.appeals, name: "Appeal recipients" },
      { id: RE_LISTS.events, name: "Event invitations" },
    ],
  });

  const harness: SyncHarness = {
    store,
    config,
    pair,
    re,
    ccMain,
    ccAppeals,
    ...(mcOrigin !== undefined ? { mcOrigin } : {}),
    ccLists,
    connections: world.connections,
    alerts,
    logger,
    logs,
    clock,
    now,
    advance,
    reopen: world.reopen,
    sync: (opts = {}, extra = {}) =>
      syncPair({ store, config, connections: world.connections, now, ...extra }, pair, opts),
    seedRe: async (constituents) =>
      (
        await post<{ constituents: { id: string }[] }>(re.baseUrl, "/__emulator/seed", { constituents })
      ).constituents.map((c) => c.id),
    reAct: (body) => post(re.baseUrl, "/__emulator/act", { as: "admin", ...body }),
    reGet: async (path) => {
      const token = re.mintToken();
      const res = await fetch(`${re.baseUrl}${path}`, {
        headers: {
          "Bb-Api-Subscription-Key": SUBSCRIPTION_KEY,
          Authorization: `Bearer ${String(token.access_token)}`,
        },
      });
      return res.json();
    },
    seedCc: async (emu, contacts) =>
      (
        await post<{ contacts: { contact_id: string; email: string }[] }>(emu.baseUrl, "/__emulator/seed", {
          contacts,
        })
      ).contacts,
    ccAct: (emu, action, email, as = "contact") =>
      post(emu.baseUrl, "/__emulator/act", { as, action, email }),
    ccAdmin: (emu, action, email, extra) =>
      post(emu.baseUrl, "/__emulator/act", { as: "admin", action, email, ...extra }),
    ccContact: (emu, email) => emu.store.findByEmail(email),
    storeRefreshToken: world.regrant,
    secrets: () =>
      [...world.grants.values()].flatMap((g) =>
        Object.entries(g).flatMap(([name, value]) => (name === "client_id" ? [] : [value])),
      ),
    close: async () => {
      await world.close();
      await testStore.cleanup();
    },
  };
  return harness;
}

/** Replaces one of the harness's connections' sessions by `wrap` of each session it opens. */
function wrapSessions(
  h: Pick<SyncHarness, "connections">,
  connectionId: string,
  wrap: (session: ReturnType<OpenedConnection["session"]>) => ReturnType<OpenedConnection["session"]>,
): void {
  const opened = h.connections.get(connectionId);
  if (opened === undefined) throw new Error(`no connection ${connectionId}`);
  h.connections.set(connectionId, { ...opened, session: () => wrap(opened.session()) });
}

/**
 * Runs `before` ahead of every read (`session().read`) of one of the harness's connections: a gate
 * the test opens, a jump of the clock.
 */
export function beforeEachRead(
  h: Pick<SyncHarness, "connections">,
  connectionId: string,
  before: () => void | Promise<void>,
): void {
  wrapSessions(h, connectionId, (session) => ({
    ...session,
    read: async function* (checkpoint, options) {
      await before();
      yield* session.read(checkpoint, options);
    },
  }));
}

/**
 * Runs `before` with the ids ahead of every targeted re-read (`session().get`) of one of the
 * harness's connections: a re-read that throws, a jump of the clock.
 */
export function beforeEachGet(
  h: Pick<SyncHarness, "connections">,
  connectionId: string,
  before: (ids: readonly string[]) => void | Promise<void>,
): void {
  wrapSessions(h, connectionId, (session) => ({
    ...session,
    get: async (ids, options) => {
      await before(ids);
      return session.get(ids, options);
    },
  }));
}

/**
 * Runs `before` ahead of every apply (`session().apply`) of one of the harness's connections: what
 * someone does in the system between a plan's read and its write.
 */
export function beforeEachApply(
  h: Pick<SyncHarness, "connections">,
  connectionId: string,
  before: () => void | Promise<void>,
): void {
  wrapSessions(h, connectionId, (session) => ({
    ...session,
    apply: async (operations) => {
      await before();
      return session.apply(operations);
    },
  }));
}

/** Adds constituents to a Raiser's Edge NXT list through the emulator's admin act. */
export async function addToReList(h: SyncHarness, listId: string, ids: readonly string[]): Promise<void> {
  await h.reAct({ action: "add_to_list", list_id: listId, ids });
}

/** The SQLite backend: the behaviour suites run on it (the store suites cover PostgreSQL). */
export function sqliteBackend(): StoreBackend {
  const backend = storeBackends().find((b) => b.name === "sqlite");
  if (!backend) throw new Error("no SQLite backend");
  return backend;
}

/** The engine context `concord serve` would open, over the harness's store, connections and clock. */
export function engineContextOf(h: SyncHarness, config: ConcordConfig, logger: Logger): EngineContext {
  return {
    store: h.store,
    config,
    connections: h.connections,
    logger,
    now: h.now,
    health: connectionHealthTracker({ store: h.store, logger, now: h.now }),
    pairs: () => config.pairs,
    syncDeps: () => ({ store: h.store, config, connections: h.connections, now: h.now }),
    close: async () => undefined,
  };
}

/** The engine runtime `concord serve` would run over the harness (its config unless given one). */
export function runtimeOf(
  h: SyncHarness,
  logger: Logger,
  extra: Partial<EngineRuntimeDeps> = {},
): EngineRuntime {
  return createEngineRuntime({
    store: h.store,
    config: h.config,
    connections: h.connections,
    now: h.now,
    logger,
    secrets: { env: TEST_ENV, key: TEST_KEY },
    ...extra,
  });
}
