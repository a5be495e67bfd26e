/**
 * Connection health: an auth failure marks the connection broken (with why) and alerts the
 * operator on every configured channel; a later successful call marks it ok again.
 */
import type { ConnectorError } from "../connectors/connector";
import type { Logger } from "../observability/logger";
import type { StoreSession } from "../store/ports";

export type ConnectionAlert = {
  connection_id: string;
  status: "broken" | "ok";
  code: string;
  message: string;
  at: string;
};

export type HealthDeps = {
  store: StoreSession;
  logger: Logger;
  now: () => Date;
  /** Extra alert channels (webhook URLs, email); the log is always one. */
  notify?: (alert: ConnectionAlert) => Promise<void>;
};

export type ConnectionHealthTracker = {
  authFailed: (connectionId: string, error: ConnectorError) => Promise<void>;
  succeeded: (connectionId: string) => Promise<void>;
  /** Resolves once every report made so far is stored (and alerted). */
  settled: () => Promise<void>;
};

export function connectionHealthTracker(deps: HealthDeps): ConnectionHealthTracker {
  const alert = async (a: ConnectionAlert): Promise<void> => {
    if (a.status === "broken") {
      deps.logger.error(
        { connection: a.connection_id, code: a.code },
        `connection ${a.connection_id} is broken: ${a.message}`,
      );
    } else {
      deps.logger.info({ connection: a.connection_id }, `connection ${a.connection_id} works again`);
    }
    await deps.notify?.(a);
  };
  // Reports about one connection are applied in order, so concurrent failures alert once.
  let queue: Promise<unknown> = Promise.resolve();
  const serial =
    <A extends unknown[]>(fn: (...args: A) => Promise<void>) =>
    (...args: A): Promise<void> => {
      const next = queue.then(() => fn(...args));
      queue = next.catch(() => undefined);
      return next;
    };
  return {
    settled: async () => {
      await queue;
    },
    authFailed: serial(async (connectionId: string, error: ConnectorError) => {
      const before = await deps.store.health.get(connectionId);
      const reason = `${error.code}: ${error.message} Renew the connection's credentials; queued work waits and resumes then.`;
      await deps.store.health.report(connectionId, "broken", reason);
      if (before?.status !== "broken") {
        await alert({
          connection_id: connectionId,
          status: "broken",
          code: error.code,
          message: reason,
          at: deps.now().toISOString(),
        });
      }
    }),
    succeeded: serial(async (connectionId: string) => {
      const before = await deps.store.health.get(connectionId);
      if (before?.status === "ok") return;
      await deps.store.health.report(connectionId, "ok", null);
      if (before?.status === "broken") {
        await alert({
          connection_id: connectionId,
          status: "ok",
          code: "recovered",
          message: "credentials accepted again",
          at: deps.now().toISOString(),
        });
      }
    }),
  };
}
