/**
 * The `concord` command line: thin commands over the same services the server uses. Exit codes:
 * 0 done, 1 the check found a problem (e.g. a broken ledger), 2 bad input or configuration.
 */
import { createWriteStream, type WriteStream } from "node:fs";
import { rename, rm } from "node:fs/promises";
import { Command, InvalidArgumentError, Option } from "commander";
import { hint } from "../config/did-you-mean";
import { SYSTEM_IDS } from "../connectors/registry";
import { parseLedgerHead } from "../ledger/verify-ledger";

import { EXIT_PROBLEM, EXIT_USAGE } from "./exit-codes";
import { parsePort, parseWholeNumber } from "./whole-numbers";
export { EXIT_OK, EXIT_PROBLEM, EXIT_USAGE } from "./exit-codes";

/** What the CLI needs from the composition root; main.ts supplies the real ones. */
export type CliServices = {
  version: string;
  /** The store, opened with the ledger key when CONCORD_SECRET_KEY is set (new rows are sealed). */
  openStore: () => Promise<import("../store/ports").Store>;
  /** The ledger's sealer, from CONCORD_SECRET_KEY; undefined when it is not set. */
  ledgerSealer: () => import("../store/ports").LedgerSealer | undefined;
  /** `port` and `host` as given (flag or environment); else the config's `server`, else the defaults. */
  serve: (options: { port?: number; host?: string; config?: string; workers: number }) => Promise<
    | { ok: true; url: string }
    /** `problem`: the server could not start (exit 1); otherwise bad input or configuration (exit 2). */
    | { ok: false; message: string; problem?: boolean }
  >;
  /** Runs jobs from the PostgreSQL job queue until stopped (SIGTERM, SIGINT). */
  work: (options: { config?: string; concurrency: number }) => Promise<
    | { ok: true; description: string }
    /** `problem`: the worker could not start (exit 1); otherwise bad input or configuration (exit 2). */
    | { ok: false; message: string; problem?: boolean }
  >;
  emulate: (system: EmulatedSystem, port: number) => Promise<{ url: string }>;
  checkConfig: (file: string) => Promise<{ ok: true; summary: string } | { ok: false; report: string }>;
  /** Seals a secret with CONCORD_SECRET_KEY and stores it under `name` (config: `{ stored: name }`). */
  storeSecret: (
    name: string,
    value: string,
  ) => Promise<{ ok: true; key_id: string } | { ok: false; message: string }>;
  removeSecret: (name: string) => Promise<boolean>;
  readStdin: () => Promise<string>;
  out: (line: string) => void;
  err: (line: string) => void;
  setExitCode: (code: number) => void;
};

/** Every system in the registry ships an emulator. */
export const EMULATED_SYSTEMS: readonly string[] = SYSTEM_IDS;
export type EmulatedSystem = string;

const parseCount = (value: string): number =>
  parseWholeNumber(value, { min: 0, max: 256, what: "a whole number" });

