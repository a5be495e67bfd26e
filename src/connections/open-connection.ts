/**
 * Opens a configured connection: its connector, its credentials, one shared call budget, and a
 * runtime that reports auth failures to connection health. The engine asks here for sessions.
 */
import type { Connection } from "../config/concord-config";
import type {
  CallBudget,
  ConnectionSettings,
  ConnectorDefinition,
  ConnectorRuntime,
  ConnectorSession,
} from "../connectors/connector";
import { RateLimiter } from "../connectors/http/rate-limiter";
import type { ConnectionHealthTracker } from "./connection-health";
import { connectionCredentials, type CredentialDeps } from "./connection-credentials";
import { connectorFor } from "../connectors/registry";

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
  definition: ConnectorDefinition;
  budget: CallBudget;
  /** A new session sharing the connection's budget and credentials. */
  session: () => ConnectorSession;
  /** Resolves once the connection's health reports so far are stored and alerted. */
  settled: () => Promise<void>;
  /** Runs `fn` and records the connection healthy when it succeeds without an auth failure. */
  healthy: <T extends { ok: boolean }>(result: T) => Promise<T>;
};

export function openConnection(connection: Connection, deps: OpenConnectionDeps): OpenedConnection {
  const definition = connectorFor(connection.system);
  if (!definition) throw new Error(`no connector for system ${connection.system}`);
  const budget = new RateLimiter({
    limits: {
      requests_per_second: connection.limits?.requests_per_second ?? definition.limits.requests_per_second,
      daily_quota: connection.limits?.daily_quota ?? definition.limits.daily_quota,
      quota_reset: definition.limits.quota_reset,
    },
    now: deps.now,
    sleep: deps.sleep,
  });
  const credentials = connectionCredentials(connection, deps);
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
  const settings: ConnectionSettings = {
    connection_id: connection.id,
    base_url: connection.base_url ?? "",
    ...(connection.token_url ? { token_url: connection.token_url } : {}),
    credentials,
    limits: {
      ...(connection.limits?.requests_per_second
        ? { requests_per_second: connection.limits.requests_per_second }
        : {}),
      ...(connection.limits?.daily_quota ? { daily_quota: connection.limits.daily_quota } : {}),
    },
  };
  return {
    connection,
    definition,
    budget,
    session: () => definition.connect(settings, runtime),
    settled: () => deps.health.settled(),
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
): Map<string, OpenedConnection> {
  return new Map(connections.map((c) => [c.id, openConnection(c, deps)]));
}
