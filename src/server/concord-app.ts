/**
 * The whole HTTP app for a running engine (`concord serve`, the demo): health, webhook receivers,
 * the REST API with sign-in, /openapi.json, /metrics and the built UI. The admin password comes
 * from `server.admin_password`; when it cannot be resolved the API is served disabled, saying why.
 */
import type { ConnectionOptions as TlsConnectionOptions } from "node:tls";
import type { FastifyInstance } from "fastify";
import { probeStoreWrite } from "../store/probe-write";
import { configWarnings } from "../config/config-warnings";
import { resolveSecretRef, type SecretSources } from "../config/resolve-secret-ref";
import type { EngineContext } from "../open-engine";
import type { EngineRuntime } from "../runs/engine-runtime";
import { createConcordMetrics, type ConcordMetrics } from "./api/metrics";
import type { MetricsAccess } from "./api/metrics";
import { buildServer } from "./app";
import { linkSigner } from "../runs/personal-links";
import { proofKey } from "../runs/proof-bundle";
import { logThrottle } from "../observability/log-throttle";

export type ConcordAppOptions = {
  version: string;
  /** Where `server.admin_password` is resolved from (`{ env }`, `{ stored }`). */
  secrets: SecretSources;
  /** The metrics the runtime (`onRun`) and the connections (`onApiCall`) feed; fresh when absent. */
  metrics?: ConcordMetrics;
  /** The built admin UI (`ui/dist`), when there is one. */
  uiDir?: string;
  /** TLS options over the defaults for the sign-up's SMTP connection (a private CA). */
  smtpTls?: TlsConnectionOptions;
};

export type ConcordApp = {
  app: FastifyInstance;
  /** Whether the API is mounted; false: /api answers 503 `api_disabled` and `problems` says why. */
  api_enabled: boolean;
  /** What an operator must know at startup (printed by `serve`). */
  problems: string[];
};

/** Shortest admin password accepted; a shorter one leaves the API disabled. */
export const MIN_ADMIN_PASSWORD_LENGTH = 12;

