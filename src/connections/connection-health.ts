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
  /** Resolves once every report made so far is stored (alerts are sent in the background). */
  settled: () => Promise<void>;
  /** Resolves once every alert sent so far was delivered or given up (shutdown, tests). */
  delivered: () => Promise<void>;
};

export function connectionHealthTracker(deps: HealthDeps): ConnectionHealthTracker {
  const alert = (a: ConnectionAlert): void => {
    if (a.status === "broken") {
      deps.logger.error(
        { connection: a.connection_id, code: a.code },
        `connection ${a.connection_id} is broken: ${a.message}`,
      );
    } else {
      deps.logger.info({ connection: a.connection_id }, `connection ${a.connection_id} works again`);
    }
    // Delivered in the background: a slow or dead alert channel must not hold up the work.
    const delivery = deps.notify?.(a);
    if (delivery) {
      const tracked: Promise<void> = delivery
        .catch((error: unknown) => {
          deps.logger.warn({ err: error }, "an alert channel failed");
        })
        .finally(() => deliveries.delete(tracked));
      deliveries.add(tracked);
    }
  };
  const deliveries = new Set<Promise<void>>();
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
    delivered: async () => {
      await Promise.all([...deliveries]);
    },
    authFailed: serial(async (connectionId: string, error: ConnectorError) => {
      const before = await deps.store.health.get(connectionId);
      const reason = `${error.code}: ${error.message} Renew the connection's credentials; queued work waits and resumes then.`;
      await deps.store.health.report(connectionId, "broken", reason);
      if (before?.status !== "broken") {
        alert({
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
        alert({
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
