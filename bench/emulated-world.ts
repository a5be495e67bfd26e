/**
 * Bench support: a fresh store (SQLite in the bench's temporary folder, or an isolated PostgreSQL
 * schema) and the emulated world the one world builder makes (src/emulated-world/): one Raiser's
 * Edge NXT and one Constant Contact emulator on loopback, the pair's config with credentials sealed
 * in the store, its connections opened on the real clock as `concord serve` opens them. Everything
 * it starts is closed by `close()`, also after a failure.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { sql } from "kysely";
import type { ConcordConfig, Limits, Pair } from "../src/config/concord-config";
import { secretKeyFromBytes, type SecretKey } from "../src/config/secret-box";
import type {
  BlackbaudEmulatorOptions,
  RunningBlackbaudEmulator,
} from "../src/connectors/blackbaud-renxt/emulator/blackbaud-emulator";
import type {
  ConstantContactEmulatorOptions,
  StartedConstantContactEmulator,
} from "../src/connectors/constant-contact/emulator/constant-contact-emulator";
import type {
  MailchimpEmulatorOptions,
  StartedMailchimpEmulator,
} from "../src/connectors/mailchimp/emulator/mailchimp-emulator";
import type { OpenedConnection } from "../src/connections/open-connection";
import { startEmulatedWorld as buildWorld } from "../src/emulated-world/emulated-world";
import { createLogger, type Logger } from "../src/observability/logger";
import { openStore } from "../src/store/open-store";
import type { Store } from "../src/store/ports";

export const RE_LIST_ID = "list-bench-newsletter";
export const RE_LIST_NAME = "Monthly newsletter";
export const CC_LIST_NAME = "Newsletter";
export const PAIR_ID = "re-cc";
export const RE_ID = "re-nxt";
export const CC_ID = "cc-main";
export const MC_ID = "mc-main";

const SUBSCRIPTION_KEY = "bench-subscription-key";

export type BenchStoreOptions = {
  pg: boolean;
  databaseUrl?: string | undefined;
  tmpDir: string;
};

export type BenchStore = {
  store: Store;
  /** "SQLite" or "PostgreSQL", for the notes. */
  label: string;
  /** Closes the store and deletes what it made (the SQLite folder, the PostgreSQL schema). */
  cleanup: () => Promise<void>;
};

