/**
 * The one builder of emulated worlds, for the demo, the tests and the benchmarks alike: each
 * connection's system emulator started through the registry's manifest, a config naming them,
 * fresh credentials granted as an administrator connecting the account would give them (secrets
 * sealed into the store), and the connections opened as `concord serve` opens them. Nothing here
 * knows a vendor: seeds and acts are canonical (`emulator-kit/world.ts`) and each manifest turns
 * them into its system's own.
 */
import type { ConcordConfig, Connection } from "../config/concord-config";
import { formatConfigErrors, parseConfigValue } from "../config/load-config-file";
import { sealSecret, type SecretKey } from "../config/secret-box";
import type { RunningEmulator } from "../connectors/manifest";
import type { WorldAct, WorldActAnswer, WorldSeed, WorldSeeded } from "../connectors/emulator-kit/world";
import { manifestOf } from "../connectors/registry";
import {
  connectionHealthTracker,
  type ConnectionAlert,
  type ConnectionHealthTracker,
} from "../connections/connection-health";
import {
  flushConnections,
  openConnections,
  type ApiCall,
  type OpenedConnection,
} from "../connections/open-connection";
import { rotatedTokensName } from "../connections/connection-credentials";
import { createLogger, type Logger } from "../observability/logger";
import type { StoreSession } from "../store/ports";

/** One connection of the world, backed by its system's emulator. */
export type WorldConnection = {
  id: string;
  system: string;
  label?: string;
  /** Where its emulator listens; 0 or absent: a free port. */
  port?: number;
  /** The emulator's own settings (its limits, OAuth clients…), by its options' names. */
  emulator?: Record<string, unknown>;
  /** More of the connection's config entry (limits, poll_interval, webhooks, options). */
  config?: Record<string, unknown>;
};

/** Starts an emulator per connection; if one cannot start, those started are closed again. */
export async function startEmulators(
  connections: readonly Pick<WorldConnection, "id" | "system" | "port" | "emulator">[],
  options: { now?: () => Date; logger?: boolean } = {},
): Promise<Map<string, RunningEmulator>> {
  const started = new Map<string, RunningEmulator>();
  try {
    for (const c of connections)
      started.set(
        c.id,
        await manifestOf(c.system).emulator.start({
          ...(c.port !== undefined ? { port: c.port } : {}),
          ...(options.now !== undefined ? { now: options.now } : {}),
          logger: options.logger ?? false,
          ...(c.emulator !== undefined ? { settings: c.emulator } : {}),
        }),
      );
    return started;
  } catch (error) {
    await Promise.all([...started.values()].map((e) => e.close()));
    throw error;
  }
}

/**
 * Connects a configured connection to its emulator as an administrator would: a fresh grant for
 * the connection's own OAuth client (a plain `client_id`), each `{ stored }` reference sealed into
 * the store under its name, each `{ env }` reference's value set in `env`. Tokens the vendor rotated
 * for the connection's previous grant are dropped. Returns what was granted.
 */
export async function grantCredentials(
  connection: Connection,
  emulator: RunningEmulator,
  target: { store: StoreSession; key: SecretKey; env?: Record<string, string | undefined> },
): Promise<Record<string, string>> {
  const clientId = connection.credentials["client_id"];
  const grant = await emulator.grant(clientId?.kind === "plain" ? { client_id: clientId.value } : {});
  for (const [name, ref] of Object.entries(connection.credentials)) {
    const value = grant[name];
    if (value === undefined) continue;
    if (ref.kind === "env" && target.env !== undefined) target.env[ref.name] = value;
    if (ref.kind !== "stored") continue;
    const sealed = sealSecret(value, target.key, ref.name);
    if (!sealed.ok) throw new Error(sealed.error.message);
    await target.store.credentials.put(ref.name, sealed.value, target.key.id);
  }
  await target.store.credentials.remove(rotatedTokensName(connection.id));
  return grant;
}

export type EmulatedWorldOptions = {
  connections: readonly WorldConnection[];
  /** The rest of the config file (topics, pairs, notifications, server), as a file would say it. */
  config?: Record<string, unknown>;
  /** Edits the whole raw config before it is validated (a test's variations). */
  configure?: (raw: Record<string, unknown>) => void;
  store: StoreSession;
  key: SecretKey;
  /** The clock every emulator and the engine read (a test's virtual one). */
  now?: () => Date;
  /** How the engine waits; a test's clock moves instead. */
  sleep?: (ms: number) => Promise<void>;
  logger?: Logger;
  /** Alert channels beyond the log. */
  notify?: (alert: ConnectionAlert) => Promise<void>;
  onApiCall?: (connectionId: string, call: ApiCall) => void;
};

