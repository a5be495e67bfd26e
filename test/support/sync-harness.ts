/**
 * Test support for the sync engine: an emulated Raiser's Edge NXT and two Constant Contact accounts
 * ("cc-main", global; "cc-appeals", the topic "appeals") on loopback, a store, the example pair's
 * config with sealed credentials, opened connections, and one virtual clock shared by all of them.
 */
import { Writable } from "node:stream";
import { ConcordConfigShapeSchema, type ConcordConfig, type Pair } from "../../src/config/concord-config";
import { sealSecret } from "../../src/config/secret-box";
import {
  startBlackbaudEmulator,
  type RunningBlackbaudEmulator,
} from "../../src/connectors/blackbaud-renxt/emulator/blackbaud-emulator";
import type { StoredContact } from "../../src/connectors/constant-contact/emulator/constant-contact-store";
import {
  startConstantContactEmulator,
  type StartedConstantContactEmulator,
} from "../../src/connectors/constant-contact/emulator/constant-contact-emulator";
import { createLogger } from "../../src/observability/logger";
import type { Store } from "../../src/store/ports";
import { storeBackends, type StoreBackend, type TestStore } from "./store-backends";
import { connectionHealthTracker, type ConnectionAlert } from "../../src/connections/connection-health";
import { openConnections, type OpenedConnection } from "../../src/connections/open-connection";
import { syncPair, type SyncDeps, type SyncOptions, type SyncReport } from "../../src/runs/sync-pair";

import { TEST_ENV, TEST_KEY, TEST_SUBSCRIPTION_KEY as SUBSCRIPTION_KEY } from "./test-credentials";

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
};

