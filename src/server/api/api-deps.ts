/** What the API routes run on: the engine's store, config, connections and runtime, and the sign-in settings. */
import type { MetricsAccess } from "./metrics";
import type { ConcordConfig } from "../../config/concord-config";
import type { EngineRuntime } from "../../runs/engine-runtime";
import type { OpenedConnection } from "../../connections/open-connection";
import type { SyncDeps } from "../../runs/sync-pair";
import type { StoreSession } from "../../store/ports";
import type { ConcordMetrics } from "./metrics";
import type { Result } from "../../core/result";
import type { LinkSigner } from "../../runs/personal-links";
import type { KeyObject } from "node:crypto";
import type { SessionManager, SessionOptions } from "./sessions";
import type { Logger } from "../../observability/logger";

export type ApiDeps = {
  store: StoreSession;
  config: ConcordConfig;
  connections: ReadonlyMap<string, OpenedConnection>;
  runtime: EngineRuntime;
  now: () => Date;
  /** The operators' password (config `server.admin_password`). */
  adminPassword: string;
  /** Mark the session cookie `Secure` (the server is reached over https). */
  secureCookies: boolean;
  version: string;
  /** The metrics the runtime and connections feed; a fresh set when absent (then only scrape-time gauges move). */
  metrics?: ConcordMetrics;
  /** The personal-link signer, or why links are off (no CONCORD_SECRET_KEY, no server.public_url). */
  links?: Result<LinkSigner, string>;
  /** The proof-bundle signing key, or why bundles cannot be signed (no CONCORD_SECRET_KEY). */
  proofKey?: Result<KeyObject, string>;
  /** Who may scrape /metrics (default: anyone; `server.metrics_token` asks for a bearer token). */
  metricsAccess?: MetricsAccess;
  /**
   * Told how each Connect's answer ended, with the whole reason on failure (the vendor's status and
   * error, an unreachable token endpoint): the overview link carries only a code, so the operator's
   * log is where the detail is kept.
   */
  onConnect?: (e: {
    connection_id: string;
    /** `connected`, or the failure's code. */
    outcome: string;
    message?: string;
  }) => void;
  /** Where work a route starts and does not wait for (a person's sync) says it failed. */
  logger?: Logger;
  /** Session expiry, sign-in limits and the sign-in log (defaults: 12 h idle, 5 free failures per client, then a doubling wait). */
  sessions?: Partial<Omit<SessionOptions, "adminPassword" | "now">>;
};

/** What each route file gets. */
export type ApiContext = ApiDeps & {
  metrics: ConcordMetrics;
  sessionManager: SessionManager;
  syncDeps: SyncDeps;
};
