/**
 * Builds the admin UI (ui/dist) when it is missing or older than its sources, so `npm install &&
 * npm start` on a fresh clone serves a built UI (`prestart`), and the browser test tests what the
 * sources say. Run directly: `node --import tsx ui/scripts/build-ui-if-stale.ts [--force]`.
 */
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

export const UI_DIR = fileURLToPath(new URL("..", import.meta.url));
const REPO_DIR = join(UI_DIR, "..");

/** Every file the build reads from ui/ (the sources, index.html, the configs). */
function sources(uiDir: string): string[] {
  const files = ["index.html", "vite.config.ts", "tsconfig.json"].map((f) => join(uiDir, f));
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else files.push(path);
    }
  };
  walk(join(uiDir, "src"));
  return files.filter((f) => existsSync(f));
}

export type UiBuildStatus = { needed: false } | { needed: true; reason: string };

export function uiBuildStatus(uiDir: string = UI_DIR): UiBuildStatus {
  const built = join(uiDir, "dist", "index.html");
  if (!existsSync(built)) return { needed: true, reason: `${relative(REPO_DIR, built)} does not exist` };
  const builtAt = statSync(built).mtimeMs;
  const newer = sources(uiDir).find((f) => statSync(f).mtimeMs > builtAt);
  return newer === undefined
    ? { needed: false }
    : { needed: true, reason: `${relative(REPO_DIR, newer)} changed since the last build` };
}

/** Runs `vite build` for ui/; throws with Vite's output when it fails. */
export function buildUi(uiDir: string = UI_DIR): void {
  const vite = join(REPO_DIR, "node_modules", "vite", "bin", "vite.js");
  const result = spawnSync(process.execPath, [vite, "build", uiDir, "--logLevel", "warn"], {
    cwd: REPO_DIR,
    encoding: "utf8",
  });
  if (result.status !== 0)
    throw new Error(
      `Building the admin UI failed (exit ${String(result.status ?? result.signal)}):\n${result.stdout}${result.stderr}`,
    );
}

/** Builds when needed; returns why it built, or undefined when ui/dist was current. */
export function buildUiIfStale(uiDir: string = UI_DIR, force = false): string | undefined {
  const status: UiBuildStatus = force ? { needed: true, reason: "--force" } : uiBuildStatus(uiDir);
  if (!status.needed) return undefined;
  buildUi(uiDir);
  return status.reason;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const started = Date.now();
  const status = uiBuildStatus();
  if (status.needed || process.argv.includes("--force")) {
    process.stderr.write(`Building the admin UI (${status.needed ? status.reason : "--force"})…\n`);
    try {
      buildUi();
    } catch (error) {
      process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
      process.exit(1);
    }
    process.stderr.write(`Built ui/dist in ${((Date.now() - started) / 1000).toFixed(1)} s.\n`);
  }
}
