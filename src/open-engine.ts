/**
 * Everything a sync, reconcile or explain run needs, opened from the environment and the config
 * file: the store, the validated config, one opened connection per configured connection (sharing
 * health tracking and a redacting logger), and a way to close it all.
 */
import { join } from "node:path";
import type { ConcordConfig, Pair } from "./config/concord-config";
import { formatConfigErrors, loadConfigFile } from "./config/load-config-file";
import type { Env } from "./config/load-env";
import { createLogger, type Logger } from "./observability/logger";
import { ledgerSealer } from "./ledger/ledger-seal";
import { openStore } from "./store/open-store";
import type { Store } from "./store/ports";
import { alertNotifier } from "./notifications/alert-channels";
import {
  connectionHealthTracker,
  type ConnectionAlert,
  type ConnectionHealthTracker,
} from "./connections/connection-health";
import {
  flushConnections,
  openConnections,
  type ApiCall,
  type OpenedConnection,
} from "./connections/open-connection";
import type { SyncDeps } from "./runs/sync-pair";
import { linkSigner } from "./runs/personal-links";

export type EngineContext = {
  store: Store;
  config: ConcordConfig;
  connections: Map<string, OpenedConnection>;
  logger: Logger;
  now: () => Date;
  /** Connection health and problems: each alerted once on every configured channel. */
  health: ConnectionHealthTracker;
  /** The pairs to run: all, or the one named (undefined when no pair has that id). */
  pairs: (id?: string) => Pair[] | undefined;
  syncDeps: () => SyncDeps;
  close: () => Promise<void>;
};

export type EngineContextResult =
  | { ok: true; context: EngineContext }
  | { ok: false; code: "config_missing" | "config_invalid"; message: string };

export type EngineContextOptions = {
  env: Env;
  /** The process environment, for `{ env: … }` secret references. */
  processEnv: Readonly<Record<string, string | undefined>>;
  configFile: string | undefined;
  logger?: Logger;
  /** Alert channels beyond the log (webhook URLs, email); default: those the config's notifications name. */
  notify?: (config: ConcordConfig, logger: Logger, store: Store) => (alert: ConnectionAlert) => Promise<void>;
  onApiCall?: (connectionId: string, call: ApiCall) => void;
  /** PostgreSQL pool size (default 10): a worker needs more, one per job it runs at once. */
  poolSize?: number;
};

export async function openEngineContext(options: EngineContextOptions): Promise<EngineContextResult> {
  const file = options.configFile ?? options.env.CONCORD_CONFIG;
  if (!file) {
    return {
      ok: false,
      code: "config_missing",
      message:
        "No config file: pass --config FILE or set CONCORD_CONFIG (see examples/concord.example.yaml).",
    };
  }
  const loaded = await loadConfigFile(file);
  if (!loaded.ok) return { ok: false, code: "config_invalid", message: formatConfigErrors(loaded.errors) };
  const config = loaded.config;
  const logger = options.logger ?? createLogger({ level: options.env.LOG_LEVEL });
  const store = await openStore({
    url: options.env.DATABASE_URL,
    schema: options.env.DATABASE_SCHEMA,
    pool_size: options.poolSize,
    file: join(options.env.CONCORD_DATA_DIR, "concord.db"),
    // Every ledger row is sealed under a key the database does not hold (ADR 22).
    ledger_sealer:
      options.env.CONCORD_SECRET_KEY === undefined ? undefined : ledgerSealer(options.env.CONCORD_SECRET_KEY),
  });
  const now = (): Date => new Date();
  const notify =
    options.notify?.(config, logger, store) ??
    alertNotifier(config.notifications, {
      logger,
      secrets: {
        env: options.processEnv,
        key: options.env.CONCORD_SECRET_KEY,
        stored: async (name) => (await store.credentials.get(name))?.ciphertext,
      },
    }).notify;
  const health = connectionHealthTracker({
    store,
    logger,
    now,
    notify,
    public_url: config.server.public_url,
  });
  const connections = openConnections(
    config.connections,
    {
      store,
      env: options.processEnv,
      key: options.env.CONCORD_SECRET_KEY,
      health,
      now,
      sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
      warn: (message) => {
        logger.warn(message);
      },
      ...(options.onApiCall ? { onApiCall: options.onApiCall } : {}),
    },
    config.topics,
  );
  // Personal links written into platform fields are signed like every personal link.
  const signer = linkSigner(options.env.CONCORD_SECRET_KEY, config);
  const links = signer.ok ? { links: signer.value } : {};
  return {
    ok: true,
    context: {
      store,
      config,
      connections,
      logger,
      now,
      health,
      pairs: (id) => {
        if (id === undefined) return config.pairs;
        const found = config.pairs.filter((p) => p.id === id);
        return found.length > 0 ? found : undefined;
      },
      syncDeps: () => ({ store, config, connections, now, ...links }),
      close: async () => {
        // Budget counts and renewed tokens still in memory are kept before the store closes.
        await flushConnections(connections.values(), logger);
        await store.close();
      },
    },
  };
}
