// Prints the plain closing line "N passed, N failed" (", N skipped") from vitest's JSON report.
import { readFileSync } from "node:fs";

const file = process.argv[2] ?? ".vitest-results.json";
let report;
try {
  report = JSON.parse(readFileSync(file, "utf8"));
} catch (error) {
  console.error(
    `could not read the test report ${file}: ${error instanceof Error ? error.message : String(error)}`,
  );
  console.log("0 passed, 1 failed");
  process.exit(0);
}
const passed = report.numPassedTests ?? 0;
// A file that failed without a failing test (it could not load, or a hook threw) counts once; a
// failing test counts once, not again for its file and the describe blocks around it.
const filesFailedBesideTests = (report.testResults ?? []).filter(
  (file) =>
    file.status === "failed" && !(file.assertionResults ?? []).some((test) => test.status === "failed"),
).length;
const failed = (report.numFailedTests ?? 0) + filesFailedBesideTests;
const skipped = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
