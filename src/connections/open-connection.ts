/**
 * Opens a configured connection: its connector, its credentials, one shared call budget, and a
 * runtime that reports auth failures to connection health. The engine asks here for sessions.
 */
import type { Connection, Topic } from "../config/concord-config";
import type {
  CallBudget,
  ConnectionSettings,
  ConnectorRuntime,
  ConnectorSession,
} from "../connectors/connector";
import { connectionLimits, RateLimiter } from "../connectors/http/rate-limiter";
import type { ConnectorManifest, WebhookSupport } from "../connectors/manifest";
import type { ConnectionHealthTracker } from "./connection-health";
import {
  connectionCredentials,
  type ConnectionCredentials,
  type CredentialDeps,
} from "./connection-credentials";
import { manifestOf } from "../connectors/registry";
import { errorMessage } from "../core/error-code";
import type { CallWindow } from "../core/call-window";

export type OpenConnectionDeps = CredentialDeps & {
  health: ConnectionHealthTracker;
  now: () => Date;
  sleep: (ms: number) => Promise<void>;
  /** Each vendor call (metrics; the crash-safety test stops the process at one). */
  onApiCall?: (connectionId: string, call: ApiCall) => void;
};

export type ApiCall = Parameters<NonNullable<ConnectorRuntime["onApiCall"]>>[0];

export type OpenedConnection = {
  connection: Connection;
  manifest: ConnectorManifest;
  /** The connection's credentials: configured, renewed, and replaced by a new grant. */
  credentials: ConnectionCredentials;
  /** Where its API and token endpoint are; undefined where the system's client finds them itself. */
  endpoint: { base_url: string | undefined; token_url: string | undefined };
  budget: CallBudget;
  /** A new session sharing the connection's budget and credentials. */
  session: () => ConnectorSession;
  /** Resolves once the connection's health reports so far are stored and alerted. */
  settled: () => Promise<void>;
  /**
   * Makes sure the system pushes changes to the receiver (the manifest's `register`), through the
   * connection's own budget and credentials; undefined where the system has no such setup.
   */
  registerWebhooks?: (receiver: {
    url: string;
    secret: string;
  }) => ReturnType<NonNullable<WebhookSupport["register"]>>;
  /** Runs `fn` and records the connection healthy when it succeeds without an auth failure. */
  healthy: <T extends { ok: boolean }>(result: T) => Promise<T>;
  /**
   * Saves what still waits in memory, once more and for the last time (at stop): the calls counted
   * since the budget's last save, and renewed tokens; false when a token could not be saved.
   */
  flush: () => Promise<boolean>;
};

/**
 * `topics`: the config's topics; the constructs they stand for on this connection are handed to the
 * connector, which reads and writes them.
 */
export function openConnection(
  connection: Connection,
  deps: OpenConnectionDeps,
  topics: readonly Topic[] = [],
): OpenedConnection {
  const manifest = manifestOf(connection.system);
  // The count survives a restart: a process started again in the same quota period goes on from it.
  const budget = new RateLimiter({
    limits: connectionLimits(manifest.limits, connection.limits),
    now: deps.now,
    sleep: deps.sleep,
    persist: {
      load: () => deps.store.budgets.get(connection.id),
      add: (change) => deps.store.budgets.add(connection.id, change),
      // Workers on PostgreSQL call the vendor at once for the same connection: they keep to its
      // per-second rate together. A SQLite store serves one process, whose own window is enough.
      ...(deps.store.dialect === "postgres"
        ? {
            reserve: (now_ms: number, window: CallWindow) =>
              deps.store.budgets.reserveCall(connection.id, { now_ms, window }),
          }
        : {}),
      onError: (error) =>
        deps.warn?.(
          `The API budget of connection "${connection.id}" could not be kept in the store (${errorMessage(error)}); it counts on in memory.`,
        ),
    },
  });
  const credentials = connectionCredentials(connection, {
    ...deps,
    urgent:
      deps.urgent ??
      ((alert) => {
        deps.health.urgent(alert);
      }),
  });
  const runtime: ConnectorRuntime = {
    now: deps.now,
    sleep: deps.sleep,
    budget,
    onAuthFailure: (error) => {
      void deps.health.authFailed(connection.id, error);
    },
    ...(deps.onApiCall
      ? {
          onApiCall: (call: ApiCall) => {
            deps.onApiCall?.(connection.id, call);
          },
        }
      : {}),
  };
  // Where the API is: the config's URLs (an emulator, a region), else the manifest's fixed ones. A
  // system whose API is found from its credentials or token answer resolves it in its own client.
  const fixed = manifest.endpoints.kind === "static" ? manifest.endpoints : undefined;
  const base_url = connection.base_url ?? fixed?.base_url;
  const token_url = connection.token_url ?? fixed?.token_url;
  // Where an administrator's grant is exchanged (Connect in the UI): the system's token endpoint.
  const grant_token_url = connection.token_url ?? manifest.endpoints.token_url;
  const settings: ConnectionSettings = {
    connection_id: connection.id,
    ...(base_url !== undefined ? { base_url } : {}),
    ...(token_url !== undefined ? { token_url } : {}),
    credentials,
    limits: {
      ...(connection.limits.requests_per_second !== undefined
        ? { requests_per_second: connection.limits.requests_per_second }
        : {}),
      ...(connection.limits.daily_quota !== undefined ? { daily_quota: connection.limits.daily_quota } : {}),
      ...(connection.limits.request_timeout !== undefined
        ? { request_timeout_ms: connection.limits.request_timeout }
        : {}),
    },
    options: connection.options,
    constructs: topics.flatMap((t) => {
      const c = t.constructs[connection.id];
      return c === undefined ? [] : [c];
    }),
  };
  const register = manifest.webhooks?.register;
  return {
    connection,
    manifest,
    endpoint: { base_url, token_url: grant_token_url },
    credentials,
    budget,
    session: () => manifest.connect(settings, runtime),
    ...(register !== undefined
      ? {
          registerWebhooks: (receiver: { url: string; secret: string }) =>
            register(settings, runtime, receiver),
        }
      : {}),
    settled: () => deps.health.settled(),
    flush: async () => {
      await budget.flush();
      return credentials.flush({ final: true });
    },
    healthy: async (result) => {
      if (result.ok) await deps.health.succeeded(connection.id);
      return result;
    },
  };
}

/** Opens every configured connection with the same dependencies (one health tracker, one clock). */
export function openConnections(
  connections: readonly Connection[],
  deps: OpenConnectionDeps,
  topics: readonly Topic[] = [],
): Map<string, OpenedConnection> {
  return new Map(connections.map((c) => [c.id, openConnection(c, deps, topics)]));
}

/**
 * Flushes every connection before the store closes (see `flush`), logging each whose renewed token
 * could not be saved: that connection must be authorised again.
 */
export async function flushConnections(
  connections: Iterable<OpenedConnection>,
  logger: { error: (fields: object, message: string) => void },
): Promise<void> {
  for (const opened of connections)
    if (!(await opened.flush()))
      logger.error(
        { connection: opened.connection.id },
        `the renewed token of connection ${opened.connection.id} could not be saved before stopping: authorise the connection again`,
      );
}
