import { describe, expect, it } from "vitest";
import { CALL_TIME_HORIZON_MS, callWindow, nextCallTime } from "./call-window";

describe("a per-second rate as a window of call times", () => {
  it("is a whole number of calls over a second or longer", () => {
    expect(callWindow(4)).toEqual({ calls: 4, ms: 1000 });
    expect(callWindow(0.5)).toEqual({ calls: 1, ms: 2000 });
    expect(callWindow(2.5)).toEqual({ calls: 2, ms: 800 });
  });

  it("places each call at the earliest time the window has room, in order", () => {
    const w = callWindow(2);
    let recent: number[] = [];
    const at: number[] = [];
    for (const now of [0, 0, 0, 100, 2500]) {
      const next = nextCallTime(recent, now, w);
      at.push(next.at);
      recent = next.recent;
    }
    expect(at).toEqual([0, 0, 1000, 1000, 2500]);
    expect(recent).toEqual([1000, 2500]);
  });

  it("drops a time a clock out of step placed far ahead, rather than holding every call for it", () => {
    const w = callWindow(4);
    const ahead = 5_000 + CALL_TIME_HORIZON_MS + 1;
    expect(nextCallTime([ahead], 5_000, w).at).toBe(5_000);
    // A queue within the horizon is waited for.
    expect(nextCallTime([5_000 + 60_000], 5_000, w).at).toBe(65_000);
  });
});
