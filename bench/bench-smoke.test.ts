/**
 * The benchmarks keep working: `npm run bench -- --smoke` (small sizes) runs every benchmark as a
 * real process and writes a results file in which each figure has its same-run reference and ratio.
 * The full run is not part of `npm test` (docs/benchmarks.md).
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { storeBackends } from "../test/support/store-backends";
import type { ResultsFile } from "./run";

const root = join(import.meta.dirname, "..");
const postgresUrl = storeBackends().find((b) => b.name === "postgres" && b.skip_reason === undefined)
  ? process.env["TEST_DATABASE_URL"]
  : undefined;
const dir = mkdtempSync(join(tmpdir(), "concord-bench-smoke-"));

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

function runBench(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", join(root, "bench", "run.ts"), ...args], {
      cwd: root,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => {
      resolve({ code, stdout, stderr });
    });
  });
}

describe("npm run bench -- --smoke", () => {
  it(
    "runs every benchmark and writes every figure with its reference and ratio",
    // A guard against a hang, not an expectation of speed: beside other test files and a loaded
    // machine, the smoke run (a server and workers of its own among them) takes several minutes.
    { timeout: 1_200_000 },
    async () => {
      const out = join(dir, "results.json");
      // Scale-out runs on PostgreSQL only: without a database here it is left out, and says why.
      const pg = postgresUrl !== undefined;
      if (!pg) console.warn("npm run bench -- --smoke: scale-out left out: TEST_DATABASE_URL is not set");
      const run = await runBench([
        "--smoke",
        "--out",
        out,
        ...(pg
          ? []
          : ["--only", "propagation-latency,api-economy,renxt-reads,planning-throughput,webhook-intake"]),
      ]);
      expect(run.stderr).not.toMatch(/FAILED/);
      expect(run.code).toBe(0);
      const results = JSON.parse(readFileSync(out, "utf8")) as ResultsFile;
      expect(results.mode).toBe("smoke");
      expect(results.machine.cpu_count).toBeGreaterThan(0);
      expect(results.benchmarks.map((b) => [b.name, b.status, b.store])).toEqual([
        ["propagation-latency", "succeeded", "sqlite"],
        ["api-economy", "succeeded", "sqlite"],
        ["renxt-reads", "succeeded", "sqlite"],
        ["planning-throughput", "succeeded", "sqlite"],
        ["webhook-intake", "succeeded", "sqlite"],
        // Without --pg the others run on SQLite; scale-out runs on PostgreSQL all the same.
        ...(pg ? [["scale-out", "succeeded", "postgres"]] : []),
      ]);
      expect(results.store).toBe(pg ? "both" : "sqlite");
      for (const r of results.results) {
        expect(Number.isFinite(r.value), r.name).toBe(true);
        expect(r.reference, r.name).toBeDefined();
        expect(Number.isFinite(r.ratio), r.name).toBe(true);
      }
      // The table names each figure beside its reference.
      expect(run.stdout).toMatch(/name\s+\| value\s+\| reference\s+\| ratio/);
    },
  );

  it("refuses an unknown benchmark name with the ones it knows (exit 2)", async () => {
    const run = await runBench(["--smoke", "--only", "nope", "--out", join(dir, "unused.json")]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("Unknown benchmark: nope. Available: propagation-latency, api-economy");
  });
});