export type SyncHarness = {
  store: Store;
  config: ConcordConfig;
  pair: Pair;
  re: RunningBlackbaudEmulator;
  ccMain: StartedConstantContactEmulator;
  ccAppeals: StartedConstantContactEmulator;
  /** Platform list ids by name, as seeded. */
  ccLists: { main: { newsletter: string; events: string }; appeals: { appeals: string } };
  connections: Map<string, OpenedConnection>;
  alerts: ConnectionAlert[];
  logs: string[];
  clock: { t: number };
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
  storeRefreshToken: (connectionId: string) => Promise<void>;
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

/** A Raiser's Edge NXT connection on the emulator, credentials by reference (TEST_ENV and the store). */
export const reConnectionConfig = (re: RunningBlackbaudEmulator, id = "re-nxt") => ({
  id,
  system: "blackbaud-renxt",
  base_url: re.baseUrl,
  token_url: `${re.baseUrl}/oauth2/token`,
  credentials: {
    client_id: "concord",
    client_secret: { env: "RE_SECRET" },
    refresh_token: { stored: `${id}.refresh_token` },
    subscription_key: { env: "RE_KEY" },
  },
});

/** A Constant Contact connection on the emulator, credentials by reference (TEST_ENV and the store). */
export const ccConnectionConfig = (id: string, emu: StartedConstantContactEmulator) => ({
  id,
  system: "constant-contact",
  base_url: `${emu.baseUrl}/v3`,
  token_url: `${emu.baseUrl}/oauth2/default/v1/token`,
  credentials: {
    client_id: "concord",
    client_secret: { env: "CC_SECRET" },
    refresh_token: { stored: `${id}.refresh_token` },
  },
});

export async function startSyncHarness(
  backend: StoreBackend,
  options: SyncHarnessOptions = {},
): Promise<SyncHarness> {
  const clock = { t: Date.parse("2026-06-01T12:00:00.000Z") };
  const now = (): Date => new Date(clock.t);
  const advance = (ms: number): void => {
    clock.t += ms;
  };
  const re = await startBlackbaudEmulator({
    now,
    subscriptionKey: SUBSCRIPTION_KEY,
    ratePerSecond: options.reRatePerSecond ?? 1000,
    ...(options.reDailyQuota !== undefined ? { dailyQuota: options.reDailyQuota } : {}),
    webhooks: { autoDeliver: false },
    logger: false,
  });
  const ccOptions = {
    now,
    rateLimitPerSecond: options.ccRateLimitPerSecond === undefined ? null : options.ccRateLimitPerSecond,
    ...(options.ccDailyQuota !== undefined ? { dailyQuota: options.ccDailyQuota } : {}),
    logger: false,
  };
  const ccMain = await startConstantContactEmulator(ccOptions);
  const ccAppeals = await startConstantContactEmulator(ccOptions);
  const testStore: TestStore = await backend.create({ clock: now });
  const store = testStore.store;

  const mainLists = await post<{ lists: { list_id: string; name: string }[] }>(
    ccMain.baseUrl,
    "/__emulator/seed",
    {
      lists: [{ name: "Newsletter" }, { name: "Events" }],
    },
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

  const raw: Record<string, any> = {
    connections: [
      { ...reConnectionConfig(re), webhooks: { enabled: true } },
      ccConnectionConfig("cc-main", ccMain),
      ccConnectionConfig("cc-appeals", ccAppeals),
    ],
    topics: [
      {
        key: "appeals",
        label: "Fundraising appeals",
        constructs: {
          "re-nxt": { type: "consent_category", name: "Appeals" },
          "cc-appeals": { type: "account" },
        },
      },
    ],
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
  };
  options.configure?.(raw);
  const config = ConcordConfigShapeSchema.parse(raw);
  const pair = config.pairs[0];
  if (!pair) throw new Error("no pair");

  const storeRefreshToken = async (connectionId: string): Promise<void> => {
    const base =
      connectionId === "re-nxt"
        ? re.baseUrl
        : connectionId === "cc-main"
          ? ccMain.baseUrl
          : ccAppeals.baseUrl;
    const token = await post<{ refresh_token: string }>(base, "/__emulator/token", { client_id: "concord" });
    const name = `${connectionId}.refresh_token`;
    const sealed = sealSecret(token.refresh_token, TEST_KEY, name);
    if (!sealed.ok) throw new Error(sealed.error.message);
    await store.credentials.put(name, sealed.value, TEST_KEY.id);
    // A renewed refresh token replaces the rotated tokens saved from the old grant.
    await store.credentials.remove(`${connectionId}.oauth`);
  };
  for (const id of ["re-nxt", "cc-main", "cc-appeals"]) await storeRefreshToken(id);

  const alerts: ConnectionAlert[] = [];
  const logs: string[] = [];
  const logger = createLogger({
    level: "info",
    destination: new Writable({
      write(chunk: Buffer, _enc, done) {
        logs.push(chunk.toString("utf8"));
        done();
      },
    }),
  });
  const health = connectionHealthTracker({
    store,
    logger,
    now,
    notify: async (a) => {
      alerts.push(a);
    },
  });
  const connections = new Map<string, OpenedConnection>();
  const reopen = (): void => {
    const opened = openConnections(config.connections, {
      store,
      env: TEST_ENV,
      key: TEST_KEY,
      health,
      now,
      sleep: async (ms: number) => {
        advance(ms);
        await new Promise((resolve) => setImmediate(resolve));
      },
    });
    for (const [id, c] of opened) connections.set(id, c);
  };
  reopen();

  const harness: SyncHarness = {
    store,
    config,
    pair,
    re,
    ccMain,
    ccAppeals,
    ccLists,
    connections,
    alerts,
    logs,
    clock,
    now,
    advance,
    reopen,
    sync: (opts = {}, extra = {}) => syncPair({ store, config, connections, now, ...extra }, pair, opts),
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
    storeRefreshToken,
    close: async () => {
      await Promise.all([re.close(), ccMain.close(), ccAppeals.close()]);
      await testStore.cleanup();
    },
  };
  return harness;
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
