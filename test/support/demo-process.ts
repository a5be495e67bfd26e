/**
 * The demo as a real child process for tests: `node --import tsx src/main.ts demo --json` (what
 * `npm start` runs, in one process so signals reach the demo itself), with the example config's
 * emulators moved to free loopback ports so a test runs beside a demo on 4101–4108.
 */
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { basename, join } from "node:path";
import { demoWorld } from "../../src/demo/worlds";

const root = join(import.meta.dirname, "..", "..");

/** Free loopback ports. */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve) => {
          const server = createServer();
          server.listen(0, "127.0.0.1", () => {
            resolve(server);
          });
        }),
    ),
  );
  const ports = servers.map((s) => {
    const address = s.address();
    return typeof address === "object" && address !== null ? address.port : 0;
  });
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

/**
 * Starts the demo with 300 constituents, 1 s polls and its store in `dir` (which also receives the
 * config); `env` adds to a process environment cleared of store, key and log settings. `world`
 * names the demo world (default: the default world); its example's emulator ports move to free ones.
 */
export async function spawnDemo(
  dir: string,
  env: Record<string, string> = {},
  world = "renxt-cc",
): Promise<{
  proc: ChildProcessWithoutNullStreams;
  ports: { re: number; main: number; appeals: number; mc: number };
}> {
  // The examples' emulators listen on 4101–4108: each moves to a free port.
  const free = await freePorts(8);
  const [re, main, appeals, mc] = free;
  const spec = demoWorld(world);
  if (spec === undefined) throw new Error(`no demo world ${world}`);
  const file = basename(spec.config);
  // One pass: a free port may itself start with 410x.
  const config = readFileSync(join(root, spec.config), "utf8").replace(
    /127\.0\.0\.1:(410[1-8])\b/g,
    (_whole, port: string) => `127.0.0.1:${String(free[Number(port) - 4101] ?? port)}`,
  );
  writeFileSync(join(dir, file), config);
  const proc = spawn(
    process.execPath,
    [
      "--import",
      "tsx",
      join(root, "src", "main.ts"),
      "demo",
      "--json",
      "--world",
      world,
      "--config",
      join(dir, file),
      "--port",
      "0",
      "--seed-size",
      "300",
      "--poll-interval",
      "1s",
      "--data-dir",
      dir,
    ],
    { cwd: root, env: { ...process.env, DATABASE_URL: "", CONCORD_SECRET_KEY: "", LOG_LEVEL: "", ...env } },
  );
  return { proc, ports: { re: re ?? 0, main: main ?? 0, appeals: appeals ?? 0, mc: mc ?? 0 } };
}
