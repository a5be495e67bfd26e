/**
 * The benchmarks' shared frame: what a benchmark module is given and returns, and the measuring
 * tools they share (timer, percentiles, peak RSS, the machine's facts). Every module `bench/*.bench.ts`
 * exports `name` (kebab-case) and `run(ctx)`; `bench/run.ts` finds and runs them.
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { arch, cpus, freemem, loadavg, platform, release, totalmem } from "node:os";

export type BenchContext = {
  /** Small sizes, for CI: the benchmark must still run end to end, its figures mean little. */
  smoke: boolean;
  /** Run on PostgreSQL (`databaseUrl`) instead of the embedded SQLite store. */
  pg: boolean;
  databaseUrl?: string;
  /** One line of progress, prefixed with the benchmark's name by the runner. */
  log: (line: string) => void;
  /** A fresh folder for this benchmark's files (SQLite databases, child scripts' output); removed after. */
  tmpDir: string;
};

export type BenchFigure = { name: string; value: number; unit: string };

export type BenchResult = BenchFigure & {
  /** What the value is compared with, measured in the same run on the same machine. */
  reference?: BenchFigure;
  /** value / reference.value: the figure to compare between machines and runs. */
  ratio?: number;
  better: "lower" | "higher";
  notes?: string;
};

/** What a module `bench/*.bench.ts` exports. */
export type BenchModule = {
  name: string;
  /** A benchmark that runs on PostgreSQL whatever `--pg` says (scale-out needs its job queue). */
  store?: "postgres";
  run: (ctx: BenchContext) => Promise<BenchResult[]>;
};

/** A result with its ratio computed from the reference (undefined when either is not a finite, non-zero number). */
export function withRatio(result: Omit<BenchResult, "ratio">): BenchResult {
  const ref = result.reference?.value;
  const ratio =
    ref !== undefined && Number.isFinite(ref) && ref !== 0 && Number.isFinite(result.value)
      ? result.value / ref
      : undefined;
  return ratio === undefined ? result : { ...result, ratio };
}

/** Percentile by the nearest-rank method (p in 0–100) of unsorted values; NaN when there are none. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = Float64Array.from(values).sort();
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)));
  return sorted[rank - 1] ?? Number.NaN;
}

/** Starts a monotonic stopwatch; calling the result gives the milliseconds since. */
export function startTimer(): () => number {
  const started = performance.now();
  return () => performance.now() - started;
}

/** Runs `fn` and returns its value with how long it took (ms). */
export async function timed<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const elapsed = startTimer();
  const value = await fn();
  return { value, ms: elapsed() };
}

export type RssSampler = {
  /** Stops sampling; the highest resident set size seen (bytes) since the sampler started. */
  stop: () => number;
};

/**
 * Samples this process's resident set size every `everyMs` while the event loop is free. A phase
 * that blocks the loop (a long synchronous plan) is covered too: if the process's high-water mark
 * (`resourceUsage().maxRSS`) rose while sampling, that mark was reached within the phase, so it is
 * the phase's exact peak.
 */
export function sampleRss(everyMs = 50): RssSampler {
  const maxAtStart = process.resourceUsage().maxRSS * 1024;
  let peak = process.memoryUsage.rss();
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, everyMs);
  timer.unref();
  return {
    stop: () => {
      clearInterval(timer);
      peak = Math.max(peak, process.memoryUsage.rss());
      const maxAtEnd = process.resourceUsage().maxRSS * 1024;
      return maxAtEnd > maxAtStart ? Math.max(peak, maxAtEnd) : peak;
    },
  };
}

export type MachineFacts = {
  node: string;
  os: string;
  arch: string;
  cpu_model: string;
  cpu_count: number;
  total_memory_bytes: number;
  free_memory_bytes_at_start: number;
  /** 1, 5 and 15 minute load averages. */
  load_average_start: number[];
  load_average_end?: number[];
  date: string;
};

/** The facts that say what a run's figures came from; `load_average_end` is filled in at the end. */
export function machineFacts(now: Date = new Date()): MachineFacts {
  const cpu = cpus();
  return {
    node: process.version,
    os: `${platform()} ${release()}`,
    arch: arch(),
    cpu_model: cpu[0]?.model.trim() ?? "unknown",
    cpu_count: cpu.length,
    total_memory_bytes: totalmem(),
    free_memory_bytes_at_start: freemem(),
    load_average_start: loadavg().map(round2),
    date: now.toISOString(),
  };
}

export const loadAverage = (): number[] => loadavg().map(round2);

const round2 = (n: number): number => Math.round(n * 100) / 100;

/** Bytes as MiB with one decimal, for notes and logs. */
export const mib = (bytes: number): number => Math.round((bytes / 1048576) * 10) / 10;

/** A number for a table: integers with thousands separators, others to 3 significant digits. */
export function formatNumber(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (Number.isInteger(n) || Math.abs(n) >= 1000) return Math.round(n).toLocaleString("en-US");
  return Number(n.toPrecision(3)).toString();
}

export type ChildRun<T> = {
  /** The child's `RESULT {json}` line, parsed; absent when it failed. */
  result?: T;
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The child's peak RSS as the kernel saw it (VmHWM, polled); 0 where /proc is missing. */
  hwm_bytes: number;
  /** The end of its stderr. */
  stderr: string;
  timed_out: boolean;
};

const TSX = import.meta.resolve("tsx");

/**
 * Runs a TypeScript script in a Node.js process of its own (the same Node.js, through tsx) with one
 * JSON argument, and resolves with the `RESULT {json}` line it prints, or how it failed. Killed
 * (SIGKILL) after `timeoutMs`.
 */
export function runChildScript<T>(
  script: string,
  argument: unknown,
  options: { timeoutMs: number; nodeFlags?: string[] },
): Promise<ChildRun<T>> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      [...(options.nodeFlags ?? []), "--import", TSX, script, JSON.stringify(argument)],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let stdout = "";
    let stderr = "";
    let hwm = 0;
    let timedOut = false;
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      stderr = (stderr + d).slice(-20_000);
    });
    const poll = setInterval(() => {
      hwm = Math.max(hwm, readHwm(child.pid));
    }, 200);
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, options.timeoutMs);
    child.on("error", (error) => {
      clearInterval(poll);
      clearTimeout(timer);
      reject(error);
    });
    child.on("close", (code, signal) => {
      clearInterval(poll);
      clearTimeout(timer);
      const line = stdout.split("\n").find((l) => l.startsWith("RESULT "));
      const run: ChildRun<T> = { code, signal, hwm_bytes: hwm, stderr, timed_out: timedOut };
      if (line !== undefined && code === 0) run.result = JSON.parse(line.slice("RESULT ".length)) as T;
      resolve(run);
    });
  });
}

/** A process's peak resident set (VmHWM) from /proc, in bytes; 0 when unavailable. */
function readHwm(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${String(pid)}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Why a child failed, in one line: time limit, exit code or signal, peak RSS, the end of stderr. */
export function describeChildFailure(run: ChildRun<unknown>): string {
  if (run.timed_out) return `stopped after its time limit (peak RSS ${mib(run.hwm_bytes)} MiB)`;
  return `exit ${String(run.code)}${run.signal ? ` (${run.signal})` : ""}, peak RSS ${mib(run.hwm_bytes)} MiB: ${stderrTail(run.stderr)}`;
}

/** The last few non-empty lines of a child's stderr. */
export const stderrTail = (stderr: string): string =>
  stderr
    .split("\n")
    .filter((l) => l.trim() !== "")
    .slice(-3)
    .join(" / ")
    .slice(0, 400);
