/**
 * Test and bench support: `concord` commands as real processes (`serve`, `worker`), each started
 * from the sources with the given environment and awaited until it says it is ready; all of them
 * killed with SIGKILL at the end.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { TEST_ENV, TEST_KEY_TEXT } from "./test-credentials";

const root = join(import.meta.dirname, "..", "..");
/** The TypeScript loader, by its own path: a process started elsewhere finds it all the same. */
const tsx = pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href;

/** What each command prints once it is ready. */
const READY: Readonly<Record<string, string>> = {
  serve: "Concord is listening",
  worker: "Concord worker is running",
};

/**
 * The environment of every process of one PostgreSQL installation: its store in `schema`, the
 * config file, the tests' secret key and `{ env }` references, and what else `extra` adds.
 */
export function installationEnv(o: {
  url: string;
  schema: string;
  config_file: string;
  data_dir: string;
  log_level: string;
  extra?: Readonly<Record<string, string>>;
}): Record<string, string> {
  return {
    ...(process.env as Record<string, string>),
    ...TEST_ENV,
    DATABASE_URL: o.url,
    DATABASE_SCHEMA: o.schema,
    CONCORD_CONFIG: o.config_file,
    CONCORD_SECRET_KEY: TEST_KEY_TEXT,
    CONCORD_ADMIN_PASSWORD: "installation-test-password",
    CONCORD_DATA_DIR: o.data_dir,
    LOG_LEVEL: o.log_level,
    ...o.extra,
  };
}

export type ConcordProcesses = {
  /** Starts `concord <args>`; resolves once it is ready, rejects if it exits before. */
  start: (args: readonly string[]) => Promise<ChildProcess>;
  /** The last of what the processes printed, each line marked with its command and pid. */
  output: () => string;
  killAll: () => Promise<void>;
  /** Asks every process to stop (SIGTERM: running jobs finish, the rest stay queued) and waits. */
  stopAll: () => Promise<void>;
};

export function concordProcesses(
  env: Readonly<Record<string, string>>,
  /** The working directory of every process: the repository by default. */
  cwd = root,
): ConcordProcesses {
  const children: ChildProcess[] = [];
  let output = "";
  // Never left running after the process that started them ends, however it ends short of SIGKILL.
  process.once("exit", () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  });
  return {
    output: () => output.slice(-4000),
    start: (args) =>
      new Promise((resolve, reject) => {
        const command = args[0] ?? "";
        const ready = READY[command];
        if (ready === undefined) throw new Error(`no readiness line known for concord ${command}`);
        const child = spawn(process.execPath, ["--import", tsx, join(root, "src", "main.ts"), ...args], {
          cwd,
          env,
          stdio: ["ignore", "pipe", "pipe"],
        });
        children.push(child);
        let own = "";
        const seen = (chunk: Buffer): void => {
          own += chunk.toString();
          output += `[${command} ${child.pid ?? ""}] ${chunk.toString()}`;
          if (own.includes(ready)) resolve(child);
        };
        child.stdout?.on("data", seen);
        child.stderr?.on("data", seen);
        child.once("exit", (code) => {
          reject(
            new Error(
              `concord ${command} exited (${String(code)}) before it was ready:\n${own.slice(-2000)}`,
            ),
          );
        });
      }),
    killAll: () => signalAll("SIGKILL"),
    stopAll: () => signalAll("SIGTERM"),
  };

  function signalAll(signal: NodeJS.Signals): Promise<void> {
    return Promise.all(
      children.splice(0).map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null || c.signalCode !== null) {
              resolve();
              return;
            }
            c.once("exit", () => {
              resolve();
            });
            c.kill(signal);
          }),
      ),
    ).then(() => undefined);
  }
}
