/**
 * Connection health: an auth failure marks the connection broken (with why) and alerts the
 * operator on every configured channel; a later successful call marks it ok again.
 */
import type { ConnectorError } from "../connectors/connector";
import type { Logger } from "../observability/logger";
import type { StoreSession } from "../store/ports";

/**
 * What the operator is told: a connection broken or working again (credentials), or a problem
 * (`warning`: a quota spent, an outage, a stuck opt-out, a legal clock, a lost webhook subscription)
 * and its end (`resolved`). Each is sent once per cause, with a link to the UI page that fixes it.
 */
export type ConnectionAlert = {
  connection_id: string;
  status: "broken" | "ok" | "warning" | "resolved";
  code: string;
  message: string;
  at: string;
  /** The UI page that shows and fixes it, when `server.public_url` is set. */
  link?: string;
};

/** A problem to raise once (by `key`) until it is cleared. */
export type Problem = {
  key: string;
  connection_id: string;
  code: string;
  message: string;
  /** Path of the UI page that fixes it (default: the overview, which shows every connection). */
  path?: string;
};

export type HealthDeps = {
  store: StoreSession;
  logger: Logger;
  now: () => Date;
  /** Extra alert channels (webhook URLs, email); the log is always one. */
  notify?: (alert: ConnectionAlert) => Promise<void>;
  /** `server.public_url`: alerts link to the UI page that fixes them. */
  public_url?: string | undefined;
};

export type ConnectionHealthTracker = {
  authFailed: (connectionId: string, error: ConnectorError) => Promise<void>;
  succeeded: (connectionId: string) => Promise<void>;
  /** Resolves once every report made so far is stored (alerts are sent in the background). */
  settled: () => Promise<void>;
  /** Resolves once every alert sent so far was delivered or given up (shutdown, tests). */
  delivered: () => Promise<void>;
  /** Raises a problem: alerted once per `key` until cleared, even across restarts. */
  raise: (problem: Problem) => Promise<void>;
  /** The problem's cause is gone: alerted once when it was open. */
  clear: (key: string, message: string) => Promise<void>;
  /**
   * Alerts now, without the store (a problem of the store itself, such as a renewed token that
   * cannot be saved); the caller raises it once and resolves it once.
   */
  urgent: (alert: Pick<ConnectionAlert, "connection_id" | "status" | "code" | "message">) => void;
};

export function connectionHealthTracker(deps: HealthDeps): ConnectionHealthTracker {
  const linkTo = (path: string): { link?: string } =>
    deps.public_url === undefined ? {} : { link: new URL(path, deps.public_url).toString() };
  const alert = (a: ConnectionAlert): void => {
    if (a.status === "broken") {
      deps.logger.error(
        { connection: a.connection_id, code: a.code },
        `connection ${a.connection_id} is broken: ${a.message}`,
      );
    } else if (a.status === "warning") {
      deps.logger.warn({ connection: a.connection_id, code: a.code }, `${a.connection_id}: ${a.message}`);
    } else if (a.status === "resolved") {
      deps.logger.info({ connection: a.connection_id, code: a.code }, `${a.connection_id}: ${a.message}`);
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
    urgent: (a) => {
      alert({ ...a, at: deps.now().toISOString(), ...(a.status === "warning" ? linkTo("/") : {}) });
    },
    settled: async () => {
      await queue;
    },
    delivered: async () => {
      await Promise.all([...deliveries]);
    },
    authFailed: serial(async (connectionId: string, error: ConnectorError) => {
      const reason = `${error.code}: ${error.message} Renew the connection's credentials; queued work waits and resumes then.`;
      // Of several processes finding it broken at once, the one whose report changed it alerts.
      const reported = await deps.store.health.report(connectionId, "broken", reason);
      if (reported.previous !== "broken") {
        alert({
          connection_id: connectionId,
          status: "broken",
          code: error.code,
          message: reason,
          at: deps.now().toISOString(),
          // The overview with this connection's Reconnect button ready.
          ...linkTo(`/?reconnect=${encodeURIComponent(connectionId)}`),
        });
      }
    }),
    raise: serial(async (problem: Problem) => {
      const opened = await deps.store.alerts.open({
        key: problem.key,
        connection_id: problem.connection_id,
        code: problem.code,
        message: problem.message,
      });
      if (!opened) return;
      alert({
        connection_id: problem.connection_id,
        status: "warning",
        code: problem.code,
        message: problem.message,
        at: deps.now().toISOString(),
        ...linkTo(problem.path ?? "/"),
      });
    }),
    clear: serial(async (key: string, message: string) => {
      const open = await deps.store.alerts.get(key);
      if (open === undefined || open.resolved_at !== null) return;
      // Resolved by exactly one process: the others find it resolved already and say nothing.
      if (!(await deps.store.alerts.resolve(key))) return;
      alert({
        connection_id: open.connection_id ?? "",
        status: "resolved",
        code: open.code,
        message,
        at: deps.now().toISOString(),
      });
    }),
    succeeded: serial(async (connectionId: string) => {
      const before = await deps.store.health.get(connectionId);
      if (before?.status === "ok") return;
      const reported = await deps.store.health.report(connectionId, "ok", null);
      if (reported.previous === "broken") {
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
