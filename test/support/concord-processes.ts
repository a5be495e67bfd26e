/**
 * Test and bench support: `concord` commands as real processes (`serve`, `worker`), each started
 * from the sources with the given environment and awaited until it says it is ready; all of them
 * killed with SIGKILL at the end.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";

const root = join(import.meta.dirname, "..", "..");

/** What each command prints once it is ready. */
const READY: Readonly<Record<string, string>> = {
  serve: "Concord is listening",
  worker: "Concord worker is running",
};

export type ConcordProcesses = {
  /** Starts `concord <args>`; resolves once it is ready, rejects if it exits before. */
  start: (args: readonly string[]) => Promise<ChildProcess>;
  /** The last of what the processes printed, each line marked with its command and pid. */
  output: () => string;
  killAll: () => Promise<void>;
};

export function concordProcesses(env: Readonly<Record<string, string>>): ConcordProcesses {
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
        const child = spawn(process.execPath, ["--import", "tsx", join(root, "src", "main.ts"), ...args], {
          cwd: root,
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
    killAll: async () => {
      await Promise.all(
        children.map(
          (c) =>
            new Promise<void>((resolve) => {
              if (c.exitCode !== null || c.signalCode !== null) {
                resolve();
                return;
              }
              c.once("exit", () => {
                resolve();
              });
              c.kill("SIGKILL");
            }),
        ),
      );
    },
  };
}
