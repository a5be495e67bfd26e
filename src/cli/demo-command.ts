/**
 * `concord demo` (also `npm start`): a world of emulated systems (Raiser's Edge NXT with Constant
 * Contact accounts, a Mailchimp audience, or both: `--world`), the engine, the server and an
 * activity simulator in one process, until Ctrl-C. Prints where everything is, or with --json
 * exactly one JSON line on stdout and everything else on stderr.
 */
import { Command, InvalidArgumentError, Option } from "commander";
import { formatDuration, parseDuration } from "../config/duration";
import { DEFAULT_SEED_SIZE, type RunningDemo, type StartDemoResult } from "../demo/start-demo";
import { DEFAULT_WORLD, DEMO_WORLDS, demoWorld, type DemoWorldSpec } from "../demo/worlds";
import { EXIT_USAGE } from "./exit-codes";
import { parsePort, parseWholeNumber } from "./whole-numbers";

export type DemoFlags = {
  world: DemoWorldSpec;
  config: string;
  port?: number;
  pollIntervalMs?: number;
  seedSize: number;
  simulator: boolean;
  reset: boolean;
  dataDir: string;
  json: boolean;
};

export type DemoCommandDeps = {
  /** The config file of a world used without --config (its example in the package). */
  configOf: (world: DemoWorldSpec) => string;
  /** The data directory used without --data-dir (CONCORD_DATA_DIR, else ./data). */
  defaultDataDir: string;
  /** Starts the demo; `activity` receives its readable lines (runs, simulated acts). */
  start: (flags: DemoFlags, activity: (line: string) => void) => Promise<StartDemoResult>;
  /** Resolves when the process is asked to stop (SIGINT, SIGTERM). */
  stopRequested: () => Promise<void>;
  out: (line: string) => void;
  err: (line: string) => void;
  setExitCode: (code: number) => void;
};

const parseInterval = (value: string): number => {
  const ms = parseDuration(value);
  if (ms === undefined)
    throw new InvalidArgumentError(`expected a duration such as 1s, 5s or 1m, got "${value}"`);
  if (ms < 1_000 || ms > 86_400_000)
    throw new InvalidArgumentError(`expected a duration from 1s to 24h, got "${value}"`);
  return ms;
};

const parseWorld = (value: string): DemoWorldSpec => {
  const world = demoWorld(value);
  if (!world)
    throw new InvalidArgumentError(
      `expected one of ${DEMO_WORLDS.map((w) => w.name).join(", ")}, got "${value}"`,
    );
  return world;
};

const parseSeedSize = (value: string): number =>
  parseWholeNumber(value, { min: 10, max: 100_000, what: "a number of constituents", separators: true });

export function registerDemoCommand(program: Command, deps: DemoCommandDeps): void {
  program
    .command("demo")
    .description(
      "Run the demo: emulated systems seeded with realistic data (Raiser's Edge NXT with Constant Contact, Mailchimp or both), the engine, the UI and API, and an activity simulator",
    )
    .addOption(
      new Option(
        "--world <name>",
        `which systems to emulate: ${DEMO_WORLDS.map((w) => `${w.name} (${w.summary})`).join("; ")}`,
      )
        .argParser(parseWorld)
        .default(demoWorld(DEFAULT_WORLD), DEFAULT_WORLD),
    )
    .option("--config <file>", "the demo's config file (default: the world's example in examples/)")
    .addOption(
      new Option("--port <port>", "UI and API port (0 picks a free one; default: the config's server.port)")
        .argParser(parsePort)
        .env("PORT"),
    )
    .addOption(
      new Option(
        "--poll-interval <duration>",
        "poll every pair this often, e.g. 1s (default: the config's)",
      ).argParser(parseInterval),
    )
    .addOption(
      new Option("--seed-size <n>", "people to generate in the CRM")
        .argParser(parseSeedSize)
        .default(DEFAULT_SEED_SIZE),
    )
    .option("--no-simulator", "no simulated activity: the systems change only when you change them")
    .option("--reset", "start from empty: delete earlier demos' databases and the generated key first")
    .option("--data-dir <dir>", "where the demo keeps its database (under demo/)", deps.defaultDataDir)
    .option("--json", "print one JSON line with the URLs on stdout; everything else goes to stderr")
    .action(
      async (options: {
        world: DemoWorldSpec;
        config?: string;
        port?: number;
        pollInterval?: number;
        seedSize: number;
        simulator: boolean;
        reset?: boolean;
        dataDir: string;
        json?: boolean;
      }) => {
        const json = options.json === true;
        const info = json ? deps.err : deps.out;
        const flags: DemoFlags = {
          world: options.world,
          config: options.config ?? deps.configOf(options.world),
          ...(options.port !== undefined ? { port: options.port } : {}),
          ...(options.pollInterval !== undefined ? { pollIntervalMs: options.pollInterval } : {}),
          seedSize: options.seedSize,
          simulator: options.simulator,
          reset: options.reset === true,
          dataDir: options.dataDir,
          json,
        };
        if (!json)
          info(`Starting the Concord demo (${flags.seedSize.toLocaleString("en-US")} people in the CRM)…`);
        const result = await deps.start(flags, info);
        if (!result.ok) {
          deps.err(result.message);
          deps.setExitCode(EXIT_USAGE);
          return;
        }
        const demo = result.demo;
        if (json) {
          deps.out(JSON.stringify(demo.urls));
          if (demo.adminPassword !== undefined) deps.err(`UI password: ${demo.adminPassword}`);
        } else for (const line of describeDemo(demo, flags)) info(line);

        await deps.stopRequested();
        info("Stopping the demo…");
        await demo.stop();
        info("The demo stopped.");
      },
    );
}

/** Where everything is, as the human output prints it. */
export function describeDemo(demo: RunningDemo, flags: DemoFlags): string[] {
  const n = (x: number) => x.toLocaleString("en-US");
  const width = Math.max(...demo.accounts.map((a) => a.label.length));
  const what = (a: RunningDemo["accounts"][number]): string =>
    a.role === "crm"
      ? `${n(a.records)} people`
      : `${n(a.records)} contacts already there (${a.role === "main" ? "global opt-outs" : "topic: appeals"})`;
  return [
    "",
    `Concord demo, world "${flags.world.name}": ${flags.world.summary}, emulated in this process.`,
    `  UI       ${demo.urls.ui}${demo.adminPassword !== undefined ? `   (password: ${demo.adminPassword})` : ""}`,
    `  API      ${demo.urls.api}`,
    `  Sign-up  ${demo.urls.signup}   (its confirmation emails stay in the demo's local outbox)`,
    ...demo.accounts.map((a) => `  ${a.label.padEnd(width)}  ${a.url}   ${what(a)}`),
    `  Config   ${flags.config} (an ordinary config file: read it as an example)`,
    `  Database ${demo.database}${demo.previousDatabase !== undefined ? ` (the previous run's is kept as ${demo.previousDatabase}; --reset removes it)` : ""}`,
    `  Polls every ${formatDuration(demo.pollIntervalMs)}; systems with webhooks push their changes too.${flags.simulator ? " The activity simulator acts every few seconds." : " No simulator (--no-simulator)."}`,
    "  Each emulator's control API (/__emulator/act, /state…) lets you act as a person or an admin too.",
    "  Stop with Ctrl-C.",
    "",
    "First sync: reading every system…",
  ];
}