export async function buildConcordApp(
  context: EngineContext,
  runtime: EngineRuntime,
  options: ConcordAppOptions,
): Promise<ConcordApp> {
  const { config, store } = context;
  const problems: string[] = [];
  const waitingLog = logThrottle(context.now);
  const strayCallbackLog = logThrottle(context.now);
  const password = await resolveSecretRef(config.server.admin_password, options.secrets);
  let disabled: string | undefined;
  if (!password.ok)
    disabled = `no admin password: ${password.error.message}. Set it to sign in to the admin UI and the API.`;
  else if (password.value.length < MIN_ADMIN_PASSWORD_LENGTH)
    disabled = `the admin password is shorter than ${MIN_ADMIN_PASSWORD_LENGTH} characters; set a longer one to sign in to the admin UI and the API.`;
  if (disabled !== undefined) problems.push(`API disabled: ${disabled}`);
  const secureCookies = config.server.public_url?.startsWith("https:") === true;
  const metrics = options.metrics ?? createConcordMetrics({ now: context.now });
  let metricsAccess: MetricsAccess = { kind: "public" };
  if (config.server.metrics_token !== undefined) {
    const token = await resolveSecretRef(config.server.metrics_token, options.secrets);
    if (token.ok && token.value.length >= 16) metricsAccess = { kind: "token", token: token.value };
    else {
      metricsAccess = { kind: "closed" };
      problems.push(
        `/metrics is closed: server.metrics_token ${token.ok ? "is shorter than 16 characters" : `could not be resolved (${token.error.message})`}.`,
      );
    }
  }
  problems.push(...configWarnings(config));
  const links = linkSigner(options.secrets.key, config);
  if (!links.ok) problems.push(`Personal links (one-click unsubscribe) are off: ${links.error}.`);
  const signupPassword = config.signup?.smtp.password;
  if (signupPassword !== undefined) {
    const resolved = await resolveSecretRef(signupPassword, options.secrets);
    if (!resolved.ok)
      problems.push(
        `The sign-up form cannot send its confirmation email: signup.smtp.password: ${resolved.error.message}.`,
      );
  }
  let lastNotReady: string | undefined;
  const app = buildServer({
    version: options.version,
    ready: async () => {
      const readiness = await probeStoreWrite(store);
      // The store's own error is the operator's, said once while it lasts: never in the answer.
      if (!readiness.ok && readiness.detail !== undefined && readiness.detail !== lastNotReady)
        context.logger.warn({ code: readiness.code }, `not ready: ${readiness.detail}`);
      lastNotReady = readiness.ok ? undefined : readiness.detail;
      return readiness;
    },
    bodyLimitBytes: config.server.body_limit,
    trustProxy: config.server.trust_proxy,
    ...(config.server.public_url !== undefined ? { publicUrl: config.server.public_url } : {}),
    webhooks: runtime.handleWebhook,
    personPages: {
      store,
      config,
      links,
      now: context.now,
      // The person's own act reaches every system now, not at the next poll.
      onConsentRecorded: (contactId) => {
        runtime.syncNow(undefined, { pull: false, contact_ids: [contactId] }).catch((error: unknown) => {
          context.logger.error(
            { err: error },
            "carrying a one-click opt-out failed; the next run carries it",
          );
        });
      },
      ...(config.signup === undefined
        ? {}
        : {
            signup: {
              store,
              config,
              now: context.now,
              logger: context.logger,
              secrets: options.secrets,
              ...(options.smtpTls === undefined ? {} : { smtpTls: options.smtpTls }),
              // The confirmed person joins the sign-up platform and their consent reaches every system now.
              onConfirmed: (contactId) => {
                runtime.placeSignups([contactId]).catch((error: unknown) => {
                  context.logger.error(
                    { err: error },
                    "adding a confirmed sign-up failed; the engine's next tick tries again",
                  );
                });
              },
            },
          }),
    },
    onError: (error, request) => {
      context.logger.error({ err: error, method: request.method, url: request.url }, "request failed");
    },
    ...(options.uiDir !== undefined ? { uiDir: options.uiDir } : {}),
    ...(password.ok && disabled === undefined
      ? {
          api: {
            store,
            config,
            connections: context.connections,
            runtime,
            now: context.now,
            adminPassword: password.value,
            secureCookies,
            version: options.version,
            metrics,
            metricsAccess,
            logger: context.logger,
            // The sign-in log: every attempt, its client and outcome, never the password.
            // A client still made to wait is refused at once each time it asks: one line a minute
            // for each group of clients, saying how many were refused since.
            sessions: {
              onSignIn: (e) => {
                const line = { client: e.client, group: e.group, failures: e.failures, outcome: e.outcome };
                if (e.outcome === "signed_in") context.logger.info(line, "operator signed in");
                else if (e.outcome !== "too_many_attempts")
                  context.logger.warn(line, `sign-in refused: ${e.outcome.replaceAll("_", " ")}`);
                else {
                  const held = waitingLog(e.group);
                  if (held.log)
                    context.logger.warn(
                      { ...line, refused_since: held.held_back },
                      "sign-in refused: too many attempts",
                    );
                }
              },
            },
            // Connect's log: the whole reason a Connect failed, which the overview shows only as a
            // code. Anyone may call the callback with a state no Connect made: one line a minute.
            onConnect: (e) => {
              if (e.outcome === "connected")
                context.logger.info({ connection: e.connection_id }, "connection connected");
              else {
                const held =
                  e.outcome === "connect_state_invalid"
                    ? strayCallbackLog(e.outcome)
                    : { log: true, held_back: 0 };
                if (held.log)
                  context.logger.warn(
                    {
                      connection: e.connection_id,
                      code: e.outcome,
                      reason: e.message,
                      ...(held.held_back > 0 ? { refused_since: held.held_back } : {}),
                    },
                    "Connect did not complete",
                  );
              }
            },
            links,
            proofKey: proofKey(options.secrets.key),
          },
        }
      : {
          apiDisabled: {
            reason: disabled ?? "",
            metrics: {
              metrics,
              sources: {
                store,
                config,
                connections: context.connections,
                version: options.version,
              },
              now: context.now,
              access: metricsAccess,
            },
          },
        }),
  });
  return { app, api_enabled: disabled === undefined, problems };
}
