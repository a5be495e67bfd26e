/**
 * `npm run bench`: runs every benchmark module `bench/*.bench.ts` on the embedded store (or
 * PostgreSQL with `--pg`), prints a table of each figure against its same-run reference, and writes
 * the results file with the machine's facts. Exits 1 when a benchmark failed, 2 on bad arguments.
 */
import { mkdtempSync, readdirSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Command } from "commander";
import {
  formatNumber,
  loadAverage,
  machineFacts,
  startTimer,
  withRatio,
  type BenchContext,
  type BenchModule,
  type BenchResult,
  type MachineFacts,
} from "./bench-kit";
import { applyV8Settings } from "../src/v8-settings";
import { errorMessage } from "../src/core/error-code";

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
/** The issue's order: the figures people ask about first. Others follow by name. */
const ORDER = [
  "propagation-latency",
  "api-economy",
  "renxt-reads",
  "planning-throughput",
  "webhook-intake",
  "scale-out",
];

type Options = { smoke: boolean; pg: boolean; only?: string; out?: string };

export type BenchOutcome = {
  name: string;
  file: string;
  status: "succeeded" | "failed";
  /** The store it ran on. */
  store: "sqlite" | "postgres";
  duration_ms: number;
  error?: string;
};

export type ResultsFile = {
  machine: MachineFacts;
  mode: "full" | "smoke";
  /** The store the benchmarks ran on ("both" when some always run on PostgreSQL and others did not). */
  store: "sqlite" | "postgres" | "both";
  started_at: string;
  finished_at: string;
  duration_ms: number;
  benchmarks: BenchOutcome[];
  results: (BenchResult & { benchmark: string })[];
};

async function main(argv: string[]): Promise<number> {
  // The process settings `concord` runs with (the webhook benchmark serves from this process).
  applyV8Settings();
  const program = new Command()
    .name("npm run bench --")
    .description("Runs Concord's benchmarks and writes their results with the machine's facts.")
    .option("--smoke", "small sizes, to check the benchmarks still run (CI)", false)
    .option("--pg", "use PostgreSQL (BENCH_DATABASE_URL, else TEST_DATABASE_URL)", false)
    .option("--only <names>", "comma-separated benchmark names (e.g. planning-throughput,webhook-intake)")
    .option("--out <file>", "results file (default bench/results.json; --smoke: bench/results.local.json)")
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });
  try {
    program.parse(argv, { from: "user" });
  } catch (error) {
    const code = (error as { exitCode?: number }).exitCode;
    return code === 0 ? 0 : 2;
  }
  const options = program.opts<Options>();

  let databaseUrl: string | undefined;
  if (options.pg) {
    databaseUrl = process.env["BENCH_DATABASE_URL"] || process.env["TEST_DATABASE_URL"] || undefined;
    if (databaseUrl === undefined) {
      console.error(
        "--pg needs a PostgreSQL database: set BENCH_DATABASE_URL (or TEST_DATABASE_URL), e.g. " +
          "postgres://postgres:concord@127.0.0.1:5432/concord_test",
      );
      return 2;
    }
  }

  const modules = await loadModules();
  const wanted = options.only
    ?.split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  if (wanted !== undefined) {
    const unknown = wanted.filter((w) => !modules.some((m) => m.module.name === w));
    if (unknown.length > 0) {
      console.error(
        `Unknown benchmark${unknown.length > 1 ? "s" : ""}: ${unknown.join(", ")}. ` +
          `Available: ${modules.map((m) => m.module.name).join(", ") || "none"}.`,
      );
      return 2;
    }
  }
  const selected = wanted === undefined ? modules : modules.filter((m) => wanted.includes(m.module.name));

  const mode = options.smoke ? "smoke" : "full";
  const storeOf = (m: BenchModule): BenchOutcome["store"] => m.store ?? (options.pg ? "postgres" : "sqlite");
  const stores = new Set(selected.map((m) => storeOf(m.module)));
  const out = resolve(options.out ?? (options.smoke ? "bench/results.local.json" : "bench/results.json"));
  const machine = machineFacts();
  const started_at = new Date().toISOString();
  const total = startTimer();
  console.log(
    `Concord benchmarks (${mode}, ${[...stores].map((s) => (s === "postgres" ? "PostgreSQL" : "SQLite")).join(" and ")}): ${selected.map((m) => m.module.name).join(", ")}`,
  );
  console.log(
    `${machine.cpu_model} × ${machine.cpu_count}, ${formatNumber(machine.total_memory_bytes / 1024 ** 3)} GiB, ` +
      `${machine.os}, Node ${machine.node}, load ${machine.load_average_start.join(" ")}`,
  );

  const outcomes: BenchOutcome[] = [];
  const results: ResultsFile["results"] = [];
  for (const { module, file } of selected) {
    const tmpDir = mkdtempSync(join(tmpdir(), `concord-bench-${module.name}-`));
    const ctx: BenchContext = {
      smoke: options.smoke,
      pg: options.pg,
      ...(databaseUrl !== undefined ? { databaseUrl } : {}),
      tmpDir,
      log: (line) => {
        console.log(`[${module.name}] ${line}`);
      },
    };
    const elapsed = startTimer();
    console.log(`\n== ${module.name}`);
    try {
      const produced = await module.run(ctx);
      for (const r of produced)
        results.push({ benchmark: module.name, ...(r.ratio === undefined ? withRatio(r) : r) });
      outcomes.push({
        name: module.name,
        file,
        status: "succeeded",
        store: storeOf(module),
        duration_ms: Math.round(elapsed()),
      });
      console.log(`[${module.name}] done in ${(elapsed() / 1000).toFixed(1)} s`);
    } catch (error) {
      const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
      outcomes.push({
        name: module.name,
        file,
        status: "failed",
        store: storeOf(module),
        duration_ms: Math.round(elapsed()),
        error: errorMessage(error),
      });
      console.error(`[${module.name}] FAILED after ${(elapsed() / 1000).toFixed(1)} s: ${message}`);
    } finally {
      rmSync(tmpDir, { recursive: true, force: true });
    }
  }

  machine.load_average_end = loadAverage();
  const file: ResultsFile = {
    machine,
    mode,
    store: stores.size > 1 ? "both" : stores.has("postgres") ? "postgres" : "sqlite",
    started_at,
    finished_at: new Date().toISOString(),
    duration_ms: Math.round(total()),
    benchmarks: outcomes,
    results,
  };
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(file, null, 2)}\n`);

  console.log(`\n${table(results)}`);
  console.log(`\nWrote ${out} (${(file.duration_ms / 1000).toFixed(1)} s in all).`);
  const failed = outcomes.filter((o) => o.status === "failed");
  if (failed.length > 0) {
    console.error(`Failed: ${failed.map((f) => `${f.name} (${f.error ?? "?"})`).join("; ")}`);
    return 1;
  }
  if (selected.length === 0) {
    console.error("No benchmark ran.");
    return 1;
  }
  return 0;
}

/**
 * Every `bench/*.bench.ts`, in the issue's order. A file that does not load, or lacks `name` and
 * `run`, becomes a benchmark that fails with that reason (named after its file).
 */
