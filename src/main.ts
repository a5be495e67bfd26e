/**
 * The composition root: reads the environment once, wires the store, server, emulators and config
 * checks into the CLI, and runs it. The only module that knows every other.
 */
import { existsSync } from "node:fs";
import { join, relative } from "node:path";
import { CommanderError } from "commander";
import {
  buildProgram,
  EXIT_OK,
  EXIT_PROBLEM,
  EXIT_USAGE,
  type CliServices,
  type EmulatedSystem,
} from "./cli/program";
import { formatConfigErrors, loadConfigFile } from "./config/load-config-file";
import { configWarnings } from "./config/config-warnings";
import { storedNameProblem } from "./config/secret-ref";
import { formatEnvErrors, loadEnv } from "./config/load-env";
import { GENERATE_SECRET_KEY_COMMAND, sealSecret } from "./config/secret-box";
import { registerDemoCommand } from "./cli/demo-command";
import { registerExplainCommand } from "./cli/explain-command";
import { registerSyncCommands } from "./cli/sync-commands";
import { manifestOf } from "./connectors/registry";
import { startDemo } from "./demo/start-demo";
import { explainContact } from "./explain/explain-contact";
import { openEngineContext } from "./open-engine";
import { createLogger } from "./observability/logger";
import { engineRuntimeFor } from "./engine-runtime-for";
import { storePoolSize } from "./jobs/connection-budget";
import { createConcordMetrics } from "./server/api/metrics";
import { buildServer } from "./server/app";
import { buildConcordApp } from "./server/concord-app";
import { listenFailure } from "./server/listen-failure";
import { ledgerSealer } from "./ledger/ledger-seal";
import { openStore } from "./store/open-store";
import { probeStoreWrite } from "./store/probe-write";
import { StoreOpenError } from "./store/store-open-error";
import { concordVersion } from "./config/concord-version";
import { applyV8Settings } from "./v8-settings";
import { errorMessage } from "./core/error-code";

const version = concordVersion;

