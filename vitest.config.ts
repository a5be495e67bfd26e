import { availableParallelism } from "node:os";
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["src/**/*.test.ts", "test/**/*.test.ts", "bench/**/*.test.ts"],
    exclude: ["node_modules/**", "test/fixtures/**"],
    pool: "forks",
    // Two test files at once at the least: most of a file's time is spent waiting on servers,
    // processes and the database, so even a two-core machine finishes the suite sooner. Every test
    // waits for events, never for time, and every store lives in a schema or file of its own.
    maxWorkers: Math.max(2, availableParallelism() - 1),
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: process.env.CI ? ["default", ["json", { outputFile: ".vitest-results.json" }]] : ["default"],
  },
});