async function loadModules(): Promise<{ module: BenchModule; file: string }[]> {
  const files = readdirSync(BENCH_DIR)
    .filter((f) => f.endsWith(".bench.ts"))
    .sort();
  const loaded: { module: BenchModule; file: string }[] = [];
  for (const f of files) {
    const file = `bench/${basename(f)}`;
    let problem: string;
    try {
      const imported = (await import(pathToFileURL(join(BENCH_DIR, f)).href)) as Partial<BenchModule>;
      if (typeof imported.name === "string" && typeof imported.run === "function") {
        const store = imported.store === "postgres" ? { store: imported.store } : {};
        loaded.push({ module: { name: imported.name, run: imported.run, ...store }, file });
        continue;
      }
      problem = `${file} must export name (a string) and run(ctx) (an async function)`;
    } catch (error) {
      problem = `${file} did not load: ${errorMessage(error)}`;
    }
    const failing: BenchModule = {
      name: basename(f, ".bench.ts"),
      run: () => Promise.reject(new Error(problem)),
    };
    loaded.push({ module: failing, file });
  }
  const rank = (n: string): number => (ORDER.includes(n) ? ORDER.indexOf(n) : ORDER.length);
  return loaded.sort(
    (a, b) => rank(a.module.name) - rank(b.module.name) || a.module.name.localeCompare(b.module.name),
  );
}

/** name | value unit | reference | ratio, aligned for a terminal. */
function table(results: readonly BenchResult[]): string {
  const rows = results.map((r) => [
    r.name,
    `${formatNumber(r.value)} ${r.unit}`,
    r.reference ? `${formatNumber(r.reference.value)} ${r.reference.unit} (${r.reference.name})` : "—",
    r.ratio !== undefined ? `${formatNumber(r.ratio)} (${r.better} is better)` : "—",
  ]);
  const header = ["name", "value", "reference", "ratio"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join(" | ")
      .trimEnd();
  return [line(header), widths.map((w) => "-".repeat(w)).join("-|-"), ...rows.map(line)].join("\n");
}

main(process.argv.slice(2)).then(
  (code) => {
    // Lingering handles of a benchmark (sockets, timers) must not keep the run alive.
    process.exit(code);
  },
  (error: unknown) => {
    console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
    process.exit(1);
  },
);
