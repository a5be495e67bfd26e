/**
 * The parts of an incremental read every connector shares: where a read starts (the checkpoint less
 * an overlap, for changes committed late or out of order), which records a read has already
 * yielded (overlaps and paging repeat them), how far the checkpoint may move after each page, and
 * how to wait for a vendor's background job through the runtime's clock.
 */
import { z } from "zod";
import type { Checkpoint, ConnectorError, ConnectorResult, ConnectorRuntime } from "../connector";
import { err, ok } from "../../core/result";

/**
 * A connection's `overlap_seconds` option: how far before the checkpoint an incremental read
 * starts. At least a second: vendors give change times in whole seconds and list changes after a
 * time, so a read that starts at the checkpoint's own second misses a change made later in it.
 */
export const overlapSecondsOption = (defaultSeconds: number) =>
  z
    .number()
    .int()
    .min(
      1,
      "expected at least 1 second: change times are whole seconds, and a read starting at the checkpoint's own second misses a change made later in it",
    )
    .max(86_400)
    .default(defaultSeconds);

/** Where a read starts and whether it reads everything. */
export function readStart(
  checkpoint: Checkpoint | null,
  options: { full?: boolean; overlap_ms: number; epoch: string },
): { full: boolean; since: string } {
  if (options.full === true || checkpoint === null) return { full: true, since: options.epoch };
  const at = Math.max(Date.parse(options.epoch), Date.parse(checkpoint.value) - options.overlap_ms);
  return { full: false, since: new Date(at).toISOString() };
}

/** A filter that passes each key once: the first page that carries a record yields it. */
export function firstSeen(): (key: string) => boolean {
  const seen = new Set<string>();
  return (key) => {
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  };
}

/**
 * The checkpoint of a read in progress. Where the vendor returns changes oldest first
 * (`ascending`), the checkpoint follows the newest change read so far, page by page. Where it
 * documents no order (`unordered`), it moves only once the read is complete: moving it mid-read
 * could skip older changes not yet read if the process stopped before the end.
 *
 * Given when the read `began`, the checkpoint never passes that moment: a read is no snapshot, and
 * a record changed while it went on (an opt-out) may lie behind the pages already read while a later
 * change moves the newest time seen past it. The next read starts there, less its overlap.
 */
export function createWatermark(
  order: "ascending" | "unordered",
  from: string | undefined,
  began?: string,
): { see: (at: string) => void; value: (complete: boolean, now: string) => string } {
  let newest: number | undefined = from === undefined ? undefined : Date.parse(from);
  const cap = began === undefined ? undefined : Date.parse(began);
  return {
    see: (at) => {
      const t = Date.parse(at);
      if (!Number.isNaN(t) && (newest === undefined || t > newest)) newest = t;
    },
    value: (complete, now) => {
      if (order === "unordered" && !complete) return from ?? now;
      const at = newest ?? Date.parse(now);
      return new Date(cap !== undefined && !Number.isNaN(cap) && at > cap ? cap : at).toISOString();
    },
  };
}

export type JobWait = { first_ms: number; max_ms: number; max_total_ms: number };

/**
 * Waits for a vendor's background job (a bulk import, a batch) to end, re-reading it with a
 * doubling delay through the runtime's clock; past `max_total_ms` it answers `vendor_unavailable`
 * with a time to look again (the job may still finish: the next read shows what it did).
 */
export async function awaitJob<J>(
  runtime: Pick<ConnectorRuntime, "now" | "sleep">,
  job: J,
  wait: JobWait,
  steps: {
    ended: (job: J) => boolean;
    reread: (job: J) => Promise<ConnectorResult<J>>;
    describe: (job: J) => string;
  },
): Promise<ConnectorResult<J>> {
  let current = job;
  let delay = wait.first_ms;
  let waited = 0;
  while (!steps.ended(current)) {
    if (waited >= wait.max_total_ms) {
      const error: ConnectorError = {
        code: "vendor_unavailable",
        message: `${steps.describe(current)} was still running after ${Math.round(waited / 1000)} s; the next read shows what it did.`,
        retry_at: new Date(runtime.now().getTime() + wait.max_ms).toISOString(),
      };
      return err(error);
    }
    await runtime.sleep(delay);
    waited += delay;
    delay = Math.min(wait.max_ms, delay * 2);
    const r = await steps.reread(current);
    if (!r.ok) return r;
    current = r.value;
  }
  return ok(current);
}