export type EmulatedWorld = {
  config: ConcordConfig;
  emulators: ReadonlyMap<string, RunningEmulator>;
  connections: Map<string, OpenedConnection>;
  health: ConnectionHealthTracker;
  /** The credentials each connection was last granted (tests check none of them is ever logged). */
  grants: ReadonlyMap<string, Readonly<Record<string, string>>>;
  emulator: (connectionId: string) => RunningEmulator;
  /** Opens every connection again (a new process): budgets and sessions start afresh. */
  reopen: () => void;
  /** The administrator connects the account again: a fresh grant replaces the stored credentials. */
  regrant: (connectionId: string) => Promise<void>;
  seed: (connectionId: string, world: WorldSeed) => Promise<WorldSeeded>;
  act: (connectionId: string, act: WorldAct) => Promise<WorldActAnswer>;
  close: () => Promise<void>;
};

/**
 * The config entries of world connections, as a config file would say them: each emulator's URLs,
 * and every credential by reference to the store (`<connection>.<credential>`), where
 * `grantCredentials` seals what the emulator grants.
 */
export function worldConnectionEntries(
  connections: readonly WorldConnection[],
  emulators: ReadonlyMap<string, RunningEmulator>,
): Record<string, unknown>[] {
  return connections.map((c) => {
    const emulator = emulators.get(c.id);
    if (emulator === undefined) throw new Error(`no emulator for connection ${c.id}`);
    return connectionEntry(c, emulator);
  });
}

function connectionEntry(c: WorldConnection, emulator: RunningEmulator): Record<string, unknown> {
  // Every credential is sealed in the store, the secret and the plain alike.
  const credentials: Record<string, unknown> = {};
  for (const name of Object.keys(manifestOf(c.system).credentials))
    credentials[name] = { stored: `${c.id}.${name}` };
  return {
    id: c.id,
    system: c.system,
    ...(c.label !== undefined ? { label: c.label } : {}),
    base_url: emulator.base_url,
    token_url: emulator.token_url,
    credentials,
    ...c.config,
  };
}

/** Starts the world: emulators, config, granted credentials, opened connections. */
export async function startEmulatedWorld(options: EmulatedWorldOptions): Promise<EmulatedWorld> {
  const emulators = await startEmulators(options.connections, {
    ...(options.now !== undefined ? { now: options.now } : {}),
  });
  try {
    const raw: Record<string, unknown> = {
      ...options.config,
      connections: worldConnectionEntries(options.connections, emulators),
    };
    options.configure?.(raw);
    const parsed = parseConfigValue(raw, "emulated world");
    if (!parsed.ok) throw new Error(formatConfigErrors(parsed.errors));
    const config = parsed.config;
    const emulator = (id: string): RunningEmulator => {
      const found = emulators.get(id);
      if (!found) throw new Error(`no emulator for connection ${id}`);
      return found;
    };
    const grants = new Map<string, Readonly<Record<string, string>>>();
    const regrant = async (id: string): Promise<void> => {
      const connection = config.connections.find((c) => c.id === id);
      if (!connection) throw new Error(`no connection ${id}`);
      grants.set(
        id,
        await grantCredentials(connection, emulator(id), { store: options.store, key: options.key }),
      );
    };
    for (const c of config.connections) await regrant(c.id);

    const now = options.now ?? (() => new Date());
    const logger = options.logger ?? createLogger({ level: "silent" });
    const health = connectionHealthTracker({
      store: options.store,
      logger,
      now,
      ...(options.notify !== undefined ? { notify: options.notify } : {}),
    });
    const connections = new Map<string, OpenedConnection>();
    const reopen = (): void => {
      const opened = openConnections(
        config.connections,
        {
          store: options.store,
          env: {},
          key: options.key,
          health,
          now,
          sleep: options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms))),
          ...(options.onApiCall !== undefined ? { onApiCall: options.onApiCall } : {}),
        },
        config.topics,
      );
      for (const [id, c] of opened) connections.set(id, c);
    };
    reopen();
    return {
      config,
      emulators,
      connections,
      health,
      grants,
      emulator,
      reopen,
      regrant,
      seed: (id, world) => emulator(id).seed(world),
      act: (id, act) => emulator(id).act(act),
      close: async () => {
        // The store is the caller's and still open: what the connections hold in memory is kept.
        await flushConnections(connections.values(), logger);
        await Promise.all([...emulators.values()].map((e) => e.close()));
      },
    };
  } catch (error) {
    await Promise.all([...emulators.values()].map((e) => e.close()));
    throw error;
  }
}