async function main(argv: readonly string[]): Promise<number> {
  applyV8Settings();
  const envResult = loadEnv(process.env);
  if (!envResult.ok) {
    console.error(formatEnvErrors(envResult.errors));
    return EXIT_USAGE;
  }
  const env = envResult.env;
  for (const warning of envResult.warnings) console.error(`warning: ${warning}`);
  let exitCode = 0;

  const sealer = env.CONCORD_SECRET_KEY === undefined ? undefined : ledgerSealer(env.CONCORD_SECRET_KEY);
  const open = () =>
    openStore({
      url: env.DATABASE_URL,
      schema: env.DATABASE_SCHEMA,
      file: join(env.CONCORD_DATA_DIR, "concord.db"),
      ledger_sealer: sealer,
    });

  // How a started `serve` or `worker` ends: its jobs finish, what it opened is let go, it exits.
  let stopProcess: ((code: number) => Promise<void>) | undefined;
  // Workers that stopped and cannot start again: the process ends, so that its supervisor sees it.
  const jobsFailed = (command: string, message: string): void => {
    services.err(`concord ${command} stopped: ${message}`);
    if (stopProcess === undefined) process.exit(EXIT_PROBLEM);
    else void stopProcess(EXIT_PROBLEM);
  };

  const services: CliServices = {
    version,
    openStore: open,
    ledgerSealer: () => sealer,
    serve: async ({ port: givenPort, host: givenHost, config: configFile, workers }) => {
      // With a config: the engine (polls, webhooks, scheduled reconciliation), the API and the UI;
      // without: health only. On PostgreSQL, up to `workers` jobs run here too.
      const metrics = createConcordMetrics({ now: () => new Date() });
      const engine =
        configFile !== undefined || env.CONCORD_CONFIG !== undefined
          ? await openEngineContext({
              env,
              processEnv: process.env,
              configFile,
              onApiCall: metrics.onApiCall,
              poolSize: storePoolSize(workers),
            })
          : undefined;
      if (engine && !engine.ok) return { ok: false, message: engine.message };
      const context = engine?.context;
      // The flag or PORT / HOST, else the config's `server`, else its defaults.
      const port = givenPort ?? context?.config.server.port ?? 8080;
      const host = givenHost ?? context?.config.server.host ?? "127.0.0.1";
      const store = context?.store ?? (await open());
      const secrets = {
        env: process.env,
        key: env.CONCORD_SECRET_KEY,
        stored: async (name: string) => (await store.credentials.get(name))?.ciphertext,
      };
      // A server that cannot start ends with what failed, having let go of what it opened (its
      // database connections count against everyone's), so that its supervisor can start it again.
      const closeStore = (): Promise<void> => (context ? context.close() : store.close());
      let running: Awaited<ReturnType<typeof engineRuntimeFor>> | undefined;
      let app: ReturnType<typeof buildServer> | undefined;
      const notStarted = async (why: string) => {
        await app?.close().catch(() => undefined);
        await running?.stop().catch(() => undefined);
        await closeStore().catch(() => undefined);
        return { ok: false as const, problem: true, message: `concord serve ${why}` };
      };
      const failure = (error: unknown): string => `could not start: ${errorMessage(error)}`;
      try {
        running = context
          ? await engineRuntimeFor(context, {
              env,
              workers,
              secrets,
              onRun: metrics.onRun,
              onJobsFailed: (message) => {
                jobsFailed("serve", message);
              },
            })
          : undefined;
        const runtime = running?.runtime;
        const uiDir = join(import.meta.dirname, "..", "ui", "dist");
        const built =
          context && runtime
            ? await buildConcordApp(context, runtime, {
                version,
                secrets,
                metrics,
                ...(existsSync(join(uiDir, "index.html")) ? { uiDir } : {}),
              })
            : undefined;
        for (const problem of built?.problems ?? []) services.err(problem);
        app = built?.app ?? buildServer({ version, ready: () => probeStoreWrite(store) });
      } catch (error) {
        return notStarted(failure(error));
      }
      try {
        await app.listen({ port, host });
      } catch (error) {
        return notStarted(listenFailure(error, host, port));
      }
      try {
        await running?.start();
      } catch (error) {
        return notStarted(failure(error));
      }
      const server = app;
      const started = running;
      const stop = async (code = EXIT_OK) => {
        await server.close();
        await started?.stop();
        await closeStore();
        process.exit(code);
      };
      stopProcess = stop;
      process.once("SIGINT", () => void stop());
      process.once("SIGTERM", () => void stop());
      if (!context)
        services.err(
          "No config file (--config or CONCORD_CONFIG): serving health checks only, no sync engine.",
        );
      const address = server.server.address();
      const bound = typeof address === "object" && address !== null ? address.port : port;
      return { ok: true, url: `http://${host.includes(":") ? `[${host}]` : host}:${bound}` };
    },
    work: async ({ config: configFile, concurrency }) => {
      if (env.DATABASE_URL === undefined)
        return {
          ok: false,
          message:
            "concord worker needs PostgreSQL (DATABASE_URL): on the embedded SQLite store, `concord serve` runs all the work in its one process.",
        };
      const metrics = createConcordMetrics({ now: () => new Date() });
      const jobs = Math.max(1, concurrency);
      const opened = await openEngineContext({
        env,
        processEnv: process.env,
        configFile,
        onApiCall: metrics.onApiCall,
        poolSize: storePoolSize(jobs),
      });
      if (!opened.ok) return { ok: false, message: opened.message };
      const context = opened.context;
      let running: Awaited<ReturnType<typeof engineRuntimeFor>> | undefined;
      try {
        running = await engineRuntimeFor(context, {
          env,
          workers: jobs,
          secrets: {
            env: process.env,
            key: env.CONCORD_SECRET_KEY,
            stored: async (name: string) => (await context.store.credentials.get(name))?.ciphertext,
          },
          onRun: metrics.onRun,
          onJobsFailed: (message) => {
            jobsFailed("worker", message);
          },
        });
        await running.start();
      } catch (error) {
        // A worker that cannot take jobs ends, so that its supervisor sees it and starts it again;
        // what it opened is let go first (its database connections count against everyone's).
        await running?.stop().catch(() => undefined);
        await context.close().catch(() => undefined);
        return {
          ok: false,
          problem: true,
          message: `concord worker could not start: ${errorMessage(error)}`,
        };
      }
      const started = running;
      const stop = async (code = EXIT_OK) => {
        await started.stop();
        await context.close();
        process.exit(code);
      };
      stopProcess = stop;
      process.once("SIGINT", () => void stop());
      process.once("SIGTERM", () => void stop());
      return {
        ok: true,
        description: `Concord worker is running up to ${jobs} job(s) at once from the job queue; stop it with SIGTERM.`,
      };
    },
    emulate: async (system: EmulatedSystem, port: number) => {
      const started = await manifestOf(system).emulator.start({ port });
      for (const line of started.describe) services.out(line);
      return { url: started.origin };
    },
    checkConfig: async (file: string) => {
      const result = await loadConfigFile(file);
      if (!result.ok) return { ok: false, report: formatConfigErrors(result.errors) };
      const c = result.config;
      const warnings = configWarnings(c).map((w) => `warning: ${w}`);
      return {
        ok: true,
        summary: [
          `${file} is valid: ${c.connections.length} connections, ${c.pairs.length} pairs, ${c.topics.length} topics.`,
          ...warnings,
        ].join("\n"),
      };
    },
    storeSecret: async (name, value) => {
      const problem = storedNameProblem(name);
      if (problem !== undefined) return { ok: false, message: problem };
      const key = env.CONCORD_SECRET_KEY;
      if (!key) {
        return {
          ok: false,
          message: `CONCORD_SECRET_KEY is not set: generate one with ${GENERATE_SECRET_KEY_COMMAND}, keep it with your backups, and set it in the environment.`,
        };
      }
      const sealed = sealSecret(value, key, name);
      if (!sealed.ok) return { ok: false, message: sealed.error.message };
      const store = await open();
      try {
        await store.credentials.put(name, sealed.value, key.id);
      } finally {
        await store.close();
      }
      return { ok: true, key_id: key.id };
    },
    removeSecret: async (name) => {
      const store = await open();
      try {
        return await store.credentials.remove(name);
      } finally {
        await store.close();
      }
    },
    readStdin: async () => {
      if (process.stdin.isTTY) return "";
      const chunks: Buffer[] = [];
      for await (const chunk of process.stdin) chunks.push(Buffer.from(chunk as Uint8Array));
      return Buffer.concat(chunks).toString("utf8");
    },
    out: (line) => {
      process.stdout.write(`${line}\n`);
    },
    err: (line) => {
      process.stderr.write(`${line}\n`);
    },
    setExitCode: (code) => {
      exitCode = code;
    },
  };

  const program = buildProgram(services);
  // A one-shot command's output is stdout (its --json a single document); its log lines go to stderr.
  const openEngine = (configFile: string | undefined) =>
    openEngineContext({
      env,
      processEnv: process.env,
      configFile,
      logger: createLogger({ level: env.LOG_LEVEL, destination: process.stderr }),
    });
  registerExplainCommand(program, {
    explain: async (email, { config: configFile, ...options }) => {
      const opened = await openEngine(configFile);
      if (!opened.ok) {
        services.err(opened.message);
        return undefined;
      }
      try {
        return await explainContact(opened.context.store, opened.context.config, email, options);
      } finally {
        await opened.context.close();
      }
    },
    out: services.out,
    err: services.err,
    setExitCode: services.setExitCode,
  });
  registerSyncCommands(program, {
    openEngine,
    out: services.out,
    err: services.err,
    setExitCode: services.setExitCode,
    interactive: process.stderr.isTTY,
    secretKey: env.CONCORD_SECRET_KEY,
  });
  const builtUi = join(import.meta.dirname, "..", "ui", "dist");
  registerDemoCommand(program, {
    configOf: (world) => relative(process.cwd(), join(import.meta.dirname, "..", world.config)),
    defaultDataDir: env.CONCORD_DATA_DIR,
    start: (flags, activity) =>
      startDemo({
        world: flags.world,
        configFile: flags.config,
        ...(flags.port !== undefined ? { port: flags.port } : {}),
        ...(flags.pollIntervalMs !== undefined ? { pollIntervalMs: flags.pollIntervalMs } : {}),
        seedSize: flags.seedSize,
        simulator: flags.simulator,
        reset: flags.reset,
        dataDir: flags.dataDir,
        env,
        processEnv: process.env,
        version,
        uiDir: existsSync(join(builtUi, "index.html")) ? builtUi : undefined,
        activity,
        warn: services.err,
      }),
    stopRequested: () =>
      new Promise<void>((resolve) => {
        const stop = (): void => {
          // A second Ctrl-C does not wait; the copy npm forwards right after the first is not one.
          const first = Date.now();
          process.on("SIGINT", () => {
            if (Date.now() - first > 1_000) process.exit(130);
          });
          resolve();
        };
        process.once("SIGINT", stop);
        process.once("SIGTERM", stop);
      }),
    out: services.out,
    err: services.err,
    setExitCode: services.setExitCode,
  });
  try {
    await program.parseAsync([...argv], { from: "user" });
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : EXIT_USAGE;
    throw error;
  }
  return exitCode;
}

// A command that failed ends the process even where something it opened would keep it alive (a
// server or worker that could not start): what failed has been said, and nothing is left to do.
main(process.argv.slice(2)).then(
  (code) => {
    if (code === 0) process.exitCode = 0;
    else process.exit(code);
  },
  (error: unknown) => {
    // A store that cannot be opened is the operator's to mend, said in their terms; anything else
    // unexpected is a bug, and its stack helps whoever reports it.
    console.error(
      error instanceof StoreOpenError
        ? `concord: ${error.message}`
        : error instanceof Error
          ? (error.stack ?? error.message)
          : String(error),
    );
    process.exit(1);
  },
);