export function buildProgram(services: CliServices): Command {
  const program = new Command("concord")
    .description("Keeps a CRM and its email platforms in agreement about contacts, lists and consent.")
    .version(services.version)
    .showHelpAfterError()
    .exitOverride();

  program
    .command("serve")
    .description(
      "Run the engine (polls, webhook receivers, scheduled full reconciliation) and the HTTP server on the configured store",
    )
    .addOption(
      new Option("--port <port>", "port to listen on (default: the config's server.port, else 8080)")
        .argParser(parsePort)
        .env("PORT"),
    )
    .addOption(
      new Option(
        "--host <host>",
        "address to listen on (default: the config's server.host, else 127.0.0.1)",
      ).env("HOST"),
    )
    .option(
      "--config <file>",
      "config file (default: CONCORD_CONFIG); without one only health checks are served",
    )
    .addOption(
      new Option(
        "--workers <n>",
        "on PostgreSQL: jobs this process runs at once beside the API, UI and webhook intake (0: none; run `concord worker` processes)",
      )
        .argParser(parseCount)
        .env("CONCORD_SERVE_WORKERS")
        .default(2),
    )
    .action(async (options: { port?: number; host?: string; config?: string; workers: number }) => {
      const started = await services.serve(options);
      if (!started.ok) {
        services.err(started.message);
        services.setExitCode(started.problem === true ? EXIT_PROBLEM : EXIT_USAGE);
        return;
      }
      const { url } = started;
      services.out(
        `Concord is listening on ${url} (health: ${url}/healthz, readiness: ${url}/readyz, webhooks: ${url}/webhooks/<connection>)`,
      );
    });

  program
    .command("worker")
    .description(
      "Run the engine's jobs (polls, webhook deliveries, syncs, housekeeping) from the PostgreSQL job queue; run as many as you like beside `concord serve`",
    )
    .option("--config <file>", "config file (default: CONCORD_CONFIG)")
    .addOption(
      new Option("--concurrency <n>", "jobs this process runs at once")
        .argParser(parseCount)
        .env("CONCORD_WORKER_CONCURRENCY")
        .default(4),
    )
    .action(async (options: { config?: string; concurrency: number }) => {
      const started = await services.work(options);
      if (!started.ok) {
        services.err(started.message);
        services.setExitCode(started.problem === true ? EXIT_PROBLEM : EXIT_USAGE);
        return;
      }
      services.out(started.description);
    });

  program
    .command("migrate")
    .description("Apply pending database migrations to the configured store")
    .action(async () => {
      const store = await services.openStore();
      await store.close();
      services.out("The store is migrated to the latest version.");
    });

  const ledger = program
    .command("ledger")
    .description("The consent ledger: verify the hash chain, export as proof");
  ledger
    .command("verify")
    .description(
      "Walk the hash chain and check every seal (with CONCORD_SECRET_KEY); report the first broken link (exit 1 when broken)",
    )
    .option("--json", "print the result as JSON")
    .option(
      "--expect-head <seq:hash>",
      "a head printed by an earlier verify and kept outside the database: it must still be in the chain",
      (value: string) => {
        const head = parseLedgerHead(value);
        if (head === undefined)
          throw new InvalidArgumentError(
            `expected SEQ:HASH as verify prints the head, such as 1042:3f9a…(64 hex digits), got "${value.slice(0, 100)}"`,
          );
        return head;
      },
    )
    .action(async (options: { json?: boolean; expectHead?: { seq: number; hash: string } }) => {
      const { verifyLedger } = await import("../ledger/verify-ledger");
      const sealer = services.ledgerSealer();
      const store = await services.openStore();
      try {
        const result = await verifyLedger(store, { sealer, expect_head: options.expectHead });
        if (options.json) services.out(JSON.stringify(result));
        else if (result.ok) {
          services.out(
            `The ledger verifies: ${result.count} events${result.erasures > 0 ? ` (${result.erasures} erasures recorded)` : ""}; head ${result.head.seq}:${result.head.hash}. Keep this head outside the database and pass it to --expect-head next time.`,
          );
          if (!result.sealed)
            services.err(
              "warning: seals were not checked (CONCORD_SECRET_KEY is not set): someone who can write to the database could have rewritten the chain.",
            );
        } else
          services.out(
            `The ledger is broken at seq ${result.first_broken_seq}: ${result.reason}. ${result.detail}.`,
          );
        if (!result.ok) services.setExitCode(EXIT_PROBLEM);
      } finally {
        await store.close();
      }
    });
  ledger
    .command("seal")
    .description(
      "Seal every unsealed row with the key from CONCORD_SECRET_KEY, once the chain verifies (a ledger from before seals, or written without the key)",
    )
    .option(
      "--record-erasures",
      "also record in the chain the erasures made before erasures were chained (verify names them as erasure_unrecorded); needs no key",
    )
    .option(
      "--force",
      "also seal unsealed rows that come after sealed ones (only when you know they were written while CONCORD_SECRET_KEY was unset)",
    )
    .action(async (options: { recordErasures?: boolean; force?: boolean }) => {
      const sealer = services.ledgerSealer();
      if (sealer === undefined && options.recordErasures !== true) {
        services.err(
          "ledger seal needs CONCORD_SECRET_KEY: the seals are made with a key derived from it, so that the database alone cannot forge them (only --record-erasures works without it).",
        );
        services.setExitCode(EXIT_USAGE);
        return;
      }
      const { sealLedger } = await import("../ledger/seal-ledger");
      const store = await services.openStore();
      try {
        const result = await sealLedger(store, sealer, {
          record_erasures: options.recordErasures === true,
          force: options.force === true,
        });
        if (result.ok)
          services.out(
            `${sealer === undefined ? "Sealed nothing (no CONCORD_SECRET_KEY)" : `Sealed ${result.sealed} rows with key ${sealer.key_id}`}${result.erasures_recorded > 0 ? `; recorded ${result.erasures_recorded} earlier erasures` : ""}; head ${result.head.seq}:${result.head.hash}.`,
          );
        else {
          services.out(
            result.verify === undefined
              ? result.problem
              : `Nothing was sealed: the ledger is broken at seq ${result.verify.first_broken_seq} (${result.verify.reason}): ${result.verify.detail}.`,
          );
          services.setExitCode(EXIT_PROBLEM);
        }
      } finally {
        await store.close();
      }
    });
  ledger
    .command("export")
    .description("Export consent events as JSON lines or CSV (to stdout, or --output FILE)")
    .addOption(new Option("--format <format>", "jsonl or csv").choices(["jsonl", "csv"]).default("jsonl"))
    .option("--contact <contact_id>", "only this contact's events")
    .option("--output <file>", "write to this file instead of stdout")
    .action(async (options: { format: "jsonl" | "csv"; contact?: string; output?: string }) => {
      const { exportLedger } = await import("../ledger/export-ledger");
      // Written beside the file and put in its place only once complete: an export that fails (the
      // store out of reach, a contact unknown) leaves an earlier export as it was. That file is
      // opened before the store, so a path that cannot be written is said at once.
      let target: NodeJS.WritableStream = process.stdout;
      let file: WriteStream | undefined;
      const partial = options.output !== undefined ? `${options.output}.partial-${process.pid}` : undefined;
      if (partial !== undefined) {
        const opening = createWriteStream(partial);
        const opened = await new Promise<string | undefined>((resolve) => {
          opening.once("open", () => {
            resolve(undefined);
          });
          opening.once("error", (error) => {
            resolve(error.message);
          });
        });
        if (opened !== undefined) {
          services.err(
            `Cannot write the export to ${options.output ?? ""}: ${opened}. Name a file in a folder that exists and that you may write to.`,
          );
          services.setExitCode(EXIT_USAGE);
          return;
        }
        file = opening;
        target = file;
      }
      const discard = async (): Promise<void> => {
        if (file === undefined || partial === undefined) return;
        file.destroy();
        await rm(partial, { force: true });
      };
      let store: Awaited<ReturnType<typeof services.openStore>>;
      try {
        store = await services.openStore();
      } catch (error) {
        await discard();
        throw error;
      }
      try {
        const { count } = await exportLedger(store, options.format, target, {
          ...(options.contact ? { contact_id: options.contact } : {}),
          end: Boolean(options.output),
        });
        if (options.contact && count === 0 && (await store.contacts.get(options.contact)) === undefined) {
          await discard();
          services.err(
            `No contact ${options.contact}: --contact takes a contact's id (con_…), as \`concord explain\` shows it.`,
          );
          services.setExitCode(EXIT_USAGE);
          return;
        }
        if (file !== undefined && partial !== undefined && options.output !== undefined) {
          const written = file;
          if (!written.closed)
            await new Promise<void>((resolve) => {
              written.once("close", () => {
                resolve();
              });
            });
          await rename(partial, options.output);
          services.err(`Exported ${count} consent events to ${options.output}.`);
        }
      } catch (error) {
        await discard();
        throw error;
      } finally {
        await store.close();
      }
    });

  program
    .command("emulate")
    .description("Run one vendor emulator alone on loopback and print its base URL")
    .argument("<system>", `one of: ${EMULATED_SYSTEMS.join(", ")}`, (value: string) => {
      if (!EMULATED_SYSTEMS.includes(value))
        throw new InvalidArgumentError(
          `expected one of ${EMULATED_SYSTEMS.join(", ")}, got "${value}"${hint(value, EMULATED_SYSTEMS)}`,
        );
      return value;
    })
    .addOption(new Option("--port <port>", "port (0 picks a free one)").argParser(parsePort).default(0))
    .action(async (system: EmulatedSystem, options: { port: number }) => {
      await services.emulate(system, options.port);
    });

  const config = program.command("config").description("Configuration as code");
  config
    .command("check")
    .description(
      "Validate a config file; every error names the file, the path inside it and what was expected",
    )
    // An empty CONCORD_CONFIG (a compose file's `CONCORD_CONFIG=`) counts as unset, as every variable does.
    .argument("[file]", "config file (YAML or JSON)", process.env["CONCORD_CONFIG"] || "concord.yaml")
    .action(async (file: string) => {
      const result = await services.checkConfig(file);
      if (result.ok) services.out(result.summary);
      else {
        services.err(result.report);
        services.setExitCode(EXIT_USAGE);
      }
    });

  const secrets = program
    .command("secrets")
    .description("Secrets stored encrypted in the database (AES-256-GCM with CONCORD_SECRET_KEY)");
  secrets
    .command("set")
    .description("Store a secret read from standard input; reference it in the config as { stored: NAME }")
    .argument("<name>", "the name the config refers to, e.g. cc-main.refresh_token")
    .action(async (name: string) => {
      const value = (await services.readStdin()).replace(/\r?\n$/, "");
      if (value === "") {
        services.err(
          `No secret on standard input: pipe it in, e.g. printf '%s' "$TOKEN" | concord secrets set ${name}`,
        );
        services.setExitCode(EXIT_USAGE);
        return;
      }
      const result = await services.storeSecret(name, value);
      if (result.ok) services.out(`Stored secret "${name}" (sealed with key ${result.key_id}).`);
      else {
        services.err(result.message);
        services.setExitCode(EXIT_USAGE);
      }
    });
  secrets
    .command("remove")
    .description("Remove a stored secret")
    .argument("<name>", "the secret's name")
    .action(async (name: string) => {
      if (await services.removeSecret(name)) services.out(`Removed secret "${name}".`);
      else {
        services.err(`No stored secret named "${name}".`);
        services.setExitCode(EXIT_PROBLEM);
      }
    });

  return program;
}
