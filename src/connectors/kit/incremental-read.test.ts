import { describe, expect, it } from "vitest";
import { err, ok } from "../../core/result";
import { awaitJob, createWatermark, firstSeen, readStart } from "./incremental-read";

const EPOCH = "1970-01-01T00:00:00.000Z";
const cp = (value: string) => ({ stream: "s", value, taken_at: value });

describe("readStart", () => {
  it("reads everything without a checkpoint or when asked, and otherwise from the checkpoint less the overlap", () => {
    expect(readStart(null, { overlap_ms: 60_000, epoch: EPOCH })).toEqual({ full: true, since: EPOCH });
    expect(readStart(cp("2026-06-01T10:00:00.000Z"), { full: true, overlap_ms: 0, epoch: EPOCH })).toEqual({
      full: true,
      since: EPOCH,
    });
    expect(readStart(cp("2026-06-01T10:00:00.000Z"), { overlap_ms: 300_000, epoch: EPOCH })).toEqual({
      full: false,
      since: "2026-06-01T09:55:00.000Z",
    });
    // The overlap never reaches before the vendor's beginning of time.
    expect(readStart(cp("1970-01-01T00:01:00.000Z"), { overlap_ms: 3_600_000, epoch: EPOCH }).since).toBe(
      EPOCH,
    );
  });
});

describe("firstSeen", () => {
  it("passes each key once", () => {
    const first = firstSeen();
    expect(["a", "b", "a", "c", "b"].filter(first)).toEqual(["a", "b", "c"]);
  });
});

describe("createWatermark", () => {
  const now = "2026-06-01T12:00:00.000Z";
  it("ascending: follows the newest change read so far, page by page", () => {
    const w = createWatermark("ascending", "2026-06-01T08:00:00.000Z");
    expect(w.value(false, now)).toBe("2026-06-01T08:00:00.000Z");
    w.see("2026-06-01T09:00:00.000Z");
    w.see("2026-06-01T07:00:00.000Z");
    expect(w.value(false, now)).toBe("2026-06-01T09:00:00.000Z");
    expect(createWatermark("ascending", undefined).value(true, now)).toBe(now);
  });

  it("unordered: stays at the start until the read is complete, then takes the newest", () => {
    const w = createWatermark("unordered", "2026-06-01T08:00:00.000Z");
    w.see("2026-06-01T11:00:00.000Z");
    expect(w.value(false, now)).toBe("2026-06-01T08:00:00.000Z");
    expect(w.value(true, now)).toBe("2026-06-01T11:00:00.000Z");
    w.see("not a date");
    expect(w.value(true, now)).toBe("2026-06-01T11:00:00.000Z");
  });
});

describe("awaitJob", () => {
  type Job = { id: string; polls: number };
  const clock = () => {
    let t = Date.parse("2026-06-01T10:00:00.000Z");
    const slept: number[] = [];
    return {
      slept,
      runtime: {
        now: () => new Date(t),
        sleep: (ms: number) => {
          slept.push(ms);
          t += ms;
          return Promise.resolve();
        },
      },
    };
  };

  it("re-reads with a doubling delay, capped, until the job ends", async () => {
    const c = clock();
    const r = await awaitJob(
      c.runtime,
      { id: "j", polls: 0 },
      { first_ms: 1000, max_ms: 4000, max_total_ms: 60_000 },
      {
        ended: (j: Job) => j.polls >= 4,
        reread: (j: Job) => Promise.resolve(ok({ ...j, polls: j.polls + 1 })),
        describe: (j: Job) => `job ${j.id}`,
      },
    );
    expect(r).toEqual(ok({ id: "j", polls: 4 }));
    expect(c.slept).toEqual([1000, 2000, 4000, 4000]);
  });

  it("gives up past the total wait with a time to look again, and passes a failed re-read on", async () => {
    const c = clock();
    const never = await awaitJob(
      c.runtime,
      { id: "j", polls: 0 },
      { first_ms: 1000, max_ms: 2000, max_total_ms: 5000 },
      {
        ended: () => false,
        reread: (j: Job) => Promise.resolve(ok(j)),
        describe: (j: Job) => `job ${j.id}`,
      },
    );
    expect(never.ok).toBe(false);
    if (!never.ok) {
      expect(never.error.code).toBe("vendor_unavailable");
      expect(never.error.message).toMatch(/^job j was still running after 5 s/);
      expect(never.error.retry_at).toBe("2026-06-01T10:00:07.000Z");
    }
    const failed = await awaitJob(
      clock().runtime,
      { id: "j", polls: 0 },
      { first_ms: 1, max_ms: 1, max_total_ms: 10 },
      {
        ended: () => false,
        reread: () => Promise.resolve(err({ code: "network_error" as const, message: "reset" })),
        describe: () => "job",
      },
    );
    expect(failed).toEqual(err({ code: "network_error", message: "reset" }));
  });
});