/** A fresh, migrated store: SQLite in a folder of its own under `tmpDir`, or a new PostgreSQL schema. */
export async function openBenchStore(options: BenchStoreOptions): Promise<BenchStore> {
  if (options.pg) {
    const url = options.databaseUrl;
    if (url === undefined || url === "") throw new Error("the PostgreSQL bench needs a database URL");
    const schema = `bench_${randomBytes(6).toString("hex")}`;
    const store = await openStore({ url, schema, pool_size: 5 });
    return {
      store,
      label: "PostgreSQL",
      cleanup: async () => {
        try {
          await sql`drop schema if exists ${sql.id(schema)} cascade`.execute(store.db);
        } finally {
          await store.close();
        }
      },
    };
  }
  const dir = mkdtempSync(join(options.tmpDir, "store-"));
  const store = await openStore({ file: join(dir, "concord.db") });
  return {
    store,
    label: "SQLite",
    cleanup: async () => {
      try {
        await store.close();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

export type WorldOptions = {
  store: BenchStoreOptions;
  re?: Omit<BlackbaudEmulatorOptions, "subscriptionKey" | "now">;
  cc?: Omit<ConstantContactEmulatorOptions, "now">;
  /** Concord's own call limits for each connection (`connections[].limits`). */
  reLimits?: Limits;
  ccLimits?: Limits;
  /** `connections[cc-main].poll_interval`, e.g. "1s". */
  ccPollInterval?: string;
  /** Accept Raiser's Edge NXT webhooks with this secret (`webhooks.secret`). */
  webhookSecret?: string;
};

export type EmulatedWorld = {
  store: Store;
  storeLabel: string;
  config: ConcordConfig;
  pair: Pair;
  re: RunningBlackbaudEmulator;
  cc: StartedConstantContactEmulator;
  ccListId: string;
  connections: Map<string, OpenedConnection>;
  /** What `{ env: … }` references in the config resolve from. */
  env: Record<string, string>;
  key: SecretKey;
  logger: Logger;
  /** Subscribes a receiver to Raiser's Edge NXT's constituent events; resolves whether they provisioned. */
  subscribeWebhooks: (receiverUrl: string) => Promise<boolean>;
  close: () => Promise<void>;
};

/** The world with a Mailchimp audience in place of the Constant Contact account. */
export type MailchimpWorld = Omit<EmulatedWorld, "cc" | "ccListId"> & { mc: StartedMailchimpEmulator };

/** The platform the world's pair writes to: a Constant Contact account (default) or a Mailchimp audience. */
type PlatformChoice =
  | { system: "constant-contact"; emulator?: Omit<ConstantContactEmulatorOptions, "now"> }
  | { system: "mailchimp"; emulator?: Omit<MailchimpEmulatorOptions, "now"> };

/** Starts the store and the emulated world (the one world builder), the connections opened on the real clock. */
export async function startEmulatedWorld(options: WorldOptions): Promise<EmulatedWorld> {
  const { world, platform } = await startWorld(options, {
    system: "constant-contact",
    ...(options.cc !== undefined ? { emulator: options.cc } : {}),
  });
  const cc = platform as StartedConstantContactEmulator;
  try {
    const seededLists = await postJson<{ lists: { list_id: string; name: string }[] }>(
      `${cc.baseUrl}/__emulator/seed`,
      { lists: [{ name: CC_LIST_NAME }] },
    );
    return { ...world, cc, ccListId: seededLists.lists[0]?.list_id ?? "" };
  } catch (error) {
    await world.close().catch(() => undefined);
    throw error;
  }
}

/** The same world with a Mailchimp audience (its tag "Newsletter" receives the list) in place of Constant Contact. */
export async function startMailchimpWorld(
  options: Omit<WorldOptions, "cc" | "ccLimits" | "ccPollInterval"> & {
    mc?: Omit<MailchimpEmulatorOptions, "now">;
  },
): Promise<MailchimpWorld> {
  const { world, platform } = await startWorld(options, {
    system: "mailchimp",
    ...(options.mc !== undefined ? { emulator: options.mc } : {}),
  });
  const mc = platform as StartedMailchimpEmulator;
  try {
    await postJson(`${mc.baseUrl}/__emulator/seed`, {
      audience: { id: "a1b2c3d4e5", name: "Supporters", tags: [CC_LIST_NAME] },
    });
    return { ...world, mc };
  } catch (error) {
    await world.close().catch(() => undefined);
    throw error;
  }
}

async function startWorld(
  options: WorldOptions,
  choice: PlatformChoice,
): Promise<{ world: Omit<EmulatedWorld, "cc" | "ccListId">; platform: unknown }> {
  const platformId = choice.system === "mailchimp" ? MC_ID : CC_ID;
  const closers: (() => Promise<void>)[] = [];
  const close = async (): Promise<void> => {
    const errors: unknown[] = [];
    for (const fn of closers.reverse()) {
      try {
        await fn();
      } catch (error) {
        errors.push(error);
      }
    }
    closers.length = 0;
    if (errors.length > 0) throw errors[0];
  };
  try {
    const opened = await openBenchStore(options.store);
    closers.push(opened.cleanup);
    const store = opened.store;
    // The webhook secret is the one thing the world does not grant: the receiver's URL carries it.
    const env: Record<string, string> = {
      ...(options.webhookSecret !== undefined ? { RE_WEBHOOK_SECRET: options.webhookSecret } : {}),
    };
    const key = secretKeyFromBytes(randomBytes(32));
    const logger = createLogger({ level: "silent" });
    const world = await buildWorld({
      connections: [
        {
          id: RE_ID,
          system: "blackbaud-renxt",
          emulator: { ...options.re, subscriptionKey: SUBSCRIPTION_KEY },
          config: {
            ...(options.reLimits ? { limits: options.reLimits } : {}),
            webhooks:
              options.webhookSecret !== undefined
                ? { enabled: true, secret: { env: "RE_WEBHOOK_SECRET" } }
                : { enabled: false },
          },
        },
        {
          id: platformId,
          system: choice.system,
          ...(choice.emulator !== undefined ? { emulator: choice.emulator } : {}),
          config: {
            ...(options.ccLimits ? { limits: options.ccLimits } : {}),
            ...(options.ccPollInterval !== undefined ? { poll_interval: options.ccPollInterval } : {}),
          },
        },
      ],
      config: {
        pairs: [
          {
            id: PAIR_ID,
            crm: RE_ID,
            platforms: [{ connection: platformId }],
            audiences: [
              {
                crm_list: { id: RE_LIST_ID },
                platform: platformId,
                platform_list: { name: CC_LIST_NAME },
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
      // The list the audience names must exist before the config's lists are looked up.
      store,
      key,
      logger,
    });
    closers.push(world.close);
    const re = world.emulator(RE_ID).native as RunningBlackbaudEmulator;
    const platform = world.emulator(platformId).native;
    await postJson(`${re.baseUrl}/__emulator/seed`, { lists: [{ id: RE_LIST_ID, name: RE_LIST_NAME }] });
    const pair = world.config.pairs[0];
    if (!pair) throw new Error("the bench config has no pair");
    return {
      platform,
      world: {
        store,
        storeLabel: opened.label,
        config: world.config,
        pair,
        re,
        connections: world.connections,
        env,
        key,
        logger,
        subscribeWebhooks: (receiver) => {
          const subscribe = world.emulator(RE_ID).subscribe;
          if (subscribe === undefined || options.webhookSecret === undefined)
            throw new Error("the world was started without webhooks");
          return subscribe(receiver, options.webhookSecret);
        },
        close,
      },
    };
  } catch (error) {
    await close().catch(() => undefined);
    throw error;
  }
}

/** POSTs JSON; anything but 2xx throws with the answer. */
export async function postJson<T = unknown>(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<T> {
  const res = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  if (res.status >= 300) throw new Error(`${url} answered ${res.status}: ${text.slice(0, 500)}`);
  return (text === "" ? undefined : JSON.parse(text)) as T;
}
