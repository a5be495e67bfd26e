/**
 * V8 settings every Concord process runs with, applied once at start (`setFlagsFromString` governs
 * what the heap does from then on).
 *
 * No allocation-site pretenuring. V8 watches which allocation sites' objects outlive its
 * young-generation collections and then allocates theirs straight in the old generation. Planning
 * parses every page of contacts with the same code, and some of what it parses joins the plan and
 * lives on, so V8 came to allocate the parsed snapshots and rows of every page in the old
 * generation, where the dead pages piled up until a full collection found them. Measured on the
 * first plan of a million contacts: peak RSS 506 MiB against 830 to 845, 49.5 s against 58 to 60 s
 * (docs/benchmarks.md has the benchmark's figures with and without).
 */
import { setFlagsFromString } from "node:v8";

export const V8_FLAGS = ["--no-allocation-site-pretenuring"] as const;

export function applyV8Settings(): void {
  for (const flag of V8_FLAGS) setFlagsFromString(flag);
}
